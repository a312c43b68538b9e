//! Index build time (5,000 tools) and selection time per request (500 and 5,000 tools; the
//! default `[tools]` policy with its adaptive k, and a fixed k of 16).
//!
//! Tools are the committed fixture catalogs (`fixtures/*/tools.jsonl`), repeated with renamed
//! copies up to the size wanted; requests are the fixture's queries.
//! With the MiniLM model present (`scripts/fetch-minilm.sh`, or `TIERWISE_MINILM_DIR`), also
//! hybrid selection per request on 500 tools (the conversation's embedding included; tool
//! vectors computed once before timing).
//! Run: `cargo bench -p tierwise-tools --bench select`.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use tierwise_core::config::ToolMode;
use tierwise_core::request::RequestView;
use tierwise_tools::{
    Method, SelectionPolicy, TextEmbedder, ToolIndex, embedders, select, select_with,
};

fn fixture_tools() -> Vec<Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut out = Vec::new();
    for set in ["seal_tools_mini", "bfcl_mini"] {
        let text = std::fs::read_to_string(dir.join(set).join("tools.jsonl")).unwrap_or_default();
        out.extend(
            text.lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok()),
        );
    }
    out
}

/// `n` tools: the fixture tools, then renamed copies (`name_2`, `name_3`, …).
fn catalog(n: usize) -> Vec<Value> {
    let base = fixture_tools();
    if base.is_empty() {
        return Vec::new();
    }
    (0..n)
        .map(|i| {
            let mut t = base[i % base.len()].clone();
            let copy = i / base.len();
            if copy > 0
                && let Some(name) = t.pointer_mut("/function/name")
            {
                *name = json!(format!("{}_{}", name.as_str().unwrap_or("tool"), copy + 1));
            }
            t
        })
        .collect()
}

fn requests() -> Vec<RequestView> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/seal_tools_mini/queries.jsonl");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|q| {
            RequestView::chat(&json!({"model": "auto", "messages": q["messages"]})).ok()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    tierwise_tools::warm_up();
    for n in [500, 5000] {
        let tools = catalog(n);
        c.bench_function(&format!("index build, {n} tools"), |b| {
            b.iter(|| ToolIndex::build(black_box(&tools)))
        });
    }

    let policy = SelectionPolicy {
        mode: ToolMode::Prune,
        threshold: 16,
        top_k: 16,
        pinned: vec![],
        method: Method::Lexical,
        keep_share: 0.0,
        adaptive: tierwise_tools::Adaptive::OFF,
    };
    // The default `[tools]` policy: lexical, adaptive k (floor 80 of 5,000 tools).
    let default_policy = tierwise_core::Config::embedded(&|_: &str| None)
        .map(|c| SelectionPolicy::from_config(&c.tools))
        .unwrap_or_else(|_| policy.clone());
    let reqs = requests();
    for n in [500, 5000] {
        let index = ToolIndex::build(&catalog(n));
        let mut i = 0;
        c.bench_function(
            &format!("select per request, {n} tools, default config"),
            |b| {
                b.iter(|| {
                    i = (i + 1) % reqs.len().max(1);
                    reqs.get(i)
                        .map(|r| select(&index, black_box(r), &default_policy))
                })
            },
        );
    }
    for n in [500, 5000] {
        let index = ToolIndex::build(&catalog(n));
        let mut i = 0;
        c.bench_function(&format!("select per request, {n} tools, lexical"), |b| {
            b.iter(|| {
                i = (i + 1) % reqs.len().max(1);
                reqs.get(i).map(|r| select(&index, black_box(r), &policy))
            })
        });
    }

    let dir = embedders::minilm_dir().or_else(|| {
        let d = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../")
            .join(embedders::MINILM_DIR);
        embedders::is_bert_dir(&d).then_some(d)
    });
    let Some(e) = dir.and_then(|d| embedders::MiniLmEmbedder::load(&d).ok()) else {
        return;
    };
    let hybrid = SelectionPolicy {
        method: Method::Hybrid,
        ..policy
    };
    let index = ToolIndex::build_with(&catalog(500), Some(&e as &dyn TextEmbedder));
    let mut i = 0;
    let mut group = c.benchmark_group("hybrid");
    group.sample_size(10);
    group.bench_function("select per request, 500 tools, hybrid (MiniLM)", |b| {
        b.iter(|| {
            i = (i + 1) % reqs.len().max(1);
            reqs.get(i)
                .map(|r| select_with(&index, black_box(r), &hybrid, Some(&e as &dyn TextEmbedder)))
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
