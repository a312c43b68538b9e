//! `tierwise train --data DIR... --out FILE`: fit the learned router on outcome data.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use rust_decimal::prelude::ToPrimitive;
use serde_json::json;
use tierwise_eval::ladder::Ladder;
use tierwise_eval::learn::{self, Source};
use tierwise_router::learned::calibrate::{CalRow, Target, calibrate};
use tierwise_router::learned::features::{EmbeddingSpec, FeatureSpec};
use tierwise_router::learned::model::EstimateForm;
use tierwise_router::learned::train::TrainOptions;

use super::eval::{load_data, load_embedder};
use crate::cli::TrainArgs;
use crate::output::{self, Status};

/// Quality target the default threshold is set for (relative to the top tier alone).
pub const DEFAULT_QUALITY: f64 = 0.95;

pub fn run(args: TrainArgs) -> anyhow::Result<Status> {
    if args.cascade {
        return super::cascade::train(args);
    }
    let started = Instant::now();
    let quiet = args.json;
    let mut sets = Vec::new();
    for d in &args.data {
        sets.push(load_data(d, None, quiet)?);
    }
    let wants_embed = args
        .features
        .split(',')
        .any(|p| matches!(p.trim(), "embed" | "embedding" | "embeddings" | "all"));
    let embedder = if wants_embed {
        let e = load_embedder(args.embed_dir.as_deref())?;
        if e.is_none() {
            anyhow::bail!(
                "--features asks for embeddings but no embedding model was found (run scripts/fetch-embeddings.sh or pass --embed-dir)"
            );
        }
        e.map(Arc::new)
    } else {
        None
    };
    let espec = embedder.as_ref().map(|e| EmbeddingSpec {
        name: e.name().to_string(),
        dim: e.dim(),
    });
    let spec = FeatureSpec::parse(&args.features, espec)
        .map_err(|e| anyhow::anyhow!("--features: {e}"))?;
    let mut specs = vec![spec.clone()];
    if spec.embedding.is_some() {
        let mut plain = spec.clone();
        plain.embedding = None;
        if !plain.is_empty() {
            specs.push(plain);
        } else {
            anyhow::bail!(
                "--features: an embedding-only router has no fallback; add signals, lexical or ngrams"
            );
        }
    }
    let sources: Vec<Source<'_>> = sets
        .iter()
        .map(|ds| Source {
            ds,
            rows: (0..ds.rows.len()).collect(),
        })
        .collect();
    let embed_fn = embedder.as_ref().map(|e| {
        let e = Arc::clone(e);
        move |t: &str| e.embed(t)
    });
    let embed_ref: Option<learn::Embed<'_>> = embed_fn.as_ref().map(|f| f as learn::Embed<'_>);
    let form = match args.estimate.as_str() {
        "gain" => EstimateForm::Gain,
        "quality" => EstimateForm::Quality,
        other => anyhow::bail!("--estimate {other:?}: expected gain or quality"),
    };
    let l2_model = (args.l2_per_model > 0.0).then_some(args.l2_per_model);
    let transfer_groups = match &args.transfer_from {
        None => None,
        Some(names) => {
            let mut gs = Vec::new();
            for n in names {
                let g = sets.iter().position(|d| &d.name == n).ok_or_else(|| {
                    anyhow::anyhow!(
                        "--transfer-from: no data set named {n:?} (have: {})",
                        sets.iter()
                            .map(|d| d.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?;
                gs.push(g as u32);
            }
            Some(gs)
        }
    };
    let opts = TrainOptions {
        l2_dense: args.l2_dense,
        l2_hash: args.l2_ngrams,
        l2_model,
        l2_model_ngrams: (args.l2_ngrams_per_model > 0.0).then_some(args.l2_ngrams_per_model),
        max_iter: args.max_iter.max(1),
        l2_transfer: (args.l2_transfer > 0.0).then_some(args.l2_transfer),
        transfer_groups,
        ..TrainOptions::default()
    };
    let mut models = Vec::new();
    let mut fits = Vec::new();
    let pb = output::progress(specs.len() as u64, quiet, "training");
    for s in &specs {
        let t = Instant::now();
        let (m, rep) = learn::fit_model(&sources, s, embed_ref, &opts)?;
        fits.push(json!({"features": s.label(), "rows": rep.rows, "pairs": rep.pairs, "iterations": rep.iterations,
            "loss": rep.loss, "seconds": t.elapsed().as_secs_f64()}));
        models.push(m);
        pb.inc(1);
    }
    pb.finish_and_clear();
    // default threshold: quality ≥ 95% of the top model, on each training set's cheapest/strongest
    // pair, with the abilities an unseen ladder gets (positional: the pair renamed)
    let fallback = models.last().context("no model trained")?;
    let mut cal = Vec::new();
    for ds in &sets {
        let ladder_models = ds.default_ladder();
        let (Some(first), Some(last)) = (ladder_models.first(), ladder_models.last()) else {
            continue;
        };
        let pair = vec![first.clone(), last.clone()];
        let Ok(ladder) = Ladder::new(ds, &pair) else {
            continue;
        };
        let rows: Vec<usize> = ladder.rows.iter().map(|r| r.row).collect();
        let feats = learn::featurize_rows(ds, &rows, &fallback.features, None);
        let unseen = ["unseen-cheap", "unseen-strong"];
        for (r, f) in ladder.rows.iter().zip(&feats) {
            cal.push(CalRow {
                estimates: fallback.ladder_estimates(form, f, &unseen),
                cost: r.cost.iter().map(|c| c.to_f64().unwrap_or(0.0)).collect(),
                score: Some(r.score.clone()),
            });
        }
    }
    let default_threshold = if cal.is_empty() {
        0.5
    } else {
        calibrate(&cal, Target::Quality(DEFAULT_QUALITY))?.threshold
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let command = Some(format!("tierwise {}", argv.join(" ")));
    let file = learn::router_file(models, &sources, form, default_threshold, command);
    std::fs::write(&args.out, file.to_json() + "\n")
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let summary = json!({
        "out": args.out.display().to_string(),
        "data": sets.iter().map(|d| json!({"dataset": d.name, "rows": d.rows.len(), "malformed": d.malformed.len()})).collect::<Vec<_>>(),
        "models": fits,
        "default_threshold": default_threshold,
        "seconds": started.elapsed().as_secs_f64(),
    });
    if args.json {
        output::json(&summary)?;
    } else {
        let mut lines = vec![format!("wrote {}", args.out.display())];
        for d in &sets {
            lines.push(format!(
                "  data {}: {} rows ({} malformed skipped)",
                d.name,
                d.rows.len(),
                d.malformed.len()
            ));
        }
        for f in summary["models"].as_array().into_iter().flatten() {
            lines.push(format!(
                "  model [{}]: {} rows, {} outcomes, {} iterations, loss {:.4}, {:.1} s",
                f["features"].as_str().unwrap_or(""),
                f["rows"],
                f["pairs"],
                f["iterations"],
                f["loss"].as_f64().unwrap_or(0.0),
                f["seconds"].as_f64().unwrap_or(0.0)
            ));
        }
        lines.push(format!("  default threshold {default_threshold:.4} (quality ≥ {DEFAULT_QUALITY} of the top model on the training pairs)"));
        lines.push(format!("  total {:.1} s", started.elapsed().as_secs_f64()));
        output::out(&lines.join("\n"));
    }
    Ok(Status::Success)
}
