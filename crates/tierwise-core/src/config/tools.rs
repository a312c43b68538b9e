//! `[tools]`: what the gateway does with a request's tool schemas (prune, search, pass through).

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `tools.threshold` when absent.
pub const DEFAULT_THRESHOLD: usize = 16;
/// `tools.top_k` when absent.
pub const DEFAULT_TOP_K: usize = 24;
/// `tools.max_search_rounds` when absent.
pub const DEFAULT_MAX_SEARCH_ROUNDS: u32 = 2;
/// `tools.keep_share` when absent.
pub const DEFAULT_KEEP_SHARE: f64 = 0.0;
/// `tools.max_k` when absent.
pub const DEFAULT_MAX_K: usize = 40;
/// `tools.max_share` when absent.
pub const DEFAULT_MAX_SHARE: f64 = 0.25;
/// `tools.tail_ratio` when absent.
pub const DEFAULT_TAIL_RATIO: f64 = 0.3;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTools {
    pub mode: Option<ToolMode>,
    pub threshold: Option<usize>,
    pub top_k: Option<usize>,
    #[serde(default)]
    pub pinned: Vec<String>,
    pub max_search_rounds: Option<u32>,
    pub method: Option<ToolMethod>,
    pub keep_share: Option<f64>,
    pub max_k: Option<usize>,
    pub max_share: Option<f64>,
    pub tail_ratio: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ToolMode {
    /// Tools pass through untouched.
    Off,
    /// Keep the top-k relevant tools (plus called, named and pinned ones).
    #[default]
    Prune,
    /// Prune, and add a `tool_search` function the gateway answers itself.
    ToolSearch,
}

/// How tool search ranks tools (`tools.method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ToolMethod {
    /// Plain BM25 over all the conversation's text (the baseline).
    Bm25,
    /// BM25 per channel (latest turn, its clauses, earlier turns) with related-word expansion.
    Lexical,
    /// Lexical plus MiniLM sentence embeddings (lexical when the model is absent).
    #[default]
    Hybrid,
}

#[derive(Debug, Clone)]
pub struct Tools {
    pub mode: ToolMode,
    pub threshold: usize,
    pub top_k: usize,
    pub pinned: Vec<String>,
    pub max_search_rounds: u32,
    pub method: ToolMethod,
    /// Share of a large request's tools also kept: k = max(top_k, ⌈keep_share × tools⌉).
    pub keep_share: f64,
    /// Adaptive k: beyond `max(top_k, ⌈keep_share × tools⌉)`, tools whose score is at least
    /// `tail_ratio` × the best score are kept too (a flat tail keeps more, a sharp head the
    /// floor), up to `max(floor, min(max_k, ⌈max_share × tools⌉))`. `tail_ratio = 1` or
    /// `max_k = 0` turns it off.
    pub max_k: usize,
    pub max_share: f64,
    pub tail_ratio: f64,
}

/// Validates `[tools]`.
pub(super) fn load(raw: RawTools) -> Result<Tools, ConfigError> {
    let RawTools {
        mode,
        threshold,
        top_k,
        pinned,
        max_search_rounds,
        method,
        keep_share,
        max_k,
        max_share,
        tail_ratio,
    } = raw;
    let tools = Tools {
        mode: mode.unwrap_or_default(),
        threshold: threshold.unwrap_or(DEFAULT_THRESHOLD),
        top_k: top_k.unwrap_or(DEFAULT_TOP_K),
        pinned,
        max_search_rounds: max_search_rounds.unwrap_or(DEFAULT_MAX_SEARCH_ROUNDS),
        method: method.unwrap_or_default(),
        keep_share: keep_share.unwrap_or(DEFAULT_KEEP_SHARE),
        max_k: max_k.unwrap_or(DEFAULT_MAX_K),
        max_share: max_share.unwrap_or(DEFAULT_MAX_SHARE),
        tail_ratio: tail_ratio.unwrap_or(DEFAULT_TAIL_RATIO),
    };
    if !(0.0..=1.0).contains(&tools.max_share) {
        return Err(ConfigError::invalid(
            "tools.max_share",
            "must be between 0 and 1",
        ));
    }
    if !(0.0..=1.0).contains(&tools.tail_ratio) {
        return Err(ConfigError::invalid(
            "tools.tail_ratio",
            "must be between 0 and 1",
        ));
    }
    if !(0.0..=1.0).contains(&tools.keep_share) {
        return Err(ConfigError::invalid(
            "tools.keep_share",
            "must be between 0 and 1",
        ));
    }
    if tools.top_k == 0 {
        return Err(ConfigError::invalid("tools.top_k", "must be at least 1"));
    }
    Ok(tools)
}
