//! `tierwise calibrate --data DIR --target …`: thresholds of the learned router for a strong
//! share, a budget or a quality target on outcome data, written into the config's
//! `[routing.learned]` as a small text edit.

use std::path::{Path, PathBuf};

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;
use tierwise_core::catalog::Tier;
use tierwise_router::learned::LearnedRouter;
use tierwise_train::calibrate::{CalRow, Calibration, Target, calibrate};

use crate::config_edit::set_learned_thresholds;
use crate::data::Dataset;
use crate::ladder::Ladder;
use crate::learn;
use crate::{RunError, write_file};

const PER_MILLION: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

/// The config `calibrate` writes: `config`, else `./tierwise.toml` when it exists; `None` only
/// with `dry_run` (nothing is written then).
pub fn config_to_write(config: Option<&Path>, dry_run: bool) -> Result<Option<PathBuf>, RunError> {
    let path = config
        .map(Path::to_path_buf)
        .or_else(|| Some(PathBuf::from("tierwise.toml")).filter(|p| p.is_file()));
    if path.is_none() && !dry_run {
        return Err(RunError::invalid(
            "no config to write: pass --config FILE (or run where tierwise.toml is), or --dry-run",
        ));
    }
    Ok(path)
}

/// `n` models of `ladder` spread evenly from the cheapest to the strongest.
fn spread(ladder: &[String], n: usize) -> Vec<String> {
    if n <= 1 || ladder.len() <= n {
        return ladder.to_vec();
    }
    (0..n)
        .map(|i| ladder[i * (ladder.len() - 1) / (n - 1)].clone())
        .collect()
}

/// What to calibrate: the config's tiers, the router and its label, the target.
pub struct ThresholdOptions<'a> {
    pub tiers: &'a [Tier],
    pub router: &'a LearnedRouter,
    pub router_label: String,
    pub target: Target,
    /// The `--target` text, as given (for the comment written beside the thresholds).
    pub target_text: &'a str,
    /// Data models standing in for the tiers, cheapest first (targets that need scores).
    pub models: Option<Vec<String>>,
    pub embed: Option<learn::Embed<'a>>,
    /// The config to write the thresholds into; `None` writes nothing.
    pub write_to: Option<&'a Path>,
}

/// The result, as `calibrate --json` prints it.
#[derive(Debug, Serialize)]
pub struct ThresholdCalibration {
    pub calibration: Calibration,
    pub router: String,
    pub tiers: Vec<String>,
    pub stand_ins: Option<Vec<String>>,
    pub data: String,
    pub written: Option<String>,
}

/// Fits the thresholds on `ds` and writes them into the config when asked.
pub fn calibrate_thresholds(
    ds: &Dataset,
    opts: &ThresholdOptions<'_>,
) -> Result<ThresholdCalibration, RunError> {
    let target = opts.target;
    let tiers = opts.tiers;
    if tiers.len() < 2 {
        return Err(RunError::invalid(format!(
            "the config has {} tier(s); calibration needs at least 2",
            tiers.len()
        )));
    }
    let tier_models: Vec<&str> = tiers.iter().map(|t| t.model.as_str()).collect();
    let router = opts.router;
    let model = router.model();
    let cost = |input: u64, output: u64, k: usize| -> f64 {
        let p = &tiers[k].prices;
        ((Decimal::from(input) * p.input + Decimal::from(output) * p.output) / PER_MILLION)
            .to_f64()
            .unwrap_or(0.0)
    };
    let mut stand_ins = None;
    let rows: Vec<CalRow> = if target.needs_scores() {
        let models = opts
            .models
            .clone()
            .unwrap_or_else(|| spread(&ds.default_ladder(), tiers.len()));
        if models.len() != tiers.len() {
            return Err(RunError::invalid(format!(
                "--models: {} data models for {} config tiers; name one per tier, cheapest first",
                models.len(),
                tiers.len()
            )));
        }
        let ladder = Ladder::new(ds, &models)?;
        let idx: Vec<usize> = ladder.rows.iter().map(|r| r.row).collect();
        let feats = learn::featurize_rows(ds, &idx, &model.features, opts.embed);
        stand_ins = Some(models.clone());
        ladder
            .rows
            .iter()
            .zip(&feats)
            .map(|(r, f)| {
                let row = &ds.rows[r.row];
                CalRow {
                    estimates: router.estimates(f, &tier_models),
                    cost: (0..tiers.len())
                        .map(|k| {
                            cost(
                                row.input_tokens,
                                row.outcomes.get(&models[k]).map_or(0, |o| o.output_tokens),
                                k,
                            )
                        })
                        .collect(),
                    score: Some(r.score.clone()),
                }
            })
            .collect()
    } else {
        let all: Vec<usize> = (0..ds.rows.len()).collect();
        let feats = learn::featurize_rows(ds, &all, &model.features, opts.embed);
        ds.rows
            .iter()
            .zip(feats)
            .map(|(row, f)| {
                let n = row.outcomes.len().max(1) as u64;
                let out = row.outcomes.values().map(|o| o.output_tokens).sum::<u64>() / n;
                CalRow {
                    estimates: router.estimates(&f, &tier_models),
                    cost: (0..tiers.len())
                        .map(|k| cost(row.input_tokens, out, k))
                        .collect(),
                    score: None,
                }
            })
            .collect()
    };
    let cal = calibrate(&rows, target)?;
    let written = match opts.write_to {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| RunError::read(p, e))?;
            let comment = format!(
                "calibrated by `tierwise calibrate --target {}` on {} ({} rows)",
                opts.target_text, ds.name, cal.rows
            );
            let new = set_learned_thresholds(&text, &cal.thresholds, &comment)?;
            write_file(p, &new)?;
            Some(p.display().to_string())
        }
        None => None,
    };
    Ok(ThresholdCalibration {
        calibration: cal,
        router: opts.router_label.clone(),
        tiers: tiers.iter().map(|t| t.name.clone()).collect(),
        stand_ins,
        data: ds.name.clone(),
        written,
    })
}

impl ThresholdCalibration {
    /// The report as text.
    pub fn text(&self) -> String {
        let cal = &self.calibration;
        let tiers = &self.tiers;
        let mut lines = vec![format!(
            "thresholds [{}] for tiers {} (router {}, {} rows of {})",
            cal.thresholds
                .iter()
                .map(|t| format!("{t:.4}"))
                .collect::<Vec<_>>()
                .join(", "),
            tiers.join(" → "),
            self.router,
            cal.rows,
            self.data
        )];
        lines.push(format!(
            "  share per tier: {}",
            tiers
                .iter()
                .zip(&cal.share)
                .map(|(t, s)| format!("{t} {:.1}%", s * 100.0))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        lines.push(format!(
            "  cost per 1k requests: {:.4} USD",
            cal.cost_usd_per_1k
        ));
        if let Some(q) = cal.quality_ratio {
            lines.push(format!(
                "  quality: {:.1}% of the top tier alone (stand-ins: {})",
                q * 100.0,
                self.stand_ins.clone().unwrap_or_default().join(", ")
            ));
        }
        if tiers.len() > 2 && cal.met {
            let what = if cal.quality_ratio.is_some() {
                "mean score"
            } else {
                "mean estimate of the chosen tier"
            };
            lines.push(format!(
                "  per-tier vs one shared threshold ({:.4}): {what} {:.4} vs {:.4}, cost per 1k {:.4} vs {:.4} USD",
                cal.threshold,
                cal.per_tier_quality,
                cal.shared_quality,
                cal.cost_usd_per_1k,
                cal.shared_cost_usd_per_1k
            ));
        }
        if !cal.met {
            lines.push("  the target cannot be met on this data; the closest point is used".into());
        }
        lines.push(match &self.written {
            Some(p) => format!("  written to {p} ([routing.learned] thresholds)"),
            None => "  not written (--dry-run)".into(),
        });
        lines.join("\n")
    }
}
