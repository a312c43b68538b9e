//! The cascade runner: call the cheapest candidate tier non-streaming, score its answer with the
//! answer scorer (`tierwise_router::cascade`), and re-send the original request to the next tier
//! when the score is not above that tier's threshold.
//!
//! Everything is set by `[routing.cascade]` (`tierwise_core::config::Cascade`):
//! - `ladder`: the tiers walked (from the decision's tier up); `max_attempts`: tiers tried at
//!   most — the cheapest `max_attempts − 1` candidates, then the strongest, so the last resort
//!   is always the top of the ladder. The last tier tried is always accepted.
//! - `thresholds`: per tier (else `default`, else the scorer file's `default_threshold`).
//! - `latency_budget_ms`: once an answer is in hand, a later tier is only awaited until the
//!   budget is spent (verdict `timeout`), then the answer in hand is returned. A call abandoned
//!   this way is not priced: its usage never arrives (the provider may still bill it).
//! - `samples = 2`: tiers below the last are asked for `n = 2` (chat completions, when the
//!   client did not set `n`);
//!   two samples that disagree (`tierwise_router::cascade::agreement`) are a rejection (gate
//!   `samples_disagree`); the client gets the first sample only; both are paid.
//! - `logprobs = true`: tiers below the last are asked for `logprobs` (chat completions, when
//!   the client did not set it); they are scored, then removed from the answer the client gets.
//!   The shipped scorer gives them weight 0 (no training data carries log-probabilities), so
//!   they are only asked for when configured or when a scorer file weighs them.
//! - `scorer`: the scorer file (default: the shipped one), loaded once at start
//!   ([`load_scorer`]).
//!
//! An upstream error on a cheaper tier escalates (verdict `error`); only the last tier's error
//! reaches the client, and only when no earlier answer exists. A 2xx answer that is empty or
//! malformed (not JSON, no completion) is a rejection (p 0 and its gate), not an error; a
//! malformed answer is never returned. Every answer received is priced;
//! `x-tierwise-cost-usd` is their sum, the log row's tokens the sum over attempts, and
//! `x-tierwise-attempts` lists `model:verdict:p`. `x-tierwise-tier` / `-model` name the tier
//! whose answer is returned (also when a later tier failed or timed out after it).
//! A client that asked to stream gets the accepted answer as ordinary SSE
//! `chat.completion.chunk` events (chat completions only; a streamed Responses call is sent
//! like a sync one).

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use tierwise_core::Config;
use tierwise_core::config::Cascade;
use tierwise_core::cost::{ServiceTier, Usage};
use tierwise_router::cascade::{
    Analysed, Answer, Attempt, Gate, Plan, Query, SAMPLES_MIN_AGREEMENT, Score, Scorer, Verdict,
    agreement, analyse, attempts_header,
};

use crate::account::{self, Outcome, Priced, answer_text, usage_or_estimate};
use crate::app::AppState;
use crate::ctx::RequestCtx;
use crate::dispatch::{Candidate, Candidates, Target, walk};
use crate::error::ApiError;
use crate::upstream::UpstreamError;

/// The scorer `[routing.cascade] scorer` names, else the shipped one. A configured file that
/// cannot be read or parsed is an error (the gateway does not start); the shipped one failing
/// is logged and cascade calls then run as sync ones.
pub fn load_scorer(config: &Config) -> Result<Option<Scorer>, String> {
    match &config.routing.cascade.scorer {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cascade scorer {}: {e}", path.display()))?;
            Scorer::from_json(&text)
                .map(Some)
                .map_err(|e| format!("cascade scorer {}: {e}", path.display()))
        }
        None => match Scorer::shipped() {
            Ok(s) => Ok(Some(s)),
            Err(e) => {
                tracing::warn!(error = %e, "cascade scorer not loaded: cascade runs as sync");
                Ok(None)
            }
        },
    }
}

/// The candidates the cascade tries: those on the configured ladder (a model outside the
/// ladder is kept), at most `max_attempts` — the cheapest `max_attempts − 1`, then the last.
/// When the ladder leaves nothing, the decision's own candidate.
pub fn plan_candidates(candidates: Candidates, cfg: &Cascade) -> Vec<Candidate> {
    let all: Vec<Candidate> = candidates.collect();
    let mut list: Vec<Candidate> = all
        .iter()
        .filter(|c| c.tier.is_none_or(|t| cfg.ladder.contains(&t)))
        .cloned()
        .collect();
    if list.is_empty() {
        list.extend(all.into_iter().next());
    }
    let max = cfg.max_attempts.max(1);
    if list.len() > max {
        let last = list.pop();
        list.truncate(max - 1);
        list.extend(last);
    }
    list
}

/// One answer received.
struct Got {
    json: Value,
    bytes: axum::body::Bytes,
    usage: Usage,
    estimated: bool,
    service_tier: ServiceTier,
    candidate: Candidate,
}

fn add(a: &mut Option<Decimal>, b: Option<Decimal>) {
    *a = match (*a, b) {
        (Some(x), Some(y)) => Some(x + y),
        _ => None,
    };
}

/// The answer of sample `i` as a one-choice completion (for scoring).
fn sample(json: &Value, i: usize) -> Option<Value> {
    let choice = json.get("choices")?.as_array()?.get(i)?.clone();
    let mut one = json.clone();
    one["choices"] = json!([choice]);
    Some(one)
}

/// Removes what the cascade asked for and the client did not: samples beyond the first, and
/// token log-probabilities. Returns whether the body changed.
fn strip(json: &mut Value, extra_samples: bool, logprobs: bool) -> bool {
    let Some(choices) = json.get_mut("choices").and_then(Value::as_array_mut) else {
        return false;
    };
    let mut changed = false;
    if extra_samples && choices.len() > 1 {
        choices.truncate(1);
        changed = true;
    }
    if logprobs {
        for c in choices.iter_mut() {
            if let Some(l) = c.get_mut("logprobs")
                && !l.is_null()
            {
                *l = Value::Null;
                changed = true;
            }
        }
    }
    changed
}

/// Runs the cascade and builds the client's response (accounted inside).
#[allow(
    clippy::too_many_arguments,
    reason = "one call site, all parts distinct"
)]
pub async fn run(
    state: &AppState,
    scorer: &Scorer,
    ctx: &mut RequestCtx,
    query: &Query,
    candidates: Candidates,
    body: &mut Map<String, Value>,
    target: Target<'_>,
    client_stream: bool,
    client_wants_usage: bool,
) -> Result<Response, ApiError> {
    let cfg = &state.config.routing.cascade;
    // The cascade does not answer `tool_search` calls: plain pruning.
    if let Some(session) = ctx.tool_search.take() {
        session.withdraw(body);
    }
    body.remove("stream");
    body.remove("stream_options");
    let target = Target {
        stream: false,
        ..target
    };
    let list = plan_candidates(candidates, cfg);
    let n = list.len();
    let plan = Plan::per_tier(
        list.iter()
            .map(|c| cfg.threshold(c.tier, scorer.default_threshold()))
            .collect(),
    );
    // `n` and `logprobs` are chat-completions parameters (the Responses API has neither)
    let chat = target.path == "/chat/completions";
    let ask_samples = chat && cfg.samples >= 2 && !body.contains_key("n");
    let ask_logprobs =
        chat && (cfg.logprobs || scorer.uses_logprobs()) && !body.contains_key("logprobs");
    let budget = Duration::from_millis(cfg.latency_budget_ms);
    let mut previous: Vec<Analysed> = Vec::new();
    // The answer to return and its index in `ctx.cascade`.
    let mut best: Option<(Got, usize)> = None;
    let mut usage = Usage::default();
    let mut priced = Priced {
        cost: Some(Decimal::ZERO),
        baseline: Some(Decimal::ZERO),
    };
    let mut last_err: Option<UpstreamError> = None;
    let started = Instant::now();
    for (i, candidate) in list.into_iter().enumerate() {
        let cheap = i + 1 < n;
        let samples = cheap && ask_samples;
        let logprobs = cheap && ask_logprobs;
        if samples {
            body.insert("n".into(), json!(2));
        } else if ask_samples {
            body.remove("n");
        }
        if logprobs {
            body.insert("logprobs".into(), json!(true));
        } else if ask_logprobs {
            body.remove("logprobs");
        }
        let model = candidate.model.clone();
        let call = async {
            match walk(
                state,
                Candidates::single(candidate.clone()),
                body,
                target,
                &mut ctx.trail,
            )
            .await
            {
                Ok(d) => read(state, d.response, candidate.clone()).await,
                Err(e) => Err(e),
            }
        };
        let got = if best.is_some() {
            let remaining = budget.saturating_sub(started.elapsed());
            match tokio::time::timeout(remaining, call).await {
                Ok(r) => r,
                Err(_) => {
                    ctx.cascade.push(Attempt {
                        model,
                        verdict: Verdict::Timeout,
                        p: None,
                        gate: None,
                    });
                    break;
                }
            }
        } else {
            call.await
        };
        let mut got = match got {
            Ok(mut g) => {
                let reported = g.json.get("usage").and_then(Usage::from_openai);
                (g.usage, g.estimated) = usage_or_estimate(reported, ctx, &answer_text(&g.json));
                g
            }
            Err(e) => {
                ctx.cascade.push(Attempt {
                    model,
                    verdict: Verdict::Error,
                    p: None,
                    gate: None,
                });
                last_err = Some(e);
                if started.elapsed() > budget && best.is_some() {
                    break;
                }
                continue;
            }
        };
        let p = account::price(state, &got.candidate.model, &got.usage, got.service_tier);
        add(&mut priced.cost, p.cost);
        add(&mut priced.baseline, p.baseline);
        usage.input_tokens += got.usage.input_tokens;
        usage.cached_tokens += got.usage.cached_tokens;
        usage.output_tokens += got.usage.output_tokens;
        usage.reasoning_tokens += got.usage.reasoning_tokens;
        let analysed = analyse(query, &Answer::from_response(&got.json));
        let refs: Vec<&Analysed> = previous.iter().collect();
        let mut score = scorer.score(query, &analysed, &refs);
        if samples
            && score.gate.is_none()
            && let Some(second) = sample(&got.json, 1)
        {
            let other = analyse(query, &Answer::from_response(&second));
            if agreement(&analysed, &other).is_some_and(|a| a < SAMPLES_MIN_AGREEMENT) {
                score = Score {
                    p: 0.0,
                    gate: Some(Gate::SamplesDisagree),
                };
            }
        }
        let malformed = analysed.gate == Some(Gate::Malformed);
        let accept =
            !malformed && (plan.accept(i, n, &score) || (started.elapsed() > budget && cheap));
        ctx.cascade.push(Attempt {
            model: got.candidate.model.clone(),
            verdict: if accept {
                Verdict::Accepted
            } else {
                Verdict::Rejected
            },
            p: Some(score.p),
            gate: score.gate,
        });
        previous.push(analysed);
        if malformed {
            continue;
        }
        if strip(&mut got.json, samples, logprobs)
            && let Ok(b) = serde_json::to_vec(&got.json)
        {
            got.bytes = b.into();
        }
        best = Some((got, ctx.cascade.len() - 1));
        if accept {
            break;
        }
    }
    let Some((got, at)) = best else {
        let err = last_err.unwrap_or_else(|| UpstreamError::invalid_response("no tier answered"));
        return Err(ApiError::Upstream(err));
    };
    // Nothing accepted (the tiers after it failed or timed out): the answer in hand is returned,
    // and the headers name its tier.
    if let Some(a) = ctx.cascade.get_mut(at) {
        a.verdict = Verdict::Accepted;
    }
    ctx.trail.last = Some(got.candidate.clone());
    let header_text = attempts_header(&ctx.cascade);
    let mut resp = if client_stream {
        sse(&got.json, client_wants_usage)
    } else {
        let mut r = Response::new(Body::from(got.bytes.clone()));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    };
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    priced.insert_headers(h);
    if let Ok(v) = HeaderValue::from_str(&header_text) {
        h.insert("x-tierwise-attempts", v);
    }
    for (name, value) in ctx.decision_headers() {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    account::finish(
        state,
        ctx,
        Outcome {
            status: 200,
            usage,
            usage_estimated: got.estimated,
            service_tier: got.service_tier,
            priced,
            error: None,
            response_body: state
                .config
                .log
                .store_bodies
                .then(|| String::from_utf8_lossy(&got.bytes).into_owned()),
            response_id: crate::proxy::response_id(ctx, &got.json),
        },
    );
    Ok(resp)
}

/// Reads a 2xx answer (usage is filled in by the caller). A body that is not a JSON object is
/// still an answer (priced on the prompt estimate): `json` is `null`, which the scorer gates as
/// malformed.
async fn read(
    state: &AppState,
    response: reqwest::Response,
    candidate: Candidate,
) -> Result<Got, UpstreamError> {
    let bytes = response
        .bytes()
        .await
        .map_err(|e| UpstreamError::from_reqwest(&e))?;
    let json: Value = match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) if v.is_object() => v,
        _ => {
            state
                .metrics
                .upstream_error(&candidate.model, "invalid_response", false);
            Value::Null
        }
    };
    let service_tier = ServiceTier::from_response(json.get("service_tier").and_then(Value::as_str));
    Ok(Got {
        json,
        bytes,
        usage: Usage::default(),
        estimated: false,
        service_tier,
        candidate,
    })
}

/// A chat completion as SSE: role chunk, content chunk, tool-call chunk, finish chunk, usage
/// chunk (when asked), `[DONE]`.
pub fn sse(completion: &Value, include_usage: bool) -> Response {
    let base = |delta: Value, finish: Value| {
        json!({
            "id": completion.get("id").cloned().unwrap_or(Value::Null),
            "object": "chat.completion.chunk",
            "created": completion.get("created").cloned().unwrap_or(json!(0)),
            "model": completion.get("model").cloned().unwrap_or(Value::Null),
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        })
    };
    let msg = completion
        .pointer("/choices/0/message")
        .cloned()
        .unwrap_or(json!({}));
    let mut events = vec![base(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    if let Some(c) = msg.get("content").and_then(Value::as_str)
        && !c.is_empty()
    {
        events.push(base(json!({"content": c}), Value::Null));
    }
    if let Some(Value::Array(calls)) = msg.get("tool_calls") {
        let calls: Vec<Value> = calls
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut c = c.clone();
                if let Value::Object(m) = &mut c {
                    m.insert("index".into(), json!(i));
                }
                c
            })
            .collect();
        events.push(base(json!({"tool_calls": calls}), Value::Null));
    }
    let finish = completion
        .pointer("/choices/0/finish_reason")
        .cloned()
        .unwrap_or(json!("stop"));
    events.push(base(json!({}), finish));
    if include_usage && let Some(u) = completion.get("usage") {
        let mut last = base(json!({}), Value::Null);
        last["choices"] = json!([]);
        last["usage"] = u.clone();
        events.push(last);
    }
    let mut text = String::new();
    for e in events {
        text.push_str("data: ");
        text.push_str(&e.to_string());
        text.push_str("\n\n");
    }
    text.push_str("data: [DONE]\n\n");
    let mut r = Response::new(Body::from(text));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    r
}
