//! The answer scorer's model: logistic regression on standardized features and its versioned
//! JSON file. It is fitted by `tierwise-train`'s `scorer` module.

#![expect(
    clippy::needless_range_loop,
    reason = "dense linear algebra reads clearer with indices"
)]

use serde::{Deserialize, Serialize};

use super::features::{FEATURE_NAMES, N_FEATURES};

/// The `format` field of a scorer file.
pub const FORMAT: &str = "tierwise-cascade-scorer";
/// The scorer file format (and feature definitions) this code reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// Where a scorer was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainedOn {
    pub dataset: String,
    pub rows: usize,
    /// Models whose answers were learned from, cheapest first.
    pub models: Vec<String>,
    /// FNV-1a over the row ids (as `tierwise_eval::data::fingerprint`).
    pub fingerprint: String,
}

/// A scorer file (`router/cascade.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScorerFile {
    pub format: String,
    pub format_version: u32,
    /// Feature names in vector order; must equal the code's.
    pub features: Vec<String>,
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
    pub weights: Vec<f64>,
    pub bias: f64,
    /// Acceptance threshold for every tier when the config sets none.
    pub default_threshold: f64,
    /// What the default threshold was set for.
    pub default_threshold_target: String,
    pub trained_on: Vec<TrainedOn>,
    /// Training examples (answers) and final mean log-loss.
    pub examples: usize,
    pub loss: f64,
    /// The command that produced the file.
    pub command: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ScorerError {
    #[error("scorer file: not JSON: {0}")]
    Json(String),
    #[error("scorer file: format {found:?} is not {FORMAT:?}")]
    Format { found: String },
    #[error(
        "scorer file: format_version {found} does not match this tierwise's scorer format version {expected} (retrain with `tierwise train --cascade`)"
    )]
    Version { found: u64, expected: u32 },
    #[error("scorer file: {0}")]
    Invalid(String),
}

impl ScorerFile {
    /// Parses and validates; another `format_version` or feature list is an error naming it.
    pub fn from_json(text: &str) -> Result<ScorerFile, ScorerError> {
        let v = crate::versioned::parse(text, FORMAT, FORMAT_VERSION).map_err(|m| match m {
            crate::versioned::Mismatch::Json(e) => ScorerError::Json(e),
            crate::versioned::Mismatch::Format(found) => ScorerError::Format { found },
            crate::versioned::Mismatch::Version(found) => ScorerError::Version {
                found,
                expected: FORMAT_VERSION,
            },
        })?;
        let f: ScorerFile =
            serde_json::from_value(v).map_err(|e| ScorerError::Invalid(e.to_string()))?;
        if f.features
            .iter()
            .map(String::as_str)
            .ne(FEATURE_NAMES.iter().copied())
        {
            return Err(ScorerError::Invalid(format!(
                "features {:?} are not this code's {:?}",
                f.features, FEATURE_NAMES
            )));
        }
        for (name, v) in [
            ("mean", &f.mean),
            ("scale", &f.scale),
            ("weights", &f.weights),
        ] {
            if v.len() != N_FEATURES {
                return Err(ScorerError::Invalid(format!(
                    "{name} must have {N_FEATURES} entries"
                )));
            }
            if v.iter().any(|x| !x.is_finite()) {
                return Err(ScorerError::Invalid(format!(
                    "{name} has a non-finite entry"
                )));
            }
        }
        if f.scale.iter().any(|&s| s <= 0.0) {
            return Err(ScorerError::Invalid(
                "scale entries must be positive".into(),
            ));
        }
        if !f.bias.is_finite() || !(0.0..1.0).contains(&f.default_threshold) {
            return Err(ScorerError::Invalid(
                "bias must be finite and default_threshold in [0, 1)".into(),
            ));
        }
        Ok(f)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// P(good enough) for a feature vector.
    pub fn probability(&self, x: &[f64; N_FEATURES]) -> f64 {
        let mut z = self.bias;
        for i in 0..N_FEATURES {
            z += self.weights[i] * (x[i] - self.mean[i]) / self.scale[i];
        }
        sigmoid(z)
    }
}

pub fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}
