//! One module per command: argument wiring only. The helpers here load what several commands
//! share (config, data sets, the embedding model, the routing policy) and say on stderr what
//! they skipped.

pub mod audit;
#[cfg(feature = "bench")]
pub mod bench;
pub mod calibrate;
pub mod cascade;
pub mod config;
pub mod eval;
pub mod keys;
pub mod prices;
pub mod quality;
pub mod route;
pub mod serve;
pub mod tools;
pub mod train;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tierwise_core::Config;
use tierwise_eval::data::{self, Dataset};
use tierwise_router::load::EmbedHook;

use crate::output;

/// The routing policy `serve`, `route` and `audit` share: the config's rules, plus the learned
/// router when the config's mode uses it (`[routing.learned] weights`, else the shipped one),
/// with sentence embeddings when the model was fetched (`scripts/fetch-embeddings.sh`);
/// otherwise its embedding-free fallback, said once.
pub fn policy(config: &Config) -> anyhow::Result<tierwise_router::Policy> {
    let embed = if config.routing.mode == tierwise_core::config::RouterMode::Learned {
        embed_hook(None)?
    } else {
        None
    };
    let (policy, note) = tierwise_router::load::policy(config, embed.as_ref())?;
    if let Some(note) = note {
        output::note(&note);
    }
    Ok(policy)
}

/// The static embedding model (`--embed-dir`, `$TIERWISE_EMBED_DIR`, or the fetch script's
/// folder) as a hook for the learned router; a folder named by the option that fails is an
/// error.
pub fn embed_hook(arg: Option<&Path>) -> anyhow::Result<Option<EmbedHook>> {
    let embedder = tierwise_embed::load_optional(arg).context("embedding model")?;
    Ok(embedder.map(|e| {
        let e = Arc::new(e);
        let name = e.name().to_string();
        let dim = e.dim();
        EmbedHook {
            name,
            dim,
            embed: Arc::new(move |t: &str| e.embed(t)),
        }
    }))
}

/// Loads a data set, reporting malformed lines on stderr (one line each, the first 10).
pub fn load_data(path: &Path, split: Option<&str>, quiet: bool) -> anyhow::Result<Dataset> {
    let pb = output::progress(0, quiet, "reading");
    let mut bytes = 0usize;
    let ds = data::load(path, split, &mut |n| {
        bytes += n;
        if bytes > 1 << 20 {
            pb.inc(bytes as u64);
            bytes = 0;
        }
    })?;
    pb.finish_and_clear();
    for m in ds.malformed.iter().take(10) {
        output::note(&format!(
            "warning: {}:{}: malformed row skipped: {}",
            m.file, m.line, m.error
        ));
    }
    if ds.malformed.len() > 10 {
        output::note(&format!(
            "warning: {} more malformed rows skipped",
            ds.malformed.len() - 10
        ));
    }
    Ok(ds)
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
