//! The cascade commands: `tierwise eval --cascade` (the offline cascade beside the prompt-only
//! router and the two combined), `tierwise train --cascade` (fit the answer scorer) and
//! `tierwise calibrate --cascade` (the per-tier plan, written into a config).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use serde_json::json;
use tierwise_core::catalog::Tier;
use tierwise_router::cascade::model::{ScorerFile, TrainedOn};
use tierwise_router::cascade::{Answer, Query, Scorer, analyse, features::FEATURE_NAMES};
use tierwise_router::learned::features::FeatureSpec;
use tierwise_router::learned::model::EstimateForm;
use tierwise_router::load::{self, EmbedHook};
use tierwise_train::router::TrainOptions;
use tierwise_train::scorer::FitOptions;

use crate::cascade::{
    self, CascadeSet, HeldOut, Objective, OpPoint, Optimised, Scorers, Summary, summarize,
    sweep_paths,
};
use crate::config_edit::set_cascade_plan;
use crate::data::{Dataset, Row};
use crate::learn;
use crate::report::{self, CurvePoint, EvalReport, RouterInfo};
use crate::router_eval::{
    DEFAULT_FEATURES, DEFAULT_FEATURES_NO_EMBED, describe_data, embedding_spec,
};
use crate::{Progress, RunError, write_file};

/// The combined policy skips a tier below the top when the router's estimate for it is below this.
pub const SKIP_BELOW: f64 = 0.3;
/// Quality target (of the strongest) for thresholds fitted on the other categories.
pub const HELD_OUT_TARGET: f64 = 0.95;
/// Skip levels reported in `combined_grid`.
const SKIP_GRID: [f64; 5] = [0.1, 0.2, 0.3, 0.4, 0.5];
/// Rows whose answers are timed for the scoring latency.
const TIMED_ROWS: usize = 2000;

/// What `tierwise eval --cascade` evaluates.
#[derive(Debug, Clone, Default)]
pub struct CascadeEvalOptions {
    /// Ladder models, cheapest first (default: the data's response models when there are at
    /// least 2, else its ladder).
    pub models: Option<Vec<String>>,
    /// Answer-scorer file (default: the shipped one); unused when the scorer is cross-validated.
    pub scorer: Option<PathBuf>,
    /// K-fold cross-validation of the scorer and the router on the data itself.
    pub cv: Option<usize>,
    /// `category`: leave-one-category-out folds, as `leave_category_out`.
    pub cv_by: Option<String>,
    /// Leave-one-category-out: each category's rows scored by a scorer (and router) trained on
    /// the others, and per-tier thresholds fitted on the others applied to it.
    pub leave_category_out: bool,
    /// Scorer features held at weight 0 in the cross-validated scorers.
    pub exclude_features: Vec<String>,
    /// Feature groups of the cross-validated router.
    pub features: Option<String>,
    /// Router file beside the cascade (`default` or none: the shipped router).
    pub router: Option<String>,
    pub embed: Option<EmbedHook>,
}

/// The scorer the cascade ran with.
#[derive(Debug, Serialize)]
pub struct ScorerInfo {
    pub name: String,
    pub default_threshold: f64,
    pub default_threshold_target: String,
    pub trained_on: Vec<TrainedOn>,
    /// Mean time to analyse and score one answer on this data (µs, one thread).
    pub scoring_us_per_answer: f64,
}

/// The combined policy at one skip level.
#[derive(Debug, Serialize)]
pub struct Combined {
    pub skip_below: f64,
    #[serde(flatten)]
    pub summary: Summary,
    /// Share of attempts below the top that the router skipped.
    pub skipped_attempts: f64,
}

/// The report of `tierwise eval --cascade`.
#[derive(Debug, Serialize)]
pub struct CascadeReport {
    #[serde(flatten)]
    pub report: EvalReport,
    /// Rows with every outcome but without a response for a tier below the top (skipped).
    pub skipped_no_response: usize,
    pub scorer: ScorerInfo,
    /// The three policies on the same rows: cascade, prompt-only router, router + cascade.
    pub compare: Vec<Summary>,
    pub router_curve: Vec<CurvePoint>,
    pub combined_curve: Vec<CurvePoint>,
    pub combined_skip_below: f64,
    pub combined_grid: Vec<Combined>,
    /// FrugalGPT-style per-tier thresholds.
    pub optimised: Vec<Optimised>,
    /// Leave-one-category-out: per held-out category.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub leave_category_out: Vec<HeldOut>,
}

/// An evaluation: the report and the per-row scores behind it.
#[derive(Debug)]
pub struct CascadeEval {
    pub report: CascadeReport,
    /// Row ids, in ladder order.
    pub ids: Vec<String>,
    /// Per row: the scorer's probability for each tier's answer along the full ladder.
    pub scores: Vec<Vec<f64>>,
    /// Per row: the router's estimates per tier.
    pub router: Vec<Vec<f64>>,
    /// Per row: its fold (cross-validation only).
    pub folds: Option<Vec<usize>>,
}

impl CascadeEval {
    /// Writes one JSON line per row: id, cascade scores, router estimates, fold when known.
    pub fn write_scores(&self, path: &Path) -> Result<(), RunError> {
        let file = std::fs::File::create(path).map_err(|e| RunError::write(path, e))?;
        let mut out = std::io::BufWriter::new(file);
        for (i, id) in self.ids.iter().enumerate() {
            let mut o = json!({"id": id, "scores": self.scores[i], "router": self.router[i]});
            if let Some(f) = &self.folds {
                o["fold"] = json!(f[i]);
            }
            writeln!(out, "{o}").map_err(|e| RunError::write(path, e))?;
        }
        out.flush().map_err(|e| RunError::write(path, e))
    }
}

/// Scorer fit options: `exclude` names features held at weight 0.
fn fit_options(exclude: &[String]) -> Result<FitOptions, RunError> {
    let mut o = FitOptions::default();
    for name in exclude.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        let i = FEATURE_NAMES
            .iter()
            .position(|f| *f == name)
            .ok_or_else(|| {
                RunError::invalid(format!("--exclude-features: no scorer feature {name:?}"))
            })?;
        o.exclude.push(i);
    }
    Ok(o)
}

/// Folds of the data rows: by category (leave-one-category-out) or by row id (`cv`); with
/// their names and the scorer's label.
type Groups = (Vec<usize>, Vec<String>, String);

fn groups(ds: &Dataset, by_category: bool, cv: Option<usize>) -> Result<Option<Groups>, RunError> {
    if by_category {
        let name = |r: &Row| r.category.clone().unwrap_or_else(|| "(none)".to_string());
        let names: Vec<String> = ds
            .rows
            .iter()
            .map(name)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if names.len() < 2 {
            return Err(RunError::invalid(
                "--leave-category-out needs rows of at least 2 categories",
            ));
        }
        let of_row = ds
            .rows
            .iter()
            .map(|r| names.binary_search(&name(r)).unwrap_or(0))
            .collect();
        let label = format!(
            "leave-one-category-out ({} categories, each scored by a scorer trained on the others)",
            names.len()
        );
        Ok(Some((of_row, names, label)))
    } else if let Some(k) = cv {
        if k < 2 {
            return Err(RunError::invalid("--cv needs at least 2 folds"));
        }
        Ok(Some((
            ds.rows.iter().map(|r| learn::fold_of(&r.id, k)).collect(),
            (0..k).map(|f| f.to_string()).collect(),
            format!("cv ({k}-fold, trained on this data's other folds)"),
        )))
    } else {
        Ok(None)
    }
}

/// Whether a weight file was trained on rows of `ds`: one of its `(fingerprint, dataset)`
/// pairs is this data's fingerprint or name.
fn trained_here<'a>(
    trained_on: impl IntoIterator<Item = (&'a str, &'a str)>,
    ds: &Dataset,
) -> bool {
    let fp = ds.fingerprint();
    trained_on
        .into_iter()
        .any(|(f, name)| f == fp || name == ds.name)
}

/// The scorers of the ladder rows, their label and each row's scores along the full ladder,
/// and the rows' folds when cross-validated.
struct Scored {
    scorers: Scorers,
    name: String,
    scores: Vec<Vec<f64>>,
    folds: Option<Vec<usize>>,
}

fn score_rows(
    ds: &Dataset,
    set: &CascadeSet,
    opts: &CascadeEvalOptions,
    groups: Option<Groups>,
    notes: &mut Vec<String>,
    progress: &dyn Progress,
) -> Result<Scored, RunError> {
    let ladder = &set.ladder;
    match groups {
        Some((fold_of_row, names, label)) => {
            let k = names.len();
            let mut list = Vec::new();
            progress.start("cross-validating the scorer", k as u64);
            for f in 0..k {
                let train: Vec<usize> = (0..ds.rows.len())
                    .filter(|&i| fold_of_row[i] != f)
                    .collect();
                list.push(Scorer::from_file(cascade::fit_scorer(
                    &[(ds, train)],
                    &fit_options(&opts.exclude_features)?,
                    None,
                )?));
                progress.inc(1);
            }
            progress.finish();
            let folds: Vec<usize> = ladder.rows.iter().map(|lr| fold_of_row[lr.row]).collect();
            let scorers = Scorers {
                list,
                of_row: folds.clone(),
            };
            let scores = set.full_scores(&scorers);
            Ok(Scored {
                scorers,
                name: label,
                scores,
                folds: Some(folds),
            })
        }
        None => {
            let (scorer, name) = load::scorer(opts.scorer.as_deref())?;
            let trained_on = &scorer.file().trained_on;
            if trained_here(
                trained_on
                    .iter()
                    .map(|t| (t.fingerprint.as_str(), t.dataset.as_str())),
                ds,
            ) {
                notes.push(format!("the scorer was trained on rows of this data ({}): these numbers are in-sample, not a test", ds.name));
            }
            let scorers = Scorers::one(scorer, ladder.rows.len());
            let scores = set.full_scores(&scorers);
            Ok(Scored {
                scorers,
                name,
                scores,
                folds: None,
            })
        }
    }
}

/// Mean time to analyse and score one answer below the top along the full ladder (µs, one
/// thread), over the first [`TIMED_ROWS`] rows.
fn scoring_latency(ds: &Dataset, set: &CascadeSet, scorers: &Scorers, models: &[String]) -> f64 {
    let ladder = &set.ladder;
    let tiers = ladder.tiers();
    let started = Instant::now();
    let mut scored = 0usize;
    for i in 0..ladder.rows.len().min(TIMED_ROWS) {
        let row = &ds.rows[ladder.rows[i].row];
        let q = Query::from_view(&row.view);
        let mut prev = Vec::new();
        for model in &models[..tiers - 1] {
            let text = row
                .outcomes
                .get(model)
                .and_then(|o| o.response.as_deref())
                .unwrap_or("");
            let a = analyse(&q, &Answer::from_text(text));
            let refs: Vec<&_> = prev.iter().collect();
            std::hint::black_box(scorers.get(i).score(&q, &a, &refs));
            prev.push(a);
            scored += 1;
        }
    }
    started.elapsed().as_secs_f64() * 1e6 / scored.max(1) as f64
}

/// The prompt-only router on the ladder rows: P(tier ok) per row and tier (what the combined
/// policy skips on), the form its own estimates take, and its label. Cross-validated on
/// `folds` (per data row) when given.
fn router_estimates(
    ds: &Dataset,
    set: &CascadeSet,
    opts: &CascadeEvalOptions,
    folds: Option<Vec<usize>>,
    by_category: bool,
    notes: &mut Vec<String>,
    progress: &dyn Progress,
) -> Result<(Vec<Vec<f64>>, EstimateForm, String), RunError> {
    let ladder = &set.ladder;
    let embed_ref: Option<learn::Embed<'_>> = opts.embed.as_ref().map(|e| &*e.embed as _);
    match folds {
        Some(folds) => {
            let k = folds.iter().max().map_or(1, |m| m + 1);
            let fallback = if opts.embed.is_some() {
                DEFAULT_FEATURES
            } else {
                DEFAULT_FEATURES_NO_EMBED
            };
            let list = opts.features.as_deref().unwrap_or(fallback);
            let spec = FeatureSpec::parse(list, embedding_spec(opts.embed.as_ref()))
                .map_err(|e| RunError::invalid(format!("--features: {e}")))?;
            progress.start("cross-validating the router", k as u64);
            let out = learn::cross_validate_folds(
                ds,
                ladder,
                &spec,
                EstimateForm::Quality,
                embed_ref,
                &TrainOptions::default(),
                &folds,
                |f| progress.set(f as u64),
            )?;
            progress.finish();
            let how = if by_category {
                "leave-one-category-out"
            } else {
                "cv"
            };
            Ok((
                out.into_iter().map(|(_, e, _)| e).collect(),
                EstimateForm::default(),
                format!("{how} [{}]", spec.label()),
            ))
        }
        None => {
            let path = opts
                .router
                .as_deref()
                .filter(|n| *n != "default")
                .map(Path::new);
            let (router, label) = load::router(path, opts.embed.as_ref())?;
            if let Some(n) = router.note() {
                notes.push(n.to_string());
            }
            let trained_on = &router.file().trained_on;
            if trained_here(
                trained_on
                    .iter()
                    .map(|t| (t.fingerprint.as_str(), t.dataset.as_str())),
                ds,
            ) {
                notes.push(format!(
                    "the router was trained on rows of this data ({}): its numbers are in-sample, not a test",
                    ds.name
                ));
            }
            let model = router.model();
            let (_, est, _) = learn::estimates(model, EstimateForm::Quality, ds, ladder, embed_ref);
            Ok((
                est,
                router.file().estimate,
                format!("{label} [{}]", model.features.label()),
            ))
        }
    }
}

/// Evaluates the cascade `opts` describes on `ds`, beside the prompt-only router and the two
/// combined (router first, cascade for the tiers it does not skip).
pub fn evaluate(
    ds: &Dataset,
    opts: &CascadeEvalOptions,
    progress: &dyn Progress,
) -> Result<CascadeEval, RunError> {
    let models = match &opts.models {
        Some(m) => m.clone(),
        None => {
            let r = cascade::response_models(ds);
            if r.len() >= 2 { r } else { ds.default_ladder() }
        }
    };
    let set = CascadeSet::new(ds, &models)?;
    let ladder = &set.ladder;
    let tiers = ladder.tiers();
    let mut notes = Vec::new();

    // folds of the scorer: by row id (`cv`) or by category (`leave_category_out`, or
    // `cv_by` category as for the router); the router beside it is cross-validated on the same
    // folds (per data row)
    let by_category = opts.leave_category_out || opts.cv_by.as_deref() == Some("category");
    let groups = groups(ds, by_category, opts.cv)?;
    let group_names = groups.as_ref().map(|g| g.1.clone());
    let router_folds = groups.as_ref().map(|g| g.0.clone());
    let Scored {
        scorers,
        name: scorer_name,
        scores: full_scores,
        folds,
    } = score_rows(ds, &set, opts, groups, &mut notes, progress)?;

    let scoring_us = scoring_latency(ds, &set, &scorers, &models);

    let r = report::reference(ladder);
    let path: Vec<usize> = (0..tiers).collect();
    let full: Vec<Vec<usize>> = vec![path; ladder.rows.len()];
    let paths = set.paths(&full, &full_scores);
    let points = sweep_paths(tiers, &paths);
    let (cascade_sum, cm) = summarize("cascade", &points, &r);

    let (quality_est, form, rinfo) = router_estimates(
        ds,
        &set,
        opts,
        router_folds,
        by_category,
        &mut notes,
        progress,
    )?;
    let estimates: Vec<Vec<f64>> = quality_est.iter().map(|e| form.apply(e.clone())).collect();
    let rinfo_struct = RouterInfo {
        name: rinfo.clone(),
        features: None,
        abilities: None,
        cv: opts.cv,
        trained_on_these_rows: false,
    };
    let (_, router_points) = report::evaluate(ladder, &estimates, rinfo_struct);
    let (router_sum, rm) = summarize("router (prompt only)", &router_points, &r);

    // router first, cascade for the rest
    let mut combined_grid = Vec::new();
    let mut combined_main = None;
    for &skip in &SKIP_GRID {
        let (tiers_of, scores) = cascade::combined_paths(&set, &scorers, &quality_est, skip);
        let skipped: usize = tiers_of.iter().map(|p| tiers - p.len()).sum();
        let cpaths = set.paths(&tiers_of, &scores);
        let cpoints = sweep_paths(tiers, &cpaths);
        let (sum, m) = summarize(&format!("router + cascade (skip < {skip})"), &cpoints, &r);
        if (skip - SKIP_BELOW).abs() < 1e-9 {
            combined_main = Some((sum.clone(), m, cpoints));
        }
        combined_grid.push(Combined {
            skip_below: skip,
            summary: sum,
            skipped_attempts: cascade::round6(
                skipped as f64 / (ladder.rows.len() * (tiers - 1)).max(1) as f64,
            ),
        });
    }
    let (combined_sum, combm, combined_points) =
        combined_main.ok_or_else(|| RunError::invalid("combined policy"))?;

    let subs = if tiers <= 4 {
        cascade::sub_ladders(&set, &scorers)
    } else {
        notes.push("per-tier threshold search is for ladders of 2–4 tiers; skipped".into());
        Vec::new()
    };
    let optimised: Vec<Optimised> = if subs.is_empty() {
        Vec::new()
    } else {
        [Objective::Quality(0.95), Objective::Budget(0.5)]
            .into_iter()
            .map(|o| cascade::optimise_report(&set, ds, &subs, o))
            .collect()
    };
    let leave_category_out = match (&group_names, &folds, by_category) {
        (Some(names), Some(f), true) if !subs.is_empty() => {
            cascade::held_out(&set, &subs, &paths, f, names, HELD_OUT_TARGET)
        }
        _ => Vec::new(),
    };

    let info = RouterInfo {
        name: "cascade".into(),
        features: Some(format!("scorer {scorer_name}; router {rinfo}")),
        abilities: None,
        cv: opts.cv,
        trained_on_these_rows: notes.iter().any(|n| n.contains("in-sample")),
    };
    let (mut rep, _) = report::evaluate(ladder, &vec![vec![0.0; tiers]; ladder.rows.len()], info);
    rep.curve = report::curve(&points, &cm, &models);
    rep.apgr = cascade_sum.apgr;
    rep.cpt50 = cascade_sum.cpt50;
    rep.cpt80 = cascade_sum.cpt80;
    rep.savings_at_95 = cascade_sum.savings_at_95;
    rep.savings_point = cm
        .savings_point
        .and_then(|i| points.get(i))
        .map(|p| CurvePoint::new(p, &models));
    describe_data(&mut rep, ds, &models, ladder.skipped, &mut notes);
    if set.skipped_no_response > 0 {
        notes.push(format!(
            "{} rows skipped: no recorded response for a ladder model below the top",
            set.skipped_no_response
        ));
    }
    rep.notes = notes;
    let file = scorers.list[0].file();
    let report = CascadeReport {
        skipped_no_response: set.skipped_no_response,
        scorer: ScorerInfo {
            name: scorer_name,
            default_threshold: file.default_threshold,
            default_threshold_target: file.default_threshold_target.clone(),
            trained_on: file.trained_on.clone(),
            scoring_us_per_answer: cascade::round6(scoring_us),
        },
        compare: vec![cascade_sum, router_sum, combined_sum],
        router_curve: report::curve(&router_points, &rm, &models),
        combined_curve: report::curve(&combined_points, &combm, &models),
        combined_skip_below: SKIP_BELOW,
        combined_grid,
        optimised,
        leave_category_out,
        report: rep,
    };
    let ids = ladder
        .rows
        .iter()
        .map(|lr| ds.rows[lr.row].id.clone())
        .collect();
    Ok(CascadeEval {
        report,
        ids,
        scores: full_scores,
        router: estimates,
        folds,
    })
}

fn pct(x: Option<f64>) -> String {
    x.map_or("n/a".into(), |v| format!("{:.1}%", v * 100.0))
}

fn num(x: Option<f64>) -> String {
    x.map_or("n/a".into(), |v| format!("{v:.3}"))
}

/// The report as text: the policies side by side, the models alone, the per-tier thresholds
/// and the held-out categories.
pub fn text(rep: &CascadeReport) -> String {
    let r = &rep.report;
    let mut s = format!(
        "data {} — {} rows evaluated, {} skipped (missing a ladder model's outcome), {} skipped (no response below the top), {} malformed\n",
        r.data, r.rows, r.skipped, rep.skipped_no_response, r.malformed
    );
    s.push_str(&format!(
        "ladder (cheapest first): {}\n",
        r.models
            .iter()
            .map(|m| m.model.as_str())
            .collect::<Vec<_>>()
            .join(" → ")
    ));
    s.push_str(&format!(
        "scorer: {} (default threshold {:.3}); {:.1} µs per answer scored\nrouter: {}{}\n\n",
        rep.scorer.name,
        rep.scorer.default_threshold,
        rep.scorer.scoring_us_per_answer,
        r.router.features.as_deref().unwrap_or(""),
        r.router
            .cv
            .map(|k| format!(" ({k}-fold CV)"))
            .unwrap_or_default()
    ));
    s.push_str(&format!(
        "{:<28} {:>7} {:>7} {:>7} {:>11} {:>12} {:>12}\n",
        "policy", "APGR", "CPT50", "CPT80", "savings@95", "cost@CPT50", "cost@CPT80"
    ));
    for m in &rep.compare {
        s.push_str(&format!(
            "{:<28} {:>7} {:>7} {:>7} {:>11} {:>12} {:>12}\n",
            m.policy,
            num(m.apgr),
            pct(m.cpt50),
            pct(m.cpt80),
            pct(m.savings_at_95),
            pct(m.cost_rel_at_cpt50),
            pct(m.cost_rel_at_cpt80)
        ));
    }
    let b = &r.baselines;
    let rm = &b.random.metrics;
    s.push_str(&format!(
        "{:<28} {:>7} {:>7} {:>7} {:>11}\n",
        "random",
        num(rm.apgr),
        pct(rm.cpt50),
        pct(rm.cpt80),
        pct(rm.savings_at_95)
    ));
    let om = &b.oracle.metrics;
    s.push_str(&format!(
        "{:<28} {:>7} {:>7} {:>7} {:>11}\n",
        "oracle",
        num(om.apgr),
        pct(om.cpt50),
        pct(om.cpt80),
        pct(om.savings_at_95)
    ));
    s.push_str(
        "(cost@CPTx: total cost, every attempt, relative to always-strongest, at the CPT point)\n",
    );
    s.push_str(&format!(
        "\n{:<34} {:>8} {:>14}\n",
        "model alone", "quality", "cost USD"
    ));
    for a in &b.models {
        s.push_str(&format!(
            "{:<34} {:>8.4} {:>14}\n",
            a.model,
            a.quality,
            a.cost_usd.round_dp(4)
        ));
    }
    if !rep.optimised.is_empty() {
        s.push_str("\nper-tier thresholds (FrugalGPT-style search; out-of-fold = fitted on one half, applied to the other)\n");
        for o in &rep.optimised {
            let names: Vec<&str> = r.models.iter().map(|m| m.model.as_str()).collect();
            let th = o.choice.as_ref().map_or("unreachable".to_string(), |c| {
                c.tiers
                    .iter()
                    .zip(&c.thresholds)
                    .map(|(&t, x)| {
                        if t + 1 == names.len() {
                            names[t].to_string()
                        } else {
                            format!("{} > {x:.3}", names.get(t).unwrap_or(&"?"))
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" → ")
            });
            s.push_str(&format!("  {:<28} {}\n", o.label, th));
            for (name, p) in [("in-sample", &o.in_sample), ("out-of-fold", &o.out_of_fold)] {
                if let Some(p) = p {
                    s.push_str(&format!(
                        "    {:<12} quality {:.4} ({:.1}% of strongest), cost {:.1}% of strongest, strong share {:.1}%\n",
                        name,
                        p.quality,
                        p.quality_rel * 100.0,
                        p.cost_rel * 100.0,
                        p.strong_share * 100.0
                    ));
                }
            }
        }
    }
    if !rep.leave_category_out.is_empty() {
        s.push_str(&format!(
            "\nleave-one-category-out (thresholds for quality ≥ {:.0}% of strongest fitted on the other categories)\n",
            HELD_OUT_TARGET * 100.0
        ));
        s.push_str(&format!(
            "{:<18} {:>5} {:>7} {:>7} {:>10} | {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8}\n",
            "held out",
            "rows",
            "APGR",
            "CPT50",
            "cost@50",
            "uni q",
            "uni cost",
            "uni top",
            "plan q",
            "plan cost",
            "plan top"
        ));
        for h in &rep.leave_category_out {
            let op = |p: &Option<OpPoint>| match p {
                Some(p) => format!(
                    "{:>8} {:>8} {:>8}",
                    pct(Some(p.quality_rel)),
                    pct(Some(p.cost_rel)),
                    pct(Some(p.strong_share))
                ),
                None => format!("{:>8} {:>8} {:>8}", "n/a", "n/a", "n/a"),
            };
            s.push_str(&format!(
                "{:<18} {:>5} {:>7} {:>7} {:>10} | {} | {}\n",
                h.group,
                h.rows,
                num(h.cascade.apgr),
                pct(h.cascade.cpt50),
                pct(h.cascade.cost_rel_at_cpt50),
                op(&h.uniform),
                op(&h.plan_point)
            ));
        }
        s.push_str("(uni: the uniform threshold fitted on the others; plan: the per-tier plan fitted on the others; q = quality / strongest's, cost / always-strongest, top = share reaching the strongest)\n");
    }
    for n in &r.notes {
        s.push_str(&format!("note: {n}\n"));
    }
    s
}

/// Why `ds` is left out of the scorer's training (it has no recorded responses), as a note;
/// `None` when it can train the scorer.
pub fn scorer_data_note(ds: &Dataset) -> Option<String> {
    cascade::response_models(ds).is_empty().then(|| {
        format!(
            "note: {} has no recorded responses; left out of the scorer's training",
            ds.name
        )
    })
}

/// Fits the answer scorer on every row of `sets` with recorded responses (sets without any are
/// left out: see [`scorer_data_note`]); `exclude_features` names features held at weight 0,
/// `command` is recorded in the file.
pub fn train_scorer(
    sets: &[Dataset],
    exclude_features: &[String],
    command: Option<String>,
) -> Result<ScorerFile, RunError> {
    let sources: Vec<(&Dataset, Vec<usize>)> = sets
        .iter()
        .filter(|d| scorer_data_note(d).is_none())
        .map(|d| (d, (0..d.rows.len()).collect()))
        .collect();
    if sources.is_empty() {
        return Err(RunError::invalid(
            "no data set with recorded responses (the scorer learns from `response` fields)",
        ));
    }
    Ok(cascade::fit_scorer(
        &sources,
        &fit_options(exclude_features)?,
        command,
    )?)
}

/// What `tierwise train --cascade --json` prints: the file written to `out`, what it was
/// trained on, its weights, and the run's `seconds`.
pub fn scorer_summary(file: &ScorerFile, out: &Path, seconds: f64) -> serde_json::Value {
    json!({
        "out": out.display().to_string(),
        "trained_on": file.trained_on,
        "examples": file.examples,
        "loss": file.loss,
        "default_threshold": file.default_threshold,
        "default_threshold_target": file.default_threshold_target,
        "weights": file.features.iter().zip(&file.weights).map(|(n, w)| json!({"feature": n, "weight": w})).collect::<Vec<_>>(),
        "seconds": seconds,
    })
}

/// [`scorer_summary`] as text.
pub fn scorer_summary_text(file: &ScorerFile, out: &Path, seconds: f64) -> String {
    let mut lines = vec![format!("wrote {}", out.display())];
    for t in &file.trained_on {
        lines.push(format!(
            "  data {}: {} rows, answers of {}",
            t.dataset,
            t.rows,
            t.models.join(", ")
        ));
    }
    lines.push(format!(
        "  {} examples, log-loss {:.4}",
        file.examples, file.loss
    ));
    lines.push(format!(
        "  default threshold {:.4} ({})",
        file.default_threshold, file.default_threshold_target
    ));
    lines.push("  weights (standardized features):".into());
    for (n, w) in file.features.iter().zip(&file.weights) {
        lines.push(format!("    {n:<22} {w:+.4}"));
    }
    lines.push(format!("  total {seconds:.1} s"));
    lines.join("\n")
}

/// A `--target` of `calibrate --cascade`: `quality=F` or `budget=F`, F a fraction in (0, 1].
pub fn parse_target(target: &str) -> Result<Objective, RunError> {
    let (k, v) = target
        .split_once('=')
        .ok_or_else(|| RunError::invalid("--target: expected quality=F or budget=F"))?;
    let f: f64 = v
        .trim()
        .parse()
        .ok()
        .filter(|f: &f64| *f > 0.0 && *f <= 1.0)
        .ok_or_else(|| RunError::invalid(format!("--target: {v:?} is not a fraction in (0, 1]")))?;
    match k.trim() {
        "quality" => Ok(Objective::Quality(f)),
        "budget" => Ok(Objective::Budget(f)),
        other => Err(RunError::invalid(format!(
            "--target: {other:?} is not a cascade target (quality=F or budget=F)"
        ))),
    }
}

/// What `calibrate --cascade` fits: the config's tiers (the data's response models stand in for
/// them, cheapest first), the objective, the scorer, and the config to write.
#[derive(Debug)]
pub struct PlanOptions<'a> {
    pub tiers: &'a [Tier],
    pub objective: Objective,
    /// The `--target` text, as given (for the comment written beside the plan).
    pub target_text: &'a str,
    /// Data models standing in for the tiers, cheapest first (default: the response models).
    pub models: Option<Vec<String>>,
    /// Answer-scorer file (default: the shipped one).
    pub scorer: Option<&'a Path>,
    /// The config's `[routing.cascade] max_attempts` (raised in the file when the plan needs more).
    pub max_attempts: usize,
    /// The config to write the plan into; `None` writes nothing.
    pub write_to: Option<&'a Path>,
}

/// The plan, as `calibrate --cascade --json` prints it.
#[derive(Debug, Serialize)]
pub struct CascadePlan {
    pub cascade_plan: Optimised,
    /// The config tiers the plan calls, cheapest first.
    pub ladder: Vec<String>,
    pub tiers: Vec<String>,
    pub stand_ins: Vec<String>,
    pub scorer: String,
    pub data: String,
    pub rows: usize,
    pub written: Option<String>,
}

/// Fits the FrugalGPT-style plan (which tiers to call, the threshold of each) on `ds`'s
/// recorded responses and writes it into the config's `[routing.cascade]` (`ladder`,
/// `thresholds`, and `max_attempts` if too small) when asked.
pub fn calibrate_plan(ds: &Dataset, opts: &PlanOptions<'_>) -> Result<CascadePlan, RunError> {
    let tiers: Vec<String> = opts.tiers.iter().map(|t| t.name.clone()).collect();
    let models = opts
        .models
        .clone()
        .unwrap_or_else(|| cascade::response_models(ds));
    if models.len() != tiers.len() {
        return Err(RunError::invalid(format!(
            "{} data models ({}) for {} config tiers; name one per tier, cheapest first, with --models",
            models.len(),
            models.join(", "),
            tiers.len()
        )));
    }
    let (scorer, scorer_name) = load::scorer(opts.scorer)?;
    let set = CascadeSet::new(ds, &models)?;
    if set.ladder.tiers() > 4 {
        return Err(RunError::invalid(
            "the per-tier plan search handles 2–4 tiers",
        ));
    }
    let rows = set.ladder.rows.len();
    let scorers = Scorers::one(scorer, rows);
    let subs = cascade::sub_ladders(&set, &scorers);
    let o = cascade::optimise_report(&set, ds, &subs, opts.objective);
    let Some(choice) = o.choice.clone() else {
        return Err(RunError::invalid(format!(
            "no plan meets {} on {} ({} rows)",
            opts.objective.label(),
            ds.name,
            rows
        )));
    };
    let ladder: Vec<String> = choice.tiers.iter().map(|&t| tiers[t].clone()).collect();
    let written = match opts.write_to {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| RunError::read(p, e))?;
            let comment = format!(
                "calibrated by `tierwise calibrate --cascade --target {}` on {} ({} rows; stand-ins {})",
                opts.target_text,
                ds.name,
                rows,
                models.join(", ")
            );
            let new = set_cascade_plan(
                &text,
                &ladder,
                &choice.thresholds,
                opts.max_attempts,
                &comment,
            )?;
            write_file(p, &new)?;
            Some(p.display().to_string())
        }
        None => None,
    };
    Ok(CascadePlan {
        cascade_plan: o,
        ladder,
        tiers,
        stand_ins: models,
        scorer: scorer_name,
        data: ds.name.clone(),
        rows,
        written,
    })
}

impl CascadePlan {
    /// The plan as text.
    pub fn text(&self) -> String {
        let o = &self.cascade_plan;
        let thresholds = o.choice.as_ref().map_or(&[][..], |c| &c.thresholds);
        let steps: Vec<String> = self
            .ladder
            .iter()
            .zip(thresholds)
            .enumerate()
            .map(|(i, (t, x))| {
                if i + 1 == self.ladder.len() {
                    t.clone()
                } else {
                    format!("{t} (accept p > {x:.3})")
                }
            })
            .collect();
        let mut lines = vec![format!(
            "cascade plan for {}: {} ({} rows of {}, scorer {}; stand-ins {})",
            o.label,
            steps.join(" → "),
            self.rows,
            self.data,
            self.scorer,
            self.stand_ins.join(", ")
        )];
        for (name, p) in [("in-sample", &o.in_sample), ("out-of-fold", &o.out_of_fold)] {
            if let Some(p) = p {
                lines.push(format!(
                    "  {name:<12} quality {:.1}% of the strongest, cost {:.1}% of always-strongest, {:.1}% reach the strongest",
                    p.quality_rel * 100.0,
                    p.cost_rel * 100.0,
                    p.strong_share * 100.0
                ));
            }
        }
        lines.push(match &self.written {
            Some(p) => format!("  written to {p} ([routing.cascade] ladder, thresholds)"),
            None => "  not written (--dry-run)".into(),
        });
        lines.join("\n")
    }
}
