//! `tierwise calibrate --data DIR --target …`: thresholds of the learned router for a strong
//! share, a budget or a quality target, written into the config's `[routing.learned]`
//! (`--cascade`: the cascade plan, in `cmd::cascade`).

use tierwise_eval::calibration::{self, ThresholdOptions};
use tierwise_train::calibrate::Target;

use crate::cli::CalibrateArgs;
use crate::output::{self, Status};

pub fn run(args: CalibrateArgs) -> anyhow::Result<Status> {
    let target = Target::parse(&args.target).map_err(|e| anyhow::anyhow!("--target: {e}"))?;
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
    let ds = super::load_data(&args.data, args.split.as_deref(), args.json)?;
    let opts = ThresholdOptions {
        tiers: config.catalog.tiers(),
        router: &router,
        router_label: label,
        target,
        target_text: &args.target,
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
