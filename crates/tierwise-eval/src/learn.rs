//! Glue between outcome data sets and the learned router: building training sets, fitting a
//! router file, scoring a ladder's rows, K-fold cross-validation.

use std::collections::BTreeMap;

use rust_decimal::prelude::ToPrimitive;
use tierwise_router::learned::features::{
    FeatureSpec, Featurized, embed_text, featurize, prompt_text,
};
use tierwise_router::learned::model::{EstimateForm, Model};
use tierwise_router::learned::{FORMAT, FORMAT_VERSION, RouterFile, TrainedOn};
use tierwise_train::router::{
    Example, FitReport, ModelMeta, TrainError, TrainOptions, TrainSet, fit,
};

use crate::data::{Dataset, Row};
use crate::ladder::Ladder;

/// Computes an embedding of a prompt text (the caller's embedder).
pub type Embed<'a> = &'a (dyn Fn(&str) -> Vec<f32> + Sync);

/// Features of every row of `ds` under `spec` (two threads).
pub fn featurize_rows(
    ds: &Dataset,
    rows: &[usize],
    spec: &FeatureSpec,
    embed: Option<Embed<'_>>,
) -> Vec<Featurized> {
    let one = |r: &Row| {
        let text = prompt_text(&r.view);
        let e = match (&spec.embedding, embed) {
            (Some(_), Some(f)) => Some(f(embed_text(&text))),
            _ => None,
        };
        featurize(spec, &text, &r.signals, e.as_deref())
    };
    par_map(rows, |&i| one(&ds.rows[i]))
}

/// Maps `f` over `items` on two threads, keeping order.
pub fn par_map<T: Sync, U: Send>(items: &[T], f: impl Fn(&T) -> U + Sync) -> Vec<U> {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4);
    if items.len() < 64 || threads == 1 {
        return items.iter().map(&f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|s| {
        let hs: Vec<_> = items
            .chunks(chunk)
            .map(|c| s.spawn(move || c.iter().map(f).collect::<Vec<U>>()))
            .collect();
        hs.into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// One training source: a data set and the rows of it to learn from.
pub struct Source<'a> {
    pub ds: &'a Dataset,
    pub rows: Vec<usize>,
}

/// Builds a training set: every priced model of each data set with its outcomes (a model name
/// shared by two data sets is one model).
pub fn train_set(sources: &[Source<'_>], spec: &FeatureSpec, embed: Option<Embed<'_>>) -> TrainSet {
    let feats: Vec<Vec<Featurized>> = sources
        .iter()
        .map(|s| featurize_rows(s.ds, &s.rows, spec, embed))
        .collect();
    assemble(sources, spec, feats)
}

/// A training set from features already computed (one list per source, in row order).
pub fn assemble(
    sources: &[Source<'_>],
    spec: &FeatureSpec,
    feats: Vec<Vec<Featurized>>,
) -> TrainSet {
    let mut models: Vec<ModelMeta> = Vec::new();
    let mut index: BTreeMap<String, u32> = BTreeMap::new();
    let mut examples = Vec::new();
    for (g, (src, feats)) in sources.iter().zip(feats).enumerate() {
        for (&ri, f) in src.rows.iter().zip(feats) {
            let row = &src.ds.rows[ri];
            let mut outcomes = Vec::with_capacity(row.outcomes.len());
            for (m, o) in &row.outcomes {
                let Some(price) = src.ds.models.get(m) else {
                    continue;
                };
                let idx = *index.entry(m.clone()).or_insert_with(|| {
                    models.push(ModelMeta {
                        name: m.clone(),
                        group: g as u32,
                        price: ((price.input + price.output) / rust_decimal::Decimal::TWO)
                            .to_f64()
                            .unwrap_or(0.0),
                    });
                    (models.len() - 1) as u32
                });
                outcomes.push((idx, o.score as f32));
            }
            examples.push(Example {
                features: f,
                outcomes,
                group: g as u32,
            });
        }
    }
    TrainSet {
        spec: spec.clone(),
        examples,
        models,
    }
}

/// Fits one model on `sources`.
pub fn fit_model(
    sources: &[Source<'_>],
    spec: &FeatureSpec,
    embed: Option<Embed<'_>>,
    opts: &TrainOptions,
) -> Result<(Model, FitReport), TrainError> {
    let set = train_set(sources, spec, embed);
    fit(&set, opts)
}

/// A router file around `models` (best first), recording what it was trained on.
pub fn router_file(
    models: Vec<Model>,
    sources: &[Source<'_>],
    estimate: EstimateForm,
    default_threshold: f64,
    command: Option<String>,
) -> RouterFile {
    let trained_on = sources
        .iter()
        .map(|s| TrainedOn {
            dataset: s.ds.name.clone(),
            files: s
                .ds
                .files
                .iter()
                .map(|f| {
                    f.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                })
                .collect(),
            rows: s.rows.len(),
            fingerprint: crate::data::fingerprint(s.rows.iter().map(|&i| s.ds.rows[i].id.as_str())),
        })
        .collect();
    RouterFile {
        format: FORMAT.to_string(),
        format_version: FORMAT_VERSION,
        models,
        estimate,
        default_threshold,
        trained_on,
        command,
    }
}

/// Difficulty of each ladder row under `model`.
pub fn difficulties(
    model: &Model,
    ds: &Dataset,
    ladder: &Ladder,
    embed: Option<Embed<'_>>,
) -> Vec<f64> {
    let rows: Vec<usize> = ladder.rows.iter().map(|r| r.row).collect();
    let feats = featurize_rows(ds, &rows, &model.features, embed);
    feats.iter().map(|f| model.difficulty(f)).collect()
}

/// Per-row difficulty and per-tier estimates (of `form`) of `model` on the ladder, and
/// whether the ladder's models were known to the model (else its transfer head, or positional
/// abilities when it has none).
pub fn estimates(
    model: &Model,
    form: EstimateForm,
    ds: &Dataset,
    ladder: &Ladder,
    embed: Option<Embed<'_>>,
) -> (Vec<f64>, Vec<Vec<f64>>, bool) {
    let rows: Vec<usize> = ladder.rows.iter().map(|r| r.row).collect();
    let feats = featurize_rows(ds, &rows, &model.features, embed);
    let known = model.knows(&ladder.models);
    let d = feats.iter().map(|f| model.difficulty(f)).collect();
    let est = feats
        .iter()
        .map(|f| model.ladder_estimates(form, f, &ladder.models))
        .collect();
    (d, est, known)
}

/// Fold of a row id (FNV-1a of the id, mod k): stable across runs and machines.
pub fn fold_of(id: &str, k: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // splitmix finalizer so nearby ids spread
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    (h % k.max(1) as u64) as usize
}

/// K-fold cross-validation on one data set: for each fold, fit on the other folds (all rows of
/// the data set, every model) and estimate the fold's ladder rows. Returns per ladder row
/// (difficulty, estimates, fold).
#[expect(
    clippy::too_many_arguments,
    reason = "one call site per caller; a struct adds nothing"
)]
pub fn cross_validate(
    ds: &Dataset,
    ladder: &Ladder,
    spec: &FeatureSpec,
    form: EstimateForm,
    embed: Option<Embed<'_>>,
    opts: &TrainOptions,
    k: usize,
    progress: impl FnMut(usize),
) -> Result<Vec<(f64, Vec<f64>, usize)>, TrainError> {
    let folds: Vec<usize> = ds.rows.iter().map(|r| fold_of(&r.id, k)).collect();
    cross_validate_folds(ds, ladder, spec, form, embed, opts, &folds, progress)
}

/// Folds by category: one fold per distinct `category` of the data set (rows without one share
/// a fold), in sorted order, and their names — leave-one-category-out.
pub fn category_folds(ds: &Dataset) -> (Vec<usize>, Vec<String>) {
    let names: Vec<String> = ds
        .rows
        .iter()
        .map(|r| r.category.clone().unwrap_or_default())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let folds = ds
        .rows
        .iter()
        .map(|r| {
            let c = r.category.clone().unwrap_or_default();
            names.binary_search(&c).unwrap_or(0)
        })
        .collect();
    (folds, names)
}

/// Cross-validation over given folds (one per data set row, `0..k`): for each fold, fit on the
/// other rows and estimate the fold's ladder rows. Returns per ladder row (difficulty,
/// estimates, fold).
#[expect(
    clippy::too_many_arguments,
    reason = "one call site per caller; a struct adds nothing"
)]
pub fn cross_validate_folds(
    ds: &Dataset,
    ladder: &Ladder,
    spec: &FeatureSpec,
    form: EstimateForm,
    embed: Option<Embed<'_>>,
    opts: &TrainOptions,
    folds: &[usize],
    mut progress: impl FnMut(usize),
) -> Result<Vec<(f64, Vec<f64>, usize)>, TrainError> {
    let k = folds.iter().max().map_or(0, |m| m + 1);
    let all: Vec<usize> = (0..ds.rows.len()).collect();
    let feats = featurize_rows(ds, &all, spec, embed);
    let full = assemble(
        &[Source {
            ds,
            rows: all.clone(),
        }],
        spec,
        vec![feats],
    );
    let examples = full.examples;
    let mut out = vec![(0.0, Vec::new(), 0); ladder.rows.len()];
    for fold in 0..k {
        let train: Vec<Example> = examples
            .iter()
            .zip(folds)
            .filter(|(_, f)| **f != fold)
            .map(|(e, _)| e.clone())
            .collect();
        let set = TrainSet {
            spec: spec.clone(),
            examples: train,
            models: full.models.clone(),
        };
        let (model, _) = fit(&set, opts)?;
        for (li, lr) in ladder.rows.iter().enumerate() {
            if folds[lr.row] == fold {
                let f = &examples[lr.row].features;
                out[li] = (
                    model.difficulty(f),
                    model.ladder_estimates(form, f, &ladder.models),
                    fold,
                );
            }
        }
        progress(fold + 1);
    }
    Ok(out)
}
