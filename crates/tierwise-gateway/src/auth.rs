//! Who is calling: virtual keys (`[auth] mode = "keys"`) and the admin key.
//!
//! A `/v1/*` call in keys mode must carry `Authorization: Bearer tw-…`. The key is checked for
//! shape first (a malformed key never reaches the database), then looked up by its SHA-256 in
//! a per-replica cache that trusts an answer for `auth.key_cache_ms` (≤ 1 s): a key revoked on
//! one replica is refused by every other within that time, and a hot key costs one hash and
//! one map lookup, not a database round trip. Unknown, revoked and expired keys are 401s. The
//! client's `Authorization` is never forwarded upstream in keys mode: the provider key is the
//! gateway's own.
//!
//! `/admin/*` needs the admin key (`TIERWISE_ADMIN_KEY`); it is held as a `Secret` and
//! compared by SHA-256 digest.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::http::{HeaderMap, header};
use tierwise_core::config::AuthMode;
use tierwise_store::keys::{self, KeyRecord, Team};
use time::OffsetDateTime;

use crate::app::AppState;
use crate::error::ApiError;

/// The authenticated caller of a request: its key and the key's team.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    pub key: KeyRecord,
    pub team: Option<Team>,
}

/// Entries the cache may hold before it is cleared (a bound against floods of random keys).
const CACHE_MAX: usize = 65_536;

/// When a key was looked up, and what was found (`None`: no such key).
type Entry = (Instant, Option<Arc<Caller>>);

/// Key lookups, by key hash, each trusted for `auth.key_cache_ms`.
#[derive(Debug, Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<String, Entry>>,
}

impl KeyCache {
    fn get(&self, hash: &str, ttl: std::time::Duration) -> Option<Option<Arc<Caller>>> {
        let entries = self.entries.lock().ok()?;
        let (at, caller) = entries.get(hash)?;
        (at.elapsed() < ttl).then(|| caller.clone())
    }

    fn put(&self, hash: String, caller: Option<Arc<Caller>>) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CACHE_MAX {
                entries.clear();
            }
            entries.insert(hash, (Instant::now(), caller));
        }
    }
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let v = v.trim();
    v.strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))
        .map(str::trim)
}

/// Authenticates a `/v1/*` call: `None` in open mode, the caller in keys mode, else a 401
/// (or a 503 when the key is not cached and the database cannot be reached).
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Arc<Caller>>, ApiError> {
    if state.config.auth.mode == AuthMode::Open {
        return Ok(None);
    }
    let Some(token) = bearer(headers) else {
        return Err(ApiError::Unauthorized(
            "You didn't provide an API key. Send your tierwise key as `Authorization: Bearer tw-…`."
                .into(),
        ));
    };
    if !keys::well_formed(token) {
        return Err(ApiError::Unauthorized(
            "Incorrect API key provided: tierwise keys look like `tw-` followed by 32 characters."
                .into(),
        ));
    }
    let hash = keys::hash(token);
    let ttl = state.config.auth.key_cache;
    let caller = match state.keys.get(&hash, ttl) {
        Some(c) => c,
        None => {
            let c = lookup(state, &hash).await?;
            state.keys.put(hash, c.clone());
            c
        }
    };
    let Some(caller) = caller else {
        return Err(ApiError::Unauthorized(
            "Incorrect API key provided: no such tierwise key.".into(),
        ));
    };
    if let Some(why) = caller.key.refusal(OffsetDateTime::now_utc()) {
        return Err(ApiError::Unauthorized(format!(
            "This tierwise key ({}) is {why}.",
            caller.key.prefix
        )));
    }
    Ok(Some(caller))
}

async fn lookup(state: &AppState, hash: &str) -> Result<Option<Arc<Caller>>, ApiError> {
    let key = state
        .store
        .key_by_hash(hash)
        .await
        .map_err(ApiError::from_store)?;
    let Some(key) = key else {
        return Ok(None);
    };
    let team = match &key.team {
        Some(name) => state.store.team(name).await.map_err(ApiError::from_store)?,
        None => None,
    };
    Ok(Some(Arc::new(Caller { key, team })))
}

/// Checks the admin key of an `/admin/*` call.
pub fn admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &state.config.auth.admin_key else {
        return Err(ApiError::Unauthorized(format!(
            "The admin API is disabled: set {} to use it.",
            tierwise_core::config::ADMIN_KEY_ENV
        )));
    };
    match bearer(headers) {
        Some(given) if keys::hash(given) == keys::hash(expected.expose()) => Ok(()),
        _ => Err(ApiError::Unauthorized(
            "Incorrect admin key provided.".into(),
        )),
    }
}
