//! `tierwise quality plan`: which categories of traffic may move from the strongest model to a
//! cheaper one, proven on a small shadow sample of each category.
//!
//! An outcome data set stands in for the team's traffic. For each category (rows without a
//! `category` form one group: `(all)` when no row has one, else `(none)`) `samples` rows are
//! drawn at random without replacement (seeded; all rows when the category has fewer): the
//! shadow budget, the rows on which every ladder model would be called. From those rows alone
//! the plan picks, per category, the cheapest model whose quality ratio against the strongest
//! (mean score of the candidate / mean score of the strongest, over all the category's rows)
//! clears the bar, with the stated confidence; otherwise the category stays on the strongest.
//!
//! # Method
//! - **One test per candidate.** For candidate `c` and strongest `s` on paired rows,
//!   ratio ≥ B ⟺ mean(cᵢ − B·sᵢ) ≥ 0. The null "ratio < B over all the category's rows" is tested
//!   with a *betting* test for bounded variables (Waudby-Smith & Ramdas 2023, "Estimating means
//!   of bounded random variables by betting", JRSS-B; §6 for sampling without replacement):
//!   dᵢ ∈ [−B, 1] is rescaled to [0, 1], a capital process `K_t = Π (1 + λ_t (y_t − m_t))` is run
//!   over the draws in their random order, where `m_t` is the mean of the rows not yet drawn if
//!   the null held with equality and `λ_t ∈ [0, ½ / m_t]` is a predictable bet (WSR's
//!   fixed-horizon plug-in √(2 ln(1/α′)/(n σ̂²)), sized for α′ = (1 − C)/categories). `K`
//!   is a non-negative supermartingale under the null, so by Ville's inequality
//!   `p = 1 / max_t K_t` is a valid p-value at every sample size — no normal approximation, no
//!   minimum n. A t-test was not used: with 0/1 scores and a bar near 1, cᵢ − B·sᵢ is a rare ±1
//!   on a background of 0 and 1 − B, so the t-statistic is far from normal at the n of a shadow
//!   budget and at the small levels a multiple-testing correction asks for. An
//!   empirical-Bernstein bound was not used either: its `7·range·ln(2/δ)/(3(n−1))` term alone
//!   exceeds the margin to detect (≈ (1 − B)·mean) below n ≈ 1000. When every row of a category
//!   was drawn, the ratio is known exactly and the test is exact (p = 0 or 1).
//! - **Several candidates per category: fixed-sequence testing.** Candidates are tested from the
//!   strongest's neighbour down the ladder, each at the same level, stopping at the first that
//!   fails; the category gets the cheapest that passed. A model whose blended list price is not
//!   below the one tested before it (or the strongest) is left out of the sequence: it would
//!   save nothing. The order depends on prices only, never on the scores. A miss needs the walk
//!   to pass the first candidate whose true ratio is below the bar, so one level covers the
//!   whole walk.
//! - **Many categories: Benjamini–Hochberg on the first step.** The p-values p₁ of the first
//!   step (the first candidate) of the m tested categories go through BH at level q = 1 − C,
//!   which sets the level t = q·R/m (R categories selected); selected categories then walk down
//!   at level t. A miss in category i implies max(p₁, p_k) ≤ t for its first wrong step k; that
//!   maximum is a valid p-value under step k's null and is ≥ p₁, the one BH ranks, so BH's
//!   proof for independent p-values (the categories' draws are independent) goes through
//!   unchanged: E[misses / max(categories moved, 1)] ≤ q·m₀/m ≤ 1 − C, m₀ the categories with
//!   a wrong step.
//! - **Reported interval.** `lower` / `upper` invert the same test over the bar: each is a
//!   one-sided bound at confidence C for that category alone (not adjusted for multiplicity).
//! - **Realized.** The plan is then applied to *all* rows of the data (each category served by
//!   its chosen model) and compared with always-strongest: quality ratio and cost ratio (cost in
//!   Decimal USD, from the recorded tokens and the data set's prices, as [`Ladder`] computes it).
//!   `realized_ratio` per category and `misses` use all rows too: an offline check of the plan,
//!   not an input to it.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;

use crate::data::Dataset;
use crate::ladder::Ladder;
use crate::{Progress, RunError};

// The statistics live in `tierwise_quality::stats` (shared with the shadow-test report).
pub use tierwise_quality::stats::{Pair, benjamini_hochberg, betting_p_value};

/// The group of rows without a category when no row has one.
pub const ALL: &str = "(all)";
/// The group of rows without a category when other rows have one.
pub const NONE: &str = "(none)";

/// What `tierwise quality plan` plans.
#[derive(Debug, Clone)]
pub struct QualityPlanOptions {
    /// Ladder models, cheapest first; the last is the strongest (default: the data set's ladder).
    pub models: Option<Vec<String>>,
    /// Shadow rows drawn per category.
    pub samples: usize,
    /// Quality ratio to clear, in (0, 1].
    pub bar: f64,
    /// Confidence, in (0, 1): the expected share of misses among categories moved is at most
    /// 1 − confidence.
    pub confidence: f64,
    pub seed: u64,
}

impl Default for QualityPlanOptions {
    fn default() -> Self {
        QualityPlanOptions {
            models: None,
            samples: 100,
            bar: 0.95,
            confidence: 0.9,
            seed: 0,
        }
    }
}

impl QualityPlanOptions {
    /// Checks the numeric options; the message names the option.
    pub fn validate(&self) -> Result<(), RunError> {
        if self.samples == 0 {
            return Err(RunError::invalid("--samples must be at least 1"));
        }
        if !(self.bar.is_finite() && self.bar > 0.0 && self.bar <= 1.0) {
            return Err(RunError::invalid(format!(
                "--bar {} is outside (0, 1]",
                self.bar
            )));
        }
        if !(self.confidence.is_finite() && self.confidence > 0.0 && self.confidence < 1.0) {
            return Err(RunError::invalid(format!(
                "--confidence {} is outside (0, 1)",
                self.confidence
            )));
        }
        Ok(())
    }
}

/// One candidate tested in one category, on the sampled rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CandidateTest {
    pub model: String,
    /// Mean score of the candidate on the sampled rows.
    pub mean: f64,
    /// Sampled ratio mean(candidate) / mean(strongest); null when the strongest scored 0.
    pub estimate: Option<f64>,
    /// One-sided lower bound on the ratio at the plan's confidence (this category alone).
    pub lower: f64,
    /// One-sided upper bound; null when unbounded (e.g. the strongest scored 0).
    pub upper: Option<f64>,
    /// p-value of "the ratio over all the category's rows is below the bar".
    pub p_value: f64,
    /// Passed at the level the category was tested at.
    pub passed: bool,
}

/// The plan for one category.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CategoryPlan {
    pub category: String,
    /// The model chosen (the strongest when nothing was proven).
    pub model: String,
    /// Its index in the ladder (cheapest 0).
    pub tier: usize,
    /// Rows of the category (with outcomes for every ladder model).
    pub rows: usize,
    /// Rows drawn (the shadow budget spent on it).
    pub sampled: usize,
    /// Sampled quality ratio of the chosen model (1 for the strongest).
    pub estimate: Option<f64>,
    pub lower: f64,
    pub upper: Option<f64>,
    /// Mean score of the strongest on the sampled rows.
    pub strongest_mean: f64,
    /// p-value of the first step (the strongest's neighbour), the one BH ranks.
    pub p_value: f64,
    /// Why this model.
    pub verdict: String,
    /// The candidates tested, from the strongest's neighbour down.
    pub candidates: Vec<CandidateTest>,
    /// Offline check: the chosen model's ratio over all the category's rows.
    pub realized_ratio: Option<f64>,
    /// Offline check: moved down and `realized_ratio` below the bar.
    pub miss: bool,
}

/// The plan applied to every row of the data set, against always-strongest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Realized {
    pub rows: usize,
    /// Rows served by a model other than the strongest.
    pub moved_rows: usize,
    /// Mean score of the plan / mean score of the strongest.
    pub quality_ratio: f64,
    /// Cost of the plan / cost of the strongest.
    pub cost_ratio: f64,
    pub quality: f64,
    pub strongest_quality: f64,
    #[serde(with = "rust_decimal::serde::str")]
    pub cost_usd: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub strongest_cost_usd: Decimal,
}

/// A quality plan: per-category choices, the budget spent and what they realize.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QualityPlan {
    pub data: String,
    /// The ladder, cheapest first.
    pub models: Vec<String>,
    pub strongest: String,
    pub samples: usize,
    pub bar: f64,
    pub confidence: f64,
    pub seed: u64,
    pub method: String,
    /// Categories with at least one sampled row (m of BH).
    pub categories_tested: usize,
    pub categories_moved: usize,
    /// Offline check: moved categories whose ratio over all their rows is below the bar.
    pub misses: usize,
    /// The level each selected category walked down at (BH's q·R/m; 0 when none selected).
    pub level: f64,
    /// Rows drawn over all categories.
    pub samples_used: usize,
    /// Rows left out: no outcome for some ladder model.
    pub skipped: usize,
    pub categories: Vec<CategoryPlan>,
    pub realized: Realized,
    pub notes: Vec<String>,
}

/// The method, as written into the report.
pub fn method_text(confidence: f64) -> String {
    format!(
        "per category: seeded draw without replacement; per candidate, a betting test \
         (Waudby-Smith & Ramdas, without-replacement capital process, p = 1/max K) of \
         mean(c - bar*s) >= 0, exact when every row was drawn; candidates from the strongest's \
         neighbour down, each cheaper by list price, fixed-sequence (stop at the first \
         failure); across categories, \
         Benjamini-Hochberg at q = {:.4} on the first step, selected categories walk down at \
         level q*R/m; expected share of misses among categories moved <= q",
        1.0 - confidence
    )
}

/// A small seeded generator (SplitMix64): the draw must not depend on a dependency's version.
#[derive(Debug, Clone)]
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..k` (k ≥ 1); the bias of the multiply-shift is below 2⁻⁴⁰ for k < 2²⁴.
    fn below(&mut self, k: usize) -> usize {
        ((u128::from(self.next()) * k as u128) >> 64) as usize
    }
}

/// The generator of one category: the seed and the category's name, so a category's draw does
/// not depend on which other categories exist.
fn category_rng(seed: u64, category: &str) -> SplitMix {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in category.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut r = SplitMix(seed ^ h);
    r.next();
    r
}

/// `k` of `0..n` drawn without replacement, in draw order (partial Fisher–Yates).
fn draw(rng: &mut SplitMix, n: usize, k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    let k = k.min(n);
    for i in 0..k {
        let j = i + rng.below(n - i);
        idx.swap(i, j);
    }
    idx.truncate(k);
    idx
}

fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        0.0
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}

fn ratio(c: f64, s: f64) -> Option<f64> {
    (s > 0.0).then(|| c / s)
}

/// A category's draw and its first step.
struct Drawn {
    name: String,
    /// Ladder row indices of the category.
    rows: Vec<usize>,
    /// Ladder row indices drawn, in draw order.
    sample: Vec<usize>,
    first: Option<(f64, String)>,
}

/// Plans `ds` as `opts` says.
pub fn plan(
    ds: &Dataset,
    opts: &QualityPlanOptions,
    progress: &dyn Progress,
) -> Result<QualityPlan, RunError> {
    opts.validate()?;
    let models = opts.models.clone().unwrap_or_else(|| ds.default_ladder());
    let ladder = Ladder::new(ds, &models)?;
    let top = ladder.top();
    let q = 1.0 - opts.confidence;

    // categories, in name order
    let any_category = ladder
        .rows
        .iter()
        .any(|r| ds.rows[r.row].category.is_some());
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (li, r) in ladder.rows.iter().enumerate() {
        let name = match &ds.rows[r.row].category {
            Some(c) => c.clone(),
            None if any_category => NONE.to_string(),
            None => ALL.to_string(),
        };
        groups.entry(name).or_default().push(li);
    }

    let scores = |sample: &[usize], tier: usize| -> Vec<f64> {
        sample.iter().map(|&i| ladder.rows[i].score[tier]).collect()
    };

    // the candidates, in test order: down from the strongest, each cheaper (blended list price)
    // than the last kept — a model that saves nothing is not worth a look
    let price = |k: usize| {
        ds.models
            .get(&ladder.models[k])
            .map_or(Decimal::ZERO, |p| p.input + p.output)
    };
    let mut sequence = Vec::new();
    let mut last = price(top);
    for k in (0..top).rev() {
        if price(k) < last {
            last = price(k);
            sequence.push(k);
        }
    }

    // bets sized for a Bonferroni-like level: where BH's first rejections happen
    let tune = q / groups.len().max(1) as f64;

    // draw, and test each category's first step
    progress.start("testing categories", groups.len() as u64 * 2);
    let mut drawn = Vec::with_capacity(groups.len());
    for (name, rows) in groups {
        let mut rng = category_rng(opts.seed, &name);
        let sample: Vec<usize> = draw(&mut rng, rows.len(), opts.samples)
            .into_iter()
            .map(|i| rows[i])
            .collect();
        let first = sequence.first().filter(|_| !sample.is_empty()).map(|&k| {
            let s = scores(&sample, top);
            let c = scores(&sample, k);
            let p = Pair {
                c: &c,
                s: &s,
                population: rows.len(),
                exact: sample.len() >= rows.len(),
                tune,
            };
            (p.p_at_least(opts.bar), ladder.models[k].clone())
        });
        drawn.push(Drawn {
            name,
            rows,
            sample,
            first,
        });
        progress.inc(1);
    }

    // BH over the first steps
    let firsts: Vec<f64> = drawn
        .iter()
        .filter_map(|d| d.first.as_ref().map(|f| f.0))
        .collect();
    let m = firsts.len();
    let selected = benjamini_hochberg(&firsts, q);
    let level = if m > 0 {
        q * selected as f64 / m as f64
    } else {
        0.0
    };

    // walk down the selected categories
    let mut categories = Vec::with_capacity(drawn.len());
    for d in &drawn {
        let s = scores(&d.sample, top);
        let s_mean = mean(&s);
        let exact = d.sample.len() >= d.rows.len();
        let mut candidates = Vec::new();
        let mut chosen = top;
        let mut chosen_bounds: (Option<f64>, f64, Option<f64>) = (Some(1.0), 1.0, Some(1.0));
        let first_p = d.first.as_ref().map_or(1.0, |f| f.0);
        let walk_level = if first_p <= level { level } else { 0.0 };
        for (step, &k) in sequence.iter().enumerate() {
            let c = scores(&d.sample, k);
            let p = Pair {
                c: &c,
                s: &s,
                population: d.rows.len(),
                exact,
                tune,
            };
            let p_value = if step == 0 {
                first_p
            } else {
                p.p_at_least(opts.bar)
            };
            let passed = walk_level > 0.0 && p_value <= walk_level;
            let (lower, upper) = p.bounds(q);
            let c_mean = mean(&c);
            let estimate = ratio(c_mean, s_mean);
            candidates.push(CandidateTest {
                model: ladder.models[k].clone(),
                mean: c_mean,
                estimate,
                lower,
                upper,
                p_value,
                passed,
            });
            if !passed {
                break;
            }
            chosen = k;
            chosen_bounds = (estimate, lower, upper);
        }
        let verdict = if d.sample.is_empty() {
            "no rows".to_string()
        } else if chosen < top {
            let stop = match candidates.last() {
                Some(last) if !last.passed => format!("; {} did not pass", last.model),
                _ => "; cheapest of the ladder".to_string(),
            };
            format!(
                "moved: ratio >= {} proven at level {:.3} (BH){}",
                opts.bar, level, stop
            )
        } else if let Some((_, model)) = &d.first {
            let bh = if selected == 0 {
                format!("BH selected none; the first needs p <= {:.4}", q / m as f64)
            } else {
                format!("above the BH level {level:.4}")
            };
            format!(
                "kept: {model} not proven (p {first_p:.4}, {bh}){}",
                if d.sample.len() < 20 && !exact {
                    ", few rows"
                } else {
                    ""
                }
            )
        } else {
            "kept: no cheaper model in the ladder".to_string()
        };
        // offline check over all the category's rows
        let all_c: f64 = d.rows.iter().map(|&i| ladder.rows[i].score[chosen]).sum();
        let all_s: f64 = d.rows.iter().map(|&i| ladder.rows[i].score[top]).sum();
        let realized_ratio = if chosen == top {
            Some(1.0)
        } else {
            ratio(all_c, all_s)
        };
        let miss = chosen < top && all_c < opts.bar * all_s - 1e-9;
        categories.push(CategoryPlan {
            category: d.name.clone(),
            model: ladder.models[chosen].clone(),
            tier: chosen,
            rows: d.rows.len(),
            sampled: d.sample.len(),
            estimate: chosen_bounds.0,
            lower: chosen_bounds.1,
            upper: chosen_bounds.2,
            strongest_mean: s_mean,
            p_value: first_p,
            verdict,
            candidates,
            realized_ratio,
            miss,
        });
        progress.inc(1);
    }
    progress.finish();

    // the plan on every row, against always-strongest
    let mut tier_of = vec![top; ladder.rows.len()];
    for (d, c) in drawn.iter().zip(&categories) {
        for &i in &d.rows {
            tier_of[i] = c.tier;
        }
    }
    let (mut q_plan, mut q_top) = (0.0f64, 0.0f64);
    let (mut c_plan, mut c_top) = (Decimal::ZERO, Decimal::ZERO);
    let mut moved_rows = 0;
    for (r, &t) in ladder.rows.iter().zip(&tier_of) {
        q_plan += r.score[t];
        q_top += r.score[top];
        c_plan += r.cost[t];
        c_top += r.cost[top];
        if t != top {
            moved_rows += 1;
        }
    }
    if c_plan < Decimal::ZERO || c_top < Decimal::ZERO {
        return Err(RunError::invalid(
            "a negative total cost: a bug, please report",
        ));
    }
    let n_rows = ladder.rows.len();
    let cost_ratio = if c_top > Decimal::ZERO {
        (c_plan / c_top).to_f64().unwrap_or(f64::NAN)
    } else {
        1.0
    };
    let realized = Realized {
        rows: n_rows,
        moved_rows,
        quality_ratio: if q_top > 0.0 { q_plan / q_top } else { 1.0 },
        cost_ratio,
        quality: q_plan / n_rows as f64,
        strongest_quality: q_top / n_rows as f64,
        cost_usd: c_plan,
        strongest_cost_usd: c_top,
    };

    let mut notes = Vec::new();
    let skipped_models: Vec<&str> = (0..top)
        .filter(|k| !sequence.contains(k))
        .map(|k| ladder.models[k].as_str())
        .collect();
    if !skipped_models.is_empty() {
        notes.push(format!(
            "not tested (list price not below the model tested before them): {}",
            skipped_models.join(", ")
        ));
    }
    if ladder.skipped > 0 {
        notes.push(format!(
            "{} rows skipped: no outcome for at least one ladder model",
            ladder.skipped
        ));
    }
    if !any_category {
        notes.push(format!("no row has a category: one category, {ALL}"));
    }
    let categories_moved = categories.iter().filter(|c| c.tier < top).count();
    let misses = categories.iter().filter(|c| c.miss).count();
    Ok(QualityPlan {
        data: ds.name.clone(),
        strongest: ladder.models[top].clone(),
        models,
        samples: opts.samples,
        bar: opts.bar,
        confidence: opts.confidence,
        seed: opts.seed,
        method: method_text(opts.confidence),
        categories_tested: m,
        categories_moved,
        misses,
        level,
        samples_used: drawn.iter().map(|d| d.sample.len()).sum(),
        skipped: ladder.skipped,
        categories,
        realized,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draw_is_a_permutation_prefix() {
        let mut r = SplitMix(7);
        let d = draw(&mut r, 10, 4);
        assert_eq!(d.len(), 4);
        let mut s = d.clone();
        s.sort_unstable();
        s.dedup();
        assert_eq!(s.len(), 4);
        assert!(d.iter().all(|&i| i < 10));
        assert_eq!(draw(&mut r, 3, 10).len(), 3);
    }
}
