//! `POST /v1/chat/completions`: JSON and SSE.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tierwise_core::request::{RequestError, RequestView};

use crate::answer::{Answer, answer};
use crate::behavior::Behavior;
use crate::{Mock, now_secs};

pub(crate) fn request_error(e: &RequestError) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(
            json!({"error": {"message": e.message, "type": "invalid_request_error",
            "param": e.param, "code": e.code}}),
        ),
    )
        .into_response()
}

/// `service_tier` the mock reports: what was asked for when it is a real tier, else `default`.
pub(crate) fn service_tier_of(body: &Value) -> &'static str {
    match body.get("service_tier").and_then(Value::as_str) {
        Some("flex") => "flex",
        Some("priority") => "priority",
        _ => "default",
    }
}

pub(crate) async fn handle(State(mock): State<Mock>, headers: HeaderMap, bytes: Bytes) -> Response {
    let (body, model, behavior) = match mock.admit("/v1/chat/completions", &headers, &bytes).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let view = match RequestView::chat(&body) {
        Ok(v) => v,
        Err(e) => return request_error(&e),
    };
    let id = mock.next_id();
    let mut ans = if behavior.tool_search {
        crate::answer::tool_search_answer(&view, &body, &model, id)
    } else {
        answer(&view, &body, &model, id)
    };
    if behavior.empty {
        ans.text = Some(String::new());
        ans.tool_call = None;
        ans.usage.completion = ans.usage.reasoning;
    }
    mock.prompt_cache(&body, &mut ans.usage);
    let tier = service_tier_of(&body);
    if view.stream {
        let include_usage = body
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let events = stream_events(&ans, &model, id, tier, include_usage && !behavior.no_usage);
        sse_response(events, mock, behavior)
    } else {
        if behavior.gated {
            mock.wait_gate().await;
        }
        let mut out = completion(&ans, &model, id, tier, !behavior.no_usage);
        // `n` > 1: the same (deterministic) answer n times; usage counts every choice.
        if let Some(n) = body.get("n").and_then(Value::as_u64).filter(|&n| n > 1)
            && let Some(first) = out.pointer("/choices/0").cloned()
        {
            let choices: Vec<Value> = (0..n)
                .map(|i| {
                    let mut c = first.clone();
                    c["index"] = json!(i);
                    c
                })
                .collect();
            out["choices"] = json!(choices);
            if let Some(u) = out.get_mut("usage") {
                let extra = ans.usage.completion * (n - 1);
                u["completion_tokens"] = json!(ans.usage.completion + extra);
                u["total_tokens"] = json!(ans.usage.prompt + ans.usage.completion + extra);
            }
        }
        axum::Json(out).into_response()
    }
}

/// A complete (non-streamed) chat completion.
pub(crate) fn completion(ans: &Answer, model: &str, id: u64, tier: &str, usage: bool) -> Value {
    let mut message =
        json!({"role": "assistant", "content": ans.text, "refusal": null, "annotations": []});
    let finish = if let Some(call) = &ans.tool_call {
        message["tool_calls"] = json!([{"id": call.id, "type": "function",
            "function": {"name": call.name, "arguments": call.arguments}}]);
        "tool_calls"
    } else {
        "stop"
    };
    let mut out = json!({
        "id": format!("chatcmpl-mock-{id}"),
        "object": "chat.completion",
        "created": now_secs(),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "service_tier": tier,
        "system_fingerprint": "fp_mock"
    });
    if usage {
        out["usage"] = ans.usage.chat_json();
    }
    out
}

/// Splits text into stream pieces: words with their leading space.
pub(crate) fn pieces(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for ch in text.chars() {
        if ch == ' ' && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(ch);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn data(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

/// The SSE events of a streamed answer, `[DONE]` included.
fn stream_events(
    ans: &Answer,
    model: &str,
    id: u64,
    tier: &str,
    include_usage: bool,
) -> Vec<Bytes> {
    let created = now_secs();
    let chunk = |delta: Value, finish: Option<&str>| {
        let mut c = json!({
            "id": format!("chatcmpl-mock-{id}"),
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": tier,
            "system_fingerprint": "fp_mock",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
        });
        if include_usage {
            c["usage"] = Value::Null;
        }
        data(&c)
    };
    let mut events = Vec::new();
    let finish = if let Some(call) = &ans.tool_call {
        events.push(chunk(
            json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0, "id": call.id,
                "type": "function", "function": {"name": call.name, "arguments": ""}}]}),
            None,
        ));
        for p in pieces(&call.arguments) {
            events.push(chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}),
                None,
            ));
        }
        "tool_calls"
    } else {
        events.push(chunk(
            json!({"role": "assistant", "content": "", "refusal": null}),
            None,
        ));
        for p in pieces(ans.text.as_deref().unwrap_or("")) {
            events.push(chunk(json!({"content": p}), None));
        }
        "stop"
    };
    events.push(chunk(json!({}), Some(finish)));
    if include_usage {
        events.push(data(&json!({
            "id": format!("chatcmpl-mock-{id}"),
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": tier,
            "system_fingerprint": "fp_mock",
            "choices": [],
            "usage": ans.usage.chat_json()
        })));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

/// Streams `events` one HTTP chunk each, applying `drip`, `gated` and `cut` behaviours.
/// The gate (and the cut) comes after the second event: the first content piece is out.
pub(crate) fn sse_response(events: Vec<Bytes>, mock: Mock, behavior: Behavior) -> Response {
    const HOLD_AFTER: usize = 2;
    let stream = futures::stream::unfold(
        (0usize, events, mock, behavior),
        |(i, events, mock, b)| async move {
            let next = events.get(i)?.clone();
            if i > 0 {
                if let Some(d) = b.drip {
                    tokio::time::sleep(d).await;
                }
                if i == HOLD_AFTER {
                    if b.cut {
                        let err = std::io::Error::new(
                            std::io::ErrorKind::ConnectionReset,
                            "mock cut the stream",
                        );
                        return Some((Err(err), (events.len(), events, mock, b)));
                    }
                    if b.gated {
                        mock.wait_gate().await;
                    }
                }
            }
            Some((Ok::<_, std::io::Error>(next), (i + 1, events, mock, b)))
        },
    );
    let mut resp = Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// Used by batches: the status and body the endpoint would answer for one request body.
pub(crate) fn batch_line(mock: &Mock, body: &Value) -> (u16, Value) {
    let model = body.get("model").and_then(Value::as_str).unwrap_or("");
    mock.count(model);
    let b = Behavior::parse(model);
    if let Some(status) = b.error {
        return (
            status,
            json!({"error": {"message": format!("Mock error {status}."), "type": "server_error", "param": null, "code": null}}),
        );
    }
    match RequestView::chat(body) {
        Ok(view) => {
            let id = mock.next_id();
            let ans = answer(&view, body, model, id);
            (200, completion(&ans, model, id, "default", true))
        }
        Err(e) => (
            400,
            json!({"error": {"message": e.message, "type": "invalid_request_error", "param": e.param, "code": e.code}}),
        ),
    }
}
