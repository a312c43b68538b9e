//! Hostile input over real TCP: each of `[server]`'s limits refused with an OpenAI-shaped 400
//! naming the limit, before anything reaches the provider.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests may unwrap"
)]

mod common;

use common::*;
use serde_json::{Value, json};

async fn refused(r: reqwest::Response, code: &str, key: &str) -> Value {
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], code, "{v}");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains(key), "{message}");
    v
}

fn nested(depth: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..depth {
        v = json!([v]);
    }
    v
}

#[tokio::test]
async fn over_limit_requests_are_refused_naming_the_limit() {
    let h = Harness::with(Setup::default().edit("max_tools = 8192", "max_tools = 10")).await;

    // JSON nesting: 64 levels pass (the body object is one), 65 do not.
    let mut ok = user("nano", "hi");
    ok["metadata_x"] = nested(62);
    assert_eq!(h.chat(&ok).await.status(), 200);
    let mut deep = user("nano", "hi");
    deep["metadata_x"] = nested(64);
    refused(
        h.chat(&deep).await,
        "json_too_deep",
        "server.max_json_depth",
    )
    .await;
    // far beyond serde_json's own recursion limit: still our 400, one pass over the bytes
    let body = format!("{{\"model\": \"nano\", \"x\": {}}}", "[".repeat(100_000));
    let r = h
        .client
        .post(h.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    refused(r, "json_too_deep", "64 levels").await;

    // messages (chat) and input items (Responses)
    let many: Vec<Value> = (0..2049)
        .map(|_| json!({"role": "user", "content": "x"}))
        .collect();
    let v = refused(
        h.chat(&json!({"model": "auto", "messages": many})).await,
        "array_above_max_length",
        "server.max_messages",
    )
    .await;
    assert_eq!(v["error"]["param"], "messages");
    assert!(v["error"]["message"].as_str().unwrap().contains("2049"));
    let v = refused(
        h.post("/v1/responses", &json!({"model": "auto", "input": many}))
            .await,
        "array_above_max_length",
        "server.max_messages",
    )
    .await;
    assert_eq!(v["error"]["param"], "input");
    let at_limit: Vec<Value> = many[..2048].to_vec();
    assert_eq!(
        h.chat(&json!({"model": "nano", "messages": at_limit}))
            .await
            .status(),
        200
    );

    // tools (limit 10 here)
    let tools: Vec<Value> = (0..11)
        .map(|i| json!({"type": "function", "function": {"name": format!("t{i}")}}))
        .collect();
    let mut body = user("nano", "hi");
    body["tools"] = json!(tools);
    let v = refused(
        h.chat(&body).await,
        "array_above_max_length",
        "server.max_tools",
    )
    .await;
    assert_eq!(v["error"]["param"], "tools");

    // header bytes, on every route
    let big = "a".repeat(70_000);
    for path in ["/v1/chat/completions", "/v1/files"] {
        let r = h
            .client
            .post(h.url(path))
            .header("x-padding", big.as_str())
            .json(&user("nano", "hi"))
            .send()
            .await
            .unwrap();
        refused(r, "request_headers_too_large", "server.max_header_bytes").await;
    }

    // Only the accepted calls reached the provider.
    assert_eq!(h.mock.mock.total_calls(), 2);
    // Refused calls are logged with their status, unbilled.
    let rows = h.rows().await;
    assert!(rows.iter().filter(|r| r.status == 400).count() >= 5);
    assert!(
        rows.iter()
            .filter(|r| r.status == 400)
            .all(|r| r.cost_usd == Some(rust_decimal::Decimal::ZERO))
    );
}
