//! Tool search in the gateway (issue 5) over real TCP against the mock upstream.
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
    let metrics = h
        .client
        .get(h.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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
