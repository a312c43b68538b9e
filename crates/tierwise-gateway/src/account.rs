//! Accounting: the price of what happened, metrics, and the log row (read from the request's
//! [`RequestCtx`]).

use rust_decimal::Decimal;
use serde_json::Value;
use tierwise_core::cost::{ServiceTier, Usage, cost};
use tierwise_core::tokens;
use tierwise_store::RequestRow;

use crate::app::AppState;
use crate::ctx::RequestCtx;

/// What a priced call cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Priced {
    /// `None` when the model has no price (never guessed as zero).
    pub cost: Option<Decimal>,
    /// The same usage on the baseline tier at list price (default service tier).
    pub baseline: Option<Decimal>,
}

impl Priced {
    /// The cost headers' names and values: what a non-streaming response carries as headers and
    /// a stream as its closing comment lines. A price the catalog lacks is `None` (left out).
    pub fn named(&self) -> [(&'static str, Option<Decimal>); 2] {
        [
            ("x-tierwise-cost-usd", self.cost),
            ("x-tierwise-baseline-cost-usd", self.baseline),
        ]
    }

    /// Sets the cost headers on a response ([`Priced::named`]).
    pub fn insert_headers(&self, h: &mut axum::http::HeaderMap) {
        for (name, value) in self.named() {
            if let Some(v) = value
                && let Ok(v) = axum::http::HeaderValue::from_str(&v.to_string())
            {
                h.insert(name, v);
            }
        }
    }
}

/// Prices `usage` on `model` (billed on `service_tier`) and on the baseline tier.
pub fn price(state: &AppState, model: &str, usage: &Usage, service_tier: ServiceTier) -> Priced {
    let catalog = &state.config.catalog;
    let mult = catalog.multipliers();
    let cost_of = |prices, tier| match cost(prices, usage, tier, mult) {
        Ok(c) => Some(c.total),
        Err(e) => {
            tracing::error!(error = %e, "pricing failed");
            None
        }
    };
    Priced {
        cost: catalog
            .prices_for(model)
            .and_then(|p| cost_of(p, service_tier)),
        baseline: cost_of(&catalog.baseline().1.prices, ServiceTier::Default),
    }
}

/// Usage the upstream reported, else an o200k estimate (prompt estimate + answer text).
pub fn usage_or_estimate(
    reported: Option<Usage>,
    ctx: &RequestCtx,
    answer_text: &str,
) -> (Usage, bool) {
    match reported {
        Some(u) => (u, false),
        None => (
            Usage {
                input_tokens: ctx.prompt_estimate,
                cached_tokens: 0,
                output_tokens: tokens::count(answer_text) as u64,
                reasoning_tokens: 0,
                cache_write_tokens: 0,
            },
            true,
        ),
    }
}

/// The visible text of a complete answer (chat or Responses), for estimates and stored bodies.
pub fn answer_text(v: &Value) -> String {
    let mut out = String::new();
    let mut push = |s: &str| {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(s);
    };
    if let Some(choices) = v.get("choices").and_then(Value::as_array) {
        for c in choices {
            if let Some(s) = c.pointer("/message/content").and_then(Value::as_str) {
                push(s);
            }
            for call in c
                .pointer("/message/tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(f) = call.get("function") {
                    push(f.get("name").and_then(Value::as_str).unwrap_or(""));
                    push(f.get("arguments").and_then(Value::as_str).unwrap_or(""));
                }
            }
        }
    }
    if let Some(items) = v.get("output").and_then(Value::as_array) {
        for item in items {
            for part in item
                .get("content")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(s) = part.get("text").and_then(Value::as_str) {
                    push(s);
                }
            }
            if let Some(args) = item.get("arguments").and_then(Value::as_str) {
                push(item.get("name").and_then(Value::as_str).unwrap_or(""));
                push(args);
            }
        }
    }
    out
}

/// How a request ended.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub status: u16,
    pub usage: Usage,
    pub usage_estimated: bool,
    pub service_tier: ServiceTier,
    pub priced: Priced,
    pub error: Option<String>,
    pub response_body: Option<String>,
    /// The Responses answer's `id` (a later call may continue it: `previous_response_id`).
    pub response_id: Option<String>,
}

/// Records the request: metrics, a debug trace line, and the log row (a channel push).
pub fn finish(state: &AppState, ctx: &RequestCtx, outcome: Outcome) {
    let elapsed = ctx.started.elapsed();
    let tier = ctx.tier_name().to_string();
    let m = &state.metrics;
    m.request(
        ctx.endpoint(),
        &tier,
        outcome.status,
        ctx.stream,
        elapsed.as_secs_f64(),
    );
    m.usage(
        &tier,
        &outcome.usage,
        outcome.priced.cost,
        outcome.priced.baseline,
    );
    if ctx.tools.offered > 0 {
        m.tools(&ctx.tools);
    }
    if let Some(d) = &ctx.decision {
        m.category(&d.category.name, d.category.source.as_str(), &tier);
    }
    tracing::debug!(
        id = %ctx.id,
        endpoint = ctx.endpoint(),
        tier = %tier,
        model = ctx.model(),
        status = outcome.status,
        tools_offered = ctx.tools.offered,
        tools_sent = ctx.tools.sent,
        tool_tokens_offered = ctx.tools.tokens_offered,
        tool_tokens_sent = ctx.tools.tokens_sent,
        ms = elapsed.as_secs_f64() * 1e3,
        "request"
    );
    if let Some(t) = &state.telemetry {
        t.record(ctx, &outcome, elapsed);
    }
    if let (Some(id), Some(candidate)) = (&outcome.response_id, ctx.candidate())
        && (200..300).contains(&outcome.status)
    {
        state.conversations.remember(id, candidate);
    }
    let decision = ctx.decision.as_ref();
    let row = RequestRow {
        id: ctx.id,
        time: ctx.received,
        endpoint: ctx.endpoint().to_string(),
        requested_model: ctx.requested_model.clone(),
        tier,
        model: ctx.model().to_string(),
        reason: ctx.reason(),
        category: decision.map(|d| d.category.name.to_string()),
        category_source: decision.map(|d| d.category.source.as_str().to_string()),
        role: ctx.hints.role.clone(),
        mode: decision
            .map(|d| d.mode.as_str())
            .unwrap_or("sync")
            .to_string(),
        service_tier: outcome.service_tier.as_str().to_string(),
        input_tokens: outcome.usage.input_tokens,
        cached_tokens: outcome.usage.cached_tokens,
        output_tokens: outcome.usage.output_tokens,
        reasoning_tokens: outcome.usage.reasoning_tokens,
        usage_estimated: outcome.usage_estimated,
        cost_usd: outcome.priced.cost,
        baseline_cost_usd: outcome.priced.baseline,
        latency_ms: elapsed.as_secs_f64() * 1e3,
        status: outcome.status,
        streamed: ctx.stream,
        attempts: ctx.trail.attempts,
        tiers_tried: ctx.trail.tried.clone(),
        error: outcome.error,
        request_body: ctx.request_body.clone(),
        response_body: if state.config.log.store_bodies {
            outcome.response_body
        } else {
            None
        },
        tools: tierwise_store::ToolCounts {
            offered: ctx.tools.offered as u64,
            sent: ctx.tools.sent as u64,
            tokens_offered: ctx.tools.tokens_offered as u64,
            tokens_sent: ctx.tools.tokens_sent as u64,
        },
        key_id: ctx.caller.as_ref().map(|c| c.key.id.clone()),
        team: ctx.caller.as_ref().and_then(|c| c.key.team.clone()),
    };
    if let Some(held) = &ctx.reservation
        && let Some(r) = held.take()
    {
        state
            .reconciler
            .reconcile(std::sync::Arc::clone(&state.store), r, outcome.priced.cost);
    }
    if let Some(c) = &ctx.caller {
        m.by_key(&c.key.id, c.key.team.as_deref(), outcome.priced.cost);
    }
    if let Err(e) = state.store.log().record(row) {
        tracing::error!(error = %e, id = %ctx.id, "request log row lost");
    }
}

/// Accounts a request that failed with `status` before or during dispatch: nothing was billed.
pub fn finish_error(state: &AppState, ctx: &RequestCtx, status: u16, error: String) {
    finish(
        state,
        ctx,
        Outcome {
            status,
            priced: Priced {
                cost: Some(Decimal::ZERO),
                baseline: Some(Decimal::ZERO),
            },
            error: Some(error),
            ..Outcome::default()
        },
    );
}
