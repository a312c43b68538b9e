//! Developer tools: nothing here is linked into the shipped `tierwise` binary (the CLI's
//! `bench` command exists only in a build with `--features bench`).
//!
//! # Layout
//! - [`gateway_bench`]: the latency the gateway adds over calling the mock upstream directly
//!   (`tierwise bench gateway`).
//! - `src/bin/make_workload.rs`: builds `examples/workload.jsonl.gz` from the shared data sets
//!   (`cargo run --release -p tierwise-dev --bin make_workload -- --data ../shared/data --out …`).
//! - `src/bin/gen_bench_log.rs`: a large call log for the audit benchmark from the example
//!   workload (`cargo run --release -p tierwise-dev --bin gen_bench_log -- --calls N --out …`).

pub mod gateway_bench;
