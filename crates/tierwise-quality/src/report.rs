//! `tierwise quality`: per category × (served tier → candidate tier), what the shadow tests
//! say about moving the category down, with a stated confidence.
//!
//! # Method
//! - **Scores.** Each compared shadow test is a pair of 0/1 scores, the served answer being the
//!   reference: a judge's *win* is (candidate 1, served 0), a *tie* or a check's *agree* is
//!   (1, 1), a *loss* or a check's *disagree* is (0, 1) — a disagreeing check is charged to the
//!   candidate, since the served tier is the stronger one. The **quality ratio** is
//!   mean(candidate) / mean(served) = (wins + ties) / (ties + losses), the same ratio
//!   `tierwise quality plan` tests offline. Unjudged pairs (the judge's answer did not parse),
//!   failed shadow calls and capped samples are not in n.
//! - **Test and interval.** "ratio ≥ bar" is tested with the betting test of [`crate::stats`]
//!   (Waudby-Smith & Ramdas), over the pairs in time order, the population being the stream
//!   of future calls: the p-value is valid at every n (no normal approximation, no minimum
//!   sample), assuming the sampled calls are exchangeable (sampling is random per call; a
//!   drifting workload weakens this). `lower` / `upper` invert the same test: one-sided
//!   bounds at the confidence, each for that pair alone.
//! - **Many categories.** The p-values of all pairs with n > 0 go through Benjamini–Hochberg at
//!   q = 1 − confidence: among the pairs called safe, the expected share that are not is at
//!   most q (the categories' samples are independent).
//! - **Verdicts.** *safe to move down*: selected by BH. *not safe*: the estimate is below the
//!   bar (or the upper bound is), or no realistic sample would prove it. *need N more
//!   samples*: the estimate clears the bar but not yet with the confidence; N is the number of
//!   further pairs, in the observed proportions, that the test needs at the level the next BH
//!   selection would get (q·(R+1)/m) — a projection, not a promise.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;
use serde::Serialize;
use tierwise_store::{ShadowRow, ShadowVerdict};

use crate::stats::{Pair, benjamini_hochberg};

/// Verdict texts (public interface).
pub const SAFE: &str = "safe to move down";
pub const NOT_SAFE: &str = "not safe";

/// Largest projection of more samples searched.
const MAX_MORE: usize = 1_000_000;

/// Options of the report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReportOptions {
    pub bar: f64,
    pub confidence: f64,
}

/// One category × (served tier → candidate tier).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PairVerdict {
    pub category: String,
    pub served_tier: String,
    pub candidate_tier: String,
    /// Compared shadow tests (wins + ties + losses).
    pub n: usize,
    /// Judge wins of the candidate.
    pub wins: usize,
    /// Judge ties plus check agreements.
    pub ties: usize,
    /// Judge losses plus check disagreements.
    pub losses: usize,
    /// Of the ties: checks that agreed.
    pub agree: usize,
    /// Of the losses: checks that disagreed.
    pub disagree: usize,
    pub unjudged: usize,
    pub failed: usize,
    pub capped: usize,
    /// (wins + ties) / (ties + losses); `None` with no tie or loss.
    pub estimate: Option<f64>,
    /// One-sided lower bound at the confidence (this pair alone).
    pub lower: f64,
    /// One-sided upper bound at the confidence; `None`: unbounded so far.
    pub upper: Option<f64>,
    /// p-value of "ratio < bar".
    pub p_value: f64,
    /// `safe to move down`, `not safe`, or `need N more samples`.
    pub verdict: String,
    /// N of `need N more samples`.
    pub more_samples: Option<usize>,
    pub shadow_usd: Decimal,
    pub judge_usd: Decimal,
}

/// The report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct QualityReport {
    pub bar: f64,
    pub confidence: f64,
    /// BH's level: pairs with p at or below it are safe.
    pub level: f64,
    pub pairs: Vec<PairVerdict>,
    pub shadow_usd: Decimal,
    pub judge_usd: Decimal,
    pub unjudged: usize,
    pub failed: usize,
    pub capped: usize,
    /// UTC days on which the daily cap stopped sampling.
    pub capped_days: Vec<String>,
    pub method: String,
    pub notes: Vec<String>,
}

/// The method, as written into the report.
pub fn method_text(confidence: f64) -> String {
    format!(
        "served answer as reference: win (1,0), tie/agree (1,1), loss/disagree (0,1); ratio = \
         (wins + ties) / (ties + losses); betting test of ratio >= bar over the pairs in time \
         order (valid at any n); lower/upper: one-sided {:.0}% bounds per pair; safe = \
         Benjamini-Hochberg at q = {:.2} over all pairs",
        confidence * 100.0,
        1.0 - confidence
    )
}

#[derive(Default)]
struct Group {
    c: Vec<f64>,
    s: Vec<f64>,
    wins: usize,
    ties: usize,
    losses: usize,
    agree: usize,
    disagree: usize,
    unjudged: usize,
    failed: usize,
    capped: usize,
    shadow: Decimal,
    judge: Decimal,
}

/// Scores in the given proportions, interleaved evenly (the projection of more samples).
fn projected(wins: usize, ties: usize, losses: usize, n: usize) -> (Vec<f64>, Vec<f64>) {
    let total = (wins + ties + losses).max(1) as f64;
    let shares = [
        (wins as f64 / total, (1.0, 0.0)),
        (ties as f64 / total, (1.0, 1.0)),
        (losses as f64 / total, (0.0, 1.0)),
    ];
    let mut acc = [0.0f64; 3];
    let (mut c, mut s) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        for (a, (share, _)) in acc.iter_mut().zip(&shares) {
            *a += share;
        }
        let (i, _) = acc.iter().enumerate().fold(
            (0, f64::MIN),
            |b, (i, a)| if *a > b.1 { (i, *a) } else { b },
        );
        acc[i] -= 1.0;
        c.push(shares[i].1.0);
        s.push(shares[i].1.1);
    }
    (c, s)
}

/// Total pairs (in the observed proportions) the test needs to prove ratio ≥ bar at `level`.
fn needed(wins: usize, ties: usize, losses: usize, bar: f64, level: f64) -> Option<usize> {
    let passes = |n: usize| {
        let (c, s) = projected(wins, ties, losses, n);
        Pair {
            c: &c,
            s: &s,
            population: usize::MAX,
            exact: false,
            tune: level,
        }
        .p_at_least(bar)
            <= level
    };
    let mut hi = 8;
    while !passes(hi) {
        hi *= 2;
        if hi > MAX_MORE {
            return None;
        }
    }
    let mut lo = hi / 2;
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if passes(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi)
}

/// The report of `rows` (any order; grouped, then read in time order).
pub fn report(rows: &[ShadowRow], opts: ReportOptions) -> QualityReport {
    let q = 1.0 - opts.confidence;
    let mut sorted: Vec<&ShadowRow> = rows.iter().collect();
    sorted.sort_by_key(|r| (r.time, r.id));
    let mut groups: BTreeMap<(String, String, String), Group> = BTreeMap::new();
    let mut capped_days = BTreeSet::new();
    for r in sorted {
        let g = groups
            .entry((
                r.category.clone(),
                r.served_tier.clone(),
                r.candidate_tier.clone(),
            ))
            .or_default();
        g.shadow += r.shadow_cost_usd.unwrap_or_default();
        g.judge += r.judge_cost_usd.unwrap_or_default();
        let (c, s) = match r.verdict {
            ShadowVerdict::Win => {
                g.wins += 1;
                (1.0, 0.0)
            }
            ShadowVerdict::Tie => {
                g.ties += 1;
                (1.0, 1.0)
            }
            ShadowVerdict::Agree => {
                g.ties += 1;
                g.agree += 1;
                (1.0, 1.0)
            }
            ShadowVerdict::Loss => {
                g.losses += 1;
                (0.0, 1.0)
            }
            ShadowVerdict::Disagree => {
                g.losses += 1;
                g.disagree += 1;
                (0.0, 1.0)
            }
            ShadowVerdict::Unjudged => {
                g.unjudged += 1;
                continue;
            }
            ShadowVerdict::Failed => {
                g.failed += 1;
                continue;
            }
            ShadowVerdict::Capped => {
                g.capped += 1;
                capped_days.insert(r.time.date().to_string());
                continue;
            }
        };
        g.c.push(c);
        g.s.push(s);
    }
    let tested: Vec<usize> = (0..groups.len()).collect();
    let m = groups.values().filter(|g| !g.c.is_empty()).count();
    // bets sized where BH's first rejection happens
    let tune = q / m.max(1) as f64;
    let ps: Vec<f64> = groups
        .values()
        .map(|g| {
            if g.c.is_empty() {
                1.0
            } else {
                Pair {
                    c: &g.c,
                    s: &g.s,
                    population: usize::MAX,
                    exact: false,
                    tune,
                }
                .p_at_least(opts.bar)
            }
        })
        .collect();
    let tested_ps: Vec<f64> = tested
        .iter()
        .zip(groups.values())
        .filter(|(_, g)| !g.c.is_empty())
        .map(|(i, _)| ps[*i])
        .collect();
    let selected = benjamini_hochberg(&tested_ps, q);
    let level = if m > 0 {
        q * selected as f64 / m as f64
    } else {
        0.0
    };
    let next_level = q * (selected + 1) as f64 / m.max(1) as f64;
    let mut pairs = Vec::with_capacity(groups.len());
    for ((key, g), p) in groups.into_iter().zip(ps) {
        let (category, served_tier, candidate_tier) = key;
        let n = g.c.len();
        let pair = Pair {
            c: &g.c,
            s: &g.s,
            population: usize::MAX,
            exact: false,
            tune: q,
        };
        let (lower, upper) = if n == 0 { (0.0, None) } else { pair.bounds(q) };
        let estimate =
            (g.ties + g.losses > 0).then(|| (g.wins + g.ties) as f64 / (g.ties + g.losses) as f64);
        let below = estimate.is_some_and(|e| e < opts.bar) || upper.is_some_and(|u| u < opts.bar);
        let (verdict, more) = if n > 0 && level > 0.0 && p <= level {
            (SAFE.to_string(), None)
        } else if below {
            (NOT_SAFE.to_string(), None)
        } else {
            // the best case for an empty pair: every comparison a tie
            let (w, t, l) = if n == 0 {
                (0, 1, 0)
            } else {
                (g.wins, g.ties, g.losses)
            };
            match needed(w, t, l, opts.bar, next_level) {
                Some(total) => {
                    let more = total.saturating_sub(n).max(1);
                    (format!("need {more} more samples"), Some(more))
                }
                None => (NOT_SAFE.to_string(), None),
            }
        };
        pairs.push(PairVerdict {
            category,
            served_tier,
            candidate_tier,
            n,
            wins: g.wins,
            ties: g.ties,
            losses: g.losses,
            agree: g.agree,
            disagree: g.disagree,
            unjudged: g.unjudged,
            failed: g.failed,
            capped: g.capped,
            estimate,
            lower,
            upper,
            p_value: p,
            verdict,
            more_samples: more,
            shadow_usd: g.shadow,
            judge_usd: g.judge,
        });
    }
    let mut notes = Vec::new();
    if !capped_days.is_empty() {
        notes.push(format!(
            "the daily cap (quality.shadow.daily_usd_cap) stopped sampling on {}: {} sampled \
             calls were not shadow-tested",
            capped_days.iter().cloned().collect::<Vec<_>>().join(", "),
            pairs.iter().map(|p| p.capped).sum::<usize>()
        ));
    }
    let unjudged = pairs.iter().map(|p| p.unjudged).sum();
    if unjudged > 0 {
        notes.push(format!(
            "{unjudged} judge answers did not parse: unjudged, not counted in n"
        ));
    }
    let failed = pairs.iter().map(|p| p.failed).sum();
    if failed > 0 {
        notes.push(format!(
            "{failed} shadow calls failed: logged, not counted in n"
        ));
    }
    if pairs.is_empty() {
        notes.push(
            "no shadow tests in the store: enable [quality.shadow] rate in the gateway's config"
                .into(),
        );
    }
    QualityReport {
        bar: opts.bar,
        confidence: opts.confidence,
        level,
        shadow_usd: pairs.iter().map(|p| p.shadow_usd).sum(),
        judge_usd: pairs.iter().map(|p| p.judge_usd).sum(),
        unjudged,
        failed,
        capped: pairs.iter().map(|p| p.capped).sum(),
        capped_days: capped_days.into_iter().collect(),
        pairs,
        method: method_text(opts.confidence),
        notes,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use rust_decimal_macros::dec;
    use time::OffsetDateTime;
    use uuid::Uuid;

    use super::*;

    fn rows(category: &str, verdicts: &[(ShadowVerdict, usize)]) -> Vec<ShadowRow> {
        let mut out = Vec::new();
        let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        for (v, k) in verdicts {
            for _ in 0..*k {
                let i = out.len() as i64;
                out.push(ShadowRow {
                    id: Uuid::now_v7(),
                    request_id: Uuid::now_v7(),
                    time: t0 + time::Duration::seconds(i * 37 % 1000),
                    category: category.into(),
                    served_tier: "standard".into(),
                    served_model: "gpt-5.4".into(),
                    candidate_tier: "mini".into(),
                    candidate_model: "gpt-5.4-mini".into(),
                    method: None,
                    detail: None,
                    verdict: *v,
                    shadow_cost_usd: Some(dec!(0.001)),
                    judge_cost_usd: Some(dec!(0.002)),
                    error: None,
                    prompt: None,
                });
            }
        }
        out
    }

    const OPTS: ReportOptions = ReportOptions {
        bar: 0.95,
        confidence: 0.9,
    };

    #[test]
    fn many_agreements_are_safe_losses_are_not_few_need_more() {
        use ShadowVerdict::*;
        let mut all = rows("classification", &[(Agree, 300)]);
        all.extend(rows("coding", &[(Tie, 60), (Loss, 40)]));
        all.extend(rows("writing", &[(Tie, 5), (Win, 1)]));
        all.extend(rows("math", &[(Unjudged, 3), (Failed, 2), (Capped, 1)]));
        let r = report(&all, OPTS);
        let get = |c: &str| r.pairs.iter().find(|p| p.category == c).unwrap();
        let cls = get("classification");
        assert_eq!((cls.n, cls.ties, cls.agree), (300, 300, 300));
        assert_eq!(cls.verdict, SAFE, "{cls:?}");
        assert!(cls.lower > 0.95 && cls.lower < 1.0);
        let coding = get("coding");
        assert_eq!(coding.verdict, NOT_SAFE);
        assert_eq!(coding.estimate, Some(0.6));
        let writing = get("writing");
        assert!(writing.verdict.starts_with("need "), "{writing:?}");
        assert!(writing.more_samples.unwrap() > 10);
        assert!(writing.verdict.ends_with(" more samples"));
        let math = get("math");
        assert_eq!(
            (math.n, math.unjudged, math.failed, math.capped),
            (0, 3, 2, 1)
        );
        assert!(math.verdict.starts_with("need "));
        assert_eq!(r.unjudged, 3);
        assert_eq!(r.capped_days.len(), 1);
        assert!(r.notes.iter().any(|n| n.contains("daily cap")));
        // every row's costs count, compared or not
        assert_eq!(r.shadow_usd, dec!(0.001) * Decimal::from(all.len()));
        assert_eq!(r.judge_usd, dec!(0.002) * Decimal::from(all.len()));
    }

    #[test]
    fn unjudged_is_never_a_win() {
        use ShadowVerdict::*;
        let r = report(&rows("x", &[(Tie, 50), (Unjudged, 500)]), OPTS);
        assert_eq!(r.pairs[0].wins, 0);
        assert_eq!(r.pairs[0].n, 50);
    }

    #[test]
    fn the_projection_is_enough_when_the_proportions_hold() {
        // all ties: the first n that proves 0.95 at level 0.1
        let need = needed(0, 1, 0, 0.95, 0.1).unwrap();
        let c = vec![1.0; need];
        let p = Pair {
            c: &c,
            s: &c,
            population: usize::MAX,
            exact: false,
            tune: 0.1,
        };
        assert!(p.p_at_least(0.95) <= 0.1);
        let c = vec![1.0; need - 1];
        let p = Pair { c: &c, s: &c, ..p };
        assert!(p.p_at_least(0.95) > 0.1);
        // a ratio of exactly the bar is never proven
        assert_eq!(needed(0, 19, 1, 0.95, 0.1), None);
    }

    #[test]
    fn testing_many_categories_asks_more_of_each() {
        use ShadowVerdict::*;
        // just enough agreements for one category alone
        let alone = needed(0, 1, 0, 0.95, 0.1).unwrap();
        let one = report(&rows("a", &[(Agree, alone + 5)]), OPTS);
        assert_eq!(one.pairs[0].verdict, SAFE, "{:?}", one.pairs[0]);
        // the same category among seven that prove nothing: BH asks p <= q/8 of it
        let mut many = rows("a", &[(Agree, alone + 5)]);
        for c in ["b", "c", "d", "e", "f", "g", "h"] {
            many.extend(rows(c, &[(Agree, 2), (Disagree, 2)]));
        }
        let many = report(&many, OPTS);
        assert_ne!(many.pairs[0].verdict, SAFE, "{:?}", many.pairs[0]);
        assert!(many.pairs[0].verdict.starts_with("need "));
    }
}
