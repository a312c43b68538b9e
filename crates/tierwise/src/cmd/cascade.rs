//! `tierwise eval --cascade` (the offline cascade beside the prompt-only router and the two
//! combined), `tierwise train --cascade` (fit the answer scorer) and
//! `tierwise calibrate --cascade` (the per-tier plan written into the config).

use std::time::Instant;

use tierwise_eval::calibration::config_to_write;
use tierwise_eval::cascade_eval::{self, CascadeEvalOptions, PlanOptions};
use tierwise_eval::report;

use crate::cli::{CalibrateArgs, EvalArgs, TrainArgs};
use crate::output::{self, Bar, Status};

/// `tierwise eval --cascade`.
pub fn eval(args: EvalArgs) -> anyhow::Result<Status> {
    let ds = super::load_data(&args.data, args.split.as_deref(), args.json)?;
    let opts = CascadeEvalOptions {
        models: args.models.clone(),
        scorer: args.scorer.clone(),
        cv: args.cv,
        cv_by: args.cv_by.clone(),
        leave_category_out: args.leave_category_out,
        exclude_features: args.exclude_features.clone(),
        features: args.features.clone(),
        router: args.router.clone(),
        embed: super::embed_hook(args.embed_dir.as_deref())?,
    };
    let eval = cascade_eval::evaluate(&ds, &opts, &Bar::new(args.json))?;
    if let Some(path) = &args.scores {
        eval.write_scores(path)?;
    }
    if let Some(path) = &args.html {
        tierwise_eval::write_file(path, &report::html(&eval.report.report))?;
    }
    if let Some(path) = &args.svg {
        tierwise_eval::write_file(path, &report::svg(&eval.report.report))?;
    }
    if args.json {
        output::json(&eval.report)?;
    } else {
        output::out(&cascade_eval::text(&eval.report));
    }
    Ok(Status::Success)
}

/// `tierwise train --cascade --data DIR... --out FILE`: fit the answer scorer.
pub fn train(args: TrainArgs) -> anyhow::Result<Status> {
    let started = Instant::now();
    let mut sets = Vec::new();
    for d in &args.data {
        let ds = super::load_data(d, None, args.json)?;
        match cascade_eval::scorer_data_note(&ds) {
            Some(note) => output::note(&note),
            None => sets.push(ds),
        }
    }
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let command = Some(format!("tierwise {}", argv.join(" ")));
    let file = cascade_eval::train_scorer(&sets, &args.exclude_features, command)?;
    tierwise_eval::write_file(&args.out, &(file.to_json() + "\n"))?;
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        output::json(&cascade_eval::scorer_summary(&file, &args.out, seconds))?;
    } else {
        output::out(&cascade_eval::scorer_summary_text(
            &file, &args.out, seconds,
        ));
    }
    Ok(Status::Success)
}

/// `tierwise calibrate --cascade --data DIR --target quality=F|budget=F`: the FrugalGPT-style
/// plan fitted on recorded responses, written into the config's `[routing.cascade]`. The
/// data's response models stand in for the config's tiers, cheapest first (`--models`).
pub fn calibrate(args: CalibrateArgs) -> anyhow::Result<Status> {
    let target = args.target.clone().unwrap_or_default();
    let data = args
        .data
        .clone()
        .ok_or_else(|| anyhow::anyhow!("--data DIR is required"))?;
    let objective = cascade_eval::parse_target(&target)?;
    let path = config_to_write(args.config.as_deref(), args.dry_run)?;
    let config = super::load_config(path.as_deref())?;
    let ds = super::load_data(&data, args.split.as_deref(), args.json)?;
    let opts = PlanOptions {
        tiers: config.catalog.tiers(),
        objective,
        target_text: &target,
        models: args.models.clone(),
        // `--scorer FILE`, else the config's `[routing.cascade] scorer`, else the shipped one
        scorer: args
            .scorer
            .as_deref()
            .or(config.routing.cascade.scorer.as_deref()),
        max_attempts: config.routing.cascade.max_attempts,
        write_to: path.as_deref().filter(|_| !args.dry_run),
    };
    let plan = cascade_eval::calibrate_plan(&ds, &opts)?;
    if args.json {
        output::json(&plan)?;
    } else {
        output::out(&plan.text());
    }
    Ok(Status::Success)
}
