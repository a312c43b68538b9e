//! Decision latency of the learned router on a ~1,000-token prompt, one thread:
//! - `estimate/no-embed`: featurize (word scan, hashing) + difficulty + per-tier estimates, from
//!   the request's signals (what `decide` adds on top of the signals the gateway computes anyway);
//! - `signals+estimate/no-embed`: the same plus `Signals::compute` (one o200k pass), the
//!   decision issue 4 budgets (≤ 50 µs p99 including tokenization); the prompt is the same every
//!   iteration, so repeated long texts hit the token-count memo as they do in a gateway;
//! - `signals+estimate/no-embed/fresh`: a prompt never seen before every iteration (a new number
//!   in front of the same 1k tokens): the whole-text memo misses, pieces hit;
//! - `signals/…`: the parts of `Signals::compute` alone (tokens, scans), to see where time goes;
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
    let p = prompt();
    let body = json!({"model": "auto", "messages": [{"role": "user", "content": p}]});
    let view = RequestView::chat(&body).unwrap_or_else(|_| unreachable!());
    let hints = Hints::default();
    let signals = Signals::compute(&view, &hints);
    let mut g = c.benchmark_group("learned");
    signal_benches(&mut g, &p, &view, &hints);
    let router = match LearnedRouter::from_json(&text) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("no router from {}: {e}", file.display());
            return;
        }
    };
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
    pct("signals+estimate/no-embed", &|| {
        let s = Signals::compute(&view, &hints);
        router.estimate(&view, &s, &tiers)
    });
    // distinct prompts, each seen once per 3000 calls (more than fit in nothing but the memo)
    let fresh: Vec<RequestView> = (0..3000)
        .map(|i| {
            let b = json!({"model": "auto", "messages": [{"role": "user", "content": format!("Request {i}: {p}")}]});
            RequestView::chat(&b).unwrap_or_else(|_| unreachable!())
        })
        .collect();
    let next = std::cell::Cell::new(0usize);
    let fresh_call = || {
        let i = next.get();
        next.set((i + 1) % fresh.len());
        let v = &fresh[i];
        let s = Signals::compute(v, &hints);
        router.estimate(v, &s, &tiers)
    };
    pct("signals+estimate/no-embed/fresh", &fresh_call);
    g.bench_function("estimate/no-embed", |b| {
        b.iter(|| router.estimate(&view, &signals, &tiers))
    });
    g.bench_function("signals+estimate/no-embed", |b| {
        b.iter(|| {
            let s = Signals::compute(&view, &hints);
            router.estimate(&view, &s, &tiers)
        })
    });
    g.bench_function("signals+estimate/no-embed/fresh", |b| b.iter(fresh_call));
    if std::env::var_os("TIERWISE_BENCH_NO_EMBED").is_some() {
        g.finish();
        return;
    }
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

/// `Signals::compute` and its parts alone: where the time of a decision goes.
fn signal_benches(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    p: &str,
    view: &RequestView,
    hints: &Hints,
) {
    let pct = |name: &str, f: &dyn Fn()| {
        let mut t: Vec<f64> = (0..3000)
            .map(|_| {
                let s = std::time::Instant::now();
                f();
                s.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        t.sort_by(f64::total_cmp);
        eprintln!(
            "{name}: p50 {:.1} µs, p99 {:.1} µs (3000 calls)",
            t[1500], t[2970]
        );
    };
    pct("signals/compute", &|| {
        std::hint::black_box(Signals::compute(view, hints));
    });
    g.bench_function("signals/compute", |b| {
        b.iter(|| Signals::compute(view, hints))
    });
    g.bench_function("signals/tokens::count", |b| {
        b.iter(|| tierwise_core::tokens::count(p))
    });
    g.bench_function("signals/o200k-encode", |b| {
        b.iter(|| tierwise_core::tokens::encode(p).len())
    });
    g.bench_function("signals/code", |b| {
        b.iter(|| tierwise_core::signals::looks_like_code(p))
    });
    g.bench_function("signals/math", |b| {
        b.iter(|| tierwise_core::signals::looks_like_math(p))
    });
    g.bench_function("signals/hard_domain", |b| {
        b.iter(|| tierwise_core::signals::hard_domain_terms(p))
    });
    g.bench_function("signals/language", |b| {
        b.iter(|| tierwise_core::signals::language(p))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
