//! The top-level `listen` address and `[server]`: where the gateway listens and what it accepts.

use std::net::SocketAddr;

use serde::Deserialize;

use super::ConfigError;

/// `listen` when absent.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// `server.max_body_bytes` when absent: 4 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub max_body_bytes: Option<usize>,
}

/// Validates `listen` (an `ADDR:PORT`).
pub(super) fn load_listen(listen: Option<String>) -> Result<SocketAddr, ConfigError> {
    let listen_str = listen.unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    listen_str
        .parse()
        .map_err(|_| ConfigError::invalid("listen", format!("not an ADDR:PORT: {listen_str:?}")))
}

/// Validates `[server]`: the largest request body accepted, in bytes.
pub(super) fn load(raw: RawServer) -> Result<usize, ConfigError> {
    let RawServer { max_body_bytes } = raw;
    let max_body_bytes = max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
    if max_body_bytes == 0 {
        return Err(ConfigError::invalid(
            "server.max_body_bytes",
            "must be positive",
        ));
    }
    Ok(max_body_bytes)
}
