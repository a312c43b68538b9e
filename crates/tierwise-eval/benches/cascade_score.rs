//! Added latency of scoring one cascade answer (target ≤ 1 ms), one thread, on real answers
//! (the committed `fixtures/mmlu_pro_responses`, Llama-3.1-8B and Gemini-1.5-flash chain-of-thought
//! answers, ~100–600 tokens):
//! - `score_json/first`: request body → `Query`, response body → `Answer`, analyse, features,
//!   probability — everything the gateway runs for the first attempt;
//! - `score_json/with_previous`: the same for the second attempt (agreement with the first;
//!   the first answer is re-analysed too, an upper bound);
//! - `analysed/with_previous`: `analyse` + `score` with the request and the previous answer
//!   already analysed (what a runner that keeps its analyses pays per attempt).
//!
//! Run: `cargo bench -p tierwise-eval --bench cascade_score`.

#![allow(
    clippy::panic,
    reason = "a benchmark without its fixture or scorer cannot run"
)]

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use tierwise_router::cascade::{Answer, Query, Scorer, analyse};

fn cases() -> Vec<(Value, Value, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/mmlu_pro_responses");
    let ds = tierwise_eval::data::load(&dir, None, &mut |_| {})
        .unwrap_or_else(|e| panic!("fixture: {e}"));
    let chat = |t: &str| json!({"object": "chat.completion", "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": t}}]});
    ds.rows
        .iter()
        .take(100)
        .filter_map(|r| {
            let a = r
                .outcomes
                .get("Meta-Llama-3_1-8B-Instruct")?
                .response
                .as_deref()?;
            let b = r
                .outcomes
                .get("gemini-1.5-flash-002")?
                .response
                .as_deref()?;
            let req = json!({"model": "auto", "messages": r.view.messages});
            Some((req, chat(a), chat(b)))
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let scorer = Scorer::shipped().unwrap_or_else(|e| panic!("{e}"));
    let cases = cases();
    let mut i = 0;
    c.bench_function("score_json/first", |b| {
        b.iter(|| {
            let (req, a, _) = &cases[i % cases.len()];
            i += 1;
            black_box(scorer.score_json(req, a, &[]).ok())
        })
    });
    c.bench_function("score_json/with_previous", |b| {
        b.iter(|| {
            let (req, a, second) = &cases[i % cases.len()];
            i += 1;
            black_box(scorer.score_json(req, second, &[a]).ok())
        })
    });
    let pre: Vec<_> = cases
        .iter()
        .filter_map(|(req, a, second)| {
            let q = Query::from_body(req).ok()?;
            let first = analyse(&q, &Answer::from_response(a));
            Some((q, first, Answer::from_response(second)))
        })
        .collect();
    c.bench_function("analysed/with_previous", |b| {
        b.iter(|| {
            let (q, first, second) = &pre[i % pre.len()];
            i += 1;
            let s = analyse(q, second);
            black_box(scorer.score(q, &s, &[first]))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
