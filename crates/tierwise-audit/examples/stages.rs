//! Where a worker's time goes, per call, on one thread: the stages of `engine`'s per-call work
//! timed separately over the first N lines of a call log.
//!
//! ```text
//! cargo run --release -p tierwise-audit --example stages -- LOG [N]
//! ```
//!
//! Stages: parse (line → `Call`), hints + `Signals::compute`, categorize, decide, prompt facts
//! (segments, prefixes, shape, tool search), drop (freeing the call). The lines are read into
//! memory first; the reader thread and the time-ordered cache simulation are not included (the
//! whole pipeline's figure is `benches/bench_1m.sh`).

#![expect(clippy::print_stdout, reason = "a measuring script prints its figures")]
#![expect(clippy::unwrap_used, reason = "a script: fail loudly")]

use std::io::BufRead;
use std::time::{Duration, Instant};

use tierwise_audit::call::parse_line;
use tierwise_audit::category::categorize;
use tierwise_audit::prompt::{ToolMemo, facts_counted};
use tierwise_core::Config;
use tierwise_core::signals::{Hints, Signals};
use tierwise_router::{Policy, decide};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let log = args.first().cloned().unwrap_or_default();
    let n: usize = args.get(1).map_or(50_000, |t| t.parse().unwrap());
    let config = Config::embedded(&|_| None).unwrap();
    let policy = Policy::from_config(&config);
    let options = tierwise_audit::Options::from_config(&config);
    let reader = std::io::BufReader::new(std::fs::File::open(&log).unwrap());
    let lines: Vec<Vec<u8>> = reader.split(b'\n').take(n).map(Result::unwrap).collect();
    let bytes: usize = lines.iter().map(Vec::len).sum();
    let mut memo = ToolMemo::default();
    let names = ["parse", "signals", "categorize", "decide", "facts", "drop"];
    let mut t = [Duration::ZERO; 6];
    let mut calls = 0usize;
    // warm up the tokenizer and the regexes
    if let Some(Ok(mut c)) = lines.first().map(|l| parse_line(l)) {
        let h = Hints::from_metadata(&c.view);
        let s = Signals::compute(&c.view, &h);
        let _ = categorize(&c.view, &s, &h);
        c.view.model = "auto".to_string();
        let _ = decide(&c.view, &s, &h, &policy);
    }
    let all = Instant::now();
    for line in &lines {
        let a = Instant::now();
        let Ok(mut call) = parse_line(line) else {
            continue;
        };
        let b = Instant::now();
        let hints = Hints::from_metadata(&call.view);
        let signals = Signals::compute(&call.view, &hints);
        let c = Instant::now();
        let category = categorize(&call.view, &signals, &hints);
        let d = Instant::now();
        call.view.model = "auto".to_string();
        let decision = call
            .has_content
            .then(|| decide(&call.view, &signals, &hints, &policy));
        let e = Instant::now();
        let f = facts_counted(
            &call.view,
            &mut memo,
            &options.tool_search,
            Some(signals.prompt_tokens),
        );
        let g = Instant::now();
        drop((call, signals, category, decision, f));
        let h = Instant::now();
        for (slot, (from, to)) in t
            .iter_mut()
            .zip([(a, b), (b, c), (c, d), (d, e), (e, g), (g, h)])
        {
            *slot += to - from;
        }
        calls += 1;
    }
    let total = all.elapsed();
    let per = |d: Duration| d.as_secs_f64() * 1e6 / calls.max(1) as f64;
    println!(
        "{calls} calls, {:.0} bytes/call, {:.1} µs/call on one thread ({:.0} calls/s)",
        bytes as f64 / lines.len().max(1) as f64,
        per(total),
        calls as f64 / total.as_secs_f64()
    );
    for (name, d) in names.iter().zip(t) {
        println!(
            "  {name:<10} {:>6.2} µs  {:>5.1}%",
            per(d),
            100.0 * d.as_secs_f64() / total.as_secs_f64()
        );
    }
}
