//! Whole CLI runs of `tierwise audit` on the committed fixture
//! (`crates/tierwise-audit/tests/fixtures/small.jsonl`), with money worked out by hand.
//!
//! Prices (embedded config, USD per 1M tokens): gpt-5.5 5 / 0.5 cached / 30; gpt-5.4 2.5 / 15;
//! gpt-5.4-mini 0.75 / 0.075 / 4.5; gpt-4o 2.5 / 10. Flex and batch × 0.5.
//!
//! | line | call                                   | spend                                     |
//! |------|----------------------------------------|-------------------------------------------|
//! | 1    | gpt-5.5, 1000 in, 200 out (deferrable) | 1000×5 + 200×30 = 0.011                   |
//! | 2    | mini, 2000 in (1024 cached), 100 out   | 976×0.75 + 1024×0.075 + 100×4.5 = 0.0012588 |
//! | 3    | malformed                              | –                                         |
//! | 4    | gpt-5.5 flex, 500 in, 50 out           | (500×5 + 50×30) × 0.5 = 0.002             |
//! | 5    | acme-llm-7b                            | unpriced                                  |
//! | 6    | gpt-5.4, no response: 9 counted tokens | 9×2.5 = 0.0000225 (estimated)             |
//! | 7    | gpt-4o-2024-08-06, 100 in, 10 out      | 100×2.5 + 10×10 = 0.00035                 |
//!
//! Total 0.0146313. Routing (`model: auto`): every prompt is short and plain → mini.

#![allow(clippy::unwrap_used, reason = "tests may unwrap")]

use std::path::PathBuf;

use assert_cmd::Command;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tierwise-audit/tests/fixtures")
        .join(name)
}

fn tierwise() -> Command {
    let mut c = Command::cargo_bin("tierwise").unwrap();
    // Run from an empty folder so ./tierwise.toml is not picked up; the embedded default is used.
    c.current_dir(std::env::temp_dir());
    c
}

fn json(args: &[&str]) -> Value {
    let out = tierwise().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn audit_json_figures() {
    let small = fixture("small.jsonl");
    let v = json(&["audit", "--json", small.to_str().unwrap()]);
    assert_eq!(v["requests"], 6);
    assert_eq!(v["spend_usd"], "0.0146313");
    assert_eq!(v["estimated_requests"], 1);
    assert_eq!(v["unpriced_models"][0]["model"], "acme-llm-7b");
    assert_eq!(v["malformed"]["count"], 1);
    assert_eq!(v["malformed"]["lines"][0]["line"], 3);
    let flagship = v["by_tier"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["model"] == "gpt-5.5")
        .unwrap();
    assert_eq!(flagship["tier"], "flagship");
    assert_eq!(flagship["requests"], 2);
    assert_eq!(flagship["input_tokens"], 1500);
    assert_eq!(flagship["output_tokens"], 250);
    assert_eq!(flagship["spend_usd"], "0.013");
    let unpriced = v["by_tier"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["model"] == "acme-llm-7b")
        .unwrap();
    assert!(unpriced["spend_usd"].is_null());
    let cats: Vec<&str> = v["by_category"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["category"].as_str().unwrap())
        .collect();
    assert!(
        cats.contains(&"summarization") && cats.contains(&"writing"),
        "{cats:?}"
    );
    let w = &v["what_if"];
    assert_eq!(w["baseline_usd"], "0.0146313");
    // on mini: 0.00165 + 0.0012588 + 0.0003 (flex) + 0.00000675 + 0.00012
    assert_eq!(w["after_tiering_usd"], "0.00333555");
    // line 1 is deferrable: 0.00165 × 0.5
    assert_eq!(w["after_batch_usd"], "0.00251055");
    assert_eq!(w["after_cache_usd"], "0.00251055");
    assert_eq!(w["after_tool_search_usd"], "0.00251055");
    assert_eq!(w["savings_usd"], "0.01212075");
    assert_eq!(w["savings_pct"], 82.84);
}

#[test]
fn audit_tables_stdin_and_since() {
    let text = std::fs::read(fixture("small.jsonl")).unwrap();
    let out = tierwise()
        .args(["audit", "-", "--since", "2026-01-02T00:00:00Z"])
        .write_stdin(text)
        .output()
        .unwrap();
    assert!(out.status.success());
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(s.contains("tierwise audit: 1 calls, $0.0004 spent"), "{s}");
    assert!(s.contains("What-if waterfall"), "{s}");
    assert!(s.contains("gpt-4o-2024-08-06"), "{s}");
}

#[test]
fn audit_html_is_self_contained() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    let small = fixture("small.jsonl");
    let out = tierwise()
        .args([
            "audit",
            small.to_str().unwrap(),
            "--html",
            html.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg") && page.contains("Savings waterfall"));
    // no scripts, stylesheets or images fetched from anywhere
    assert!(!page.contains("<script") && !page.contains("<link") && !page.contains("<img"));
    assert!(!page.contains("https://"), "no network references");
}

#[test]
fn audit_bad_input_exits_2() {
    let out = tierwise()
        .args(["audit", "/nonexistent/calls.jsonl"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent/calls.jsonl"), "{err}");

    let small = fixture("small.jsonl");
    let out = tierwise()
        .args(["audit", "--strict", small.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains(":3:"), "{err}");

    let out = tierwise()
        .args(["audit", "--store", "/nonexistent/tierwise.db"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
