//! The learned model: one difficulty score per query, and per-model ability (an IRT-style
//! model). P(model m answers query q well) = σ(a_m − d(q)), with d(q) = w · features(q).
//!
//! Models it was trained on keep their own ability; a ladder of models it has not seen gets
//! abilities spread evenly, by ladder position (cheapest first), between the typical ability of a
//! mid-priced and of the best model of its training ladders. Thresholds are calibrated per
//! ladder anyway (`tierwise calibrate`), so only the order of the difficulty score matters for a
//! 2-tier pair.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::features::{FeatureSpec, Featurized};

/// Positional abilities for ladders of unseen models.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LadderPrior {
    /// Ability of the cheapest tier.
    pub low: f64,
    /// Ability of the top tier.
    pub high: f64,
}

impl LadderPrior {
    /// Ability of tier `k` of `n` (cheapest first).
    pub fn ability(&self, k: usize, n: usize) -> f64 {
        if n <= 1 {
            return self.high;
        }
        self.low + (self.high - self.low) * k as f64 / (n - 1) as f64
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    pub features: FeatureSpec,
    /// Mean of each dense feature at training time.
    pub dense_mean: Vec<f32>,
    /// Spread (standard deviation, at least a small floor) of each dense feature.
    pub dense_scale: Vec<f32>,
    /// Difficulty weights: standardized dense features first, then hashed n-gram buckets.
    pub weights: Vec<f32>,
    /// Ability of each model seen in training.
    pub abilities: BTreeMap<String, f64>,
    /// Per-model deviations from the shared difficulty on the standardized dense features
    /// (what a model is unusually good or bad at); used only for ladders of known models.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub deviations: BTreeMap<String, Vec<f32>>,
    /// Per-model deviations on the hashed word uni/bi-grams (one weight per bucket): which
    /// words and phrases a model is unusually good or bad at — learned from your own traffic
    /// (`--features …,ngrams`); used only for ladders of known models.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ngram_deviations: BTreeMap<String, NgramWeights>,
    pub ladder: LadderPrior,
    /// The transfer head, used instead of the abilities for ladders with a model the router was
    /// not trained on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<GainHead>,
}

/// A direct, model-agnostic estimate of how much a query gains from a stronger model: a linear
/// fit, on the standardized dense features, of the score gain of the stronger over the weaker
/// model, each pair of the query's data set normalised by its mean gain
/// (`tierwise_train::router::pair_gains`), with a prior towards longer prompts gaining more
/// (`tierwise_train::router::LENGTH_PRIOR`). Only domain-agnostic features get weights
/// (`tierwise_train::router::TRANSFER_FEATURES`; the embedding, domain and language flags stay at 0:
/// they transfer worse across data sets).
///
/// For a ladder of n tiers the estimate of tier k is 1 − g⁺ · (n − 1 − k) / (n − 1), with g⁺ =
/// softplus of ĝ at a 0.05 scale (positive and increasing, ≈ ĝ above 0.1): lower for queries
/// that gain more, and for tiers further below the top; never decreasing up the ladder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GainHead {
    pub bias: f32,
    /// One per dense feature (standardized with the model's means and spreads).
    pub weights: Vec<f32>,
}

impl GainHead {
    /// ĝ of standardized dense features `z`.
    pub fn gain(&self, z: &[f32]) -> f64 {
        f64::from(self.bias)
            + self
                .weights
                .iter()
                .zip(z)
                .map(|(w, z)| f64::from(w * z))
                .sum::<f64>()
    }

    /// Per-tier estimates for `n` tiers from ĝ.
    pub fn estimates(gain: f64, n: usize) -> Vec<f64> {
        if n <= 1 {
            return vec![1.0; n];
        }
        const S: f64 = 0.05;
        let x = gain / S;
        // softplus, stable for large |x|
        let g = S * if x > 30.0 { x } else { x.exp().ln_1p() };
        (0..n)
            .map(|k| 1.0 - g * (n - 1 - k) as f64 / (n - 1) as f64)
            .collect()
    }
}

/// One weight per hashed n-gram bucket. Stored as 16-bit integers (base64, little endian)
/// times a scale — the largest weight ÷ 32,767 — which keeps each weight to within 0.002% of
/// the largest: a file of 2¹⁶ buckets takes ~175 KB per model instead of ~600 KB of decimals.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NgramWeights(pub Vec<f32>);

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NgramWeightsRepr {
    scale: f32,
    i16_le_base64: String,
}

impl Serialize for NgramWeights {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use base64::Engine as _;
        let max = self.0.iter().fold(0.0f32, |m, w| m.max(w.abs()));
        let scale = if max > 0.0 && max.is_finite() {
            max / f32::from(i16::MAX)
        } else {
            1.0
        };
        let mut bytes = Vec::with_capacity(self.0.len() * 2);
        for w in &self.0 {
            let q = (w / scale)
                .round()
                .clamp(-f32::from(i16::MAX), f32::from(i16::MAX)) as i16;
            bytes.extend_from_slice(&q.to_le_bytes());
        }
        NgramWeightsRepr {
            scale,
            i16_le_base64: base64::engine::general_purpose::STANDARD.encode(bytes),
        }
        .serialize(ser)
    }
}

impl<'de> Deserialize<'de> for NgramWeights {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        use base64::Engine as _;
        let r = NgramWeightsRepr::deserialize(de)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(r.i16_le_base64.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("ngram weights: {e}")))?;
        if bytes.len() % 2 != 0 {
            return Err(serde::de::Error::custom(
                "ngram weights: an odd number of bytes",
            ));
        }
        Ok(NgramWeights(
            bytes
                .chunks_exact(2)
                .map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])) * r.scale)
                .collect(),
        ))
    }
}

impl NgramWeights {
    /// Σ weight[bucket] · value over a query's hashed n-grams.
    pub fn dot(&self, sparse: &[(u32, f32)]) -> f64 {
        sparse
            .iter()
            .filter_map(|&(b, v)| self.0.get(b as usize).map(|w| f64::from(w * v)))
            .sum()
    }
}

/// What the per-tier estimates mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EstimateForm {
    /// P(tier k answers well).
    Quality,
    /// 1 − (P(top tier answers well) − P(tier k answers well)): the expected score kept by
    /// stopping at tier k instead of the top. Queries no tier can answer stay cheap.
    #[default]
    Gain,
}

impl EstimateForm {
    /// Turns per-tier probabilities into estimates of this form.
    pub fn apply(self, p: Vec<f64>) -> Vec<f64> {
        match self {
            EstimateForm::Quality => p,
            EstimateForm::Gain => {
                let top = p.last().copied().unwrap_or(0.0);
                p.iter()
                    .map(|q| (1.0 - (top - q)).clamp(0.0, 1.0))
                    .collect()
            }
        }
    }
}

pub fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl Model {
    /// Checks that the vectors fit the feature spec.
    pub fn validate(&self) -> Result<(), String> {
        let d = self.features.dense_len();
        if self.dense_mean.len() != d || self.dense_scale.len() != d {
            return Err(format!("dense_mean/dense_scale must have {d} entries"));
        }
        if self.weights.len() != self.features.len() {
            return Err(format!(
                "weights must have {} entries, found {}",
                self.features.len(),
                self.weights.len()
            ));
        }
        if self
            .dense_scale
            .iter()
            .any(|s| !(s.is_finite() && *s > 0.0))
            || self
                .weights
                .iter()
                .chain(&self.dense_mean)
                .any(|w| !w.is_finite())
            || self.abilities.values().any(|a| !a.is_finite())
            || self
                .deviations
                .values()
                .any(|u| u.len() != d || u.iter().any(|x| !x.is_finite()))
            || self.ngram_deviations.values().any(|v| {
                v.0.len() != self.features.hash_len() || v.0.iter().any(|x| !x.is_finite())
            })
            || !self.ladder.low.is_finite()
            || !self.ladder.high.is_finite()
            || self.transfer.as_ref().is_some_and(|h| {
                h.weights.len() != d
                    || !h.bias.is_finite()
                    || h.weights.iter().any(|w| !w.is_finite())
            })
        {
            return Err(
                "weights, means, spreads and abilities must be finite (spreads > 0)".into(),
            );
        }
        Ok(())
    }

    /// The difficulty score d(q) of a featurized query (higher = harder).
    pub fn difficulty(&self, f: &Featurized) -> f64 {
        let mut d = 0.0f64;
        for (j, &x) in f.dense.iter().enumerate().take(self.dense_mean.len()) {
            let z = (x - self.dense_mean[j]) / self.dense_scale[j];
            d += f64::from(z * self.weights[j]);
        }
        let off = self.dense_mean.len();
        for &(b, v) in &f.sparse {
            if let Some(w) = self.weights.get(off + b as usize) {
                d += f64::from(v * w);
            }
        }
        d
    }

    /// Standardized dense features.
    pub fn standardized(&self, f: &Featurized) -> Vec<f32> {
        f.dense
            .iter()
            .zip(self.dense_mean.iter().zip(&self.dense_scale))
            .map(|(x, (m, s))| (x - m) / s)
            .collect()
    }

    /// P(model answers well) for each model of a ladder (cheapest first): trained abilities and
    /// deviations when the model knows every one, else positional abilities.
    pub fn probabilities<S: AsRef<str>>(&self, f: &Featurized, models: &[S]) -> Vec<f64> {
        let d = self.difficulty(f);
        let (ab, known) = self.ladder_abilities(models);
        if !known || (self.deviations.is_empty() && self.ngram_deviations.is_empty()) {
            return Model::estimates(d, &ab);
        }
        let z = self.standardized(f);
        models
            .iter()
            .zip(ab)
            .map(|(m, a)| {
                let dev = self.deviations.get(m.as_ref()).map_or(0.0, |u| {
                    u.iter().zip(&z).map(|(u, z)| f64::from(u * z)).sum::<f64>()
                });
                let ngram = self
                    .ngram_deviations
                    .get(m.as_ref())
                    .map_or(0.0, |v| v.dot(&f.sparse));
                sigmoid(a - d + dev + ngram)
            })
            .collect()
    }

    /// Per-tier estimates of `form` for a ladder (cheapest first): from the abilities when the
    /// model knows every ladder model or has no transfer head, else from the transfer head.
    pub fn ladder_estimates<S: AsRef<str>>(
        &self,
        form: EstimateForm,
        f: &Featurized,
        models: &[S],
    ) -> Vec<f64> {
        match &self.transfer {
            Some(h) if !self.knows(models) => {
                GainHead::estimates(h.gain(&self.standardized(f)), models.len())
            }
            _ => form.apply(self.probabilities(f, models)),
        }
    }

    /// Whether every model of the ladder was seen in training.
    pub fn knows<S: AsRef<str>>(&self, models: &[S]) -> bool {
        !models.is_empty()
            && models
                .iter()
                .all(|m| self.abilities.contains_key(m.as_ref()))
    }

    /// Abilities for a ladder of model ids (cheapest first): the trained ability of each model
    /// when the model knows all of them, else positional abilities.
    pub fn ladder_abilities<S: AsRef<str>>(&self, models: &[S]) -> (Vec<f64>, bool) {
        let known: Option<Vec<f64>> = models
            .iter()
            .map(|m| self.abilities.get(m.as_ref()).copied())
            .collect();
        match known {
            Some(a) if !a.is_empty() => (a, true),
            _ => (
                (0..models.len())
                    .map(|k| self.ladder.ability(k, models.len()))
                    .collect(),
                false,
            ),
        }
    }

    /// P(tier answers well) for each tier, from a difficulty and the tiers' abilities.
    pub fn estimates(difficulty: f64, abilities: &[f64]) -> Vec<f64> {
        abilities.iter().map(|a| sigmoid(a - difficulty)).collect()
    }

    /// Rounds weights to 4 significant digits (smaller files; far below the model's noise).
    pub fn round_weights(&mut self) {
        let r = |x: f32| -> f32 {
            if x == 0.0 || !x.is_finite() {
                return x;
            }
            let e = x.abs().log10().floor() as i32;
            let m = 10f64.powi(3 - e);
            ((f64::from(x) * m).round() / m) as f32
        };
        for w in &mut self.weights {
            *w = r(*w);
        }
        for w in &mut self.dense_mean {
            *w = r(*w);
        }
        for w in &mut self.dense_scale {
            *w = r(*w);
        }
        for u in self.deviations.values_mut() {
            for w in u.iter_mut() {
                *w = r(*w);
            }
        }
        if let Some(h) = &mut self.transfer {
            h.bias = r(h.bias);
            for w in &mut h.weights {
                *w = r(*w);
            }
        }
    }
}
