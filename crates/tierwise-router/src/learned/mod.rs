//! The learned router: a per-query difficulty score learned from outcome data, mapped onto any
//! ladder as per-tier estimates P(tier answers well) = σ(ability − difficulty).
//!
//! # Layout
//! - [`features`]: request signals + lexical statistics + hashed n-grams (+ an optional sentence
//!   embedding that the caller computes, e.g. with `tierwise-embed`).
//! - [`model`]: the IRT-style model (difficulty weights, per-model abilities, ladder prior).
//! - [`LearnedRouter`]: a router file (versioned JSON) loaded for inference; implements
//!   [`crate::QualityEstimator`] so `decide` uses it like any estimator.
//!
//! Pure: no file or network I/O; callers pass the file's text and the embedder.

pub mod features;
pub mod model;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tierwise_core::catalog::Tier;
use tierwise_core::request::RequestView;
use tierwise_core::signals::Signals;

use features::{Featurized, featurize, prompt_text};
use model::{EstimateForm, Model};

/// The `format` field of a router file.
pub const FORMAT: &str = "tierwise-router";
/// The version of the router file format this code reads and writes. 3: the lexical word
/// scan reads the prompt's first 1,536 bytes (`features::LEXICAL_MAX_BYTES`), so a version-2
/// file's weights meet different feature values on longer prompts and must be retrained.
pub const FORMAT_VERSION: u32 = 3;

/// Where a router was trained: enough to tell whether an evaluation set was seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainedOn {
    pub dataset: String,
    pub files: Vec<String>,
    pub rows: usize,
    /// FNV-1a over the row ids read (see `tierwise_eval::data::fingerprint`).
    pub fingerprint: String,
}

/// A router file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterFile {
    pub format: String,
    pub format_version: u32,
    /// Models in order of preference: the first whose features can be computed is used (one
    /// that needs an embedding is skipped when no embedder is loaded).
    pub models: Vec<Model>,
    /// What the per-tier estimates mean (and so what thresholds apply to).
    #[serde(default)]
    pub estimate: EstimateForm,
    /// Threshold on the estimates for every tier below the top when the config sets none.
    pub default_threshold: f64,
    pub trained_on: Vec<TrainedOn>,
    /// The command that produced the file.
    pub command: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LearnedError {
    #[error("router file: not JSON: {0}")]
    Json(String),
    #[error("router file: format {found:?} is not {FORMAT:?}")]
    Format { found: String },
    #[error(
        "router file: format_version {found} does not match this tierwise's router format version {expected} (retrain with `tierwise train`)"
    )]
    Version { found: u64, expected: u32 },
    #[error("router file: {0}")]
    Invalid(String),
}

impl RouterFile {
    /// Parses and validates a router file; a different `format_version` is an error naming both.
    pub fn from_json(text: &str) -> Result<RouterFile, LearnedError> {
        let v = crate::versioned::parse(text, FORMAT, FORMAT_VERSION).map_err(|m| match m {
            crate::versioned::Mismatch::Json(e) => LearnedError::Json(e),
            crate::versioned::Mismatch::Format(found) => LearnedError::Format { found },
            crate::versioned::Mismatch::Version(found) => LearnedError::Version {
                found,
                expected: FORMAT_VERSION,
            },
        })?;
        let file: RouterFile =
            serde_json::from_value(v).map_err(|e| LearnedError::Invalid(e.to_string()))?;
        if file.models.is_empty() {
            return Err(LearnedError::Invalid("no models".into()));
        }
        for (i, m) in file.models.iter().enumerate() {
            m.validate()
                .map_err(|e| LearnedError::Invalid(format!("models[{i}]: {e}")))?;
        }
        if !file.default_threshold.is_finite() {
            return Err(LearnedError::Invalid(
                "default_threshold must be finite".into(),
            ));
        }
        Ok(file)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Computes a sentence embedding of a text (e.g. `tierwise_embed::Embedder::embed`).
pub type EmbedFn = Arc<dyn Fn(&str) -> Vec<f32> + Send + Sync>;

/// A loaded router, ready to estimate.
#[derive(Clone)]
pub struct LearnedRouter {
    file: RouterFile,
    active: usize,
    embed: Option<EmbedFn>,
    note: Option<String>,
}

impl std::fmt::Debug for LearnedRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LearnedRouter")
            .field("features", &self.model().features.label())
            .field("embedder", &self.embed.is_some())
            .finish()
    }
}

impl LearnedRouter {
    /// A router without an embedder: the first model that needs no embedding.
    pub fn new(file: RouterFile) -> Result<LearnedRouter, LearnedError> {
        let active = file
            .models
            .iter()
            .position(|m| m.features.embedding.is_none())
            .ok_or_else(|| {
                LearnedError::Invalid("every model needs an embedding and none is loaded".into())
            })?;
        let note = file.models.first().and_then(|m| m.features.embedding.as_ref()).map(|e| {
            format!(
                "learned router: embedding model {:?} not loaded; using the embedding-free model ({})",
                e.name,
                file.models[active].features.label()
            )
        });
        Ok(LearnedRouter {
            file,
            active,
            embed: None,
            note,
        })
    }

    pub fn from_json(text: &str) -> Result<LearnedRouter, LearnedError> {
        LearnedRouter::new(RouterFile::from_json(text)?)
    }

    /// Attaches an embedder named `name` of `dim` dimensions: the first model that uses it (or
    /// needs none) becomes active.
    pub fn with_embedder(mut self, name: &str, dim: usize, embed: EmbedFn) -> LearnedRouter {
        if let Some(i) = self
            .file
            .models
            .iter()
            .position(|m| match &m.features.embedding {
                Some(e) => e.name == name && e.dim == dim,
                None => true,
            })
        {
            self.active = i;
            if self.file.models[i].features.embedding.is_some() {
                self.embed = Some(embed);
                self.note = None;
            }
        }
        self
    }

    /// Why a fallback model is in use, once per load (print it once).
    pub fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    pub fn file(&self) -> &RouterFile {
        &self.file
    }

    /// The model in use.
    pub fn model(&self) -> &Model {
        &self.file.models[self.active]
    }

    /// Features of a request for the model in use.
    pub fn featurize(&self, view: &RequestView, signals: &Signals) -> Featurized {
        let m = self.model();
        let text = prompt_text(view);
        let emb = match (&m.features.embedding, &self.embed) {
            (Some(_), Some(f)) => Some(f(features::embed_text(&text))),
            _ => None,
        };
        featurize(&m.features, &text, signals, emb.as_deref())
    }

    /// Difficulty of a request (higher = harder).
    pub fn difficulty(&self, view: &RequestView, signals: &Signals) -> f64 {
        self.model().difficulty(&self.featurize(view, signals))
    }

    /// Per-tier estimates (the file's [`EstimateForm`]) for a ladder of model ids, cheapest first.
    pub fn estimates<S: AsRef<str>>(&self, f: &Featurized, models: &[S]) -> Vec<f64> {
        self.model().ladder_estimates(self.file.estimate, f, models)
    }
}

impl crate::QualityEstimator for LearnedRouter {
    fn name(&self) -> &str {
        match self.file.estimate {
            EstimateForm::Quality => "P(tier ok)",
            EstimateForm::Gain => "1-loss vs top",
        }
    }

    /// "transfer gain" when the transfer head decides (a ladder with a model the router was
    /// not trained on), else [`Self::name`].
    fn name_for(&self, tiers: &[Tier]) -> &str {
        let m = self.model();
        let models: Vec<&str> = tiers.iter().map(|t| t.model.as_str()).collect();
        // the same test `Model::ladder_estimates` uses to pick the head
        if m.transfer.is_some() && !m.knows(&models) {
            "transfer gain"
        } else {
            self.name()
        }
    }

    fn estimate(&self, view: &RequestView, signals: &Signals, tiers: &[Tier]) -> Vec<f64> {
        let f = self.featurize(view, signals);
        let models: Vec<&str> = tiers.iter().map(|t| t.model.as_str()).collect();
        self.estimates(&f, &models)
    }

    fn default_thresholds(&self, tiers: &[Tier]) -> Vec<f64> {
        vec![self.file.default_threshold; tiers.len()]
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests may unwrap"
)]
mod tests {
    use super::*;
    use crate::QualityEstimator;
    use features::FeatureSpec;
    use model::LadderPrior;
    use serde_json::json;
    use std::collections::BTreeMap;
    use tierwise_core::catalog::Prices;
    use tierwise_core::signals::Hints;

    fn file() -> RouterFile {
        let spec = FeatureSpec::parse("signals,lexical,ngrams=8", None).unwrap();
        let d = spec.dense_len();
        let mut weights = vec![0.0; spec.len()];
        weights[0] = 1.0; // longer prompts are harder
        RouterFile {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            models: vec![Model {
                features: spec,
                dense_mean: vec![0.0; d],
                dense_scale: vec![1.0; d],
                weights,
                abilities: BTreeMap::from([("a".to_string(), 0.0), ("b".to_string(), 2.0)]),
                deviations: BTreeMap::new(),
                ngram_deviations: BTreeMap::new(),
                ladder: LadderPrior {
                    low: 3.0,
                    high: 5.0,
                },
                transfer: None,
            }],
            estimate: EstimateForm::Quality,
            default_threshold: 0.5,
            trained_on: vec![],
            command: None,
        }
    }

    fn tier(model: &str) -> Tier {
        let p = Prices::flat(
            rust_decimal::Decimal::ONE,
            rust_decimal::Decimal::ONE,
            rust_decimal::Decimal::ONE,
        );
        Tier {
            name: model.into(),
            model: model.into(),
            prices: p,
        }
    }

    fn est(r: &LearnedRouter, text: &str, tiers: &[Tier]) -> Vec<f64> {
        let body = json!({"model": "auto", "messages": [{"role": "user", "content": text}]});
        let view = RequestView::chat(&body).unwrap();
        let s = Signals::compute(&view, &Hints::default());
        r.estimate(&view, &s, tiers)
    }

    #[test]
    fn round_trip_and_estimates() {
        let text = file().to_json();
        let r = LearnedRouter::from_json(&text).unwrap();
        assert_eq!(r.file(), &file());
        assert!(r.note().is_none());
        // known models: their abilities; the stronger one has the higher estimate
        let e = est(&r, "hi", &[tier("a"), tier("b")]);
        assert!(e[1] > e[0]);
        // harder (longer) prompt → lower estimates
        let long = est(&r, &"word ".repeat(500), &[tier("a"), tier("b")]);
        assert!(long[0] < e[0]);
        // unseen models: positional abilities 3, 4, 5
        let u = est(&r, "hi", &[tier("x"), tier("y"), tier("z")]);
        assert_eq!(u.len(), 3);
        assert!(u[0] < u[1] && u[1] < u[2]);
        assert_eq!(
            r.default_thresholds(&[tier("x"), tier("y")]),
            vec![0.5, 0.5]
        );
    }

    #[test]
    fn reason_names_the_estimate_that_decided() {
        use tierwise_core::catalog::Catalog;
        use tierwise_core::config::{Cascade, RouterMode, Routing};
        let mut f = file();
        let d = f.models[0].features.dense_len();
        f.models[0].transfer = Some(model::GainHead {
            bias: 0.0,
            weights: vec![0.0; d],
        });
        f.estimate = EstimateForm::Gain;
        let r = Arc::new(LearnedRouter::new(f).unwrap());
        let reason = |a: &str, b: &str| {
            let policy = crate::Policy {
                catalog: Catalog::new(vec![tier(a), tier(b)], b, vec![], Default::default())
                    .unwrap(),
                routing: Routing {
                    mode: RouterMode::Learned,
                    default_tier: 0,
                    honor_explicit_model: true,
                    no_bounce: false,
                    rules: vec![],
                    learned_weights: None,
                    learned_thresholds: None,
                    cascade: Cascade::defaults(2),
                },
                learned: Some(r.clone()),
            };
            let body = json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}]});
            let view = RequestView::chat(&body).unwrap();
            let s = Signals::compute(&view, &Hints::default());
            crate::decide(&view, &s, &Hints::default(), &policy)
                .unwrap()
                .reason
        };
        // unseen models: the transfer head decides and the reason says so
        let unseen = reason("x", "y");
        assert!(unseen.starts_with("transfer gain:"), "{unseen}");
        // known models: the IRT estimate
        let known = reason("a", "b");
        assert!(known.starts_with("1-loss vs top:"), "{known}");
        assert_eq!(r.name_for(&[tier("a"), tier("b")]), "1-loss vs top");
        assert_eq!(r.name_for(&[tier("a"), tier("q")]), "transfer gain");
    }

    #[test]
    fn version_mismatch_names_both() {
        let mut v: serde_json::Value = serde_json::from_str(&file().to_json()).unwrap();
        v["format_version"] = json!(99);
        let err = LearnedRouter::from_json(&v.to_string()).unwrap_err();
        assert_eq!(
            err,
            LearnedError::Version {
                found: 99,
                expected: FORMAT_VERSION
            }
        );
        assert!(
            err.to_string().contains("99") && err.to_string().contains(&FORMAT_VERSION.to_string())
        );
        v["format"] = json!("other");
        assert!(matches!(
            LearnedRouter::from_json(&v.to_string()),
            Err(LearnedError::Format { .. })
        ));
        assert!(matches!(
            LearnedRouter::from_json("{"),
            Err(LearnedError::Json(_))
        ));
    }

    #[test]
    fn wrong_sizes_are_rejected() {
        let mut f = file();
        f.models[0].weights.pop();
        assert!(matches!(
            LearnedRouter::from_json(&f.to_json()),
            Err(LearnedError::Invalid(_))
        ));
    }

    #[test]
    fn embedding_model_falls_back_without_embedder() {
        let mut f = file();
        let mut emb = f.models[0].clone();
        emb.features.embedding = Some(features::EmbeddingSpec {
            name: "m2v".into(),
            dim: 2,
        });
        let d = emb.features.dense_len();
        emb.dense_mean = vec![0.0; d];
        emb.dense_scale = vec![1.0; d];
        emb.weights = vec![0.0; emb.features.len()];
        f.models.insert(0, emb);
        let r = LearnedRouter::new(f.clone()).unwrap();
        assert!(r.note().is_some_and(|n| n.contains("m2v")));
        assert!(r.model().features.embedding.is_none());
        let r = r.with_embedder("m2v", 2, Arc::new(|_| vec![0.5, 0.5]));
        assert!(r.note().is_none());
        assert!(r.model().features.embedding.is_some());
        assert_eq!(est(&r, "x", &[tier("a"), tier("b")]).len(), 2);
    }
}
