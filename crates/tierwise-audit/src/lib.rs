//! `tierwise audit`: what a team spends per category and tier, and what each lever would save.
//!
//! # Layout
//! - [`input`]: opening inputs (files, `-`, gzip) and detecting their format (JSONL call log,
//!   OpenAI usage export pages, tierwise's SQLite request log).
//! - [`call`]: one JSONL line → a [`call::Call`] (request view, served model, usage, time).
//! - [`category`]: the categorizer, `tierwise_router::category` (the one `serve` and `route`
//!   use; `metadata.category` overrides).
//! - [`prompt`]: the prompt as the provider's cache sees it (segments, prefixes, static-first
//!   layout), request shapes, and the tool-search estimate.
//! - [`cache_sim`]: the provider's prompt cache, simulated in time order with bounded state.
//! - [`agg`]: token sums per (model, service tier) per scenario; bounded shape table.
//! - [`engine`]: the streaming pipeline (reader → workers → time-ordered simulation). The
//!   routing what-if calls `tierwise_router::decide` — the function `serve` calls — with the
//!   policy the caller passes (the same one `serve` builds).
//! - [`store`]: rows of tierwise's request log as call-log lines.
//! - [`report`]: prices the sums (exact `Decimal`) into the [`report::Report`] `--json` prints.
//! - [`render`]: terminal tables; [`html`]: the self-contained HTML page with SVG charts.
//! - [`cascade_replay`]: opt-in (`--cascade`) second pass scoring the logged answers with the
//!   cascade's scorer (JSON key `cascade_replay`).

pub mod agg;
pub mod cache_sim;
pub mod call;
pub mod cascade_replay;
pub use tierwise_router::category;
pub mod engine;
pub mod error;
pub mod groups;
pub mod html;
pub mod input;
pub mod prompt;
pub mod render;
pub mod report;
pub mod store;

pub use engine::{Options, run};
pub use error::AuditError;
pub use input::InputSpec;
pub use report::Report;

use tierwise_router::Policy;

/// Reads `inputs`, audits them with `policy`, and prices the result.
pub fn audit(
    inputs: &[InputSpec],
    policy: &Policy,
    options: &Options,
    on_progress: &mut dyn FnMut(u64, u64),
) -> Result<Report, AuditError> {
    let totals = engine::run(inputs, policy, options, on_progress)?;
    report::build(&totals, policy, options)
}

/// The example workload's lines (`examples/workload.jsonl.gz`), for tests that compare a fast
/// path with its reference on realistic calls.
#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
fn test_workload() -> String {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/workload.jsonl.gz");
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap()),
        &mut text,
    )
    .unwrap();
    text
}
