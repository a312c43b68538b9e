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

/// A logged call of `category` served by `tier`: 1,000 input and 100 output tokens.
fn logged(category: &str, tier: &str, cost: rust_decimal::Decimal) -> tierwise_store::RequestRow {
    tierwise_store::RequestRow {
        id: uuid::Uuid::now_v7(),
        time: time::OffsetDateTime::now_utc(),
        endpoint: "chat.completions".into(),
        requested_model: "auto".into(),
        tier: tier.into(),
        model: "m".into(),
        reason: "r".into(),
        category: Some(category.into()),
        category_source: Some("categorizer".into()),
        role: None,
        mode: "sync".into(),
        service_tier: "default".into(),
        input_tokens: 1000,
        cached_tokens: 0,
        output_tokens: 100,
        reasoning_tokens: 0,
        usage_estimated: false,
        cost_usd: Some(cost),
        baseline_cost_usd: None,
        latency_ms: 1.0,
        status: 200,
        streamed: false,
        attempts: 1,
        tiers_tried: vec![tier.into()],
        error: None,
        request_body: None,
        response_body: None,
        tools: tierwise_store::ToolCounts::default(),
        key_id: None,
        team: None,
    }
}

#[test]
fn calibrate_from_log_moves_only_safe_categories_served_by_the_tested_tier() {
    use rust_decimal_macros::dec;
    use tierwise_store::ShadowVerdict::{Agree, Disagree};
    let dir = tempfile::tempdir().unwrap();
    let db = store_with(
        dir.path(),
        &[
            ("classification", Agree, 200),
            ("writing", Agree, 200),
            ("coding", Agree, 5),
            ("coding", Disagree, 5),
        ],
    );
    {
        let log = tierwise_store::RequestLog::open(&db, tierwise_store::WriterOptions::default())
            .unwrap();
        // standard: 1000 × 2.50 + 100 × 15.00 per 1M = $0.004 a call
        for _ in 0..10 {
            log.record(logged("classification", "standard", dec!(0.004)))
                .unwrap();
        }
        log.record(logged("writing", "standard", dec!(0.004)))
            .unwrap();
        log.record(logged("writing", "flagship", dec!(0.008)))
            .unwrap();
        log.close().unwrap();
    }
    let cfg = dir.path().join("tierwise.toml");
    std::fs::write(&cfg, tierwise_core::config::DEFAULT_TOML).unwrap();
    let run = || {
        tierwise()
            .args(["calibrate", "--from-log", "--store"])
            .arg(&db)
            .arg("--config")
            .arg(&cfg)
            .args(["--bar", "0.95", "--confidence", "0.9", "--json"])
            .output()
            .unwrap()
    };
    let out = run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let moves = v["moves"].as_array().unwrap();
    assert_eq!(moves.len(), 1, "{v}");
    assert_eq!(moves[0]["category"], "classification");
    assert_eq!(moves[0]["to_tier"], "mini");
    assert_eq!(moves[0]["calls"], 10);
    // mini: 1000 × 0.75 + 100 × 4.50 per 1M = $0.0012 a call
    assert_eq!(moves[0]["projected_usd"], "0.0120");
    assert_eq!(moves[0]["savings_usd"], "0.0280");
    assert!(moves[0]["quality_lower"].as_f64().unwrap() > 0.95);
    let skipped = v["skipped"].as_array().unwrap();
    assert!(
        skipped
            .iter()
            .any(|s| s.as_str().unwrap().starts_with("writing:"))
    );
    assert!(
        v["diff"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l == "+ name = \"quality-classification\"")
    );
    let text = std::fs::read_to_string(&cfg).unwrap();
    let rule = text.find("quality-classification").unwrap();
    assert!(rule < text.find("name = \"sub-agent\"").unwrap());
    let check = tierwise()
        .args(["config", "check"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(check.status.success());
    // again: the same rules, nothing changes
    let again: serde_json::Value = serde_json::from_slice(&run().stdout).unwrap();
    assert!(again["diff"].as_array().unwrap().is_empty(), "{again}");
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), text);
}
