//! A ladder of models over a data set: per row and tier, the recorded cost (Decimal USD) and
//! score. Policies put each row on a tier (or, for a cascade, charge several attempts); a
//! [`Tally`] keeps the running totals so a whole sweep of operating points is one pass.

use rust_decimal::Decimal;
use serde::Serialize;

use crate::data::{DataError, Dataset};

const PER_MILLION: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

/// One evaluated row: cost and score on each tier, cheapest tier first.
#[derive(Debug, Clone, PartialEq)]
pub struct LadderRow {
    /// Index of the row in [`Dataset::rows`].
    pub row: usize,
    pub cost: Vec<Decimal>,
    pub score: Vec<f64>,
}

#[derive(Debug, Clone)]
pub struct Ladder {
    /// Model names, cheapest first; the last is "the strongest".
    pub models: Vec<String>,
    pub rows: Vec<LadderRow>,
    /// Rows left out because they lack an outcome for a ladder model.
    pub skipped: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum LadderError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("the ladder needs at least two models (got {0})")]
    TooShort(usize),
    #[error("model {0:?} appears twice in the ladder")]
    Duplicate(String),
    #[error("no row has outcomes for every ladder model ({0} rows skipped)")]
    NoRows(usize),
}

impl Ladder {
    /// Builds the ladder `models` (cheapest first) over `ds`. Cost of a row on a model =
    /// input tokens × input price + recorded output tokens × output price.
    pub fn new(ds: &Dataset, models: &[String]) -> Result<Ladder, LadderError> {
        if models.len() < 2 {
            return Err(LadderError::TooShort(models.len()));
        }
        for (i, m) in models.iter().enumerate() {
            if models[..i].contains(m) {
                return Err(LadderError::Duplicate(m.clone()));
            }
        }
        ds.check_ladder(models)?;
        let prices: Vec<_> = models.iter().filter_map(|m| ds.models.get(m)).collect();
        let mut rows = Vec::with_capacity(ds.rows.len());
        let mut skipped = 0;
        'rows: for (ri, r) in ds.rows.iter().enumerate() {
            let mut cost = Vec::with_capacity(models.len());
            let mut score = Vec::with_capacity(models.len());
            for (m, p) in models.iter().zip(&prices) {
                let Some(o) = r.outcomes.get(m) else {
                    skipped += 1;
                    continue 'rows;
                };
                let c = (Decimal::from(r.input_tokens) * p.input
                    + Decimal::from(o.output_tokens) * p.output)
                    / PER_MILLION;
                cost.push(c);
                score.push(o.score);
            }
            rows.push(LadderRow {
                row: ri,
                cost,
                score,
            });
        }
        if rows.is_empty() {
            return Err(LadderError::NoRows(skipped));
        }
        Ok(Ladder {
            models: models.to_vec(),
            rows,
            skipped,
        })
    }

    pub fn tiers(&self) -> usize {
        self.models.len()
    }

    pub fn top(&self) -> usize {
        self.models.len() - 1
    }

    /// Quality and total cost of sending every row to tier `k`.
    pub fn alone(&self, k: usize) -> (f64, Decimal) {
        let mut t = Tally::new(self.tiers());
        for r in &self.rows {
            t.add(k, r.cost[k], r.score[k]);
        }
        (t.quality(), t.cost)
    }
}

/// Running totals of one operating point.
#[derive(Debug, Clone, PartialEq)]
pub struct Tally {
    pub n: usize,
    /// Rows whose final answer came from each tier.
    pub counts: Vec<usize>,
    pub cost: Decimal,
    pub score: f64,
}

impl Tally {
    pub fn new(tiers: usize) -> Tally {
        Tally {
            n: 0,
            counts: vec![0; tiers],
            cost: Decimal::ZERO,
            score: 0.0,
        }
    }

    /// Adds a row answered by `tier` at `cost` (all attempts) with `score`.
    pub fn add(&mut self, tier: usize, cost: Decimal, score: f64) {
        self.n += 1;
        self.counts[tier] += 1;
        self.cost += cost;
        self.score += score;
    }

    pub fn remove(&mut self, tier: usize, cost: Decimal, score: f64) {
        self.n -= 1;
        self.counts[tier] -= 1;
        self.cost -= cost;
        self.score -= score;
    }

    pub fn quality(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.score / self.n as f64
        }
    }

    pub fn point(&self, param: f64) -> Point {
        let n = self.n.max(1) as f64;
        Point {
            point: param,
            quality: self.quality(),
            cost_usd: self.cost,
            share: self.counts.iter().map(|&c| c as f64 / n).collect(),
        }
    }
}

/// One operating point of a policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// The policy's parameter (for a threshold router: the threshold).
    pub point: f64,
    /// Mean score.
    pub quality: f64,
    /// Total cost over the evaluated rows.
    #[serde(with = "rust_decimal::serde::str")]
    pub cost_usd: Decimal,
    /// Share of rows answered by each tier, cheapest first.
    pub share: Vec<f64>,
}

impl Point {
    /// Share of rows answered by the strongest (last) tier.
    pub fn strong_share(&self) -> f64 {
        self.share.last().copied().unwrap_or(0.0)
    }
}

/// The decision rule of the learned router: the cheapest tier whose estimate clears
/// `threshold` (strictly above), else the top tier.
pub fn route_strict(estimates: &[f64], threshold: f64) -> usize {
    let top = estimates.len().saturating_sub(1);
    estimates[..top]
        .iter()
        .position(|&e| e > threshold)
        .unwrap_or(top)
}

/// Sweeps one threshold τ over per-row, per-tier estimates (rule: cheapest tier whose estimate
/// is above τ, else the top). Returns every distinct operating point, from "all rows on the cheapest
/// tier" to "all on the top tier"; the strong share never decreases along it.
pub fn sweep(ladder: &Ladder, estimates: &[Vec<f64>]) -> Vec<Point> {
    let k = ladder.tiers();
    // Row r reaches tier ≥ j once τ ≥ max(e_0..e_{j-1}) (=: m_j), m_j non-decreasing in j.
    let mut events: Vec<(f64, u32, u32)> = Vec::with_capacity(ladder.rows.len() * (k - 1));
    for (ri, e) in estimates.iter().enumerate() {
        let mut m = f64::NEG_INFINITY;
        for (j, &ej) in e.iter().enumerate().take(k - 1) {
            let ej = if ej.is_nan() { f64::NEG_INFINITY } else { ej };
            m = m.max(ej);
            events.push((m, ri as u32, (j + 1) as u32));
        }
    }
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.2.cmp(&b.2)));
    let mut cur = vec![0usize; ladder.rows.len()];
    let mut t = Tally::new(k);
    for r in &ladder.rows {
        t.add(0, r.cost[0], r.score[0]);
    }
    let start = events
        .first()
        .map(|e| e.0)
        .filter(|v| v.is_finite())
        .unwrap_or(0.0);
    let mut points = vec![t.point(start - 1e-9)];
    let mut i = 0;
    while i < events.len() {
        let m = events[i].0;
        while i < events.len() && events[i].0 == m {
            let (_, r, j) = events[i];
            let (r, j) = (r as usize, j as usize);
            if j > cur[r] {
                let row = &ladder.rows[r];
                t.remove(cur[r], row.cost[cur[r]], row.score[cur[r]]);
                t.add(j, row.cost[j], row.score[j]);
                cur[r] = j;
            }
            i += 1;
        }
        points.push(t.point(if m.is_finite() { m } else { start - 1e-9 }));
    }
    points
}

/// Estimates of the oracle: `score_k − best score of the row` (0 where a tier is best). Swept
/// like any router, it first moves up the rows that lose most on cheap tiers; its point just
/// below τ = 0 is "cheapest tier with the best score, per row".
pub fn oracle_estimates(ladder: &Ladder) -> Vec<Vec<f64>> {
    ladder
        .rows
        .iter()
        .map(|r| {
            let best = r.score.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            r.score.iter().map(|s| s - best).collect()
        })
        .collect()
}

/// The oracle's point: every row on the cheapest tier that gets the row's best score.
pub fn oracle_point(ladder: &Ladder) -> Point {
    let mut t = Tally::new(ladder.tiers());
    for r in &ladder.rows {
        let best = r.score.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let k = r.score.iter().position(|&s| s >= best).unwrap_or(0);
        t.add(k, r.cost[k], r.score[k]);
    }
    t.point(0.0)
}

/// Keeps at most `max` points, evenly spread along the sweep, always with both ends and the
/// points in `keep`.
pub fn downsample(points: &[Point], max: usize, keep: &[usize]) -> Vec<Point> {
    if points.len() <= max || max < 2 {
        return points.to_vec();
    }
    let mut idx: Vec<usize> = (0..max)
        .map(|i| i * (points.len() - 1) / (max - 1))
        .collect();
    idx.extend(keep.iter().copied().filter(|&i| i < points.len()));
    idx.sort_unstable();
    idx.dedup();
    idx.into_iter().map(|i| points[i].clone()).collect()
}
