//! `tierwise.toml`: raw (as written) → validated (`Config`).
//!
//! Every raw struct denies unknown fields, so a typo is an error that names the field.
//! `Config::load` destructures every raw field into the validated form: prices positive,
//! tiers ordered cheapest first, every tier a rule or option names exists.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, CatalogError, PricedModel, Prices, Tier};
use crate::cost::TierMultipliers;

/// The configuration shipped in the binary: identical to `tierwise.toml` at the repo root.
pub const DEFAULT_TOML: &str = include_str!("../../../tierwise.toml");

// ---------------------------------------------------------------- raw (as written)

/// A price as written in TOML: a number (`0.2`) or a decimal string (`"0.2"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawDecimal {
    Float(f64),
    Int(i64),
    Str(String),
}

impl RawDecimal {
    fn to_decimal(&self, field: &str) -> Result<Decimal, ConfigError> {
        let parsed = match self {
            // f64's Display is the shortest string that round-trips, so 0.2 reads as exactly 0.2.
            RawDecimal::Float(f) => Decimal::from_str(&f.to_string()),
            RawDecimal::Int(i) => Ok(Decimal::from(*i)),
            RawDecimal::Str(s) => Decimal::from_str(s.trim()),
        };
        parsed.map_err(|e| ConfigError::invalid(field, format!("not a decimal number: {e}")))
    }
}

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
}

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

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub max_body_bytes: Option<usize>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub path: Option<String>,
    pub store_bodies: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPricing {
    pub batch: Option<RawDecimal>,
    pub flex: Option<RawDecimal>,
    pub priority: Option<RawDecimal>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTier {
    pub name: String,
    pub model: String,
    pub input: RawDecimal,
    pub cached_input: RawDecimal,
    pub output: RawDecimal,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    pub model: String,
    pub input: RawDecimal,
    pub cached_input: Option<RawDecimal>,
    pub output: RawDecimal,
    pub source: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouting {
    pub mode: Option<RouterMode>,
    pub default_tier: Option<String>,
    pub honor_explicit_model: Option<bool>,
    pub no_bounce: Option<bool>,
    #[serde(default)]
    pub rules: Vec<RawRule>,
    #[serde(default)]
    pub learned: RawLearned,
    #[serde(default)]
    pub cascade: RawCascade,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub name: String,
    pub tier: String,
    pub mode: Option<DispatchMode>,
    #[serde(default)]
    pub when: RuleWhen,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLearned {
    /// Router weights file; relative paths are resolved against the config file's folder.
    pub weights: Option<String>,
    /// Per-tier thresholds on the router's estimate, cheapest tier first (the top tier needs none).
    pub thresholds: Option<Vec<f64>>,
}

/// `[routing.cascade]`: how a cascade walks the ladder (issue 6).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCascade {
    /// Acceptance threshold on the scorer's P(good enough): one number for every tier, or a
    /// table `{ nano = 0.6, mini = 0.55 }` (tiers not named use `default`, else the scorer's).
    pub thresholds: Option<RawThresholds>,
    /// Tiers tried at most per request (≥ 1; the last one tried is always kept).
    pub max_attempts: Option<usize>,
    /// Wall time after which the answer in hand is returned (no further tier is awaited).
    pub latency_budget_ms: Option<u64>,
    /// Scorer weights file; relative paths resolve against the config file's folder.
    pub scorer: Option<String>,
    /// Tiers the cascade walks, cheapest first (default: every tier).
    pub ladder: Option<Vec<String>>,
    /// Cheap samples per attempt below the top: 1, or 2 (their agreement gates acceptance).
    pub samples: Option<u32>,
    /// Ask the upstream for token log-probabilities on cascade calls below the top.
    pub logprobs: Option<bool>,
}

/// `thresholds` as written: a number, or a table of tier name (or `default`) → number.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawThresholds {
    One(f64),
    PerTier(std::collections::BTreeMap<String, f64>),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTools {
    pub mode: Option<ToolMode>,
    pub threshold: Option<usize>,
    pub top_k: Option<usize>,
    #[serde(default)]
    pub pinned: Vec<String>,
    pub max_search_rounds: Option<u32>,
    pub method: Option<ToolMethod>,
    pub keep_share: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    #[serde(default)]
    pub deferrable_categories: Vec<String>,
    pub cache_ttl_secs: Option<u64>,
}

// ---------------------------------------------------------------- shared enums

/// How `model: "auto"` is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RouterMode {
    /// Ordered rules only.
    #[default]
    Rules,
    /// Rules first (explicit categories/roles), then the learned classifier.
    Learned,
    /// Cheap tier first, escalate on a weak answer.
    Cascade,
}

/// How a call is sent to the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DispatchMode {
    #[default]
    Sync,
    Batch,
    Flex,
    Cascade,
}

impl DispatchMode {
    pub fn as_str(&self) -> &'static str {
        match self {
            DispatchMode::Sync => "sync",
            DispatchMode::Batch => "batch",
            DispatchMode::Flex => "flex",
            DispatchMode::Cascade => "cascade",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ToolMode {
    /// Tools pass through untouched.
    Off,
    /// Keep the top-k relevant tools (plus called, named and pinned ones).
    #[default]
    Prune,
    /// Prune, and add a `tool_search` function the gateway answers itself.
    ToolSearch,
}

/// How tool search ranks tools (`tools.method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ToolMethod {
    /// Plain BM25 over all the conversation's text (the baseline).
    Bm25,
    /// BM25 per channel (latest turn, its clauses, earlier turns) with related-word expansion.
    Lexical,
    /// Lexical plus MiniLM sentence embeddings (lexical when the model is absent).
    #[default]
    Hybrid,
}

/// Conditions of a routing rule; all given conditions must hold (AND). Lists match any element.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleWhen {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub category: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub role: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub language: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_prompt_tokens: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_prompt_tokens: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_turns: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_turns: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub math: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub structured_output: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_tools: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hard_domain: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deferrable: Option<bool>,
}

// ---------------------------------------------------------------- validated

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
pub struct Config {
    pub listen: SocketAddr,
    pub catalog: Catalog,
    pub upstream: Upstream,
    pub max_body_bytes: usize,
    pub log: LogConfig,
    pub routing: Routing,
    pub tools: Tools,
    pub audit: Audit,
    /// Folder of the config file (relative paths resolve against it); `.` for the embedded one.
    pub base_dir: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Upstream {
    pub base_url: String,
    /// `None` when no key is configured: requests go upstream without `Authorization`
    /// unless the client sent one.
    pub api_key: Option<Secret>,
    pub timeout_secs: u64,
    pub connect_timeout_secs: u64,
    pub max_retries: u32,
    /// First retry delay; doubles per retry (with jitter) unless the upstream sends
    /// `retry-after-ms` / `retry-after`.
    pub retry_backoff_ms: u64,
    pub pool_max_idle_per_host: usize,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub path: PathBuf,
    pub store_bodies: bool,
}

#[derive(Debug, Clone)]
pub struct Routing {
    pub mode: RouterMode,
    pub default_tier: usize,
    pub honor_explicit_model: bool,
    pub no_bounce: bool,
    pub rules: Vec<Rule>,
    pub learned_weights: Option<PathBuf>,
    pub learned_thresholds: Option<Vec<f64>>,
    pub cascade: Cascade,
}

/// Validated `[routing.cascade]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Cascade {
    /// Threshold for tiers without their own (`None`: the scorer file's default).
    pub default_threshold: Option<f64>,
    /// Per ladder tier (index as in the catalog): its own threshold, if set.
    pub thresholds: Vec<Option<f64>>,
    pub max_attempts: usize,
    pub latency_budget_ms: u64,
    /// Scorer file (`None`: the scorer embedded in the binary).
    pub scorer: Option<PathBuf>,
    /// Catalog tier indices the cascade may walk, ascending.
    pub ladder: Vec<usize>,
    /// 1 or 2 cheap samples per attempt below the top.
    pub samples: u32,
    pub logprobs: bool,
}

impl Cascade {
    /// Defaults for a catalog of `tiers` tiers (what an absent `[routing.cascade]` means).
    pub fn defaults(tiers: usize) -> Cascade {
        Cascade {
            default_threshold: None,
            thresholds: vec![None; tiers],
            max_attempts: 3,
            latency_budget_ms: 60_000,
            scorer: None,
            ladder: (0..tiers).collect(),
            samples: 1,
            logprobs: false,
        }
    }

    /// The acceptance threshold of catalog tier `tier`, `scorer_default` when none is set.
    pub fn threshold(&self, tier: Option<usize>, scorer_default: f64) -> f64 {
        tier.and_then(|t| self.thresholds.get(t).copied().flatten())
            .or(self.default_threshold)
            .unwrap_or(scorer_default)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    pub name: String,
    pub tier: usize,
    pub mode: DispatchMode,
    pub when: RuleWhen,
}

#[derive(Debug, Clone)]
pub struct Tools {
    pub mode: ToolMode,
    pub threshold: usize,
    pub top_k: usize,
    pub pinned: Vec<String>,
    pub max_search_rounds: u32,
    pub method: ToolMethod,
    /// Share of a large request's tools also kept: k = max(top_k, ⌈keep_share × tools⌉).
    pub keep_share: f64,
}

#[derive(Debug, Clone)]
pub struct Audit {
    pub deferrable_categories: Vec<String>,
    pub cache_ttl_secs: u64,
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

    /// Validates a raw config. Environment: `TIERWISE_UPSTREAM_BASE_URL` overrides the upstream
    /// base URL; the API key comes from `upstream.api_key`, else the variable named by
    /// `upstream.api_key_env` (default `OPENAI_API_KEY`).
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
        } = raw;

        let listen_str = listen.unwrap_or_else(|| "127.0.0.1:8080".to_string());
        let listen: SocketAddr = listen_str.parse().map_err(|_| {
            ConfigError::invalid("listen", format!("not an ADDR:PORT: {listen_str:?}"))
        })?;

        // Tiers and prices.
        let mut tier_list = Vec::with_capacity(tiers.len());
        for (i, t) in tiers.into_iter().enumerate() {
            let RawTier {
                name,
                model,
                input,
                cached_input,
                output,
            } = t;
            let field = |f: &str| format!("tiers[{i}].{f}");
            if name.trim().is_empty() {
                return Err(ConfigError::invalid(field("name"), "must not be empty"));
            }
            if name == "auto" {
                return Err(ConfigError::invalid(field("name"), "\"auto\" is reserved"));
            }
            if model.trim().is_empty() {
                return Err(ConfigError::invalid(field("model"), "must not be empty"));
            }
            let prices = Prices {
                input: input.to_decimal(&field("input"))?,
                cached_input: cached_input.to_decimal(&field("cached_input"))?,
                output: output.to_decimal(&field("output"))?,
            };
            tier_list.push(Tier {
                name,
                model,
                prices,
            });
        }
        let mut priced = Vec::with_capacity(models.len());
        for (i, m) in models.into_iter().enumerate() {
            let RawModel {
                model,
                input,
                cached_input,
                output,
                source,
            } = m;
            let field = |f: &str| format!("models[{i}].{f}");
            let input = input.to_decimal(&field("input"))?;
            let cached_input = match cached_input {
                Some(c) => c.to_decimal(&field("cached_input"))?,
                None => input,
            };
            priced.push(PricedModel {
                model,
                prices: Prices {
                    input,
                    cached_input,
                    output: output.to_decimal(&field("output"))?,
                },
                source,
            });
        }
        let RawPricing {
            batch,
            flex,
            priority,
        } = pricing;
        let defaults = TierMultipliers::default();
        let mult = |v: Option<RawDecimal>, f: &str, d: Decimal| -> Result<Decimal, ConfigError> {
            let v = match v {
                Some(v) => v.to_decimal(f)?,
                None => d,
            };
            if v <= Decimal::ZERO {
                return Err(ConfigError::invalid(f, "must be positive"));
            }
            Ok(v)
        };
        let multipliers = TierMultipliers {
            batch: mult(batch, "pricing.batch", defaults.batch)?,
            flex: mult(flex, "pricing.flex", defaults.flex)?,
            priority: mult(priority, "pricing.priority", defaults.priority)?,
        };
        let baseline_name = match baseline {
            Some(b) => b,
            None => tier_list.last().map(|t| t.name.clone()).unwrap_or_default(),
        };
        let catalog = Catalog::new(tier_list, &baseline_name, priced, multipliers)?;
        let tier_ref = |name: &str, field: String| -> Result<usize, ConfigError> {
            catalog.tier_index(name).ok_or_else(|| {
                let known: Vec<_> = catalog.tiers().iter().map(|t| t.name.as_str()).collect();
                ConfigError::invalid(
                    field,
                    format!("no tier named {name:?} (tiers: {})", known.join(", ")),
                )
            })
        };

        // Upstream.
        let RawUpstream {
            base_url,
            api_key,
            api_key_env,
            timeout_secs,
            connect_timeout_secs,
            max_retries,
            retry_backoff_ms,
            pool_max_idle_per_host,
        } = upstream;
        let base_url = env("TIERWISE_UPSTREAM_BASE_URL")
            .filter(|s| !s.is_empty())
            .or(base_url)
            .unwrap_or_else(|| "https://api.openai.com/v1".to_string());
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(ConfigError::invalid(
                "upstream.base_url",
                format!("must start with http:// or https://: {base_url:?}"),
            ));
        }
        let key_var = api_key_env.unwrap_or_else(|| "OPENAI_API_KEY".to_string());
        let api_key = api_key
            .filter(|k| !k.is_empty())
            .or_else(|| env(&key_var).filter(|k| !k.is_empty()))
            .map(Secret::new);
        let upstream = Upstream {
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key,
            timeout_secs: timeout_secs.unwrap_or(600),
            connect_timeout_secs: connect_timeout_secs.unwrap_or(10),
            max_retries: max_retries.unwrap_or(2),
            retry_backoff_ms: retry_backoff_ms.unwrap_or(250),
            pool_max_idle_per_host: pool_max_idle_per_host.unwrap_or(64),
        };
        if upstream.timeout_secs == 0 {
            return Err(ConfigError::invalid(
                "upstream.timeout_secs",
                "must be positive",
            ));
        }

        let RawServer { max_body_bytes } = server;
        let max_body_bytes = max_body_bytes.unwrap_or(4 * 1024 * 1024);
        if max_body_bytes == 0 {
            return Err(ConfigError::invalid(
                "server.max_body_bytes",
                "must be positive",
            ));
        }

        let RawLog { path, store_bodies } = log;
        let log_path = PathBuf::from(path.unwrap_or_else(|| "tierwise.db".to_string()));
        let log = LogConfig {
            path: if log_path.is_absolute() {
                log_path
            } else {
                base_dir.join(log_path)
            },
            store_bodies: store_bodies.unwrap_or(false),
        };

        // Routing.
        let RawRouting {
            mode,
            default_tier,
            honor_explicit_model,
            no_bounce,
            rules,
            learned,
            cascade,
        } = routing;
        let default_tier = match default_tier {
            Some(t) => tier_ref(&t, "routing.default_tier".into())?,
            None => catalog.top(),
        };
        let mut rule_list = Vec::with_capacity(rules.len());
        for (i, r) in rules.into_iter().enumerate() {
            let RawRule {
                name,
                tier,
                mode,
                when,
            } = r;
            if rule_list.iter().any(|o: &Rule| o.name == name) {
                return Err(ConfigError::invalid(
                    format!("routing.rules[{i}].name"),
                    format!("duplicate rule {name:?}"),
                ));
            }
            if let (Some(lo), Some(hi)) = (when.min_prompt_tokens, when.max_prompt_tokens)
                && lo > hi
            {
                return Err(ConfigError::invalid(
                    format!("routing.rules[{i}].when"),
                    "min_prompt_tokens exceeds max_prompt_tokens",
                ));
            }
            let tier = tier_ref(&tier, format!("routing.rules[{i}].tier"))?;
            rule_list.push(Rule {
                name,
                tier,
                mode: mode.unwrap_or_default(),
                when,
            });
        }
        let RawLearned {
            weights,
            thresholds,
        } = learned;
        if let Some(t) = &thresholds
            && t.iter().any(|x| !x.is_finite())
        {
            return Err(ConfigError::invalid(
                "routing.learned.thresholds",
                "must be finite numbers",
            ));
        }
        let routing = Routing {
            mode: mode.unwrap_or_default(),
            default_tier,
            honor_explicit_model: honor_explicit_model.unwrap_or(true),
            no_bounce: no_bounce.unwrap_or(true),
            rules: rule_list,
            learned_weights: weights.map(|w| {
                let p = PathBuf::from(w);
                if p.is_absolute() { p } else { base_dir.join(p) }
            }),
            learned_thresholds: thresholds,
            cascade: cascade_config(cascade, &catalog, base_dir)?,
        };

        let RawTools {
            mode,
            threshold,
            top_k,
            pinned,
            max_search_rounds,
            method: tool_method,
            keep_share,
        } = tools;
        let tools = Tools {
            mode: mode.unwrap_or_default(),
            threshold: threshold.unwrap_or(16),
            top_k: top_k.unwrap_or(24),
            pinned,
            max_search_rounds: max_search_rounds.unwrap_or(2),
            method: tool_method.unwrap_or_default(),
            keep_share: keep_share.unwrap_or(0.0),
        };
        if !(0.0..=1.0).contains(&tools.keep_share) {
            return Err(ConfigError::invalid(
                "tools.keep_share",
                "must be between 0 and 1",
            ));
        }
        if tools.top_k == 0 {
            return Err(ConfigError::invalid("tools.top_k", "must be at least 1"));
        }

        let RawAudit {
            deferrable_categories,
            cache_ttl_secs,
        } = audit;
        let audit = Audit {
            deferrable_categories,
            cache_ttl_secs: cache_ttl_secs.unwrap_or(300),
        };

        Ok(Config {
            listen,
            catalog,
            upstream,
            max_body_bytes,
            log,
            routing,
            tools,
            audit,
            base_dir: base_dir.to_path_buf(),
        })
    }
}

/// Validates `[routing.cascade]` against the catalog.
fn cascade_config(
    raw: RawCascade,
    catalog: &Catalog,
    base_dir: &Path,
) -> Result<Cascade, ConfigError> {
    let RawCascade {
        thresholds,
        max_attempts,
        latency_budget_ms,
        scorer,
        ladder,
        samples,
        logprobs,
    } = raw;
    let n = catalog.tiers().len();
    let mut c = Cascade::defaults(n);
    let field = "routing.cascade.thresholds";
    let check = |t: f64, key: &str| -> Result<f64, ConfigError> {
        if (0.0..=1.0).contains(&t) {
            Ok(t)
        } else {
            Err(ConfigError::invalid(
                format!("{field}{key}"),
                format!("{t} is not a probability in [0, 1]"),
            ))
        }
    };
    match thresholds {
        None => {}
        Some(RawThresholds::One(t)) => c.default_threshold = Some(check(t, "")?),
        Some(RawThresholds::PerTier(map)) => {
            for (name, t) in map {
                let t = check(t, &format!(".{name}"))?;
                if name == "default" {
                    c.default_threshold = Some(t);
                    continue;
                }
                let i = catalog.tier_index(&name).ok_or_else(|| {
                    let known: Vec<_> = catalog.tiers().iter().map(|t| t.name.as_str()).collect();
                    ConfigError::invalid(
                        format!("{field}.{name}"),
                        format!(
                            "no tier named {name:?} (tiers: {}, or default)",
                            known.join(", ")
                        ),
                    )
                })?;
                c.thresholds[i] = Some(t);
            }
        }
    }
    if let Some(m) = max_attempts {
        if m == 0 {
            return Err(ConfigError::invalid(
                "routing.cascade.max_attempts",
                "must be at least 1",
            ));
        }
        c.max_attempts = m;
    }
    if let Some(ms) = latency_budget_ms {
        c.latency_budget_ms = ms;
    }
    c.scorer = scorer.map(|s| {
        let p = PathBuf::from(s);
        if p.is_absolute() { p } else { base_dir.join(p) }
    });
    if let Some(names) = ladder {
        let mut idx = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            let t = catalog.tier_index(name).ok_or_else(|| {
                ConfigError::invalid(
                    format!("routing.cascade.ladder[{i}]"),
                    format!("no tier named {name:?}"),
                )
            })?;
            if idx.last().is_some_and(|&l| l >= t) {
                return Err(ConfigError::invalid(
                    "routing.cascade.ladder",
                    "tiers must be listed once each, cheapest first",
                ));
            }
            idx.push(t);
        }
        if idx.is_empty() {
            return Err(ConfigError::invalid(
                "routing.cascade.ladder",
                "must name at least one tier",
            ));
        }
        c.ladder = idx;
    }
    if let Some(s) = samples {
        if !(1..=2).contains(&s) {
            return Err(ConfigError::invalid(
                "routing.cascade.samples",
                "must be 1 or 2",
            ));
        }
        c.samples = s;
    }
    c.logprobs = logprobs.unwrap_or(false);
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

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

    #[test]
    fn unknown_field_is_named() {
        let text = DEFAULT_TOML.replace("[log]", "[log]\nstore_bodiez = true");
        let err = Config::from_toml(&text, Path::new("."), &no_env).unwrap_err();
        assert!(err.to_string().contains("store_bodiez"), "{err}");
    }

    #[test]
    fn bad_tier_reference_is_named() {
        let text = format!("{DEFAULT_TOML}\n[[routing.rules]]\nname = \"x\"\ntier = \"huge\"\n");
        let err = Config::from_toml(&text, Path::new("."), &no_env).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("tier") && msg.contains("huge"), "{msg}");
    }

    #[test]
    fn cascade_section() {
        const BASE: &str = "[[tiers]]\nname = \"nano\"\nmodel = \"n\"\ninput = 1\ncached_input = 1\noutput = 1\n[[tiers]]\nname = \"mini\"\nmodel = \"m\"\ninput = 2\ncached_input = 2\noutput = 2\n[[tiers]]\nname = \"standard\"\nmodel = \"s\"\ninput = 3\ncached_input = 3\noutput = 3\n[[tiers]]\nname = \"flagship\"\nmodel = \"f\"\ninput = 4\ncached_input = 4\noutput = 4\n";
        let c = Config::embedded(&no_env).unwrap();
        assert_eq!(c.routing.cascade, Cascade::defaults(4));
        assert_eq!(c.routing.cascade.threshold(Some(1), 0.7), 0.7);
        let text = format!(
            "{BASE}\n[routing.cascade]\nthresholds = {{ nano = 0.6, default = 0.5 }}\nmax_attempts = 2\nlatency_budget_ms = 150\nladder = [\"nano\", \"flagship\"]\nsamples = 2\nscorer = \"s.json\"\n"
        );
        let c = Config::from_toml(&text, Path::new("/cfg"), &no_env)
            .unwrap()
            .routing
            .cascade;
        assert_eq!(c.threshold(Some(0), 0.9), 0.6);
        assert_eq!(c.threshold(Some(1), 0.9), 0.5);
        assert_eq!(
            (c.max_attempts, c.latency_budget_ms, c.samples),
            (2, 150, 2)
        );
        assert_eq!(c.ladder, [0, 3]);
        assert_eq!(c.scorer.as_deref(), Some(Path::new("/cfg/s.json")));
        let one = format!("{BASE}\n[routing.cascade]\nthresholds = 0.4\n");
        let c = Config::from_toml(&one, Path::new("."), &no_env).unwrap();
        assert_eq!(c.routing.cascade.threshold(Some(2), 0.9), 0.4);
        for (bad, named) in [
            ("thresholds = { huge = 0.5 }", "huge"),
            ("thresholds = 1.5", "thresholds"),
            ("max_attempts = 0", "max_attempts"),
            ("ladder = [\"mini\", \"nano\"]", "ladder"),
            ("samples = 3", "samples"),
            ("threshold = 0.5", "threshold"),
        ] {
            let text = format!("{BASE}\n[routing.cascade]\n{bad}\n");
            let err = Config::from_toml(&text, Path::new("."), &no_env).unwrap_err();
            assert!(err.to_string().contains(named), "{bad}: {err}");
        }
    }

    #[test]
    fn negative_price_is_rejected() {
        let text = DEFAULT_TOML.replacen("input = 0.20", "input = -0.20", 1);
        let err = Config::from_toml(&text, Path::new("."), &no_env).unwrap_err();
        assert!(err.to_string().contains("nano"), "{err}");
    }
}
