//! The gateway over real TCP against the mock upstream.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests may unwrap"
)]

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tierwise_mock::Mock;

#[tokio::test]
async fn plain_auto_request_is_routed_priced_and_logged() {
    let mut h = Harness::start().await;
    let resp = h
        .chat(&user("auto", "What is the capital of France?"))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-tierwise-tier"), "mini");
    assert_eq!(header(&resp, "x-tierwise-model"), "gpt-5.4-mini");
    let reason = header(&resp, "x-tierwise-reason").to_string();
    assert!(
        reason.contains("short-plain") && reason.is_ascii(),
        "{reason}"
    );
    let id = header(&resp, "x-tierwise-request-id").to_string();
    let cost = header_decimal(&resp, "x-tierwise-cost-usd");
    let baseline = header_decimal(&resp, "x-tierwise-baseline-cost-usd");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["model"], "gpt-5.4-mini");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(cost, expected_cost(MINI, &body["usage"], "1"));
    assert_eq!(baseline, expected_cost(FLAGSHIP, &body["usage"], "1"));
    assert!(cost > Decimal::ZERO && cost < baseline);
    assert_eq!(h.mock.mock.calls("gpt-5.4-mini"), 1);
    assert_eq!(h.mock.mock.total_calls(), 1);

    let report = h.shutdown().await;
    assert_eq!(report.log.written, 1);
    let rows = read_rows(&h.db);
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r.id.to_string(), id);
    assert_eq!(r.id.get_version_num(), 7);
    assert_eq!(
        (r.endpoint.as_str(), r.requested_model.as_str()),
        ("chat.completions", "auto")
    );
    assert_eq!(
        (r.tier.as_str(), r.model.as_str()),
        ("mini", "gpt-5.4-mini")
    );
    assert!(r.reason.starts_with("rule short-plain"), "{}", r.reason);
    assert_eq!(
        r.input_tokens,
        body["usage"]["prompt_tokens"].as_u64().unwrap()
    );
    assert_eq!(
        r.output_tokens,
        body["usage"]["completion_tokens"].as_u64().unwrap()
    );
    assert_eq!(r.reasoning_tokens, 64);
    assert_eq!(r.cost_usd, Some(cost));
    assert_eq!(r.baseline_cost_usd, Some(baseline));
    assert_eq!((r.status, r.streamed, r.attempts), (200, false, 1));
    assert!(!r.usage_estimated);
    assert!(r.request_body.is_none() && r.response_body.is_none());
}

#[tokio::test]
async fn cost_is_exact_with_cached_and_reasoning_tokens() {
    let h = Harness::start().await;
    // 1500 words: over 1024 tokens, so the mock reports a warm prompt cache.
    let mut body = user("auto", &"lorem ".repeat(1500));
    body["reasoning_effort"] = json!("high");
    let resp = h
        .client
        .post(h.url("/v1/chat/completions"))
        .header("x-tierwise-tier", "standard")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-tierwise-tier"), "standard");
    let cost = header_decimal(&resp, "x-tierwise-cost-usd");
    let baseline = header_decimal(&resp, "x-tierwise-baseline-cost-usd");
    let v: Value = resp.json().await.unwrap();
    let usage = &v["usage"];
    assert!(
        usage["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap()
            >= 1024
    );
    assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 256);
    assert_eq!(cost, expected_cost(STANDARD, usage, "1"));
    assert_eq!(baseline, expected_cost(FLAGSHIP, usage, "1"));
}

#[tokio::test]
async fn deferrable_goes_flex_at_half_price() {
    let h = Harness::start().await;
    let resp = h
        .client
        .post(h.url("/v1/chat/completions"))
        .header("x-tierwise-deferrable", "true")
        .json(&user("nano", "Label this: great product!"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cost = header_decimal(&resp, "x-tierwise-cost-usd");
    let baseline = header_decimal(&resp, "x-tierwise-baseline-cost-usd");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["service_tier"], "flex");
    assert_eq!(cost, expected_cost(NANO, &v["usage"], "0.5"));
    // The baseline is the flagship at list price.
    assert_eq!(baseline, expected_cost(FLAGSHIP, &v["usage"], "1"));
    let sent = &h.mock.mock.requests()[0].body;
    assert_eq!(sent["service_tier"], "flex");
}

#[tokio::test]
async fn every_other_field_passes_through_untouched() {
    let h = Harness::start().await;
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "description": "Weather for a city", "strict": true,
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
        "required": ["city"], "additionalProperties": false}}}]);
    let response_format = json!({"type": "json_schema", "json_schema": {"name": "answer",
        "schema": {"type": "object", "properties": {"a": {"type": "string"}}}, "strict": true}});
    let body = json!({
        "model": "auto",
        "messages": [{"role": "system", "content": "be brief"},
                     {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]}],
        "tools": tools,
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": false,
        "response_format": response_format,
        "temperature": 0.25,
        "max_completion_tokens": 300,
        "seed": 7,
        "user": "user-1",
        "prompt_cache_key": "k1",
        "logit_bias": {"1234": -100},
        "stop": ["\n\n"],
        "vendor_extension": {"nested": [1, 2, {"x": null}]},
        "metadata": {"category": "coding", "x-tierwise-role": "sub-agent", "trace": "abc"}
    });
    let resp = h.chat(&body).await;
    assert_eq!(resp.status(), 200);
    // The role hint (sub-agent → mini) came from metadata.
    assert_eq!(header(&resp, "x-tierwise-tier"), "mini");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );

    let mut expected = body.clone();
    expected["model"] = json!("gpt-5.4-mini");
    expected["metadata"] = json!({"trace": "abc"});
    let sent = &h.mock.mock.requests()[0].body;
    assert_eq!(sent, &expected);
    // Field order is kept too.
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(sent), keys(&expected));
}

#[tokio::test]
async fn hints_from_headers_and_metadata() {
    let h = Harness::start().await;
    let hard = "Prove that the sum of two even numbers is even, then solve x^2 = 16.";
    // Forced by header: no fallbacks, hint headers never go upstream.
    let resp = h
        .client
        .post(h.url("/v1/chat/completions"))
        .header("x-tierwise-tier", "nano")
        .json(&user("auto", hard))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&resp, "x-tierwise-model"), "gpt-5.4-nano");
    assert!(header(&resp, "x-tierwise-reason").contains("forced"));

    // Forced by metadata: the metadata object disappears when only hints were in it.
    let mut body = user("auto", "hi");
    body["metadata"] = json!({"tier": "flagship"});
    let resp = h.chat(&body).await;
    assert_eq!(header(&resp, "x-tierwise-tier"), "flagship");

    // Category by header; the header wins over metadata.
    let mut body = user("auto", "Extract the dates from: 2024-01-02 and 2025-03-04.");
    body["metadata"] = json!({"category": "reasoning"});
    let resp = h
        .client
        .post(h.url("/v1/chat/completions"))
        .header("x-tierwise-category", "extraction")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(header(&resp, "x-tierwise-tier"), "nano");

    // Role by header.
    let resp = h
        .client
        .post(h.url("/v1/chat/completions"))
        .header("x-tierwise-role", "sub-agent")
        .json(&user("auto", hard))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&resp, "x-tierwise-tier"), "mini");

    let sent = h.mock.mock.requests();
    assert_eq!(sent.len(), 4);
    assert!(sent[1].body.get("metadata").is_none());
    assert!(sent[2].body.get("metadata").is_none());
    for r in &sent {
        assert!(r.headers.keys().all(|k| !k.starts_with("x-tierwise")));
    }
    let rows = h.rows().await;
    assert_eq!(rows[2].category.as_deref(), Some("extraction"));
    assert_eq!(rows[2].category_source.as_deref(), Some("hint"));
    assert_eq!(rows[3].role.as_deref(), Some("sub-agent"));
}

/// Without a hint the gateway categorizes the request itself: the category decides the tier,
/// is named in `x-tierwise-category` (+ `-source`) and logged with its source.
#[tokio::test]
async fn requests_without_a_hint_are_categorized() {
    let h = Harness::start().await;
    let resp = h
        .chat(&user(
            "auto",
            "Classify the sentiment of this review as positive, negative or neutral: the battery died after two days.",
        ))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-tierwise-tier"), "nano");
    assert_eq!(header(&resp, "x-tierwise-category"), "classification");
    assert_eq!(header(&resp, "x-tierwise-category-source"), "categorizer");
    // a hint overrides it, and says so
    let mut body = user("auto", "Classify the sentiment of this review: great!");
    body["metadata"] = json!({"category": "writing"});
    let resp = h.chat(&body).await;
    assert_eq!(header(&resp, "x-tierwise-tier"), "mini");
    assert_eq!(header(&resp, "x-tierwise-category"), "writing");
    assert_eq!(header(&resp, "x-tierwise-category-source"), "hint");
    let rows = h.rows().await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].category.as_deref(), Some("classification"));
    assert_eq!(rows[0].category_source.as_deref(), Some("categorizer"));
    assert_eq!(rows[1].category.as_deref(), Some("writing"));
    assert_eq!(rows[1].category_source.as_deref(), Some("hint"));
    let metrics = h.metrics().await;
    assert!(
        metrics.contains(
            "tierwise_category_requests_total{category=\"classification\",source=\"categorizer\",tier=\"nano\"} 1"
        ),
        "{metrics}"
    );
}

/// A hint of the wrong type is a 400 naming the field, not a hint silently ignored.
#[tokio::test]
async fn wrong_typed_hints_are_a_400_naming_the_field() {
    let h = Harness::start().await;
    let mut body = user("auto", "hi");
    body["metadata"] = json!({"tier": ["x"]});
    let resp = h.chat(&body).await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["param"], "metadata.tier");
    assert_eq!(v["error"]["code"], "invalid_type");
    assert_eq!(h.mock.mock.requests().len(), 0);
}

/// Reads the stream until `needle` has been seen; returns all text read.
async fn read_until(
    stream: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    seen: &mut String,
    needle: &str,
) {
    while !seen.contains(needle) {
        let chunk = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("stream stalled")
            .expect("stream ended early")
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn streams_chunk_by_chunk_and_logs_usage() {
    let mut h =
        Harness::with(Setup::default().tier_model("gpt-5.4-mini", "gated-gpt-5.4-mini")).await;
    let mut body = user("mini", "Tell me a story about a lighthouse");
    body["stream"] = json!(true);
    let resp = h.chat(&body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-tierwise-tier"), "mini");
    assert!(header(&resp, "content-type").starts_with("text/event-stream"));
    assert!(resp.headers().get("x-tierwise-cost-usd").is_none());
    let mut stream = resp.bytes_stream();
    let mut seen = String::new();
    // The mock holds the rest of the answer after the first piece: it must already be here.
    read_until(&mut stream, &mut seen, "\"content\":\"Mock\"").await;
    assert!(!seen.contains("[DONE]"));
    let held = tokio::time::timeout(Duration::from_millis(100), stream.next()).await;
    assert!(held.is_err(), "more arrived while the upstream was holding");
    h.mock.mock.release();
    while let Some(chunk) = stream.next().await {
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    // The upstream's events, then ours: what the call cost, as SSE comments.
    let (events, trailer) = seen.split_once("data: [DONE]\n\n").expect("[DONE]");
    assert!(
        trailer.ends_with("\n\n") && trailer.lines().all(|l| l.is_empty() || l.starts_with(": ")),
        "{trailer}"
    );
    let streamed_cost: rust_decimal::Decimal =
        comment(trailer, "x-tierwise-cost-usd").parse().unwrap();
    assert!(
        comment(trailer, "x-tierwise-baseline-cost-usd")
            .parse::<rust_decimal::Decimal>()
            .unwrap()
            > streamed_cost
    );
    assert_eq!(comment(trailer, "x-tierwise-usage-estimated"), "false");
    let seen = format!("{events}data: [DONE]\n\n");
    // The client did not ask for the usage chunk: it was stripped (we asked upstream for it).
    assert!(!seen.contains("\"choices\":[]"), "{seen}");
    let sent = &h.mock.mock.requests()[0].body;
    assert_eq!(sent["stream_options"], json!({"include_usage": true}));
    let text: String = seen
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(
        text,
        "Mock answer from gated-gpt-5.4-mini to: Tell me a story about a lighthouse"
    );

    // The same request asking for usage gets the usage chunk.
    body["stream_options"] = json!({"include_usage": true});
    let seen2 = h.chat(&body).await.text().await.unwrap();
    let usage_event = seen2
        .split("\n\n")
        .find(|e| e.contains("\"choices\":[]"))
        .expect("usage chunk");
    let usage: Value = serde_json::from_str(&usage_event[6..]).unwrap();

    h.shutdown().await;
    let rows = read_rows(&h.db);
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert!(r.streamed);
        assert_eq!(r.status, 200);
        assert!(!r.usage_estimated);
        assert_eq!(
            r.input_tokens,
            usage["usage"]["prompt_tokens"].as_u64().unwrap()
        );
        assert_eq!(r.cost_usd, Some(expected_cost(MINI, &usage["usage"], "1")));
    }
    assert_eq!(rows[0].cost_usd, Some(streamed_cost));
    // Passed through unchanged (the client asked for usage), closed the same way.
    let (_, trailer2) = seen2.split_once("data: [DONE]\n\n").expect("[DONE]");
    assert_eq!(
        rows[1].cost_usd.map(|c| c.to_string()).as_deref(),
        Some(comment(trailer2, "x-tierwise-cost-usd"))
    );
}

/// The value of the `: name: value` comment line of a stream's closing event.
fn comment<'a>(trailer: &'a str, name: &str) -> &'a str {
    trailer
        .lines()
        .find_map(|l| l.strip_prefix(": ")?.strip_prefix(name)?.strip_prefix(": "))
        .unwrap_or_else(|| panic!("no {name} in {trailer}"))
}

#[tokio::test]
async fn stream_without_upstream_usage_is_estimated_and_disconnects_are_logged() {
    let mut h = Harness::with(
        Setup::default()
            .tier_model("gpt-5.4-nano", "nousage-gpt-5.4-nano")
            .tier_model("gpt-5.4-mini", "gated-gpt-5.4-mini"),
    )
    .await;
    let mut body = user("nano", "hello there");
    body["stream"] = json!(true);
    let text = h.chat(&body).await.text().await.unwrap();
    let (_, trailer) = text.split_once("data: [DONE]\n\n").expect("[DONE]");
    assert_eq!(comment(trailer, "x-tierwise-usage-estimated"), "true");
    assert!(
        comment(trailer, "x-tierwise-cost-usd")
            .parse::<rust_decimal::Decimal>()
            .is_ok()
    );

    // A client that goes away mid-stream.
    body["model"] = json!("mini");
    let resp = h.chat(&body).await;
    let mut stream = resp.bytes_stream();
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, "\"content\":\"Mock\"").await;
    drop(stream);
    h.mock.mock.release();

    h.shutdown().await;
    let rows = read_rows(&h.db);
    assert_eq!(rows.len(), 2);
    let est = &rows[0];
    assert!(est.usage_estimated);
    assert_eq!(est.input_tokens, 3 + 3 + 1 + 2); // priming + message + "user" + "hello there"
    assert!(est.output_tokens > 0);
    assert!(est.cost_usd.unwrap() > Decimal::ZERO);
    let gone = rows.iter().find(|r| r.tier == "mini").unwrap();
    assert_eq!(gone.status, 499);
    assert!(gone.error.as_deref().unwrap().contains("disconnected"));
}

#[tokio::test]
async fn bad_input_gets_openai_shaped_errors() {
    let mut h =
        Harness::with(Setup::default().edit("max_body_bytes = 4194304", "max_body_bytes = 4096"))
            .await;
    let check = |v: &Value, code: Option<&str>, param: Option<&str>| {
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{v}"
        );
        assert!(v["error"]["type"].is_string(), "{v}");
        assert_eq!(v["error"]["code"].as_str(), code, "{v}");
        assert_eq!(v["error"]["param"].as_str(), param, "{v}");
    };
    let raw = |body: &'static str| {
        h.client
            .post(h.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let r = raw("{\"model\": \"auto\", \"messages\": [").await.unwrap();
    assert_eq!(r.status(), 400);
    check(&r.json().await.unwrap(), Some("invalid_json"), None);

    let r = h.chat(&json!({"model": "auto"})).await;
    assert_eq!(r.status(), 400);
    check(
        &r.json().await.unwrap(),
        Some("missing_required_parameter"),
        Some("messages"),
    );

    let r = h.chat(&json!({"model": "auto", "messages": "hi"})).await;
    assert_eq!(r.status(), 400);
    check(
        &r.json().await.unwrap(),
        Some("invalid_type"),
        Some("messages"),
    );

    let r = h.chat(&json!({"model": 5, "messages": []})).await;
    assert_eq!(r.status(), 400);

    let r = h.chat(&user("gpt-9-ultra", "hi")).await;
    assert_eq!(r.status(), 404);
    check(
        &r.json().await.unwrap(),
        Some("model_not_found"),
        Some("model"),
    );

    let r = h
        .client
        .post(h.url("/v1/chat/completions"))
        .header("x-tierwise-tier", "huge")
        .json(&user("auto", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    check(
        &r.json().await.unwrap(),
        Some("invalid_value"),
        Some("x-tierwise-tier"),
    );

    let big = user("auto", &"x".repeat(5000));
    let r = h.chat(&big).await;
    assert_eq!(r.status(), 413);
    check(&r.json().await.unwrap(), Some("request_too_large"), None);
    // Chunked (no content-length): the limit still holds.
    let chunks = futures::stream::iter(
        (0..10).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 1000]))),
    );
    let r = h
        .client
        .post(h.url("/v1/chat/completions"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    let r = h
        .client
        .get(h.url("/v1/chat/completions"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    check(&r.json().await.unwrap(), Some("method_not_allowed"), None);
    let r = h.client.get(h.url("/nothing")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    check(&r.json().await.unwrap(), Some("unknown_url"), None);

    let r = h.post("/v1/responses", &json!({"model": "auto"})).await;
    assert_eq!(r.status(), 400);
    check(
        &r.json().await.unwrap(),
        Some("missing_required_parameter"),
        Some("input"),
    );

    // Nothing reached the upstream, and every proxied request has a row.
    assert_eq!(h.mock.mock.total_calls(), 0);
    h.shutdown().await;
    let rows = read_rows(&h.db);
    let statuses: Vec<u16> = rows.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [400, 400, 400, 400, 404, 400, 413, 413, 400]);
    assert!(rows.iter().all(|r| r.cost_usd == Some(Decimal::ZERO)));
}

#[tokio::test]
async fn upstream_errors_pass_back_with_their_status() {
    let h = Harness::with(
        Setup::default()
            .tier_model("gpt-5.4-nano", "error-400")
            .tier_model("gpt-5.4-mini", "garbage-gpt-5.4-mini"),
    )
    .await;
    let r = h.chat(&user("nano", "hi")).await;
    assert_eq!(r.status(), 400);
    assert_eq!(header(&r, "x-tierwise-tier"), "nano");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["message"], "Mock client error 400.");
    // A 400 is the request's fault: no retry, no fallback.
    assert_eq!(h.mock.mock.calls("error-400"), 1);

    // A 200 that is not JSON is never passed on as an empty or broken 200.
    let r = h.chat(&user("mini", "hi")).await;
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_invalid_response");
}

#[tokio::test]
async fn retryable_errors_retry_then_fall_back_up_the_ladder() {
    let mut h = Harness::with(
        Setup::default()
            .tier_model("gpt-5.4-nano", "error-429")
            .tier_model("gpt-5.4-mini", "flaky-1-gpt-5.4-mini"),
    )
    .await;
    // Explicit tier: nano is tried 1 + max_retries (2) times, then mini (503 once, then OK).
    let r = h.chat(&user("nano", "hi")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-tierwise-tier"), "mini");
    assert_eq!(header(&r, "x-tierwise-model"), "flaky-1-gpt-5.4-mini");
    assert!(header(&r, "x-tierwise-reason").contains("fell back: nano -> mini"));
    let cost = header_decimal(&r, "x-tierwise-cost-usd");
    let v: Value = r.json().await.unwrap();
    assert_eq!(cost, expected_cost(MINI, &v["usage"], "1"));
    assert_eq!(h.mock.mock.calls("error-429"), 3);
    assert_eq!(h.mock.mock.calls("flaky-1-gpt-5.4-mini"), 2);

    // A forced tier has no fallbacks: the provider's 429 comes back as it was sent.
    let r = h
        .client
        .post(h.url("/v1/chat/completions"))
        .header("x-tierwise-tier", "nano")
        .json(&user("auto", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    assert_eq!(h.mock.mock.calls("error-429"), 6);

    let metrics = h.metrics().await;
    assert!(
        metrics.contains(
            "tierwise_upstream_errors_total{tier=\"nano\",status=\"429\",retryable=\"true\"} 6"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("tierwise_fallbacks_total{from=\"nano\",to=\"mini\"} 1"),
        "{metrics}"
    );

    h.shutdown().await;
    let rows = read_rows(&h.db);
    assert_eq!(rows[0].attempts, 5);
    assert_eq!(rows[0].tiers_tried, ["nano", "mini"]);
    assert_eq!((rows[1].status, rows[1].attempts), (429, 3));
}

#[tokio::test]
async fn exhausted_quota_is_not_retried() {
    let h = Harness::with(Setup::default().tier_model("gpt-5.4-nano", "quota-429")).await;
    let r = h.chat(&user("nano", "hi")).await;
    assert_eq!(r.status(), 429);
    assert_eq!(h.mock.mock.total_calls(), 1);
}

#[tokio::test]
async fn unreachable_upstream_is_a_502() {
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    let h = Harness::with(
        Setup {
            base_url: Some(url),
            ..Setup::default()
        }
        .edit("max_retries = 2", "max_retries = 1"),
    )
    .await;
    let r = h.chat(&user("nano", "hi")).await;
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_unreachable");
    // Retried, but no fallback: every tier is behind the same unreachable base URL.
    let rows = h.rows().await;
    assert_eq!(
        (rows[0].attempts, rows[0].tiers_tried.clone()),
        (2, vec!["nano".to_string()])
    );
    assert_eq!(rows[0].status, 502);
}

#[tokio::test]
async fn responses_api_plain_and_streaming() {
    let mut h = Harness::start().await;
    let r = h
        .post(
            "/v1/responses",
            &json!({"model": "standard", "input": "Summarize the plot of Hamlet.", "instructions": "be brief"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-tierwise-tier"), "standard");
    let cost = header_decimal(&r, "x-tierwise-cost-usd");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "response");
    assert_eq!(cost, expected_cost(STANDARD, &v["usage"], "1"));

    let text = h
        .post(
            "/v1/responses",
            &json!({"model": "standard", "input": "Summarize the plot of Hamlet.", "instructions": "be brief", "stream": true}),
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("event: response.completed"));
    let sent = &h.mock.mock.requests()[1].body;
    assert!(sent.get("stream_options").is_none());
    h.shutdown().await;
    let rows = read_rows(&h.db);
    assert_eq!(rows[1].endpoint, "responses");
    assert!(rows[1].streamed && !rows[1].usage_estimated);
    assert_eq!(rows[1].cost_usd, Some(cost));
}

#[tokio::test]
async fn models_health_and_metrics() {
    let h = Harness::start().await;
    let v: Value = h
        .client
        .get(h.url("/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    for id in [
        "auto",
        "gpt-5.4-nano",
        "gpt-5.4-mini",
        "gpt-5.4",
        "gpt-5.5",
        "nano",
        "flagship",
    ] {
        assert!(ids.contains(&id), "{ids:?}");
    }
    let r = h.client.get(h.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // no provider key configured (the harness's default): /healthz says so, naming the variable
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["upstream_api_key"], false);
    assert!(
        v["warning"].as_str().unwrap().contains("OPENAI_API_KEY"),
        "{v}"
    );

    h.chat(&user("mini", "hi")).await.text().await.unwrap();
    let m = h.client.get(h.url("/metrics")).send().await.unwrap();
    assert!(header(&m, "content-type").starts_with("text/plain"));
    let m = m.text().await.unwrap();
    for needle in [
        "tierwise_requests_total{endpoint=\"chat.completions\",tier=\"mini\",status=\"200\",streamed=\"false\"} 1",
        "tierwise_request_duration_seconds_bucket{endpoint=\"chat.completions\",tier=\"mini\",streamed=\"false\",le=\"",
        "tierwise_tokens_total{tier=\"mini\",kind=\"input\"}",
        "tierwise_tokens_total{tier=\"mini\",kind=\"reasoning\"} 64",
        "tierwise_cost_usd_total{tier=\"mini\"}",
        "tierwise_baseline_cost_usd_total{tier=\"mini\"}",
        "# TYPE tierwise_cost_usd_total counter",
        "# TYPE tierwise_baseline_cost_usd_total counter",
    ] {
        assert!(m.contains(needle), "missing {needle} in\n{m}");
    }
}

#[tokio::test]
async fn the_api_key_is_sent_upstream_and_never_shown() {
    const KEY: &str = "sk-tierwise-secret-0123456789";
    let mut h = Harness::with(
        Setup {
            mock: Mock::with_api_key(KEY),
            api_key: Some(KEY.to_string()),
            ..Setup::default()
        }
        .tier_model("gpt-5.4-nano", "error-500")
        .edit("max_retries = 2", "max_retries = 0")
        .edit("store_bodies = false", "store_bodies = true"),
    )
    .await;
    let health: Value = h
        .client
        .get(h.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["upstream_api_key"], true);
    assert!(health.get("warning").is_none());
    let r = h.chat(&user("mini", "hi")).await;
    assert_eq!(r.status(), 200, "the mock requires the key");
    let mut everything = format!("{:?}", r.headers());
    everything.push_str(&r.text().await.unwrap());
    // Forced, so no fallback hides the upstream's 500.
    let r = h
        .client
        .post(h.url("/v1/chat/completions"))
        .header("x-tierwise-tier", "nano")
        .json(&user("auto", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    everything.push_str(&format!("{:?}", r.headers()));
    everything.push_str(&r.text().await.unwrap());
    let r = h.chat(&user("bogus", "hi")).await;
    everything.push_str(&r.text().await.unwrap());
    everything.push_str(&h.metrics().await);
    everything.push_str(&format!("{:?}", h.config));
    assert!(!everything.contains(KEY));
    assert_eq!(
        h.mock.mock.requests()[0].headers["authorization"],
        format!("Bearer {KEY}")
    );
    h.shutdown().await;
    let db = std::fs::read(&h.db).unwrap();
    assert!(!String::from_utf8_lossy(&db).contains(KEY));
    // Bodies are stored when asked.
    let rows = read_rows(&h.db);
    assert!(rows[0].request_body.as_deref().unwrap().contains("\"hi\""));
    assert!(
        rows[0]
            .response_body
            .as_deref()
            .unwrap()
            .contains("Mock answer")
    );
}

#[tokio::test]
async fn without_a_configured_key_the_clients_key_is_forwarded() {
    let h = Harness::with(Setup {
        mock: Mock::with_api_key("sk-client"),
        ..Setup::default()
    })
    .await;
    let r = h
        .client
        .post(h.url("/v1/chat/completions"))
        .bearer_auth("sk-client")
        .json(&user("mini", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = h.chat(&user("mini", "hi")).await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn concurrent_requests_are_all_logged_by_shutdown() {
    let mut h = Harness::start().await;
    let mut tasks = Vec::new();
    for i in 0..64 {
        let client = h.client.clone();
        let url = h.url("/v1/chat/completions");
        let mut body = user("auto", &format!("Question number {i}?"));
        if i % 2 == 0 {
            body["stream"] = json!(true);
        }
        tasks.push(tokio::spawn(async move {
            let r = client.post(url).json(&body).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.text().await.unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let report = h.shutdown().await;
    assert_eq!(report.log.written, 64);
    assert_eq!(report.log.failed, 0);
    let rows = read_rows(&h.db);
    assert_eq!(rows.len(), 64);
    assert_eq!(rows.iter().filter(|r| r.streamed).count(), 32);
    assert!(rows.iter().all(|r| r.status == 200 && r.input_tokens > 0));
    // UUID v7: ids sort by time like the rows do.
    let mut ids: Vec<_> = rows.iter().map(|r| r.id).collect();
    ids.sort();
    assert_eq!(ids.len(), 64);
}
