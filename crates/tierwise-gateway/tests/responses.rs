//! The Responses API in depth, over real TCP against the mock: conversations keep their tier,
//! hosted tool search passes through, usage (reasoning, cached reads, cache writes) is priced
//! exactly, and stream events reach the client unchanged.
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
use tierwise_mock::Mock;

/// A prompt the default rules send to a strong tier, and one they send to a cheap tier.
const HARD: &str = "Prove that there are infinitely many primes of the form 4k+3, then derive \
    the asymptotic density of such primes using Dirichlet's theorem, step by step with full rigor.";
const EASY: &str = "thanks!";

async fn responses(h: &Harness, body: Value) -> (String, String, Value) {
    let r = h.post("/v1/responses", &body).await;
    assert_eq!(r.status(), 200, "{body}");
    let tier = header(&r, "x-tierwise-tier").to_string();
    let reason = header(&r, "x-tierwise-reason").to_string();
    (tier, reason, r.json().await.unwrap())
}

/// The `response.completed` event's response of an SSE body.
fn completed(sse: &str) -> Value {
    sse.split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|v| v["type"] == "response.completed")
        .expect("a response.completed event")["response"]
        .clone()
}

fn event_types(sse: &str) -> Vec<String> {
    sse.lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn previous_response_id_keeps_the_conversations_tier() {
    let h = Harness::start().await;
    let (hard_tier, _, first) = responses(&h, json!({"model": "auto", "input": HARD})).await;
    let (easy_tier, _, _) = responses(&h, json!({"model": "auto", "input": EASY})).await;
    // Without the pin the follow-up would go elsewhere: the test can fail.
    assert_ne!(hard_tier, easy_tier);

    let id = first["id"].as_str().unwrap();
    let follow = json!({"model": "auto", "input": EASY, "previous_response_id": id});
    let (tier, reason, answer) = responses(&h, follow.clone()).await;
    assert_eq!(tier, hard_tier);
    assert!(reason.starts_with("previous_response_id -> "), "{reason}");
    // …and the chain continues from the follow-up's own id.
    let next = json!({"model": "auto", "input": EASY, "previous_response_id": answer["id"]});
    assert_eq!(responses(&h, next).await.0, hard_tier);

    // A streamed answer is remembered too (its id read from the events).
    let sse = h
        .post(
            "/v1/responses",
            &json!({"model": "auto", "input": HARD, "stream": true}),
        )
        .await
        .text()
        .await
        .unwrap();
    let streamed_id = completed(&sse)["id"].as_str().unwrap().to_string();
    let follow_stream =
        json!({"model": "auto", "input": EASY, "previous_response_id": streamed_id});
    assert_eq!(responses(&h, follow_stream).await.0, hard_tier);

    // A forced tier or an explicit model still wins over the conversation.
    let r = h
        .client
        .post(h.url("/v1/responses"))
        .header("x-tierwise-tier", easy_tier.as_str())
        .json(&follow)
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "x-tierwise-tier"), easy_tier);
    let mut explicit = follow.clone();
    explicit["model"] = json!(easy_tier);
    assert_eq!(responses(&h, explicit).await.0, easy_tier);

    // The log row says why.
    let rows = h.rows().await;
    assert!(rows[2].reason.contains("conversation keeps its tier"));
    assert_eq!(rows[2].tier, hard_tier);
}

#[tokio::test]
async fn a_restarted_gateway_asks_the_provider_which_model_answered() {
    let mock = Mock::new();
    let first = Harness::with(Setup {
        mock: mock.clone(),
        ..Setup::default()
    })
    .await;
    let (hard_tier, _, answer) = responses(&first, json!({"model": "auto", "input": HARD})).await;
    let id = answer["id"].as_str().unwrap().to_string();
    drop(first);

    // Another gateway (a restart, or another replica) with the same provider.
    let h = Harness::with(Setup {
        mock: mock.clone(),
        ..Setup::default()
    })
    .await;
    assert!(h.gateway.state().conversations.is_empty());
    let follow = json!({"model": "auto", "input": EASY, "previous_response_id": id});
    let (tier, reason, _) = responses(&h, follow.clone()).await;
    assert_eq!(tier, hard_tier, "{reason}");
    assert_eq!(h.gateway.state().conversations.len(), 2);

    // An id nobody knows routes as usual (and the provider's own 400 comes back verbatim).
    let r = h
        .post(
            "/v1/responses",
            &json!({"model": "auto", "input": EASY, "previous_response_id": "resp_unknown"}),
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(!header(&r, "x-tierwise-reason").contains("previous_response_id"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "previous_response_not_found");
    // An id that is not a plain token is never turned into a provider path.
    let r = h
        .post(
            "/v1/responses",
            &json!({"model": "auto", "input": EASY, "previous_response_id": "../files"}),
        )
        .await;
    assert_eq!(r.status(), 400);
}

/// Responses-shaped function tools (`name` at the top level).
fn sixty_tools(defer: bool) -> Vec<Value> {
    (0..60)
        .map(|i| {
            let mut t = json!({"type": "function", "name": format!("tool_{i}"),
                "description": format!("Performs internal operation number {i}"),
                "parameters": {"type": "object", "properties": {"arg": {"type": "string"}}}});
            if defer {
                t["defer_loading"] = json!(true);
            }
            t
        })
        .collect()
}

#[tokio::test]
async fn hosted_tool_search_passes_tools_through_untouched() {
    let h = Harness::start().await;
    let sent_tools = |h: &Harness| -> Vec<Value> {
        h.mock.mock.requests().last().unwrap().body["tools"]
            .as_array()
            .unwrap()
            .clone()
    };
    // Without hosted tool search, 60 tools are pruned.
    let plain = json!({"model": "auto", "input": "Run operation 7", "tools": sixty_tools(false)});
    let r = h.post("/v1/responses", &plain).await;
    assert_eq!(r.status(), 200);
    assert!(sent_tools(&h).len() < 60);

    // With it (a tool_search tool, deferred functions), every tool goes as the client sent it.
    let mut tools = sixty_tools(true);
    tools.push(json!({"type": "tool_search"}));
    let hosted = json!({"model": "auto", "input": "Run operation 7", "tools": tools});
    let r = h.post("/v1/responses", &hosted).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-tierwise-tools-sent"), "61");
    assert_eq!(Value::Array(sent_tools(&h)), hosted["tools"]);

    // `defer_loading` alone (no tool_search tool) means the same, in chat's shape too.
    let chat_tools: Vec<Value> = (0..60)
        .map(|i| {
            json!({"type": "function", "function": {"name": format!("tool_{i}"),
            "description": "an operation", "defer_loading": i > 3}})
        })
        .collect();
    let mut chat = user("auto", "Run operation 7");
    chat["tools"] = json!(chat_tools);
    let r = h.chat(&chat).await;
    assert_eq!(r.status(), 200);
    assert_eq!(Value::Array(sent_tools(&h)), chat["tools"]);
}

/// USD per 1M tokens of the standard tier, as the test configures it (cache writes 1.25×).
const INPUT: &str = "2.50";
const CACHED: &str = "0.25";
const WRITE: &str = "3.125";
const OUTPUT: &str = "15.00";

/// The price of a Responses `usage`, computed term by term here (not by tierwise_core).
fn hand_priced(usage: &Value) -> Decimal {
    let n = |p: &str| Decimal::from(usage.pointer(p).and_then(Value::as_u64).unwrap_or(0));
    let d = |s: &str| s.parse::<Decimal>().unwrap();
    let input = n("/input_tokens");
    let cached = n("/input_tokens_details/cached_tokens");
    let written = n("/input_tokens_details/cache_write_tokens");
    // Reasoning tokens are part of output_tokens and billed as output.
    let output = n("/output_tokens");
    ((input - cached - written) * d(INPUT)
        + cached * d(CACHED)
        + written * d(WRITE)
        + output * d(OUTPUT))
        / Decimal::from(1_000_000)
}

#[tokio::test]
async fn responses_usage_is_priced_exactly_with_reasoning_and_cache_writes() {
    let h = Harness::with(Setup::default().edit(
        "output = 15.00\n",
        &format!("output = 15.00\ncache_write = {WRITE}\n"),
    ))
    .await;
    let long = "the quick brown fox jumps over the lazy dog ".repeat(160);
    let body = |stream: bool| {
        json!({"model": "standard", "input": long, "prompt_cache_key": "conv-1",
            "reasoning": {"effort": "high"}, "stream": stream})
    };
    // 1: a cold cache, written; 2: read (streamed); 3: read.
    let r = h.post("/v1/responses", &body(false)).await;
    let cost_1 = header_decimal(&r, "x-tierwise-cost-usd");
    let v1: Value = r.json().await.unwrap();
    let u1 = v1["usage"].clone();
    let written = u1["input_tokens_details"]["cache_write_tokens"]
        .as_u64()
        .unwrap();
    assert!(written >= 1024);
    assert_eq!(u1["output_tokens_details"]["reasoning_tokens"], 256);
    assert_eq!(cost_1, hand_priced(&u1));

    let sse = h
        .post("/v1/responses", &body(true))
        .await
        .text()
        .await
        .unwrap();
    let u2 = completed(&sse)["usage"].clone();
    assert_eq!(u2["input_tokens_details"]["cached_tokens"], written);
    let cost_3 = {
        let r = h.post("/v1/responses", &body(false)).await;
        header_decimal(&r, "x-tierwise-cost-usd")
    };

    // The hand computation for these token counts, spelled out.
    let input = u1["input_tokens"].as_u64().unwrap();
    let output = u1["output_tokens"].as_u64().unwrap();
    let per_m = Decimal::from(1_000_000);
    let by_hand_write = (Decimal::from(input - written) * Decimal::new(250, 2)
        + Decimal::from(written) * Decimal::new(3125, 3)
        + Decimal::from(output) * Decimal::new(15, 0))
        / per_m;
    let by_hand_read = (Decimal::from(input - written) * Decimal::new(250, 2)
        + Decimal::from(written) * Decimal::new(25, 2)
        + Decimal::from(output) * Decimal::new(15, 0))
        / per_m;
    assert_eq!(cost_1, by_hand_write);
    assert_eq!(cost_3, by_hand_read);
    // Writing the cache costs more than reading it, by exactly (3.125 − 0.25) per 1M written.
    assert_eq!(
        cost_1 - cost_3,
        Decimal::from(written) * Decimal::new(2875, 3) / per_m
    );

    let rows = h.rows().await;
    assert_eq!(rows.len(), 3);
    for row in &rows {
        assert_eq!(row.reasoning_tokens, 256);
        assert_eq!(row.input_tokens, input);
        assert!(!row.usage_estimated);
    }
    assert_eq!(rows[0].cost_usd, Some(by_hand_write));
    assert_eq!(rows[1].cost_usd, Some(hand_priced(&u2)));
    assert_eq!(rows[1].cost_usd, Some(by_hand_read));
    assert_eq!(rows[2].cost_usd, Some(by_hand_read));
    assert_eq!((rows[0].cached_tokens, rows[1].cached_tokens), (0, written));
    // To the cent, as a bill shows it.
    assert_eq!(
        rows[0].cost_usd.unwrap().round_dp(2),
        by_hand_write.round_dp(2)
    );
}

#[tokio::test]
async fn responses_stream_events_reach_the_client_unchanged() {
    let h = Harness::start().await;
    let body = json!({"model": "standard", "input": "Name three rivers.", "stream": true});
    let through = h.post("/v1/responses", &body).await.text().await.unwrap();
    // The mock's own stream for the same request, asked directly.
    let mut direct_body = body.clone();
    direct_body["model"] = json!(h.config.catalog.tier(2).unwrap().model);
    let direct = h
        .client
        .post(format!("{}/responses", h.mock.base_url()))
        .json(&direct_body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(event_types(&through), event_types(&direct));
    assert!(event_types(&through).len() >= 5);
    // The final event is the provider's answer, byte for byte as JSON.
    let done = completed(&through);
    let stored = h.mock.mock.stored_response(done["id"].as_str().unwrap());
    assert_eq!(Some(done), stored);
    // tierwise adds only its closing cost comment, after the provider's last event.
    let (events, tail) = through.split_at(through.rfind("event: response.completed").unwrap());
    assert!(!events.contains(": x-tierwise"));
    assert!(tail.contains("\n\n: x-tierwise-cost-usd: "), "{tail}");
}
