//! Shadow tests (`[quality.shadow]`): a sample of calls is sent again, after the client's
//! answer is complete, to a cheaper candidate tier; the two answers are compared (a check,
//! else the judge, both in `tierwise_quality`) and the result goes to the store's
//! `shadow_results` table, which `tierwise quality` reads.
//!
//! # When a call is sampled (stage 7, after shaping; the rule, in order)
//! - `[quality.shadow]` samples at all (`rate` or a category's override > 0), and the draw
//!   falls under the call's category rate;
//! - the decision is a ladder tier with a cheaper candidate (`candidate`, else the tier below);
//! - the mode is not `cascade` (a cascade already tries the cheaper tiers) and the gateway
//!   added no `tool_search` function (its rounds rewrite the request);
//! - **no side effects**: every tool is a plain `function` (or `custom`) tool — hosted tools
//!   the provider runs (web search, file search, code interpreter, MCP, computer use, …) are
//!   excluded, as is `background: true`; a shadow call is never streamed, and a Responses
//!   shadow call is sent with `store: false` so nothing is kept at the provider. The client
//!   never sees the shadow answer, so its tool calls are never executed;
//! - a streamed call offers no tools (its answer is read back from the stream as text).
//!
//! Only the sampled call's shaped body (and the client's authorization headers) is kept in the
//! request context ([`Sampled`]); unsampled calls cost one random draw.
//!
//! # When it runs (stage 10, after the response is complete)
//! Non-streaming: after the response is built and accounted; streaming: when the relay has
//! sent the last byte. [`ShadowRunner::launch`] only checks the cap and takes a slot, then
//! spawns the test: the client's response is never delayed or changed. A 2xx answer only.
//! - **Daily cap**: shadow + judge spend of the current UTC day (read from the store at start,
//!   then kept in memory) at or above `daily_usd_cap` → no call is made and the sample is
//!   logged as `capped`, which the report shows. Tests in flight may overshoot the cap by
//!   their own cost (at most `max_concurrency` tests).
//! - **Concurrency**: at most `max_concurrency` tests in flight; a sampled call finding every
//!   slot taken is skipped (metric `tierwise_shadow_total{outcome="busy"}`), never queued.
//! - A shadow call that fails (status, transport, not JSON) is logged as `failed` (no n).
//! - **Budgets** (keys mode): the candidate call and the two judge calls are charged to the
//!   served call's key and team like any call: an upper estimate (the prompt, the output cap
//!   or `auth.budget_max_output_tokens`, at the model's price) is reserved first and
//!   reconciled with the exact cost after. A refused candidate reservation logs the test as
//!   `failed`, a refused judge reservation as `unjudged`, with the budget's message.
//! - Shutdown waits for tests in flight (at most [`DRAIN`]).
//!
//! Shadow calls go to the provider like served ones (same client, same key or the client's
//! own `Authorization`), without retries. Budgets (virtual keys) are not charged: the store
//! has no budget API yet.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use bytes::Bytes;
use rand::Rng;
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use tierwise_core::config::{DispatchMode, Shadow};
use tierwise_core::cost::{ServiceTier, Usage};
use tierwise_core::request::{Api, RequestView};
use tierwise_quality::check::{self, Answer};
use tierwise_quality::judge;
use tierwise_router::Decision;
use tierwise_store::budget::Reservation;
use tierwise_store::{ShadowLog, ShadowMethod, ShadowRow, ShadowVerdict, TimeRange};
use time::{Date, OffsetDateTime};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::account;
use crate::app::AppState;
use crate::auth::Caller;
use crate::ctx::RequestCtx;
use crate::limits;

/// How long shutdown waits for shadow tests in flight.
pub const DRAIN: Duration = Duration::from_secs(10);

/// Client headers a shadow call carries (authorization, as for the served call).
const KEPT_HEADERS: &[&str] = &[
    "authorization",
    "openai-organization",
    "openai-project",
    "openai-beta",
];

/// A sampled call: what its shadow test needs, kept in the request context.
#[derive(Debug, Clone)]
pub struct Sampled {
    /// The shaped body (as sent to the served tier, before `model` is set).
    pub body: Map<String, Value>,
    pub headers: HeaderMap,
    pub category: String,
}

/// Today's shadow + judge spend.
#[derive(Debug)]
struct Spend {
    day: Date,
    usd: Decimal,
}

/// The shadow runner of one gateway.
#[derive(Debug)]
pub struct ShadowRunner {
    config: Shadow,
    log: Option<Arc<ShadowLog>>,
    permits: Arc<Semaphore>,
    spend: Mutex<Spend>,
}

fn today() -> Date {
    OffsetDateTime::now_utc().date()
}

fn start_of(day: Date) -> OffsetDateTime {
    day.midnight().assume_utc()
}

/// Whether a tool runs at the provider (a side effect the shadow must not repeat).
fn hosted(tool: &Value) -> bool {
    !matches!(
        tool.get("type").and_then(Value::as_str),
        Some("function" | "custom") | None
    )
}

impl ShadowRunner {
    /// The runner for `config`, writing to `log` (`None`: sampling is off). Today's spend is
    /// read from the store.
    pub fn new(config: Shadow, log: Option<Arc<ShadowLog>>) -> ShadowRunner {
        let day = today();
        let spent = log
            .as_ref()
            .and_then(|l| {
                l.spend(&TimeRange {
                    since: Some(start_of(day)),
                    until: None,
                })
                .map_err(|e| tracing::error!(error = %e, "shadow: reading today's spend failed"))
                .ok()
            })
            .unwrap_or_default();
        ShadowRunner {
            permits: Arc::new(Semaphore::new(config.max_concurrency)),
            config,
            log,
            spend: Mutex::new(Spend { day, usd: spent }),
        }
    }

    pub fn enabled(&self) -> bool {
        self.log.is_some() && self.config.enabled()
    }

    /// Stage 7: whether to shadow-test this call (the rule in the module doc), and if so
    /// what the test will need.
    pub fn sample(
        &self,
        ctx: &RequestCtx,
        decision: &Decision,
        body: &Map<String, Value>,
        headers: &HeaderMap,
    ) -> Option<Sampled> {
        if !self.enabled() || decision.mode == DispatchMode::Cascade || ctx.tool_search.is_some() {
            return None;
        }
        let rate = self.config.rate_for(&decision.category.name);
        if rate <= 0.0 || self.config.candidate_for(decision.tier?).is_none() {
            return None;
        }
        let tools = body.get("tools").and_then(Value::as_array);
        if tools.is_some_and(|t| t.iter().any(hosted))
            || body.get("background").and_then(Value::as_bool) == Some(true)
            || (ctx.stream && tools.is_some_and(|t| !t.is_empty()))
        {
            return None;
        }
        if rand::rng().random::<f64>() >= rate {
            return None;
        }
        let mut kept = HeaderMap::new();
        for name in KEPT_HEADERS {
            if let Some(v) = headers.get(*name) {
                kept.insert(*name, v.clone());
            }
        }
        Some(Sampled {
            body: body.clone(),
            headers: kept,
            category: decision.category.name.to_string(),
        })
    }

    fn spent_today(&self) -> Decimal {
        let mut s = self.spend.lock().unwrap_or_else(|e| e.into_inner());
        let day = today();
        if s.day != day {
            *s = Spend {
                day,
                usd: Decimal::ZERO,
            };
        }
        s.usd
    }

    fn add_spend(&self, usd: Decimal) {
        let mut s = self.spend.lock().unwrap_or_else(|e| e.into_inner());
        let day = today();
        if s.day != day {
            *s = Spend {
                day,
                usd: Decimal::ZERO,
            };
        }
        s.usd += usd;
    }

    /// Stage 10, the response complete: starts the test of a sampled call `ctx` served with
    /// `served` (2xx). Returns at once.
    pub fn launch(state: &Arc<AppState>, ctx: &RequestCtx, sampled: Sampled, served: Answer) {
        let runner = &state.shadow;
        let Some(log) = runner.log.clone() else {
            return;
        };
        let Some(served_c) = ctx.candidate() else {
            return;
        };
        let catalog = &state.config.catalog;
        let Some(candidate) = served_c
            .tier
            .and_then(|t| runner.config.candidate_for(t))
            .and_then(|c| catalog.tier(c))
        else {
            return;
        };
        let mut row = ShadowRow {
            id: Uuid::now_v7(),
            request_id: ctx.id,
            time: OffsetDateTime::now_utc(),
            category: sampled.category.clone(),
            served_tier: served_c.tier_name.clone(),
            served_model: served_c.model.clone(),
            candidate_tier: candidate.name.clone(),
            candidate_model: candidate.model.clone(),
            method: None,
            detail: None,
            verdict: ShadowVerdict::Capped,
            shadow_cost_usd: None,
            judge_cost_usd: None,
            error: None,
            prompt: None,
        };
        let Ok(permit) = Arc::clone(&runner.permits).try_acquire_owned() else {
            state.metrics.shadow("busy");
            return;
        };
        let capped = runner.spent_today() >= runner.config.daily_usd_cap;
        let state = Arc::clone(state);
        let api = ctx.api;
        let payer = Payer {
            caller: ctx.caller.clone(),
            prompt_tokens: ctx.prompt_estimate,
        };
        // Detached from the response; shutdown waits for it through the semaphore
        // (`ShadowRunner::drain`), the row's insert included.
        tokio::spawn(async move {
            let _permit = permit;
            let row = if capped {
                row.error = Some(format!(
                    "daily cap of ${} reached",
                    state.shadow.config.daily_usd_cap
                ));
                row
            } else {
                let row = run(&state, api, sampled, served, row, &payer).await;
                state.shadow.add_spend(
                    row.shadow_cost_usd.unwrap_or_default()
                        + row.judge_cost_usd.unwrap_or_default(),
                );
                row
            };
            state.metrics.shadow(row.verdict.as_str());
            let inserted = tokio::task::spawn_blocking(move || log.insert(&row)).await;
            match inserted {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "shadow result lost"),
                Err(e) => tracing::error!(error = %e, "shadow result lost"),
            }
        });
    }

    /// Waits (at most `timeout`) for the tests in flight.
    pub async fn drain(&self, timeout: Duration) {
        let all = u32::try_from(self.config.max_concurrency).unwrap_or(u32::MAX);
        if tokio::time::timeout(timeout, self.permits.acquire_many(all))
            .await
            .is_err()
        {
            tracing::warn!("shadow tests still running at shutdown were abandoned");
        }
    }
}

/// Who pays for a shadow test: the served call's virtual key (and its team), whose budgets
/// the candidate call and the judge calls reserve and reconcile like any other call (issue 17:
/// shadow tests count). Open mode and keys without budgets reserve nothing.
struct Payer {
    caller: Option<Arc<Caller>>,
    prompt_tokens: u64,
}

impl Payer {
    /// Reserves `calls` calls of `model` with this prompt and output cap; `Err` (the test is
    /// not run) when the budget refuses, the store cannot be reached, or the model is unpriced.
    async fn reserve(
        &self,
        state: &AppState,
        model: &str,
        prompt_tokens: u64,
        output_tokens: u64,
        calls: u64,
    ) -> Result<Option<Reservation>, String> {
        let Some(caller) = self.caller.as_deref() else {
            return Ok(None);
        };
        if limits::budget_limits(caller).is_empty() {
            return Ok(None);
        }
        let usage = Usage {
            input_tokens: prompt_tokens,
            cached_tokens: 0,
            output_tokens,
            reasoning_tokens: 0,
            cache_write_tokens: 0,
        };
        let one = account::price(state, model, &usage, ServiceTier::Default)
            .cost
            .ok_or_else(|| format!("budget: `{model}` has no price and the key has a budget"))?;
        limits::reserve(
            state.store.as_ref(),
            caller,
            one * Decimal::from(calls),
            state.config.store.fail_open,
        )
        .await
        .map_err(|e| format!("budget: {e}"))
    }

    /// Releases `held` and books `exact` (the reservation itself when unknown).
    fn settle(&self, state: &AppState, held: Option<Reservation>, exact: Option<Decimal>) {
        if let Some(r) = held {
            state
                .reconciler
                .reconcile(Arc::clone(&state.store), r, exact);
        }
    }
}

fn upstream_path(api: Api) -> &'static str {
    match api {
        Api::ChatCompletions => "/chat/completions",
        Api::Responses => "/responses",
    }
}

/// One non-streaming call: the answer's JSON and its cost, or an error text.
async fn call(
    state: &AppState,
    path: &str,
    body: &Value,
    headers: &HeaderMap,
) -> Result<(Value, Option<Decimal>), String> {
    let bytes = serde_json::to_vec(body).map_err(|e| e.to_string())?;
    let resp = state
        .upstream
        .post(path, Bytes::from(bytes), headers, false)
        .await
        .map_err(|e| e.to_string())?;
    let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
    let json: Value = serde_json::from_slice(&bytes)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| "the answer is not a JSON object".to_string())?;
    let model = body.get("model").and_then(Value::as_str).unwrap_or("");
    let usage = json.get("usage").and_then(Usage::from_openai);
    let cost = usage.and_then(|u| {
        let tier = ServiceTier::from_response(json.get("service_tier").and_then(Value::as_str));
        account::price(state, model, &u, tier).cost
    });
    Ok((json, cost))
}

/// The prompt kept for training (`log.store_bodies` only): the turns as chat messages.
fn prompt_of(api: Api, body: &Value) -> Option<String> {
    let view = match api {
        Api::ChatCompletions => RequestView::chat(body),
        Api::Responses => RequestView::responses(body),
    }
    .ok()?;
    let messages: Vec<Value> = view
        .turns
        .iter()
        .map(|t| json!({"role": t.role, "content": t.text}))
        .collect();
    Some(Value::Array(messages).to_string())
}

/// The test itself: candidate call, then check or judge.
async fn run(
    state: &AppState,
    api: Api,
    sampled: Sampled,
    served: Answer,
    mut row: ShadowRow,
    payer: &Payer,
) -> ShadowRow {
    let mut body = sampled.body;
    body.insert("model".into(), Value::String(row.candidate_model.clone()));
    body.remove("stream");
    body.remove("stream_options");
    if api == Api::Responses {
        body.insert("store".into(), Value::Bool(false));
    }
    let request = Value::Object(body);
    if state.config.log.store_bodies {
        row.prompt = prompt_of(api, &request);
    }
    let output_cap = limits::output_cap(&request, state.config.auth.budget_max_output_tokens);
    let held = match payer
        .reserve(
            state,
            &row.candidate_model,
            payer.prompt_tokens,
            output_cap,
            1,
        )
        .await
    {
        Ok(h) => h,
        Err(e) => {
            row.verdict = ShadowVerdict::Failed;
            row.error = Some(e);
            return row;
        }
    };
    let called = call(state, upstream_path(api), &request, &sampled.headers).await;
    payer.settle(state, held, called.as_ref().ok().and_then(|(_, c)| *c));
    let (answer, cost) = match called {
        Ok(x) => x,
        Err(e) => {
            row.verdict = ShadowVerdict::Failed;
            row.error = Some(e);
            return row;
        }
    };
    row.shadow_cost_usd = cost;
    let candidate = Answer::from_response(&answer);
    if let Some(c) = check::check(&request, &served, &candidate) {
        row.method = Some(ShadowMethod::Check);
        row.detail = Some(c.kind.as_str().to_string());
        row.verdict = if c.agree {
            ShadowVerdict::Agree
        } else {
            ShadowVerdict::Disagree
        };
        row.judge_cost_usd = Some(Decimal::ZERO);
        return row;
    }
    // the judge, both orders at once
    row.method = Some(ShadowMethod::Judge);
    let judge_model = &state.config.quality.shadow.judge;
    let shown = judge::render_request(api, &request);
    let (s, c) = (
        judge::render_answer(&served),
        judge::render_answer(&candidate),
    );
    let first = judge::judge_request(judge_model, &shown, &s, &c);
    let second = judge::judge_request(judge_model, &shown, &c, &s);
    let judge_prompt = first
        .get("messages")
        .and_then(Value::as_array)
        .map_or(0, |m| tierwise_core::tokens::count_messages(m) as u64);
    let held = match payer
        .reserve(
            state,
            judge_model,
            judge_prompt,
            state.config.auth.budget_max_output_tokens,
            2,
        )
        .await
    {
        Ok(h) => h,
        Err(e) => {
            row.method = Some(ShadowMethod::Judge);
            row.verdict = ShadowVerdict::Unjudged;
            row.judge_cost_usd = Some(Decimal::ZERO);
            row.error = Some(e);
            return row;
        }
    };
    let (r1, r2) = tokio::join!(
        call(state, "/chat/completions", &first, &sampled.headers),
        call(state, "/chat/completions", &second, &sampled.headers),
    );
    let judged = [&r1, &r2]
        .iter()
        .map(|r| r.as_ref().ok().and_then(|(_, c)| *c))
        .try_fold(Decimal::ZERO, |sum, c| c.map(|c| sum + c));
    payer.settle(state, held, judged);
    let mut judge_cost = Some(Decimal::ZERO);
    let mut prefs = Vec::with_capacity(2);
    let mut errors = Vec::new();
    for r in [r1, r2] {
        match r {
            Ok((json, cost)) => {
                judge_cost = match (judge_cost, cost) {
                    (Some(a), Some(b)) => Some(a + b),
                    _ => None,
                };
                let text = Answer::from_response(&json).text;
                let pref = judge::parse_preference(&text);
                if pref.is_none() {
                    let short: String = text.chars().take(200).collect();
                    errors.push(format!("judge answer without a verdict: {short:?}"));
                }
                prefs.push(pref);
            }
            Err(e) => {
                errors.push(format!("judge call failed: {e}"));
                prefs.push(None);
            }
        }
    }
    row.judge_cost_usd = judge_cost;
    row.detail = Some(
        prefs
            .iter()
            .map(|p| match p {
                Some(judge::Preference::A) => "A",
                Some(judge::Preference::B) => "B",
                Some(judge::Preference::Tie) => "tie",
                None => "?",
            })
            .collect::<Vec<_>>()
            .join(","),
    );
    row.verdict = judge::combine(prefs[0], prefs[1]);
    if !errors.is_empty() {
        row.error = Some(errors.join("; "));
    }
    row
}
