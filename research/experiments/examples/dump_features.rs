//! Dumps the learned router's dense features (signals + lexical + static embedding) and every
//! row's outcomes, for prototyping outside Rust (not shipped data: pass the data folder).
//!
//! `cargo run --release -p tierwise-research --example dump_features -- DATA_DIR [SPLIT] OUT_PREFIX`
//! writes OUT_PREFIX.f32 (rows × dims, little-endian) and OUT_PREFIX.jsonl (id, category, input
//! tokens, outcomes).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    reason = "a developer tool"
)]

use std::io::Write;
use std::path::PathBuf;

use tierwise_eval::data;
use tierwise_eval::learn;
use tierwise_router::learned::features::{EmbeddingSpec, FeatureSpec};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, split, out) = match args.len() {
        2 => (args[0].clone(), None, args[1].clone()),
        3 => (args[0].clone(), Some(args[1].clone()), args[2].clone()),
        _ => panic!("DATA_DIR [SPLIT] OUT_PREFIX"),
    };
    let ds = data::load(&PathBuf::from(dir), split.as_deref(), &mut |_| {}).unwrap();
    let emb = tierwise_embed::Embedder::load(&PathBuf::from(
        "router/embed/tokenlearn-static-model-0.1.1",
    ))
    .unwrap();
    let spec = FeatureSpec::parse(
        "signals,lexical,embed",
        Some(EmbeddingSpec {
            name: emb.name().into(),
            dim: emb.dim(),
        }),
    )
    .unwrap();
    let f = |t: &str| emb.embed(t);
    let all: Vec<usize> = (0..ds.rows.len()).collect();
    let feats = learn::featurize_rows(&ds, &all, &spec, Some(&f));
    let mut bin = std::io::BufWriter::new(std::fs::File::create(format!("{out}.f32")).unwrap());
    for x in &feats {
        for v in &x.dense {
            bin.write_all(&v.to_le_bytes()).unwrap();
        }
    }
    let mut js = std::io::BufWriter::new(std::fs::File::create(format!("{out}.jsonl")).unwrap());
    for r in &ds.rows {
        let o: serde_json::Map<String, serde_json::Value> = r
            .outcomes
            .iter()
            .map(|(m, o)| (m.clone(), serde_json::json!([o.score, o.output_tokens])))
            .collect();
        writeln!(
            js,
            "{}",
            serde_json::json!({"id": r.id, "category": r.category, "source": r.source, "input_tokens": r.input_tokens, "outcomes": o})
        )
        .unwrap();
    }
    println!(
        "{} rows × {} dims; names: {:?}",
        feats.len(),
        spec.dense_len(),
        spec.dense_names()
    );
}
