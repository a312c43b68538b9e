//! `tierwise calibrate --data DIR --target …`: thresholds of the learned router for a strong
//! share, a budget or a quality target, written into the config's `[routing.learned]`
//! (`--cascade`: the cascade plan, in `cmd::cascade`). `tierwise calibrate --from-log`:
//! per-category rules from the gateway's shadow tests (`tierwise_quality::policy`).

use tierwise_eval::calibration::{self, ThresholdOptions};
use tierwise_train::calibrate::Target;

use crate::cli::CalibrateArgs;
use crate::output::{self, Status};

pub fn run(args: CalibrateArgs) -> anyhow::Result<Status> {
    let target_text = args.target.clone().unwrap_or_default();
    let target = Target::parse(&target_text).map_err(|e| anyhow::anyhow!("--target: {e}"))?;
    let data = args
        .data
        .clone()
        .ok_or_else(|| anyhow::anyhow!("--data DIR is required"))?;
    let path = calibration::config_to_write(args.config.as_deref(), args.dry_run)?;
    let config = super::load_config(path.as_deref())?;
    let embed = super::embed_hook(args.embed_dir.as_deref())?;
    // `--router FILE`, else the config's `[routing.learned] weights`, else the shipped router
    let router_path = match args.router.as_deref() {
        Some("default") => None,
        Some(p) => Some(std::path::PathBuf::from(p)),
        None => config.routing.learned_weights.clone(),
    };
    let (router, label) = tierwise_router::load::router(router_path.as_deref(), embed.as_ref())?;
    if let Some(n) = router.note() {
        output::note(n);
    }
    let ds = super::load_data(&data, args.split.as_deref(), args.json)?;
    let opts = ThresholdOptions {
        tiers: config.catalog.tiers(),
        router: &router,
        router_label: label,
        target,
        target_text: &target_text,
        models: args.models.clone(),
        embed: embed.as_ref().map(|e| &*e.embed as _),
        write_to: path.as_deref().filter(|_| !args.dry_run),
    };
    let result = calibration::calibrate_thresholds(&ds, &opts)?;
    if args.json {
        output::json(&result)?;
    } else {
        output::out(&result.text());
    }
    Ok(Status::Success)
}

/// `--from-log`: verdicts → per-category rules in the config, the diff, savings and bound.
pub fn from_log(args: CalibrateArgs) -> anyhow::Result<Status> {
    use anyhow::Context;
    let path = calibration::config_to_write(args.config.as_deref(), args.dry_run)?;
    let config = super::load_config(path.as_deref())?;
    let opts = super::quality::bar_confidence(args.bar, args.confidence, &config)?;
    let store = super::quality::store_path(args.store.as_deref(), &config)?;
    let shadow = super::quality::shadow_rows(&store, None)?;
    let report = tierwise_quality::report::report(&shadow, opts);
    let log = tierwise_store::LogReader::open(&store)?.rows(&tierwise_store::TimeRange::all())?;
    let text = match &path {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?
        }
        None => tierwise_core::config::DEFAULT_TOML.to_string(),
    };
    let cal = tierwise_quality::policy::calibrate(&report, &log, &config.catalog, &text);
    // the new text must be a valid config holding the rules
    let base = path
        .as_deref()
        .and_then(std::path::Path::parent)
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| std::path::PathBuf::from("."));
    let checked =
        tierwise_core::Config::from_toml(&cal.new_text, &base, &|k| std::env::var(k).ok())
            .context("the calibrated config does not validate")?;
    for m in &cal.moves {
        let name = format!("{}{}", tierwise_quality::policy::RULE_PREFIX, m.category);
        if !checked.routing.rules.iter().any(|r| r.name == name) {
            anyhow::bail!("the calibrated config does not hold the rule {name}");
        }
    }
    if let Some(p) = path.as_deref().filter(|_| !args.dry_run)
        && cal.new_text != cal.old_text
    {
        std::fs::write(p, &cal.new_text)
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    if args.json {
        output::json(&cal)?;
    } else {
        let mut s = format!(
            "calibrate --from-log: bar {} at confidence {}; {} categories moved down\n",
            cal.bar,
            cal.confidence,
            cal.moves.len()
        );
        for m in &cal.moves {
            s.push_str(&format!(
                "  {}: {} -> {} — quality ratio >= {:.3} (estimate {}), {} logged calls: ${} -> ${} (saves ${})\n",
                m.category,
                m.from_tier,
                m.to_tier,
                m.quality_lower,
                m.estimate.map_or("-".to_string(), |e| format!("{e:.3}")),
                m.calls,
                m.cost_usd.round_dp(6),
                m.projected_usd.round_dp(6),
                m.savings_usd.round_dp(6)
            ));
        }
        s.push_str(&format!(
            "projected savings on the logged calls: ${} of ${}; expected share of moved categories below the bar <= {:.2} (Benjamini-Hochberg)\n",
            cal.savings_usd.round_dp(6),
            cal.logged_usd.round_dp(6),
            1.0 - cal.confidence
        ));
        for k in &cal.skipped {
            s.push_str(&format!("skipped: {k}\n"));
        }
        if cal.diff.is_empty() {
            s.push_str("config unchanged\n");
        } else {
            s.push_str("diff:\n");
            for l in &cal.diff {
                s.push_str(&format!("  {l}\n"));
            }
            match path.as_deref() {
                Some(p) if !args.dry_run => s.push_str(&format!("wrote {}\n", p.display())),
                _ => s.push_str("(dry run: nothing written)\n"),
            }
        }
        output::out(&s);
    }
    Ok(Status::Success)
}
