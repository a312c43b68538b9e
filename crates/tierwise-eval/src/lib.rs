//! Offline evaluation of routers on outcome data: what each routing policy would have cost and
//! scored on queries whose answers from every model are recorded.
//!
//! # Layout
//! - [`data`]: outcome data sets (`outcomes*.jsonl[.gz]` + `models.json`), malformed lines
//!   counted with their line numbers.
//! - [`ladder`]: a ladder of models over a data set (per row and tier: Decimal cost, score), the
//!   running [`ladder::Tally`] of an operating point and the threshold sweep — the walk any
//!   policy (router, cascade) is scored by.
//! - [`metrics`]: PGR, APGR, CPT(50%/80%), savings at 95% quality; the random baseline.
//! - [`report`]: the report (curve + metrics + baselines: each model, random, oracle) as JSON,
//!   text and a self-contained HTML/SVG chart.
//! - [`learn`]: training sets from data sets, fitting the learned router, scoring, K-fold CV.
//! - [`cascade`]: the offline cascade — walk each row's recorded answers up the ladder, score
//!   them, accept or escalate (cost counts every attempt); threshold sweep and FrugalGPT-style
//!   optimisation; the scorer's training set.
//! - [`cascade_eval`]: `eval`, `train` and `calibrate --cascade` (cascade report, scorer, plan).
//! - [`router_eval`]: `eval` — a router (shipped, a file, cross-validated, oracle, random) on
//!   outcome data, with its report and per-row scores.
//! - [`training`]: `train` — the learned router's file and its default threshold.
//! - [`calibration`]: `calibrate` — thresholds for a target, written into the config.
//! - [`config_edit`]: writing calibrated thresholds into a config file as a small text edit.
//! - [`quality_plan`]: `quality plan` — per category, the cheapest model proven to clear a quality
//!   bar on a seeded shadow sample (betting tests, fixed-sequence, Benjamini–Hochberg).
//! - [`progress`]: the [`Progress`] sink the drivers report to (the CLI's bar, or [`Quiet`]);
//!   [`RunError`]: the drivers' error (an input that cannot be used, or the file that failed).
//!
//! The drivers take options and return reports; the CLI only parses, calls one and prints.

pub mod calibration;
pub mod cascade;
pub mod cascade_eval;
pub mod config_edit;
pub mod data;
mod error;
pub mod ladder;
pub mod learn;
pub mod metrics;
pub mod progress;
pub mod quality_plan;
pub mod report;
pub mod router_eval;
pub mod training;

pub use error::{RunError, write_file};
pub use progress::{Progress, Quiet};
