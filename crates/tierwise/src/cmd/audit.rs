//! `tierwise audit LOG... [--store DB|postgres://…] [--group-by key|team] [--html FILE] [--json]`: spend by category × tier and
//! what each lever would save. The engine is `tierwise-audit`; the routing what-if uses the
//! same policy `serve` builds (`super::policy`).

use anyhow::Context;
use tierwise_audit::{InputSpec, Options, html, render};

use crate::cli::AuditArgs;
use crate::output::{self, Status};

/// Inputs this large (bytes on disk) get a progress bar.
const PROGRESS_MIN_BYTES: u64 = 16 << 20;

fn time_arg(flag: &'static str, value: Option<&str>) -> anyhow::Result<Option<i64>> {
    match value {
        None => Ok(None),
        Some(v) => tierwise_audit::call::parse_time(v)
            .map(Some)
            .ok_or_else(|| tierwise_audit::AuditError::Time {
                flag,
                value: v.to_string(),
            })
            .map_err(Into::into),
    }
}

pub fn run(args: AuditArgs) -> anyhow::Result<Status> {
    if args.logs.is_empty() && args.store.is_none() {
        anyhow::bail!("give at least one log file (or - for stdin), or --store FILE");
    }
    let group_by =
        match args.group_by.as_deref() {
            None => None,
            Some(g) => Some(tierwise_audit::groups::GroupBy::parse(g).ok_or_else(|| {
                anyhow::anyhow!("--group-by: expected `key` or `team`, got {g:?}")
            })?),
        };
    let config = super::load_config(args.config.as_deref())?;
    let policy = super::policy(&config)?;
    let mut options = Options::from_config(&config);
    options.strict = args.strict;
    options.since_ms = time_arg("since", args.since.as_deref())?;
    options.until_ms = time_arg("until", args.until.as_deref())?;
    if let Some(t) = args.threads {
        options.threads = t;
    }
    let mut inputs: Vec<InputSpec> = args.logs.iter().map(|p| InputSpec::parse(p)).collect();
    if let Some(db) = &args.store {
        inputs.push(InputSpec::Store(db.clone()));
    }
    let total: u64 = inputs.iter().filter_map(InputSpec::size).sum();
    let bar = output::progress(total, args.json || total < PROGRESS_MIN_BYTES, "auditing");
    let report = tierwise_audit::audit(&inputs, &policy, &options, &mut |bytes, calls| {
        bar.set_position(bytes.min(total));
        bar.set_message(format!("auditing: {calls} calls"));
    });
    bar.finish_and_clear();
    let mut report = report?;
    if args.cascade {
        let setup = tierwise_audit::cascade_replay::Setup::from_config(&config)?;
        report.cascade_replay = Some(tierwise_audit::cascade_replay::replay(
            &inputs,
            &setup,
            &config.catalog,
            options.since_ms,
            options.until_ms,
        )?);
    }
    let groups = match (group_by, &args.store) {
        (Some(by), Some(store)) => Some(tierwise_audit::groups::group(
            &store.to_string_lossy(),
            &tierwise_audit::engine::time_range(&options),
            by,
        )?),
        _ => None,
    };
    if let Some(path) = &args.html {
        std::fs::write(path, html::render(&report))
            .with_context(|| format!("cannot write {}", path.display()))?;
        if !args.json {
            output::note(&format!("wrote {}", path.display()));
        }
    }
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        if let Some(g) = &groups {
            v["group_by"] = serde_json::to_value(g)?;
        }
        output::json(&v)?;
    } else {
        output::out(&render::render(&report, output::color()));
        if let Some(g) = &groups {
            output::out(&group_table(g));
        }
    }
    Ok(Status::Success)
}

/// Spend by key or team, largest first.
fn group_table(g: &tierwise_audit::groups::Groups) -> String {
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
    let by = match g.by {
        tierwise_audit::groups::GroupBy::Key => "key",
        tierwise_audit::groups::GroupBy::Team => "team",
    };
    t.set_header([
        by,
        "requests",
        "errors",
        "input tokens",
        "output tokens",
        "cost $",
        "baseline $",
    ]);
    for r in &g.groups {
        t.add_row([
            r.name.clone(),
            r.requests.to_string(),
            r.errors.to_string(),
            r.input_tokens.to_string(),
            r.output_tokens.to_string(),
            r.cost_usd.round_dp(6).normalize().to_string(),
            r.baseline_cost_usd.round_dp(6).normalize().to_string(),
        ]);
    }
    format!("\nSpend by {by} (request log)\n{t}")
}
