//! Recall lab: the curve over k for one data set and method, compact, plus (with `--misses K`)
//! each query whose worst gold tool ranks at or below K.
//!
//! `cargo run --release -p tierwise-research --example recall_lab -- DIR [bm25|lexical|hybrid]
//!  [--all-tools] [--misses K]` (hybrid loads MiniLM from `TIERWISE_MINILM_DIR` or
//! `router/embed/all-minilm-l6-v2`).
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a diagnostic example"
)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// MiniLM with a memo of query vectors on disk (`/tmp/recall_lab_queries.json`), so weight
/// experiments do not re-embed the same queries.
struct Memo {
    inner: embedders::MiniLmEmbedder,
    memo: Mutex<HashMap<String, Vec<f32>>>,
}

impl TextEmbedder for Memo {
    fn embed_text(&self, text: &str) -> Vec<f32> {
        self.embed_texts(&[text]).remove(0)
    }
    fn embed_texts(&self, texts: &[&str]) -> Vec<Vec<f32>> {
        if texts.len() > 64 {
            return self.inner.embed_texts(texts);
        }
        let missing: Vec<&str> = {
            let m = self.memo.lock().unwrap();
            texts
                .iter()
                .copied()
                .filter(|t| !m.contains_key(*t))
                .collect()
        };
        if !missing.is_empty() {
            let got = self.inner.embed_texts(&missing);
            let mut m = self.memo.lock().unwrap();
            for (t, v) in missing.iter().zip(got) {
                m.insert((*t).to_string(), v);
            }
        }
        let m = self.memo.lock().unwrap();
        texts.iter().map(|t| m[*t].clone()).collect()
    }
    fn model_id(&self) -> String {
        self.inner.model_id()
    }
}
const MEMO: &str = "/tmp/recall_lab_queries.json";

use tierwise_tools::eval::{Dataset, EvalOptions, evaluate};
use tierwise_tools::{Method, Query, TextEmbedder, ToolIndex, embedders, rank};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(&args[1]);
    let method = match args.get(2).map(String::as_str) {
        Some("bm25") => Method::Bm25,
        Some("hybrid") => Method::Hybrid,
        _ => Method::Lexical,
    };
    let all = args.iter().any(|a| a == "--all-tools");
    let misses: Option<usize> = args
        .iter()
        .position(|a| a == "--misses")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok());
    let data = Dataset::load(&dir).unwrap();
    let embedder = (method == Method::Hybrid).then(|| Memo {
        inner: embedders::MiniLmEmbedder::load(&embedders::minilm_dir().expect("no MiniLM model"))
            .unwrap(),
        memo: Mutex::new(
            std::fs::read_to_string(MEMO)
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default(),
        ),
    });
    let t = Instant::now();
    let report = evaluate(
        &data,
        &EvalOptions {
            k: 24,
            keep_share: 0.0,
            method,
            threshold: 0,
            whole_catalog: all,
            catalog_size: None,
            cache_dir: embedder.as_ref().map(|e| e.inner.cache_dir().to_path_buf()),
        },
        embedder.as_ref().map(|e| e as &dyn TextEmbedder),
        &mut || {},
    );
    let curve: Vec<String> = report
        .curve
        .iter()
        .map(|p| {
            format!(
                "@{} {:.1}% ({:.2}%)",
                p.k,
                p.recall * 100.0,
                p.reduction * 100.0
            )
        })
        .collect();
    println!(
        "{} {} all={all}: {} | build {:.0} ms, select {:.0} µs mean, total {:.1} s",
        dir.display(),
        method.as_str(),
        curve.join("  "),
        report.timing.index_build_ms,
        report.timing.select_us_mean,
        t.elapsed().as_secs_f64()
    );
    if let Some(e) = &embedder {
        let m = e.memo.lock().unwrap();
        std::fs::write(MEMO, serde_json::to_string(&*m).unwrap()).unwrap();
    }
    let Some(k) = misses else { return };
    let index = match &embedder {
        Some(e) => tierwise_tools::embed_cache::build(&data.tools, e, Some(e.inner.cache_dir())),
        None => ToolIndex::build(&data.tools),
    };
    for q in &data.queries {
        let query = Query::from_view(&q.view);
        let ranking = rank(
            &index,
            &query,
            method,
            embedder.as_ref().map(|e| e as &dyn TextEmbedder),
            None,
        );
        let ranks: Vec<(String, usize)> = q
            .gold
            .iter()
            .map(|g| {
                let r = index
                    .positions(g)
                    .iter()
                    .filter_map(|p| ranking.iter().position(|x| x == p))
                    .min()
                    .unwrap_or(usize::MAX);
                (g.clone(), r)
            })
            .collect();
        if ranks.iter().any(|r| r.1 >= k) {
            println!("{} | {}", q.id, q.view.last_user_text().replace('\n', " "));
            for (g, r) in &ranks {
                println!("    {r:>5} {g}");
            }
        }
    }
}
