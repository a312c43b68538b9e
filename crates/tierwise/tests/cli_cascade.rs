//! Whole CLI runs of the cascade commands: `eval --cascade --leave-category-out`,
//! `calibrate --cascade` (the plan written into a config that still validates), and
//! `audit --cascade` on a call log holding answers. The data is a small synthetic set written
//! by [`synthetic`] (two categories, two models, multiple-choice answers in the recorded
//! `response` format of `../shared/data/FORMAT.md`): the real-data fixture trains 14 scorers,
//! too slow for a debug-build test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests may unwrap"
)]

use std::path::PathBuf;
use std::process::Command;

use assert_cmd::prelude::*;
use serde_json::Value;

/// 60 rows in two categories; `cheap` is right on 2 rows of 3 and says so plainly when right,
/// hedges and changes its mind when wrong; `strong` is right on 5 of 6.
fn synthetic(dir: &std::path::Path) -> PathBuf {
    let data = dir.join("synthetic");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("models.json"),
        r#"{"models": {"cheap": {"input_per_mtok": 0.1, "output_per_mtok": 0.4},
            "strong": {"input_per_mtok": 2.0, "output_per_mtok": 8.0}}}"#,
    )
    .unwrap();
    let mut lines = Vec::new();
    for i in 0..60 {
        let category = if i % 2 == 0 { "math" } else { "law" };
        let right = ["A", "B", "C", "D"][i % 4];
        let wrong = ["B", "C", "D", "A"][i % 4];
        let (cheap_ok, strong_ok) = (i % 3 != 0, i % 6 != 5);
        let cheap = if cheap_ok {
            format!("Step by step: the premise gives it directly. The answer is ({right}).")
        } else {
            format!(
                "Perhaps it is ({right}), but I am not sure; maybe not. The answer is ({wrong})."
            )
        };
        let strong = format!(
            "Working through the options carefully. The answer is ({}).",
            if strong_ok { right } else { wrong }
        );
        let row = serde_json::json!({
            "id": format!("synthetic/{i}"),
            "category": category,
            "messages": [{"role": "user", "content": format!(
                "Question {i}: which option holds?\nA. one\nB. two\nC. three\nD. four\nAnswer with the letter.")}],
            "outcomes": {
                "cheap": {"score": if cheap_ok { 1.0 } else { 0.0 }, "output_tokens": 20, "response": cheap},
                "strong": {"score": if strong_ok { 1.0 } else { 0.0 }, "output_tokens": 30, "response": strong},
            }
        });
        lines.push(row.to_string());
    }
    std::fs::write(data.join("outcomes.jsonl"), lines.join("\n") + "\n").unwrap();
    data
}

fn tierwise() -> Command {
    let mut c = Command::cargo_bin("tierwise").unwrap();
    c.current_dir(std::env::temp_dir());
    c.env("TIERWISE_EMBED_DIR", "/nonexistent-embedding-model");
    c
}

fn run_ok(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn eval_leave_category_out_reports_every_category() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_ok(
        tierwise()
            .args([
                "eval",
                "--cascade",
                "--leave-category-out",
                "--json",
                "--data",
            ])
            .arg(synthetic(dir.path())),
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    let held = v["leave_category_out"].as_array().unwrap();
    let groups: Vec<&str> = held.iter().map(|h| h["group"].as_str().unwrap()).collect();
    assert_eq!(groups, ["law", "math"]);
    assert!(held.iter().all(|h| h["rows"] == 30));
    // the plan fitted on the other category is applied: a point with a quality and a cost
    assert!(
        held.iter()
            .all(|h| h["plan_point"]["cost_rel"].as_f64().is_some())
    );
    assert!(
        v["scorer"]["name"]
            .as_str()
            .unwrap()
            .starts_with("leave-one-category-out")
    );
}

#[test]
fn calibrate_cascade_writes_a_plan_the_config_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic(dir.path());
    let cfg = dir.path().join("tierwise.toml");
    // the shipped config with two tiers (one per data model)
    let shipped = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tierwise.toml"),
    )
    .unwrap();
    let two = shipped
        .split("[[tiers]]")
        .enumerate()
        .filter(|(i, t)| *i == 0 || t.contains("\"nano\"") || t.contains("\"flagship\""))
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join("[[tiers]]")
        // rules naming the removed tiers point at the remaining ones
        .replace("tier = \"mini\"", "tier = \"nano\"")
        .replace("tier = \"standard\"", "tier = \"flagship\"");
    std::fs::write(&cfg, two).unwrap();
    run_ok(tierwise().args(["config", "check"]).arg(&cfg));
    let out = run_ok(
        tierwise()
            .args([
                "calibrate",
                "--cascade",
                "--target",
                "quality=0.9",
                "--json",
                "--config",
            ])
            .arg(&cfg)
            .arg("--data")
            .arg(&data),
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    let ladder: Vec<&str> = v["ladder"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(ladder.last(), Some(&"flagship"));
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("# calibrated by `tierwise calibrate --cascade --target quality=0.9`"));
    let quoted: Vec<String> = ladder.iter().map(|t| format!("{t:?}")).collect();
    assert!(
        text.contains(&format!("ladder = [{}]", quoted.join(", "))),
        "{text}"
    );
    // the written file is a valid config
    run_ok(tierwise().args(["config", "check"]).arg(&cfg));
    // bad target: one line, exit 2
    let out = tierwise()
        .args([
            "calibrate",
            "--cascade",
            "--target",
            "speed=1",
            "--dry-run",
            "--data",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--target"));
}

#[test]
fn audit_cascade_replays_logged_answers() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls.jsonl");
    let call = |model: &str, text: &str, finish: &str| {
        serde_json::json!({
            "timestamp": "2026-01-02T03:04:05Z",
            "request": {"model": model, "messages": [{"role": "user", "content": "What is 6 times 7?"}]},
            "response": {"model": model, "choices": [{"index": 0, "finish_reason": finish,
                "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 200, "completion_tokens": 20}}
        })
        .to_string()
    };
    let lines = [
        call("gpt-5.4-nano", "6 × 7 = 42. The answer is 42.", "stop"),
        call("gpt-5.4-nano", "", "stop"),
        call("gpt-5.5", "42", "stop"),
    ];
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let out = run_ok(tierwise().args(["audit", "--cascade", "--json"]).arg(&log));
    let v: Value = serde_json::from_str(&out).unwrap();
    let r = &v["cascade_replay"];
    assert_eq!(r["calls"], 3);
    assert_eq!(r["scored"], 3);
    let nano = r["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tier"] == "nano")
        .unwrap();
    assert!(nano["rejected"].as_u64().unwrap() >= 1);
    assert_eq!(nano["gates"]["empty"], 1);
    assert_eq!(nano["escalate_to"], "mini");
    // without the flag: no replay in the report
    let out = run_ok(tierwise().args(["audit", "--json"]).arg(&log));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(v.get("cascade_replay").is_none());
}
