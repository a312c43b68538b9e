//! `tierwise eval`: a router's cost/quality curve on outcome data, beside the baselines
//! (`--cascade`: the offline cascade, in `cmd::cascade`).

use tierwise_eval::report;
use tierwise_eval::router_eval::{self, RouterEvalOptions};

use crate::cli::EvalArgs;
use crate::output::{self, Bar, Status};

pub fn run(args: EvalArgs) -> anyhow::Result<Status> {
    if args.cascade {
        return super::cascade::eval(args);
    }
    let ds = super::load_data(&args.data, args.split.as_deref(), args.json)?;
    let opts = RouterEvalOptions {
        models: args.models.clone(),
        router: args.router.clone(),
        cv: args.cv,
        cv_by: args.cv_by.clone(),
        features: args.features.clone(),
        l2_ngrams_per_model: args.l2_ngrams_per_model,
        max_iter: args.max_iter,
        embed: super::embed_hook(args.embed_dir.as_deref())?,
    };
    let eval = router_eval::evaluate(&ds, &opts, &Bar::new(args.json))?;
    if let Some(n) = &eval.router_note {
        output::note(n);
    }
    if let Some(path) = &args.scores {
        eval.write_scores(path)?;
    }
    if let Some(path) = &args.html {
        tierwise_eval::write_file(path, &report::html(&eval.report))?;
    }
    if let Some(path) = &args.svg {
        tierwise_eval::write_file(path, &report::svg(&eval.report))?;
    }
    if args.json {
        output::json(&eval.report)?;
    } else {
        output::out(&report::text(&eval.report));
    }
    Ok(Status::Success)
}
