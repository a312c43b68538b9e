//! The offline cascade on a committed fixture with recorded responses (`fixtures/mmlu_pro_responses`,
//! 241 rows cut from the shared MMLU-Pro data; see its README): accounting of attempts, rows
//! skipped for lack of a response, empty answers rejected, and the scorer's fit.

#![allow(clippy::unwrap_used, reason = "tests may unwrap")]

use std::io::Write;
use std::path::{Path, PathBuf};

use rust_decimal::Decimal;
use tierwise_eval::cascade::{self, CascadeSet, Objective, Scorers, sweep_paths};
use tierwise_eval::data::{self, Dataset};
use tierwise_router::cascade::{Scorer, ScorerFile};
use tierwise_train::scorer::FitOptions;

const LADDER4: [&str; 4] = [
    "Meta-Llama-3_1-8B-Instruct",
    "gemini-1.5-flash-002",
    "Meta-Llama-3_1-70B-Instruct",
    "gemini-1.5-pro-002",
];

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/mmlu_pro_responses")
}

fn load(dir: &Path) -> Dataset {
    data::load(dir, None, &mut |_| {}).unwrap()
}

fn ladder() -> Vec<String> {
    LADDER4.iter().map(|s| s.to_string()).collect()
}

#[test]
fn cost_counts_every_attempt() {
    let ds = load(&fixture());
    let set = CascadeSet::new(&ds, &ladder()).unwrap();
    let n = set.ladder.rows.len();
    assert_eq!(
        n + set.ladder.skipped + set.skipped_no_response,
        ds.rows.len()
    );
    let scorers = Scorers::one(Scorer::shipped().unwrap(), n);
    let scores = set.full_scores(&scorers);
    let full: Vec<Vec<usize>> = vec![(0..4).collect(); n];
    let paths = set.paths(&full, &scores);
    let points = sweep_paths(4, &paths);
    // every row reaching the top paid all four tiers
    let all4: Decimal = set
        .ladder
        .rows
        .iter()
        .map(|r| r.cost.iter().copied().sum::<Decimal>())
        .sum();
    let last = points.last().unwrap();
    assert_eq!(last.share, vec![0.0, 0.0, 0.0, 1.0]);
    assert_eq!(last.cost_usd, all4);
    assert!(
        last.cost_usd > set.ladder.alone(3).1,
        "a cascade that always escalates costs more than the top alone"
    );
    // any operating point: walk each row by hand
    for p in points.iter().step_by(7) {
        let tau = p.point;
        let (mut cost, mut q) = (Decimal::ZERO, 0.0);
        for (r, s) in set.ladder.rows.iter().zip(&scores) {
            let mut k = 0;
            cost += r.cost[0];
            while k < 3 && s[k] <= tau {
                k += 1;
                cost += r.cost[k];
            }
            q += r.score[k];
        }
        assert_eq!(p.cost_usd, cost, "τ = {tau}");
        assert!((p.quality - q / n as f64).abs() < 1e-9);
    }
    assert!(
        points
            .windows(2)
            .all(|w| w[1].strong_share() >= w[0].strong_share())
    );
}

#[test]
fn rows_without_a_response_are_skipped_and_counted_and_empty_answers_rejected() {
    let src = load(&fixture());
    let text = {
        let mut s = String::new();
        let gz = std::fs::read(fixture().join("outcomes.jsonl.gz")).unwrap();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut s).unwrap();
        s
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture().join("models.json"),
        dir.path().join("models.json"),
    )
    .unwrap();
    let mut out = std::fs::File::create(dir.path().join("outcomes.jsonl")).unwrap();
    let mut empty_id = String::new();
    for (i, line) in text.lines().enumerate() {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        let o = v["outcomes"].as_object_mut().unwrap();
        if i < 5 {
            // no response for a middle tier: skipped
            o.get_mut("gemini-1.5-flash-002")
                .unwrap()
                .as_object_mut()
                .unwrap()
                .remove("response");
        } else if i < 8 {
            // no response for the top: its answer is never judged, the row stays
            o.get_mut("gemini-1.5-pro-002")
                .unwrap()
                .as_object_mut()
                .unwrap()
                .remove("response");
        } else if i == 8 {
            o.get_mut("Meta-Llama-3_1-8B-Instruct").unwrap()["response"] = serde_json::json!("");
            empty_id = v["id"].as_str().unwrap().to_string();
        }
        writeln!(out, "{v}").unwrap();
    }
    drop(out);
    let ds = load(dir.path());
    assert_eq!(ds.rows.len(), src.rows.len());
    let set = CascadeSet::new(&ds, &ladder()).unwrap();
    let base = CascadeSet::new(&src, &ladder()).unwrap();
    assert_eq!(set.skipped_no_response, base.skipped_no_response + 5);
    assert_eq!(set.ladder.rows.len(), base.ladder.rows.len() - 5);
    let scorers = Scorers::one(Scorer::shipped().unwrap(), set.ladder.rows.len());
    let scores = set.full_scores(&scorers);
    let i = set
        .ladder
        .rows
        .iter()
        .position(|r| ds.rows[r.row].id == empty_id)
        .unwrap();
    assert_eq!(scores[i][0], 0.0, "an empty cheap answer is a rejection");
    // a ladder where no row has responses below the top is an error that says so
    let no_resp = vec![
        "gemini-1.5-pro-002".to_string(),
        "Meta-Llama-3_1-8B-Instruct".to_string(),
    ];
    let stripped = {
        let mut d = ds.clone();
        for r in &mut d.rows {
            for o in r.outcomes.values_mut() {
                o.response = None;
            }
        }
        d
    };
    assert!(
        CascadeSet::new(&stripped, &no_resp)
            .unwrap_err()
            .to_string()
            .contains("response")
    );
}

#[test]
fn scorer_fits_on_the_fixture_and_round_trips() {
    let ds = load(&fixture());
    let rows: Vec<usize> = (0..ds.rows.len()).collect();
    let file =
        cascade::fit_scorer(&[(&ds, rows)], &FitOptions::default(), Some("test".into())).unwrap();
    assert_eq!(file.trained_on[0].models, ladder());
    assert!(file.examples > ds.rows.len() * 10);
    let back = ScorerFile::from_json(&file.to_json()).unwrap();
    assert_eq!(
        (&back.features, &back.trained_on, back.examples),
        (&file.features, &file.trained_on, file.examples)
    );
    for (a, b) in back.weights.iter().zip(&file.weights) {
        assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0));
    }
    let w = |name: &str| file.weights[file.features.iter().position(|f| f == name).unwrap()];
    assert!(
        w("prev_same") > w("prev_diff"),
        "agreeing with the cheaper tier is a good sign"
    );
    let mut bad = file.clone();
    bad.features.swap(0, 1);
    assert!(
        ScorerFile::from_json(&bad.to_json()).is_err(),
        "a feature list that is not the code's is refused"
    );
}

#[test]
fn frugal_search_on_the_fixture_meets_its_target_in_sample() {
    let ds = load(&fixture());
    let set = CascadeSet::new(&ds, &ladder()).unwrap();
    let scorers = Scorers::one(Scorer::shipped().unwrap(), set.ladder.rows.len());
    let subs = cascade::sub_ladders(&set, &scorers);
    assert_eq!(subs.len(), 8);
    let o = cascade::optimise_report(&set, &ds, &subs, Objective::Quality(0.95));
    let p = o.in_sample.unwrap();
    assert!(p.quality_rel >= 0.95 - 1e-9);
    assert!(p.cost_rel < 1.0);
    let b = cascade::optimise_report(&set, &ds, &subs, Objective::Budget(0.5));
    assert!(b.in_sample.unwrap().cost_rel <= 0.5 + 1e-9);
}
