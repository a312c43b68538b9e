//! The proxy endpoints, `POST /v1/chat/completions` and `POST /v1/responses`: stages 2–10 of
//! the lifecycle in `app.rs`.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tierwise_core::config::DispatchMode;
use tierwise_core::cost::{ServiceTier, Usage};
use tierwise_core::request::{Api, RequestView};
use tierwise_core::signals::{Hints, Signals};
use tierwise_quality::check::Answer;
use tierwise_router::Decision;
use tierwise_router::cascade::Query as CascadeQuery;

use tierwise_core::config::AuthMode;

use crate::account::{self, Outcome, answer_text, usage_or_estimate};
use crate::app::AppState;
use crate::auth::{self, Caller};
use crate::cascade;
use crate::conversation;
use crate::ctx::RequestCtx;
use crate::dispatch::{Candidates, Dispatched, Target, dispatch};
use crate::error::ApiError;
use crate::limits::{self, Held};
use crate::shadow::ShadowRunner;
use crate::shape::{hints_from_headers, hints_from_metadata, shape};
use crate::stream;
use crate::upstream::{UpstreamError, passback_headers};

/// Bodies above this size get their signals computed on a blocking thread.
const BLOCKING_ABOVE: usize = 64 * 1024;

pub async fn chat(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(state, Api::ChatCompletions, headers, body).await
}

pub async fn responses(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(state, Api::Responses, headers, body).await
}

fn upstream_path(api: Api) -> &'static str {
    match api {
        Api::ChatCompletions => "/chat/completions",
        Api::Responses => "/responses",
    }
}

/// Adds the `x-tierwise-*` decision headers.
fn decorate(resp: &mut Response, ctx: &RequestCtx) {
    let h = resp.headers_mut();
    for (name, value) in ctx.decision_headers() {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
}

async fn handle(
    state: Arc<AppState>,
    api: Api,
    mut headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut ctx = RequestCtx::new(api);
    if state.telemetry.is_some() {
        ctx.trace_parent = crate::telemetry::Telemetry::remote_parent(&headers);
    }
    // 1b auth: in keys mode the caller's key is ours to check, never the provider's.
    let result = match auth::authenticate(&state, &headers).await {
        Ok(caller) => {
            ctx.caller = caller;
            if state.config.auth.mode == AuthMode::Keys {
                headers.remove(header::AUTHORIZATION);
            }
            run(&state, &mut ctx, &headers, body).await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(resp) => resp,
        Err(e) => {
            e.log();
            account::finish_error(&state, &ctx, e.status().as_u16(), e.to_string());
            let mut resp = e.into_response();
            decorate(&mut resp, &ctx);
            resp
        }
    }
}

/// Stages 2–9. On `Ok` the request is accounted (or will be, when its stream ends); on `Err`
/// the caller accounts it.
async fn run(
    state: &Arc<AppState>,
    ctx: &mut RequestCtx,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    // 2 read
    let bytes = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::BodyTooLarge {
                limit: state.config.max_body_bytes,
            }
        } else {
            ApiError::BodyRead(rejection.body_text())
        }
    })?;
    if state.config.log.store_bodies {
        ctx.request_body = Some(String::from_utf8_lossy(&bytes).into_owned());
    }
    // 3 parse (hostile input: nesting checked before parsing, array lengths before reading)
    crate::input_limits::check_depth(&bytes, &state.config.limits)?;
    let value: Value =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    crate::input_limits::check_counts(&value, ctx.api, &state.config.limits)?;
    let view = match ctx.api {
        Api::ChatCompletions => RequestView::chat(&value),
        Api::Responses => RequestView::responses(&value),
    }
    .map_err(ApiError::InvalidRequest)?;
    ctx.requested_model = view.model.clone();
    ctx.stream = view.stream;
    // 4 hints
    let hints = hints_from_metadata(&view)?.overlay(hints_from_headers(headers)?);
    ctx.hints = hints.clone();
    // 5 signals + 6 decide
    let (view, signals, decision) = route(state, view, hints, bytes.len()).await?;
    ctx.prompt_estimate = (signals.prompt_tokens + signals.tool_tokens) as u64;
    let mut decision = decision.map_err(ApiError::Route)?;
    if ctx.api == Api::Responses
        && conversation::routed_automatically(&decision)
        && let Some(prev) = value.get("previous_response_id").and_then(Value::as_str)
        && let Some(answered) = state
            .conversations
            .find(prev, &state.upstream, headers, &state.config.catalog)
            .await
    {
        conversation::pin(&mut decision, &answered, &state.config.catalog);
    }
    // 6b admit: the key's tier cap, rate limits and budget reservation
    if let Some(caller) = ctx.caller.clone() {
        limits::cap_decision(&caller, &state.config.catalog, &mut decision)?;
        ctx.decision = Some(decision.clone());
        admit(state, ctx, &caller, &decision, &value).await?;
    }
    ctx.decision = Some(decision.clone());
    // 7 shape
    let cascade_query = (decision.mode == DispatchMode::Cascade
        && state.scorer.is_some()
        && (!view.stream || ctx.api == Api::ChatCompletions))
        .then(|| {
            CascadeQuery::from_body(&value).unwrap_or_else(|_| CascadeQuery::from_view(&view))
        });
    let Value::Object(map) = value else {
        return Err(ApiError::Internal("request body is not an object".into()));
    };
    let caller_key = ctx.caller.as_ref().map(|c| c.key.id.as_str());
    let mut shaped = shape(
        map,
        &view,
        &decision,
        state.tools.as_ref(),
        state.config.cache,
        caller_key,
    );
    ctx.tools = shaped.tools;
    ctx.tool_search = shaped.tool_search.take();
    if ctx.tools.offered > 0 && ctx.tools.tokens_offered == 0 && ctx.tools.removed == 0 {
        // Nothing pruned: the schemas sent are the ones signals already counted.
        ctx.tools.tokens_offered = signals.tool_tokens;
        ctx.tools.tokens_sent = signals.tool_tokens;
    }
    ctx.shadow = state.shadow.sample(ctx, &decision, &shaped.body, headers);
    // 8 dispatch
    let target = Target {
        path: upstream_path(ctx.api),
        headers,
        stream: view.stream,
    };
    if let (Some(query), Some(scorer)) = (&cascade_query, &state.scorer) {
        let candidates = limits::cap_candidates(
            ctx.caller.as_deref(),
            &state.config.catalog,
            Candidates::cascade(&decision, &state.config.catalog),
        );
        return cascade::run(
            state,
            scorer,
            ctx,
            query,
            candidates,
            &mut shaped.body,
            target,
            view.stream,
            shaped.client_wants_usage,
        )
        .await;
    }
    let dispatched = dispatch(state, ctx, &decision, &mut shaped.body, target)
        .await
        .map_err(ApiError::Upstream)?;
    // 9 respond (10 account inside)
    if view.stream {
        let mut resp = stream::respond(
            Arc::clone(state),
            ctx.clone(),
            dispatched,
            !shaped.client_wants_usage,
        );
        decorate(&mut resp, ctx);
        Ok(resp)
    } else {
        complete(state, ctx, dispatched).await
    }
}

/// Stage 6b for a keyed call: rate limits, then the budget reservation (see `limits`).
async fn admit(
    state: &AppState,
    ctx: &mut RequestCtx,
    caller: &Caller,
    decision: &Decision,
    body: &Value,
) -> Result<(), ApiError> {
    let output = limits::output_cap(body, state.config.auth.budget_max_output_tokens);
    ctx.rate = limits::rate(state, caller, ctx.prompt_estimate + output).await?;
    if limits::budget_limits(caller).is_empty() {
        return Ok(());
    }
    let amount = limits::estimate(state, decision, ctx.prompt_estimate, output).ok_or_else(|| {
        ApiError::KeyForbidsModel(format!(
            "The model `{}` has no price, and this key has a budget: it can only call priced models.",
            decision.model
        ))
    })?;
    if let Some(r) = limits::reserve(
        state.store.as_ref(),
        caller,
        amount,
        state.config.store.fail_open,
    )
    .await?
    {
        ctx.budget_remaining = Some(r.remaining);
        ctx.reservation = Some(Held::new(r));
    }
    Ok(())
}

/// Signals and the decision, on a blocking thread for large bodies (tokenizing megabytes of
/// prompt would stall the async workers).
async fn route(
    state: &Arc<AppState>,
    view: RequestView,
    hints: Hints,
    body_len: usize,
) -> Result<
    (
        RequestView,
        Signals,
        Result<Decision, tierwise_router::RouteError>,
    ),
    ApiError,
> {
    let work = move |state: &AppState, view: RequestView, hints: Hints| {
        let signals = Signals::compute(&view, &hints);
        let decision = tierwise_router::decide(&view, &signals, &hints, &state.policy);
        (view, signals, decision)
    };
    if body_len <= BLOCKING_ABOVE {
        return Ok(work(state, view, hints));
    }
    let state = Arc::clone(state);
    tokio::task::spawn_blocking(move || work(&state, view, hints))
        .await
        .map_err(|e| ApiError::Internal(format!("routing task failed: {e}")))
}

/// The `id` of a Responses answer (`None` for chat).
pub(crate) fn response_id(ctx: &RequestCtx, json: &Value) -> Option<String> {
    (ctx.api == Api::Responses)
        .then(|| json.get("id").and_then(Value::as_str).map(str::to_string))
        .flatten()
}

/// A non-streaming answer: read it, price it, send it back with the cost headers (then, for a
/// sampled call, start its shadow test).
async fn complete(
    state: &Arc<AppState>,
    ctx: &mut RequestCtx,
    d: Dispatched,
) -> Result<Response, ApiError> {
    let status = d.response.status();
    let passback = passback_headers(d.response.headers());
    let bytes = d
        .response
        .bytes()
        .await
        .map_err(|e| ApiError::Upstream(UpstreamError::from_reqwest(&e)))?;
    let json: Value = serde_json::from_slice(&bytes)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| {
            state
                .metrics
                .upstream_error(&d.candidate.tier_name, "invalid_response", false);
            ApiError::Upstream(UpstreamError::invalid_response(
                "the answer is not a JSON object",
            ))
        })?;
    let reported = json.get("usage").and_then(Usage::from_openai);
    let text = if reported.is_none() || state.config.log.store_bodies {
        answer_text(&json)
    } else {
        String::new()
    };
    let (usage, estimated) = usage_or_estimate(reported, ctx, &text);
    let service_tier = ServiceTier::from_response(json.get("service_tier").and_then(Value::as_str));
    let priced = account::price(state, &d.candidate.model, &usage, service_tier);

    let mut resp = Response::new(Body::from(bytes.clone()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (k, v) in passback {
        h.insert(k, v);
    }
    priced.insert_headers(h);
    decorate(&mut resp, ctx);
    account::finish(
        state,
        ctx,
        Outcome {
            status: status.as_u16(),
            usage,
            usage_estimated: estimated,
            service_tier,
            priced,
            error: None,
            response_body: state
                .config
                .log
                .store_bodies
                .then(|| String::from_utf8_lossy(&bytes).into_owned()),
            response_id: response_id(ctx, &json),
        },
    );
    if let Some(sampled) = ctx.shadow.take()
        && status.is_success()
    {
        ShadowRunner::launch(state, ctx, sampled, Answer::from_response(&json));
    }
    Ok(resp.into_response())
}
