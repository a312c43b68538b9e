//! `tierwise train --data DIR... --out FILE`: fit the learned router on outcome data sets and
//! set its default threshold (quality ≥ [`DEFAULT_QUALITY`] of the top model on each set's
//! cheapest/strongest pair, with the abilities an unseen ladder gets).

use std::time::Instant;

use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;
use tierwise_router::learned::RouterFile;
use tierwise_router::learned::features::FeatureSpec;
use tierwise_router::learned::model::EstimateForm;
use tierwise_router::load::EmbedHook;
use tierwise_train::calibrate::{CalRow, Target, calibrate};
use tierwise_train::router::TrainOptions;

use crate::data::Dataset;
use crate::ladder::Ladder;
use crate::learn::{self, Source};
use crate::router_eval::embedding_spec;
use crate::{Progress, RunError};

/// Quality target the default threshold is set for (relative to the top tier alone).
pub const DEFAULT_QUALITY: f64 = 0.95;

/// How to train (the `train` command's options, without the file names).
#[derive(Debug, Clone)]
pub struct RouterTrainOptions {
    /// Feature groups, e.g. `signals,lexical`.
    pub features: String,
    /// `gain` or `quality`.
    pub estimate: String,
    pub l2_dense: f64,
    pub l2_ngrams: f64,
    pub l2_per_model: f64,
    pub l2_ngrams_per_model: f64,
    pub l2_transfer: f64,
    pub max_iter: usize,
    /// Data sets (by name) the transfer head learns from (default: all).
    pub transfer_from: Option<Vec<String>>,
    pub embed: Option<EmbedHook>,
}

/// Whether a feature list asks for sentence embeddings.
pub fn wants_embedding(features: &str) -> bool {
    features
        .split(',')
        .any(|p| matches!(p.trim(), "embed" | "embedding" | "embeddings" | "all"))
}

/// One fitted model of the file.
#[derive(Debug, Clone, Serialize)]
pub struct FitSummary {
    pub features: String,
    pub rows: usize,
    pub pairs: usize,
    pub iterations: usize,
    pub loss: f64,
    pub seconds: f64,
}

/// One training data set.
#[derive(Debug, Clone, Serialize)]
pub struct DataSummary {
    pub dataset: String,
    pub rows: usize,
    pub malformed: usize,
}

/// A trained router file and what went into it.
#[derive(Debug)]
pub struct RouterTraining {
    pub file: RouterFile,
    pub data: Vec<DataSummary>,
    pub models: Vec<FitSummary>,
    pub default_threshold: f64,
}

/// Fits the router file on `sets`; `command` is recorded in the file.
pub fn train_router(
    sets: &[Dataset],
    opts: &RouterTrainOptions,
    command: Option<String>,
    progress: &dyn Progress,
) -> Result<RouterTraining, RunError> {
    if wants_embedding(&opts.features) && opts.embed.is_none() {
        return Err(RunError::invalid(
            "--features asks for embeddings but no embedding model was found (run scripts/fetch-embeddings.sh or pass --embed-dir)",
        ));
    }
    let spec = FeatureSpec::parse(&opts.features, embedding_spec(opts.embed.as_ref()))
        .map_err(|e| RunError::invalid(format!("--features: {e}")))?;
    let mut specs = vec![spec.clone()];
    if spec.embedding.is_some() {
        let mut plain = spec.clone();
        plain.embedding = None;
        if plain.is_empty() {
            return Err(RunError::invalid(
                "--features: an embedding-only router has no fallback; add signals, lexical or ngrams",
            ));
        }
        specs.push(plain);
    }
    let sources: Vec<Source<'_>> = sets
        .iter()
        .map(|ds| Source {
            ds,
            rows: (0..ds.rows.len()).collect(),
        })
        .collect();
    let embed_ref: Option<learn::Embed<'_>> = opts.embed.as_ref().map(|e| &*e.embed as _);
    let form = match opts.estimate.as_str() {
        "gain" => EstimateForm::Gain,
        "quality" => EstimateForm::Quality,
        other => {
            return Err(RunError::invalid(format!(
                "--estimate {other:?}: expected gain or quality"
            )));
        }
    };
    let transfer_groups = match &opts.transfer_from {
        None => None,
        Some(names) => {
            let mut gs = Vec::new();
            for n in names {
                let g = sets.iter().position(|d| &d.name == n).ok_or_else(|| {
                    RunError::invalid(format!(
                        "--transfer-from: no data set named {n:?} (have: {})",
                        sets.iter()
                            .map(|d| d.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?;
                gs.push(g as u32);
            }
            Some(gs)
        }
    };
    let train_opts = TrainOptions {
        l2_dense: opts.l2_dense,
        l2_hash: opts.l2_ngrams,
        l2_model: (opts.l2_per_model > 0.0).then_some(opts.l2_per_model),
        l2_model_ngrams: (opts.l2_ngrams_per_model > 0.0).then_some(opts.l2_ngrams_per_model),
        max_iter: opts.max_iter.max(1),
        l2_transfer: (opts.l2_transfer > 0.0).then_some(opts.l2_transfer),
        transfer_groups,
        ..TrainOptions::default()
    };
    let mut models = Vec::new();
    let mut fits = Vec::new();
    progress.start("training", specs.len() as u64);
    for s in &specs {
        let t = Instant::now();
        let (m, rep) = learn::fit_model(&sources, s, embed_ref, &train_opts)?;
        fits.push(FitSummary {
            features: s.label(),
            rows: rep.rows,
            pairs: rep.pairs,
            iterations: rep.iterations,
            loss: rep.loss,
            seconds: t.elapsed().as_secs_f64(),
        });
        models.push(m);
        progress.inc(1);
    }
    progress.finish();
    let default_threshold = default_threshold(sets, &models, form)?;
    let file = learn::router_file(models, &sources, form, default_threshold, command);
    Ok(RouterTraining {
        file,
        data: sets
            .iter()
            .map(|d| DataSummary {
                dataset: d.name.clone(),
                rows: d.rows.len(),
                malformed: d.malformed.len(),
            })
            .collect(),
        models: fits,
        default_threshold,
    })
}

/// Quality ≥ [`DEFAULT_QUALITY`] of the top model, on each training set's cheapest/strongest
/// pair, with the abilities an unseen ladder gets (positional: the pair renamed), by the
/// embedding-free model (the last one).
fn default_threshold(
    sets: &[Dataset],
    models: &[tierwise_router::learned::model::Model],
    form: EstimateForm,
) -> Result<f64, RunError> {
    let fallback = models
        .last()
        .ok_or_else(|| RunError::invalid("no model trained"))?;
    let mut cal = Vec::new();
    for ds in sets {
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
    if cal.is_empty() {
        return Ok(0.5);
    }
    Ok(calibrate(&cal, Target::Quality(DEFAULT_QUALITY))?.threshold)
}
