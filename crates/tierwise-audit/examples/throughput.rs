//! Audit throughput on a call log, in-process (the engine without the CLI around it), for
//! profiling the pipeline:
//!
//! ```text
//! cargo run --release -p tierwise-audit --example throughput -- LOG [THREADS [REPORT.json]]
//! ```
//!
//! The policy is the embedded default config's (what `tierwise audit` uses without a config
//! file). The CLI figure is `crates/tierwise-audit/benches/bench_1m.sh`.

#![expect(clippy::print_stdout, reason = "a measuring script prints its figures")]
#![expect(clippy::unwrap_used, reason = "a script: fail loudly")]

use std::path::PathBuf;
use std::time::Instant;

use tierwise_audit::{InputSpec, Options, audit};
use tierwise_core::Config;
use tierwise_router::Policy;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let log = PathBuf::from(args.first().cloned().unwrap_or_default());
    let threads: usize = args.get(1).map_or(0, |t| t.parse().unwrap());
    let config = Config::embedded(&|_| None).unwrap();
    let policy = Policy::from_config(&config);
    let mut options = Options::from_config(&config);
    options.threads = threads;
    let start = Instant::now();
    let report = audit(&[InputSpec::Path(log)], &policy, &options, &mut |_, _| {}).unwrap();
    let secs = start.elapsed().as_secs_f64();
    if let Some(out) = args.get(2) {
        std::fs::write(out, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    }
    println!(
        "{} calls in {secs:.2} s: {:.0} calls/s; spend {} → {} after the what-if",
        report.requests,
        report.requests as f64 / secs,
        report.spend_usd,
        report.what_if.after_tool_search_usd,
    );
}
