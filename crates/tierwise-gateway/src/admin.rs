//! The admin API (admin key only, `TIERWISE_ADMIN_KEY`): keys and teams, the same operations
//! as `tierwise keys …` / `tierwise teams …`.
//!
//! ```text
//! GET    /admin/keys            list (never the keys themselves: id, prefix, limits)
//! POST   /admin/keys            create {name, team?, budget_usd_day?, budget_usd_month?, rpm?,
//!                               tpm?, tiers?, max_tier?, expires?} → the record and "key"
//!                               (shown this once)
//! GET    /admin/keys/{id}       one key, with its budget windows' spend
//! PATCH  /admin/keys/{id}       change fields (null clears one)
//! DELETE /admin/keys/{id}       revoke
//! GET    /admin/teams           list
//! POST   /admin/teams           create {name, budget_usd_day?, budget_usd_month?}
//! GET    /admin/teams/{name}    one team, with its spend
//! PATCH  /admin/teams/{name}    change budgets (null clears one)
//! ```
//! Money is a decimal string or number; a negative or non-decimal amount, an unknown field,
//! an unknown team or tier is a 400, OpenAI-shaped.

use std::str::FromStr;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use tierwise_store::budget::Scope;
use tierwise_store::keys::{KeyUpdate, NewKey, TeamUpdate};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::app::AppState;
use crate::auth;
use crate::error::ApiError;

type Result<T> = std::result::Result<T, ApiError>;

fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::AdminInvalid(msg.into())
}

fn object(body: &Bytes) -> Result<Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(invalid("the body must be a JSON object")),
        Err(e) => Err(ApiError::InvalidJson(e.to_string())),
    }
}

/// A money field: `Some(None)` for null, a non-negative decimal (string or number).
fn money(field: &str, v: &Value) -> Result<Option<Decimal>> {
    let d = match v {
        Value::Null => return Ok(None),
        Value::String(s) => Decimal::from_str(s.trim()),
        Value::Number(n) => Decimal::from_str(&n.to_string()),
        _ => {
            return Err(invalid(format!(
                "{field}: expected a decimal amount in USD"
            )));
        }
    }
    .map_err(|_| invalid(format!("{field}: {v} is not a decimal amount in USD")))?;
    if d.is_sign_negative() && !d.is_zero() {
        return Err(invalid(format!(
            "{field}: a budget cannot be negative ({d})"
        )));
    }
    Ok(Some(d))
}

fn count(field: &str, v: &Value) -> Result<Option<u64>> {
    match v {
        Value::Null => Ok(None),
        _ => v
            .as_u64()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| invalid(format!("{field}: expected a positive integer"))),
    }
}

fn text(field: &str, v: &Value) -> Result<Option<String>> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(invalid(format!("{field}: expected a string"))),
    }
}

fn when(field: &str, v: &Value) -> Result<Option<OffsetDateTime>> {
    text(field, v)?
        .map(|s| {
            OffsetDateTime::parse(&s, &Rfc3339)
                .map_err(|_| invalid(format!("{field}: {s:?} is not an RFC 3339 time")))
        })
        .transpose()
}

/// Tier names, each checked against the catalog.
fn tiers(state: &AppState, field: &str, v: &Value) -> Result<Option<Vec<String>>> {
    let list: Vec<String> = match v {
        Value::Null => return Ok(None),
        Value::String(s) => s.split(',').map(|t| t.trim().to_string()).collect(),
        Value::Array(a) => a
            .iter()
            .map(|t| {
                t.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| invalid(format!("{field}: expected tier names")))
            })
            .collect::<Result<_>>()?,
        _ => return Err(invalid(format!("{field}: expected tier names"))),
    };
    for t in &list {
        check_tier(state, field, t)?;
    }
    Ok(Some(list))
}

fn check_tier(state: &AppState, field: &str, t: &str) -> Result<()> {
    let catalog = &state.config.catalog;
    if catalog.tiers().iter().any(|x| x.name == t) {
        Ok(())
    } else {
        let names: Vec<_> = catalog.tiers().iter().map(|x| x.name.as_str()).collect();
        Err(invalid(format!(
            "{field}: unknown tier {t:?} (tiers: {})",
            names.join(", ")
        )))
    }
}

/// Parses a key change from JSON (also used by `create`, where every field is new).
fn key_update(state: &AppState, m: &Map<String, Value>) -> Result<KeyUpdate> {
    let mut u = KeyUpdate::default();
    for (k, v) in m {
        match k.as_str() {
            "name" => u.name = Some(text(k, v)?.ok_or_else(|| invalid("name: cannot be null"))?),
            "team" => u.team = Some(text(k, v)?),
            "budget_usd_day" => u.budget_usd_day = Some(money(k, v)?),
            "budget_usd_month" => u.budget_usd_month = Some(money(k, v)?),
            "rpm" => u.rpm = Some(count(k, v)?),
            "tpm" => u.tpm = Some(count(k, v)?),
            "tiers" => u.tiers = Some(tiers(state, k, v)?),
            "max_tier" => {
                let t = text(k, v)?;
                if let Some(t) = &t {
                    check_tier(state, k, t)?;
                }
                u.max_tier = Some(t);
            }
            "expires" => u.expires = Some(when(k, v)?),
            other => return Err(invalid(format!("unknown field {other:?}"))),
        }
    }
    Ok(u)
}

fn team_update(m: &Map<String, Value>, allow_name: bool) -> Result<TeamUpdate> {
    let mut u = TeamUpdate::default();
    for (k, v) in m {
        match k.as_str() {
            "name" if allow_name => {}
            "budget_usd_day" => u.budget_usd_day = Some(money(k, v)?),
            "budget_usd_month" => u.budget_usd_month = Some(money(k, v)?),
            other => return Err(invalid(format!("unknown field {other:?}"))),
        }
    }
    Ok(u)
}

async fn spend(state: &AppState, scope: Scope) -> Result<Value> {
    let windows = state
        .store
        .spend(scope)
        .await
        .map_err(ApiError::from_store)?;
    Ok(json!(windows))
}

/// A store error of a key change: an unknown team is bad input (400), not a missing key.
fn key_err(e: tierwise_store::StoreError) -> ApiError {
    match e {
        tierwise_store::StoreError::NotFound("team", t) => invalid(format!("unknown team {t:?}")),
        other => ApiError::from_store(other),
    }
}

fn respond(r: Result<(StatusCode, Value)>) -> Response {
    match r {
        Ok((status, v)) => (status, Json(v)).into_response(),
        Err(e) => {
            e.log();
            e.into_response()
        }
    }
}

pub async fn list_keys(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    respond(
        async {
            auth::admin(&state, &headers)?;
            let keys = state.store.keys().await.map_err(ApiError::from_store)?;
            Ok((StatusCode::OK, json!({"object": "list", "data": keys})))
        }
        .await,
    )
}

pub async fn create_key(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(
        async {
            auth::admin(&state, &headers)?;
            let m = object(&body)?;
            let u = key_update(&state, &m)?;
            let new = NewKey {
                name: u.name.ok_or_else(|| invalid("name: required"))?,
                team: u.team.flatten(),
                limits: tierwise_store::keys::Limits {
                    budget_usd_day: u.budget_usd_day.flatten(),
                    budget_usd_month: u.budget_usd_month.flatten(),
                    rpm: u.rpm.flatten(),
                    tpm: u.tpm.flatten(),
                },
                tiers: u.tiers.flatten(),
                max_tier: u.max_tier.flatten(),
                expires: u.expires.flatten(),
            };
            let created = state.store.create_key(new).await.map_err(key_err)?;
            let mut v = json!(created.record);
            v["key"] = json!(created.secret);
            Ok((StatusCode::CREATED, v))
        }
        .await,
    )
}

pub async fn show_key(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    respond(
        async {
            auth::admin(&state, &headers)?;
            let key = state
                .store
                .key(&id)
                .await
                .map_err(ApiError::from_store)?
                .ok_or_else(|| ApiError::AdminNotFound(format!("no key named {id}")))?;
            let mut v = json!(key);
            v["spend"] = spend(&state, Scope::Key(id)).await?;
            Ok((StatusCode::OK, v))
        }
        .await,
    )
}

pub async fn update_key(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    respond(
        async {
            auth::admin(&state, &headers)?;
            let u = key_update(&state, &object(&body)?)?;
            let key = state.store.update_key(&id, u).await.map_err(key_err)?;
            Ok((StatusCode::OK, json!(key)))
        }
        .await,
    )
}

pub async fn revoke_key(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    respond(
        async {
            auth::admin(&state, &headers)?;
            let key = state
                .store
                .revoke_key(&id, OffsetDateTime::now_utc())
                .await
                .map_err(ApiError::from_store)?;
            Ok((StatusCode::OK, json!(key)))
        }
        .await,
    )
}

pub async fn list_teams(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    respond(
        async {
            auth::admin(&state, &headers)?;
            let teams = state.store.teams().await.map_err(ApiError::from_store)?;
            Ok((StatusCode::OK, json!({"object": "list", "data": teams})))
        }
        .await,
    )
}

pub async fn create_team(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(
        async {
            auth::admin(&state, &headers)?;
            let m = object(&body)?;
            let name = m
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("name: required"))?
                .to_string();
            let u = team_update(&m, true)?;
            let team = state
                .store
                .create_team(&name, u)
                .await
                .map_err(ApiError::from_store)?;
            Ok((StatusCode::CREATED, json!(team)))
        }
        .await,
    )
}

pub async fn show_team(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    respond(
        async {
            auth::admin(&state, &headers)?;
            let team = state
                .store
                .team(&name)
                .await
                .map_err(ApiError::from_store)?
                .ok_or_else(|| ApiError::AdminNotFound(format!("no team named {name}")))?;
            let mut v = json!(team);
            v["spend"] = spend(&state, Scope::Team(name)).await?;
            Ok((StatusCode::OK, v))
        }
        .await,
    )
}

pub async fn update_team(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    respond(
        async {
            auth::admin(&state, &headers)?;
            let u = team_update(&object(&body)?, false)?;
            let team = state
                .store
                .update_team(&name, u)
                .await
                .map_err(ApiError::from_store)?;
            Ok((StatusCode::OK, json!(team)))
        }
        .await,
    )
}
