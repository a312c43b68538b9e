//! `tierwise config check FILE`: validate and exit (0 valid, 1 invalid, 2 unreadable).

use anyhow::Context;
use serde_json::json;
use tierwise_core::Config;
use tierwise_core::config::ConfigError;

use crate::cli::ConfigCheckArgs;
use crate::output::{self, Status};

pub fn check(args: ConfigCheckArgs) -> anyhow::Result<Status> {
    match Config::load_file(&args.file, &super::env) {
        Ok(c) => {
            let tiers: Vec<_> = c
                .catalog
                .tiers()
                .iter()
                .map(|t| format!("{} ({})", t.name, t.model))
                .collect();
            if args.json {
                output::json(&json!({
                    "valid": true,
                    "file": args.file.display().to_string(),
                    "tiers": c.catalog.tiers().iter().map(|t| &t.name).collect::<Vec<_>>(),
                    "rules": c.routing.rules.len(),
                    "priced_models": c.catalog.models().len(),
                }))?;
            } else {
                output::out(&format!(
                    "{}: valid — tiers {}; {} rules; {} other priced models",
                    args.file.display(),
                    tiers.join(", "),
                    c.routing.rules.len(),
                    c.catalog.models().len()
                ));
            }
            Ok(Status::Success)
        }
        Err(e @ ConfigError::Read { .. }) => Err(e).context("config check"),
        Err(e) => {
            if args.json {
                output::json(
                    &json!({"valid": false, "file": args.file.display().to_string(), "error": e.to_string()}),
                )?;
            } else {
                output::note(&format!("{}: invalid: {e}", args.file.display()));
            }
            Ok(Status::Problems)
        }
    }
}
