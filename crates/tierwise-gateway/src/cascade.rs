//! The cascade runner (issue 6): call the cheapest candidate tier non-streaming, score its
//! answer with the answer scorer (`tierwise_router::cascade`), and re-send the original request
//! to the next tier when the score is below the scorer's default threshold.
//!
//! - At most [`MAX_ATTEMPTS`] tiers; the last one tried is always accepted.
//! - Latency budget [`LATENCY_BUDGET`]: once spent, the answer in hand is returned.
//! - An upstream error on a cheaper tier escalates (verdict `error`); only the last tier's error
//!   reaches the client, and only when no earlier answer exists.
//! - Every attempt is priced; `x-tierwise-cost-usd` is their sum, and the log row's tokens are
//!   the sum over attempts. `x-tierwise-attempts` lists `model:verdict:p`.
//! - A client that asked to stream gets the accepted answer as ordinary SSE
//!   `chat.completion.chunk` events (chat completions only; a streamed Responses call is sent
//!   like a sync one).

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use tierwise_core::cost::{ServiceTier, Usage};
use tierwise_router::cascade::{
    Analysed, Answer, Attempt, Plan, Query, Scorer, Verdict, analyse, attempts_header,
};

use crate::account::{self, Outcome, Priced, RequestCtx, answer_text, usage_or_estimate};
use crate::app::AppState;
use crate::dispatch::{Candidates, Target, walk};
use crate::error::ApiError;
use crate::upstream::UpstreamError;

/// Tiers tried at most.
pub const MAX_ATTEMPTS: usize = 3;
/// Wall time after which the answer in hand is returned.
pub const LATENCY_BUDGET: Duration = Duration::from_secs(60);

/// One answer received.
struct Got {
    json: Value,
    bytes: axum::body::Bytes,
    usage: Usage,
    estimated: bool,
    service_tier: ServiceTier,
    model: String,
}

fn add(a: &mut Option<Decimal>, b: Option<Decimal>) {
    *a = match (*a, b) {
        (Some(x), Some(y)) => Some(x + y),
        _ => None,
    };
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
    body.remove("stream");
    body.remove("stream_options");
    let target = Target {
        stream: false,
        ..target
    };
    let list: Vec<_> = candidates.take(MAX_ATTEMPTS).collect();
    let n = list.len();
    let plan = Plan::uniform(scorer.default_threshold(), n);
    let mut attempts: Vec<Attempt> = Vec::new();
    let mut previous: Vec<Analysed> = Vec::new();
    let mut best: Option<Got> = None;
    let mut usage = Usage::default();
    let mut priced = Priced {
        cost: Some(Decimal::ZERO),
        baseline: Some(Decimal::ZERO),
    };
    let mut last_err: Option<UpstreamError> = None;
    let started = Instant::now();
    for (i, candidate) in list.into_iter().enumerate() {
        let model = candidate.model.clone();
        let got = match walk(
            state,
            Candidates::single(candidate),
            body,
            target,
            &mut ctx.trail,
        )
        .await
        {
            Ok(d) => read(state, ctx, d.response, model.clone()).await,
            Err(e) => Err(e),
        };
        let got = match got {
            Ok(g) => g,
            Err(e) => {
                attempts.push(Attempt {
                    model,
                    verdict: Verdict::Error,
                    p: None,
                    gate: None,
                });
                last_err = Some(e);
                if started.elapsed() > LATENCY_BUDGET && best.is_some() {
                    break;
                }
                continue;
            }
        };
        let p = account::price(state, &got.model, &got.usage, got.service_tier);
        add(&mut priced.cost, p.cost);
        add(&mut priced.baseline, p.baseline);
        usage.input_tokens += got.usage.input_tokens;
        usage.cached_tokens += got.usage.cached_tokens;
        usage.output_tokens += got.usage.output_tokens;
        usage.reasoning_tokens += got.usage.reasoning_tokens;
        let analysed = analyse(query, &Answer::from_response(&got.json));
        let refs: Vec<&Analysed> = previous.iter().collect();
        let score = scorer.score(query, &analysed, &refs);
        let accept = plan.accept(i, n, &score) || started.elapsed() > LATENCY_BUDGET;
        attempts.push(Attempt {
            model: got.model.clone(),
            verdict: if accept {
                Verdict::Accepted
            } else {
                Verdict::Rejected
            },
            p: Some(score.p),
            gate: score.gate,
        });
        previous.push(analysed);
        best = Some(got);
        if accept {
            break;
        }
    }
    // Nothing accepted (the tiers after it failed): the last answer received is returned.
    if !attempts.iter().any(|a| a.verdict == Verdict::Accepted)
        && let Some(last) = attempts
            .iter_mut()
            .rev()
            .find(|a| a.verdict != Verdict::Error)
    {
        last.verdict = Verdict::Accepted;
    }
    let header_text = attempts_header(&attempts);
    let Some(got) = best else {
        let err = last_err.unwrap_or_else(|| UpstreamError::invalid_response("no tier answered"));
        return Err(ApiError::Upstream(err));
    };
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
    for (name, value) in [
        ("x-tierwise-cost-usd", priced.cost),
        ("x-tierwise-baseline-cost-usd", priced.baseline),
    ] {
        if let Some(v) = value
            && let Ok(v) = HeaderValue::from_str(&v.to_string())
        {
            h.insert(name, v);
        }
    }
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
        },
    );
    Ok(resp)
}

async fn read(
    state: &AppState,
    ctx: &RequestCtx,
    response: reqwest::Response,
    model: String,
) -> Result<Got, UpstreamError> {
    let bytes = response
        .bytes()
        .await
        .map_err(|e| UpstreamError::from_reqwest(&e))?;
    let json: Value = serde_json::from_slice(&bytes)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| {
            state
                .metrics
                .upstream_error(&model, "invalid_response", false);
            UpstreamError::invalid_response("the answer is not a JSON object")
        })?;
    let reported = json.get("usage").and_then(Usage::from_openai);
    let text = answer_text(&json);
    let (usage, estimated) = usage_or_estimate(reported, ctx, &text);
    let service_tier = ServiceTier::from_response(json.get("service_tier").and_then(Value::as_str));
    Ok(Got {
        json,
        bytes,
        usage,
        estimated,
        service_tier,
        model,
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
