//! `[[tiers]]`, `[[models]]`, `[pricing]` and the top-level `baseline`: the tier ladder and the
//! price table, validated into a [`Catalog`].

use std::str::FromStr;

use rust_decimal::Decimal;
use serde::Deserialize;

use super::ConfigError;
use crate::catalog::{Catalog, PricedModel, Prices, Tier};
use crate::cost::TierMultipliers;

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

/// `[pricing]`: service-tier multipliers (default: [`TierMultipliers::default`]).
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

/// Validates the tiers, the priced models and the multipliers, and builds the catalog. The
/// baseline is the tier named by `baseline`, else the last (most capable) tier.
pub(super) fn load(
    baseline: Option<String>,
    pricing: RawPricing,
    tiers: Vec<RawTier>,
    models: Vec<RawModel>,
) -> Result<Catalog, ConfigError> {
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
    Ok(Catalog::new(
        tier_list,
        &baseline_name,
        priced,
        multipliers,
    )?)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{Config, DEFAULT_TOML, no_env};

    #[test]
    fn negative_price_is_rejected() {
        let text = DEFAULT_TOML.replacen("input = 0.20", "input = -0.20", 1);
        let err = Config::from_toml(&text, Path::new("."), &no_env).unwrap_err();
        assert!(err.to_string().contains("nano"), "{err}");
    }
}
