//! `[log]`: where the request log is kept and whether it stores bodies.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::resolve;

/// `log.path` when absent (relative: resolved against the config file's folder).
pub const DEFAULT_LOG_PATH: &str = "tierwise.db";
/// `log.store_bodies` when absent.
pub const DEFAULT_STORE_BODIES: bool = false;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub path: Option<String>,
    pub store_bodies: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub path: PathBuf,
    pub store_bodies: bool,
}

/// Validates `[log]`.
pub(super) fn load(raw: RawLog, base_dir: &Path) -> LogConfig {
    let RawLog { path, store_bodies } = raw;
    LogConfig {
        path: resolve(
            base_dir,
            path.unwrap_or_else(|| DEFAULT_LOG_PATH.to_string()),
        ),
        store_bodies: store_bodies.unwrap_or(DEFAULT_STORE_BODIES),
    }
}
