//! `tierwise calibrate --data DIR --target …`: thresholds of the learned router for a strong
//! share, a budget or a quality target, written into the config's `[routing.learned]`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::json;
use tierwise_eval::config_edit::set_learned_thresholds;
use tierwise_eval::ladder::Ladder;
use tierwise_eval::learn;
use tierwise_router::learned::calibrate::{CalRow, Target, calibrate};

use super::eval::{load_data, load_embedder, load_router};
use crate::cli::CalibrateArgs;
use crate::output::{self, Status};

const PER_MILLION: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

/// `n` models of `ladder` spread evenly from the cheapest to the strongest.
fn spread(ladder: &[String], n: usize) -> Vec<String> {
    if n <= 1 || ladder.len() <= n {
        return ladder.to_vec();
    }
    (0..n)
        .map(|i| ladder[i * (ladder.len() - 1) / (n - 1)].clone())
        .collect()
}

/// The config `calibrate` writes: `--config FILE`, else `./tierwise.toml` when it exists;
/// `None` only with `--dry-run` (nothing is written then).
pub(super) fn config_to_write(
    config: Option<&PathBuf>,
    dry_run: bool,
) -> anyhow::Result<Option<PathBuf>> {
    let path = config
        .cloned()
        .or_else(|| Some(PathBuf::from("tierwise.toml")).filter(|p| p.is_file()));
    if path.is_none() && !dry_run {
        anyhow::bail!(
            "no config to write: pass --config FILE (or run where tierwise.toml is), or --dry-run"
        );
    }
    Ok(path)
}

pub fn run(args: CalibrateArgs) -> anyhow::Result<Status> {
    let target = Target::parse(&args.target).map_err(|e| anyhow::anyhow!("--target: {e}"))?;
    let path = config_to_write(args.config.as_ref(), args.dry_run)?;
    let config = super::load_config(path.as_deref())?;
    let tiers = config.catalog.tiers().to_vec();
    if tiers.len() < 2 {
        anyhow::bail!(
            "the config has {} tier(s); calibration needs at least 2",
            tiers.len()
        );
    }
    let embedder = load_embedder(args.embed_dir.as_deref())?.map(Arc::new);
    let router_name: Option<String> = args.router.clone().or_else(|| {
        config
            .routing
            .learned_weights
            .as_ref()
            .filter(|p| p.is_file())
            .map(|p| p.display().to_string())
    });
    let (router, label) = load_router(router_name.as_deref(), embedder.as_ref())?;
    if let Some(n) = router.note() {
        output::note(n);
    }
    let ds = load_data(&args.data, args.split.as_deref(), args.json)?;
    let tier_models: Vec<&str> = tiers.iter().map(|t| t.model.as_str()).collect();
    let model = router.model().clone();
    let embed_fn = embedder.as_ref().map(|e| {
        let e = Arc::clone(e);
        move |t: &str| e.embed(t)
    });
    let embed_ref: Option<learn::Embed<'_>> = embed_fn.as_ref().map(|f| f as learn::Embed<'_>);
    let cost = |input: u64, output: u64, k: usize| -> f64 {
        let p = &tiers[k].prices;
        ((Decimal::from(input) * p.input + Decimal::from(output) * p.output) / PER_MILLION)
            .to_f64()
            .unwrap_or(0.0)
    };
    let mut stand_ins = None;
    let rows: Vec<CalRow> = if target.needs_scores() {
        let models = args
            .models
            .clone()
            .unwrap_or_else(|| spread(&ds.default_ladder(), tiers.len()));
        if models.len() != tiers.len() {
            anyhow::bail!(
                "--models: {} data models for {} config tiers; name one per tier, cheapest first",
                models.len(),
                tiers.len()
            );
        }
        let ladder = Ladder::new(&ds, &models)?;
        let idx: Vec<usize> = ladder.rows.iter().map(|r| r.row).collect();
        let feats = learn::featurize_rows(&ds, &idx, &model.features, embed_ref);
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
        let feats = learn::featurize_rows(&ds, &all, &model.features, embed_ref);
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
    let written = match (&path, args.dry_run) {
        (Some(p), false) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            let comment = format!(
                "calibrated by `tierwise calibrate --target {}` on {} ({} rows)",
                args.target, ds.name, cal.rows
            );
            let new = set_learned_thresholds(&text, &cal.thresholds, &comment)?;
            std::fs::write(p, new).with_context(|| format!("cannot write {}", p.display()))?;
            Some(p.display().to_string())
        }
        _ => None,
    };
    if args.json {
        output::json(&json!({
            "calibration": cal,
            "router": label,
            "tiers": tiers.iter().map(|t| t.name.clone()).collect::<Vec<_>>(),
            "stand_ins": stand_ins,
            "data": ds.name,
            "written": written,
        }))?;
    } else {
        let mut lines = vec![format!(
            "thresholds [{}] for tiers {} (router {label}, {} rows of {})",
            cal.thresholds
                .iter()
                .map(|t| format!("{t:.4}"))
                .collect::<Vec<_>>()
                .join(", "),
            tiers
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(" → "),
            cal.rows,
            ds.name
        )];
        lines.push(format!(
            "  share per tier: {}",
            tiers
                .iter()
                .zip(&cal.share)
                .map(|(t, s)| format!("{} {:.1}%", t.name, s * 100.0))
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
                stand_ins.clone().unwrap_or_default().join(", ")
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
        lines.push(match &written {
            Some(p) => format!("  written to {p} ([routing.learned] thresholds)"),
            None => "  not written (--dry-run)".into(),
        });
        output::out(&lines.join("\n"));
    }
    Ok(Status::Success)
}
