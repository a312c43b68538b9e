//! End-to-end checks of the evaluator on the committed fixtures (small cuts of the real data).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests, benches and examples may unwrap"
)]

use std::path::{Path, PathBuf};

use rust_decimal::Decimal;
use tierwise_eval::data::{self, Dataset};
use tierwise_eval::ladder::{Ladder, oracle_estimates, sweep};
use tierwise_eval::learn::{self, Source};
use tierwise_eval::metrics::metrics;
use tierwise_eval::report::{self, RouterInfo};
use tierwise_router::learned::features::FeatureSpec;
use tierwise_router::learned::model::EstimateForm;
use tierwise_train::router::TrainOptions;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn load(name: &str, split: Option<&str>) -> Dataset {
    data::load(&fixture(name), split, &mut |_| {}).unwrap()
}

fn info() -> RouterInfo {
    RouterInfo {
        name: "t".into(),
        features: None,
        abilities: None,
        cv: None,
        trained_on_these_rows: false,
    }
}

const LADDER4: [&str; 4] = [
    "Meta-Llama-3_1-8B-Instruct",
    "gemini-1.5-flash-002",
    "Meta-Llama-3_1-70B-Instruct",
    "gemini-1.5-pro-002",
];

fn ladder4() -> Vec<String> {
    LADDER4.iter().map(|s| s.to_string()).collect()
}

#[test]
fn reads_plain_and_gz_and_splits() {
    let m = load("mmlu_pro", None);
    assert_eq!(m.rows.len(), 301);
    assert!(m.malformed.is_empty());
    assert_eq!(m.models.len(), 14);
    let lr = load("llmrouter", None);
    assert_eq!(lr.rows.len(), 251, "both outcome files without a split");
    assert_eq!(lr.files.len(), 2);
    let test = load("llmrouter", Some("test"));
    assert_eq!(test.rows.len(), 50);
    assert!(test.files[0].to_string_lossy().ends_with(".gz"));
    let file = data::load(
        &fixture("llmrouter").join("outcomes_train.jsonl"),
        None,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(file.rows.len(), 201);
    assert!(data::load(&fixture("llmrouter"), Some("nope"), &mut |_| {}).is_err());
}

#[test]
fn cost_is_exact_and_ladder_skips_missing() {
    let m = load("mmlu_pro", None);
    let ladder = Ladder::new(&m, &ladder4()).unwrap();
    assert_eq!(ladder.rows.len() + ladder.skipped, m.rows.len());
    let r = &ladder.rows[0];
    let row = &m.rows[r.row];
    // gemini-1.5-pro-002: 1.25 in / 5.00 out per 1M tokens
    let out = row.outcomes["gemini-1.5-pro-002"].output_tokens;
    let want = (Decimal::from(row.input_tokens) * Decimal::new(125, 2)
        + Decimal::from(out) * Decimal::new(5, 0))
        / Decimal::from(1_000_000);
    assert_eq!(r.cost[3], want);
    assert_eq!(
        row.input_tokens as usize,
        tierwise_core::tokens::count_messages(&row.view.messages)
    );
}

#[test]
fn bad_input_is_counted_with_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("mmlu_pro").join("models.json"),
        dir.path().join("models.json"),
    )
    .unwrap();
    let good = std::fs::read_to_string(fixture("mmlu_pro").join("outcomes.jsonl")).unwrap();
    let mut lines: Vec<&str> = good.lines().take(5).collect();
    lines.insert(1, "{not json");
    lines.insert(3, r#"{"id":"x","messages":[{"role":"user","content":"q"}],"outcomes":{"m":{"score":3.0,"output_tokens":1}}}"#);
    lines.insert(4, r#"{"id":"y","messages":[],"outcomes":{}}"#);
    std::fs::write(dir.path().join("outcomes.jsonl"), lines.join("\n")).unwrap();
    let ds = data::load(dir.path(), None, &mut |_| {}).unwrap();
    assert_eq!(ds.rows.len(), 5);
    let bad: Vec<usize> = ds.malformed.iter().map(|m| m.line).collect();
    assert_eq!(bad, vec![2, 4, 5]);
    assert!(ds.malformed[1].error.contains("score"));
    // a ladder model missing from models.json is an error naming it
    let err = Ladder::new(
        &ds,
        &["Meta-Llama-3_1-8B-Instruct".into(), "no-such-model".into()],
    )
    .unwrap_err();
    assert!(err.to_string().contains("no-such-model"));
}

#[test]
fn sweep_runs_from_cheapest_to_top_and_oracle_bounds_random() {
    let m = load("mmlu_pro", None);
    let ladder = Ladder::new(&m, &ladder4()).unwrap();
    let r = report::reference(&ladder);
    let oracle = sweep(&ladder, &oracle_estimates(&ladder));
    assert_eq!(oracle.first().unwrap().share[0], 1.0);
    assert_eq!(oracle.last().unwrap().strong_share(), 1.0);
    assert!((oracle.last().unwrap().quality - r.strong_quality).abs() < 1e-9);
    assert_eq!(oracle.last().unwrap().cost_usd, r.strong_cost);
    assert!(
        oracle
            .windows(2)
            .all(|w| w[1].strong_share() >= w[0].strong_share())
    );
    let om = metrics(&oracle, &r);
    assert!(om.apgr.unwrap() > 0.9, "oracle APGR {:?}", om.apgr);
    assert!(om.cpt50.unwrap() < 0.3);
    // a constant router: everything jumps at once — APGR of the straight line 0.5
    let flat = vec![vec![0.5; 4]; ladder.rows.len()];
    let fm = metrics(&sweep(&ladder, &flat), &r);
    assert!((fm.apgr.unwrap() - 0.5).abs() < 1e-9);
}

#[test]
fn train_on_one_set_evaluate_on_another() {
    let lr = load("llmrouter", None);
    let mm = load("mmlu_pro", None);
    let spec = FeatureSpec::parse("signals,lexical,ngrams=12", None).unwrap();
    let src = [Source {
        ds: &lr,
        rows: (0..lr.rows.len()).collect(),
    }];
    let (model, fit) = learn::fit_model(&src, &spec, None, &TrainOptions::default()).unwrap();
    assert_eq!(fit.rows, 251);
    let ladder = Ladder::new(&mm, &ladder4()).unwrap();
    let (d, est, known) = learn::estimates(&model, EstimateForm::Quality, &mm, &ladder, None);
    assert!(!known, "mmlu_pro models are unseen: positional abilities");
    assert_eq!(d.len(), ladder.rows.len());
    assert!(
        est.iter()
            .all(|e| e.len() == 4 && e.windows(2).all(|w| w[0] <= w[1]))
    );
    let (rep, _) = report::evaluate(&ladder, &est, info());
    assert!(rep.apgr.is_some() && rep.curve.len() <= report::CURVE_POINTS + 1);
    let json = serde_json::to_value(&rep).unwrap();
    for k in [
        "rows",
        "skipped",
        "models",
        "router",
        "curve",
        "apgr",
        "cpt50",
        "cpt80",
        "savings_at_95",
        "baselines",
    ] {
        assert!(json.get(k).is_some(), "missing key {k}");
    }
    let p = &json["curve"][0];
    assert!(p["share"]["Meta-Llama-3_1-8B-Instruct"].is_number() && p["cost_usd"].is_string());
    assert!(report::html(&rep).contains("<svg"));
}

#[test]
fn cross_validation_never_scores_a_row_with_its_own_fold() {
    let mm = load("mmlu_pro", None);
    let ladder = Ladder::new(&mm, &ladder4()[..2]).unwrap();
    let spec = FeatureSpec::parse("signals,lexical", None).unwrap();
    let out = learn::cross_validate(
        &mm,
        &ladder,
        &spec,
        EstimateForm::Gain,
        None,
        &TrainOptions::default(),
        3,
        |_| {},
    )
    .unwrap();
    assert_eq!(out.len(), ladder.rows.len());
    for ((_, e, f), r) in out.iter().zip(&ladder.rows) {
        assert_eq!(*f, learn::fold_of(&mm.rows[r.row].id, 3));
        assert_eq!(e.len(), 2);
    }
    // three folds were used
    let mut folds: Vec<usize> = out.iter().map(|o| o.2).collect();
    folds.sort_unstable();
    folds.dedup();
    assert_eq!(folds, vec![0, 1, 2]);
}

#[test]
fn leave_one_category_out_scores_each_category_with_a_model_that_never_saw_it() {
    let mm = load("mmlu_pro", None);
    let ladder = Ladder::new(&mm, &ladder4()[..2]).unwrap();
    let (folds, names) = learn::category_folds(&mm);
    assert!(names.len() > 2, "{names:?}");
    for (f, r) in folds.iter().zip(&mm.rows) {
        assert_eq!(names[*f], r.category.clone().unwrap_or_default());
    }
    let spec = FeatureSpec::parse("lexical", None).unwrap();
    let out = learn::cross_validate_folds(
        &mm,
        &ladder,
        &spec,
        EstimateForm::Gain,
        None,
        // the wiring is under test, not the fit: a few iterations
        &TrainOptions {
            max_iter: 10,
            l2_model: None,
            ..TrainOptions::default()
        },
        &folds,
        |_| {},
    )
    .unwrap();
    for ((_, e, f), r) in out.iter().zip(&ladder.rows) {
        assert_eq!(*f, folds[r.row]);
        assert!(e.iter().all(|x| x.is_finite()));
    }
}
