//! The cascade runner over real TCP against the mock upstream.
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
    // max_attempts = 3 of 4 tiers: the two cheapest, then the strongest.
    assert_eq!(parts.len(), 3, "{attempts}");
    assert_eq!(parts[0], "gpt-5.4-nano:rejected:0.00");
    assert_eq!(parts[1], "gpt-5.4-mini:rejected:0.00");
    assert!(parts[2].starts_with("gpt-5.5:accepted:"), "{attempts}");
    assert_eq!(h.mock.mock.calls("gpt-5.4-nano"), 1);
    assert_eq!(h.mock.mock.calls("gpt-5.4-mini"), 1);
    assert_eq!(h.mock.mock.calls("gpt-5.4"), 0);
    assert_eq!(h.mock.mock.calls("gpt-5.5"), 1);
    assert_eq!(header(&resp, "x-tierwise-tier"), "flagship");
    // an escalation after rejected answers is not called a fallback
    let reason = header(&resp, "x-tierwise-reason").to_string();
    assert!(
        reason.contains(
            "(cascade: gpt-5.4-nano rejected -> gpt-5.4-mini rejected -> gpt-5.5 accepted)"
        ),
        "{reason}"
    );
    assert!(!reason.contains("fell back"), "{reason}");
    let cost = header_decimal(&resp, "x-tierwise-cost-usd");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["model"], "gpt-5.5");
    // The same prompt went to each tier; each answer is priced at its own tier.
    let last = expected_cost(FLAGSHIP, &body["usage"], "1");
    assert!(cost > last, "{cost} vs {last}");
    let rows = h.rows().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].cost_usd, Some(cost));
    assert_eq!(rows[0].attempts, 3);
    assert!(rows[0].input_tokens >= 3 * body["usage"]["prompt_tokens"].as_u64().unwrap());
    // Exactly the sum of the three tiers' prices for the same request, each sent alone.
    let mut sum = Decimal::ZERO;
    for tier in ["nano", "mini", "flagship"] {
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
    let reason = header(&resp, "x-tierwise-reason");
    assert!(
        reason.contains("(cascade: error-400 error -> gpt-5.4-mini accepted)"),
        "{reason}"
    );
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

/// `[routing.cascade]` lines added to the default config.
fn cascade_config(lines: &str) -> Setup {
    Setup::default().edit(
        "[routing.cascade]\n",
        &format!("[routing.cascade]\n{lines}\n"),
    )
}

fn attempts_of(resp: &reqwest::Response) -> Vec<String> {
    header(resp, "x-tierwise-attempts")
        .split(',')
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn per_tier_thresholds_come_from_the_config() {
    // nano must be near-certain, mini anything: nano's good answer is rejected, mini's accepted.
    let h = Harness::with(cascade_config("thresholds = { nano = 0.999, mini = 0.0 }")).await;
    let resp = cascade(&h, &structured(true)).await;
    assert_eq!(resp.status(), 200);
    let a = attempts_of(&resp);
    assert_eq!(a.len(), 2, "{a:?}");
    assert!(a[0].starts_with("gpt-5.4-nano:rejected:"), "{a:?}");
    assert!(a[1].starts_with("gpt-5.4-mini:accepted:"), "{a:?}");
    assert_eq!(header(&resp, "x-tierwise-tier"), "mini");
    // One number for every tier: 0 accepts the first answer that passes the gates.
    let h = Harness::with(cascade_config("thresholds = 0.0")).await;
    let a = attempts_of(&cascade(&h, &structured(true)).await);
    assert!(
        a.len() == 1 && a[0].starts_with("gpt-5.4-nano:accepted:"),
        "{a:?}"
    );
}

#[tokio::test]
async fn max_attempts_ends_on_the_strongest_tier() {
    let h = Harness::with(Setup::default().edit("max_attempts = 3", "max_attempts = 2")).await;
    let resp = cascade(&h, &structured(false)).await;
    let a = attempts_of(&resp);
    assert_eq!(a.len(), 2, "{a:?}");
    assert_eq!(a[0], "gpt-5.4-nano:rejected:0.00");
    assert!(a[1].starts_with("gpt-5.5:accepted:"), "{a:?}");
    assert_eq!(h.mock.mock.total_calls(), 2);
    // The configured ladder limits the tiers walked.
    let h = Harness::with(cascade_config("ladder = [\"nano\", \"standard\"]")).await;
    let a = attempts_of(&cascade(&h, &structured(false)).await);
    assert_eq!(a.len(), 2, "{a:?}");
    assert!(a[1].starts_with("gpt-5.4:accepted:"), "{a:?}");
}

#[tokio::test]
async fn latency_budget_returns_the_answer_in_hand() {
    let h = Harness::with(
        cascade_config("thresholds = { nano = 0.999 }")
            .edit("latency_budget_ms = 60000", "latency_budget_ms = 150")
            .tier_model("gpt-5.4-mini", "slow-3000-gpt-5.4-mini"),
    )
    .await;
    let started = std::time::Instant::now();
    let resp = cascade(&h, &structured(true)).await;
    let took = started.elapsed();
    assert_eq!(resp.status(), 200);
    assert!(took < std::time::Duration::from_millis(2000), "{took:?}");
    let a = attempts_of(&resp);
    assert_eq!(a.len(), 2, "{a:?}");
    assert!(a[0].starts_with("gpt-5.4-nano:accepted:"), "{a:?}");
    assert_eq!(a[1], "slow-3000-gpt-5.4-mini:timeout");
    // The headers describe the answer returned.
    assert_eq!(header(&resp, "x-tierwise-tier"), "nano");
    assert_eq!(header(&resp, "x-tierwise-model"), "gpt-5.4-nano");
    let cost = header_decimal(&resp, "x-tierwise-cost-usd");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["model"], "gpt-5.4-nano");
    assert_eq!(cost, expected_cost(NANO, &body["usage"], "1"));
}

#[tokio::test]
async fn last_tier_failing_after_a_rejection_returns_the_earlier_answer() {
    let h = Harness::with(
        cascade_config("thresholds = { nano = 0.999 }")
            .edit("max_attempts = 3", "max_attempts = 2")
            .tier_model("gpt-5.5", "error-400"),
    )
    .await;
    let resp = cascade(&h, &structured(true)).await;
    assert_eq!(resp.status(), 200);
    let a = attempts_of(&resp);
    assert!(a[0].starts_with("gpt-5.4-nano:accepted:"), "{a:?}");
    assert_eq!(a[1], "error-400:error");
    assert_eq!(header(&resp, "x-tierwise-tier"), "nano");
    assert_eq!(header(&resp, "x-tierwise-model"), "gpt-5.4-nano");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["model"], "gpt-5.4-nano");
    let rows = h.rows().await;
    assert_eq!(rows[0].tier, "nano");
}

#[tokio::test]
async fn empty_or_malformed_cheap_answers_are_rejections() {
    for model in ["empty-gpt-5.4-nano", "garbage-gpt-5.4-nano"] {
        // mini accepts anything that passes the gates: the test is about nano's answer
        let h = Harness::with(
            cascade_config("thresholds = { mini = 0.0 }").tier_model("gpt-5.4-nano", model),
        )
        .await;
        let resp = cascade(&h, &structured(true)).await;
        assert_eq!(resp.status(), 200, "{model}");
        let a = attempts_of(&resp);
        assert_eq!(a[0], format!("{model}:rejected:0.00"));
        assert!(a[1].starts_with("gpt-5.4-mini:accepted:"), "{a:?}");
        let cost = header_decimal(&resp, "x-tierwise-cost-usd");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["model"], "gpt-5.4-mini");
        // The rejected answer is paid too.
        assert!(cost > expected_cost(MINI, &body["usage"], "1"), "{model}");
    }
}

#[tokio::test]
async fn cascade_mode_from_a_rule_from_metadata_and_from_routing_mode() {
    // A rule's mode.
    let h = Harness::with(Setup::default().edit(
        "name = \"short-plain\"\ntier = \"mini\"\n",
        "name = \"short-plain\"\ntier = \"mini\"\nmode = \"cascade\"\n",
    ))
    .await;
    let resp = h
        .chat(&user("auto", "What is the capital of France?"))
        .await;
    assert_eq!(resp.status(), 200);
    assert!(
        header(&resp, "x-tierwise-attempts").starts_with("gpt-5.4-mini:accepted:"),
        "{:?}",
        resp.headers()
    );
    // The request's metadata.
    let h = Harness::start().await;
    let mut body = user("auto", "What is the capital of France?");
    body["metadata"] = json!({"mode": "cascade"});
    let resp = h.chat(&body).await;
    assert!(header(&resp, "x-tierwise-attempts").starts_with("gpt-5.4-mini:"));
    // routing.mode = "cascade": calls no rule claims start at the cheapest tier.
    let h = Harness::with(Setup::default().edit("mode = \"rules\"", "mode = \"cascade\"")).await;
    let long = "Describe the history of the harbour town and its trade routes. ".repeat(60);
    let resp = h.chat(&user("auto", &long)).await;
    assert_eq!(resp.status(), 200);
    assert!(
        header(&resp, "x-tierwise-attempts").starts_with("gpt-5.4-nano:"),
        "{:?}",
        resp.headers()
    );
}

#[tokio::test]
async fn two_samples_and_logprobs_are_asked_below_the_top_and_stripped() {
    let h = Harness::with(
        Setup::default()
            .edit("samples = 1", "samples = 2")
            .edit("logprobs = false", "logprobs = true"),
    )
    .await;
    let resp = cascade(&h, &structured(true)).await;
    assert_eq!(resp.status(), 200);
    assert!(header(&resp, "x-tierwise-attempts").starts_with("gpt-5.4-nano:accepted:"));
    let sent = &h.mock.mock.requests()[0].body;
    assert_eq!(sent["n"], 2);
    assert_eq!(sent["logprobs"], true);
    let cost = header_decimal(&resp, "x-tierwise-cost-usd");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["choices"].as_array().unwrap().len(), 1);
    // Both samples are paid: the upstream's usage counts both.
    assert_eq!(cost, expected_cost(NANO, &body["usage"], "1"));
    let one = h
        .client
        .post(h.url("/v1/chat/completions"))
        .header("x-tierwise-tier", "nano")
        .json(&structured(true))
        .send()
        .await
        .unwrap();
    let one: Value = one.json().await.unwrap();
    assert_eq!(
        body["usage"]["completion_tokens"].as_u64().unwrap(),
        2 * one["usage"]["completion_tokens"].as_u64().unwrap()
    );
}
