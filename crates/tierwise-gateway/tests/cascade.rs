//! The cascade runner (issue 6) over real TCP against the mock upstream.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests may unwrap"
)]

mod common;

use common::*;
use rust_decimal::Decimal;
use serde_json::{Value, json};

/// A structured-output request; `fits` chooses a schema the mock's answer
/// (`{"answer": "mock", "model": …}`) satisfies or violates.
fn structured(fits: bool) -> Value {
    let required = if fits {
        json!(["answer"])
    } else {
        json!(["city", "temperature"])
    };
    let mut body = user("auto", "Give the answer as JSON.");
    body["response_format"] = json!({"type": "json_schema", "json_schema": {"name": "out",
        "schema": {"type": "object", "properties": {"answer": {"type": "string"},
            "city": {"type": "string"}, "temperature": {"type": "number"}},
        "required": required}}});
    body
}

async fn cascade(h: &Harness, body: &Value) -> reqwest::Response {
    h.client
        .post(h.url("/v1/chat/completions"))
        .header("x-tierwise-mode", "cascade")
        .header("x-tierwise-tier", "nano")
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn good_cheap_answer_is_accepted_with_one_call() {
    let h = Harness::start().await;
    let resp = cascade(&h, &structured(true)).await;
    assert_eq!(resp.status(), 200);
    let attempts = header(&resp, "x-tierwise-attempts").to_string();
    assert!(attempts.starts_with("gpt-5.4-nano:accepted:"), "{attempts}");
    assert!(!attempts.contains(','), "{attempts}");
    let cost = header_decimal(&resp, "x-tierwise-cost-usd");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(cost, expected_cost(NANO, &body["usage"], "1"));
    assert_eq!(h.mock.mock.total_calls(), 1);
    assert_eq!(h.mock.mock.calls("gpt-5.4-nano"), 1);
}

#[tokio::test]
async fn rejected_answers_escalate_and_every_attempt_is_paid() {
    let h = Harness::start().await;
    let resp = cascade(&h, &structured(false)).await;
    assert_eq!(resp.status(), 200);
    let attempts = header(&resp, "x-tierwise-attempts").to_string();
    let parts: Vec<&str> = attempts.split(',').collect();
    assert_eq!(parts.len(), 3, "{attempts}");
    assert_eq!(parts[0], "gpt-5.4-nano:rejected:0.00");
    assert_eq!(parts[1], "gpt-5.4-mini:rejected:0.00");
    assert!(parts[2].starts_with("gpt-5.4:accepted:"), "{attempts}");
    assert_eq!(h.mock.mock.calls("gpt-5.4-nano"), 1);
    assert_eq!(h.mock.mock.calls("gpt-5.4-mini"), 1);
    assert_eq!(h.mock.mock.calls("gpt-5.4"), 1);
    let cost = header_decimal(&resp, "x-tierwise-cost-usd");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["model"], "gpt-5.4");
    // The same prompt went to each tier; each answer is priced at its own tier.
    let last = expected_cost(STANDARD, &body["usage"], "1");
    assert!(cost > last, "{cost} vs {last}");
    let rows = h.rows().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].cost_usd, Some(cost));
    assert_eq!(rows[0].attempts, 3);
    assert!(rows[0].input_tokens >= 3 * body["usage"]["prompt_tokens"].as_u64().unwrap());
    // Exactly the sum of the three tiers' prices for the same request, each sent alone.
    let mut sum = Decimal::ZERO;
    for tier in ["nano", "mini", "standard"] {
        let r = h
            .client
            .post(h.url("/v1/chat/completions"))
            .header("x-tierwise-tier", tier)
            .json(&structured(false))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        sum += header_decimal(&r, "x-tierwise-cost-usd");
    }
    assert_eq!(cost, sum);
}

#[tokio::test]
async fn cheap_tier_upstream_error_escalates() {
    let h = Harness::with(Setup::default().tier_model("gpt-5.4-nano", "error-400")).await;
    let resp = cascade(&h, &structured(true)).await;
    assert_eq!(resp.status(), 200);
    let attempts = header(&resp, "x-tierwise-attempts").to_string();
    assert!(
        attempts.starts_with("error-400:error,gpt-5.4-mini:accepted:"),
        "{attempts}"
    );
    assert_eq!(h.mock.mock.calls("error-400"), 1);
    assert_eq!(h.mock.mock.calls("gpt-5.4-mini"), 1);
}

#[tokio::test]
async fn streaming_client_gets_valid_sse() {
    let h = Harness::start().await;
    let mut body = structured(true);
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let resp = cascade(&h, &body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type"), "text/event-stream");
    assert!(header(&resp, "x-tierwise-attempts").starts_with("gpt-5.4-nano:accepted:"));
    // The upstream call itself was not streamed.
    assert_eq!(h.mock.mock.requests()[0].body.get("stream"), None);
    let text = resp.text().await.unwrap();
    let events: Vec<&str> = text
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| e.strip_prefix("data: ").unwrap())
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = chunks
        .iter()
        .filter_map(|c| {
            c.pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
        })
        .collect();
    let parsed: Value = serde_json::from_str(&content).unwrap();
    assert_eq!(parsed["answer"], "mock");
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "stop"
    );
    assert!(
        chunks.last().unwrap()["usage"]["prompt_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
}
