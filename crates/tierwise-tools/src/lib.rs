//! Tool search: send only the tool schemas a request needs.
//!
//! A request that carries many tools (agents, MCP servers) pays for every schema on every call.
//! This crate indexes a request's tools and keeps the few the conversation needs, plus every
//! tool it must not lose; the gateway calls it, `tierwise tools eval` measures it offline.
//! Everything here is pure and synchronous except [`eval::Dataset::load`] (reads files).
//!
//! # Layout
//! - [`text`]: identifier splitting (`getWeatherForecast` → get weather forecast), stop words,
//!   Snowball stemming, clauses of a multi-step request.
//! - [`lexicon`]: related-word groups for query expansion (`lexicon.txt`).
//! - [`index`]: [`ToolIndex`] — BM25 over name, description and parameter names/descriptions,
//!   optional sentence embeddings (any [`TextEmbedder`]; the binary passes the shared
//!   `tierwise-embed` model). Robust to invalid tools (see the module docs).
//! - [`query`]: [`Query`] (weighted channels: latest user turn, its clauses, earlier turns) and
//!   [`rank`] with a [`Method`] (`bm25` baseline, `lexical` default, `hybrid`).
//! - [`select`](mod@select): [`select()`] — the pure decision: kept tools in original order with reasons,
//!   tokens offered vs sent, from the `[tools]` config ([`SelectionPolicy`]).
//! - [`tool_search`]: the `tool_search` function the gateway adds and answers itself.
//! - [`embedders`]: the shared `tierwise-embed` models (MiniLM, static) as embedders.
//! - [`embed_cache`]: tool vectors cached on disk by model and catalog fingerprint.
//! - [`eval`]: data set loading and recall / token-reduction evaluation.

pub mod embed_cache;
pub mod embedders;
pub mod eval;
pub mod index;
pub mod lexicon;
pub mod query;
pub mod select;
pub mod text;
pub mod tool_search;

/// Builds the lazily initialised tables (o200k ranks, stemmer, clause splitter, lexicon) so the
/// first request does not pay for them; call once at start-up.
pub fn warm_up() {
    let _ = tierwise_core::tokens::count("warm up");
    let _ = text::clauses("warm up the tables. then go");
    let _ = lexicon::related("warm");
}

pub use index::{TextEmbedder, ToolEntry, ToolIndex, ToolStatus};
pub use query::{Method, Query, rank, top, top_scored};
pub use select::{
    Adaptive, Kept, Reason, Selection, SelectionPolicy, adaptive_k, relevant, select, select_with,
};
