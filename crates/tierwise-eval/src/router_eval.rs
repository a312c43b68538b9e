//! `tierwise eval`: a router's cost/quality curve on outcome data, beside the baselines. The
//! router is the shipped one, a file, a cross-validated fit on the data itself (`--cv K`,
//! `--cv-by category`), or a reference (`oracle`, `random`).

use std::io::Write;
use std::path::Path;

use serde_json::json;
use tierwise_router::learned::features::{EmbeddingSpec, FeatureSpec};
use tierwise_router::learned::model::EstimateForm;
use tierwise_router::load::{self, EmbedHook};
use tierwise_train::router::TrainOptions;

use crate::data::Dataset;
use crate::ladder::{self, Ladder};
use crate::learn;
use crate::report::{self, EvalReport, RouterInfo};
use crate::{Progress, RunError};

/// Feature groups of the default router, with and without an embedding model: what
/// `--cv-by category` trains when `--features` is not given.
pub const DEFAULT_FEATURES: &str = "signals,lexical,embed";
pub const DEFAULT_FEATURES_NO_EMBED: &str = "signals,lexical";

/// Feature groups `--cv K` trains on when `--features` is not given: the default router's plus
/// hashed word uni/bi-grams, with per-model deviations on them (what each of your models is
/// good or bad at, word by word; see docs/benchmarks.md for what they add).
pub const CV_FEATURES: &str = "signals,lexical,embed,ngrams";
pub const CV_FEATURES_NO_EMBED: &str = "signals,lexical,ngrams";

/// What `tierwise eval` (without `--cascade`) evaluates.
#[derive(Debug, Clone, Default)]
pub struct RouterEvalOptions {
    /// Ladder models, cheapest first (default: the data set's ladder).
    pub models: Option<Vec<String>>,
    /// `default` (or none: the shipped router), `oracle`, `random`, or a router file.
    pub router: Option<String>,
    /// K-fold cross-validation of a router trained on the data itself.
    pub cv: Option<usize>,
    /// `category`: leave-one-category-out folds.
    pub cv_by: Option<String>,
    /// Feature groups for `--cv` / `--cv-by`.
    pub features: Option<String>,
    pub l2_ngrams_per_model: f64,
    pub max_iter: usize,
    pub embed: Option<EmbedHook>,
}

/// An evaluation: the report and the per-row scores behind it.
#[derive(Debug)]
pub struct RouterEval {
    pub report: EvalReport,
    /// Row ids, in ladder order.
    pub ids: Vec<String>,
    /// Per row: the router's estimates per tier.
    pub estimates: Vec<Vec<f64>>,
    /// Per row: the learned difficulty (learned routers only).
    pub difficulty: Option<Vec<f64>>,
    /// Per row: its fold (cross-validation only).
    pub folds: Option<Vec<usize>>,
    /// Why the loaded router runs a fallback model (also among the report's notes).
    pub router_note: Option<String>,
}

impl RouterEval {
    /// Writes one JSON line per row: id, estimates, difficulty and fold when known.
    pub fn write_scores(&self, path: &Path) -> Result<(), RunError> {
        let file = std::fs::File::create(path).map_err(|e| RunError::write(path, e))?;
        let mut out = std::io::BufWriter::new(file);
        for (i, id) in self.ids.iter().enumerate() {
            let mut o = json!({"id": id, "estimates": self.estimates[i]});
            if let Some(d) = &self.difficulty {
                o["difficulty"] = json!(d[i]);
            }
            if let Some(f) = &self.folds {
                o["fold"] = json!(f[i]);
            }
            writeln!(out, "{o}").map_err(|e| RunError::write(path, e))?;
        }
        out.flush().map_err(|e| RunError::write(path, e))
    }
}

/// A file name without `.gz`.
fn stem(name: &str) -> String {
    name.strip_suffix(".gz").unwrap_or(name).to_string()
}

fn reference_info(name: &str) -> RouterInfo {
    RouterInfo {
        name: name.into(),
        features: None,
        abilities: None,
        cv: None,
        trained_on_these_rows: false,
    }
}

/// The embedding spec of a hook, for feature lists that name `embed`.
pub fn embedding_spec(embed: Option<&EmbedHook>) -> Option<EmbeddingSpec> {
    embed.map(|e| EmbeddingSpec {
        name: e.name.clone(),
        dim: e.dim,
    })
}

/// Evaluates the router `opts` names on `ds`.
pub fn evaluate(
    ds: &Dataset,
    opts: &RouterEvalOptions,
    progress: &dyn Progress,
) -> Result<RouterEval, RunError> {
    let models = opts.models.clone().unwrap_or_else(|| ds.default_ladder());
    let ladder = Ladder::new(ds, &models)?;
    let mut notes = Vec::new();
    let mut router_note = None;
    let embed_ref: Option<learn::Embed<'_>> = opts.embed.as_ref().map(|e| &*e.embed as _);

    let cv_folds = match opts.cv_by.as_deref() {
        None => None,
        Some("category") => Some(learn::category_folds(ds)),
        Some(other) => {
            return Err(RunError::invalid(format!(
                "--cv-by {other:?}: expected category"
            )));
        }
    };
    if let Some((_, names)) = &cv_folds
        && names.len() < 2
    {
        return Err(RunError::invalid(format!(
            "--cv-by category: the data has {} category value(s); needs at least 2",
            names.len()
        )));
    }
    let cv = opts.cv.or_else(|| cv_folds.as_ref().map(|(_, n)| n.len()));
    let (difficulty, estimates, folds, info) = match (opts.router.as_deref(), cv) {
        (Some("oracle"), None) => (
            None,
            ladder::oracle_estimates(&ladder),
            None,
            reference_info("oracle"),
        ),
        (Some("random"), None) => {
            // a uniform score per row, seeded by the row id: same for every tier below the top
            let est = ladder
                .rows
                .iter()
                .map(|r| {
                    let u =
                        learn::fold_of(&ds.rows[r.row].id, 1 << 30) as f64 / f64::from(1u32 << 30);
                    vec![u; ladder.tiers()]
                })
                .collect();
            (None, est, None, reference_info("random"))
        }
        (_, Some(k)) => {
            if k < 2 {
                return Err(RunError::invalid("--cv needs at least 2 folds"));
            }
            // `--cv K` (your own traffic, whose words recur) adds the hashed n-grams and their
            // per-model deviations; `--cv-by` (a category never seen, whose words were not)
            // trains what the default router has
            let fallback = match (opts.embed.is_some(), cv_folds.is_some()) {
                (true, false) => CV_FEATURES,
                (false, false) => CV_FEATURES_NO_EMBED,
                (true, true) => DEFAULT_FEATURES,
                (false, true) => DEFAULT_FEATURES_NO_EMBED,
            };
            let list = opts.features.as_deref().unwrap_or(fallback);
            let spec = FeatureSpec::parse(list, embedding_spec(opts.embed.as_ref()))
                .map_err(|e| RunError::invalid(format!("--features: {e}")))?;
            let cv_opts = TrainOptions {
                l2_model_ngrams: (opts.l2_ngrams_per_model > 0.0)
                    .then_some(opts.l2_ngrams_per_model),
                max_iter: opts.max_iter.max(1),
                ..TrainOptions::default()
            };
            progress.start("cross-validating", k as u64);
            let out = match &cv_folds {
                Some((folds, names)) => {
                    notes.push(format!(
                        "leave-one-category-out: {} folds ({})",
                        names.len(),
                        names.join(", ")
                    ));
                    learn::cross_validate_folds(
                        ds,
                        &ladder,
                        &spec,
                        EstimateForm::default(),
                        embed_ref,
                        &cv_opts,
                        folds,
                        |f| progress.set(f as u64),
                    )?
                }
                None => learn::cross_validate(
                    ds,
                    &ladder,
                    &spec,
                    EstimateForm::default(),
                    embed_ref,
                    &cv_opts,
                    k,
                    |f| progress.set(f as u64),
                )?,
            };
            progress.finish();
            let (d, rest): (Vec<f64>, Vec<(Vec<f64>, usize)>) =
                out.into_iter().map(|(d, e, f)| (d, (e, f))).unzip();
            let (e, f): (Vec<Vec<f64>>, Vec<usize>) = rest.into_iter().unzip();
            let info = RouterInfo {
                name: "cv".into(),
                features: Some(spec.label()),
                abilities: Some("trained".into()),
                cv: Some(k),
                trained_on_these_rows: false,
            };
            (Some(d), e, Some(f), info)
        }
        (name, None) => {
            let path = name.filter(|n| *n != "default").map(Path::new);
            let (router, label) = load::router(path, opts.embed.as_ref())?;
            if let Some(n) = router.note() {
                notes.push(n.to_string());
                router_note = Some(n.to_string());
            }
            let fp = ds.fingerprint();
            let files: Vec<String> = ds
                .files
                .iter()
                .filter_map(|f| f.file_name().map(|n| stem(&n.to_string_lossy())))
                .collect();
            // same rows, or a file of the same name (compressed or not) of the same data set
            let seen = router.file().trained_on.iter().any(|t| {
                t.fingerprint == fp
                    || (t.dataset == ds.name && t.files.iter().any(|f| files.contains(&stem(f))))
            });
            if seen {
                notes.push(format!(
                    "the router was trained on rows of this data ({}): these numbers are in-sample, not a test",
                    ds.name
                ));
            }
            let model = router.model().clone();
            let (d, est, known) =
                learn::estimates(&model, router.file().estimate, ds, &ladder, embed_ref);
            let info = RouterInfo {
                name: label,
                features: Some(model.features.label()),
                abilities: Some(
                    if known {
                        "trained"
                    } else if model.transfer.is_some() {
                        "transfer head"
                    } else {
                        "positional"
                    }
                    .into(),
                ),
                cv: None,
                trained_on_these_rows: seen,
            };
            (Some(d), est, None, info)
        }
    };
    let (mut rep, _) = report::evaluate(&ladder, &estimates, info);
    describe_data(&mut rep, ds, &models, ladder.skipped, &mut notes);
    rep.notes.extend(notes);
    let ids = ladder
        .rows
        .iter()
        .map(|r| ds.rows[r.row].id.clone())
        .collect();
    Ok(RouterEval {
        report: rep,
        ids,
        estimates,
        difficulty,
        folds,
        router_note,
    })
}

/// Fills a report's description of the data set (files, malformed lines, ladder prices) and
/// notes skipped rows: the same for the router and the cascade reports.
pub fn describe_data(
    rep: &mut EvalReport,
    ds: &Dataset,
    models: &[String],
    skipped: usize,
    notes: &mut Vec<String>,
) {
    rep.data = ds.name.clone();
    rep.files = ds.files.iter().map(|f| f.display().to_string()).collect();
    rep.malformed = ds.malformed.len();
    rep.malformed_lines = ds.malformed.iter().take(20).cloned().collect();
    rep.models = models
        .iter()
        .filter_map(|m| {
            ds.models.get(m).map(|p| report::ModelInfo {
                model: m.clone(),
                input_per_mtok: p.input,
                output_per_mtok: p.output,
            })
        })
        .collect();
    if skipped > 0 {
        notes.push(format!(
            "{skipped} rows skipped: no outcome for at least one ladder model"
        ));
    }
}
