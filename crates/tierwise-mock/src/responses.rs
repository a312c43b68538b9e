//! `POST /v1/responses`: JSON and SSE events (`response.created` … `response.completed`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tierwise_core::request::RequestView;

use crate::answer::{Answer, answer};
use crate::behavior::Behavior;
use crate::chat::{pieces, request_error, service_tier_of, sse_response};
use crate::{Mock, error, now_secs};

pub(crate) async fn handle(State(mock): State<Mock>, headers: HeaderMap, bytes: Bytes) -> Response {
    let (body, model, behavior) = match mock.admit("/v1/responses", &headers, &bytes).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let view = match RequestView::responses(&body) {
        Ok(v) => v,
        Err(e) => return request_error(&e),
    };
    if let Some(prev) = body.get("previous_response_id").and_then(Value::as_str)
        && !mock.knows_response(prev)
    {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("Previous response with id '{prev}' not found."),
            "invalid_request_error",
            Some("previous_response_not_found"),
        );
    }
    let id = mock.next_id();
    let mut ans = answer(&view, &body, &model, id);
    mock.prompt_cache(&body, &mut ans.usage);
    let tier = service_tier_of(&body);
    let done = response_object(
        &ans,
        &body,
        &model,
        id,
        tier,
        "completed",
        !behavior.no_usage,
    );
    mock.store_response(&done);
    if view.stream {
        let events = stream_events(&ans, &body, &model, id, tier, !behavior.no_usage, done);
        sse_response(events, mock, behavior)
    } else {
        if behavior.gated {
            mock.wait_gate().await;
        }
        axum::Json(done).into_response()
    }
}

/// `GET /v1/responses/{id}`: an answer the mock gave (when recording), else 404.
pub(crate) async fn retrieve(State(mock): State<Mock>, Path(id): Path<String>) -> Response {
    match mock.stored_response(&id) {
        Some(v) => axum::Json(v).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            &format!("Response with id '{id}' not found."),
            "invalid_request_error",
            None,
        ),
    }
}

fn output_items(ans: &Answer, id: u64) -> Vec<Value> {
    if let Some(call) = &ans.tool_call {
        vec![
            json!({"type": "function_call", "id": format!("fc_mock_{id}"), "call_id": call.id,
            "name": call.name, "arguments": call.arguments, "status": "completed"}),
        ]
    } else {
        vec![
            json!({"type": "message", "id": format!("msg_mock_{id}"), "status": "completed",
            "role": "assistant", "content": [{"type": "output_text",
            "text": ans.text.clone().unwrap_or_default(), "annotations": []}]}),
        ]
    }
}

fn response_object(
    ans: &Answer,
    body: &Value,
    model: &str,
    id: u64,
    tier: &str,
    status: &str,
    usage: bool,
) -> Value {
    let done = status == "completed";
    let mut out = json!({
        "id": format!("resp_mock_{id}"),
        "object": "response",
        "created_at": now_secs(),
        "status": status,
        "error": null,
        "incomplete_details": null,
        "instructions": body.get("instructions").cloned().unwrap_or(Value::Null),
        "model": model,
        "output": if done { output_items(ans, id) } else { Vec::new() },
        "parallel_tool_calls": true,
        "tool_choice": body.get("tool_choice").cloned().unwrap_or(json!("auto")),
        "tools": body.get("tools").cloned().unwrap_or(json!([])),
        "metadata": body.get("metadata").cloned().unwrap_or(json!({})),
        "service_tier": tier,
        "text": {"format": {"type": "text"}},
        "usage": null
    });
    if done && usage {
        out["usage"] = ans.usage.responses_json();
    }
    out
}

fn event(kind: &str, mut data: Value, seq: &mut u64) -> Bytes {
    data["type"] = json!(kind);
    data["sequence_number"] = json!(*seq);
    *seq += 1;
    Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
}

fn stream_events(
    ans: &Answer,
    body: &Value,
    model: &str,
    id: u64,
    tier: &str,
    usage: bool,
    done: Value,
) -> Vec<Bytes> {
    let mut seq = 0;
    let mut events = Vec::new();
    let pending = response_object(ans, body, model, id, tier, "in_progress", usage);
    events.push(event(
        "response.created",
        json!({"response": pending}),
        &mut seq,
    ));
    let item = output_items(ans, id).remove(0);
    let item_id = item.get("id").cloned().unwrap_or(Value::Null);
    if let Some(call) = &ans.tool_call {
        let mut added = item.clone();
        added["arguments"] = json!("");
        added["status"] = json!("in_progress");
        events.push(event(
            "response.output_item.added",
            json!({"output_index": 0, "item": added}),
            &mut seq,
        ));
        for p in pieces(&call.arguments) {
            events.push(event(
                "response.function_call_arguments.delta",
                json!({"item_id": item_id, "output_index": 0, "delta": p}),
                &mut seq,
            ));
        }
        events.push(event(
            "response.function_call_arguments.done",
            json!({"item_id": item_id, "output_index": 0, "arguments": call.arguments}),
            &mut seq,
        ));
    } else {
        let text = ans.text.clone().unwrap_or_default();
        events.push(event(
            "response.output_item.added",
            json!({"output_index": 0, "item": {"type": "message", "id": item_id,
                "status": "in_progress", "role": "assistant", "content": []}}),
            &mut seq,
        ));
        for p in pieces(&text) {
            events.push(event(
                "response.output_text.delta",
                json!({"item_id": item_id, "output_index": 0, "content_index": 0, "delta": p, "logprobs": []}),
                &mut seq,
            ));
        }
        events.push(event(
            "response.output_text.done",
            json!({"item_id": item_id, "output_index": 0, "content_index": 0, "text": text, "logprobs": []}),
            &mut seq,
        ));
    }
    events.push(event(
        "response.output_item.done",
        json!({"output_index": 0, "item": item}),
        &mut seq,
    ));
    events.push(event(
        "response.completed",
        json!({"response": done}),
        &mut seq,
    ));
    events
}

/// Used by batches: the status and body the endpoint would answer for one request body.
pub(crate) fn batch_line(mock: &Mock, body: &Value) -> (u16, Value) {
    let model = body.get("model").and_then(Value::as_str).unwrap_or("");
    mock.count(model);
    if let Some(status) = Behavior::parse(model).error {
        return (
            status,
            json!({"error": {"message": format!("Mock error {status}."), "type": "server_error", "param": null, "code": null}}),
        );
    }
    match RequestView::responses(body) {
        Ok(view) => {
            let id = mock.next_id();
            let ans = answer(&view, body, model, id);
            (
                200,
                response_object(&ans, body, model, id, "default", "completed", true),
            )
        }
        Err(e) => (
            400,
            json!({"error": {"message": e.message, "type": "invalid_request_error", "param": e.param, "code": e.code}}),
        ),
    }
}
