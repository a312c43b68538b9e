//! Reading the weight files a configuration names: the learned router and the cascade's answer
//! scorer. A file that is named but cannot be read or parsed is an error naming it, never a
//! silent fall back to the shipped weights; the shipped ones (embedded in the binary) are used
//! only when no file is named.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tierwise_core::config::{Config, RouterMode};

use crate::Policy;
use crate::cascade::{Scorer, ScorerError};
use crate::learned::{EmbedFn, LearnedError, LearnedRouter, RouterFile};

/// The shipped learned router (`router/default.json`, produced by `tierwise train`).
pub const SHIPPED_ROUTER: &str = include_str!("../../../router/default.json");

/// A sentence embedder to attach to a learned router: its name and dimension (matched against
/// the router file's) and the function itself.
#[derive(Clone)]
pub struct EmbedHook {
    pub name: String,
    pub dim: usize,
    pub embed: EmbedFn,
}

impl std::fmt::Debug for EmbedHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbedHook")
            .field("name", &self.name)
            .field("dim", &self.dim)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("router {label}: {source}")]
    Router {
        label: String,
        #[source]
        source: LearnedError,
    },
    #[error("scorer {label}: {source}")]
    Scorer {
        label: String,
        #[source]
        source: ScorerError,
    },
}

fn read(what: &'static str, path: &Path) -> Result<String, LoadError> {
    std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// The learned router in `path` (`None`: the shipped one), with `embed` attached when given
/// and used by the file; otherwise the file's embedding-free model is active and
/// [`LearnedRouter::note`] says so. Returns the router and its label for reports.
pub fn router(
    path: Option<&Path>,
    embed: Option<&EmbedHook>,
) -> Result<(LearnedRouter, String), LoadError> {
    let (text, label) = match path {
        None => (SHIPPED_ROUTER.to_string(), "default".to_string()),
        Some(p) => (read("router file", p)?, p.display().to_string()),
    };
    let wrap = |source| LoadError::Router {
        label: label.clone(),
        source,
    };
    let file = RouterFile::from_json(&text).map_err(wrap)?;
    let mut router = LearnedRouter::new(file).map_err(wrap)?;
    if let Some(e) = embed {
        router = router.with_embedder(&e.name, e.dim, Arc::clone(&e.embed));
    }
    Ok((router, label))
}

/// The answer scorer in `path` (`None`: the shipped one), with its label for reports.
pub fn scorer(path: Option<&Path>) -> Result<(Scorer, String), LoadError> {
    match path {
        Some(p) => {
            let label = p.display().to_string();
            let text = read("scorer file", p)?;
            let s = Scorer::from_json(&text).map_err(|source| LoadError::Scorer {
                label: label.clone(),
                source,
            })?;
            Ok((s, label))
        }
        None => {
            let label = "default (router/cascade.json)".to_string();
            let s = Scorer::shipped().map_err(|source| LoadError::Scorer {
                label: label.clone(),
                source,
            })?;
            Ok((s, label))
        }
    }
}

/// The routing policy `serve`, `route` and `audit` share: the config's rules, plus the learned
/// router (`[routing.learned] weights`, else the shipped one) when the config's mode uses it.
/// Returns the router's note (an embedding model it wanted but did not get), to say once.
pub fn policy(
    config: &Config,
    embed: Option<&EmbedHook>,
) -> Result<(Policy, Option<String>), LoadError> {
    let policy = Policy::from_config(config);
    if config.routing.mode != RouterMode::Learned {
        return Ok((policy, None));
    }
    let (router, _) = router(config.routing.learned_weights.as_deref(), embed)?;
    let note = router.note().map(str::to_string);
    Ok((policy.with_learned(Arc::new(router)), note))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;

    #[test]
    fn shipped_files_load() {
        let (r, label) = router(None, None).unwrap();
        assert_eq!(label, "default");
        assert!(!r.file().models.is_empty());
        scorer(None).unwrap();
    }

    #[test]
    fn a_named_file_that_is_missing_is_an_error_naming_it() {
        let missing = Path::new("/nonexistent/weights.json");
        let e = router(Some(missing), None).unwrap_err().to_string();
        assert!(
            e.starts_with("router file /nonexistent/weights.json:"),
            "{e}"
        );
        let e = scorer(Some(missing)).unwrap_err().to_string();
        assert!(
            e.starts_with("scorer file /nonexistent/weights.json:"),
            "{e}"
        );
    }
}
