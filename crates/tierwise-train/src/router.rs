//! Fitting the model: L2-regularized logistic IRT, P(m good on q) = σ(a_m − w·x_q + u_m·z_q +
//! v_m·h_q) — per-model deviations u_m on the standardized dense features z and v_m on the hashed
//! n-grams h (each optional) — by full-batch L-BFGS. Scores in [0, 1] are soft labels. Each query weighs the same whatever the
//! number of models it has outcomes for; with `balance_groups`, each data set weighs the same.

use std::collections::BTreeMap;

use tierwise_router::learned::features::{FeatureSpec, Featurized};
use tierwise_router::learned::model::{GainHead, LadderPrior, Model, NgramWeights};

/// One training query.
#[derive(Debug, Clone)]
pub struct Example {
    pub features: Featurized,
    /// (model index into [`TrainSet::models`], score in [0, 1]).
    pub outcomes: Vec<(u32, f32)>,
    /// Data set index (for balancing).
    pub group: u32,
}

/// A model of the training data.
#[derive(Debug, Clone)]
pub struct ModelMeta {
    pub name: String,
    pub group: u32,
    /// Blended list price, for the ladder prior.
    pub price: f64,
}

#[derive(Debug, Clone)]
pub struct TrainSet {
    pub spec: FeatureSpec,
    pub examples: Vec<Example>,
    pub models: Vec<ModelMeta>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrainOptions {
    /// L2 on standardized dense weights.
    pub l2_dense: f64,
    /// L2 on hashed n-gram weights.
    pub l2_hash: f64,
    pub max_iter: usize,
    pub balance_groups: bool,
    /// L2 on per-model deviations over the dense features; `None` = no deviations.
    pub l2_model: Option<f64>,
    /// L2 on per-model deviations over the hashed n-grams (used only when the feature spec has
    /// n-grams); `None` = no n-gram deviations.
    pub l2_model_ngrams: Option<f64>,
    /// Worker threads for the gradient (≥ 1).
    pub threads: usize,
    /// L2 (per row, on standardized features) of the transfer head; `None` = no head.
    pub l2_transfer: Option<f64>,
    /// Groups (data sets) the transfer head learns from; `None` = all.
    pub transfer_groups: Option<Vec<u32>>,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            l2_dense: 1e-3,
            l2_hash: 1e-3,
            max_iter: DEFAULT_MAX_ITER,
            balance_groups: true,
            l2_model: Some(1e-2),
            l2_model_ngrams: Some(DEFAULT_L2_MODEL_NGRAMS),
            threads: 2,
            l2_transfer: Some(0.1),
            transfer_groups: None,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TrainError {
    #[error("no training rows with outcomes")]
    Empty,
    #[error("a training row has features of the wrong size")]
    BadFeatures,
}

/// What the fit did.
#[derive(Debug, Clone, PartialEq)]
pub struct FitReport {
    pub iterations: usize,
    pub loss: f64,
    pub rows: usize,
    pub pairs: usize,
}

/// Default bound on L-BFGS iterations per fit ([`TrainOptions::max_iter`]).
pub const DEFAULT_MAX_ITER: usize = 300;

/// Default L2 of the per-model n-gram deviations ([`TrainOptions::l2_model_ngrams`]).
pub const DEFAULT_L2_MODEL_NGRAMS: f64 = 1e-5;

struct Prepared<'a> {
    set: &'a TrainSet,
    mean: Vec<f64>,
    scale: Vec<f64>,
    /// Per-example weight c_i / |outcomes_i|, summing to 1 over examples.
    row_w: Vec<f64>,
    d: usize,
    dense: usize,
    models: usize,
    deviations: bool,
    /// Per-model n-gram deviations: their block's offset in θ (`None` = none), bucket-major
    /// (bucket b of model k at offset + col[b] · models + k).
    ngram_dev: Option<usize>,
    /// Column of each hashed bucket in that block; [`NO_COL`] for buckets fewer than
    /// [`MIN_NGRAM_ROWS`] training rows have (no weight: too rare to learn a model's skill from).
    col: Vec<u32>,
}

/// A bucket needs this many training rows to get per-model deviations.
pub const MIN_NGRAM_ROWS: u32 = 2;
const NO_COL: u32 = u32::MAX;

fn standardize(set: &TrainSet) -> (Vec<f64>, Vec<f64>) {
    let d = set.spec.dense_len();
    let n = set.examples.len().max(1) as f64;
    let mut mean = vec![0.0; d];
    for e in &set.examples {
        for (j, &x) in e.features.dense.iter().enumerate().take(d) {
            mean[j] += f64::from(x);
        }
    }
    mean.iter_mut().for_each(|m| *m /= n);
    let mut var = vec![0.0; d];
    for e in &set.examples {
        for (j, &x) in e.features.dense.iter().enumerate().take(d) {
            var[j] += (f64::from(x) - mean[j]).powi(2);
        }
    }
    let scale = var.iter().map(|v| (v / n).sqrt().max(1e-3)).collect();
    (mean, scale)
}

impl Prepared<'_> {
    /// For each of a query's buckets that has per-model n-gram deviations: where its weights
    /// start in θ (model k's at that + k) and the bucket's value. Bucket-major, so a query
    /// touches one or two cache lines per bucket. Nothing without n-gram deviations.
    fn ngram_slots<'s>(
        &'s self,
        sparse: &'s [(u32, f32)],
    ) -> impl Iterator<Item = (usize, f64)> + 's {
        let o = self.ngram_dev;
        sparse.iter().filter_map(move |&(b, v)| {
            let col = *self.col.get(b as usize)?;
            let o = o?;
            (col != NO_COL).then(|| (o + col as usize * self.models, f64::from(v)))
        })
    }

    /// Loss and gradient at θ = [w (d), a (models)].
    fn eval(&self, theta: &[f64], grad: &mut [f64], threads: usize) -> f64 {
        let d = self.d;
        let ex = &self.set.examples;
        let chunk = ex.len().div_ceil(threads.max(1)).max(1);
        let parts: Vec<(f64, Vec<f64>)> = std::thread::scope(|s| {
            let handles: Vec<_> = ex
                .chunks(chunk)
                .enumerate()
                .map(|(ci, part)| {
                    let start = ci * chunk;
                    s.spawn(move || {
                        let mut g = vec![0.0; theta.len()];
                        let mut loss = 0.0;
                        let mut z = vec![0.0f64; self.dense];
                        // per outcome: the n-gram deviations' part of the logit, then c·(p − y)
                        let mut tv: Vec<f64> = Vec::with_capacity(self.models);
                        let mut rv: Vec<f64> = Vec::with_capacity(self.models);
                        for (i, e) in part.iter().enumerate() {
                            let c = self.row_w[start + i];
                            if c == 0.0 {
                                continue;
                            }
                            let mut mu = 0.0;
                            for j in 0..self.dense {
                                z[j] =
                                    (f64::from(e.features.dense[j]) - self.mean[j]) / self.scale[j];
                                mu += z[j] * theta[j];
                            }
                            for &(b, v) in &e.features.sparse {
                                mu += f64::from(v) * theta[self.dense + b as usize];
                            }
                            tv.clear();
                            tv.resize(e.outcomes.len(), 0.0);
                            rv.clear();
                            for (base, v) in self.ngram_slots(&e.features.sparse) {
                                for (t, &(m, _)) in tv.iter_mut().zip(&e.outcomes) {
                                    *t += theta[base + m as usize] * v;
                                }
                            }
                            let mut dmu = 0.0;
                            for (k, &(m, y)) in e.outcomes.iter().enumerate() {
                                let a = theta[d + m as usize];
                                let mut t = a - mu;
                                let uo = d + self.models + m as usize * self.dense;
                                if self.deviations {
                                    for j in 0..self.dense {
                                        t += theta[uo + j] * z[j];
                                    }
                                }
                                t += tv[k];
                                let y = f64::from(y);
                                // log(1 + e^-t) and log(1 + e^t), stable
                                let sp_neg = if t > 0.0 {
                                    (-t).exp().ln_1p()
                                } else {
                                    -t + t.exp().ln_1p()
                                };
                                let sp_pos = sp_neg + t;
                                loss += c * (y * sp_neg + (1.0 - y) * sp_pos);
                                let p = 1.0 / (1.0 + (-t).exp());
                                g[d + m as usize] += c * (p - y);
                                if self.deviations {
                                    for j in 0..self.dense {
                                        g[uo + j] += c * (p - y) * z[j];
                                    }
                                }
                                rv.push(c * (p - y));
                                dmu += c * (y - p);
                            }
                            for (base, v) in self.ngram_slots(&e.features.sparse) {
                                for (r, &(m, _)) in rv.iter().zip(&e.outcomes) {
                                    g[base + m as usize] += r * v;
                                }
                            }
                            for j in 0..self.dense {
                                g[j] += dmu * z[j];
                            }
                            for &(b, v) in &e.features.sparse {
                                g[self.dense + b as usize] += dmu * f64::from(v);
                            }
                        }
                        (loss, g)
                    })
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        grad.iter_mut().for_each(|g| *g = 0.0);
        let mut loss = 0.0;
        for (l, g) in parts {
            loss += l;
            for (a, b) in grad.iter_mut().zip(g) {
                *a += b;
            }
        }
        loss
    }
}

/// Fits the model.
pub fn fit(set: &TrainSet, opts: &TrainOptions) -> Result<(Model, FitReport), TrainError> {
    let spec = &set.spec;
    let dense = spec.dense_len();
    let d = spec.len();
    let hash = spec.hash_len();
    for e in &set.examples {
        if e.features.dense.len() != dense
            || e.features.sparse.iter().any(|(b, _)| *b as usize >= hash)
        {
            return Err(TrainError::BadFeatures);
        }
    }
    let usable: Vec<bool> = set
        .examples
        .iter()
        .map(|e| !e.outcomes.is_empty())
        .collect();
    let rows = usable.iter().filter(|u| **u).count();
    if rows == 0 {
        return Err(TrainError::Empty);
    }
    // weights: each row 1 (or 1/rows-of-its-group), spread over its outcomes, normalized to sum 1
    let mut group_rows: BTreeMap<u32, usize> = BTreeMap::new();
    for (e, u) in set.examples.iter().zip(&usable) {
        if *u {
            *group_rows.entry(e.group).or_default() += 1;
        }
    }
    let mut row_w: Vec<f64> = set
        .examples
        .iter()
        .zip(&usable)
        .map(|(e, u)| {
            if !*u {
                return 0.0;
            }
            let gw = if opts.balance_groups {
                1.0 / group_rows.get(&e.group).copied().unwrap_or(1) as f64
            } else {
                1.0
            };
            gw / e.outcomes.len() as f64
        })
        .collect();
    let total: f64 = set
        .examples
        .iter()
        .zip(&row_w)
        .map(|(e, w)| w * e.outcomes.len() as f64)
        .sum();
    row_w.iter_mut().for_each(|w| *w /= total.max(1e-300));
    let (mean, scale) = standardize(set);
    let m = set.models.len();
    let deviations = opts.l2_model.is_some() && dense > 0;
    let nu = if deviations { m * dense } else { 0 };
    let ngram_dev = (opts.l2_model_ngrams.is_some() && hash > 0).then_some(d + m + nu);
    let mut col = Vec::new();
    let mut cols = 0usize;
    if ngram_dev.is_some() {
        let mut rows_of = vec![0u32; hash];
        for (e, u) in set.examples.iter().zip(&usable) {
            if *u {
                for &(b, _) in &e.features.sparse {
                    rows_of[b as usize] += 1;
                }
            }
        }
        col = rows_of
            .iter()
            .map(|&n| {
                if n >= MIN_NGRAM_ROWS {
                    cols += 1;
                    (cols - 1) as u32
                } else {
                    NO_COL
                }
            })
            .collect();
    }
    let nv = m * cols;
    let prep = Prepared {
        set,
        mean,
        scale,
        row_w,
        d,
        dense,
        models: m,
        deviations,
        ngram_dev,
        col,
    };
    // start: w = 0, a_m = logit(mean score of m), deviations 0
    let mut theta = vec![0.0; d + m + nu + nv];
    let mut sums = vec![(0.0f64, 0.0f64); m];
    for e in &set.examples {
        for &(mi, y) in &e.outcomes {
            if let Some(s) = sums.get_mut(mi as usize) {
                s.0 += f64::from(y);
                s.1 += 1.0;
            }
        }
    }
    for (k, (s, n)) in sums.iter().enumerate() {
        let p = ((s + 0.5) / (n + 1.0)).clamp(1e-3, 1.0 - 1e-3);
        theta[d + k] = (p / (1.0 - p)).ln();
    }
    let l2_model = opts.l2_model.unwrap_or(0.0);
    let l2_model_ngrams = opts.l2_model_ngrams.unwrap_or(0.0);
    let l2: Vec<f64> = (0..d + m + nu + nv)
        .map(|j| {
            if j < dense {
                opts.l2_dense
            } else if j < d {
                opts.l2_hash
            } else if j < d + m {
                1e-6
            } else if j < d + m + nu {
                l2_model
            } else {
                l2_model_ngrams
            }
        })
        .collect();
    let threads = opts.threads.max(1);
    let mut objective = |x: &[f64], g: &mut [f64]| -> f64 {
        let mut f = prep.eval(x, g, threads);
        for j in 0..x.len() {
            f += 0.5 * l2[j] * x[j] * x[j];
            g[j] += l2[j] * x[j];
        }
        f
    };
    let (iterations, loss) = lbfgs(&mut theta, &mut objective, opts.max_iter, 10);
    let abilities: BTreeMap<String, f64> = set
        .models
        .iter()
        .enumerate()
        .map(|(k, mm)| (mm.name.clone(), theta[d + k]))
        .collect();
    let deviations_map: BTreeMap<String, Vec<f32>> = if deviations {
        set.models
            .iter()
            .enumerate()
            .map(|(k, mm)| {
                let o = d + m + k * dense;
                (
                    mm.name.clone(),
                    theta[o..o + dense].iter().map(|&x| x as f32).collect(),
                )
            })
            .collect()
    } else {
        BTreeMap::new()
    };
    let ngram_deviations: BTreeMap<String, NgramWeights> = match ngram_dev {
        Some(o) => set
            .models
            .iter()
            .enumerate()
            .map(|(k, mm)| {
                let v = prep
                    .col
                    .iter()
                    .map(|&c| {
                        if c == NO_COL {
                            0.0
                        } else {
                            theta[o + c as usize * m + k] as f32
                        }
                    })
                    .collect();
                (mm.name.clone(), NgramWeights(v))
            })
            .collect(),
        None => BTreeMap::new(),
    };
    let ladder = ladder_prior(&set.models, &theta[d..d + m]);
    let mut model = Model {
        features: spec.clone(),
        dense_mean: prep.mean.iter().map(|&x| x as f32).collect(),
        dense_scale: prep.scale.iter().map(|&x| x as f32).collect(),
        weights: theta[..d].iter().map(|&x| x as f32).collect(),
        abilities,
        deviations: deviations_map,
        ngram_deviations,
        ladder,
        transfer: opts
            .l2_transfer
            .and_then(|l2| fit_gain_head(set, &prep.mean, &prep.scale, l2, opts)),
    };
    model.round_weights();
    let pairs = set.examples.iter().map(|e| e.outcomes.len()).sum();
    Ok((
        model,
        FitReport {
            iterations,
            loss,
            rows,
            pairs,
        },
    ))
}

/// Pairs of models whose mean gain (stronger over weaker, on the rows both answered) is below
/// this are left out of [`pair_gains`]: their per-row differences are mostly noise.
pub const MIN_PAIR_GAP: f64 = 0.03;

/// The transfer head's label, per example: across the ordered pairs (weaker, stronger) of a
/// row's models (ordered by mean score over the training rows) whose mean gain ḡ_ws is at least
/// [`MIN_PAIR_GAP`], the mean of the row's gain y_s − y_w **divided by ḡ_ws** (each pair
/// normalised, so pairs far apart do not outweigh close ones), times the mean ḡ of those pairs
/// (the scale of a plain score gain). `None` for rows with no such pair.
///
/// Per-pair normalisation against the plain mean gain (NumPy on the `dump_features` output, head
/// on [`TRANSFER_FEATURES`]): mmlu_pro → llmrouter train APGR 0.587 → 0.594, leave-one-task-out
/// on llmrouter 0.509 → 0.514, leave-one-category-out on mmlu_pro 0.519 → 0.525, mmlu_pro →
/// the 381 deduplicated llmrouter test rows 0.654 → 0.646 (mean over 4–5 pairs each).
pub fn pair_gains(set: &TrainSet) -> Vec<Option<f64>> {
    let m = set.models.len();
    let mut sums = vec![(0.0f64, 0.0f64); m];
    for e in &set.examples {
        for &(k, y) in &e.outcomes {
            if let Some(s) = sums.get_mut(k as usize) {
                s.0 += f64::from(y);
                s.1 += 1.0;
            }
        }
    }
    let mean: Vec<f64> = sums.iter().map(|(s, n)| s / n.max(1.0)).collect();
    // (weaker, stronger) of two outcomes, by mean score then index
    let order = |a: (u32, f32), b: (u32, f32)| -> Option<((usize, f64), (usize, f64))> {
        let (ia, ib) = (a.0 as usize, b.0 as usize);
        if ia >= m || ib >= m || ia == ib {
            return None;
        }
        let (ya, yb) = (f64::from(a.1), f64::from(b.1));
        if (mean[ia], ia) < (mean[ib], ib) {
            Some(((ia, ya), (ib, yb)))
        } else {
            Some(((ib, yb), (ia, ya)))
        }
    };
    // mean gain of each ordered pair over the rows both answered
    let mut pair = vec![(0.0f64, 0.0f64); m * m];
    for e in &set.examples {
        for (i, &a) in e.outcomes.iter().enumerate() {
            for &b in &e.outcomes[i + 1..] {
                if let Some(((w, yw), (s, ys))) = order(a, b) {
                    let p = &mut pair[w * m + s];
                    p.0 += ys - yw;
                    p.1 += 1.0;
                }
            }
        }
    }
    let gap: Vec<Option<f64>> = pair
        .iter()
        .map(|&(g, n)| (n > 0.0).then(|| g / n).filter(|g| *g >= MIN_PAIR_GAP))
        .collect();
    let used: Vec<f64> = gap.iter().flatten().copied().collect();
    if used.is_empty() {
        return vec![None; set.examples.len()];
    }
    let scale = used.iter().sum::<f64>() / used.len() as f64;
    set.examples
        .iter()
        .map(|e| {
            let (mut g, mut n) = (0.0, 0.0);
            for (i, &a) in e.outcomes.iter().enumerate() {
                for &b in &e.outcomes[i + 1..] {
                    if let Some(((w, yw), (s, ys))) = order(a, b)
                        && let Some(d) = gap[w * m + s]
                    {
                        g += (ys - yw) / d;
                        n += 1.0;
                    }
                }
            }
            (n > 0.0).then(|| scale * g / n)
        })
        .collect()
}

/// The dense features the transfer head reads: domain-agnostic measures of a prompt's size,
/// structure, numbers and notation. The keyword-domain flags (`domain_*`), language flags,
/// conversation-shape signals and the embedding are left out: they mostly tell *which data set
/// or category* a query is from, which does not carry to another data set (NumPy check on the
/// `dump_features` output: dropping them raised mmlu_pro → llmrouter-test APGR 0.638 → 0.671 and
/// left llmrouter → mmlu_pro and leave-one-task-out unchanged or slightly better).
pub const TRANSFER_FEATURES: &[&str] = &[
    "ln_prompt_tokens",
    "code",
    "math",
    "ln_words",
    "mean_word_len",
    "digit_frac",
    "upper_frac",
    "symbol_frac",
    "ln_lines",
    "ln_questions",
    "ln_option_lines",
    "latex",
    "type_token_ratio",
    "ln_numbers",
    "ln_max_word_len",
];

/// How much the transfer head leans on prompt length beyond its fit, in standard deviations
/// of the fitted gain per standard deviation of `ln_prompt_tokens`. Length (longer → more to
/// gain from a stronger model) is the one feature whose sign holds within every category of
/// both data sets; the fitted weights are what fails across data sets. NumPy check, head on
/// [`TRANSFER_FEATURES`] with the [`pair_gains`] label, mean over 8 cross-set scenarios (both
/// directions, the headline pair and every pair ≥ 0.05 apart, held-out tasks and categories):
/// 0.538 without the prior, 0.546 at 0.5, 0.543 at 1.
pub const LENGTH_PRIOR: f64 = 0.5;

/// Fits the transfer head: weighted ridge regression of [`pair_gains`] on the standardized
/// [`TRANSFER_FEATURES`] (each data set weighs the same with `balance`), plus the
/// [`LENGTH_PRIOR`]; every other dense feature gets weight 0.
#[expect(
    clippy::needless_range_loop,
    reason = "dense matrix algebra reads clearer with indices"
)]
fn fit_gain_head(
    set: &TrainSet,
    mean: &[f64],
    scale: &[f64],
    l2: f64,
    opts: &TrainOptions,
) -> Option<GainHead> {
    let balance = opts.balance_groups;
    let used = |g: u32| {
        opts.transfer_groups
            .as_ref()
            .is_none_or(|gs| gs.contains(&g))
    };
    let dense = set.spec.dense_len();
    let names = set.spec.dense_names();
    let cols: Vec<usize> = names
        .iter()
        .enumerate()
        .filter(|(_, n)| TRANSFER_FEATURES.contains(&n.as_str()))
        .map(|(j, _)| j)
        .collect();
    let p = cols.len();
    if p == 0 {
        return None;
    }
    let gains = pair_gains(set);
    let mut group_rows: BTreeMap<u32, f64> = BTreeMap::new();
    for (e, g) in set.examples.iter().zip(&gains) {
        if g.is_some() && used(e.group) {
            *group_rows.entry(e.group).or_default() += 1.0;
        }
    }
    let groups = group_rows.len() as f64;
    // normal equations of the centred problem, weights summing to 1
    let (mut sw, mut mz, mut mt) = (0.0, vec![0.0; p], 0.0);
    let rows: Vec<(f64, Vec<f64>, f64)> = set
        .examples
        .iter()
        .zip(&gains)
        .filter_map(|(e, g)| {
            let g = (*g).filter(|_| used(e.group))?;
            let w = if balance {
                1.0 / (group_rows.get(&e.group).copied().unwrap_or(1.0) * groups)
            } else {
                1.0
            };
            let z: Vec<f64> = cols
                .iter()
                .map(|&j| (f64::from(e.features.dense[j]) - mean[j]) / scale[j])
                .collect();
            Some((w, z, g))
        })
        .collect();
    for (w, z, t) in &rows {
        sw += w;
        mt += w * t;
        for j in 0..p {
            mz[j] += w * z[j];
        }
    }
    if sw <= 0.0 {
        return None;
    }
    mt /= sw;
    mz.iter_mut().for_each(|m| *m /= sw);
    // the head's own standardization over the rows it learns from (so its penalty does not
    // depend on data sets it does not use), mapped back to the model's standardized features
    let mut sz = vec![0.0; p];
    for (w, z, _) in &rows {
        for j in 0..p {
            sz[j] += w / sw * (z[j] - mz[j]).powi(2);
        }
    }
    sz.iter_mut().for_each(|v| *v = v.sqrt().max(1e-3));
    let mut a = vec![vec![0.0; p]; p];
    let mut b = vec![0.0; p];
    for (w, z, t) in &rows {
        let w = w / sw;
        let u: Vec<f64> = (0..p).map(|j| (z[j] - mz[j]) / sz[j]).collect();
        for i in 0..p {
            b[i] += w * u[i] * (t - mt);
            for j in i..p {
                a[i][j] += w * u[i] * u[j];
            }
        }
    }
    for i in 0..p {
        for j in 0..i {
            a[i][j] = a[j][i];
        }
        a[i][i] += l2;
    }
    if !crate::linalg::cholesky_solve(&mut a, &mut b) {
        return None;
    }
    // the length prior: prompt length gets LENGTH_PRIOR × the spread of the fitted gain on top
    // of its fitted weight (in the head's standardized units)
    if let Some(k) = cols.iter().position(|&j| names[j] == "ln_prompt_tokens") {
        let var: f64 = rows
            .iter()
            .map(|(w, z, _)| {
                let g: f64 = (0..p).map(|j| (z[j] - mz[j]) / sz[j] * b[j]).sum();
                w / sw * g * g
            })
            .sum();
        b[k] += LENGTH_PRIOR * var.sqrt();
    }
    let w: Vec<f64> = b.iter().zip(&sz).map(|(v, s)| v / s).collect();
    let bias = mt - w.iter().zip(&mz).map(|(w, m)| w * m).sum::<f64>();
    let mut weights = vec![0.0f32; dense];
    for (&j, &x) in cols.iter().zip(&w) {
        weights[j] = x as f32;
    }
    Some(GainHead {
        bias: bias as f32,
        weights,
    })
}

/// Per training group: the median and the best ability; the prior spans their means.
fn ladder_prior(models: &[ModelMeta], abilities: &[f64]) -> LadderPrior {
    let mut groups: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
    for (mm, a) in models.iter().zip(abilities) {
        groups.entry(mm.group).or_default().push(*a);
    }
    let (mut low, mut high, mut n) = (0.0, 0.0, 0.0);
    for (_, mut a) in groups {
        a.sort_by(f64::total_cmp);
        low += a[a.len() / 2];
        high += a[a.len() - 1];
        n += 1.0;
    }
    if n == 0.0 {
        return LadderPrior {
            low: 0.0,
            high: 1.0,
        };
    }
    LadderPrior {
        low: low / n,
        high: high / n,
    }
}

/// Minimizes `f` (which writes its gradient) from `x` in place by L-BFGS with a backtracking
/// Armijo line search. Returns (iterations, final value).
/// a · b, summed in order (the shipped router files are reproduced bit for bit by this order;
/// a four-lane sum would vectorize but moves the weights in their fourth digit).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>()
}

pub fn lbfgs(
    x: &mut [f64],
    f: &mut dyn FnMut(&[f64], &mut [f64]) -> f64,
    max_iter: usize,
    memory: usize,
) -> (usize, f64) {
    let n = x.len();
    let mut g = vec![0.0; n];
    let mut fx = f(x, &mut g);
    let mut s_hist: Vec<Vec<f64>> = Vec::new();
    let mut y_hist: Vec<Vec<f64>> = Vec::new();
    // 1 / (y · s) of each stored pair
    let mut rho_hist: Vec<f64> = Vec::new();
    let mut xn = vec![0.0; n];
    let mut gn = vec![0.0; n];
    let mut it = 0;
    while it < max_iter {
        it += 1;
        // two-loop recursion: direction = -H g
        let mut q = g.clone();
        let k = s_hist.len();
        let mut alpha = vec![0.0; k];
        for i in (0..k).rev() {
            alpha[i] = rho_hist[i] * dot(&s_hist[i], &q);
            for (qj, yj) in q.iter_mut().zip(&y_hist[i]) {
                *qj -= alpha[i] * yj;
            }
        }
        let gamma = if k > 0 {
            dot(&s_hist[k - 1], &y_hist[k - 1]) / dot(&y_hist[k - 1], &y_hist[k - 1])
        } else {
            1.0 / dot(&g, &g).sqrt().max(1e-12)
        };
        q.iter_mut().for_each(|v| *v *= gamma);
        for i in 0..k {
            let beta = rho_hist[i] * dot(&y_hist[i], &q);
            for (qj, sj) in q.iter_mut().zip(&s_hist[i]) {
                *qj += sj * (alpha[i] - beta);
            }
        }
        let mut dir: Vec<f64> = q.iter().map(|v| -v).collect();
        let mut slope = dot(&dir, &g);
        if slope >= 0.0 {
            // not a descent direction: restart with steepest descent
            s_hist.clear();
            y_hist.clear();
            rho_hist.clear();
            let sc = 1.0 / dot(&g, &g).sqrt().max(1e-12);
            dir = g.iter().map(|v| -v * sc).collect();
            slope = dot(&dir, &g);
        }
        let mut step = 1.0;
        let mut fnew;
        let mut tries = 0;
        loop {
            for j in 0..n {
                xn[j] = x[j] + step * dir[j];
            }
            fnew = f(&xn, &mut gn);
            if fnew <= fx + 1e-4 * step * slope || tries >= 30 {
                break;
            }
            step *= 0.5;
            tries += 1;
        }
        if fnew > fx {
            break;
        }
        let s: Vec<f64> = xn.iter().zip(x.iter()).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = gn.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        let rel = (fx - fnew).abs() / fx.abs().max(1e-12);
        x.copy_from_slice(&xn);
        g.copy_from_slice(&gn);
        fx = fnew;
        if sy > 1e-12 {
            s_hist.push(s);
            y_hist.push(y);
            rho_hist.push(1.0 / sy);
            if s_hist.len() > memory {
                s_hist.remove(0);
                y_hist.remove(0);
                rho_hist.remove(0);
            }
        }
        if rel < 1e-9 || dot(&g, &g).sqrt() < 1e-7 {
            break;
        }
    }
    (it, fx)
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
    use tierwise_core::request::RequestView;
    use tierwise_core::signals::{Hints, Signals};
    use tierwise_router::learned::features::featurize;

    #[test]
    fn lbfgs_minimizes_a_quadratic() {
        let mut x = vec![5.0, -3.0];
        let mut f = |x: &[f64], g: &mut [f64]| {
            g[0] = 2.0 * (x[0] - 1.0);
            g[1] = 20.0 * (x[1] + 2.0);
            (x[0] - 1.0).powi(2) + 10.0 * (x[1] + 2.0).powi(2)
        };
        let (_, fx) = lbfgs(&mut x, &mut f, 100, 5);
        assert!(fx < 1e-8);
        assert!((x[0] - 1.0).abs() < 1e-4 && (x[1] + 2.0).abs() < 1e-4);
    }

    #[test]
    fn fit_learns_difficulty_and_abilities() {
        // One dense feature = true difficulty; two models, the strong one better everywhere.
        let spec = FeatureSpec {
            signals: false,
            lexical: false,
            hash_bits: 0,
            embedding: Some(tierwise_router::learned::features::EmbeddingSpec {
                name: "t".into(),
                dim: 1,
            }),
        };
        let mut examples = Vec::new();
        for i in 0..400 {
            let diff = (i % 20) as f32 / 10.0 - 1.0;
            let weak = if diff < -0.2 { 1.0 } else { 0.0 };
            let strong = if diff < 0.6 { 1.0 } else { 0.0 };
            examples.push(Example {
                features: Featurized {
                    dense: vec![diff],
                    sparse: vec![],
                },
                outcomes: vec![(0, weak), (1, strong)],
                group: 0,
            });
        }
        let set = TrainSet {
            spec,
            examples,
            models: weak_and_strong(),
        };
        let (m, rep) = fit(
            &set,
            &TrainOptions {
                l2_dense: 1e-4,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(rep.iterations > 1);
        assert!(m.weights[0] > 0.5, "difficulty weight {}", m.weights[0]);
        assert!(m.abilities["strong"] > m.abilities["weak"]);
        let easy = m.difficulty(&Featurized {
            dense: vec![-1.0],
            sparse: vec![],
        });
        let hard = m.difficulty(&Featurized {
            dense: vec![1.0],
            sparse: vec![],
        });
        assert!(hard > easy);
        assert!(m.ladder.high >= m.ladder.low);
    }

    /// Two models of one data set: "weak" (price 1) and "strong" (price 2).
    fn weak_and_strong() -> Vec<ModelMeta> {
        ["weak", "strong"]
            .iter()
            .zip([1.0, 2.0])
            .map(|(name, price)| ModelMeta {
                name: (*name).into(),
                group: 0,
                price,
            })
            .collect()
    }

    #[test]
    fn ngram_deviations_learn_what_each_model_is_good_at() {
        // Two topics told apart only by their words: "weak" answers topic A well and topic B
        // badly, "strong" answers both. Same difficulty for both topics, so only a per-model
        // n-gram deviation can say where the weak model falls short.
        let spec = FeatureSpec::parse("ngrams=10", None).unwrap();
        let empty = Signals::compute(
            &RequestView::chat(
                &serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}),
            )
            .unwrap(),
            &Hints::default(),
        );
        let topic = |a: bool, i: usize| {
            let words = if a {
                "photosynthesis chlorophyll leaf plant"
            } else {
                "contract tort statute plaintiff"
            };
            let text = format!("question {i}: {words}");
            featurize(&spec, &text, &empty, None)
        };
        let mut examples = Vec::new();
        for i in 0..300 {
            let a = i % 2 == 0;
            // the weak model fails topic B 80% of the time, topic A 10%
            let weak_ok = if a { i % 10 != 0 } else { i % 5 == 1 };
            examples.push(Example {
                features: topic(a, i),
                outcomes: vec![(0, f32::from(u8::from(weak_ok))), (1, 1.0)],
                group: 0,
            });
        }
        let models = weak_and_strong();
        let set = TrainSet {
            spec: spec.clone(),
            examples,
            models,
        };
        let gap = |m: &Model, a: bool| {
            let p = m.probabilities(&topic(a, 1000), &["weak", "strong"]);
            p[1] - p[0]
        };
        let (with, _) = fit(&set, &TrainOptions::default()).unwrap();
        assert_eq!(with.ngram_deviations.len(), 2);
        assert!(
            gap(&with, false) > gap(&with, true) + 0.3,
            "gain on topic B {} vs A {}",
            gap(&with, false),
            gap(&with, true)
        );
        // without them the shared difficulty cannot tell the weak model's topics apart as well
        let (without, _) = fit(
            &set,
            &TrainOptions {
                l2_model_ngrams: None,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(without.ngram_deviations.is_empty());
        assert!(gap(&with, false) - gap(&with, true) > gap(&without, false) - gap(&without, true));
        // the file keeps them (16-bit weights: within 1/32,767 of the largest)
        let json = serde_json::to_string(&with).unwrap();
        let back: Model = serde_json::from_str(&json).unwrap();
        back.validate().unwrap();
        for (name, w) in &with.ngram_deviations {
            let max = w.0.iter().fold(0.0f32, |m, x| m.max(x.abs()));
            for (x, y) in w.0.iter().zip(&back.ngram_deviations[name].0) {
                assert!((x - y).abs() <= max / 32_767.0 * 0.51 + 1e-9, "{x} vs {y}");
            }
        }
        assert!((gap(&back, false) - gap(&with, false)).abs() < 1e-3);
    }

    #[test]
    fn transfer_head_leans_on_length() {
        // the gain follows ln_words only; prompt length varies independently of it
        let spec = FeatureSpec {
            signals: true,
            lexical: true,
            hash_bits: 0,
            embedding: None,
        };
        let names = spec.dense_names();
        let len = names.iter().position(|n| n == "ln_prompt_tokens").unwrap();
        let words = names.iter().position(|n| n == "ln_words").unwrap();
        let examples: Vec<Example> = (0..200)
            .map(|i| {
                let mut dense = vec![0.0; spec.dense_len()];
                dense[len] = (i % 7) as f32;
                dense[words] = (i % 10) as f32;
                let weak = if i % 10 >= 5 { 0.0 } else { 1.0 };
                Example {
                    features: Featurized {
                        dense,
                        sparse: vec![],
                    },
                    outcomes: vec![(0, weak), (1, 1.0)],
                    group: 0,
                }
            })
            .collect();
        let models = ["weak", "strong"]
            .iter()
            .map(|n| ModelMeta {
                name: n.to_string(),
                group: 0,
                price: 1.0,
            })
            .collect();
        let set = TrainSet {
            spec,
            examples,
            models,
        };
        let (m, _) = fit(&set, &TrainOptions::default()).unwrap();
        let h = m.transfer.unwrap();
        assert!(h.weights[words] > 0.0, "{:?}", h.weights);
        assert!(h.weights[len] > 0.05, "{:?}", h.weights);
    }

    #[test]
    fn pair_gains_normalise_each_pair() {
        let spec = FeatureSpec {
            signals: false,
            lexical: true,
            hash_bits: 0,
            embedding: None,
        };
        let d = spec.dense_len();
        let set = |rows: &[[f32; 3]]| TrainSet {
            spec: spec.clone(),
            examples: rows
                .iter()
                .map(|r| Example {
                    features: Featurized {
                        dense: vec![0.0; d],
                        sparse: vec![],
                    },
                    outcomes: r.iter().enumerate().map(|(k, y)| (k as u32, *y)).collect(),
                    group: 0,
                })
                .collect(),
            models: ["a", "b", "c"]
                .iter()
                .map(|n| ModelMeta {
                    name: n.to_string(),
                    group: 0,
                    price: 1.0,
                })
                .collect(),
        };
        // means a 0.25, b 0.5, c 0.75; pair gaps a→b 0.25, a→c 0.5, b→c 0.25 (scale 1/3)
        let g = pair_gains(&set(&[
            [0.0, 1.0, 1.0],
            [0.0, 0.0, 1.0],
            [1.0, 1.0, 1.0],
            [0.0, 0.0, 0.0],
        ]));
        let third = 1.0 / 3.0;
        // row 1: (1/0.25 + 1/0.5 + 0) / 3 pairs = 2, times 1/3
        assert!((g[0].unwrap() - 2.0 * third).abs() < 1e-9, "{g:?}");
        assert!((g[1].unwrap() - 2.0 * third).abs() < 1e-9, "{g:?}");
        assert_eq!(g[2], Some(0.0));
        assert_eq!(g[3], Some(0.0));
        // no pair with a mean gain of at least MIN_PAIR_GAP: no label
        let flat = pair_gains(&set(&[[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]));
        assert!(flat.iter().all(Option::is_none), "{flat:?}");
    }

    #[test]
    fn transfer_head_learns_the_gain() {
        // one lexical-like dense feature x; the strong model gains on rows with x > 0 only
        let spec = FeatureSpec {
            signals: false,
            lexical: true,
            hash_bits: 0,
            embedding: None,
        };
        let d = spec.dense_len();
        let examples: Vec<Example> = (0..200)
            .map(|i| {
                let x = (i % 10) as f32 - 4.5;
                let mut dense = vec![0.0; d];
                dense[0] = x;
                dense[1] = (i % 3) as f32; // noise
                let strong = 1.0;
                let weak = if x > 0.0 { 0.0 } else { 1.0 };
                Example {
                    features: Featurized {
                        dense,
                        sparse: vec![],
                    },
                    outcomes: vec![(0, weak), (1, strong)],
                    group: 0,
                }
            })
            .collect();
        let set = TrainSet {
            spec,
            examples,
            models: weak_and_strong(),
        };
        let g = pair_gains(&set);
        assert_eq!(g[9], Some(1.0));
        assert_eq!(g[0], Some(0.0));
        let (m, _) = fit(&set, &TrainOptions::default()).unwrap();
        let h = m.transfer.clone().unwrap();
        assert_eq!(h.weights.len(), d);
        assert!(h.weights[0] > 0.2, "{:?}", h.weights);
        assert!(h.weights[1].abs() < 0.05, "{:?}", h.weights);
        // only the domain-agnostic features get weights
        for (w, n) in h.weights.iter().zip(m.features.dense_names()) {
            assert!(
                TRANSFER_FEATURES.contains(&n.as_str()) || *w == 0.0,
                "{n}: {w}"
            );
        }
        // unseen ladder → the head: rows that gain get a lower estimate for the cheap tier
        let row = |x: f32| {
            let mut dense = vec![0.0; d];
            dense[0] = x;
            Featurized {
                dense,
                sparse: vec![],
            }
        };
        let form = tierwise_router::learned::model::EstimateForm::Gain;
        let hi = m.ladder_estimates(form, &row(4.0), &["a", "b"]);
        let lo = m.ladder_estimates(form, &row(-4.0), &["a", "b"]);
        assert!(hi[0] < lo[0]);
        assert_eq!(hi[1], 1.0);
        // known ladder → the abilities
        assert_eq!(
            m.ladder_estimates(form, &row(4.0), &["weak", "strong"]),
            form.apply(m.probabilities(&row(4.0), &["weak", "strong"]))
        );
    }
}
