//! What a key may do: its tiers (a cap on the routing decision), its rate limits, and the
//! budgets of the key and its team — checked after the decision, before dispatch.
//!
//! **Tiers.** A key's `tiers` / `max_tier` cap the decision: a tier above the cap (forced or
//! routed) is lowered to the highest allowed tier below it, the fallbacks and cascade ladder
//! are cut to allowed tiers, and the reason says so (`… (capped by key: max tier mini)`).
//!
//! **Rate limits** (`rpm`, `tpm` per key): fixed one-minute windows counted in the store
//! (PostgreSQL: shared by replicas, exact across them; SQLite: one process). A request counts
//! its estimated tokens (prompt + output cap) when admitted. Over a limit → 429
//! `rate_limit_exceeded` with `retry-after` (seconds to the next minute).
//!
//! **Budgets** (key and team, USD per UTC day and month): an upper estimate of the call's cost
//! — prompt tokens plus `max_completion_tokens` / `max_tokens` / `max_output_tokens` (else
//! `auth.budget_max_output_tokens`) at the dearest tier the call may reach (fallbacks; for a
//! cascade every attempt it may make, times its samples; times the tool-search rounds) — is
//! reserved atomically on every window before the call, and reconciled with the exact cost
//! when the call is accounted (stream end included). Over a budget → 429
//! `insufficient_quota` naming the window and when it resets. The overspend bound is in
//! `tierwise_store::budget`. Other code that spends on a key's behalf (shadow tests, batch
//! jobs) calls [`reserve`] and [`Reconciler::reconcile`] the same way.
//!
//! When the database cannot be reached for a rate or budget check the call is refused with a
//! 503, unless `[store] fail_open = true` (then it is served unchecked, and logged).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::Value;
use tierwise_core::config::{DispatchMode, ToolMode};
use tierwise_core::cost::{ServiceTier, Usage, cost};
use tierwise_router::Decision;
use tierwise_store::Store;
use tierwise_store::budget::{Limit, Period, Reservation, Reserved, Scope};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::app::AppState;
use crate::auth::Caller;
use crate::dispatch::Candidates;
use crate::error::ApiError;

/// Which ladder tiers a key may use (`None`: all), by index.
pub fn allowed_tiers(caller: &Caller, catalog: &tierwise_core::Catalog) -> Option<Vec<bool>> {
    let k = &caller.key;
    if k.tiers.is_none() && k.max_tier.is_none() {
        return None;
    }
    let max = k
        .max_tier
        .as_deref()
        .and_then(|t| catalog.tier_index(t))
        .unwrap_or(usize::MAX);
    Some(
        catalog
            .tiers()
            .iter()
            .enumerate()
            .map(|(i, t)| i <= max && k.tiers.as_ref().is_none_or(|ts| ts.contains(&t.name)))
            .collect(),
    )
}

/// Lowers a decision to the key's tiers; `Err` when the key allows no tier at or below the
/// decided one (or the call names a model outside the ladder and the key is tier-limited).
pub fn cap_decision(
    caller: &Caller,
    catalog: &tierwise_core::Catalog,
    decision: &mut Decision,
) -> Result<(), ApiError> {
    let Some(allowed) = allowed_tiers(caller, catalog) else {
        return Ok(());
    };
    let what = match (&caller.key.max_tier, &caller.key.tiers) {
        (Some(m), None) => format!("max tier {m}"),
        (None, Some(ts)) => format!("tiers {}", ts.join(",")),
        (Some(m), Some(ts)) => format!("tiers {}, max tier {m}", ts.join(",")),
        (None, None) => String::new(),
    };
    let Some(tier) = decision.tier else {
        return Err(ApiError::KeyForbidsModel(format!(
            "This key is limited to {what}; the model `{}` is outside the tier ladder.",
            decision.model
        )));
    };
    decision
        .fallbacks
        .retain(|&i| allowed.get(i).copied().unwrap_or(false));
    if allowed.get(tier).copied().unwrap_or(false) {
        return Ok(());
    }
    let Some(lower) = (0..tier).rev().find(|&i| allowed[i]) else {
        return Err(ApiError::KeyForbidsModel(format!(
            "This key is limited to {what}; no allowed tier is at or below `{}`.",
            decision.tier_name
        )));
    };
    let Some(t) = catalog.tier(lower) else {
        return Err(ApiError::Internal("tier index out of range".into()));
    };
    decision.reason = format!(
        "{} (capped by key: {what}; {} → {})",
        decision.reason, decision.tier_name, t.name
    );
    decision.tier = Some(lower);
    decision.tier_name = t.name.clone();
    decision.model = t.model.clone();
    decision.fallbacks.retain(|&i| i > lower);
    Ok(())
}

/// Cuts a cascade's ladder to the key's tiers.
pub fn cap_candidates(
    caller: Option<&Caller>,
    catalog: &tierwise_core::Catalog,
    candidates: Candidates,
) -> Candidates {
    let Some(allowed) = caller.and_then(|c| allowed_tiers(c, catalog)) else {
        return candidates;
    };
    candidates.filtered(|c| {
        c.tier
            .is_none_or(|i| allowed.get(i).copied().unwrap_or(false))
    })
}

/// The output tokens a request may produce: its own cap, else the configured one.
pub fn output_cap(body: &Value, configured: u64) -> u64 {
    ["max_completion_tokens", "max_tokens", "max_output_tokens"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_u64))
        .unwrap_or(configured)
}

/// An upper estimate of a call's cost (see the module docs); `None` when a model it may call
/// has no price.
pub fn estimate(
    state: &AppState,
    decision: &Decision,
    prompt_tokens: u64,
    output_tokens: u64,
) -> Option<Decimal> {
    let catalog = &state.config.catalog;
    let usage = Usage {
        input_tokens: prompt_tokens,
        cached_tokens: 0,
        output_tokens,
        reasoning_tokens: 0,
        cache_write_tokens: 0,
    };
    let cascade = decision.mode == DispatchMode::Cascade;
    let candidates = if cascade {
        Candidates::cascade(decision, catalog)
    } else {
        Candidates::from_decision(decision, catalog)
    };
    let mut dearest = Decimal::ZERO;
    for c in candidates {
        let prices = catalog.prices_for(&c.model)?;
        let one = cost(prices, &usage, ServiceTier::Default, catalog.multipliers()).ok()?;
        dearest = dearest.max(one.total);
    }
    let mut calls: u64 = 1;
    if cascade {
        let c = &state.config.routing.cascade;
        calls = (c.max_attempts as u64).max(1) * u64::from(c.samples.max(1));
    }
    if state.config.tools.mode == ToolMode::ToolSearch {
        calls *= 1 + u64::from(state.config.tools.max_search_rounds);
    }
    Some(dearest * Decimal::from(calls))
}

/// The budget limits that apply to a caller.
pub fn budget_limits(caller: &Caller) -> Vec<Limit> {
    let mut out = Vec::new();
    let k = &caller.key;
    let mut push = |scope: &Scope, period, usd: Option<Decimal>| {
        if let Some(usd) = usd {
            out.push(Limit {
                scope: scope.clone(),
                period,
                usd,
            });
        }
    };
    let key = Scope::Key(k.id.clone());
    push(&key, Period::Day, k.limits.budget_usd_day);
    push(&key, Period::Month, k.limits.budget_usd_month);
    if let Some(t) = &caller.team {
        let team = Scope::Team(t.name.clone());
        push(&team, Period::Day, t.budget_usd_day);
        push(&team, Period::Month, t.budget_usd_month);
    }
    out
}

/// Reserves `amount` for a caller: `Ok(None)` when no budget applies (or the store is down and
/// `fail_open` is set), a 429 `insufficient_quota` when it does not fit, a 503 when the store
/// cannot be reached.
pub async fn reserve(
    store: &dyn Store,
    caller: &Caller,
    amount: Decimal,
    fail_open: bool,
) -> Result<Option<Reservation>, ApiError> {
    let limits = budget_limits(caller);
    if limits.is_empty() {
        return Ok(None);
    }
    match store
        .reserve(limits, amount, OffsetDateTime::now_utc())
        .await
    {
        Ok(Reserved::Granted(r)) => Ok(Some(r)),
        Ok(Reserved::Exceeded {
            limit,
            spent,
            reserved,
            resets,
        }) => Err(ApiError::InsufficientQuota(format!(
            "You exceeded the {} budget of {}: ${} per UTC {} (spent ${}, ${} held by calls in \
             flight, this call may cost up to ${}). The budget resets at {}.",
            limit.period.as_str(),
            limit.scope.describe(),
            limit.usd,
            limit.period.as_str(),
            spent.round_dp(6).normalize(),
            reserved.round_dp(6).normalize(),
            amount.round_dp(6).normalize(),
            resets.format(&Rfc3339).unwrap_or_default()
        ))),
        Err(e) if fail_open => {
            tracing::error!(error = %e, key = %caller.key.id, "budget check failed; serving unchecked (store.fail_open)");
            Ok(None)
        }
        Err(e) => Err(ApiError::from_store(e)),
    }
}

/// The rate-limit state of an admitted call, for the `x-ratelimit-remaining-*` headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateRemaining {
    pub requests: Option<u64>,
    pub tokens: Option<u64>,
}

/// Sets `x-ratelimit-remaining-requests` / `-tokens` for the limits a key has.
pub fn insert_rate_headers(h: &mut axum::http::HeaderMap, r: RateRemaining) {
    if let Some(n) = r.requests {
        h.insert(
            "x-ratelimit-remaining-requests",
            axum::http::HeaderValue::from(n),
        );
    }
    if let Some(n) = r.tokens {
        h.insert(
            "x-ratelimit-remaining-tokens",
            axum::http::HeaderValue::from(n),
        );
    }
}

/// Counts a call against its key's rpm/tpm.
pub async fn rate(
    state: &AppState,
    caller: &Caller,
    tokens: u64,
) -> Result<RateRemaining, ApiError> {
    let (rpm, tpm) = (caller.key.limits.rpm, caller.key.limits.tpm);
    if rpm.is_none() && tpm.is_none() {
        return Ok(RateRemaining::default());
    }
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let minute = now.div_euclid(60);
    let counted = state
        .store
        .rate_take(Scope::Key(caller.key.id.clone()), minute, tokens, rpm, tpm)
        .await;
    let c = match counted {
        Ok(c) => c,
        Err(e) if state.config.store.fail_open => {
            tracing::error!(error = %e, key = %caller.key.id, "rate check failed; serving unchecked (store.fail_open)");
            return Ok(RateRemaining::default());
        }
        Err(e) => return Err(ApiError::from_store(e)),
    };
    let remaining = RateRemaining {
        requests: rpm.map(|l| l.saturating_sub(c.requests)),
        tokens: tpm.map(|l| l.saturating_sub(c.tokens)),
    };
    if c.allowed {
        return Ok(remaining);
    }
    let retry_after = u64::try_from(60 - now.rem_euclid(60)).unwrap_or(60);
    let (kind, message) = if rpm.is_some_and(|l| c.requests >= l) {
        (
            "requests",
            format!(
                "Rate limit reached for key {} on requests per minute: limit {}, used {}.",
                caller.key.id,
                rpm.unwrap_or(0),
                c.requests
            ),
        )
    } else {
        (
            "tokens",
            format!(
                "Rate limit reached for key {} on tokens per minute: limit {}, used {}, requested {tokens}.",
                caller.key.id,
                tpm.unwrap_or(0),
                c.tokens
            ),
        )
    };
    Err(ApiError::RateLimited {
        kind,
        message: format!("{message} Please try again in {retry_after}s."),
        retry_after,
        remaining,
    })
}

/// Reconciles reservations off the response path, and lets shutdown wait for them.
#[derive(Debug, Default)]
pub struct Reconciler {
    pending: AtomicUsize,
}

/// A reservation held by a request; taken exactly once, however often the context is cloned.
#[derive(Debug, Default)]
pub struct Held(Mutex<Option<Reservation>>);

impl Held {
    pub fn new(r: Reservation) -> Arc<Held> {
        Arc::new(Held(Mutex::new(Some(r))))
    }

    pub fn take(&self) -> Option<Reservation> {
        self.0.lock().ok().and_then(|mut r| r.take())
    }
}

impl Reconciler {
    /// Releases `reservation` and adds `exact` (the reservation itself when the call is
    /// unpriced), on a task of the current runtime.
    pub fn reconcile(
        self: &Arc<Self>,
        store: Arc<dyn Store>,
        reservation: Reservation,
        exact: Option<Decimal>,
    ) {
        let exact = exact.unwrap_or(reservation.amount);
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::error!("budget reconciliation outside a runtime; reservation held");
            return;
        };
        self.pending.fetch_add(1, Ordering::SeqCst);
        let this = Arc::clone(self);
        rt.spawn(async move {
            let mut delay = Duration::from_millis(50);
            for attempt in 0..6 {
                match store.reconcile(reservation.clone(), exact).await {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, attempt, "budget reconciliation failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                }
            }
            this.pending.fetch_sub(1, Ordering::SeqCst);
        });
    }

    /// Waits (at most `limit`) until every reconciliation has run.
    pub async fn drain(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.pending.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
