//! `tierwise eval`: a router's cost/quality curve on outcome data, beside the baselines.
//! Also home of the router/embedder loading that `train` and `calibrate` share.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tierwise_embed::Embedder;
use tierwise_eval::data::{self, Dataset};
use tierwise_eval::ladder::Ladder;
use tierwise_eval::learn;
use tierwise_eval::report::{self, RouterInfo};
use tierwise_router::learned::features::FeatureSpec;
use tierwise_router::learned::model::EstimateForm;
use tierwise_router::learned::train::TrainOptions;
use tierwise_router::learned::{LearnedRouter, RouterFile};

use crate::cli::EvalArgs;
use crate::output::{self, Status};

/// The shipped default router (`router/default.json`, produced by `tierwise train`).
pub const DEFAULT_ROUTER: &str = include_str!("../../../../router/default.json");

/// Feature groups `--cv` trains on when `--features` is not given (the default router's), and
/// without an embedding model.
pub const DEFAULT_FEATURES: &str = "signals,lexical,embed";
pub const DEFAULT_FEATURES_NO_EMBED: &str = "signals,lexical";

/// Feature groups `--cv K` trains on when `--features` is not given: the default router's plus
/// hashed word uni/bi-grams, with per-model deviations on them (what each of your models is
/// good or bad at, word by word). mmlu_pro 8B → pro, 5-fold: APGR 0.556 → 0.586; llmrouter
/// train, gemma → nemotron-51b, 5-fold: 0.718 → 0.784 (router/README.md).
pub const CV_FEATURES: &str = "signals,lexical,embed,ngrams";
pub const CV_FEATURES_NO_EMBED: &str = "signals,lexical,ngrams";

/// Where `scripts/fetch-embeddings.sh` puts the embedding model.
pub const DEFAULT_EMBED_DIR: &str = "router/embed/tokenlearn-static-model-0.1.1";

/// The embedding model folder: `--embed-dir`, else `$TIERWISE_EMBED_DIR`, else
/// [`DEFAULT_EMBED_DIR`] when it exists.
pub fn embed_dir(arg: Option<&Path>) -> Option<PathBuf> {
    arg.map(Path::to_path_buf)
        .or_else(|| std::env::var_os("TIERWISE_EMBED_DIR").map(PathBuf::from))
        .or_else(|| Some(PathBuf::from(DEFAULT_EMBED_DIR)).filter(|p| p.is_dir()))
}

/// Loads the embedder when a folder is known; an explicit folder that fails is an error.
pub fn load_embedder(arg: Option<&Path>) -> anyhow::Result<Option<Embedder>> {
    match embed_dir(arg) {
        Some(dir) => match Embedder::load(&dir) {
            Ok(e) => Ok(Some(e)),
            Err(e) if arg.is_some() => Err(anyhow::anyhow!("embedding model: {e}")),
            Err(_) => Ok(None),
        },
        None => Ok(None),
    }
}

/// Reads a router: `default` (or none) is the shipped one; anything else is a file. The
/// embedder, when loaded and used by the file, is attached; otherwise the file's embedding-free
/// model is used and `note()` says so.
pub fn load_router(
    name: Option<&str>,
    embedder: Option<&Arc<Embedder>>,
) -> anyhow::Result<(LearnedRouter, String)> {
    let (text, label) = match name {
        None | Some("default") => (DEFAULT_ROUTER.to_string(), "default".to_string()),
        Some(path) => (
            std::fs::read_to_string(path).with_context(|| format!("router file {path}"))?,
            path.to_string(),
        ),
    };
    let file = RouterFile::from_json(&text).with_context(|| format!("router {label}"))?;
    let mut router = LearnedRouter::new(file)?;
    if let Some(e) = embedder {
        let e2 = Arc::clone(e);
        router = router.with_embedder(e.name(), e.dim(), Arc::new(move |t: &str| e2.embed(t)));
    }
    Ok((router, label))
}

/// Loads a data set, reporting malformed lines on stderr (one line each, the first 10).
pub fn load_data(path: &Path, split: Option<&str>, quiet: bool) -> anyhow::Result<Dataset> {
    let pb = output::progress(0, quiet, "reading");
    let mut bytes = 0usize;
    let ds = data::load(path, split, &mut |n| {
        bytes += n;
        if bytes > 1 << 20 {
            pb.inc(bytes as u64);
            bytes = 0;
        }
    })?;
    pb.finish_and_clear();
    for m in ds.malformed.iter().take(10) {
        output::note(&format!(
            "warning: {}:{}: malformed row skipped: {}",
            m.file, m.line, m.error
        ));
    }
    if ds.malformed.len() > 10 {
        output::note(&format!(
            "warning: {} more malformed rows skipped",
            ds.malformed.len() - 10
        ));
    }
    Ok(ds)
}

/// A file name without `.gz`.
fn stem(name: &str) -> String {
    name.strip_suffix(".gz").unwrap_or(name).to_string()
}

/// Difficulty per row (learned routers), estimates per row, fold per row (`--cv`), router info.
type Scored = (
    Option<Vec<f64>>,
    Vec<Vec<f64>>,
    Option<Vec<usize>>,
    RouterInfo,
);

fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

pub fn run(args: EvalArgs) -> anyhow::Result<Status> {
    if args.cascade {
        return super::cascade::eval(args);
    }
    let quiet = args.json;
    let ds = load_data(&args.data, args.split.as_deref(), quiet)?;
    let models = args.models.clone().unwrap_or_else(|| ds.default_ladder());
    let ladder = Ladder::new(&ds, &models)?;
    let embedder = load_embedder(args.embed_dir.as_deref())?.map(Arc::new);
    let mut notes = Vec::new();
    let embed_fn = embedder.as_ref().map(|e| {
        let e = Arc::clone(e);
        move |t: &str| e.embed(t)
    });
    let embed_ref: Option<learn::Embed<'_>> = embed_fn.as_ref().map(|f| f as learn::Embed<'_>);

    let cv_folds = match args.cv_by.as_deref() {
        None => None,
        Some("category") => Some(learn::category_folds(&ds)),
        Some(other) => anyhow::bail!("--cv-by {other:?}: expected category"),
    };
    if let Some((_, names)) = &cv_folds
        && names.len() < 2
    {
        anyhow::bail!(
            "--cv-by category: the data has {} category value(s); needs at least 2",
            names.len()
        );
    }
    let cv = args.cv.or_else(|| cv_folds.as_ref().map(|(_, n)| n.len()));
    let (diffs, estimates, folds, info): Scored = match (args.router.as_deref(), cv) {
        (Some("oracle"), None) => (
            None,
            tierwise_eval::ladder::oracle_estimates(&ladder),
            None,
            RouterInfo {
                name: "oracle".into(),
                features: None,
                abilities: None,
                cv: None,
                trained_on_these_rows: false,
            },
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
            (
                None,
                est,
                None,
                RouterInfo {
                    name: "random".into(),
                    features: None,
                    abilities: None,
                    cv: None,
                    trained_on_these_rows: false,
                },
            )
        }
        (_, Some(k)) => {
            if k < 2 {
                anyhow::bail!("--cv needs at least 2 folds");
            }
            // `--cv K` (your own traffic, whose words recur) adds the hashed n-grams and their
            // per-model deviations; `--cv-by` (a category never seen, whose words were not)
            // trains what the default router has
            let fallback = match (embedder.is_some(), cv_folds.is_some()) {
                (true, false) => CV_FEATURES,
                (false, false) => CV_FEATURES_NO_EMBED,
                (true, true) => DEFAULT_FEATURES,
                (false, true) => DEFAULT_FEATURES_NO_EMBED,
            };
            let list = args.features.as_deref().unwrap_or(fallback);
            let espec =
                embedder
                    .as_ref()
                    .map(|e| tierwise_router::learned::features::EmbeddingSpec {
                        name: e.name().to_string(),
                        dim: e.dim(),
                    });
            let spec =
                FeatureSpec::parse(list, espec).map_err(|e| anyhow::anyhow!("--features: {e}"))?;
            let cv_opts = TrainOptions {
                l2_model_ngrams: (args.l2_ngrams_per_model > 0.0)
                    .then_some(args.l2_ngrams_per_model),
                max_iter: args.max_iter.max(1),
                ..TrainOptions::default()
            };
            let pb = output::progress(k as u64, quiet, "cross-validating");
            let out = match &cv_folds {
                Some((folds, names)) => {
                    notes.push(format!(
                        "leave-one-category-out: {} folds ({})",
                        names.len(),
                        names.join(", ")
                    ));
                    learn::cross_validate_folds(
                        &ds,
                        &ladder,
                        &spec,
                        EstimateForm::default(),
                        embed_ref,
                        &cv_opts,
                        folds,
                        |f| pb.set_position(f as u64),
                    )?
                }
                None => learn::cross_validate(
                    &ds,
                    &ladder,
                    &spec,
                    EstimateForm::default(),
                    embed_ref,
                    &cv_opts,
                    k,
                    |f| pb.set_position(f as u64),
                )?,
            };
            pb.finish_and_clear();
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
            let (router, label) = load_router(name, embedder.as_ref())?;
            if let Some(n) = router.note() {
                output::note(n);
                notes.push(n.to_string());
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
                learn::estimates(&model, router.file().estimate, &ds, &ladder, embed_ref);
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
    describe_data(&mut rep, &ds, &models, ladder.skipped, &mut notes);
    rep.notes.extend(notes);
    if let Some(path) = &args.scores {
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot write {}", path.display()))?,
        );
        for (i, r) in ladder.rows.iter().enumerate() {
            let mut o = serde_json::json!({"id": ds.rows[r.row].id, "estimates": estimates[i]});
            if let Some(d) = &diffs {
                o["difficulty"] = serde_json::json!(d[i]);
            }
            if let Some(f) = &folds {
                o["fold"] = serde_json::json!(f[i]);
            }
            writeln!(out, "{o}").with_context(|| format!("cannot write {}", path.display()))?;
        }
        out.flush()?;
    }
    if let Some(path) = &args.html {
        write_file(path, &report::html(&rep))?;
    }
    if let Some(path) = &args.svg {
        write_file(path, &report::svg(&rep))?;
    }
    if args.json {
        output::json(&rep)?;
    } else {
        output::out(&report::text(&rep));
    }
    Ok(Status::Success)
}

/// Fills a report's description of the data set (files, malformed lines, ladder prices) and
/// notes skipped rows: the same for the router and the cascade reports.
pub fn describe_data(
    rep: &mut report::EvalReport,
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
