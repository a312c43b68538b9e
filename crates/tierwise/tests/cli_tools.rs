//! Whole CLI runs of `tierwise tools eval` on the committed fixtures (crates/tierwise-tools/fixtures).
#![allow(clippy::unwrap_used, reason = "tests may unwrap")]

use std::path::PathBuf;

use assert_cmd::Command;

fn tierwise() -> Command {
    let mut c = Command::cargo_bin("tierwise").unwrap();
    // Run from an empty folder so ./tierwise.toml is not picked up; the embedded default is used.
    c.current_dir(std::env::temp_dir());
    c
}

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tierwise-tools/fixtures")
        .join(name)
        .display()
        .to_string()
}

fn json(args: &[&str]) -> serde_json::Value {
    let out = tierwise().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn json_report_has_the_public_keys() {
    let data = fixture("seal_tools_mini");
    let v = json(&["tools", "eval", "--data", &data, "--k", "8", "--json"]);
    for key in [
        "queries",
        "k",
        "recall",
        "tokens_offered",
        "tokens_sent",
        "reduction",
        "curve",
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    assert_eq!(v["queries"], 100);
    assert_eq!(v["k"], 8);
    assert_eq!(v["method"], "lexical");
    assert!(v["recall"].as_f64().unwrap() >= 0.97);
    assert!(v["reduction"].as_f64().unwrap() > 0.95);
    let curve = v["curve"].as_array().unwrap();
    assert!(curve.iter().any(|p| p["k"] == 8));
    assert!(
        curve
            .iter()
            .all(|p| p.get("recall").is_some() && p.get("reduction").is_some())
    );
}

#[test]
fn default_k_is_the_config_top_k_and_bm25_is_the_baseline() {
    let data = fixture("seal_tools_mini");
    let default = json(&["tools", "eval", "--data", &data, "--json"]);
    let top_k = tierwise_core::Config::embedded(&|_: &str| None)
        .unwrap()
        .tools
        .top_k;
    assert_eq!(default["k"].as_u64().unwrap() as usize, top_k);
    let bm25 = json(&[
        "tools", "eval", "--data", &data, "--method", "bm25", "--k", "4", "--json",
    ]);
    let lexical = json(&["tools", "eval", "--data", &data, "--k", "4", "--json"]);
    assert!(lexical["recall"].as_f64().unwrap() > bm25["recall"].as_f64().unwrap());
}

#[test]
fn human_report_and_sweep() {
    let data = fixture("bfcl_mini");
    let out = tierwise()
        .args(["tools", "eval", "--data", &data, "--k", "2", "--sweep"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("79 queries"), "{text}");
    assert!(text.contains("k = 2: recall"), "{text}");
    assert!(text.contains("reduction"), "{text}");
    assert!(
        out.stderr.is_empty(),
        "no progress bar when stderr is not a terminal"
    );
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let out = tierwise()
        .args(["tools", "eval", "--data", "/no/such/dir"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: /no/such/dir"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let out = tierwise()
        .args(["tools", "eval", "--data", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("no tools.jsonl")
    );
}

#[test]
fn malformed_lines_are_counted_with_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tools.jsonl"),
        "{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Weather\"}}\n{broken\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("queries.jsonl"),
        "{\"id\":\"q\",\"messages\":[{\"role\":\"user\",\"content\":\"weather\"}],\"gold_tools\":[\"get_weather\"]}\nnope\n",
    )
    .unwrap();
    let out = tierwise()
        .args([
            "tools",
            "eval",
            "--data",
            dir.path().to_str().unwrap(),
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["queries"], 1);
    let problems = v["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2);
    assert_eq!(problems[0]["file"], "tools.jsonl");
    assert_eq!(problems[0]["line"], 2);
    assert_eq!(problems[1]["file"], "queries.jsonl");
    assert_eq!(problems[1]["line"], 2);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("tools.jsonl:2:"), "{err}");
    assert!(
        err.contains("2 malformed or unusable lines skipped"),
        "{err}"
    );
}

#[test]
fn hybrid_with_a_missing_or_corrupt_model_is_an_error_naming_the_file() {
    let data = fixture("seal_tools_mini");
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        tierwise()
            .args([
                "tools",
                "eval",
                "--data",
                &data,
                "--method",
                "hybrid",
                "--embed-dir",
                dir.path().to_str().unwrap(),
            ])
            .output()
            .unwrap()
    };
    let out = run();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("tokenizer.json"), "{err}");
    std::fs::write(dir.path().join("tokenizer.json"), "{not json").unwrap();
    let out = run();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("tokenizer.json"), "{err}");
}

#[test]
fn default_config_reports_adaptive_k_and_selection_quantiles() {
    let data = fixture("seal_tools_mini");
    let v = json(&["tools", "eval", "--data", &data, "--json"]);
    assert!(v["k_max"].as_u64().unwrap() >= v["k"].as_u64().unwrap());
    assert!(v["k_mean"].as_f64().unwrap() >= v["k"].as_f64().unwrap());
    let t = &v["timing"];
    assert!(t["select_us_p50"].as_f64().unwrap() <= t["select_us_p99"].as_f64().unwrap());
}
