//! Awkward catalogs under the default `[tools]` policy (adaptive k): tools with empty or huge
//! descriptions, duplicate names, non-English text, a catalog of one tool. Selection never
//! fails; what each case does is documented in `index.rs` and `select.rs`.
#![allow(clippy::unwrap_used, reason = "tests may unwrap")]

use serde_json::{Value, json};
use tierwise_core::request::RequestView;
use tierwise_tools::{Reason, SelectionPolicy, ToolIndex, select};

fn tool(name: &str, desc: &str) -> Value {
    json!({"type": "function", "function": {"name": name, "description": desc,
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}})
}

fn default_policy() -> SelectionPolicy {
    let mut p = SelectionPolicy::from_config(
        &tierwise_core::Config::embedded(&|_: &str| None)
            .unwrap()
            .tools,
    );
    p.threshold = 0;
    p.top_k = 2;
    p
}

fn ask(text: &str) -> RequestView {
    RequestView::chat(&json!({"model": "auto", "messages": [{"role": "user", "content": text}]}))
        .unwrap()
}

fn filler(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            tool(
                &format!("filler_{i}"),
                &format!("Unrelated helper number {i}"),
            )
        })
        .collect()
}

fn relevant(s: &tierwise_tools::Selection) -> Vec<usize> {
    s.kept
        .iter()
        .filter(|k| matches!(k.reason, Reason::Relevant { .. }))
        .map(|k| k.index)
        .collect()
}

#[test]
fn empty_and_huge_descriptions() {
    let mut tools = filler(30);
    tools.push(tool("get_weather_forecast", ""));
    let huge = "weather ".repeat(50_000);
    tools.push(tool("weather_dump", &huge));
    let idx = ToolIndex::build(&tools);
    assert!(idx.entries()[30].missing_description);
    let s = select(&idx, &ask("weather forecast for Oslo"), &default_policy());
    let kept = relevant(&s);
    // The empty description is still found by its name; the huge one is length-normalised,
    // not dropped.
    assert!(kept.contains(&30), "{kept:?}");
    assert!(kept.contains(&31), "{kept:?}");
    assert!(s.tokens_sent < s.tokens_offered);
}

#[test]
fn duplicate_names_are_separate_tools() {
    let mut tools = filler(30);
    tools.push(tool("send_email", "Send an email"));
    tools.push(tool("send_email", "Send an email message"));
    let idx = ToolIndex::build(&tools);
    assert!(idx.entries()[30].duplicate_name && idx.entries()[31].duplicate_name);
    let kept = relevant(&select(&idx, &ask("email Bob"), &default_policy()));
    assert!(kept.contains(&30) && kept.contains(&31), "{kept:?}");
}

#[test]
fn non_english_text_is_matched_by_its_words() {
    let mut tools = filler(30);
    tools.push(tool(
        "wetter_abrufen",
        "Ruft die Wettervorhersage für eine Stadt ab",
    ));
    tools.push(tool("tianqi", "查询城市天气预报"));
    tools.push(tool("meteo", "Prévisions météo pour une ville"));
    let idx = ToolIndex::build(&tools);
    let p = default_policy();
    let first = |q: &str| {
        let s = select(&idx, &ask(q), &p);
        s.kept
            .iter()
            .find(|k| k.reason == Reason::Relevant { rank: 0 })
            .map(|k| k.index)
    };
    assert_eq!(first("Wettervorhersage für Berlin"), Some(30));
    assert_eq!(first("查询城市天气预报"), Some(31));
    assert_eq!(first("prévisions météo à Lyon"), Some(32));
}

#[test]
fn one_tool_and_nothing_matching() {
    let one = ToolIndex::build(&[tool("only", "The only tool")]);
    let s = select(&one, &ask("anything at all"), &default_policy());
    assert_eq!(s.indices(), [0]);
    assert!(!s.pruned);
    // Nothing matches: the adaptive ceiling is kept (no evidence, so recall needs the budget),
    // still a bounded share of the catalog.
    let idx = ToolIndex::build(&filler(200));
    let p = default_policy();
    let s = select(&idx, &ask("zzzz qqqq"), &p);
    let (_, hi) = p.bounds(200);
    assert_eq!(relevant(&s).len(), hi);
    assert!(hi < 200);
}
