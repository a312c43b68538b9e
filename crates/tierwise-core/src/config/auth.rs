//! `[auth]` and `[store]`: who may call the gateway, and where keys, budgets and the request
//! log are kept.
//!
//! `[auth] mode = "keys"` makes every `/v1/*` call present a virtual key (`tierwise keys
//! create`); `"open"` (the default) lets anyone who can reach the gateway call it, and is only
//! accepted on a loopback address unless `allow_open_on_public_address = true`. The admin key
//! for `/admin/*` comes from the environment only (`TIERWISE_ADMIN_KEY`), never from the file.
//!
//! `[store] url = "postgres://…"` (or `TIERWISE_DATABASE_URL`) puts everything in PostgreSQL,
//! shared by replicas; without it the store is the SQLite file `log.path`.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, EnvLookup, Secret};

/// The admin key's variable.
pub const ADMIN_KEY_ENV: &str = "TIERWISE_ADMIN_KEY";
/// The PostgreSQL URL's variable (when `store.url` is absent).
pub const DATABASE_URL_ENV: &str = "TIERWISE_DATABASE_URL";
/// `auth.key_cache_ms` when absent: how long a replica trusts a key it looked up. A revocation
/// on another replica is seen within this time.
pub const DEFAULT_KEY_CACHE_MS: u64 = 1_000;
/// `auth.budget_max_output_tokens` when absent: the output tokens a budget estimate assumes
/// for a call that sets no `max_tokens` / `max_completion_tokens` / `max_output_tokens`.
pub const DEFAULT_BUDGET_MAX_OUTPUT_TOKENS: u64 = 4_096;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    pub mode: Option<String>,
    pub allow_open_on_public_address: Option<bool>,
    pub key_cache_ms: Option<u64>,
    pub budget_max_output_tokens: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub url: Option<String>,
    pub fail_open: Option<bool>,
}

/// `auth.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Every `/v1/*` call needs `Authorization: Bearer tw-…`.
    Keys,
    /// No key needed (loopback only, unless overridden).
    Open,
}

#[derive(Debug, Clone)]
pub struct Auth {
    pub mode: AuthMode,
    pub allow_open_on_public_address: bool,
    /// From `TIERWISE_ADMIN_KEY`; `None`: the admin API answers 401 to everyone.
    pub admin_key: Option<Secret>,
    pub key_cache: Duration,
    pub budget_max_output_tokens: u64,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// A PostgreSQL URL; `None`: SQLite at `log.path`.
    pub url: Option<Secret>,
    /// When the budget or rate check cannot reach the database: serve anyway (`true`) or
    /// answer 503 (`false`, the default).
    pub fail_open: bool,
}

pub(super) fn load_auth(raw: RawAuth, env: EnvLookup<'_>) -> Result<Auth, ConfigError> {
    let RawAuth {
        mode,
        allow_open_on_public_address,
        key_cache_ms,
        budget_max_output_tokens,
    } = raw;
    let mode = match mode.as_deref() {
        None | Some("open") => AuthMode::Open,
        Some("keys") => AuthMode::Keys,
        Some(other) => {
            return Err(ConfigError::invalid(
                "auth.mode",
                format!("expected \"keys\" or \"open\", got {other:?}"),
            ));
        }
    };
    let key_cache_ms = key_cache_ms.unwrap_or(DEFAULT_KEY_CACHE_MS);
    if key_cache_ms > DEFAULT_KEY_CACHE_MS {
        return Err(ConfigError::invalid(
            "auth.key_cache_ms",
            format!(
                "at most {DEFAULT_KEY_CACHE_MS} (a revoked key must stop working within a second)"
            ),
        ));
    }
    let budget_max_output_tokens =
        budget_max_output_tokens.unwrap_or(DEFAULT_BUDGET_MAX_OUTPUT_TOKENS);
    if budget_max_output_tokens == 0 {
        return Err(ConfigError::invalid(
            "auth.budget_max_output_tokens",
            "must be positive",
        ));
    }
    Ok(Auth {
        mode,
        allow_open_on_public_address: allow_open_on_public_address.unwrap_or(false),
        admin_key: env(ADMIN_KEY_ENV)
            .filter(|k| !k.is_empty())
            .map(Secret::new),
        key_cache: Duration::from_millis(key_cache_ms),
        budget_max_output_tokens,
    })
}

pub(super) fn load_store(raw: RawStore, env: EnvLookup<'_>) -> Result<StoreConfig, ConfigError> {
    let RawStore { url, fail_open } = raw;
    let url = url
        .or_else(|| env(DATABASE_URL_ENV))
        .filter(|u| !u.is_empty());
    if let Some(u) = &url
        && !(u.starts_with("postgres://") || u.starts_with("postgresql://"))
    {
        return Err(ConfigError::invalid(
            "store.url",
            "expected a postgres:// URL (without it the store is the SQLite file log.path)",
        ));
    }
    Ok(StoreConfig {
        url: url.map(Secret::new),
        fail_open: fail_open.unwrap_or(false),
    })
}
