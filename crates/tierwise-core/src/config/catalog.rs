//! `[[tiers]]`, `[[models]]`, `[pricing]` and the top-level `baseline`: the tier ladder and the
//! price table, validated into a [`Catalog`]; `[pricing] database` adds the price database
//! behind them (`"builtin"`, the default: the vendored genai-prices copy embedded in the binary;
//! `"off"`; or the path of a genai-prices v2 `data.json`, e.g. one kept beside the config).
//!
//! A tier or model may state a cache-write price (`cache_write`) and context-length tiers:
//! ```toml
//! [[tiers.long_context]]
//! above = 272000      # calls with more input tokens than this pay these prices on every token
//! input = 5.00
//! cached_input = 0.50
//! output = 22.50
//! ```

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use rust_decimal::Decimal;
use serde::Deserialize;

use super::ConfigError;
use crate::catalog::{Catalog, ContextTier, FlatPrices, PricedModel, Prices, Tier};
use crate::cost::TierMultipliers;
use crate::prices::{Date, PriceDb, PriceSource};

/// A price as written in TOML: a number (`0.2`) or a decimal string (`"0.2"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawDecimal {
    Float(f64),
    Int(i64),
    Str(String),
}

impl RawDecimal {
    pub(super) fn to_decimal(&self, field: &str) -> Result<Decimal, ConfigError> {
        let parsed = match self {
            // f64's Display is the shortest string that round-trips, so 0.2 reads as exactly 0.2.
            RawDecimal::Float(f) => Decimal::from_str(&f.to_string()),
            RawDecimal::Int(i) => Ok(Decimal::from(*i)),
            RawDecimal::Str(s) => Decimal::from_str(s.trim()),
        };
        parsed.map_err(|e| ConfigError::invalid(field, format!("not a decimal number: {e}")))
    }
}

/// `[pricing]`: service-tier multipliers (default: [`TierMultipliers::default`]).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPricing {
    pub batch: Option<RawDecimal>,
    pub flex: Option<RawDecimal>,
    pub priority: Option<RawDecimal>,
    /// `"builtin"` (default), `"off"`, or a path to a genai-prices v2 `data.json`.
    pub database: Option<String>,
}

/// `[[tiers.long_context]]` / `[[models.long_context]]`: prices above a context length.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawContextTier {
    pub above: u64,
    pub input: RawDecimal,
    pub cached_input: Option<RawDecimal>,
    pub output: RawDecimal,
    pub cache_write: Option<RawDecimal>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTier {
    pub name: String,
    pub model: String,
    pub input: RawDecimal,
    pub cached_input: RawDecimal,
    pub output: RawDecimal,
    pub cache_write: Option<RawDecimal>,
    #[serde(default)]
    pub long_context: Vec<RawContextTier>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    pub model: String,
    pub input: RawDecimal,
    pub cached_input: Option<RawDecimal>,
    pub output: RawDecimal,
    pub cache_write: Option<RawDecimal>,
    #[serde(default)]
    pub long_context: Vec<RawContextTier>,
    pub source: Option<String>,
}

fn opt_decimal(v: Option<RawDecimal>, field: &str) -> Result<Option<Decimal>, ConfigError> {
    v.map(|v| v.to_decimal(field)).transpose()
}

/// The long-context tiers of a tier or model; `at` names it (`tiers[2]`).
fn context_tiers(raw: Vec<RawContextTier>, at: &str) -> Result<Vec<ContextTier>, ConfigError> {
    let mut out: Vec<ContextTier> = Vec::with_capacity(raw.len());
    for (j, c) in raw.into_iter().enumerate() {
        let RawContextTier {
            above,
            input,
            cached_input,
            output,
            cache_write,
        } = c;
        let field = |f: &str| format!("{at}.long_context[{j}].{f}");
        if out.last().is_some_and(|p| p.above >= above) {
            return Err(ConfigError::invalid(
                field("above"),
                "thresholds must ascend strictly",
            ));
        }
        let input = input.to_decimal(&field("input"))?;
        out.push(ContextTier {
            above,
            prices: FlatPrices {
                input,
                cached_input: opt_decimal(cached_input, &field("cached_input"))?.unwrap_or(input),
                output: output.to_decimal(&field("output"))?,
                cache_write: opt_decimal(cache_write, &field("cache_write"))?,
            },
        });
    }
    Ok(out)
}

/// The price database `[pricing] database` names.
fn database(name: Option<String>, base_dir: &Path) -> Result<Option<Arc<PriceDb>>, ConfigError> {
    let field = "pricing.database";
    match name.as_deref().map(str::trim) {
        None | Some("builtin") => PriceDb::builtin()
            .map(Some)
            .map_err(|e| ConfigError::invalid(field, format!("the embedded price database: {e}"))),
        Some("off") => Ok(None),
        Some(path) => {
            let path = super::resolve(base_dir, path);
            let json = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError::invalid(field, format!("cannot read {}: {e}", path.display()))
            })?;
            let source = path
                .parent()
                .map(|d| d.join(crate::prices::SOURCE_FILE))
                .and_then(|s| std::fs::read_to_string(s).ok())
                .and_then(|t| PriceSource::parse(&t).ok())
                .unwrap_or_else(|| PriceSource {
                    source: path.display().to_string(),
                    checked: "unknown".into(),
                });
            PriceDb::parse(&json, source, Date::today())
                .map(|db| Some(Arc::new(db)))
                .map_err(|e| ConfigError::invalid(field, format!("{}: {e}", path.display())))
        }
    }
}

/// Validates the tiers, the priced models and the multipliers, and builds the catalog. The
/// baseline is the tier named by `baseline`, else the last (most capable) tier.
pub(super) fn load(
    baseline: Option<String>,
    pricing: RawPricing,
    tiers: Vec<RawTier>,
    models: Vec<RawModel>,
    base_dir: &Path,
) -> Result<Catalog, ConfigError> {
    let mut tier_list = Vec::with_capacity(tiers.len());
    for (i, t) in tiers.into_iter().enumerate() {
        let RawTier {
            name,
            model,
            input,
            cached_input,
            output,
            cache_write,
            long_context,
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
            cache_write: opt_decimal(cache_write, &field("cache_write"))?,
            context_tiers: context_tiers(long_context, &format!("tiers[{i}]"))?,
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
            cache_write,
            long_context,
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
                cache_write: opt_decimal(cache_write, &field("cache_write"))?,
                context_tiers: context_tiers(long_context, &format!("models[{i}]"))?,
            },
            source,
        });
    }
    let RawPricing {
        batch,
        flex,
        priority,
        database: db_name,
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
    Ok(match database(db_name, base_dir)? {
        Some(db) => catalog.with_price_db(db),
        None => catalog,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{Config, DEFAULT_TOML, no_env};

    use rust_decimal_macros::dec;

    use crate::cost::{ServiceTier, Usage, cost};

    fn usage(input: u64, output: u64) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            ..Usage::default()
        }
    }

    /// FOUND.md: "gpt-5.4 calls over 272K input tokens are priced at the base rate". The
    /// seed's standard tier (gpt-5.4) carries OpenAI's long-context tier.
    #[test]
    fn seed_prices_gpt_5_4_over_272k_at_the_long_context_rate() {
        let c = Config::from_toml(DEFAULT_TOML, Path::new("."), &no_env).unwrap();
        let p = c.catalog.prices_for("gpt-5.4").unwrap();
        let m = c.catalog.multipliers();
        let long = cost(p, &usage(300_000, 10_000), ServiceTier::Default, m).unwrap();
        assert_eq!(long.total, dec!(1.725)); // 300K × $5 + 10K × $22.50
        let short = cost(p, &usage(200_000, 10_000), ServiceTier::Default, m).unwrap();
        assert_eq!(short.total, dec!(0.65)); // 200K × $2.50 + 10K × $15
    }

    #[test]
    fn the_price_database_prices_models_beyond_the_config() {
        let c = Config::from_toml(DEFAULT_TOML, Path::new("."), &no_env).unwrap();
        // not configured: from the database, with its cache-write price and 272K tier
        let sol = c.catalog.prices_for("gpt-5.6-sol").unwrap();
        assert_eq!(sol.cache_write, Some(dec!(6.25)));
        assert_eq!(sol.context_tiers[0].above, 272_000);
        assert!(c.catalog.prices_for("claude-3-5-haiku-latest").is_some());
        // configured tiers keep precedence: the seed's gpt-5.4-nano price, not the database's
        assert_eq!(
            c.catalog.prices_for("gpt-5.4-nano").unwrap().input,
            dec!(0.20)
        );
        // unknown stays unpriced, never zero
        assert!(c.catalog.prices_for("no-such-model").is_none());
        let off = DEFAULT_TOML.replacen("[pricing]", "[pricing]\ndatabase = \"off\"", 1);
        let c = Config::from_toml(&off, Path::new("."), &no_env).unwrap();
        assert!(c.catalog.prices_for("gpt-5.6-sol").is_none());
    }

    #[test]
    fn a_bad_database_file_is_a_config_error() {
        let dir = std::env::temp_dir().join(format!("tierwise-db-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("prices.json"), "[{\"id\": \"x\"}]").unwrap();
        let text = DEFAULT_TOML.replacen("[pricing]", "[pricing]\ndatabase = \"prices.json\"", 1);
        let err = Config::from_toml(&text, &dir, &no_env)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("pricing.database:"), "{err}");
        assert!(err.ends_with("x.name: missing"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn long_context_tiers_must_ascend() {
        let text = DEFAULT_TOML.replacen(
            "output = 22.50
",
            "output = 22.50
[[tiers.long_context]]
above = 100
input = 9
output = 9
",
            1,
        );
        let err = Config::from_toml(&text, Path::new("."), &no_env).unwrap_err();
        assert!(
            err.to_string().contains("tiers[2].long_context[1].above"),
            "{err}"
        );
    }

    /// Every example config validates, and its tiers carry the price database's prices for
    /// their models (base, cache write and long-context tiers), so the two cannot drift apart.
    #[test]
    fn example_ladders_validate_and_match_the_database() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("toml") {
                continue;
            }
            let c = Config::load_file(&path, &no_env)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let db = c.catalog.price_db().unwrap();
            for t in c.catalog.tiers() {
                let m = db.find(&t.model).unwrap_or_else(|| panic!("{}", t.model));
                assert_eq!(
                    m.prices.as_ref(),
                    Some(&t.prices),
                    "{}: {}",
                    path.display(),
                    t.model
                );
                checked += 1;
            }
        }
        assert!(checked >= 6, "{checked}");
    }

    #[test]
    fn negative_price_is_rejected() {
        let text = DEFAULT_TOML.replacen("input = 0.20", "input = -0.20", 1);
        let err = Config::from_toml(&text, Path::new("."), &no_env).unwrap_err();
        assert!(err.to_string().contains("nano"), "{err}");
    }
}
