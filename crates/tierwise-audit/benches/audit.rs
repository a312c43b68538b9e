//! Audit throughput on the example workload (`examples/workload.jsonl.gz`, 2,400 real-prompt
//! calls, repeated with unique user turns to 20,000 calls), 1 and 2 worker threads.
//!
//! ```text
//! cargo bench -p tierwise-audit --bench audit
//! ```
//!
//! The 1M-call figure (calls/s and peak RSS of the whole CLI) comes from
//! `crates/tierwise-audit/benches/bench_1m.sh`.

#![allow(clippy::unwrap_used, reason = "a benchmark: fail loudly")]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tierwise_audit::{InputSpec, Options, audit};
use tierwise_core::Config;
use tierwise_router::Policy;

const CALLS: usize = 20_000;

fn log_file(dir: &std::path::Path) -> PathBuf {
    let template =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/workload.jsonl.gz");
    let reader = BufReader::new(flate2::read::MultiGzDecoder::new(
        std::fs::File::open(template).unwrap(),
    ));
    let lines: Vec<String> = reader.lines().map(Result::unwrap).collect();
    let path = dir.join("bench.jsonl");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for i in 0..CALLS {
        // a unique first user turn: no two calls are the same text
        let line = lines[i % lines.len()].replacen(
            "{\"role\": \"user\", \"content\": \"",
            &format!("{{\"role\": \"user\", \"content\": \"#{i} "),
            1,
        );
        writeln!(out, "{line}").unwrap();
    }
    out.flush().unwrap();
    path
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = log_file(dir.path());
    let config = Config::embedded(&|_| None).unwrap();
    let policy = Policy::from_config(&config);
    let mut group = c.benchmark_group("audit");
    group.sample_size(10);
    group.throughput(Throughput::Elements(CALLS as u64));
    for threads in [1usize, 2] {
        let mut options = Options::from_config(&config);
        options.threads = threads;
        let inputs = [InputSpec::Path(path.clone())];
        group.bench_function(format!("workload_x{CALLS}_threads{threads}"), |b| {
            b.iter(|| audit(&inputs, &policy, &options, &mut |_, _| {}).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
