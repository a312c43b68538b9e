//! Fitting the cascade's answer scorer: logistic regression on standardized answer features by
//! Newton's method with an L2 penalty (soft labels in [0, 1] allowed). The model it produces is
//! read for inference by `tierwise_router::cascade::ScorerFile`.

#![expect(
    clippy::needless_range_loop,
    reason = "dense linear algebra reads clearer with indices"
)]

use tierwise_router::cascade::features::N_FEATURES;
use tierwise_router::cascade::model::sigmoid;

/// Options of [`fit`].
#[derive(Debug, Clone, PartialEq)]
pub struct FitOptions {
    /// L2 penalty on the standardized weights (not the bias), per example.
    pub l2: f64,
    pub max_iterations: usize,
    /// Features held at weight 0 (indices into `tierwise_router::cascade::features::FEATURE_NAMES`): left out of the model.
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
