//! How well the cascade's answer scorer generalizes: the same data scored three ways —
//! in-sample (trained on every row), random 2-fold (trained on the other half of the rows) and
//! leave-category-out (categories split in two alternating halves; trained on one half's
//! categories, tested on the other's) — on the 4-tier ladder and 2-tier pairs.
//!
//! Run: `cargo run --release -p tierwise-research --example cascade_generalization -- ../shared/data/routing/mmlu_pro`

use std::collections::BTreeSet;
use std::path::PathBuf;

use tierwise_eval::cascade::{self, CascadeSet, Objective, Scorers, summarize, sweep_paths};
use tierwise_eval::data;
use tierwise_eval::learn::fold_of;
use tierwise_eval::report;
use tierwise_router::cascade::Scorer;
use tierwise_train::scorer::FitOptions;

const LADDER4: [&str; 4] = [
    "Meta-Llama-3_1-8B-Instruct",
    "gemini-1.5-flash-002",
    "Meta-Llama-3_1-70B-Instruct",
    "gemini-1.5-pro-002",
];

fn pct(x: Option<f64>) -> String {
    x.map_or("n/a".into(), |v| format!("{:.1}%", v * 100.0))
}

/// Rank AUC of scores `p` for binary labels `y` (score ≥ 0.5).
fn auc(p: &[f64], y: &[f64]) -> f64 {
    let mut v: Vec<(f64, bool)> = p.iter().zip(y).map(|(&a, &b)| (a, b >= 0.5)).collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut rank_sum, mut i) = (0.0, 0);
    while i < v.len() {
        let mut j = i;
        while j < v.len() && v[j].0 == v[i].0 {
            j += 1;
        }
        let r = (i + j + 1) as f64 / 2.0;
        rank_sum += v[i..j].iter().filter(|x| x.1).count() as f64 * r;
        i = j;
    }
    let n1 = v.iter().filter(|x| x.1).count() as f64;
    let n0 = v.len() as f64 - n1;
    (rank_sum - n1 * (n1 + 1.0) / 2.0) / (n1 * n0).max(1.0)
}

#[expect(clippy::print_stdout, reason = "an example that reports")]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "../shared/data/routing/mmlu_pro".into()),
    );
    let ds = data::load(&dir, None, &mut |_| {})?;
    let cats: Vec<String> = ds
        .rows
        .iter()
        .filter_map(|r| r.category.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let half_a: BTreeSet<&String> = cats.iter().step_by(2).collect();
    println!(
        "data {}: {} rows; leave-category-out halves:\n  A = {:?}\n  B = {:?}\n",
        ds.name,
        ds.rows.len(),
        half_a,
        cats.iter()
            .filter(|c| !half_a.contains(c))
            .collect::<Vec<_>>()
    );
    // group of each data row under each scheme (0 / 1); in-sample: one group trained on everything
    let schemes: Vec<(&str, Vec<usize>)> = vec![
        ("in-sample", vec![0; ds.rows.len()]),
        (
            "random 2-fold",
            ds.rows.iter().map(|r| fold_of(&r.id, 2)).collect(),
        ),
        (
            "leave-category-out",
            ds.rows
                .iter()
                .map(|r| usize::from(!r.category.as_ref().is_some_and(|c| half_a.contains(c))))
                .collect(),
        ),
    ];
    let ladders: Vec<Vec<String>> = vec![
        LADDER4.iter().map(|s| s.to_string()).collect(),
        vec![LADDER4[0].into(), LADDER4[3].into()],
        vec![LADDER4[1].into(), LADDER4[3].into()],
        vec![LADDER4[2].into(), LADDER4[3].into()],
        vec![LADDER4[0].into(), LADDER4[2].into()],
        vec![LADDER4[0].into(), LADDER4[1].into(), LADDER4[3].into()],
    ];
    println!(
        "{:<20} {:<44} {:>6} {:>7} {:>7} {:>9} {:>10} {:>10} {:>18}  AUC per tier",
        "scheme",
        "ladder",
        "APGR",
        "CPT50",
        "CPT80",
        "sav@95",
        "cost@CPT50",
        "cost@CPT80",
        "frugal q95 (oof)"
    );
    for (name, group) in &schemes {
        let in_sample = *name == "in-sample";
        let mut list = Vec::new();
        for g in 0..2 {
            // train on the rows not in group g (in-sample: on all rows)
            let rows: Vec<usize> = (0..ds.rows.len())
                .filter(|&i| in_sample || group[i] != g)
                .collect();
            list.push(Scorer::from_file(cascade::fit_scorer(
                &[(&ds, rows)],
                &FitOptions::default(),
                None,
            )?));
            if in_sample {
                break;
            }
        }
        for models in &ladders {
            let set = CascadeSet::new(&ds, models)?;
            let of_row: Vec<usize> = set
                .ladder
                .rows
                .iter()
                .map(|lr| if in_sample { 0 } else { group[lr.row] })
                .collect();
            let scorers = Scorers {
                list: list.clone(),
                of_row,
            };
            let scores = set.full_scores(&scorers);
            let tiers = models.len();
            let full: Vec<Vec<usize>> = vec![(0..tiers).collect(); set.ladder.rows.len()];
            let paths = set.paths(&full, &scores);
            let r = report::reference(&set.ladder);
            let (s, _) = summarize("cascade", &sweep_paths(tiers, &paths), &r);
            let subs = cascade::sub_ladders(&set, &scorers);
            let o = cascade::optimise_report(&set, &ds, &subs, Objective::Quality(0.95));
            let frugal = o.out_of_fold.map_or("unreachable".into(), |p| {
                format!("{:.1}% q{:.1}%", p.cost_rel * 100.0, p.quality_rel * 100.0)
            });
            let aucs: Vec<String> = (0..tiers - 1)
                .map(|k| {
                    let p: Vec<f64> = scores.iter().map(|s| s[k]).collect();
                    let y: Vec<f64> = set.ladder.rows.iter().map(|r| r.score[k]).collect();
                    format!("{:.3}", auc(&p, &y))
                })
                .collect();
            let short: Vec<&str> = models
                .iter()
                .map(|m| m.split(['-', '_']).take(4).last().unwrap_or(m))
                .collect();
            let label: Vec<String> = models
                .iter()
                .map(|m| {
                    m.replace("Meta-Llama-3_1-", "L")
                        .replace("-Instruct", "")
                        .replace("gemini-1.5-", "g-")
                })
                .collect();
            let _ = short;
            println!(
                "{:<20} {:<44} {:>6.3} {:>7} {:>7} {:>9} {:>10} {:>10} {:>18}  {}",
                name,
                label.join("→"),
                s.apgr.unwrap_or(f64::NAN),
                pct(s.cpt50),
                pct(s.cpt80),
                pct(s.savings_at_95),
                pct(s.cost_rel_at_cpt50),
                pct(s.cost_rel_at_cpt80),
                frugal,
                aucs.join(" ")
            );
        }
    }
    Ok(())
}
