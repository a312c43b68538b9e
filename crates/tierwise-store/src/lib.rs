//! The store: the request log (one row per gateway request), virtual keys, teams, budget and
//! rate windows — in SQLite (bundled, embedded; the default) or PostgreSQL (shared by replicas).
//!
//! # Layout
//! - [`backend`]: the [`Store`] trait both backends implement, [`open`] by [`Location`], and how
//!   to add a table to both backends.
//! - [`sqlite`] / [`postgres`]: the two backends, each with its migrations in code
//!   ([`schema`] holds SQLite's).
//! - [`RequestRow`]: the row, public and documented field by field: `tierwise audit --store`
//!   reads it back through [`LogReader`].
//! - [`writer`]: [`RequestLog`], the write side, the same for both backends. The gateway's hot
//!   path only pushes a row into a bounded channel; one writer thread drains it and inserts in
//!   batches, one transaction per batch; while the database is down it keeps rows in memory
//!   (up to `max_buffered`, then drops the oldest, counted) and retries with backoff. `flush`
//!   waits for everything queued so far; `close` drains and joins the thread.
//! - [`reader`]: [`LogReader`], the read side: rows in time order, with an optional time window,
//!   streamed through a callback (constant memory) or collected.
//! - [`keys`]: keys (`tw-…`, only a SHA-256 hash stored), teams, limits.
//! - [`budget`]: UTC day/month windows, reservations and reconciliation (the overspend bound).
//! - [`shadow`]: [`ShadowLog`], the shadow-test results (`shadow_results`), written by the
//!   gateway's shadow runner and read by `tierwise quality`.
//!
//! Money is `rust_decimal::Decimal` (exact decimal text in SQLite, `NUMERIC` in PostgreSQL);
//! times are UTC.

pub mod backend;
pub mod budget;
pub mod keys;
pub mod postgres;
pub mod reader;
pub mod schema;
pub mod shadow;
pub mod sqlite;
pub mod writer;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

pub use backend::{CreatedKey, Location, RateCount, Store, open};
pub use reader::{LogReader, TimeRange};
pub use shadow::{ShadowLog, ShadowMethod, ShadowRow, ShadowVerdict};
pub use writer::{LogStats, RequestLog, WriterOptions};

/// One request through the gateway, as logged.
///
/// Rows are written for every request that reaches a proxy endpoint, including those the gateway
/// rejects (bad JSON, unknown model, body too large) and those the upstream fails: the status
/// says which. Prompts and answers are only kept when `log.store_bodies = true`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRow {
    /// UUID v7 (time-ordered); also sent to the client as `x-tierwise-request-id`.
    pub id: Uuid,
    /// When the gateway received the request (UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// `chat.completions` or `responses`.
    pub endpoint: String,
    /// The `model` the client sent (`auto`, a tier name, a model id); empty if unreadable.
    pub requested_model: String,
    /// Name of the tier that answered (or was last tried); `none` for a model outside the ladder
    /// or a request rejected before routing.
    pub tier: String,
    /// The model id sent upstream for the final attempt; empty if nothing was sent.
    pub model: String,
    /// The router's short reason (e.g. `rule code (code) → standard`).
    pub reason: String,
    /// The request's category: the hint (`x-tierwise-category` / `metadata.category`,
    /// normalised), else the categorizer's; `None` for a request rejected before routing.
    pub category: Option<String>,
    /// Where [`Self::category`] came from: `hint` or `categorizer` (rows of logs written before
    /// the column existed read `hint` when they have a category).
    #[serde(default)]
    pub category_source: Option<String>,
    /// Caller role hint (`x-tierwise-role` / `metadata.role`), e.g. `sub-agent`.
    pub role: Option<String>,
    /// Dispatch mode the router chose: `sync`, `flex`, `batch` or `cascade`.
    pub mode: String,
    /// Service tier the provider billed (`default`, `flex`, `priority`, `batch`).
    pub service_tier: String,
    /// All prompt tokens, cached ones included.
    pub input_tokens: u64,
    /// The part of `input_tokens` read from the provider's prompt cache.
    pub cached_tokens: u64,
    /// All completion tokens, reasoning ones included.
    pub output_tokens: u64,
    /// The part of `output_tokens` spent on hidden reasoning.
    pub reasoning_tokens: u64,
    /// True when the upstream reported no usage and the counts are o200k estimates.
    pub usage_estimated: bool,
    /// Exact cost in USD of this call; `None` when the model is unpriced (never guessed as 0).
    pub cost_usd: Option<Decimal>,
    /// What the same usage would have cost on the baseline tier (default service tier).
    pub baseline_cost_usd: Option<Decimal>,
    /// Wall time from request received to the last byte sent, in milliseconds.
    pub latency_ms: f64,
    /// HTTP status returned to the client; 499 when the client went away mid-stream.
    pub status: u16,
    /// Whether the response was streamed (SSE).
    pub streamed: bool,
    /// Upstream calls made (retries and fallbacks included); 0 if none.
    pub attempts: u32,
    /// Tier names tried, in order (fallbacks show up here).
    pub tiers_tried: Vec<String>,
    /// Error message when the request failed (never contains the API key).
    pub error: Option<String>,
    /// The request body as received, only with `log.store_bodies = true`.
    pub request_body: Option<String>,
    /// The response body (for streams: the assembled text), only with `log.store_bodies = true`.
    pub response_body: Option<String>,
    /// Tools offered by the client vs sent upstream, and their schema tokens (schema v2; 0 in
    /// rows written before).
    #[serde(default)]
    pub tools: ToolCounts,
    /// The virtual key that made the call (`key_…`), with `[auth] mode = "keys"`; `None` in
    /// open mode and in rows written before schema 4.
    #[serde(default)]
    pub key_id: Option<String>,
    /// That key's team, if it has one.
    #[serde(default)]
    pub team: Option<String>,
}

/// A request's tools: offered by the client vs sent upstream (the final round's, with
/// `tool_search`), counts and o200k schema tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCounts {
    pub offered: u64,
    pub sent: u64,
    pub tokens_offered: u64,
    pub tokens_sent: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("request log {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("request log: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("request log {path}: schema version {found} is newer than this tierwise ({known})")]
    NewerSchema {
        path: String,
        found: i64,
        known: i64,
    },
    #[error("request log: the writer is closed")]
    Closed,
    #[error("request log: the writer thread failed: {0}")]
    Writer(String),
    #[error("request log: bad value in column {column}: {message}")]
    BadValue {
        column: &'static str,
        message: String,
    },
    /// A PostgreSQL error (the server answered, or could not be reached).
    #[error("database {target}: {message}")]
    Postgres { target: String, message: String },
    /// The database cannot be reached.
    #[error("database {target} unavailable: {message}")]
    Unavailable { target: String, message: String },
    /// Bad input: a negative budget, a duplicate name.
    #[error("{0}")]
    Invalid(String),
    /// No such key or team.
    #[error("no {0} named {1}")]
    NotFound(&'static str, String),
}

impl StoreError {
    /// Whether the error means the database could not be reached (as opposed to a bad request).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

/// Names of keys and teams: 1–64 visible characters without commas.
pub(crate) fn check_name(what: &str, name: &str) -> Result<(), StoreError> {
    if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_graphic() && c != ',')
    {
        return Err(StoreError::Invalid(format!(
            "{what} name {name:?}: 1-64 visible ASCII characters, no commas or spaces"
        )));
    }
    Ok(())
}
