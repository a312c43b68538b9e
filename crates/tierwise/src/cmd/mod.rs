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
    Ok(tierwise_router::Policy::from_config(config))
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
