//! Thresholds for a target: a strong-tier call share, a budget per 1,000 requests, or a quality
//! relative to always using the top tier. Rule: the cheapest tier whose estimate is ≥ its own
//! threshold τ_k, else the top.
//!
//! Search: first one τ shared by every tier below the top (a scan over the estimates of the
//! calibration set), then per-tier thresholds by coordinate descent from it on a Lagrangian
//! (quality − λ·share, quality − λ·cost, or −cost + λ·quality) for a sweep of λ — each τ_k in
//! turn scanned over quantiles of tier k's estimates with the others fixed. The best point
//! evaluated that meets the target wins (most quality within a share or a budget; least cost at
//! a quality). Quality is the recorded score when every row has one, else the router's own
//! estimate of the chosen tier (the expected share of the top tier's quality kept). The per-tier
//! result is never worse on the calibration set than the shared one; on a 2-tier ladder they
//! are the same.

use serde::Serialize;

/// What to calibrate for.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// Share of requests sent to the top tier (at most this).
    StrongShare(f64),
    /// Mean cost per 1,000 requests, USD (at most this).
    #[serde(rename = "budget-usd-per-1k")]
    BudgetUsdPer1k(f64),
    /// Quality as a fraction of always-top quality (at least this), e.g. 0.95.
    Quality(f64),
}

impl Target {
    /// `strong-share=0.3`, `budget-usd-per-1k=2.5`, `quality=0.95`.
    pub fn parse(s: &str) -> Result<Target, String> {
        let (k, v) = s.split_once('=').ok_or_else(|| {
            format!("target {s:?}: expected strong-share=X, budget-usd-per-1k=X or quality=X")
        })?;
        let x: f64 = v
            .trim()
            .parse()
            .map_err(|_| format!("target {s:?}: {v:?} is not a number"))?;
        if !x.is_finite() || x < 0.0 {
            return Err(format!("target {s:?}: must be a non-negative number"));
        }
        match k.trim() {
            "strong-share" if x <= 1.0 => Ok(Target::StrongShare(x)),
            "quality" if x <= 1.0 => Ok(Target::Quality(x)),
            "budget-usd-per-1k" => Ok(Target::BudgetUsdPer1k(x)),
            "strong-share" | "quality" => Err(format!("target {s:?}: must be between 0 and 1")),
            other => Err(format!(
                "target {other:?}: expected strong-share, budget-usd-per-1k or quality"
            )),
        }
    }

    /// Whether the target needs recorded quality (scores) per tier.
    pub fn needs_scores(&self) -> bool {
        matches!(self, Target::Quality(_))
    }
}

/// One calibration query.
#[derive(Debug, Clone, PartialEq)]
pub struct CalRow {
    /// Router estimates per tier, cheapest first.
    pub estimates: Vec<f64>,
    /// Expected cost of the request on each tier, USD.
    pub cost: Vec<f64>,
    /// Recorded quality per tier, where known.
    pub score: Option<Vec<f64>>,
}

/// The thresholds found and what they achieve on the calibration set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibration {
    pub target: Target,
    /// The best τ shared by all tiers below the top (the start of the per-tier search).
    pub threshold: f64,
    /// One per tier, fitted per tier (the top tier's is unused and set to the shared τ).
    pub thresholds: Vec<f64>,
    /// Mean quality per row with the shared τ and with the per-tier thresholds (recorded
    /// scores, else the router's estimates), and the cost per 1k requests with the shared τ.
    pub shared_quality: f64,
    pub per_tier_quality: f64,
    pub shared_cost_usd_per_1k: f64,
    pub rows: usize,
    /// Share of rows per tier at these thresholds.
    pub share: Vec<f64>,
    pub cost_usd_per_1k: f64,
    /// Mean quality / always-top mean quality, when scores are known.
    pub quality_ratio: Option<f64>,
    /// Whether the target could be met exactly (else the closest point is returned).
    pub met: bool,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CalibrateError {
    #[error("no calibration rows")]
    Empty,
    #[error("rows have different numbers of tiers")]
    Ragged,
    #[error("target quality needs recorded scores for every row")]
    NoScores,
}

/// The decision rule: the cheapest tier whose estimate is ≥ its threshold, else the top.
pub fn route(estimates: &[f64], thresholds: &[f64]) -> usize {
    let top = estimates.len().saturating_sub(1);
    (0..top)
        .find(|&i| estimates[i] >= thresholds.get(i).copied().unwrap_or(f64::INFINITY))
        .unwrap_or(top)
}

#[derive(Debug, Clone)]
struct Eval {
    share: Vec<f64>,
    cost_per_1k: f64,
    /// Mean recorded score, when every row has scores.
    quality: Option<f64>,
    /// Mean recorded score, else mean estimate of the chosen tier.
    objective: f64,
}

fn evaluate(rows: &[CalRow], th: &[f64], k: usize) -> Eval {
    let mut counts = vec![0usize; k];
    let (mut cost, mut q, mut est, mut have_q) = (0.0, 0.0, 0.0, true);
    for r in rows {
        let t = route(&r.estimates, th);
        counts[t] += 1;
        cost += r.cost.get(t).copied().unwrap_or(0.0);
        est += r.estimates.get(t).copied().unwrap_or(0.0);
        match &r.score {
            Some(s) => q += s.get(t).copied().unwrap_or(0.0),
            None => have_q = false,
        }
    }
    let n = rows.len() as f64;
    Eval {
        share: counts.iter().map(|&c| c as f64 / n).collect(),
        cost_per_1k: cost / n * 1000.0,
        quality: have_q.then_some(q / n),
        objective: if have_q { q / n } else { est / n },
    }
}

/// Up to `max` candidate thresholds from `vals` (quantiles), plus one above them all.
fn candidates(mut vals: Vec<f64>, max: usize) -> Vec<f64> {
    vals.retain(|v| v.is_finite());
    vals.sort_by(f64::total_cmp);
    vals.dedup();
    let mut c: Vec<f64> = if vals.len() > max {
        (0..max)
            .map(|i| vals[i * (vals.len() - 1) / (max - 1)])
            .collect()
    } else {
        vals.clone()
    };
    c.push(vals.last().map_or(1.0, |v| v + 1e-6));
    c.dedup();
    c
}

/// Finds τ for `target` over `rows`. Higher τ sends more rows up the ladder.
pub fn calibrate(rows: &[CalRow], target: Target) -> Result<Calibration, CalibrateError> {
    let k = rows
        .first()
        .map(|r| r.estimates.len())
        .ok_or(CalibrateError::Empty)?;
    if k == 0
        || rows
            .iter()
            .any(|r| r.estimates.len() != k || r.cost.len() != k)
    {
        return Err(CalibrateError::Ragged);
    }
    if target.needs_scores()
        && rows
            .iter()
            .any(|r| r.score.as_ref().is_none_or(|s| s.len() != k))
    {
        return Err(CalibrateError::NoScores);
    }
    // shared τ: the distinct estimates below the top tier (at most ~2000 quantiles), plus one
    // above them all (everything goes to the top tier)
    let cands = candidates(
        rows.iter()
            .flat_map(|r| r.estimates[..k - 1].iter().copied())
            .collect(),
        2000,
    );
    let top_quality = rows
        .iter()
        .filter_map(|r| r.score.as_ref().and_then(|s| s.get(k - 1)))
        .sum::<f64>()
        / rows.len() as f64;
    let ratio = |e: &Eval| {
        e.quality.map(|q| {
            if top_quality > 0.0 {
                q / top_quality
            } else {
                1.0
            }
        })
    };
    let feasible = |e: &Eval| match target {
        Target::StrongShare(s) => e.share[k - 1] <= s + 1e-12,
        Target::BudgetUsdPer1k(b) => e.cost_per_1k <= b + 1e-12,
        Target::Quality(q) => ratio(e).is_some_and(|r| r >= q - 1e-12),
    };
    // a feasible point better than `b`: more quality (share/budget) or less cost (quality)
    let better = |a: &Eval, b: &Eval| match target {
        Target::Quality(_) => a.cost_per_1k < b.cost_per_1k - 1e-12,
        _ => a.objective > b.objective + 1e-12,
    };
    let evals: Vec<(f64, Eval)> = cands
        .iter()
        .map(|&t| (t, evaluate(rows, &vec![t; k], k)))
        .collect();
    let pick = match target {
        // most quality (largest τ) within the share / budget
        Target::StrongShare(_) | Target::BudgetUsdPer1k(_) => {
            evals.iter().rev().find(|(_, e)| feasible(e))
        }
        // cheapest (smallest τ) at or above the quality
        Target::Quality(_) => evals.iter().find(|(_, e)| feasible(e)),
    };
    let (met, (tau, shared)) = match pick {
        Some(p) => (true, p.clone()),
        // unreachable target: the closest end
        None => match target {
            Target::Quality(_) => (false, evals.last().ok_or(CalibrateError::Empty)?.clone()),
            _ => (false, evals.first().ok_or(CalibrateError::Empty)?.clone()),
        },
    };
    // per-tier thresholds (only when the shared τ meets the target): coordinate descent on the
    // Lagrangian value − λ·resource for a sweep of λ, starting from the shared τ; the best
    // feasible point evaluated on the way wins (a descent on the constrained problem alone
    // stalls on the constraint's boundary)
    let mut th = vec![tau; k];
    let mut best = shared.clone();
    if met && k > 2 {
        let per_tier: Vec<Vec<f64>> = (0..k - 1)
            .map(|i| candidates(rows.iter().map(|r| r.estimates[i]).collect(), 120))
            .collect();
        // value to maximize and resource to spend, per target
        let vr = |e: &Eval| -> (f64, f64) {
            match target {
                Target::StrongShare(_) => (e.objective, e.share[k - 1]),
                Target::BudgetUsdPer1k(_) => (e.objective, e.cost_per_1k),
                Target::Quality(_) => (-e.cost_per_1k, -e.objective),
            }
        };
        let all_top = evaluate(rows, &vec![f64::INFINITY; k], k);
        let all_cheap = evaluate(rows, &vec![f64::NEG_INFINITY; k], k);
        let (v1, r1) = vr(&all_top);
        let (v0, r0) = vr(&all_cheap);
        let scale = ((v1 - v0) / (r1 - r0)).abs();
        let scale = if scale.is_finite() && scale > 0.0 {
            scale
        } else {
            1.0
        };
        for step in 0..25 {
            let lambda = scale * 10f64.powf(-2.0 + 4.0 * f64::from(step) / 24.0);
            let lag = |e: &Eval| {
                let (v, r) = vr(e);
                v - lambda * r
            };
            let mut t = vec![tau; k];
            let mut cur = evaluate(rows, &t, k);
            for _round in 0..3 {
                let mut moved = false;
                for i in 0..k - 1 {
                    for &c in &per_tier[i] {
                        let old = t[i];
                        t[i] = c;
                        let e = evaluate(rows, &t, k);
                        if feasible(&e) && better(&e, &best) {
                            th = t.clone();
                            best = e.clone();
                        }
                        if lag(&e) > lag(&cur) + 1e-12 {
                            cur = e;
                            moved = true;
                        } else {
                            t[i] = old;
                        }
                    }
                }
                if !moved {
                    break;
                }
            }
        }
    }
    Ok(Calibration {
        target,
        threshold: tau,
        thresholds: th,
        rows: rows.len(),
        share: best.share.clone(),
        cost_usd_per_1k: best.cost_per_1k,
        quality_ratio: ratio(&best),
        met,
        shared_quality: shared.objective,
        per_tier_quality: best.objective,
        shared_cost_usd_per_1k: shared.cost_per_1k,
    })
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

    fn rows() -> Vec<CalRow> {
        // estimate of the cheap tier falls with i; the cheap tier is right when i < 50
        (0..100)
            .map(|i| CalRow {
                estimates: vec![1.0 - i as f64 / 100.0, 1.0],
                cost: vec![0.001, 0.01],
                score: Some(vec![if i < 50 { 1.0 } else { 0.0 }, 1.0]),
            })
            .collect()
    }

    #[test]
    fn parse_targets() {
        assert_eq!(
            Target::parse("strong-share=0.3"),
            Ok(Target::StrongShare(0.3))
        );
        assert_eq!(Target::parse("quality=0.95"), Ok(Target::Quality(0.95)));
        assert_eq!(
            Target::parse("budget-usd-per-1k=2.5"),
            Ok(Target::BudgetUsdPer1k(2.5))
        );
        assert!(Target::parse("quality=2").is_err());
        assert!(Target::parse("speed=1").is_err());
        assert!(Target::parse("quality").is_err());
    }

    #[test]
    fn strong_share_is_respected() {
        let c = calibrate(&rows(), Target::StrongShare(0.3)).unwrap();
        assert!(c.met);
        assert!((c.share[1] - 0.3).abs() < 0.011, "{:?}", c.share);
        // the rule with these thresholds gives the same share
        let n = rows()
            .iter()
            .filter(|r| route(&r.estimates, &c.thresholds) == 1)
            .count();
        assert_eq!(n as f64 / 100.0, c.share[1]);
    }

    #[test]
    fn quality_and_budget() {
        let c = calibrate(&rows(), Target::Quality(0.95)).unwrap();
        assert!(c.quality_ratio.unwrap() >= 0.95);
        assert!((c.share[1] - 0.45).abs() < 0.011, "{:?}", c.share);
        let b = calibrate(&rows(), Target::BudgetUsdPer1k(5.5)).unwrap();
        assert!(b.cost_usd_per_1k <= 5.5 + 1e-9);
        assert!(b.cost_usd_per_1k > 5.0);
        assert!(calibrate(&[], Target::Quality(0.9)).is_err());
    }

    #[test]
    fn per_tier_thresholds_beat_a_shared_one() {
        // tier 0 is right for i < 30, tier 1 for i < 70; their estimates are on different scales
        let rows: Vec<CalRow> = (0..100)
            .map(|i| {
                let x = i as f64;
                CalRow {
                    estimates: vec![1.0 - x / 100.0, 0.5 - x / 200.0, 1.0],
                    cost: vec![1.0, 2.0, 10.0],
                    score: Some(vec![
                        f64::from(u8::from(i < 30)),
                        f64::from(u8::from(i < 70)),
                        1.0,
                    ]),
                }
            })
            .collect();
        let c = calibrate(&rows, Target::Quality(1.0)).unwrap();
        assert!(c.met);
        assert!(c.quality_ratio.unwrap() >= 1.0 - 1e-12);
        assert!(
            c.cost_usd_per_1k < c.shared_cost_usd_per_1k * 0.6,
            "{} vs {}",
            c.cost_usd_per_1k,
            c.shared_cost_usd_per_1k
        );
        assert!((c.share[1] - 0.4).abs() < 1e-9, "{:?}", c.share);
        // the rule with the written thresholds reproduces the reported shares
        let to_mid = rows
            .iter()
            .filter(|r| route(&r.estimates, &c.thresholds) == 1)
            .count();
        assert_eq!(to_mid, 40);
        // strong share: no more than 30% to the top, most quality
        let s = calibrate(&rows, Target::StrongShare(0.3)).unwrap();
        assert!(s.share[2] <= 0.3 + 1e-12);
        assert!(s.per_tier_quality >= s.shared_quality);
    }
}
