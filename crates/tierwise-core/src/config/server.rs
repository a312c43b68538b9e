//! The top-level `listen` address and `[server]`: where the gateway listens and what it accepts.

use std::net::SocketAddr;

use serde::Deserialize;

use super::ConfigError;

/// `listen` when absent.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// `server.max_body_bytes` when absent: 4 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// `server.max_json_depth` when absent: arrays and objects nested at most this deep (the
/// deepest real request bodies — JSON schemas in tools — stay well under 32).
pub const DEFAULT_MAX_JSON_DEPTH: usize = 64;
/// `server.max_messages` when absent: OpenAI's own limit on `messages`.
pub const DEFAULT_MAX_MESSAGES: usize = 2048;
/// `server.max_tools` when absent: above OpenAI's 128, so tool search can prune thousands.
pub const DEFAULT_MAX_TOOLS: usize = 8192;
/// `server.max_header_bytes` when absent: all request headers together (names and values).
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub max_body_bytes: Option<usize>,
    pub max_json_depth: Option<usize>,
    pub max_messages: Option<usize>,
    pub max_tools: Option<usize>,
    pub max_header_bytes: Option<usize>,
}

/// What one request may carry besides its body size (each over-limit case is refused, the
/// limit named).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Nesting of arrays and objects in the body.
    pub max_json_depth: usize,
    /// Chat `messages` / Responses `input` items.
    pub max_messages: usize,
    /// Entries of `tools`.
    pub max_tools: usize,
    /// Request headers, names and values, in bytes.
    pub max_header_bytes: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            max_json_depth: DEFAULT_MAX_JSON_DEPTH,
            max_messages: DEFAULT_MAX_MESSAGES,
            max_tools: DEFAULT_MAX_TOOLS,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
        }
    }
}

/// Validates `listen` (an `ADDR:PORT`).
pub(super) fn load_listen(listen: Option<String>) -> Result<SocketAddr, ConfigError> {
    let listen_str = listen.unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    listen_str
        .parse()
        .map_err(|_| ConfigError::invalid("listen", format!("not an ADDR:PORT: {listen_str:?}")))
}

/// Validates `[server]`: the largest request body accepted, in bytes, and the other limits.
pub(super) fn load(raw: RawServer) -> Result<(usize, RequestLimits), ConfigError> {
    let RawServer {
        max_body_bytes,
        max_json_depth,
        max_messages,
        max_tools,
        max_header_bytes,
    } = raw;
    let positive = |v: Option<usize>, default: usize, key: &str| {
        let v = v.unwrap_or(default);
        if v == 0 {
            Err(ConfigError::invalid(key, "must be positive"))
        } else {
            Ok(v)
        }
    };
    let max_body_bytes = positive(
        max_body_bytes,
        DEFAULT_MAX_BODY_BYTES,
        "server.max_body_bytes",
    )?;
    let limits = RequestLimits {
        max_json_depth: positive(
            max_json_depth,
            DEFAULT_MAX_JSON_DEPTH,
            "server.max_json_depth",
        )?,
        max_messages: positive(max_messages, DEFAULT_MAX_MESSAGES, "server.max_messages")?,
        max_tools: positive(max_tools, DEFAULT_MAX_TOOLS, "server.max_tools")?,
        max_header_bytes: positive(
            max_header_bytes,
            DEFAULT_MAX_HEADER_BYTES,
            "server.max_header_bytes",
        )?,
    };
    Ok((max_body_bytes, limits))
}
