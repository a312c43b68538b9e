//! Experiments behind the router, cascade and tool-search choices: each example answers one
//! question (see `research/experiments/README.md`). Nothing here is shipped.
//!
//! # Layout
//! - `examples/compare_features.rs`: feature groups of the learned router, side by side.
//! - `examples/cascade_generalization.rs`: how the cascade's answer scorer generalizes.
//! - `examples/dump_features.rs`, `examples/dump_minilm.rs`: features and MiniLM embeddings
//!   for prototyping outside Rust (`research/router-encoders`).
//! - `examples/recall_lab.rs`: tool-search recall over k, with the misses.
