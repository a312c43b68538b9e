//! Whole CLI runs of `tierwise quality plan` on the committed fixtures (small cuts of the real
//! outcome data, see crates/tierwise-eval/fixtures/README.md).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests may unwrap"
)]

use std::path::PathBuf;

use assert_cmd::Command;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tierwise-eval/fixtures")
}

fn tierwise() -> Command {
    let mut c = Command::cargo_bin("tierwise").unwrap();
    c.current_dir(std::env::temp_dir());
    c
}

const LADDER: &str = "Meta-Llama-3_1-8B-Instruct,gemini-1.5-flash-002,gemini-1.5-pro-002";

fn plan(extra: &[&str]) -> std::process::Output {
    tierwise()
        .args(["quality", "plan", "--data"])
        .arg(fixtures().join("mmlu_pro"))
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn plan_json_is_deterministic_and_has_its_keys() {
    let args = [
        "--models",
        LADDER,
        "--samples",
        "15",
        "--bar",
        "0.95",
        "--confidence",
        "0.9",
        "--seed",
        "3",
        "--json",
    ];
    let a = plan(&args);
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    let b = plan(&args);
    assert_eq!(a.stdout, b.stdout);
    let v: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    assert_eq!(v["categories"].as_array().unwrap().len(), 14);
    assert!(v["samples_used"].as_u64().unwrap() <= 14 * 15);
    assert!(v["realized"]["quality_ratio"].is_number());
    assert!(v["realized"]["cost_ratio"].is_number());
    assert!(v["method"].as_str().unwrap().contains("Benjamini-Hochberg"));
    for c in v["categories"].as_array().unwrap() {
        for k in [
            "category", "model", "rows", "sampled", "estimate", "lower", "upper",
        ] {
            assert!(c.get(k).is_some(), "{k}");
        }
    }
}

#[test]
fn plan_text_is_a_table_and_the_realized_line() {
    let out = plan(&["--models", LADDER, "--samples", "10"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("psychology"), "{text}");
    assert!(text.contains("realized on all"), "{text}");
    assert!(text.contains("cost ratio"), "{text}");
}

#[test]
fn bad_input_exits_2_with_a_clear_message() {
    for (args, needle) in [
        (vec!["--models", "nope,gemini-1.5-pro-002"], "nope"),
        (vec!["--bar", "1.5"], "--bar"),
        (vec!["--bar", "0"], "--bar"),
        (vec!["--confidence", "1"], "--confidence"),
        (vec!["--confidence", "0"], "--confidence"),
        (vec!["--samples", "0"], "--samples"),
    ] {
        let out = plan(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("error:") && err.contains(needle),
            "{args:?}: {err}"
        );
    }
}
