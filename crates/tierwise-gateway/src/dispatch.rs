//! Dispatch: sending a shaped request to the provider.
//!
//! The decision names a tier and the fallbacks above it; [`Candidates`] yields them in order
//! (the first choice first, like pingora's `BackendIter`), and the sync runner walks them:
//! each candidate gets `1 + upstream.max_retries` attempts on retryable failures (backoff with
//! jitter, or the provider's `retry-after-ms` / `retry-after` when it sends one), then the next
//! candidate up the ladder. A non-retryable failure (a 4xx caused by the request, an exhausted
//! quota) ends the walk at once: another tier would fail the same way. So does an upstream that
//! cannot be reached once its retries are spent (all tiers share one base URL).
//!
//! Branching is on [`UpstreamError::retry`], never on message text.

use std::time::Duration;

use axum::http::HeaderMap;
use bytes::Bytes;
use rand::Rng;
use serde_json::{Map, Value};
use tierwise_core::catalog::Catalog;
use tierwise_core::config::DispatchMode;
use tierwise_router::Decision;

use crate::app::AppState;
use crate::ctx::RequestCtx;
use crate::telemetry::UpstreamCall;
use crate::upstream::{ErrorSource, Retry, UpstreamError, UpstreamErrorKind};

/// The longest `retry-after` we wait on one tier; beyond it we move to the next tier instead.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);
/// Cap of one backoff pause.
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// One tier the dispatch may call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Ladder index; `None` for a priced model outside the ladder.
    pub tier: Option<usize>,
    /// Tier name, or `none`.
    pub tier_name: String,
    /// The model id sent upstream.
    pub model: String,
}

/// The decision's tier, then its fallbacks, in order.
#[derive(Debug, Clone)]
pub struct Candidates {
    list: Vec<Candidate>,
    next: usize,
}

impl Candidates {
    pub fn from_decision(decision: &Decision, catalog: &Catalog) -> Candidates {
        let mut list = vec![Candidate {
            tier: decision.tier,
            tier_name: decision.tier_name.clone(),
            model: decision.model.clone(),
        }];
        for &i in &decision.fallbacks {
            if let Some(t) = catalog.tier(i) {
                list.push(Candidate {
                    tier: Some(i),
                    tier_name: t.name.clone(),
                    model: t.model.clone(),
                });
            }
        }
        Candidates { list, next: 0 }
    }

    /// The cascade's candidates: the decision's tier, then every tier above it on the ladder
    /// (a forced tier has no fallbacks, but a cascade still escalates from it).
    pub fn cascade(decision: &Decision, catalog: &Catalog) -> Candidates {
        let mut c = Candidates::from_decision(decision, catalog);
        if let Some(t) = decision.tier {
            c.list.truncate(1);
            for i in t + 1..catalog.tiers().len() {
                if let Some(tier) = catalog.tier(i) {
                    c.list.push(Candidate {
                        tier: Some(i),
                        tier_name: tier.name.clone(),
                        model: tier.model.clone(),
                    });
                }
            }
        }
        c
    }

    /// Just this candidate (the cascade calls one tier at a time).
    pub fn single(candidate: Candidate) -> Candidates {
        Candidates {
            list: vec![candidate],
            next: 0,
        }
    }

    /// Only the candidates `keep` accepts (a key's tiers); the first always stays (the
    /// decision was capped before).
    pub fn filtered(mut self, keep: impl Fn(&Candidate) -> bool) -> Candidates {
        let mut i = 0;
        self.list.retain(|c| {
            i += 1;
            i == 1 || keep(c)
        });
        self
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

impl Iterator for Candidates {
    type Item = Candidate;

    fn next(&mut self) -> Option<Candidate> {
        let c = self.list.get(self.next).cloned();
        self.next += 1;
        c
    }
}

/// What the dispatch did, kept whether it succeeded or not (the log row needs it).
#[derive(Debug, Clone, Default)]
pub struct Trail {
    /// Upstream calls made.
    pub attempts: u32,
    /// Tier names tried, in order.
    pub tried: Vec<String>,
    /// The last candidate called.
    pub last: Option<Candidate>,
    /// Each upstream call with its timing and result — recorded only when telemetry is on
    /// (the attempt spans).
    pub calls: Vec<UpstreamCall>,
}

/// A 2xx answer, body not yet read.
#[derive(Debug)]
pub struct Dispatched {
    pub response: reqwest::Response,
    pub candidate: Candidate,
}

/// Where the request goes upstream.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// `/chat/completions` or `/responses`.
    pub path: &'a str,
    pub headers: &'a HeaderMap,
    pub stream: bool,
}

/// Sends `body` for `decision`: the `tool_search` rounds when shaping left a session in
/// `ctx`, else the mode picks the runner; `model` is set per candidate. Records what it did in
/// `ctx.trail` (and, after `tool_search` rounds, the final round's tools in `ctx.tools`).
pub async fn dispatch(
    state: &AppState,
    ctx: &mut RequestCtx,
    decision: &Decision,
    body: &mut Map<String, Value>,
    target: Target<'_>,
) -> Result<Dispatched, UpstreamError> {
    let candidates = Candidates::from_decision(decision, &state.config.catalog);
    if let Some(session) = ctx.tool_search.take() {
        return crate::tools::search_rounds(state, session, candidates, body, target, ctx).await;
    }
    let trail = &mut ctx.trail;
    match decision.mode {
        DispatchMode::Sync | DispatchMode::Flex => {
            walk(state, candidates, body, target, trail).await
        }
        // A cascade decision reaches here only when the cascade runner cannot take it
        // (no scorer, or a streamed Responses call; see `proxy`): it is sent like a sync one.
        DispatchMode::Cascade => walk(state, candidates, body, target, trail).await,
        // The gateway has no batch queue (the provider's Batch API): deferrable calls are
        // sent at once.
        DispatchMode::Batch => walk(state, candidates, body, target, trail).await,
    }
}

fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base
        .saturating_mul(1u32 << attempt.min(16))
        .min(MAX_BACKOFF);
    let jitter: f64 = rand::rng().random_range(0.75..1.25);
    exp.mul_f64(jitter)
}

/// The sync runner: candidates in order, retries per candidate, fallback on retryable failure.
pub(crate) async fn walk(
    state: &AppState,
    candidates: Candidates,
    body: &mut Map<String, Value>,
    target: Target<'_>,
    trail: &mut Trail,
) -> Result<Dispatched, UpstreamError> {
    let max_retries = state.config.upstream.max_retries;
    let base = Duration::from_millis(state.config.upstream.retry_backoff_ms);
    let mut last_err = None;
    for candidate in candidates {
        if let Some(prev) = &trail.last {
            state
                .metrics
                .fallback(&prev.tier_name, &candidate.tier_name);
            tracing::debug!(from = %prev.tier_name, to = %candidate.tier_name, "falling back");
        }
        body.insert("model".into(), Value::String(candidate.model.clone()));
        let bytes = match serde_json::to_vec(&*body) {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                return Err(UpstreamError {
                    source: ErrorSource::Internal,
                    retry: Retry::No,
                    kind: UpstreamErrorKind::Request(e.to_string()),
                    retry_after: None,
                });
            }
        };
        trail.tried.push(candidate.tier_name.clone());
        trail.last = Some(candidate.clone());
        let mut attempt = 0;
        loop {
            trail.attempts += 1;
            let timed = state
                .telemetry
                .is_some()
                .then(|| (std::time::SystemTime::now(), std::time::Instant::now()));
            let result = state
                .upstream
                .post(target.path, bytes.clone(), target.headers, target.stream)
                .await;
            if let Some((start, clock)) = timed {
                trail.calls.push(UpstreamCall {
                    tier_name: candidate.tier_name.clone(),
                    model: candidate.model.clone(),
                    start,
                    duration: clock.elapsed(),
                    result: match &result {
                        Ok(r) => Ok(r.status().as_u16()),
                        Err(e) => Err(e.label()),
                    },
                });
            }
            let err = match result {
                Ok(response) => {
                    return Ok(Dispatched {
                        response,
                        candidate,
                    });
                }
                Err(e) => e,
            };
            state.metrics.upstream_error(
                &candidate.tier_name,
                &err.label(),
                err.retry == Retry::Yes,
            );
            tracing::debug!(tier = %candidate.tier_name, attempt, error = %err, "upstream attempt failed");
            if err.retry == Retry::No {
                return Err(err);
            }
            if attempt >= max_retries {
                if matches!(err.kind, UpstreamErrorKind::Connect(_)) {
                    // Every tier lives behind the same base URL: if it cannot be reached,
                    // another model there cannot either.
                    return Err(err);
                }
                last_err = Some(err);
                break;
            }
            let wait = match err.retry_after {
                Some(d) if d > MAX_RETRY_AFTER => {
                    last_err = Some(err);
                    break;
                }
                Some(d) => d,
                None => backoff(base, attempt),
            };
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }
    Err(last_err.unwrap_or_else(|| UpstreamError {
        source: ErrorSource::Internal,
        retry: Retry::No,
        kind: UpstreamErrorKind::Request("no tier to call".into()),
        retry_after: None,
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_bounded_jitter() {
        let base = Duration::from_millis(100);
        for attempt in 0..4 {
            let d = backoff(base, attempt);
            let nominal = 100.0 * f64::from(1u32 << attempt);
            let ms = d.as_secs_f64() * 1000.0;
            assert!(
                ms >= nominal * 0.75 - 1e-6 && ms <= nominal * 1.25 + 1e-6,
                "{ms}"
            );
        }
        assert!(backoff(base, 30) <= MAX_BACKOFF.mul_f64(1.25));
    }
}
