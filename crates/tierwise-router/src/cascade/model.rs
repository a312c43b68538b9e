//! The answer scorer's model: logistic regression on standardized features, its versioned JSON
//! file, and the fit (Newton's method with an L2 penalty; soft labels in [0, 1] allowed).

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

/// Options of [`fit`].
#[derive(Debug, Clone, PartialEq)]
pub struct FitOptions {
    /// L2 penalty on the standardized weights (not the bias), per example.
    pub l2: f64,
    pub max_iterations: usize,
    /// Features held at weight 0 (indices into [`FEATURE_NAMES`]): left out of the model.
    pub exclude: Vec<usize>,
}

impl Default for FitOptions {
    fn default() -> FitOptions {
        FitOptions {
            l2: 1e-3,
            max_iterations: 50,
            exclude: Vec::new(),
        }
    }
}

/// A fitted model (the numeric part of a [`ScorerFile`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
    pub weights: Vec<f64>,
    pub bias: f64,
    pub loss: f64,
    pub iterations: usize,
}

impl Fitted {
    pub fn probability(&self, x: &[f64; N_FEATURES]) -> f64 {
        let mut z = self.bias;
        for i in 0..N_FEATURES {
            z += self.weights[i] * (x[i] - self.mean[i]) / self.scale[i];
        }
        sigmoid(z)
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FitError {
    #[error("no training examples")]
    Empty,
    #[error("labels must be in [0, 1]")]
    Label,
    #[error("the Newton system is singular")]
    Singular,
}

/// Fits logistic regression on `x` with labels `y` ∈ [0, 1] (mean log-loss + l2/2·|w|²).
pub fn fit(x: &[[f64; N_FEATURES]], y: &[f64], opts: &FitOptions) -> Result<Fitted, FitError> {
    let n = x.len();
    if n == 0 || y.len() != n {
        return Err(FitError::Empty);
    }
    if y.iter().any(|v| !(0.0..=1.0).contains(v)) {
        return Err(FitError::Label);
    }
    let d = N_FEATURES;
    let mut mean = vec![0.0; d];
    for r in x {
        for i in 0..d {
            mean[i] += r[i];
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut scale = vec![0.0; d];
    for r in x {
        for i in 0..d {
            scale[i] += (r[i] - mean[i]).powi(2);
        }
    }
    for s in &mut scale {
        let sd = (*s / n as f64).sqrt();
        *s = if sd < 1e-9 { 1.0 } else { sd };
    }
    let z: Vec<[f64; N_FEATURES]> = x
        .iter()
        .map(|r| {
            let mut o = [0.0; N_FEATURES];
            for i in 0..d {
                o[i] = if opts.exclude.contains(&i) {
                    0.0
                } else {
                    (r[i] - mean[i]) / scale[i]
                };
            }
            o
        })
        .collect();
    // parameters: weights then bias (index d)
    let mut w = vec![0.0; d + 1];
    let ybar = y.iter().sum::<f64>() / n as f64;
    w[d] = (ybar.clamp(1e-6, 1.0 - 1e-6) / (1.0 - ybar.clamp(1e-6, 1.0 - 1e-6))).ln();
    let mut iterations = 0;
    let mut loss = f64::INFINITY;
    for it in 0..opts.max_iterations {
        iterations = it + 1;
        let mut g = vec![0.0; d + 1];
        let mut h = vec![vec![0.0; d + 1]; d + 1];
        let mut l = 0.0;
        for (r, &t) in z.iter().zip(y) {
            let mut s = w[d];
            for i in 0..d {
                s += w[i] * r[i];
            }
            let p = sigmoid(s).clamp(1e-12, 1.0 - 1e-12);
            l -= t * p.ln() + (1.0 - t) * (1.0 - p).ln();
            let e = p - t;
            let v = p * (1.0 - p);
            for i in 0..d {
                g[i] += e * r[i];
                let vi = v * r[i];
                for j in 0..=i {
                    h[i][j] += vi * r[j];
                }
                h[d][i] += vi;
            }
            g[d] += e;
            h[d][d] += v;
        }
        let nf = n as f64;
        l /= nf;
        for i in 0..=d {
            g[i] /= nf;
            for j in 0..=i {
                h[i][j] /= nf;
            }
        }
        for i in 0..d {
            l += 0.5 * opts.l2 * w[i] * w[i];
            g[i] += opts.l2 * w[i];
            h[i][i] += opts.l2;
        }
        // symmetric fill
        for i in 0..=d {
            for j in i + 1..=d {
                h[i][j] = h[j][i];
            }
        }
        loss = l;
        if !crate::linalg::cholesky_solve(&mut h, &mut g) {
            return Err(FitError::Singular);
        }
        let step = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for i in 0..=d {
            w[i] -= g[i];
        }
        if step < 1e-7 {
            break;
        }
    }
    let bias = w[d];
    w.truncate(d);
    Ok(Fitted {
        mean,
        scale,
        weights: w,
        bias,
        loss,
        iterations,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;

    #[test]
    fn fit_recovers_a_separating_direction() {
        // label depends on feature 18 (prev_same) strongly and on feature 0 weakly
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..2000 {
            let mut r = [0.0; N_FEATURES];
            r[18] = f64::from(i % 2);
            r[0] = (i % 7) as f64;
            let p = sigmoid(-1.0 + 3.0 * r[18] - 0.2 * r[0]);
            x.push(r);
            y.push(p); // soft labels
        }
        let f = fit(
            &x,
            &y,
            &FitOptions {
                l2: 1e-6,
                max_iterations: 50,
                exclude: Vec::new(),
            },
        )
        .unwrap();
        // weights are on standardized features: back to raw units
        let w18 = f.weights[18] / f.scale[18];
        let w0 = f.weights[0] / f.scale[0];
        assert!((w18 - 3.0).abs() < 0.05, "{w18}");
        assert!((w0 + 0.2).abs() < 0.02, "{w0}");
        assert!(
            f.weights[5].abs() < 1e-9,
            "a constant feature keeps weight 0"
        );
        assert!(fit(&[], &[], &FitOptions::default()).is_err());
    }
}
