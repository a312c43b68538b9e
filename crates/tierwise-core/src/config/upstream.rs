//! `[upstream]`: the provider the gateway forwards to, its key and its timeouts.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{ConfigError, EnvLookup};

/// `upstream.base_url` when neither the file nor [`BASE_URL_ENV`] sets it.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// Environment variable that overrides `upstream.base_url` (when set and not empty).
pub const BASE_URL_ENV: &str = "TIERWISE_UPSTREAM_BASE_URL";
/// `upstream.api_key_env` when absent: the variable the API key is read from.
pub const DEFAULT_API_KEY_ENV: &str = "OPENAI_API_KEY";
pub const DEFAULT_TIMEOUT_SECS: u64 = 600;
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 10;
pub const DEFAULT_MAX_RETRIES: u32 = 2;
pub const DEFAULT_RETRY_BACKOFF_MS: u64 = 250;
pub const DEFAULT_POOL_MAX_IDLE_PER_HOST: usize = 64;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    pub api_key_env: Option<String>,
    pub timeout_secs: Option<u64>,
    pub connect_timeout_secs: Option<u64>,
    pub max_retries: Option<u32>,
    pub retry_backoff_ms: Option<u64>,
    pub pool_max_idle_per_host: Option<usize>,
}

/// An API key. `Debug`, `Display` and `Serialize` print `*****`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The key itself, for the one place that sends it upstream.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("*****")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("*****")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("*****")
    }
}

#[derive(Debug, Clone)]
pub struct Upstream {
    pub base_url: String,
    /// `None` when no key is configured: requests go upstream without `Authorization`
    /// unless the client sent one.
    pub api_key: Option<Secret>,
    /// The variable the key is read from (`upstream.api_key_env`, default
    /// [`DEFAULT_API_KEY_ENV`]), for the warning when it is not set.
    pub api_key_env: String,
    pub timeout_secs: u64,
    pub connect_timeout_secs: u64,
    pub max_retries: u32,
    /// First retry delay; doubles per retry (with jitter) unless the upstream sends
    /// `retry-after-ms` / `retry-after`.
    pub retry_backoff_ms: u64,
    pub pool_max_idle_per_host: usize,
}

/// Validates `[upstream]`. [`BASE_URL_ENV`] overrides the base URL; the API key comes from
/// `upstream.api_key`, else the variable named by `upstream.api_key_env` (default
/// [`DEFAULT_API_KEY_ENV`]).
pub(super) fn load(raw: RawUpstream, env: EnvLookup<'_>) -> Result<Upstream, ConfigError> {
    let RawUpstream {
        base_url,
        api_key,
        api_key_env,
        timeout_secs,
        connect_timeout_secs,
        max_retries,
        retry_backoff_ms,
        pool_max_idle_per_host,
    } = raw;
    let base_url = env(BASE_URL_ENV)
        .filter(|s| !s.is_empty())
        .or(base_url)
        .unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
    if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
        return Err(ConfigError::invalid(
            "upstream.base_url",
            format!("must start with http:// or https://: {base_url:?}"),
        ));
    }
    let key_var = api_key_env.unwrap_or_else(|| DEFAULT_API_KEY_ENV.to_string());
    let api_key = api_key
        .filter(|k| !k.is_empty())
        .or_else(|| env(&key_var).filter(|k| !k.is_empty()))
        .map(Secret::new);
    let upstream = Upstream {
        base_url: base_url.trim_end_matches('/').to_string(),
        api_key,
        api_key_env: key_var,
        timeout_secs: timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS),
        connect_timeout_secs: connect_timeout_secs.unwrap_or(DEFAULT_CONNECT_TIMEOUT_SECS),
        max_retries: max_retries.unwrap_or(DEFAULT_MAX_RETRIES),
        retry_backoff_ms: retry_backoff_ms.unwrap_or(DEFAULT_RETRY_BACKOFF_MS),
        pool_max_idle_per_host: pool_max_idle_per_host.unwrap_or(DEFAULT_POOL_MAX_IDLE_PER_HOST),
    };
    if upstream.timeout_secs == 0 {
        return Err(ConfigError::invalid(
            "upstream.timeout_secs",
            "must be positive",
        ));
    }
    Ok(upstream)
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    #[test]
    fn env_overrides_upstream() {
        let env = |k: &str| match k {
            "TIERWISE_UPSTREAM_BASE_URL" => Some("http://127.0.0.1:9/v1/".to_string()),
            "OPENAI_API_KEY" => Some("sk-test".to_string()),
            _ => None,
        };
        let c = Config::embedded(&env).unwrap();
        assert_eq!(c.upstream.base_url, "http://127.0.0.1:9/v1");
        assert_eq!(
            c.upstream.api_key.as_ref().map(Secret::expose),
            Some("sk-test")
        );
        assert_eq!(format!("{:?}", c.upstream.api_key), "Some(*****)");
    }
}
