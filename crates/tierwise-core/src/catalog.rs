//! The tier ladder and the price table.
//!
//! Tiers are ordered cheapest first; index 0 is the cheapest. Besides the tiers, the catalog
//! prices other models a log or a client may name (e.g. `gpt-4o`), so cost is never guessed.

use rust_decimal::Decimal;
use serde::Serialize;

use crate::cost::TierMultipliers;

/// List prices in USD per 1M tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Prices {
    #[serde(with = "rust_decimal::serde::str")]
    pub input: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub cached_input: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub output: Decimal,
}

/// One rung of the ladder.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tier {
    /// Short name clients may use as `model` (`nano`, `mini`, `standard`, `flagship`).
    pub name: String,
    /// The provider's model id this tier calls.
    pub model: String,
    pub prices: Prices,
}

/// A priced model that is not a tier.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PricedModel {
    pub model: String,
    pub prices: Prices,
    /// Where the price comes from.
    pub source: Option<String>,
}

/// What a requested `model` string resolves to.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved<'a> {
    /// `auto`: the router decides.
    Auto,
    /// A tier, by name or by its model id.
    Tier(usize, &'a Tier),
    /// A priced model that is not a tier.
    Model(&'a PricedModel),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Catalog {
    tiers: Vec<Tier>,
    baseline: usize,
    models: Vec<PricedModel>,
    #[serde(skip)]
    multipliers: TierMultipliers,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CatalogError {
    #[error("the catalog needs at least one tier")]
    NoTiers,
    #[error("tiers.{0}: duplicate tier name")]
    DuplicateTier(String),
    #[error("tiers.{0}: prices must be positive (input > 0, output > 0, cached_input >= 0)")]
    NonPositivePrice(String),
    #[error("tiers.{name}: cached_input ({cached}) exceeds input ({input})")]
    CachedAboveInput {
        name: String,
        cached: Decimal,
        input: Decimal,
    },
    #[error(
        "tiers: must be ordered cheapest first, but {cheaper} (output {a}) comes after {dearer} (output {b})"
    )]
    NotOrdered {
        dearer: String,
        a: Decimal,
        cheaper: String,
        b: Decimal,
    },
    #[error("baseline: no tier named {0:?}")]
    UnknownBaseline(String),
    #[error("models.{0}: prices must be non-negative")]
    NegativeModelPrice(String),
}

impl Catalog {
    /// Validates and builds a catalog. `baseline` names the tier that savings are measured against.
    pub fn new(
        tiers: Vec<Tier>,
        baseline: &str,
        models: Vec<PricedModel>,
        multipliers: TierMultipliers,
    ) -> Result<Catalog, CatalogError> {
        if tiers.is_empty() {
            return Err(CatalogError::NoTiers);
        }
        for (i, t) in tiers.iter().enumerate() {
            if tiers[..i].iter().any(|o| o.name == t.name) {
                return Err(CatalogError::DuplicateTier(t.name.clone()));
            }
            let p = &t.prices;
            if p.input <= Decimal::ZERO
                || p.output <= Decimal::ZERO
                || p.cached_input < Decimal::ZERO
            {
                return Err(CatalogError::NonPositivePrice(t.name.clone()));
            }
            if p.cached_input > p.input {
                return Err(CatalogError::CachedAboveInput {
                    name: t.name.clone(),
                    cached: p.cached_input,
                    input: p.input,
                });
            }
            if i > 0 {
                let prev = &tiers[i - 1];
                if prev.prices.input > p.input || prev.prices.output > p.output {
                    return Err(CatalogError::NotOrdered {
                        dearer: prev.name.clone(),
                        a: prev.prices.output,
                        cheaper: t.name.clone(),
                        b: p.output,
                    });
                }
            }
        }
        for m in &models {
            let p = &m.prices;
            if p.input < Decimal::ZERO || p.output < Decimal::ZERO || p.cached_input < Decimal::ZERO
            {
                return Err(CatalogError::NegativeModelPrice(m.model.clone()));
            }
        }
        let baseline = tiers
            .iter()
            .position(|t| t.name == baseline)
            .ok_or_else(|| CatalogError::UnknownBaseline(baseline.to_string()))?;
        Ok(Catalog {
            tiers,
            baseline,
            models,
            multipliers,
        })
    }

    /// Tiers, cheapest first.
    pub fn tiers(&self) -> &[Tier] {
        &self.tiers
    }

    pub fn tier(&self, index: usize) -> Option<&Tier> {
        self.tiers.get(index)
    }

    /// Index of the tier with this name or model id.
    pub fn tier_index(&self, name_or_model: &str) -> Option<usize> {
        self.tiers
            .iter()
            .position(|t| t.name == name_or_model)
            .or_else(|| self.tiers.iter().position(|t| t.model == name_or_model))
    }

    /// The tier savings are measured against (default: the flagship).
    pub fn baseline(&self) -> (usize, &Tier) {
        (self.baseline, &self.tiers[self.baseline])
    }

    /// The most capable tier.
    pub fn top(&self) -> usize {
        self.tiers.len() - 1
    }

    pub fn models(&self) -> &[PricedModel] {
        &self.models
    }

    pub fn multipliers(&self) -> &TierMultipliers {
        &self.multipliers
    }

    /// Resolves a requested `model`: `auto`, a tier name, a tier's model id, or another priced
    /// model (exact id, or a dated snapshot such as `gpt-4o-2024-08-06` of a priced `gpt-4o`).
    pub fn resolve(&self, requested: &str) -> Option<Resolved<'_>> {
        if requested == "auto" {
            return Some(Resolved::Auto);
        }
        if let Some(i) = self.tier_index(requested) {
            return Some(Resolved::Tier(i, &self.tiers[i]));
        }
        self.priced_model(requested).map(Resolved::Model)
    }

    fn priced_model(&self, model: &str) -> Option<&PricedModel> {
        if let Some(m) = self.models.iter().find(|m| m.model == model) {
            return Some(m);
        }
        let base = strip_snapshot(model)?;
        self.models.iter().find(|m| m.model == base)
    }

    /// Prices of any model the catalog knows (tiers first, then the price table; dated snapshots
    /// fall back to their base id). `None` means unpriced: never price it as zero.
    pub fn prices_for(&self, model: &str) -> Option<&Prices> {
        if let Some(t) = self
            .tiers
            .iter()
            .find(|t| t.model == model || t.name == model)
        {
            return Some(&t.prices);
        }
        if let Some(m) = self.priced_model(model) {
            return Some(&m.prices);
        }
        let base = strip_snapshot(model)?;
        self.tiers
            .iter()
            .find(|t| t.model == base)
            .map(|t| &t.prices)
    }

    /// The tier whose model (or snapshot of it) this is.
    pub fn tier_of_model(&self, model: &str) -> Option<usize> {
        self.tiers
            .iter()
            .position(|t| t.model == model)
            .or_else(|| {
                let base = strip_snapshot(model)?;
                self.tiers.iter().position(|t| t.model == base)
            })
    }
}

/// `gpt-4o-2024-08-06` → `gpt-4o`; `o3-mini-2025-01-31` → `o3-mini`. `None` if no date suffix.
pub fn strip_snapshot(model: &str) -> Option<&str> {
    let bytes = model.as_bytes();
    // -YYYY-MM-DD
    if bytes.len() > 11 {
        let tail = &model[model.len() - 11..];
        let b = tail.as_bytes();
        let is_date = b[0] == b'-'
            && b[5] == b'-'
            && b[8] == b'-'
            && [1, 2, 3, 4, 6, 7, 9, 10]
                .iter()
                .all(|&i| b[i].is_ascii_digit());
        if is_date {
            return Some(&model[..model.len() - 11]);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots() {
        assert_eq!(strip_snapshot("gpt-4o-2024-08-06"), Some("gpt-4o"));
        assert_eq!(strip_snapshot("gpt-4o"), None);
        assert_eq!(strip_snapshot("o3-mini-2025-01-31"), Some("o3-mini"));
    }
}
