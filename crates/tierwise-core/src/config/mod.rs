//! `tierwise.toml`: raw (as written) → validated (`Config`).
//!
//! Every raw struct denies unknown fields, so a typo is an error that names the field.
//! [`Config::load`] destructures [`RawConfig`] and hands each section to its own loader, which
//! validates it: prices positive, tiers ordered cheapest first, every tier a rule or option
//! names exists.
//!
//! One file per section, each with its raw (serde) type, its validated type, its defaults as
//! named constants and its `load` (raw → validated):
//! - `server.rs`: the top-level `listen`, and `[server]`;
//! - `catalog.rs`: `[[tiers]]` (with `[[tiers.long_context]]`), `[[models]]`, `[pricing]` (with
//!   `database`, the price database) and the top-level `baseline`;
//! - `upstream.rs`: `[upstream]` (and its environment variables);
//! - `log.rs`: `[log]`;
//! - `routing.rs`: `[routing]` with its rules and learned router, and `cascade.rs` for
//!   `[routing.cascade]`;
//! - `tools.rs`: `[tools]`;
//! - `audit.rs`: `[audit]`;
//! - `auth.rs`: `[auth]` (virtual keys, the admin key) and `[store]` (PostgreSQL);
//! - `quality.rs`: `[quality]` (the bar) and `[quality.shadow]` (the gateway's shadow tests);
//! - `cache.rs`: `[cache]` (prompt-cache shaping).
//!
//! To add a section: write its file (raw type with `#[serde(deny_unknown_fields)]`, validated
//! type, defaults, `pub(super) fn load`), declare it below with `pub use` of its public types,
//! add its raw field to [`RawConfig`] (`#[serde(default)]` if it may be absent) and its
//! validated field to [`Config`], and call its `load` in [`Config::load`] — in the order the
//! sections should be checked, which is the order their errors are reported in.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::catalog::{Catalog, CatalogError};

mod audit;
mod auth;
mod cache;
mod cascade;
mod catalog;
mod log;
mod quality;
mod routing;
mod server;
mod tools;
mod upstream;

pub use audit::{Audit, RawAudit};
pub use auth::{ADMIN_KEY_ENV, Auth, AuthMode, DATABASE_URL_ENV, RawAuth, RawStore, StoreConfig};
pub use cache::{CacheShaping, RawCache};
pub use cascade::{Cascade, RawCascade, RawThresholds};
pub use catalog::{RawContextTier, RawDecimal, RawModel, RawPricing, RawTier};
pub use log::{LogConfig, RawLog};
pub use quality::{Quality, RawQuality, RawShadow, Shadow};
pub use routing::{
    DispatchMode, RawLearned, RawRouting, RawRule, RouterMode, Routing, Rule, RuleWhen,
};
pub use server::{RawServer, RequestLimits};
pub use tools::{RawTools, ToolMethod, ToolMode, Tools};
pub use upstream::{RawUpstream, Secret, Upstream};

/// The configuration shipped in the binary: identical to `tierwise.toml` at the repo root.
pub const DEFAULT_TOML: &str = include_str!("../../../../tierwise.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: Option<String>,
    pub baseline: Option<String>,
    #[serde(default)]
    pub upstream: RawUpstream,
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub pricing: RawPricing,
    pub tiers: Vec<RawTier>,
    #[serde(default)]
    pub models: Vec<RawModel>,
    #[serde(default)]
    pub routing: RawRouting,
    #[serde(default)]
    pub tools: RawTools,
    #[serde(default)]
    pub audit: RawAudit,
    #[serde(default)]
    pub auth: RawAuth,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub quality: RawQuality,
    #[serde(default)]
    pub cache: RawCache,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub catalog: Catalog,
    pub upstream: Upstream,
    pub max_body_bytes: usize,
    /// `[server]`'s other limits: JSON depth, messages, tools, header bytes.
    pub limits: RequestLimits,
    pub log: LogConfig,
    pub routing: Routing,
    pub tools: Tools,
    pub audit: Audit,
    pub auth: Auth,
    pub store: StoreConfig,
    pub quality: Quality,
    pub cache: CacheShaping,
    /// Folder of the config file (relative paths resolve against it); `.` for the embedded one.
    pub base_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Parse(String),
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

impl ConfigError {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Reads an environment variable; a seam so tests can supply their own environment.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A path from the config file: as written when absolute, else under `base_dir` (the config
/// file's folder).
fn resolve(base_dir: &Path, path: impl Into<PathBuf>) -> PathBuf {
    let p = path.into();
    if p.is_absolute() { p } else { base_dir.join(p) }
}

impl Config {
    /// The embedded default configuration (same as the repo's `tierwise.toml`).
    pub fn embedded(env: EnvLookup<'_>) -> Result<Config, ConfigError> {
        Config::from_toml(DEFAULT_TOML, Path::new("."), env)
    }

    /// Reads and validates a config file.
    pub fn load_file(path: &Path, env: EnvLookup<'_>) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        Config::from_toml(&text, &dir, env)
    }

    pub fn from_toml(
        text: &str,
        base_dir: &Path,
        env: EnvLookup<'_>,
    ) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            // toml's message names the key and the line; keep it on one line.
            ConfigError::Parse(
                e.to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
            )
        })?;
        Config::load(raw, base_dir, env)
    }

    /// Validates a raw config, section by section (the first error is returned). Environment:
    /// `TIERWISE_UPSTREAM_BASE_URL` overrides the upstream base URL; the API key comes from
    /// `upstream.api_key`, else the variable named by `upstream.api_key_env` (default
    /// `OPENAI_API_KEY`).
    pub fn load(
        raw: RawConfig,
        base_dir: &Path,
        env: EnvLookup<'_>,
    ) -> Result<Config, ConfigError> {
        let RawConfig {
            listen,
            baseline,
            upstream,
            server,
            log,
            pricing,
            tiers,
            models,
            routing,
            tools,
            audit,
            auth,
            store,
            quality,
            cache,
        } = raw;
        let listen = server::load_listen(listen)?;
        let catalog = catalog::load(baseline, pricing, tiers, models, base_dir)?;
        let upstream = upstream::load(upstream, env)?;
        let (max_body_bytes, limits) = server::load(server)?;
        let log = log::load(log, base_dir);
        let routing = routing::load(routing, &catalog, base_dir)?;
        let tools = tools::load(tools)?;
        let audit = audit::load(audit);
        let auth = auth::load_auth(auth, env)?;
        let store = auth::load_store(store, env)?;
        let quality = quality::load(quality, &catalog)?;
        let cache = cache::load(cache);
        Ok(Config {
            listen,
            catalog,
            upstream,
            max_body_bytes,
            limits,
            log,
            routing,
            tools,
            audit,
            auth,
            store,
            quality,
            cache,
            base_dir: base_dir.to_path_buf(),
        })
    }
}

/// The environment of tests: no variable is set.
#[cfg(test)]
fn no_env(_: &str) -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use rust_decimal::Decimal;

    use super::*;

    #[test]
    fn embedded_default_is_valid() {
        let c = Config::embedded(&no_env).unwrap();
        let names: Vec<_> = c.catalog.tiers().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["nano", "mini", "standard", "flagship"]);
        assert_eq!(c.catalog.baseline().1.model, "gpt-5.5");
        assert_eq!(
            c.catalog.tiers()[0].prices.input,
            Decimal::from_str("0.20").unwrap()
        );
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    }

    #[test]
    fn cache_section_is_validated() {
        assert!(Config::embedded(&no_env).unwrap().cache.shape);
        let off = DEFAULT_TOML.replace("shape = true", "shape = false");
        assert!(
            !Config::from_toml(&off, Path::new("."), &no_env)
                .unwrap()
                .cache
                .shape
        );
        for (from, to, named) in [
            ("shape = true", "shape = \"yes\"", "invalid type"),
            ("shape = true", "shap = true", "shap"),
        ] {
            let text = DEFAULT_TOML.replace(from, to);
            let err = Config::from_toml(&text, Path::new("."), &no_env).unwrap_err();
            assert!(err.to_string().contains(named), "{err}");
        }
    }

    #[test]
    fn unknown_field_is_named() {
        let text = DEFAULT_TOML.replace("[log]", "[log]\nstore_bodiez = true");
        let err = Config::from_toml(&text, Path::new("."), &no_env).unwrap_err();
        assert!(err.to_string().contains("store_bodiez"), "{err}");
    }
}
