//! `[cache]`: prompt-cache shaping (the gateway sets `prompt_cache_key` on requests that have
//! none, so calls sharing a stable prefix land on the same provider cache).

use serde::Deserialize;

/// `cache.shape` when absent.
pub const DEFAULT_SHAPE: bool = true;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    pub shape: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheShaping {
    /// Set `prompt_cache_key` (from the stable prefix and the caller's key id) on requests
    /// without one.
    pub shape: bool,
}

impl Default for CacheShaping {
    fn default() -> Self {
        CacheShaping {
            shape: DEFAULT_SHAPE,
        }
    }
}

/// Validates `[cache]` (types only: serde rejects a non-boolean `shape` by name).
pub(super) fn load(raw: RawCache) -> CacheShaping {
    let RawCache { shape } = raw;
    CacheShaping {
        shape: shape.unwrap_or(DEFAULT_SHAPE),
    }
}
