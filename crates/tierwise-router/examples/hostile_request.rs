//! The worst-case CPU a request costs before the upstream call: JSON parse, request view,
//! hints, signals (o200k token counts, scanners) and the decision, for hostile bodies near the
//! default 4 MiB body limit. Run with `cargo run --release -p tierwise-router --example
//! hostile_request` (figures in docs/benchmarks.md, "Bounded work per request").
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    reason = "a benchmark's report"
)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tierwise_core::config::{Config, DEFAULT_TOML};
use tierwise_core::request::RequestView;
use tierwise_core::signals::{Hints, Signals};
use tierwise_router::Policy;

/// A deterministic pseudo-random generator (xorshift), so every run sees the same bodies.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn word(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| (b'a' + (self.next() % 26) as u8) as char)
            .collect()
    }
}

/// Hostile bodies of about `size` bytes.
fn bodies(size: usize) -> Vec<(&'static str, Vec<u8>)> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut words = String::with_capacity(size);
    while words.len() < size {
        let n = 3 + (rng.next() % 5) as usize;
        words.push_str(&rng.word(n));
        words.push(' ');
    }
    let mut unspaced = String::with_capacity(size);
    while unspaced.len() < size {
        unspaced.push_str(&rng.word(64));
    }
    let mut cjk = String::with_capacity(size);
    while cjk.len() < size {
        cjk.push(char::from_u32(0x4e00 + (rng.next() % 20_000) as u32).unwrap());
    }
    let digits: String = (0..size)
        .map(|i| (b'0' + (i * 7 % 10) as u8) as char)
        .collect();
    // `server.max_messages` (2048) messages sharing the body: the no-bounce floor routes up
    // to 8 earlier prefixes of the conversation too.
    let per = size / 2048;
    let many: Vec<Value> = (0..2048)
        .map(|i| {
            let mut text = String::with_capacity(per);
            while text.len() < per {
                let n = 3 + (rng.next() % 5) as usize;
                text.push_str(&rng.word(n));
                text.push(' ');
            }
            json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": text})
        })
        .collect();
    let chat =
        |text: &str| json!({"model": "auto", "messages": [{"role": "user", "content": text}]});
    vec![
        (
            "distinct short words",
            serde_json::to_vec(&chat(&words)).unwrap(),
        ),
        (
            "one unspaced run of letters",
            serde_json::to_vec(&chat(&unspaced)).unwrap(),
        ),
        ("CJK characters", serde_json::to_vec(&chat(&cjk)).unwrap()),
        ("digits", serde_json::to_vec(&chat(&digits)).unwrap()),
        (
            "2048 messages of words",
            serde_json::to_vec(&json!({"model": "auto", "messages": many})).unwrap(),
        ),
    ]
}

/// Everything the gateway does before the upstream call, bar the tool shaper.
fn route(body: &[u8], policy: &Policy) -> usize {
    let v: Value = serde_json::from_slice(body).unwrap();
    let view = RequestView::chat(&v).unwrap();
    let hints = Hints::from_metadata(&view);
    let signals = Signals::compute(&view, &hints);
    let d = tierwise_router::decide(&view, &signals, &hints, policy).unwrap();
    signals.prompt_tokens + d.tier.unwrap_or(0)
}

fn breakdown(body: &[u8], policy: &Policy) {
    let t = Instant::now();
    let v: Value = serde_json::from_slice(body).unwrap();
    let parse = t.elapsed();
    let view = RequestView::chat(&v).unwrap();
    let hints = Hints::from_metadata(&view);
    let t = Instant::now();
    let n = tierwise_core::tokens::count_messages(&view.messages);
    let tok = t.elapsed();
    let t = Instant::now();
    let signals = Signals::compute(&view, &hints);
    let sig = t.elapsed();
    let t = Instant::now();
    let c = tierwise_router::category::categorize(&view, &signals, &hints);
    let cat = t.elapsed();
    let t = Instant::now();
    let _ = tierwise_router::decide(&view, &signals, &hints, policy).unwrap();
    let dec = t.elapsed();
    println!(
        "  parse {parse:?} tokens {tok:?} ({n}) signals {sig:?} categorize {cat:?} ({}) decide {dec:?}",
        c.name
    );
}

fn main() {
    let config = Config::from_toml(DEFAULT_TOML, std::path::Path::new("."), &|_| None).unwrap();
    let policy = Policy::from_config(&config);
    tierwise_router::category::warm_up();
    let size = 3_500_000;
    println!(
        "body ≈ {:.1} MB; min / median of 5 runs, fresh process state per body",
        size as f64 / 1e6
    );
    for (name, body) in bodies(size) {
        let mut times: Vec<Duration> = (0..5)
            .map(|_| {
                tierwise_core::tokens::clear_memo();
                let t = Instant::now();
                std::hint::black_box(route(&body, &policy));
                t.elapsed()
            })
            .collect();
        times.sort();
        if std::env::var("BREAKDOWN").is_ok() {
            tierwise_core::tokens::clear_memo();
            breakdown(&body, &policy);
        }
        println!(
            "{name:<30} {:>8.1} ms {:>8.1} ms",
            times[0].as_secs_f64() * 1e3,
            times[2].as_secs_f64() * 1e3
        );
    }
}
