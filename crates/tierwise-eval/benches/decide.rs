//! Decision latency of the learned router on a ~1,000-token prompt, one thread:
//! - `estimate/no-embed`: featurize (word scan, hashing) + difficulty + per-tier estimates, from
//!   the request's signals (what `decide` adds on top of the signals the gateway computes anyway);
//! - `signals+estimate/no-embed/fresh` (the headline): `Signals::compute` (o200k count and the
//!   scans) + estimate for a prompt never seen before — every call gets a request whose text
//!   starts with a number no earlier call used, so the whole-text token memo always misses; the
//!   per-thread piece memo is warm (the words were seen before), as in a running gateway;
//! - `signals+estimate/no-embed/cold`: the same with the token memos emptied before each call
//!   (every piece goes through the BPE: the first request of a fresh process, or text whose
//!   words the process never saw);
//! - `signals+estimate/no-embed/repeat`: the same prompt every call, so the whole-text memo hits
//!   (a repeated long system prompt);
//! - `signals/…`: the parts of `Signals::compute` alone (tokens, scans), to see where time goes;
//! - `estimate/embed`: with the static embedding model, when `router/embed/tokenlearn-static-model-0.1.1` (or
//!   `$TIERWISE_EMBED_DIR`) holds it and the router file has an embedding model.
//!
//! Besides criterion's means, each case prints p50 / p99 of single calls (stderr).
//! Run: `cargo bench -p tierwise-eval --bench decide` (`TIERWISE_BENCH_NO_EMBED=1` skips the
//! embedding cases).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests, benches and examples may unwrap"
)]

use std::cell::RefCell;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use serde_json::json;
use tierwise_core::catalog::{Prices, Tier};
use tierwise_core::request::RequestView;
use tierwise_core::signals::{Hints, Signals};
use tierwise_router::QualityEstimator;
use tierwise_router::learned::LearnedRouter;

/// The allocator the `tierwise` binary (gateway and audit) runs with, so the figures are the
/// product's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
            prices: Prices::flat(
                rust_decimal::Decimal::ONE,
                rust_decimal::Decimal::ONE,
                rust_decimal::Decimal::ONE,
            ),
        })
        .collect()
}

/// Percentiles of single calls (criterion reports means): `calls` timed calls of `f`, each
/// after an untimed `setup` that returns its input (input and output are dropped untimed).
fn pct<T, R>(name: &str, calls: usize, mut setup: impl FnMut() -> T, mut f: impl FnMut(&T) -> R) {
    // `TIERWISE_BENCH_ONLY=NAME`: only the percentile lines whose name contains NAME (to
    // profile one case)
    if std::env::var("TIERWISE_BENCH_ONLY").is_ok_and(|only| !name.contains(&only)) {
        return;
    }
    let mut t: Vec<f64> = (0..calls)
        .map(|_| {
            let x = setup();
            let s = Instant::now();
            let r = black_box(f(black_box(&x)));
            let e = s.elapsed().as_secs_f64() * 1e6;
            drop((r, x));
            e
        })
        .collect();
    t.sort_by(f64::total_cmp);
    let at = |q: f64| t[((calls as f64 * q) as usize).min(calls - 1)];
    eprintln!(
        "{name}: p50 {:.1} µs, p99 {:.1} µs, min {:.1} µs ({calls} calls)",
        at(0.5),
        at(0.99),
        t[0]
    );
}

/// Requests never seen before: each has a number no earlier one had in front of the same text.
struct Fresh {
    text: String,
    next: usize,
}

impl Fresh {
    fn view(&mut self) -> RequestView {
        self.next += 1;
        let b = json!({"model": "auto", "messages": [{"role": "user", "content": format!("Request {}: {}", self.next, self.text)}]});
        RequestView::chat(&b).unwrap_or_else(|_| unreachable!())
    }
}

/// Calls per percentile line (`TIERWISE_BENCH_CALLS`, default 5000; fewer for a profiler).
fn calls() -> usize {
    std::env::var("TIERWISE_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n >= 5)
        .unwrap_or(5000)
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
    let fresh = RefCell::new(Fresh {
        text: p.clone(),
        next: 0,
    });
    let mut g = c.benchmark_group("learned");
    signal_benches(&mut g, &p, &view, &hints, &fresh);
    let router = match LearnedRouter::from_json(&text) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("no router from {}: {e}", file.display());
            return;
        }
    };
    eprintln!(
        "prompt: {} tokens, {} bytes; model: {}",
        signals.prompt_tokens,
        p.len(),
        router.model().features.label()
    );
    let tiers = tiers();
    let decide = |v: &RequestView| {
        let s = Signals::compute(v, &hints);
        router.estimate(v, &s, &tiers)
    };
    let new_view = || fresh.borrow_mut().view();
    let cold_view = || {
        tierwise_core::tokens::clear_memo();
        fresh.borrow_mut().view()
    };
    pct(
        "estimate/no-embed",
        calls(),
        || (),
        |_| router.estimate(&view, &signals, &tiers),
    );
    pct(
        "signals+estimate/no-embed/repeat",
        calls(),
        || (),
        |_| decide(&view),
    );
    pct("signals+estimate/no-embed/fresh", calls(), new_view, |v| {
        decide(v)
    });
    pct(
        "signals+estimate/no-embed/cold",
        calls() / 5,
        cold_view,
        |v| decide(v),
    );
    g.bench_function("estimate/no-embed", |b| {
        b.iter(|| router.estimate(&view, &signals, &tiers))
    });
    g.bench_function("signals+estimate/no-embed/repeat", |b| {
        b.iter(|| decide(&view))
    });
    g.bench_function("signals+estimate/no-embed/fresh", |b| {
        b.iter_batched(new_view, |v| (decide(&v), v), BatchSize::SmallInput)
    });
    g.bench_function("signals+estimate/no-embed/cold", |b| {
        b.iter_batched(cold_view, |v| (decide(&v), v), BatchSize::PerIteration)
    });
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
            pct(
                "estimate/embed",
                calls(),
                || (),
                |_| with.estimate(&view, &signals, &tiers),
            );
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
    fresh: &RefCell<Fresh>,
) {
    let new_view = || fresh.borrow_mut().view();
    pct(
        "signals/compute/repeat",
        calls(),
        || (),
        |_| Signals::compute(view, hints),
    );
    pct("signals/compute/fresh", calls(), new_view, |v| {
        Signals::compute(v, hints)
    });
    let new_text = || {
        format!("Request {}: {p}", {
            let mut f = fresh.borrow_mut();
            f.next += 1;
            f.next
        })
    };
    pct("signals/tokens::count/fresh", calls(), new_text, |t| {
        tierwise_core::tokens::count(t)
    });
    pct(
        "signals/code",
        calls(),
        || (),
        |_| tierwise_core::signals::looks_like_code(p),
    );
    pct(
        "signals/math",
        calls(),
        || (),
        |_| tierwise_core::signals::looks_like_math(p),
    );
    pct(
        "signals/hard_domain",
        calls(),
        || (),
        |_| tierwise_core::signals::hard_domain_terms(p),
    );
    pct(
        "signals/language",
        calls(),
        || (),
        |_| tierwise_core::signals::language(p),
    );
    g.bench_function("signals/compute/fresh", |b| {
        b.iter_batched(
            new_view,
            |v| (Signals::compute(&v, hints), v),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("signals/tokens::count/fresh", |b| {
        b.iter_batched(
            new_text,
            |t| (tierwise_core::tokens::count(&t), t),
            BatchSize::SmallInput,
        )
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
