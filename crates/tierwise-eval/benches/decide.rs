//! Decision latency of the learned router on a ~1,000-token prompt, one thread:
//! - `estimate/no-embed`: featurize (word scan, hashing) + difficulty + per-tier estimates, from
//!   the request's signals (what `decide` adds on top of the signals the gateway computes anyway);
//! - `signals+estimate/no-embed`: the same plus `Signals::compute` (two o200k passes);
//! - `estimate/embed`: with the static embedding model, when `router/embed/tokenlearn-static-model-0.1.1` (or
//!   `$TIERWISE_EMBED_DIR`) holds it and the router file has an embedding model.
//!
//! Run: `cargo bench -p tierwise-eval --bench decide`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests, benches and examples may unwrap"
)]

use std::path::PathBuf;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use tierwise_core::catalog::{Prices, Tier};
use tierwise_core::request::RequestView;
use tierwise_core::signals::{Hints, Signals};
use tierwise_router::QualityEstimator;
use tierwise_router::learned::LearnedRouter;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn prompt() -> String {
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/mmlu_pro/outcomes.jsonl"),
    )
    .unwrap_or_default();
    let mut out = String::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
        if let Some(c) = v.pointer("/messages/0/content").and_then(|c| c.as_str()) {
            out.push_str(c);
            out.push('\n');
        }
        if tierwise_core::tokens::count(&out) >= 1000 {
            break;
        }
    }
    out
}

fn tiers() -> Vec<Tier> {
    ["gpt-5.4-nano", "gpt-5.4-mini", "gpt-5.4", "gpt-5.5"]
        .iter()
        .map(|m| Tier {
            name: m.to_string(),
            model: m.to_string(),
            prices: Prices {
                input: rust_decimal::Decimal::ONE,
                cached_input: rust_decimal::Decimal::ONE,
                output: rust_decimal::Decimal::ONE,
            },
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let file = std::env::var("TIERWISE_BENCH_ROUTER")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("router/default.json"));
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let Ok(router) = LearnedRouter::from_json(&text) else {
        eprintln!("no router file at {}", file.display());
        return;
    };
    let p = prompt();
    let body = json!({"model": "auto", "messages": [{"role": "user", "content": p}]});
    let view = RequestView::chat(&body).unwrap_or_else(|_| unreachable!());
    let hints = Hints::default();
    let signals = Signals::compute(&view, &hints);
    eprintln!(
        "prompt: {} tokens; model: {}",
        signals.prompt_tokens,
        router.model().features.label()
    );
    let tiers = tiers();
    // percentiles of single decisions (criterion reports means)
    let pct = |name: &str, f: &dyn Fn() -> Vec<f64>| {
        let mut t: Vec<f64> = (0..3000)
            .map(|_| {
                let s = std::time::Instant::now();
                std::hint::black_box(f());
                s.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        t.sort_by(f64::total_cmp);
        eprintln!(
            "{name}: p50 {:.1} µs, p99 {:.1} µs (3000 calls)",
            t[1500], t[2970]
        );
    };
    pct("estimate/no-embed", &|| {
        router.estimate(&view, &signals, &tiers)
    });
    let mut g = c.benchmark_group("learned");
    g.bench_function("estimate/no-embed", |b| {
        b.iter(|| router.estimate(&view, &signals, &tiers))
    });
    g.bench_function("signals+estimate/no-embed", |b| {
        b.iter(|| {
            let s = Signals::compute(&view, &hints);
            router.estimate(&view, &s, &tiers)
        })
    });
    let dir = std::env::var_os("TIERWISE_EMBED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("router/embed/tokenlearn-static-model-0.1.1"));
    if let Ok(e) = tierwise_embed::Embedder::load(&dir) {
        let e = Arc::new(e);
        let e2 = Arc::clone(&e);
        let with =
            router
                .clone()
                .with_embedder(e.name(), e.dim(), Arc::new(move |t: &str| e2.embed(t)));
        if with.model().features.embedding.is_some() {
            pct("estimate/embed", &|| with.estimate(&view, &signals, &tiers));
            g.bench_function("estimate/embed", |b| {
                b.iter(|| with.estimate(&view, &signals, &tiers))
            });
        }
        g.bench_function("embed-only", |b| b.iter(|| e.embed(&p)));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
