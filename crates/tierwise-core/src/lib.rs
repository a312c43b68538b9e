//! Pure building blocks of tierwise: no network, no database.
//!
//! # Layout
//! - [`catalog`]: the tier ladder (cheapest first) and the price table of other models.
//! - [`cost`]: provider usage and its exact price (`Decimal`): context tiers, cached input, cache
//!   writes, output, per service tier.
//! - [`prices`]: the vendored genai-prices database (`data/prices/`), embedded, validated, looked
//!   up by model id; the catalog's source for models beyond the configured ones.
//! - [`tokens`]: o200k_base token counting for text, chat messages and tool schemas.
//!   - `tokens/fast.rs`: its per-thread memos and ASCII pre-tokenizer, beside their references.
//! - [`request`]: a validated read-only view of a chat completions / Responses request body.
//! - [`signals`]: what the router looks at (tokens, turns, code, math, tools, domain, language, hints).
//!   - `signals/scan.rs`: the byte scanners that compute them fast, beside their references.
//! - [`config`]: `tierwise.toml`, raw → validated; `config/` has one file per section.
//! - [`hash`]: one fast hasher (`FastMap`) for in-process memos and tables.

pub mod catalog;
pub mod config;
pub mod cost;
pub mod hash;
pub mod prices;
pub mod request;
pub mod signals;
pub mod tokens;

pub use catalog::{Catalog, ContextTier, FlatPrices, Prices, Resolved, Tier};
pub use config::Config;
pub use cost::{Cost, ServiceTier, Usage, cost};
