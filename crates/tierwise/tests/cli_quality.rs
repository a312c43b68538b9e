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

/// A store with shadow rows: `per` rows of each (category, verdict).
fn store_with(
    dir: &std::path::Path,
    rows: &[(&str, tierwise_store::ShadowVerdict, usize)],
) -> PathBuf {
    use rust_decimal_macros::dec;
    use tierwise_store::{ShadowLog, ShadowMethod, ShadowRow};
    let path = dir.join("tierwise.db");
    let log = ShadowLog::open(&path).unwrap();
    for (category, verdict, n) in rows {
        for _ in 0..*n {
            log.insert(&ShadowRow {
                id: uuid::Uuid::now_v7(),
                request_id: uuid::Uuid::now_v7(),
                time: time::OffsetDateTime::now_utc(),
                category: category.to_string(),
                served_tier: "standard".into(),
                served_model: "gpt-5.4".into(),
                candidate_tier: "mini".into(),
                candidate_model: "gpt-5.4-mini".into(),
                method: Some(ShadowMethod::Check),
                detail: Some("label".into()),
                verdict: *verdict,
                shadow_cost_usd: Some(dec!(0.0001)),
                judge_cost_usd: Some(dec!(0)),
                error: None,
                prompt: None,
            })
            .unwrap();
        }
    }
    path
}

#[test]
fn report_json_has_its_keys_and_verdicts() {
    use tierwise_store::ShadowVerdict::{Agree, Capped, Disagree, Unjudged};
    let dir = tempfile::tempdir().unwrap();
    let db = store_with(
        dir.path(),
        &[
            ("classification", Agree, 200),
            ("coding", Agree, 5),
            ("coding", Disagree, 5),
            ("writing", Agree, 3),
            ("writing", Unjudged, 2),
            ("writing", Capped, 1),
        ],
    );
    let html = dir.path().join("q.html");
    let out = tierwise()
        .args(["quality", "--store"])
        .arg(&db)
        .args(["--bar", "0.95", "--confidence", "0.9", "--json", "--html"])
        .arg(&html)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pairs = v["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 3);
    for key in [
        "category",
        "served_tier",
        "candidate_tier",
        "n",
        "wins",
        "ties",
        "losses",
        "estimate",
        "lower",
        "upper",
        "verdict",
    ] {
        assert!(pairs.iter().all(|p| p.get(key).is_some()), "{key}");
    }
    let get = |c: &str| pairs.iter().find(|p| p["category"] == c).unwrap();
    assert_eq!(get("classification")["verdict"], "safe to move down");
    assert_eq!(get("classification")["n"], 200);
    assert_eq!(get("coding")["verdict"], "not safe");
    assert_eq!(get("coding")["losses"], 5);
    let w = get("writing");
    assert_eq!(w["n"], 3);
    assert!(w["verdict"].as_str().unwrap().starts_with("need "));
    assert_eq!(v["unjudged"], 2);
    assert_eq!(v["shadow_usd"], "0.0216");
    assert_eq!(v["judge_usd"], "0");
    assert!(
        v["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("daily cap"))
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("safe to move down") && !page.contains("<script"));
    // the terminal table
    let out = tierwise()
        .args(["quality", "--store"])
        .arg(&db)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("classification") && text.contains("need "),
        "{text}"
    );
}

#[test]
fn report_bad_input_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let db = store_with(dir.path(), &[]);
    for args in [
        vec![
            "--store".to_string(),
            db.display().to_string(),
            "--bar".into(),
            "1.5".into(),
        ],
        vec![
            "--store".to_string(),
            db.display().to_string(),
            "--confidence".into(),
            "1".into(),
        ],
        vec![
            "--store".to_string(),
            dir.path().join("missing.db").display().to_string(),
        ],
        vec![
            "--store".to_string(),
            db.display().to_string(),
            "--since".into(),
            "yesterday".into(),
        ],
    ] {
        let out = tierwise().arg("quality").args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    // `plan` is still a subcommand
    let out = tierwise()
        .args(["quality", "plan", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
}
