//! Router metrics as published routers report them (RouteLLM): performance gap recovered (PGR)
//! against the share of calls to the strongest model, its area (APGR), the call share needed
//! for 50% / 80% of the gap (CPT), and the saving at 95% of the strongest model's quality.

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;

use crate::ladder::Point;

/// The reference points of a ladder: the cheapest and the strongest model alone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reference {
    pub weak_quality: f64,
    pub strong_quality: f64,
    pub weak_cost: Decimal,
    pub strong_cost: Decimal,
}

impl Reference {
    /// PGR of a quality; `None` when the strongest model is not better than the cheapest.
    pub fn pgr(&self, quality: f64) -> Option<f64> {
        let gap = self.strong_quality - self.weak_quality;
        (gap > 1e-12).then(|| (quality - self.weak_quality) / gap)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    /// Area under PGR vs strong-model call share, share from 0 to 1. `None` without a gap.
    pub apgr: Option<f64>,
    /// Smallest strong-model call share that recovers 50% of the gap (between two adjacent
    /// operating points, the mix of the two is used: linear interpolation).
    pub cpt50: Option<f64>,
    pub cpt80: Option<f64>,
    /// 1 − (cost of the cheapest point with quality ≥ 95% of the strongest's) / cost of the strongest.
    pub savings_at_95: Option<f64>,
    /// Index (in the points given) of the swept point at or just above the 95% bar (the
    /// saving itself interpolates towards the point before it).
    #[serde(skip)]
    pub savings_point: Option<usize>,
}

/// Metrics of a sweep whose strong share goes from 0 to 1 without decreasing.
pub fn metrics(points: &[Point], r: &Reference) -> Metrics {
    let pgr: Option<Vec<f64>> = points.iter().map(|p| r.pgr(p.quality)).collect();
    let (apgr, cpt50, cpt80) = match &pgr {
        Some(g) if !points.is_empty() => {
            let mut area = 0.0;
            for i in 1..points.len() {
                let dx = points[i].strong_share() - points[i - 1].strong_share();
                area += dx * (g[i] + g[i - 1]) / 2.0;
            }
            // smallest strong share reaching PGR x: on a point, or inside a segment between
            // two adjacent operating points (a random mix of their thresholds reaches it)
            let cpt = |x: f64| {
                let mut best: Option<f64> = None;
                let mut take = |s: f64| best = Some(best.map_or(s, |b: f64| b.min(s)));
                for i in 0..points.len() {
                    if g[i] >= x - 1e-12 {
                        take(points[i].strong_share());
                    }
                    if i + 1 < points.len() && g[i] < x && g[i + 1] >= x {
                        let (s0, s1) = (points[i].strong_share(), points[i + 1].strong_share());
                        take(s0 + (x - g[i]) / (g[i + 1] - g[i]) * (s1 - s0));
                    }
                }
                best
            };
            (Some(area), cpt(0.5), cpt(0.8))
        }
        _ => (None, None, None),
    };
    let (savings_at_95, savings_point) = savings(points, r);
    Metrics {
        apgr,
        cpt50,
        cpt80,
        savings_at_95,
        savings_point,
    }
}

fn savings(points: &[Point], r: &Reference) -> (Option<f64>, Option<usize>) {
    if r.strong_cost <= Decimal::ZERO {
        return (None, None);
    }
    let bar = 0.95 * r.strong_quality;
    // cheapest cost reaching the bar: on a point, or on the segment to the next point
    let mut best: Option<(Decimal, usize)> = None;
    let mut take = |c: Decimal, i: usize| {
        if best.is_none_or(|(b, _)| c < b) {
            best = Some((c, i));
        }
    };
    for i in 0..points.len() {
        let p = &points[i];
        if p.quality >= bar - 1e-12 {
            take(p.cost_usd, i);
        }
        if let Some(n) = points.get(i + 1)
            && p.quality < bar
            && n.quality >= bar
        {
            let f = (bar - p.quality) / (n.quality - p.quality);
            let fd = Decimal::from_f64_retain(f)
                .unwrap_or(Decimal::ONE)
                .round_dp(12);
            take(p.cost_usd + fd * (n.cost_usd - p.cost_usd), i + 1);
        }
    }
    match best {
        Some((c, i)) => ((Decimal::ONE - c / r.strong_cost).to_f64(), Some(i)),
        None => (None, None),
    }
}

/// Random routing between the cheapest and the strongest model with probability p (expected
/// values): quality and cost are linear in p.
pub fn random_metrics(r: &Reference) -> Metrics {
    let gap = r.strong_quality - r.weak_quality;
    let has_gap = gap > 1e-12;
    let savings_at_95 = if r.strong_cost > Decimal::ZERO {
        let p = if has_gap {
            ((0.95 * r.strong_quality - r.weak_quality) / gap).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let pd = Decimal::from_f64_retain(p).unwrap_or(Decimal::ONE);
        let cost = (Decimal::ONE - pd) * r.weak_cost + pd * r.strong_cost;
        (Decimal::ONE - cost / r.strong_cost).to_f64()
    } else {
        None
    };
    Metrics {
        apgr: has_gap.then_some(0.5),
        cpt50: has_gap.then_some(0.5),
        cpt80: has_gap.then_some(0.8),
        savings_at_95,
        savings_point: None,
    }
}

/// Points of the random router's expected curve at p = 0, 1/steps, …, 1.
pub fn random_curve(r: &Reference, tiers: usize, steps: usize) -> Vec<Point> {
    (0..=steps)
        .map(|i| {
            let p = i as f64 / steps as f64;
            let pd = Decimal::from_f64_retain(p).unwrap_or(Decimal::ZERO);
            let mut share = vec![0.0; tiers];
            share[0] = 1.0 - p;
            share[tiers - 1] += p;
            Point {
                point: p,
                quality: (1.0 - p) * r.weak_quality + p * r.strong_quality,
                cost_usd: ((Decimal::ONE - pd) * r.weak_cost + pd * r.strong_cost).round_dp(10),
                share,
            }
        })
        .collect()
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

    fn pt(share: f64, q: f64, c: i64) -> Point {
        Point {
            point: 0.0,
            quality: q,
            cost_usd: Decimal::new(c, 0),
            share: vec![1.0 - share, share],
        }
    }

    fn reference() -> Reference {
        Reference {
            weak_quality: 0.4,
            strong_quality: 0.8,
            weak_cost: Decimal::new(10, 0),
            strong_cost: Decimal::new(100, 0),
        }
    }

    #[test]
    fn random_line_has_apgr_half() {
        let r = reference();
        let pts = random_curve(&r, 2, 100);
        let m = metrics(&pts, &r);
        assert!((m.apgr.unwrap() - 0.5).abs() < 1e-9);
        assert!((m.cpt50.unwrap() - 0.5).abs() < 1e-9);
        assert!((m.cpt80.unwrap() - 0.8).abs() < 1e-9);
        let rm = random_metrics(&r);
        // 95% of 0.8 = 0.76 → p = 0.9 → cost 0.1*10 + 0.9*100 = 91 → savings 0.09
        assert!((rm.savings_at_95.unwrap() - 0.09).abs() < 1e-9);
        assert!((m.savings_at_95.unwrap() - 0.09).abs() < 1e-9);
    }

    #[test]
    fn perfect_step_router() {
        let r = reference();
        // recovers the whole gap at 20% strong share
        let pts = vec![pt(0.0, 0.4, 10), pt(0.2, 0.8, 28), pt(1.0, 0.8, 100)];
        let m = metrics(&pts, &r);
        // area: 0.2 * 0.5 + 0.8 * 1 = 0.9
        assert!((m.apgr.unwrap() - 0.9).abs() < 1e-9);
        // PGR 0.5 halfway to the 20% point: a 50/50 mix of the first two thresholds
        assert!((m.cpt50.unwrap() - 0.1).abs() < 1e-9);
        // bar 0.76 is 90% of the way from (0.4, 10) to (0.8, 28): cost 26.2
        assert!((m.savings_at_95.unwrap() - 0.738).abs() < 1e-9);
    }

    #[test]
    fn no_gap_gives_none() {
        let mut r = reference();
        r.strong_quality = 0.4;
        let m = metrics(&[pt(0.0, 0.4, 10), pt(1.0, 0.4, 100)], &r);
        assert_eq!(m.apgr, None);
        assert_eq!(m.cpt50, None);
    }
}
