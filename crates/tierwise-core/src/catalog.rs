//! The tier ladder and the price table.
//!
//! Tiers are ordered cheapest first; index 0 is the cheapest. Besides the tiers, the catalog
//! prices other models a log or a client may name (e.g. `gpt-4o`), so cost is never guessed:
//! first the configured `[[models]]`, then the vendored price database ([`crate::prices`]).
//! Configured tiers and models keep precedence over the database.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rust_decimal::Decimal;
use serde::Serialize;

use crate::cost::TierMultipliers;
use crate::prices::{DbModel, PriceDb};

/// List prices in USD per 1M tokens: the base prices, and the context-length tiers above them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Prices {
    #[serde(with = "rust_decimal::serde::str")]
    pub input: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub cached_input: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub output: Decimal,
    /// Input tokens written to the prompt cache; `None`: billed as uncached input.
    #[serde(
        with = "rust_decimal::serde::str_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub cache_write: Option<Decimal>,
    /// Context-length tiers, `above` strictly ascending: a call with more input tokens than a
    /// tier's `above` is billed, every token of it, at that tier's prices (the last such tier).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub context_tiers: Vec<ContextTier>,
}

/// The prices of one context-length band, USD per 1M tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct FlatPrices {
    #[serde(with = "rust_decimal::serde::str")]
    pub input: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub cached_input: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub output: Decimal,
    #[serde(
        with = "rust_decimal::serde::str_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub cache_write: Option<Decimal>,
}

/// Prices that apply to calls with more than `above` input tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ContextTier {
    pub above: u64,
    #[serde(flatten)]
    pub prices: FlatPrices,
}

impl Prices {
    /// Flat prices: no cache-write price, no context tiers.
    pub fn flat(input: Decimal, cached_input: Decimal, output: Decimal) -> Prices {
        Prices {
            input,
            cached_input,
            output,
            cache_write: None,
            context_tiers: Vec::new(),
        }
    }

    /// The base band (calls at or below the first tier's threshold).
    pub fn base(&self) -> FlatPrices {
        FlatPrices {
            input: self.input,
            cached_input: self.cached_input,
            output: self.output,
            cache_write: self.cache_write,
        }
    }

    /// The prices a call with `input_tokens` input tokens is billed at.
    pub fn at(&self, input_tokens: u64) -> FlatPrices {
        self.context_tiers
            .iter()
            .rev()
            .find(|t| input_tokens > t.above)
            .map_or_else(|| self.base(), |t| t.prices)
    }

    /// Every price, base and tiers, is ≥ 0 and the tiers' thresholds ascend strictly.
    pub fn is_valid(&self) -> bool {
        let ok = |p: &FlatPrices| {
            !(p.input.is_sign_negative()
                || p.cached_input.is_sign_negative()
                || p.output.is_sign_negative()
                || p.cache_write.is_some_and(|c| c.is_sign_negative()))
        };
        ok(&self.base())
            && self.context_tiers.iter().all(|t| ok(&t.prices))
            && self
                .context_tiers
                .windows(2)
                .all(|w| w[0].above < w[1].above)
    }
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
    #[serde(skip)]
    db: Option<Database>,
}

/// The price database behind the configured prices, with a memo of the model ids looked up
/// (bounded, and SipHash rather than `FastMap`: ids come from clients and logs).
#[derive(Debug, Clone)]
struct Database {
    db: Arc<PriceDb>,
    memo: Arc<RwLock<HashMap<String, Option<usize>>>>,
}

impl PartialEq for Database {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.db, &other.db)
    }
}

const MEMO_LIMIT: usize = 4096;

/// Where the prices of a model come from.
#[derive(Debug, Clone, Copy)]
pub enum PriceOrigin<'a> {
    /// A configured tier (index).
    Tier(usize, &'a Tier),
    /// A configured `[[models]]` entry.
    Configured(&'a PricedModel),
    /// The price database.
    Database(&'a PriceDb, &'a DbModel),
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
    #[error("{0}: context tiers must have strictly ascending thresholds and non-negative prices")]
    BadContextTiers(String),
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
            if !p.is_valid() {
                return Err(CatalogError::BadContextTiers(format!("tiers.{}", t.name)));
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
            if !p.is_valid() {
                return Err(CatalogError::BadContextTiers(format!("models.{}", m.model)));
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
            db: None,
        })
    }

    /// Prices models that are neither tiers nor configured models from `db`.
    pub fn with_price_db(mut self, db: Arc<PriceDb>) -> Catalog {
        self.db = Some(Database {
            db,
            memo: Arc::default(),
        });
        self
    }

    /// The price database behind the configured prices, if any.
    pub fn price_db(&self) -> Option<&PriceDb> {
        self.db.as_ref().map(|d| &*d.db)
    }

    fn db_model(&self, model: &str) -> Option<&DbModel> {
        let d = self.db.as_ref()?;
        let hit = d.memo.read().ok().and_then(|m| m.get(model).copied());
        let index = match hit {
            Some(i) => i,
            None => {
                let i = d.db.find_index(model);
                if let Ok(mut m) = d.memo.write()
                    && m.len() < MEMO_LIMIT
                {
                    m.insert(model.to_string(), i);
                }
                i
            }
        };
        index.map(|i| &d.db.models()[i])
    }

    /// Where `model`'s prices come from: a tier, a configured model, or the database (whose
    /// entry may still be unpriced: check `DbModel::prices`).
    pub fn price_origin(&self, model: &str) -> Option<PriceOrigin<'_>> {
        if let Some(i) = self
            .tiers
            .iter()
            .position(|t| t.model == model || t.name == model)
        {
            return Some(PriceOrigin::Tier(i, &self.tiers[i]));
        }
        if let Some(m) = self.priced_model(model) {
            return Some(PriceOrigin::Configured(m));
        }
        if let Some(i) =
            strip_snapshot(model).and_then(|base| self.tiers.iter().position(|t| t.model == base))
        {
            return Some(PriceOrigin::Tier(i, &self.tiers[i]));
        }
        let d = self.db.as_ref()?;
        self.db_model(model)
            .map(|m| PriceOrigin::Database(&d.db, m))
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

    /// Prices of any model the catalog knows (tiers first, then the price table, then the price
    /// database; dated snapshots fall back to their base id). `None` means unpriced: never
    /// price it as zero.
    pub fn prices_for(&self, model: &str) -> Option<&Prices> {
        match self.price_origin(model)? {
            PriceOrigin::Tier(_, t) => Some(&t.prices),
            PriceOrigin::Configured(m) => Some(&m.prices),
            PriceOrigin::Database(_, m) => m.prices.as_ref(),
        }
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

    use rust_decimal_macros::dec;

    use crate::prices::PriceDb;

    fn catalog() -> Catalog {
        let tier = Tier {
            name: "standard".into(),
            model: "gpt-5.4".into(),
            prices: Prices::flat(dec!(2), dec!(0.2), dec!(10)),
        };
        let own = PricedModel {
            model: "gpt-5".into(),
            prices: Prices::flat(dec!(1), dec!(0.1), dec!(8)),
            source: Some("negotiated".into()),
        };
        Catalog::new(
            vec![tier],
            "standard",
            vec![own],
            TierMultipliers::default(),
        )
        .unwrap()
        .with_price_db(PriceDb::builtin().unwrap())
    }

    #[test]
    fn configured_prices_take_precedence_over_the_database() {
        let c = catalog();
        // a tier, its dated snapshot, a configured model: configured prices, not the database's
        assert_eq!(c.prices_for("gpt-5.4").unwrap().input, dec!(2));
        assert!(matches!(
            c.price_origin("gpt-5.4-2026-03-05"),
            Some(PriceOrigin::Tier(0, _))
        ));
        assert_eq!(c.prices_for("gpt-5").unwrap().input, dec!(1));
        assert!(matches!(
            c.price_origin("gpt-5"),
            Some(PriceOrigin::Configured(_))
        ));
        // anything else from the database, the same answer from the memo the second time
        for _ in 0..2 {
            assert!(matches!(
                c.price_origin("gpt-5-mini"),
                Some(PriceOrigin::Database(..))
            ));
            assert_eq!(c.prices_for("gpt-5-mini").unwrap().input, dec!(0.25));
            assert!(
                c.prices_for("ft:gpt-4o-mini-2024-07-18:acme::abc")
                    .is_none()
            );
        }
    }

    #[test]
    fn snapshots() {
        assert_eq!(strip_snapshot("gpt-4o-2024-08-06"), Some("gpt-4o"));
        assert_eq!(strip_snapshot("gpt-4o"), None);
        assert_eq!(strip_snapshot("o3-mini-2025-01-31"), Some("o3-mini"));
    }
}
