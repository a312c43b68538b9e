//! One module per command: argument wiring only.

pub mod audit;
pub mod bench;
pub mod calibrate;
pub mod cascade;
pub mod config;
pub mod eval;
pub mod route;
pub mod serve;
pub mod tools;
pub mod train;

use std::path::{Path, PathBuf};

use anyhow::Context;
use tierwise_core::Config;

/// The routing policy `serve`, `route` and `audit` share: the config's rules, plus the learned
/// router when the config's mode uses it.
pub fn policy(config: &Config) -> anyhow::Result<tierwise_router::Policy> {
    let policy = tierwise_router::Policy::from_config(config);
    if config.routing.mode != tierwise_core::config::RouterMode::Learned {
        return Ok(policy);
    }
    // The learned router: `[routing.learned] weights` (the shipped router/default.json when the
    // file is absent), with sentence embeddings when the model was fetched
    // (scripts/fetch-embeddings.sh); otherwise the embedding-free fallback, said once.
    let embedder = eval::load_embedder(None)?.map(std::sync::Arc::new);
    let weights = config
        .routing
        .learned_weights
        .as_ref()
        .filter(|p| p.is_file())
        .map(|p| p.display().to_string());
    let (router, _label) = eval::load_router(weights.as_deref(), embedder.as_ref())?;
    if let Some(note) = router.note() {
        crate::output::note(note);
    }
    Ok(policy.with_learned(std::sync::Arc::new(router)))
}

fn env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

/// Loads `--config FILE`, else `./tierwise.toml` when present, else the embedded default.
pub fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    match path {
        Some(p) => Config::load_file(p, &env).with_context(|| format!("config {}", p.display())),
        None => {
            let local = PathBuf::from("tierwise.toml");
            if local.is_file() {
                Config::load_file(&local, &env).context("config tierwise.toml")
            } else {
                Config::embedded(&env).context("embedded config")
            }
        }
    }
}
