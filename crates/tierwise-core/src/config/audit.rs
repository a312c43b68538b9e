//! `[audit]`: how `tierwise audit` reads a log (which calls could wait, the prompt cache's TTL).

use serde::Deserialize;

/// `audit.cache_ttl_secs` when absent.
pub const DEFAULT_CACHE_TTL_SECS: u64 = 300;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    #[serde(default)]
    pub deferrable_categories: Vec<String>,
    pub cache_ttl_secs: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Audit {
    pub deferrable_categories: Vec<String>,
    pub cache_ttl_secs: u64,
}

/// Validates `[audit]` (nothing to reject: defaults only).
pub(super) fn load(raw: RawAudit) -> Audit {
    let RawAudit {
        deferrable_categories,
        cache_ttl_secs,
    } = raw;
    Audit {
        deferrable_categories,
        cache_ttl_secs: cache_ttl_secs.unwrap_or(DEFAULT_CACHE_TTL_SECS),
    }
}
