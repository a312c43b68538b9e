//! Tool search in the gateway over real TCP against the mock upstream.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests may unwrap"
)]

mod common;

use common::*;
use serde_json::{Value, json};

/// 40 function tools, one of them about the weather.
fn forty_tools() -> Vec<Value> {
    (0..40)
        .map(|i| {
            let (name, desc) = if i == 12 {
                (
                    "get_weather_forecast".to_string(),
                    "Weather forecast for a city".to_string(),
                )
            } else {
                (
                    format!("tool_{i}"),
                    format!("Performs internal operation number {i}"),
                )
            };
            json!({"type": "function", "function": {"name": name, "description": desc,
                "parameters": {"type": "object", "properties": {"arg": {"type": "string"}}}}})
        })
        .collect()
}

fn request(tools: Vec<Value>, tool_choice: Option<&str>) -> Value {
    let mut body = user("auto", "What is the weather forecast for Paris tomorrow?");
    body["tools"] = Value::Array(tools);
    if let Some(name) = tool_choice {
        body["tool_choice"] = json!({"type": "function", "function": {"name": name}});
    }
    body
}

fn forwarded_names(h: &Harness) -> Vec<String> {
    let reqs = h.mock.mock.requests();
    let last = reqs.last().expect("one upstream call");
    last.body["tools"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|t| {
                    t.pointer("/function/name")
                        .unwrap()
                        .as_str()
                        .unwrap()
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn many_tools_are_pruned_to_top_k_plus_forced() {
    let h = Harness::with(Setup::default().edit("top_k = 24", "top_k = 4")).await;
    let tools = forty_tools();
    let resp = h.chat(&request(tools.clone(), Some("tool_33"))).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-tierwise-tools-offered"), "40");
    let names = forwarded_names(&h);
    assert_eq!(
        header(&resp, "x-tierwise-tools-sent"),
        names.len().to_string()
    );
    assert!(names.len() <= 4 + 1, "{names:?}");
    assert!(
        names.contains(&"tool_33".to_string()),
        "tool_choice kept: {names:?}"
    );
    assert!(
        names.contains(&"get_weather_forecast".to_string()),
        "{names:?}"
    );
    // Deterministic: original order, and the same list on a second call.
    let order: Vec<usize> = names
        .iter()
        .map(|n| {
            tools
                .iter()
                .position(|t| t.pointer("/function/name").unwrap() == n.as_str())
                .unwrap()
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    let again = h.chat(&request(tools, Some("tool_33"))).await;
    assert_eq!(again.status(), 200);
    assert_eq!(forwarded_names(&h), names);
    // Tool-schema tokens offered vs sent reach /metrics.
    let metrics = h.metrics().await;
    let value = |kind: &str| -> f64 {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("tierwise_tool_schema_tokens_total")
                    && l.contains(&format!("kind=\"{kind}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(
        value("sent") > 0.0 && value("sent") < value("offered") / 3.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn few_tools_are_untouched() {
    let h = Harness::with(Setup::default().edit("top_k = 24", "top_k = 4")).await;
    let tools: Vec<Value> = forty_tools().into_iter().take(16).collect();
    let resp = h.chat(&request(tools.clone(), None)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-tierwise-tools-offered"), "16");
    assert_eq!(header(&resp, "x-tierwise-tools-sent"), "16");
    assert_eq!(h.mock.mock.requests()[0].body["tools"], Value::Array(tools));
}

#[tokio::test]
async fn mode_off_is_untouched_even_with_bad_tools() {
    let h = Harness::with(
        Setup::default()
            .edit("top_k = 24", "top_k = 4")
            .edit("mode = \"prune\"", "mode = \"off\""),
    )
    .await;
    let mut tools = forty_tools();
    tools.push(tools[3].clone()); // duplicate name
    tools.push(json!({"type": "function", "function": {"name": "no_description"}}));
    let resp = h.chat(&request(tools.clone(), None)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-tierwise-tools-offered"), "42");
    assert_eq!(header(&resp, "x-tierwise-tools-sent"), "42");
    assert_eq!(h.mock.mock.requests()[0].body["tools"], Value::Array(tools));
}

#[tokio::test]
async fn unindexable_tools_are_never_pruned() {
    let h = Harness::with(Setup::default().edit("top_k = 24", "top_k = 4")).await;
    let mut tools = forty_tools();
    tools.insert(20, json!({"type": "web_search_preview"}));
    tools.insert(
        30,
        json!({"type": "function", "function": {"description": "no name"}}),
    );
    let resp = h.chat(&request(tools, None)).await;
    assert_eq!(resp.status(), 200);
    let sent = h.mock.mock.requests()[0].body["tools"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        sent.contains(&json!({"type": "web_search_preview"})),
        "{sent:?}"
    );
    assert!(
        sent.contains(&json!({"type": "function", "function": {"description": "no name"}})),
        "{sent:?}"
    );
    assert!(sent.len() <= 4 + 2, "{sent:?}");
}

// ---- mode `tool_search` (the mock's `toolsearch-` model searches until a fitting tool is
// offered; see tierwise_mock::answer::tool_search_answer) ----

const NEED: &str = "Need weather forecasts for Paris tomorrow";

/// 40 tools: fillers, a decoy that outranks the weather tool lexically (same stems) but does
/// not fit the mock model (no word in common), and the weather tool.
fn search_tools() -> Vec<Value> {
    let mut tools: Vec<Value> = (0..38)
        .map(|i| {
            json!({"type": "function", "function": {"name": format!("tool_{i}"),
                "description": format!("Performs internal operation number {i}")}})
        })
        .collect();
    tools.insert(
        3,
        json!({"type": "function", "function": {"name": "forecasting_needs",
            "description": "Forecasting needed by weathering models, forecasted daily"}}),
    );
    tools.insert(
        30,
        json!({"type": "function", "function": {"name": "get_weather",
            "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}),
    );
    tools
}

fn search_setup() -> Setup {
    Setup::default()
        .edit("top_k = 24", "top_k = 1")
        // Exactly top_k relevant tools (no adaptive k), so the rounds are predictable.
        .edit("tail_ratio = 0.3", "tail_ratio = 1.0")
        .edit("mode = \"prune\"", "mode = \"tool_search\"")
        .tier_model("gpt-5.4-mini", "toolsearch-gpt-5.4-mini")
}

fn names_of(body: &Value) -> Vec<String> {
    body["tools"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|t| t.pointer("/function/name").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// What the mock billed for one request (its documented usage rule).
fn mock_prompt_tokens(body: &Value) -> u64 {
    let view = tierwise_core::request::RequestView::chat(body).unwrap();
    (tierwise_core::tokens::count_messages(&view.messages)
        + tierwise_core::tokens::count_tools(&view.tools)) as u64
}

#[tokio::test]
async fn tool_search_is_answered_by_the_gateway_and_every_round_is_priced() {
    let h = Harness::with(search_setup()).await;
    let mut body = user("mini", NEED);
    body["tools"] = Value::Array(search_tools());
    let resp = h.chat(&body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-tierwise-tools-offered"), "40");
    // Final round: the decoy (top 1) and the weather tool the search found.
    assert_eq!(header(&resp, "x-tierwise-tools-sent"), "2");
    let cost = header_decimal(&resp, "x-tierwise-cost-usd");
    let answer: Value = resp.json().await.unwrap();
    let msg = &answer["choices"][0]["message"];
    assert!(msg.get("tool_calls").is_none(), "{answer}");
    assert!(msg["content"].as_str().unwrap().starts_with("Mock answer"));
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");

    let reqs = h.mock.mock.requests();
    assert_eq!(reqs.len(), 2, "one search round, then the answer");
    for r in &reqs {
        assert!(r.body.get("stream").is_none());
        // Only the client's own fields (and the cache key `[cache] shape` adds) go upstream:
        // the session stays in the gateway.
        let mut keys: Vec<&str> = r
            .body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["messages", "model", "prompt_cache_key", "tools"]);
    }
    // every round of one call shares the cache key
    assert_eq!(
        reqs[0].body["prompt_cache_key"],
        reqs[1].body["prompt_cache_key"]
    );
    assert_eq!(
        names_of(&reqs[0].body),
        ["forecasting_needs", "tool_search"]
    );
    assert_eq!(
        names_of(&reqs[1].body),
        ["forecasting_needs", "get_weather", "tool_search"]
    );
    let messages = reqs[1].body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(
        messages[1]["tool_calls"][0]["function"]["name"],
        "tool_search"
    );
    assert_eq!(messages[2]["role"], "tool");
    assert_eq!(
        messages[2]["tool_call_id"],
        messages[1]["tool_calls"][0]["id"]
    );
    let found: Value = serde_json::from_str(messages[2]["content"].as_str().unwrap()).unwrap();
    assert_eq!(found["tools"][0]["name"], "get_weather");

    // The client's usage is the sum over rounds, and the cost header prices it.
    let billed: u64 = reqs.iter().map(|r| mock_prompt_tokens(&r.body)).sum();
    assert_eq!(answer["usage"]["prompt_tokens"], billed);
    assert_eq!(cost, expected_cost(MINI, &answer["usage"], "1"));
    let rows = h.rows().await;
    let row = rows.last().unwrap();
    assert_eq!(row.attempts, 2);
    assert_eq!(row.input_tokens, billed);
    assert_eq!((row.tools.offered, row.tools.sent), (40, 2));
    assert!(row.tools.tokens_sent > 0 && row.tools.tokens_sent < row.tools.tokens_offered);
    assert_eq!(row.cost_usd, Some(cost));
}

#[tokio::test]
async fn tool_search_rounds_are_bounded_and_the_model_is_never_stuck() {
    let h = Harness::with(search_setup()).await;
    // No tool fits: the mock searches every time the function is offered.
    let mut body = user("mini", "Translate this sentence into Klingon please");
    body["tools"] = Value::Array(search_tools());
    let resp = h.chat(&body).await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    assert!(answer["choices"][0]["message"].get("tool_calls").is_none());
    let reqs = h.mock.mock.requests();
    // max_search_rounds = 2: two searches answered, then a call without the function.
    assert_eq!(reqs.len(), 3);
    assert!(names_of(&reqs[1].body).contains(&"tool_search".to_string()));
    assert!(!names_of(&reqs[2].body).contains(&"tool_search".to_string()));
    assert_eq!(reqs[2].body["messages"].as_array().unwrap().len(), 5);
    assert_eq!(h.rows().await.last().unwrap().attempts, 3);
}

#[tokio::test]
async fn tool_search_streams_the_final_answer_to_streaming_clients() {
    let h = Harness::with(search_setup()).await;
    let mut body = user("mini", NEED);
    body["tools"] = Value::Array(search_tools());
    body["stream"] = json!(true);
    let resp = h.chat(&body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-tierwise-tools-sent"), "2");
    assert!(header(&resp, "content-type").starts_with("text/event-stream"));
    let text = resp.text().await.unwrap();
    assert!(text.contains("chat.completion.chunk"), "{text}");
    assert!(text.contains("Mock answer"), "{text}");
    assert!(!text.contains("tool_search"), "{text}");
    // The upstream's events end with [DONE]; then the closing cost comment.
    let (_, trailer) = text.split_once("data: [DONE]\n\n").expect("[DONE]");
    assert!(trailer.starts_with(": x-tierwise-cost-usd: "), "{trailer}");
    // The client did not ask for usage: the usage chunk is cut.
    assert!(!text.contains("\"usage\""), "{text}");
    let reqs = h.mock.mock.requests();
    assert_eq!(reqs.len(), 2);
    assert!(reqs.iter().all(|r| r.body.get("stream").is_none()));
    let billed: u64 = reqs.iter().map(|r| mock_prompt_tokens(&r.body)).sum();
    let row = h.rows().await.last().unwrap().clone();
    assert!(row.streamed);
    assert_eq!(row.input_tokens, billed);
    assert_eq!(row.tools.sent, 2);
}

#[tokio::test]
async fn tool_search_mode_with_bad_tools_keeps_them_untouched() {
    let h = Harness::with(search_setup()).await;
    let mut tools = search_tools();
    tools.push(json!({"type": "web_search_preview"}));
    tools.push(tools[5].clone()); // duplicate name
    tools.push(json!({"type": "function", "function": {"name": "no_description"}}));
    tools.push(json!({"type": "function", "function": {"name": "bad_schema", "description": "x", "parameters": "not a schema"}}));
    let mut body = user("mini", NEED);
    body["tools"] = Value::Array(tools);
    let resp = h.chat(&body).await;
    assert_eq!(resp.status(), 200);
    let reqs = h.mock.mock.requests();
    let first = reqs[0].body["tools"].as_array().unwrap();
    assert!(
        first.contains(&json!({"type": "web_search_preview"})),
        "{first:?}"
    );
    // The search never returns unmatched tools, and each sent tool is byte-identical.
    for r in &reqs {
        for t in r.body["tools"].as_array().unwrap() {
            let ours = t.pointer("/function/name") == Some(&json!("tool_search"));
            assert!(ours || body["tools"].as_array().unwrap().contains(t), "{t}");
        }
    }
}
