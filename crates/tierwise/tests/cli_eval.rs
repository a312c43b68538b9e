//! Whole CLI runs of `tierwise eval`, `train` and `calibrate` on the committed fixtures
//! (small cuts of the real outcome data, see crates/tierwise-eval/fixtures/README.md).

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
    // no embedding model: the embedding-free router (CI does not fetch it)
    c.env("TIERWISE_EMBED_DIR", "/nonexistent-embedding-model");
    c
}

const PAIR: &str = "Meta-Llama-3_1-8B-Instruct,gemini-1.5-pro-002";

fn run_ok(c: &mut Command) -> (String, String) {
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "stderr: {err}");
    (String::from_utf8(out.stdout).unwrap(), err)
}

#[test]
fn eval_default_router_json_scores_and_html() {
    let dir = tempfile::tempdir().unwrap();
    let scores = dir.path().join("scores.jsonl");
    let html = dir.path().join("chart.html");
    let data = fixtures().join("mmlu_pro");
    let (out, err) = run_ok(
        tierwise()
            .args(["eval", "--data"])
            .arg(&data)
            .args(["--models", PAIR, "--json", "--scores"])
            .arg(&scores)
            .arg("--html")
            .arg(&html),
    );
    // the shipped router prefers its embedding model; without it, it says so once
    assert_eq!(err.matches("embedding-free").count(), 1, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = v["rows"].as_u64().unwrap();
    assert_eq!(rows + v["skipped"].as_u64().unwrap(), 301);
    for k in ["apgr", "cpt50", "cpt80", "savings_at_95"] {
        assert!(v[k].is_number(), "{k}");
    }
    assert_eq!(v["router"]["name"], "default");
    assert!(
        v["router"]["trained_on_these_rows"].as_bool().unwrap(),
        "the default router was trained on mmlu_pro"
    );
    assert!(
        v["baselines"]["oracle"]["apgr"].as_f64().unwrap()
            >= v["baselines"]["random"]["apgr"].as_f64().unwrap()
    );
    let lines = std::fs::read_to_string(&scores).unwrap();
    assert_eq!(lines.lines().count() as u64, rows);
    let first: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert!(first["id"].is_string() && first["estimates"].as_array().unwrap().len() == 2);
    assert!(std::fs::read_to_string(&html).unwrap().contains("<svg"));
}

#[test]
fn eval_bad_input_exits_2_naming_it() {
    let data = fixtures().join("mmlu_pro");
    let out = tierwise()
        .args(["eval", "--data"])
        .arg(&data)
        .args(["--models", "Meta-Llama-3_1-8B-Instruct,no-such-model"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-model"));
    // a router file of another format version
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../router/default.json"),
    )
    .unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["format_version"] = serde_json::json!(999);
    let bad = dir.path().join("old.json");
    std::fs::write(&bad, v.to_string()).unwrap();
    let out = tierwise()
        .args(["eval", "--data"])
        .arg(&data)
        .args(["--models", PAIR, "--router"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("format_version 999"), "{err}");
}

#[test]
fn ngram_deviations_are_trained_written_and_used() {
    // own traffic: a router trained with per-model n-gram deviations on mmlu_pro's fixture,
    // then evaluated on the same data set's ladder (its models are known: the IRT path)
    let dir = tempfile::tempdir().unwrap();
    let router = dir.path().join("ng.json");
    let data = fixtures().join("mmlu_pro");
    run_ok(
        tierwise()
            .args([
                "train",
                "--json",
                "--features",
                "signals,lexical,ngrams=10",
                "--data",
            ])
            .arg(&data)
            .arg("--out")
            .arg(&router),
    );
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&router).unwrap()).unwrap();
    let devs = &file["models"][0]["ngram_deviations"];
    assert!(
        devs["gemini-1.5-pro-002"]["i16_le_base64"].is_string(),
        "{devs}"
    );
    let eval = |extra: &[&str]| -> serde_json::Value {
        let (out, _) = run_ok(
            tierwise()
                .args(["eval", "--json", "--data"])
                .arg(&data)
                .args(["--models", PAIR, "--router"])
                .arg(&router)
                .args(extra),
        );
        serde_json::from_str(&out).unwrap()
    };
    let e = eval(&[]);
    assert_eq!(e["router"]["abilities"], "trained");
    assert_eq!(e["router"]["trained_on_these_rows"], true);
    // in-sample, words the fixture's rows share: the deviations fit them, so they beat random
    assert!(e["apgr"].as_f64().unwrap() > 0.55, "{}", e["apgr"]);
    // a file without them (l2 0 = off) has no such key and a different curve
    run_ok(
        tierwise()
            .args(["train", "--json", "--features", "signals,lexical,ngrams=10"])
            .args(["--l2-ngrams-per-model", "0", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(&router),
    );
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&router).unwrap()).unwrap();
    assert!(file["models"][0].get("ngram_deviations").is_none());
    assert_ne!(eval(&[])["apgr"], e["apgr"]);
}

#[test]
fn train_then_eval_on_another_data_set_and_cv() {
    let dir = tempfile::tempdir().unwrap();
    let router = dir.path().join("r.json");
    let (out, _) = run_ok(
        tierwise()
            .args(["train", "--json", "--data"])
            .arg(fixtures().join("llmrouter"))
            .arg("--out")
            .arg(&router),
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["data"][0]["rows"], 251);
    let (out, _) = run_ok(
        tierwise()
            .args(["eval", "--json", "--data"])
            .arg(fixtures().join("mmlu_pro"))
            .args(["--models", PAIR, "--router"])
            .arg(&router),
    );
    let e: serde_json::Value = serde_json::from_str(&out).unwrap();
    // unseen ladder models: the transfer head decides
    assert_eq!(e["router"]["abilities"], "transfer head");
    assert_eq!(e["router"]["trained_on_these_rows"], false);
    let (out, _) = run_ok(
        tierwise()
            .args(["eval", "--json", "--cv", "3", "--data"])
            .arg(fixtures().join("mmlu_pro"))
            .args(["--models", PAIR]),
    );
    let c: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(c["router"]["cv"], 3);
    assert!(c["apgr"].is_number());
    // --cv-by knows one field (the folds themselves are tested in tierwise-eval)
    let bad = tierwise()
        .args(["eval", "--cv-by", "colour", "--data"])
        .arg(fixtures().join("mmlu_pro"))
        .args(["--models", PAIR])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--cv-by"));
}

#[test]
fn calibrate_writes_thresholds_and_keeps_comments() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tierwise.toml");
    let original = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tierwise.toml"),
    )
    .unwrap();
    std::fs::write(&cfg, &original).unwrap();
    let data = fixtures().join("mmlu_pro");
    let (out, _) = run_ok(
        tierwise()
            .args([
                "calibrate",
                "--json",
                "--target",
                "strong-share=0.3",
                "--data",
            ])
            .arg(&data)
            .arg("--config")
            .arg(&cfg),
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let share = v["calibration"]["share"].as_array().unwrap();
    assert!(share.last().unwrap().as_f64().unwrap() <= 0.3);
    let new = std::fs::read_to_string(&cfg).unwrap();
    assert!(new.contains("thresholds = ["));
    // every original line is still there, in order; two lines were added
    assert_eq!(new.lines().count(), original.lines().count() + 2);
    assert!(
        original
            .lines()
            .filter(|l| l.starts_with('#'))
            .all(|l| new.contains(l))
    );
    let check = tierwise()
        .args(["config", "check"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let bad = tierwise()
        .args(["calibrate", "--dry-run", "--target", "speed=1", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
