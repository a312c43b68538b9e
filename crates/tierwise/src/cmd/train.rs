//! `tierwise train --data DIR... --out FILE`: fit the learned router on outcome data
//! (`--cascade`: the answer scorer, in `cmd::cascade`).

use std::time::Instant;

use serde_json::json;
use tierwise_eval::training::{self, DEFAULT_QUALITY, RouterTrainOptions};

use crate::cli::TrainArgs;
use crate::output::{self, Bar, Status};

pub fn run(args: TrainArgs) -> anyhow::Result<Status> {
    if args.cascade {
        return super::cascade::train(args);
    }
    let started = Instant::now();
    let mut sets = Vec::new();
    for d in &args.data {
        sets.push(super::load_data(d, None, args.json)?);
    }
    // the embedding model is loaded only for a feature list that names it
    let embed = if training::wants_embedding(&args.features) {
        super::embed_hook(args.embed_dir.as_deref())?
    } else {
        None
    };
    let opts = RouterTrainOptions {
        features: args.features.clone(),
        estimate: args.estimate.clone(),
        l2_dense: args.l2_dense,
        l2_ngrams: args.l2_ngrams,
        l2_per_model: args.l2_per_model,
        l2_ngrams_per_model: args.l2_ngrams_per_model,
        l2_transfer: args.l2_transfer,
        max_iter: args.max_iter,
        transfer_from: args.transfer_from.clone(),
        embed,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let command = Some(format!("tierwise {}", argv.join(" ")));
    let trained = training::train_router(&sets, &opts, command, &Bar::new(args.json))?;
    tierwise_eval::write_file(&args.out, &(trained.file.to_json() + "\n"))?;
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        output::json(&json!({
            "out": args.out.display().to_string(),
            "data": trained.data,
            "models": trained.models,
            "default_threshold": trained.default_threshold,
            "seconds": seconds,
        }))?;
        return Ok(Status::Success);
    }
    let mut lines = vec![format!("wrote {}", args.out.display())];
    for d in &trained.data {
        lines.push(format!(
            "  data {}: {} rows ({} malformed skipped)",
            d.dataset, d.rows, d.malformed
        ));
    }
    for f in &trained.models {
        lines.push(format!(
            "  model [{}]: {} rows, {} outcomes, {} iterations, loss {:.4}, {:.1} s",
            f.features, f.rows, f.pairs, f.iterations, f.loss, f.seconds
        ));
    }
    lines.push(format!(
        "  default threshold {:.4} (quality ≥ {DEFAULT_QUALITY} of the top model on the training pairs)",
        trained.default_threshold
    ));
    lines.push(format!("  total {seconds:.1} s"));
    output::out(&lines.join("\n"));
    Ok(Status::Success)
}
