//! `tierwise eval --cascade` (the offline cascade beside the prompt-only router and the two
//! combined) and `tierwise train --cascade` (fit the answer scorer).

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;
use serde_json::json;
use tierwise_eval::cascade::{
    self, CascadeSet, HeldOut, Objective, Optimised, Scorers, Summary, summarize, sweep_paths,
};
use tierwise_eval::learn;
use tierwise_eval::report::{self, CurvePoint, EvalReport, RouterInfo};
use tierwise_router::cascade::Scorer;
use tierwise_router::cascade::model::{FitOptions, TrainedOn};
use tierwise_router::learned::features::{EmbeddingSpec, FeatureSpec};
use tierwise_router::learned::model::EstimateForm;
use tierwise_router::learned::train::TrainOptions;

use super::eval::{
    DEFAULT_FEATURES, DEFAULT_FEATURES_NO_EMBED, describe_data, load_data, load_embedder,
    load_router,
};
use crate::cli::{CalibrateArgs, EvalArgs, TrainArgs};
use crate::output::{self, Status};

/// The combined policy skips a tier below the top when the router's estimate for it is below this.
pub const SKIP_BELOW: f64 = 0.3;
/// Quality target (of the strongest) for thresholds fitted on the other categories.
const HELD_OUT_TARGET: f64 = 0.95;
/// Skip levels reported in `combined_grid`.
const SKIP_GRID: [f64; 5] = [0.1, 0.2, 0.3, 0.4, 0.5];

#[derive(Debug, Serialize)]
struct ScorerInfo {
    name: String,
    default_threshold: f64,
    default_threshold_target: String,
    trained_on: Vec<TrainedOn>,
    /// Mean time to analyse and score one answer on this data (µs, one thread).
    scoring_us_per_answer: f64,
}

#[derive(Debug, Serialize)]
struct Combined {
    skip_below: f64,
    #[serde(flatten)]
    summary: Summary,
    /// Share of attempts below the top that the router skipped.
    skipped_attempts: f64,
}

#[derive(Debug, Serialize)]
struct CascadeReport {
    #[serde(flatten)]
    report: EvalReport,
    /// Rows with every outcome but without a response for a tier below the top (skipped).
    skipped_no_response: usize,
    scorer: ScorerInfo,
    /// The three policies on the same rows: cascade, prompt-only router, router + cascade.
    compare: Vec<Summary>,
    router_curve: Vec<CurvePoint>,
    combined_curve: Vec<CurvePoint>,
    combined_skip_below: f64,
    combined_grid: Vec<Combined>,
    /// FrugalGPT-style per-tier thresholds.
    optimised: Vec<Optimised>,
    /// `--leave-category-out`: per held-out category.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    leave_category_out: Vec<HeldOut>,
}

fn pct(x: Option<f64>) -> String {
    x.map_or("n/a".into(), |v| format!("{:.1}%", v * 100.0))
}

fn num(x: Option<f64>) -> String {
    x.map_or("n/a".into(), |v| format!("{v:.3}"))
}

fn text(rep: &CascadeReport) -> String {
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
            let op = |p: &Option<cascade::OpPoint>| match p {
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

/// Scorer fit options: `exclude` names features held at weight 0.
fn fit_options(exclude: &[String]) -> anyhow::Result<FitOptions> {
    let mut o = FitOptions::default();
    for name in exclude.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        let i = tierwise_router::cascade::features::FEATURE_NAMES
            .iter()
            .position(|f| *f == name)
            .ok_or_else(|| anyhow::anyhow!("--exclude-features: no scorer feature {name:?}"))?;
        o.exclude.push(i);
    }
    Ok(o)
}

/// `tierwise eval --cascade`.
pub fn eval(args: EvalArgs) -> anyhow::Result<Status> {
    let quiet = args.json;
    let ds = load_data(&args.data, args.split.as_deref(), quiet)?;
    let models = match &args.models {
        Some(m) => m.clone(),
        None => {
            let r = cascade::response_models(&ds);
            if r.len() >= 2 { r } else { ds.default_ladder() }
        }
    };
    let set = CascadeSet::new(&ds, &models)?;
    let ladder = &set.ladder;
    let tiers = ladder.tiers();
    let mut notes = Vec::new();
    let all_ids: Vec<usize> = (0..ds.rows.len()).collect();

    // per-row cascade scores (full ladder walk), and the scorer that made them
    // folds of the scorer: by row id (--cv K) or by category (--leave-category-out, or
    // --cv-by category as for the router)
    let lco = args.leave_category_out || args.cv_by.as_deref() == Some("category");
    let groups: Option<(Vec<usize>, Vec<String>, String)> = if lco {
        let name = |r: &tierwise_eval::data::Row| {
            r.category.clone().unwrap_or_else(|| "(none)".to_string())
        };
        let names: Vec<String> = ds
            .rows
            .iter()
            .map(name)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if names.len() < 2 {
            anyhow::bail!("--leave-category-out needs rows of at least 2 categories");
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
        Some((of_row, names, label))
    } else if let Some(k) = args.cv {
        if k < 2 {
            anyhow::bail!("--cv needs at least 2 folds");
        }
        Some((
            ds.rows.iter().map(|r| learn::fold_of(&r.id, k)).collect(),
            (0..k).map(|f| f.to_string()).collect(),
            format!("cv ({k}-fold, trained on this data's other folds)"),
        ))
    } else {
        None
    };
    let group_names = groups.as_ref().map(|g| g.1.clone());
    // the router beside it is cross-validated on the same folds (per data row)
    let router_folds: Option<Vec<usize>> = groups.as_ref().map(|g| g.0.clone());
    let (scorers, scorer_name, full_scores, folds) = match groups {
        Some((fold_of_row, names, label)) => {
            let k = names.len();
            let mut list = Vec::new();
            let pb = output::progress(k as u64, quiet, "cross-validating the scorer");
            for f in 0..k {
                let train: Vec<usize> = all_ids
                    .iter()
                    .copied()
                    .filter(|&i| fold_of_row[i] != f)
                    .collect();
                list.push(Scorer::from_file(cascade::fit_scorer(
                    &[(&ds, train)],
                    &fit_options(&args.exclude_features)?,
                    None,
                )?));
                pb.inc(1);
            }
            pb.finish_and_clear();
            let folds: Vec<usize> = ladder.rows.iter().map(|lr| fold_of_row[lr.row]).collect();
            let scorers = Scorers {
                list,
                of_row: folds.clone(),
            };
            let scores = set.full_scores(&scorers);
            (scorers, label, scores, Some(folds))
        }
        None => {
            let (scorer, name) = match &args.scorer {
                Some(p) => {
                    let text = std::fs::read_to_string(p)
                        .with_context(|| format!("scorer file {}", p.display()))?;
                    (
                        Scorer::from_json(&text)
                            .with_context(|| format!("scorer {}", p.display()))?,
                        p.display().to_string(),
                    )
                }
                None => (
                    Scorer::shipped().context("shipped scorer")?,
                    "default (router/cascade.json)".to_string(),
                ),
            };
            let fp = ds.fingerprint();
            if scorer
                .file()
                .trained_on
                .iter()
                .any(|t| t.fingerprint == fp || t.dataset == ds.name)
            {
                notes.push(format!("the scorer was trained on rows of this data ({}): these numbers are in-sample, not a test", ds.name));
            }
            let scorers = Scorers::one(scorer, ladder.rows.len());
            let s = set.full_scores(&scorers);
            (scorers, name, s, None)
        }
    };

    // scoring latency on this data: analyse + features + probability, one thread
    let started = Instant::now();
    let mut scored = 0usize;
    let path: Vec<usize> = (0..tiers).collect();
    for i in 0..ladder.rows.len().min(2000) {
        let q = tierwise_router::cascade::Query::from_view(&ds.rows[ladder.rows[i].row].view);
        let mut prev = Vec::new();
        for &t in &path[..tiers - 1] {
            let text = ds.rows[ladder.rows[i].row]
                .outcomes
                .get(&models[t])
                .and_then(|o| o.response.as_deref())
                .unwrap_or("");
            let a = tierwise_router::cascade::analyse(
                &q,
                &tierwise_router::cascade::Answer::from_text(text),
            );
            let refs: Vec<&_> = prev.iter().collect();
            std::hint::black_box(scorers.get(i).score(&q, &a, &refs));
            prev.push(a);
            scored += 1;
        }
    }
    let scoring_us = started.elapsed().as_secs_f64() * 1e6 / scored.max(1) as f64;

    let r = report::reference(ladder);
    let full: Vec<Vec<usize>> = vec![path.clone(); ladder.rows.len()];
    let paths = set.paths(&full, &full_scores);
    let points = sweep_paths(tiers, &paths);
    let (cascade_sum, cm) = summarize("cascade", &points, &r);

    // the prompt-only router on the same rows
    // P(tier ok) per row and tier (what the combined policy skips on), and the router's own form
    let embedder = load_embedder(args.embed_dir.as_deref())?.map(Arc::new);
    let embed_fn = embedder.as_ref().map(|e| {
        let e = Arc::clone(e);
        move |t: &str| e.embed(t)
    });
    let embed_ref: Option<learn::Embed<'_>> = embed_fn.as_ref().map(|f| f as learn::Embed<'_>);
    let (quality_est, form, rinfo) = match router_folds {
        Some(folds) => {
            let k = folds.iter().max().map_or(1, |m| m + 1);
            let fallback = if embedder.is_some() {
                DEFAULT_FEATURES
            } else {
                DEFAULT_FEATURES_NO_EMBED
            };
            let list = args.features.as_deref().unwrap_or(fallback);
            let espec = embedder.as_ref().map(|e| EmbeddingSpec {
                name: e.name().to_string(),
                dim: e.dim(),
            });
            let spec =
                FeatureSpec::parse(list, espec).map_err(|e| anyhow::anyhow!("--features: {e}"))?;
            let pb = output::progress(k as u64, quiet, "cross-validating the router");
            let out = learn::cross_validate_folds(
                &ds,
                ladder,
                &spec,
                EstimateForm::Quality,
                embed_ref,
                &TrainOptions::default(),
                &folds,
                |f| pb.set_position(f as u64),
            )?;
            pb.finish_and_clear();
            let how = if lco { "leave-one-category-out" } else { "cv" };
            (
                out.into_iter().map(|(_, e, _)| e).collect::<Vec<_>>(),
                EstimateForm::default(),
                format!("{how} [{}]", spec.label()),
            )
        }
        None => {
            let (router, label) = load_router(args.router.as_deref(), embedder.as_ref())?;
            if let Some(n) = router.note() {
                notes.push(n.to_string());
            }
            let fp = ds.fingerprint();
            if router
                .file()
                .trained_on
                .iter()
                .any(|t| t.fingerprint == fp || t.dataset == ds.name)
            {
                notes.push(format!(
                    "the router was trained on rows of this data ({}): its numbers are in-sample, not a test",
                    ds.name
                ));
            }
            let model = router.model().clone();
            let (_, est, _) =
                learn::estimates(&model, EstimateForm::Quality, &ds, ladder, embed_ref);
            (
                est,
                router.file().estimate,
                format!("{label} [{}]", model.features.label()),
            )
        }
    };
    let estimates: Vec<Vec<f64>> = quality_est.iter().map(|e| form.apply(e.clone())).collect();
    let rinfo_struct = RouterInfo {
        name: rinfo.clone(),
        features: None,
        abilities: None,
        cv: args.cv,
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
    let (combined_sum, combm, combined_points) = combined_main.context("combined policy")?;

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
            .map(|o| cascade::optimise_report(&set, &ds, &subs, o))
            .collect()
    };
    let leave_category_out = match (&group_names, &folds, lco) {
        (Some(names), Some(f), true) if !subs.is_empty() => {
            cascade::held_out(&set, &subs, &paths, f, names, HELD_OUT_TARGET)
        }
        _ => Vec::new(),
    };

    let info = RouterInfo {
        name: "cascade".into(),
        features: Some(format!("scorer {scorer_name}; router {rinfo}")),
        abilities: None,
        cv: args.cv,
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
    describe_data(&mut rep, &ds, &models, ladder.skipped, &mut notes);
    if set.skipped_no_response > 0 {
        notes.push(format!(
            "{} rows skipped: no recorded response for a ladder model below the top",
            set.skipped_no_response
        ));
    }
    rep.notes = notes;
    let file = scorers.list[0].file();
    let out = CascadeReport {
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
    if let Some(path) = &args.scores {
        let mut w = std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot write {}", path.display()))?,
        );
        for (i, lr) in ladder.rows.iter().enumerate() {
            let mut o =
                json!({"id": ds.rows[lr.row].id, "scores": full_scores[i], "router": estimates[i]});
            if let Some(f) = &folds {
                o["fold"] = json!(f[i]);
            }
            writeln!(w, "{o}").with_context(|| format!("cannot write {}", path.display()))?;
        }
        w.flush()?;
    }
    if let Some(path) = &args.html {
        std::fs::write(path, report::html(&out.report))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.svg {
        std::fs::write(path, report::svg(&out.report))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if args.json {
        output::json(&out)?;
    } else {
        output::out(&text(&out));
    }
    Ok(Status::Success)
}

/// `tierwise train --cascade --data DIR... --out FILE`: fit the answer scorer.
pub fn train(args: TrainArgs) -> anyhow::Result<Status> {
    let started = Instant::now();
    let quiet = args.json;
    let mut sets = Vec::new();
    for d in &args.data {
        let ds = load_data(d, None, quiet)?;
        if cascade::response_models(&ds).is_empty() {
            output::note(&format!(
                "note: {} has no recorded responses; left out of the scorer's training",
                ds.name
            ));
            continue;
        }
        sets.push(ds);
    }
    if sets.is_empty() {
        anyhow::bail!(
            "no data set with recorded responses (the scorer learns from `response` fields)"
        );
    }
    let sources: Vec<(&tierwise_eval::data::Dataset, Vec<usize>)> = sets
        .iter()
        .map(|d| (d, (0..d.rows.len()).collect()))
        .collect();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let file = cascade::fit_scorer(
        &sources,
        &fit_options(&args.exclude_features)?,
        Some(format!("tierwise {}", argv.join(" "))),
    )?;
    std::fs::write(&args.out, file.to_json() + "\n")
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let summary = json!({
        "out": args.out.display().to_string(),
        "trained_on": file.trained_on,
        "examples": file.examples,
        "loss": file.loss,
        "default_threshold": file.default_threshold,
        "default_threshold_target": file.default_threshold_target,
        "weights": file.features.iter().zip(&file.weights).map(|(n, w)| json!({"feature": n, "weight": w})).collect::<Vec<_>>(),
        "seconds": started.elapsed().as_secs_f64(),
    });
    if args.json {
        output::json(&summary)?;
    } else {
        let mut lines = vec![format!("wrote {}", args.out.display())];
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
        lines.push(format!("  total {:.1} s", started.elapsed().as_secs_f64()));
        output::out(&lines.join("\n"));
    }
    Ok(Status::Success)
}

/// `tierwise calibrate --cascade --data DIR --target quality=F|budget=F`: the FrugalGPT-style
/// plan (which tiers to call, the threshold of each) fitted on recorded responses, written into
/// the config's `[routing.cascade]` (`ladder`, `thresholds`, and `max_attempts` if too small).
/// The data's response models stand in for the config's tiers, cheapest first (`--models`).
pub fn calibrate(args: CalibrateArgs) -> anyhow::Result<Status> {
    let objective = {
        let (k, v) = args
            .target
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--target: expected quality=F or budget=F"))?;
        let f: f64 = v
            .trim()
            .parse()
            .ok()
            .filter(|f: &f64| *f > 0.0 && *f <= 1.0)
            .ok_or_else(|| anyhow::anyhow!("--target: {v:?} is not a fraction in (0, 1]"))?;
        match k.trim() {
            "quality" => Objective::Quality(f),
            "budget" => Objective::Budget(f),
            other => {
                anyhow::bail!("--target: {other:?} is not a cascade target (quality=F or budget=F)")
            }
        }
    };
    let path = super::calibrate::config_to_write(args.config.as_ref(), args.dry_run)?;
    let config = super::load_config(path.as_deref())?;
    let tiers: Vec<String> = config
        .catalog
        .tiers()
        .iter()
        .map(|t| t.name.clone())
        .collect();
    let ds = load_data(&args.data, args.split.as_deref(), args.json)?;
    let models = args
        .models
        .clone()
        .unwrap_or_else(|| cascade::response_models(&ds));
    if models.len() != tiers.len() {
        anyhow::bail!(
            "{} data models ({}) for {} config tiers; name one per tier, cheapest first, with --models",
            models.len(),
            models.join(", "),
            tiers.len()
        );
    }
    let (scorer, scorer_name) = match args.scorer.as_ref().or(config
        .routing
        .cascade
        .scorer
        .as_ref())
    {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("scorer file {}", p.display()))?;
            (
                Scorer::from_json(&text).with_context(|| format!("scorer {}", p.display()))?,
                p.display().to_string(),
            )
        }
        None => (
            Scorer::shipped().context("shipped scorer")?,
            "default (router/cascade.json)".to_string(),
        ),
    };
    let set = CascadeSet::new(&ds, &models)?;
    if set.ladder.tiers() > 4 {
        anyhow::bail!("the per-tier plan search handles 2–4 tiers");
    }
    let scorers = Scorers::one(scorer, set.ladder.rows.len());
    let subs = cascade::sub_ladders(&set, &scorers);
    let o = cascade::optimise_report(&set, &ds, &subs, objective);
    let Some(choice) = o.choice.clone() else {
        anyhow::bail!(
            "no plan meets {} on {} ({} rows)",
            objective.label(),
            ds.name,
            set.ladder.rows.len()
        );
    };
    let ladder: Vec<String> = choice.tiers.iter().map(|&t| tiers[t].clone()).collect();
    let written = match (&path, args.dry_run) {
        (Some(p), false) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            let comment = format!(
                "calibrated by `tierwise calibrate --cascade --target {}` on {} ({} rows; stand-ins {})",
                args.target,
                ds.name,
                set.ladder.rows.len(),
                models.join(", ")
            );
            let new = tierwise_eval::config_edit::set_cascade_plan(
                &text,
                &ladder,
                &choice.thresholds,
                config.routing.cascade.max_attempts,
                &comment,
            )?;
            std::fs::write(p, new).with_context(|| format!("cannot write {}", p.display()))?;
            Some(p.display().to_string())
        }
        _ => None,
    };
    if args.json {
        output::json(&json!({
            "cascade_plan": o,
            "ladder": ladder,
            "tiers": tiers,
            "stand_ins": models,
            "scorer": scorer_name,
            "data": ds.name,
            "rows": set.ladder.rows.len(),
            "written": written,
        }))?;
    } else {
        let steps: Vec<String> = ladder
            .iter()
            .zip(&choice.thresholds)
            .enumerate()
            .map(|(i, (t, x))| {
                if i + 1 == ladder.len() {
                    t.clone()
                } else {
                    format!("{t} (accept p > {x:.3})")
                }
            })
            .collect();
        let mut lines = vec![format!(
            "cascade plan for {}: {} ({} rows of {}, scorer {scorer_name}; stand-ins {})",
            o.label,
            steps.join(" → "),
            set.ladder.rows.len(),
            ds.name,
            models.join(", ")
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
        lines.push(match &written {
            Some(p) => format!("  written to {p} ([routing.cascade] ladder, thresholds)"),
            None => "  not written (--dry-run)".into(),
        });
        output::out(&lines.join("\n"));
    }
    Ok(Status::Success)
}
