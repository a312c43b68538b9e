//! Thresholds for a target: a strong-tier call share, a budget per 1,000 requests, or a quality
//! relative to always using the top tier. One threshold τ is shared by every tier below the top
//! (rule: the cheapest tier whose estimate is ≥ τ, else the top), found by a search over the
//! estimates of a calibration set.

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
    /// τ shared by all tiers below the top.
    pub threshold: f64,
    /// One per tier (the top tier's is unused and set equal).
    pub thresholds: Vec<f64>,
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

struct Eval {
    share: Vec<f64>,
    cost_per_1k: f64,
    quality: Option<f64>,
}

fn evaluate(rows: &[CalRow], tau: f64, k: usize) -> Eval {
    let th = vec![tau; k];
    let mut counts = vec![0usize; k];
    let (mut cost, mut q, mut have_q) = (0.0, 0.0, true);
    for r in rows {
        let t = route(&r.estimates, &th);
        counts[t] += 1;
        cost += r.cost.get(t).copied().unwrap_or(0.0);
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
    }
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
    // candidate thresholds: the distinct estimates below the top tier (at most ~2000 quantiles),
    // plus one above them all (everything goes to the top tier)
    let mut vals: Vec<f64> = rows
        .iter()
        .flat_map(|r| r.estimates[..k - 1].iter().copied())
        .filter(|v| v.is_finite())
        .collect();
    vals.sort_by(f64::total_cmp);
    vals.dedup();
    let max_c = 2000;
    let mut cands: Vec<f64> = if vals.len() > max_c {
        (0..max_c)
            .map(|i| vals[i * (vals.len() - 1) / (max_c - 1)])
            .collect()
    } else {
        vals.clone()
    };
    let above = vals.last().map_or(1.0, |v| v + 1e-6);
    cands.push(above);
    cands.dedup();
    let top_quality = rows
        .iter()
        .filter_map(|r| r.score.as_ref().and_then(|s| s.get(k - 1)))
        .sum::<f64>()
        / rows.len() as f64;
    let evals: Vec<(f64, Eval)> = cands.iter().map(|&t| (t, evaluate(rows, t, k))).collect();
    let ratio = |e: &Eval| {
        e.quality.map(|q| {
            if top_quality > 0.0 {
                q / top_quality
            } else {
                1.0
            }
        })
    };
    let pick = match target {
        // most quality (largest τ) within the share / budget
        Target::StrongShare(s) => evals
            .iter()
            .rev()
            .find(|(_, e)| e.share[k - 1] <= s + 1e-12),
        Target::BudgetUsdPer1k(b) => evals.iter().rev().find(|(_, e)| e.cost_per_1k <= b + 1e-12),
        // cheapest (smallest τ) at or above the quality
        Target::Quality(q) => evals
            .iter()
            .find(|(_, e)| ratio(e).is_some_and(|r| r >= q - 1e-12)),
    };
    let (met, (tau, e)) = match pick {
        Some(p) => (true, p),
        // unreachable target: the closest end
        None => match target {
            Target::Quality(_) => (false, evals.last().ok_or(CalibrateError::Empty)?),
            _ => (false, evals.first().ok_or(CalibrateError::Empty)?),
        },
    };
    Ok(Calibration {
        target,
        threshold: *tau,
        thresholds: vec![*tau; k],
        rows: rows.len(),
        share: e.share.clone(),
        cost_usd_per_1k: e.cost_per_1k,
        quality_ratio: ratio(e),
        met,
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
}
