//! `[quality]`: the bar a cheaper tier must clear (`tierwise quality`, `calibrate --from-log`)
//! and `[quality.shadow]`, the gateway's shadow tests — a sample of calls sent again to a
//! candidate tier after the client's answer is complete, and judged.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Deserialize;

use super::ConfigError;
use super::catalog::RawDecimal;
use crate::catalog::Catalog;

/// `quality.bar` when absent: the candidate's quality ratio to clear.
pub const DEFAULT_BAR: f64 = 0.95;
/// `quality.confidence` when absent.
pub const DEFAULT_CONFIDENCE: f64 = 0.9;
/// `quality.shadow.rate` when absent: shadow tests are off.
pub const DEFAULT_RATE: f64 = 0.0;
/// `quality.shadow.daily_usd_cap` when absent (shadow + judge spend per UTC day).
pub const DEFAULT_DAILY_USD_CAP: &str = "5";
/// `quality.shadow.max_concurrency` when absent.
pub const DEFAULT_MAX_CONCURRENCY: usize = 4;

/// `[quality]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuality {
    pub bar: Option<f64>,
    pub confidence: Option<f64>,
    #[serde(default)]
    pub shadow: RawShadow,
}

/// `[quality.shadow]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShadow {
    /// Share of eligible calls sampled, in [0, 1].
    pub rate: Option<f64>,
    /// Per-category rates (category name → share), overriding `rate`.
    #[serde(default)]
    pub categories: BTreeMap<String, f64>,
    /// The candidate tier (default: the tier below the one that served the call).
    pub candidate: Option<String>,
    /// The judge model (a tier name or a model id; default: the top tier's model).
    pub judge: Option<String>,
    /// Shadow + judge spend per UTC day, USD; sampling stops when it is reached.
    pub daily_usd_cap: Option<RawDecimal>,
    /// Shadow tests in flight at most; a sampled call finding them all busy is skipped.
    pub max_concurrency: Option<usize>,
}

/// Validated `[quality]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Quality {
    pub bar: f64,
    pub confidence: f64,
    pub shadow: Shadow,
}

/// Validated `[quality.shadow]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Shadow {
    pub rate: f64,
    pub categories: BTreeMap<String, f64>,
    /// Catalog tier index of a fixed candidate; `None`: the tier below the served one.
    pub candidate: Option<usize>,
    /// The judge's model id (priced by the catalog).
    pub judge: String,
    pub daily_usd_cap: Decimal,
    pub max_concurrency: usize,
}

impl Shadow {
    /// The sampling rate of `category` (its override, else `rate`).
    pub fn rate_for(&self, category: &str) -> f64 {
        self.categories.get(category).copied().unwrap_or(self.rate)
    }

    /// Whether any call can be sampled at all.
    pub fn enabled(&self) -> bool {
        self.rate > 0.0 || self.categories.values().any(|r| *r > 0.0)
    }

    /// The candidate tier for a call served by ladder tier `served`: the configured one if it
    /// is cheaper than `served`, else the tier below; `None` when there is nothing cheaper.
    pub fn candidate_for(&self, served: usize) -> Option<usize> {
        match self.candidate {
            Some(c) => (c < served).then_some(c),
            None => served.checked_sub(1),
        }
    }
}

fn unit(field: &str, x: f64) -> Result<f64, ConfigError> {
    if (0.0..=1.0).contains(&x) {
        Ok(x)
    } else {
        Err(ConfigError::invalid(field, format!("{x} is not in [0, 1]")))
    }
}

fn open_unit(field: &str, x: f64) -> Result<f64, ConfigError> {
    if x > 0.0 && x < 1.0 {
        Ok(x)
    } else {
        Err(ConfigError::invalid(field, format!("{x} is not in (0, 1)")))
    }
}

/// Validates `[quality]` against the catalog.
pub(super) fn load(raw: RawQuality, catalog: &Catalog) -> Result<Quality, ConfigError> {
    let RawQuality {
        bar,
        confidence,
        shadow,
    } = raw;
    let bar = bar.unwrap_or(DEFAULT_BAR);
    if !(bar > 0.0 && bar <= 1.0) {
        return Err(ConfigError::invalid(
            "quality.bar",
            format!("{bar} is not in (0, 1]"),
        ));
    }
    let confidence = open_unit(
        "quality.confidence",
        confidence.unwrap_or(DEFAULT_CONFIDENCE),
    )?;
    let RawShadow {
        rate,
        categories,
        candidate,
        judge,
        daily_usd_cap,
        max_concurrency,
    } = shadow;
    let rate = unit("quality.shadow.rate", rate.unwrap_or(DEFAULT_RATE))?;
    for (name, r) in &categories {
        unit(&format!("quality.shadow.categories.{name}"), *r)?;
    }
    let candidate = candidate
        .map(|c| {
            catalog.tier_index(&c).ok_or_else(|| {
                ConfigError::invalid("quality.shadow.candidate", format!("no tier named {c}"))
            })
        })
        .transpose()?;
    let judge = match judge {
        None => catalog
            .tier(catalog.top())
            .map(|t| t.model.clone())
            .unwrap_or_default(),
        Some(j) => match catalog.tier_index(&j).and_then(|i| catalog.tier(i)) {
            Some(t) => t.model.clone(),
            None if catalog.prices_for(&j).is_some() => j,
            None => {
                return Err(ConfigError::invalid(
                    "quality.shadow.judge",
                    format!("{j} is neither a tier nor a priced model (add it under [[models]])"),
                ));
            }
        },
    };
    let cap = match daily_usd_cap {
        Some(d) => d.to_decimal("quality.shadow.daily_usd_cap")?,
        None => DEFAULT_DAILY_USD_CAP
            .parse()
            .map_err(|_| ConfigError::invalid("quality.shadow.daily_usd_cap", "bad default"))?,
    };
    if cap < Decimal::ZERO {
        return Err(ConfigError::invalid(
            "quality.shadow.daily_usd_cap",
            format!("{cap} is negative"),
        ));
    }
    let max_concurrency = max_concurrency.unwrap_or(DEFAULT_MAX_CONCURRENCY);
    if max_concurrency == 0 {
        return Err(ConfigError::invalid(
            "quality.shadow.max_concurrency",
            "must be at least 1",
        ));
    }
    Ok(Quality {
        bar,
        confidence,
        shadow: Shadow {
            rate,
            categories,
            candidate,
            judge,
            daily_usd_cap: cap,
            max_concurrency,
        },
    })
}
