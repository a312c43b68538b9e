//! Per-request state: one [`RequestCtx`] per proxied request, created when it arrives and
//! filled stage by stage (the table in `app.rs` says which stage writes which field). What one
//! stage hands the next travels here, typed — never in the JSON body.

use std::time::Instant;

use tierwise_core::request::Api;
use tierwise_core::signals::Hints;
use tierwise_router::Decision;
use tierwise_router::cascade::Attempt;
use time::OffsetDateTime;
use uuid::Uuid;

use std::sync::Arc;

use rust_decimal::Decimal;

use crate::auth::Caller;
use crate::dispatch::{Candidate, Trail};
use crate::limits::{Held, RateRemaining};
use crate::shadow::Sampled;
use crate::shape::{ToolShaping, ascii_header};
use crate::tools::ToolSearchSession;

/// Per-request state (see the module docs).
#[derive(Debug, Clone)]
pub struct RequestCtx {
    /// UUID v7, also the log row id and the `x-tierwise-request-id` header.
    pub id: Uuid,
    pub received: OffsetDateTime,
    pub started: Instant,
    pub api: Api,
    /// Set by parse.
    pub requested_model: String,
    /// Set by parse.
    pub stream: bool,
    /// Set by hints.
    pub hints: Hints,
    /// Set by signals: prompt + tool-schema tokens (o200k), the estimate when usage is absent.
    pub prompt_estimate: u64,
    /// Set by decide.
    pub decision: Option<Decision>,
    /// Set by read, only with `log.store_bodies`.
    pub request_body: Option<String>,
    /// Set by shape: tools (and their schema tokens) offered vs sent; replaced by the final
    /// round's counts when dispatch answered `tool_search` rounds.
    pub tools: ToolShaping,
    /// Set by shape when it added the `tool_search` function; taken by dispatch, which answers
    /// the rounds (or by the cascade, which withdraws the function).
    pub tool_search: Option<ToolSearchSession>,
    /// Set by dispatch: upstream calls, tiers tried, the last candidate.
    pub trail: Trail,
    /// Set by the cascade runner: each tier it tried with its verdict (`x-tierwise-attempts`).
    pub cascade: Vec<Attempt>,
    /// Set by auth (keys mode): the key and its team.
    pub caller: Option<Arc<Caller>>,
    /// Set by admit: the budget reservation, reconciled (once) by account.
    pub reservation: Option<Arc<Held>>,
    /// Set by admit: the least budget headroom after this call's reservation.
    pub budget_remaining: Option<Decimal>,
    /// Set by admit: what is left of the key's rpm/tpm this minute.
    pub rate: RateRemaining,
    /// Set by receive when telemetry is on: the client's `traceparent` (the request span's
    /// parent).
    pub trace_parent: Option<opentelemetry::trace::SpanContext>,
    /// Set by shape when the call is sampled for a shadow test; taken when the response is
    /// complete (`shadow.rs`).
    pub shadow: Option<Sampled>,
}

impl RequestCtx {
    pub fn new(api: Api) -> RequestCtx {
        RequestCtx {
            id: Uuid::now_v7(),
            received: OffsetDateTime::now_utc(),
            started: Instant::now(),
            api,
            requested_model: String::new(),
            stream: false,
            hints: Hints::default(),
            prompt_estimate: 0,
            decision: None,
            request_body: None,
            tools: ToolShaping::default(),
            tool_search: None,
            trail: Trail::default(),
            cascade: Vec::new(),
            caller: None,
            reservation: None,
            budget_remaining: None,
            rate: RateRemaining::default(),
            trace_parent: None,
            shadow: None,
        }
    }

    pub fn endpoint(&self) -> &'static str {
        match self.api {
            Api::ChatCompletions => "chat.completions",
            Api::Responses => "responses",
        }
    }

    /// The candidate that answered or was last tried.
    pub fn candidate(&self) -> Option<&Candidate> {
        self.trail.last.as_ref()
    }

    /// Tier name for headers, metrics and the log: the tier that answered, else the decided one.
    pub fn tier_name(&self) -> &str {
        self.candidate()
            .map(|c| c.tier_name.as_str())
            .or(self.decision.as_ref().map(|d| d.tier_name.as_str()))
            .unwrap_or("none")
    }

    pub fn model(&self) -> &str {
        self.candidate()
            .map(|c| c.model.as_str())
            .or(self.decision.as_ref().map(|d| d.model.as_str()))
            .unwrap_or("")
    }

    /// The router's reason, plus the path taken after it: a cascade's attempts with their
    /// verdicts (an escalation after a rejected answer is not a fallback), else the fallback
    /// path after upstream errors.
    pub fn reason(&self) -> String {
        let Some(d) = &self.decision else {
            return String::new();
        };
        if self.cascade.len() > 1 {
            let steps: Vec<String> = self
                .cascade
                .iter()
                .map(|a| format!("{} {}", a.model, a.verdict.as_str()))
                .collect();
            format!("{} (cascade: {})", d.reason, steps.join(" → "))
        } else if self.trail.tried.len() > 1 {
            format!("{} (fell back: {})", d.reason, self.trail.tried.join(" → "))
        } else {
            d.reason.clone()
        }
    }

    /// `x-tierwise-*` headers describing the decision (ASCII-safe).
    pub fn decision_headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![("x-tierwise-request-id", self.id.to_string())];
        if self.decision.is_some() {
            h.push(("x-tierwise-tier", ascii_header(self.tier_name())));
            h.push(("x-tierwise-model", ascii_header(self.model())));
            h.push(("x-tierwise-reason", ascii_header(&self.reason())));
        }
        if let Some(d) = &self.decision {
            h.push(("x-tierwise-category", ascii_header(&d.category.name)));
            h.push((
                "x-tierwise-category-source",
                d.category.source.as_str().to_string(),
            ));
        }
        if self.tools.offered > 0 {
            h.push(("x-tierwise-tools-offered", self.tools.offered.to_string()));
            h.push(("x-tierwise-tools-sent", self.tools.sent.to_string()));
        }
        if let Some(r) = self.budget_remaining {
            h.push((
                "x-tierwise-budget-remaining-usd",
                r.max(Decimal::ZERO).normalize().to_string(),
            ));
        }
        if let Some(n) = self.rate.requests {
            h.push(("x-ratelimit-remaining-requests", n.to_string()));
        }
        if let Some(n) = self.rate.tokens {
            h.push(("x-ratelimit-remaining-tokens", n.to_string()));
        }
        h
    }
}
