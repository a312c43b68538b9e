//! The quality bar on a team's own traffic: what the gateway's shadow tests compare, and what
//! `tierwise quality` concludes from them. No I/O and no fits: the gateway links it for the
//! checks and the judge's prompt, the CLI for the report.
//!
//! # Layout
//! - [`stats`]: the betting test, the ratio test of paired scores and its bounds,
//!   Benjamini–Hochberg (shared with `tierwise quality plan` in `tierwise-eval`).
//! - [`check`]: checkable answers (tool calls, JSON field by field, a number, a label)
//!   compared without a judge.
//! - [`judge`]: the rubric prompt (`prompts/`), the judge request, verdict parsing, the two
//!   orders combined.
//! - [`report`]: shadow rows → per category × (served → candidate tier) verdicts.
//! - [`policy`]: safe verdicts → per-category routing rules, their diff, projected savings.
//! - [`html`]: the report as one self-contained page.

pub mod check;
pub mod html;
pub mod judge;
pub mod policy;
pub mod report;
pub mod stats;
