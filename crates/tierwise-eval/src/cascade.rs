//! Offline cascade evaluation: walk the ladder per row with each model's recorded `response`,
//! score the answer, accept or move up. Cost counts every attempt made (input tokens + recorded
//! output tokens of each), quality is the accepted answer's score.
//!
//! - [`CascadeSet`]: the ladder rows that have a response for every tier below the top (the
//!   top's answer is never judged), each answer analysed once; rows lacking one are counted.
//! - [`sweep_paths`]: one acceptance threshold τ swept over per-row attempt paths (the full
//!   ladder, or the tiers the router did not skip); a row reaches the strongest model iff every
//!   attempt below it scored ≤ τ, so the strong share never decreases along the sweep.
//! - [`optimise`]: FrugalGPT-style per-tier thresholds under a quality target or a budget
//!   (grid over score quantiles), with a cross-fitted (out-of-fold) check.
//! - [`training_examples`] / [`fit_scorer`]: the scorer's training set from data with responses —
//!   every ordered sub-ladder (≤ 3 models) of the response models gives one example per answer.

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;
use tierwise_router::cascade::features::{N_FEATURES, features};
use tierwise_router::cascade::model::{FORMAT, FORMAT_VERSION, ScorerFile, TrainedOn};
use tierwise_router::cascade::{Analysed, Answer, Query, Scorer, analyse};
use tierwise_train::scorer::{FitError, FitOptions, fit};

use crate::data::{Dataset, fingerprint};
use crate::ladder::{Ladder, Point, Tally};
use crate::learn::{fold_of, par_map};
use crate::metrics::{Metrics, Reference, metrics};

/// The scorer of each ladder row: one for all, or (cross-validation) one per fold.
#[derive(Debug, Clone)]
pub struct Scorers {
    pub list: Vec<Scorer>,
    /// Index into `list` per ladder row.
    pub of_row: Vec<usize>,
}

impl Scorers {
    pub fn one(scorer: Scorer, rows: usize) -> Scorers {
        Scorers {
            list: vec![scorer],
            of_row: vec![0; rows],
        }
    }

    pub fn get(&self, row: usize) -> &Scorer {
        &self.list[self
            .of_row
            .get(row)
            .copied()
            .unwrap_or(0)
            .min(self.list.len() - 1)]
    }
}

/// Ladder rows with their analysed answers.
#[derive(Debug, Clone)]
pub struct CascadeSet {
    /// Rows with every outcome and a response for every tier below the top.
    pub ladder: Ladder,
    /// Rows left out for lack of a response (beyond `ladder.skipped`, which lack an outcome).
    pub skipped_no_response: usize,
    pub queries: Vec<Query>,
    /// Per row, per tier below the top: the analysed answer.
    pub answers: Vec<Vec<Analysed>>,
}

#[derive(Debug, thiserror::Error)]
pub enum CascadeError {
    #[error(transparent)]
    Ladder(#[from] crate::ladder::LadderError),
    #[error(
        "no row has a recorded response for every ladder model below the top ({0} rows without one); `--cascade` needs responses"
    )]
    NoResponses(usize),
    #[error("scorer training: {0}")]
    Fit(#[from] FitError),
    #[error("no model in {0} has recorded responses")]
    NoResponseModels(String),
}

impl CascadeSet {
    pub fn new(ds: &Dataset, models: &[String]) -> Result<CascadeSet, CascadeError> {
        let full = Ladder::new(ds, models)?;
        let below = models.len() - 1;
        let keep: Vec<_> = full
            .rows
            .iter()
            .filter(|r| {
                models[..below].iter().all(|m| {
                    ds.rows[r.row]
                        .outcomes
                        .get(m)
                        .is_some_and(|o| o.response.is_some())
                })
            })
            .cloned()
            .collect();
        let skipped_no_response = full.rows.len() - keep.len();
        if keep.is_empty() {
            return Err(CascadeError::NoResponses(skipped_no_response));
        }
        let analysed: Vec<(Query, Vec<Analysed>)> = par_map(&keep, |r| {
            let row = &ds.rows[r.row];
            let q = Query::from_view(&row.view);
            let a = models[..below]
                .iter()
                .map(|m| {
                    let text = row
                        .outcomes
                        .get(m)
                        .and_then(|o| o.response.as_deref())
                        .unwrap_or("");
                    analyse(&q, &Answer::from_text(text))
                })
                .collect();
            (q, a)
        });
        let (queries, answers) = analysed.into_iter().unzip();
        let ladder = Ladder {
            models: models.to_vec(),
            rows: keep,
            skipped: full.skipped,
        };
        Ok(CascadeSet {
            ladder,
            skipped_no_response,
            queries,
            answers,
        })
    }

    /// Scores of the attempts along `path` (tiers, ascending; the last is not scored) for row `i`.
    pub fn path_scores(&self, scorer: &Scorer, i: usize, path: &[usize]) -> Vec<f64> {
        let mut out = Vec::with_capacity(path.len().saturating_sub(1));
        for k in 0..path.len().saturating_sub(1) {
            let prev: Vec<&Analysed> = path[..k].iter().map(|&t| &self.answers[i][t]).collect();
            out.push(
                scorer
                    .score(&self.queries[i], &self.answers[i][path[k]], &prev)
                    .p,
            );
        }
        out
    }

    /// Per row, the scores of the full ladder walk (every tier below the top).
    pub fn full_scores(&self, scorers: &Scorers) -> Vec<Vec<f64>> {
        let path: Vec<usize> = (0..self.ladder.tiers()).collect();
        let idx: Vec<usize> = (0..self.ladder.rows.len()).collect();
        par_map(&idx, |&i| self.path_scores(scorers.get(i), i, &path))
    }

    /// Attempt paths for a row set: `path[i]` the tiers tried (ascending, ending at the top) and
    /// `scores[i]` the scores of all but the last.
    pub fn paths(&self, tiers: &[Vec<usize>], scores: &[Vec<f64>]) -> Vec<PathRow> {
        self.ladder
            .rows
            .iter()
            .zip(tiers.iter().zip(scores))
            .map(|(r, (path, ps))| {
                let mut cum = Decimal::ZERO;
                let steps = path
                    .iter()
                    .enumerate()
                    .map(|(k, &t)| {
                        cum += r.cost[t];
                        Step {
                            tier: t,
                            cost: cum,
                            score: r.score[t],
                            p: ps.get(k).copied().unwrap_or(f64::INFINITY),
                        }
                    })
                    .collect();
                PathRow { steps }
            })
            .collect()
    }
}

/// One attempt on a row's path: its tier, the cost of all attempts so far, the answer's score
/// (quality), and the scorer's P (∞ for the last attempt: always kept).
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub tier: usize,
    pub cost: Decimal,
    pub score: f64,
    pub p: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PathRow {
    pub steps: Vec<Step>,
}

impl PathRow {
    /// The step that answers under threshold τ: the first with p > τ.
    pub fn answer(&self, tau: f64) -> &Step {
        let last = self.steps.len() - 1;
        &self.steps[self
            .steps
            .iter()
            .position(|s| s.p > tau)
            .unwrap_or(last)
            .min(last)]
    }
}

/// Sweeps one threshold τ ≥ 0 (accept an attempt iff p > τ) over `rows`; every distinct
/// operating point, from τ = 0 (the first non-gated answer) to "every row to its last attempt".
pub fn sweep_paths(tiers: usize, rows: &[PathRow]) -> Vec<Point> {
    // row r moves past step i once τ ≥ max(p_0..p_i)
    let mut events: Vec<(f64, u32)> = Vec::new();
    for (r, row) in rows.iter().enumerate() {
        let mut m = 0.0f64;
        for s in &row.steps[..row.steps.len() - 1] {
            m = m.max(if s.p.is_nan() { 0.0 } else { s.p });
            events.push((m, r as u32));
        }
    }
    events.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut at = vec![0usize; rows.len()];
    let mut t = Tally::new(tiers);
    for row in rows {
        let s = &row.steps[0];
        t.add(s.tier, s.cost, s.score);
    }
    let mut advance = |r: usize, t: &mut Tally| {
        let row = &rows[r];
        let (a, b) = (&row.steps[at[r]], &row.steps[at[r] + 1]);
        t.remove(a.tier, a.cost, a.score);
        t.add(b.tier, b.cost, b.score);
        at[r] += 1;
    };
    let mut i = 0;
    while i < events.len() && events[i].0 <= 0.0 {
        advance(events[i].1 as usize, &mut t);
        i += 1;
    }
    let mut points = vec![t.point(0.0)];
    while i < events.len() {
        let m = events[i].0;
        while i < events.len() && events[i].0 == m {
            advance(events[i].1 as usize, &mut t);
            i += 1;
        }
        points.push(t.point(m));
    }
    points
}

/// The point of fixed thresholds per step of each row's path (`thresholds[i]` for the i-th
/// attempt; the last attempt is always kept).
pub fn point_at(tiers: usize, rows: &[PathRow], thresholds: &[f64]) -> Point {
    let mut t = Tally::new(tiers);
    for row in rows {
        let s = row.at(thresholds);
        t.add(s.tier, s.cost, s.score);
    }
    t.point(f64::NAN)
}

impl PathRow {
    /// The step that answers under per-step thresholds.
    pub fn at(&self, thresholds: &[f64]) -> &Step {
        let last = self.steps.len() - 1;
        let i = (0..last)
            .find(|&i| self.steps[i].p > thresholds.get(i).copied().unwrap_or(1.0))
            .unwrap_or(last);
        &self.steps[i]
    }
}

/// A threshold-optimisation objective.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Objective {
    /// Cheapest policy with quality ≥ this fraction of the strongest model's.
    Quality(f64),
    /// Best quality with total cost ≤ this fraction of always-strongest.
    Budget(f64),
}

impl Objective {
    pub fn label(&self) -> String {
        match self {
            Objective::Quality(q) => format!("quality ≥ {:.0}% of strongest", q * 100.0),
            Objective::Budget(b) => format!("cost ≤ {:.0}% of strongest", b * 100.0),
        }
    }
}

/// Grid levels per attempted tier of [`optimise`] (score quantiles plus accept-all / reject-all).
pub const GRID: usize = 24;

/// Every sub-ladder the cascade may walk: each subset of the tiers below the top (the tiers it
/// calls), then the top; with each row's path under it. FrugalGPT searches these too: a tier
/// whose answers are rarely worth keeping is better not called at all.
#[derive(Debug, Clone)]
pub struct SubLadder {
    /// Tiers called, ascending, ending at the top.
    pub tiers: Vec<usize>,
    pub paths: Vec<PathRow>,
}

pub fn sub_ladders(set: &CascadeSet, scorers: &Scorers) -> Vec<SubLadder> {
    let top = set.ladder.top();
    let idx: Vec<usize> = (0..set.ladder.rows.len()).collect();
    (0u32..(1 << top))
        .map(|mask| {
            let mut tiers: Vec<usize> = (0..top).filter(|t| mask & (1 << t) != 0).collect();
            tiers.push(top);
            let scores = par_map(&idx, |&i| set.path_scores(scorers.get(i), i, &tiers));
            let paths = set.paths(&vec![tiers.clone(); idx.len()], &scores);
            SubLadder { tiers, paths }
        })
        .collect()
}

/// The policy [`optimise`] picks: which tiers to call and the threshold of each (last: 0).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Choice {
    /// Index into the sub-ladders.
    #[serde(skip)]
    pub sub: usize,
    pub tiers: Vec<usize>,
    pub thresholds: Vec<f64>,
}

/// FrugalGPT-style search over `subs` on `rows` (`r`: the reference over exactly those rows):
/// for every sub-ladder, every combination of per-tier thresholds on a grid of score
/// quantiles. Returns the cheapest policy meeting a quality target, or the best quality within
/// a budget; none when no policy meets it.
pub fn optimise(
    subs: &[SubLadder],
    rows: &[usize],
    r: &Reference,
    objective: Objective,
) -> Option<Choice> {
    if rows.is_empty() {
        return None;
    }
    let n = rows.len() as f64;
    let strong_cost = r.strong_cost.to_f64().unwrap_or(0.0);
    let mut best: Option<(f64, f64, Choice)> = None;
    for (si, sub) in subs.iter().enumerate() {
        let k = sub.tiers.len() - 1;
        let mut cands: Vec<Vec<f64>> = Vec::with_capacity(k);
        for t in 0..k {
            let mut v: Vec<f64> = rows.iter().map(|&i| sub.paths[i].steps[t].p).collect();
            v.sort_by(f64::total_cmp);
            let mut c = vec![0.0];
            for g in 1..GRID - 1 {
                if let Some(&q) = v.get(g * v.len() / (GRID - 1)) {
                    c.push(q);
                }
            }
            c.push(1.0);
            c.dedup();
            cands.push(c);
        }
        let flat: Vec<(Vec<f64>, Vec<f64>, Vec<f64>)> = rows
            .iter()
            .map(|&i| {
                let s = &sub.paths[i].steps;
                (
                    s.iter().map(|x| x.p).collect(),
                    s.iter().map(|x| x.cost.to_f64().unwrap_or(0.0)).collect(),
                    s.iter().map(|x| x.score).collect(),
                )
            })
            .collect();
        let mut idx = vec![0usize; k];
        'combos: loop {
            let th: Vec<f64> = (0..k).map(|t| cands[t][idx[t]]).collect();
            let (mut q, mut c) = (0.0, 0.0);
            for (p, cost, score) in &flat {
                let j = (0..k).find(|&t| p[t] > th[t]).unwrap_or(k);
                q += score[j];
                c += cost[j];
            }
            let q = q / n;
            let better = match objective {
                Objective::Quality(f) => {
                    q >= f * r.strong_quality - 1e-12
                        && best
                            .as_ref()
                            .is_none_or(|b| c < b.1 || (c == b.1 && q > b.0))
                }
                Objective::Budget(f) => {
                    c <= f * strong_cost + 1e-15
                        && best
                            .as_ref()
                            .is_none_or(|b| q > b.0 || (q == b.0 && c < b.1))
                }
            };
            if better {
                let mut thresholds = th;
                thresholds.push(0.0);
                best = Some((
                    q,
                    c,
                    Choice {
                        sub: si,
                        tiers: sub.tiers.clone(),
                        thresholds,
                    },
                ));
            }
            let mut d = 0;
            loop {
                if d == k {
                    break 'combos;
                }
                idx[d] += 1;
                if idx[d] < cands[d].len() {
                    break;
                }
                idx[d] = 0;
                d += 1;
            }
        }
    }
    best.map(|b| b.2)
}

/// Result of one optimisation.
#[derive(Debug, Clone, Serialize)]
pub struct Optimised {
    pub objective: Objective,
    pub label: String,
    /// Tiers called and their thresholds, fitted on all rows (in-sample); none if unreachable.
    pub choice: Option<Choice>,
    /// In-sample: quality, cost relative to always-strongest, strong share.
    pub in_sample: Option<OpPoint>,
    /// Cross-fitted: thresholds fitted on one half of the rows, applied to the other, and back.
    pub out_of_fold: Option<OpPoint>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OpPoint {
    pub quality: f64,
    /// Quality relative to the strongest model alone.
    pub quality_rel: f64,
    pub cost_rel: f64,
    pub strong_share: f64,
    /// Share of rows answered by each tier.
    pub share: Vec<f64>,
}

fn op_point(p: &Point, r: &Reference) -> OpPoint {
    let strong = r.strong_cost.to_f64().unwrap_or(0.0);
    OpPoint {
        quality: round6(p.quality),
        quality_rel: round6(if r.strong_quality > 0.0 {
            p.quality / r.strong_quality
        } else {
            0.0
        }),
        cost_rel: round6(if strong > 0.0 {
            p.cost_usd.to_f64().unwrap_or(0.0) / strong
        } else {
            0.0
        }),
        strong_share: round6(p.strong_share()),
        share: p.share.iter().map(|s| round6(*s)).collect(),
    }
}

pub fn round6(x: f64) -> f64 {
    if x.is_finite() {
        (x * 1e6).round() / 1e6
    } else {
        0.0
    }
}

/// Optimises on all rows (in-sample) and cross-fitted on two halves (by row id).
pub fn optimise_report(
    set: &CascadeSet,
    ds: &Dataset,
    subs: &[SubLadder],
    objective: Objective,
) -> Optimised {
    let tiers = set.ladder.tiers();
    let n = set.ladder.rows.len();
    let all: Vec<usize> = (0..n).collect();
    let r = subset_reference(set, &all);
    let fold: Vec<usize> = set
        .ladder
        .rows
        .iter()
        .map(|lr| fold_of(&ds.rows[lr.row].id, 2))
        .collect();
    let choice = optimise(subs, &all, &r, objective);
    let in_sample = choice
        .as_ref()
        .map(|c| op_point(&point_at(tiers, &subs[c.sub].paths, &c.thresholds), &r));
    // cross-fit: the target is relative to the strongest model on the training half
    let mut t = Tally::new(tiers);
    let mut ok = true;
    for f in 0..2 {
        let train: Vec<usize> = all.iter().copied().filter(|&i| fold[i] != f).collect();
        let rt = subset_reference(set, &train);
        match optimise(subs, &train, &rt, objective) {
            Some(c) => {
                for i in all.iter().copied().filter(|&i| fold[i] == f) {
                    let s = subs[c.sub].paths[i].at(&c.thresholds);
                    t.add(s.tier, s.cost, s.score);
                }
            }
            None => ok = false,
        }
    }
    let out_of_fold = ok.then(|| op_point(&t.point(f64::NAN), &r));
    let choice = choice.map(|mut c| {
        c.thresholds.iter_mut().for_each(|x| *x = round6(*x));
        c
    });
    Optimised {
        objective,
        label: objective.label(),
        choice,
        in_sample,
        out_of_fold,
    }
}

/// One held-out group (e.g. a data set's category) of a leave-one-group-out check: the scorer
/// of its rows was trained without the group, and the thresholds applied to it were fitted on
/// the other groups' rows.
#[derive(Debug, Clone, Serialize)]
pub struct HeldOut {
    pub group: String,
    pub rows: usize,
    /// The uniform-threshold sweep over this group's rows.
    pub cascade: Summary,
    /// The cheapest uniform threshold with quality ≥ `target` of the strongest on the other
    /// groups, and what it gives here.
    pub uniform_threshold: Option<f64>,
    pub uniform: Option<OpPoint>,
    /// The per-tier plan (sub-ladder + thresholds) fitted for the same target on the other
    /// groups, and what it gives here.
    pub plan: Option<Choice>,
    pub plan_point: Option<OpPoint>,
}

/// Cheapest uniform threshold τ on `paths` (rows `rows`) with quality ≥ `target` × strongest.
pub fn uniform_for(
    tiers: usize,
    paths: &[PathRow],
    rows: &[usize],
    r: &Reference,
    target: f64,
) -> Option<f64> {
    let sub: Vec<PathRow> = rows.iter().map(|&i| paths[i].clone()).collect();
    sweep_paths(tiers, &sub)
        .into_iter()
        .filter(|p| p.quality >= target * r.strong_quality - 1e-12)
        .min_by(|a, b| a.cost_usd.cmp(&b.cost_usd))
        .map(|p| p.point)
}

/// Leave-one-group-out: for each group, the sweep over its rows (`full`: every row's full-ladder
/// path, scored by a scorer that did not see the row's group) and the uniform threshold and
/// per-tier plan fitted for `target` on the other groups, applied to it.
pub fn held_out(
    set: &CascadeSet,
    subs: &[SubLadder],
    full: &[PathRow],
    group_of: &[usize],
    names: &[String],
    target: f64,
) -> Vec<HeldOut> {
    let tiers = set.ladder.tiers();
    let uniform_at = |rows: &[usize], tau: f64, r: &Reference| {
        let mut t = Tally::new(tiers);
        for &i in rows {
            let s = full[i].answer(tau);
            t.add(s.tier, s.cost, s.score);
        }
        op_point(&t.point(tau), r)
    };
    let groups: Vec<usize> = (0..names.len()).collect();
    par_map(&groups, |&g| {
        let rows: Vec<usize> = (0..full.len()).filter(|&i| group_of[i] == g).collect();
        let others: Vec<usize> = (0..full.len()).filter(|&i| group_of[i] != g).collect();
        let r = subset_reference(set, &rows);
        let ro = subset_reference(set, &others);
        let here: Vec<PathRow> = rows.iter().map(|&i| full[i].clone()).collect();
        let (summary, _) = summarize("cascade", &sweep_paths(tiers, &here), &r);
        let tau = uniform_for(tiers, full, &others, &ro, target);
        let plan = optimise(subs, &others, &ro, Objective::Quality(target));
        let plan_point = plan.as_ref().map(|c| {
            let mut t = Tally::new(tiers);
            for &i in &rows {
                let s = subs[c.sub].paths[i].at(&c.thresholds);
                t.add(s.tier, s.cost, s.score);
            }
            op_point(&t.point(f64::NAN), &r)
        });
        HeldOut {
            group: names[g].clone(),
            rows: rows.len(),
            cascade: summary,
            uniform_threshold: tau.map(round6),
            uniform: tau.map(|t| uniform_at(&rows, t, &r)),
            plan: plan.map(|mut c| {
                c.thresholds.iter_mut().for_each(|x| *x = round6(*x));
                c
            }),
            plan_point,
        }
    })
}

/// Reference points (cheapest / strongest alone) over a subset of ladder rows; costs are totals
/// over the subset.
pub fn subset_reference(set: &CascadeSet, rows: &[usize]) -> Reference {
    let top = set.ladder.top();
    let n = rows.len().max(1) as f64;
    let (mut wq, mut sq, mut wc, mut sc) = (0.0, 0.0, Decimal::ZERO, Decimal::ZERO);
    for &i in rows {
        let r = &set.ladder.rows[i];
        wq += r.score[0];
        sq += r.score[top];
        wc += r.cost[0];
        sc += r.cost[top];
    }
    Reference {
        weak_quality: wq / n,
        strong_quality: sq / n,
        weak_cost: wc,
        strong_cost: sc,
    }
}

/// Metrics of a sweep plus the cost (relative to always-strongest) at the CPT points.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub policy: String,
    pub apgr: Option<f64>,
    pub cpt50: Option<f64>,
    pub cpt80: Option<f64>,
    pub savings_at_95: Option<f64>,
    /// Total cost (every attempt) / always-strongest, at the CPT(50%) point.
    pub cost_rel_at_cpt50: Option<f64>,
    pub cost_rel_at_cpt80: Option<f64>,
    /// Quality of the best point of the curve relative to the strongest model.
    pub best_quality_rel: f64,
}

/// Cost (relative to always-strongest) where the curve first recovers `x` of the gap at the
/// CPT share `cpt`: on a point, or interpolated inside a segment (as [`metrics`] finds CPT).
fn cost_at(points: &[Point], r: &Reference, cpt: Option<f64>, x: f64) -> Option<f64> {
    let share = cpt?;
    let strong = r.strong_cost.to_f64().filter(|c| *c > 0.0)?;
    let g: Vec<Option<f64>> = points.iter().map(|p| r.pgr(p.quality)).collect();
    let cost = |p: &Point| p.cost_usd.to_f64().unwrap_or(0.0);
    let mut best: Option<f64> = None;
    for i in 0..points.len() {
        let Some(gi) = g[i] else { continue };
        if gi >= x - 1e-12 && (points[i].strong_share() - share).abs() < 1e-9 {
            best = Some(best.map_or(cost(&points[i]), |b| b.min(cost(&points[i]))));
        }
        if let Some(Some(gj)) = g.get(i + 1)
            && gi < x
            && *gj >= x
        {
            let t = (x - gi) / (gj - gi);
            let (s0, s1) = (points[i].strong_share(), points[i + 1].strong_share());
            if (s0 + t * (s1 - s0) - share).abs() < 1e-9 {
                let c = cost(&points[i]) + t * (cost(&points[i + 1]) - cost(&points[i]));
                best = Some(best.map_or(c, |b| b.min(c)));
            }
        }
    }
    best.map(|c| round6(c / strong))
}

pub fn summarize(policy: &str, points: &[Point], r: &Reference) -> (Summary, Metrics) {
    let m = metrics(points, r);
    let best = points
        .iter()
        .map(|p| p.quality)
        .fold(f64::NEG_INFINITY, f64::max);
    let s = Summary {
        policy: policy.to_string(),
        apgr: m.apgr.map(round6),
        cpt50: m.cpt50.map(round6),
        cpt80: m.cpt80.map(round6),
        savings_at_95: m.savings_at_95.map(round6),
        cost_rel_at_cpt50: cost_at(points, r, m.cpt50, 0.5),
        cost_rel_at_cpt80: cost_at(points, r, m.cpt80, 0.8),
        best_quality_rel: round6(if r.strong_quality > 0.0 {
            best / r.strong_quality
        } else {
            0.0
        }),
    };
    (s, m)
}

/// Paths of the combined policy: the router skips tier t (below the top) when its estimate is
/// below `skip_below`; the cascade walks the rest. Returns (paths' tiers, scores).
pub fn combined_paths(
    set: &CascadeSet,
    scorers: &Scorers,
    router: &[Vec<f64>],
    skip_below: f64,
) -> (Vec<Vec<usize>>, Vec<Vec<f64>>) {
    let top = set.ladder.top();
    let idx: Vec<usize> = (0..set.ladder.rows.len()).collect();
    let out: Vec<(Vec<usize>, Vec<f64>)> = par_map(&idx, |&i| {
        let mut path: Vec<usize> = (0..top)
            .filter(|&t| router[i].get(t).copied().unwrap_or(1.0) >= skip_below)
            .collect();
        path.push(top);
        let s = set.path_scores(scorers.get(i), i, &path);
        (path, s)
    });
    out.into_iter().unzip()
}

/// Response models of a data set: priced models with a response on at least half the rows,
/// cheapest first (the data set's default ladder order).
pub fn response_models(ds: &Dataset) -> Vec<String> {
    let n = ds.rows.len().max(1);
    ds.default_ladder()
        .into_iter()
        .filter(|m| {
            ds.rows
                .iter()
                .filter(|r| r.outcomes.get(m).is_some_and(|o| o.response.is_some()))
                .count()
                * 2
                >= n
        })
        .collect()
}

/// Training examples from `rows` of `ds`: for each row and each ordered sub-ladder of `models`
/// (up to 3 models, contiguous only when more than 6 models), the last model's answer with the
/// earlier ones as previous attempts; label = its score. Gated answers are left out.
pub fn training_examples(
    ds: &Dataset,
    rows: &[usize],
    models: &[String],
) -> (Vec<[f64; N_FEATURES]>, Vec<f64>) {
    let n = models.len();
    let mut subs: Vec<Vec<usize>> = Vec::new();
    for a in 0..n {
        subs.push(vec![a]);
        for b in a + 1..n {
            if n > 6 && b != a + 1 {
                continue;
            }
            subs.push(vec![a, b]);
            for c in b + 1..n {
                if n > 6 && c != b + 1 {
                    continue;
                }
                subs.push(vec![a, b, c]);
            }
        }
    }
    let per_row: Vec<Vec<([f64; N_FEATURES], f64)>> = par_map(rows, |&ri| {
        let row = &ds.rows[ri];
        let q = Query::from_view(&row.view);
        let answers: Vec<Option<(Analysed, f64)>> = models
            .iter()
            .map(|m| {
                row.outcomes.get(m).and_then(|o| {
                    o.response
                        .as_deref()
                        .map(|t| (analyse(&q, &Answer::from_text(t)), o.score))
                })
            })
            .collect();
        let mut out = Vec::new();
        for s in &subs {
            let Some(path) = s
                .iter()
                .map(|&k| answers[k].as_ref())
                .collect::<Option<Vec<_>>>()
            else {
                continue;
            };
            let Some((&(last, score), before)) = path.split_last() else {
                continue;
            };
            if last.gate.is_some() {
                continue;
            }
            let prev: Vec<&Analysed> = before.iter().map(|(a, _)| a).collect();
            out.push((features(&q, last, &prev), *score));
        }
        out
    });
    per_row.into_iter().flatten().unzip()
}

/// Fits a scorer on `sources` (data set, rows) with their response models; the default
/// threshold is the uniform τ of the cheapest point with quality ≥ 95% of the strongest on the
/// first source's response ladder (in-sample, as shipped).
pub fn fit_scorer(
    sources: &[(&Dataset, Vec<usize>)],
    opts: &FitOptions,
    command: Option<String>,
) -> Result<ScorerFile, CascadeError> {
    let mut x = Vec::new();
    let mut y = Vec::new();
    let mut trained_on = Vec::new();
    for (ds, rows) in sources {
        let models = response_models(ds);
        if models.is_empty() {
            return Err(CascadeError::NoResponseModels(ds.name.clone()));
        }
        let (xs, ys) = training_examples(ds, rows, &models);
        x.extend(xs);
        y.extend(ys);
        trained_on.push(TrainedOn {
            dataset: ds.name.clone(),
            rows: rows.len(),
            models,
            fingerprint: fingerprint(rows.iter().map(|&i| ds.rows[i].id.as_str())),
        });
    }
    let f = fit(&x, &y, opts)?;
    let mut file = ScorerFile {
        format: FORMAT.to_string(),
        format_version: FORMAT_VERSION,
        features: tierwise_router::cascade::features::FEATURE_NAMES
            .iter()
            .map(|s| s.to_string())
            .collect(),
        mean: f.mean,
        scale: f.scale,
        weights: f.weights,
        bias: f.bias,
        default_threshold: 0.5,
        default_threshold_target: "none (no response ladder to calibrate on)".into(),
        trained_on,
        examples: x.len(),
        loss: f.loss,
        command,
    };
    if let Some((ds, _)) = sources.first() {
        let models = response_models(ds);
        if models.len() >= 2
            && let Ok(set) = CascadeSet::new(ds, &models)
        {
            let scorers = Scorers::one(Scorer::from_file(file.clone()), set.ladder.rows.len());
            let scores = set.full_scores(&scorers);
            let full: Vec<Vec<usize>> = vec![(0..models.len()).collect(); set.ladder.rows.len()];
            let paths = set.paths(&full, &scores);
            let r = subset_reference(&set, &(0..paths.len()).collect::<Vec<_>>());
            let pts = sweep_paths(models.len(), &paths);
            if let Some(p) = pts
                .iter()
                .filter(|p| p.quality >= 0.95 * r.strong_quality)
                .min_by(|a, b| a.cost_usd.cmp(&b.cost_usd))
            {
                file.default_threshold = round6(p.point.clamp(0.0, 0.999));
                file.default_threshold_target = format!(
                    "cheapest uniform threshold with quality ≥ 95% of the strongest on {} ({})",
                    ds.name,
                    models.join(" → ")
                );
            }
        }
    }
    Ok(file)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;

    fn row(steps: &[(usize, i64, f64, f64)]) -> PathRow {
        PathRow {
            steps: steps
                .iter()
                .map(|&(tier, c, score, p)| Step {
                    tier,
                    cost: Decimal::new(c, 0),
                    score,
                    p,
                })
                .collect(),
        }
    }

    #[test]
    fn sweep_counts_every_attempt() {
        // tier costs 1, 2, 10: cumulative 1, 3, 13
        let rows = vec![
            row(&[
                (0, 1, 1.0, 0.9),
                (1, 3, 1.0, 0.8),
                (2, 13, 1.0, f64::INFINITY),
            ]),
            row(&[
                (0, 1, 0.0, 0.2),
                (1, 3, 0.0, 0.6),
                (2, 13, 1.0, f64::INFINITY),
            ]),
        ];
        let pts = sweep_paths(3, &rows);
        // τ=0: both on tier 0, cost 2
        assert_eq!(pts[0].cost_usd, Decimal::new(2, 0));
        assert_eq!(pts[0].share, vec![1.0, 0.0, 0.0]);
        // τ=0.2: row 2 moves to tier 1 → cost 1 + 3
        assert_eq!(pts[1].cost_usd, Decimal::new(4, 0));
        // τ=0.6: row 2 reaches the top: 1 + 13
        assert_eq!(pts[2].cost_usd, Decimal::new(14, 0));
        assert_eq!(pts[2].share, vec![0.5, 0.0, 0.5]);
        // end: all at the top, each paid 13
        let last = pts.last().unwrap();
        assert_eq!(last.cost_usd, Decimal::new(26, 0));
        assert_eq!(last.share, vec![0.0, 0.0, 1.0]);
        assert!(
            pts.windows(2)
                .all(|w| w[1].strong_share() >= w[0].strong_share())
        );
        assert_eq!(
            point_at(3, &rows, &[0.5, 0.7, 0.0]).cost_usd,
            Decimal::new(1 + 13, 0)
        );
    }

    #[test]
    fn cost_at_cpt_follows_the_interpolated_cpt() {
        let pt = |share: f64, q: f64, c: i64| Point {
            point: 0.0,
            quality: q,
            cost_usd: Decimal::new(c, 0),
            share: vec![1.0 - share, share],
        };
        let r = Reference {
            weak_quality: 0.4,
            strong_quality: 0.8,
            weak_cost: Decimal::new(10, 0),
            strong_cost: Decimal::new(100, 0),
        };
        // PGR 0 at share 0 (cost 10), PGR 1 at share 0.5 (cost 30): CPT(50%) = 0.25, cost 20
        let (s, _) = summarize(
            "t",
            &[pt(0.0, 0.4, 10), pt(0.5, 0.8, 30), pt(1.0, 0.8, 100)],
            &r,
        );
        assert_eq!(s.cpt50, Some(0.25));
        assert_eq!(s.cost_rel_at_cpt50, Some(0.2));
        assert_eq!(s.cost_rel_at_cpt80, Some(0.26));
    }

    #[test]
    fn gated_answers_are_never_accepted() {
        // p = 0 (gated) on tier 0: even at τ = 0 the row goes on
        let rows = vec![row(&[(0, 1, 1.0, 0.0), (1, 11, 0.0, f64::INFINITY)])];
        let pts = sweep_paths(2, &rows);
        assert_eq!(pts[0].share, vec![0.0, 1.0]);
        assert_eq!(pts[0].cost_usd, Decimal::new(11, 0));
        assert_eq!(pts[0].quality, 0.0);
    }

    #[test]
    fn optimiser_meets_targets_and_skips_useless_tiers() {
        // 3 tiers costing 1, 3, 10; tier-0 scores separate good from bad answers; tier 1 never helps
        let (mut full, mut skip1) = (Vec::new(), Vec::new());
        for i in 0..100 {
            let good0 = i % 2 == 0;
            let (s0, p0) = if good0 { (1.0, 0.9) } else { (0.0, 0.1) };
            full.push(row(&[
                (0, 1, s0, p0),
                (1, 4, 0.0, 0.5),
                (2, 14, 1.0, f64::INFINITY),
            ]));
            skip1.push(row(&[(0, 1, s0, p0), (2, 11, 1.0, f64::INFINITY)]));
        }
        let subs = vec![
            SubLadder {
                tiers: vec![0, 1, 2],
                paths: full.clone(),
            },
            SubLadder {
                tiers: vec![0, 2],
                paths: skip1.clone(),
            },
        ];
        let r = Reference {
            weak_quality: 0.5,
            strong_quality: 1.0,
            weak_cost: Decimal::new(100, 0),
            strong_cost: Decimal::new(1000, 0),
        };
        let all: Vec<usize> = (0..100).collect();
        let c = optimise(&subs, &all, &r, Objective::Quality(0.95)).unwrap();
        assert_eq!(c.tiers, vec![0, 2], "calling tier 1 only costs");
        let p = point_at(3, &subs[c.sub].paths, &c.thresholds);
        assert!(p.quality >= 0.95);
        // accept good tier-0 answers (50 × 1), the rest pay tier 0 and the top (50 × 11)
        assert_eq!(p.cost_usd, Decimal::new(50 + 50 * 11, 0));
        // on the full ladder alone, every escalated row pays tier 1 too
        let c = optimise(&subs[..1], &all, &r, Objective::Quality(0.95)).unwrap();
        assert_eq!(
            point_at(3, &full, &c.thresholds).cost_usd,
            Decimal::new(50 + 50 * 14, 0)
        );
        let c = optimise(&subs, &all, &r, Objective::Budget(0.2)).unwrap();
        assert!(point_at(3, &subs[c.sub].paths, &c.thresholds).cost_usd <= Decimal::new(200, 0));
        assert!(optimise(&subs, &all, &r, Objective::Budget(0.01)).is_none());
    }
}
