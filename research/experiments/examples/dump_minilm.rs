//! Dumps all-MiniLM-L6-v2 embeddings of each row's prompt (its first `BYTES` bytes) for
//! prototyping the router outside Rust, and times one-thread embedding at that length.
//!
//! `cargo run --release -p tierwise-research --example dump_minilm -- DATA_DIR [SPLIT] OUT_PREFIX BYTES`
//! writes OUT_PREFIX.minilm.f32 (rows × 384, little-endian), rows in file order.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    reason = "a developer tool"
)]

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use tierwise_embed::minilm::MiniLm;
use tierwise_eval::data;
use tierwise_router::learned::features::prompt_text;

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let (dir, split, out, bytes) = match a.len() {
        3 => (
            a[0].clone(),
            None,
            a[1].clone(),
            a[2].parse::<usize>().unwrap(),
        ),
        4 => (
            a[0].clone(),
            Some(a[1].clone()),
            a[2].clone(),
            a[3].parse::<usize>().unwrap(),
        ),
        _ => panic!("DATA_DIR [SPLIT] OUT_PREFIX BYTES"),
    };
    let ds = data::load(&PathBuf::from(dir), split.as_deref(), &mut |_| {}).unwrap();
    let m = MiniLm::load(&PathBuf::from("router/embed/all-minilm-l6-v2")).unwrap();
    let texts: Vec<String> = ds
        .rows
        .iter()
        .map(|r| {
            let t = prompt_text(&r.view);
            let mut cut = t.len().min(bytes);
            while !t.is_char_boundary(cut) {
                cut -= 1;
            }
            t[..cut].to_string()
        })
        .collect();
    // one-thread latency on the first 200 texts
    let mut ms: Vec<f64> = texts
        .iter()
        .take(200)
        .map(|t| {
            let s = Instant::now();
            let _ = m.embed(t);
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    println!(
        "{bytes} bytes: one text, 1 thread: p50 {:.2} ms, p99 {:.2} ms",
        ms[ms.len() / 2],
        ms[ms.len() * 99 / 100]
    );
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let embs = m.embed_parallel(&refs, 2);
    let mut f =
        std::io::BufWriter::new(std::fs::File::create(format!("{out}.minilm.f32")).unwrap());
    for e in &embs {
        let mut v = e.clone();
        v.resize(384, 0.0);
        for x in v {
            f.write_all(&x.to_le_bytes()).unwrap();
        }
    }
    println!("{} rows", embs.len());
}
