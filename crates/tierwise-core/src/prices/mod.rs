//! The vendored price database: the genai-prices v2 feed (`data/prices/`), embedded in the
//! binary, parsed and validated into [`Prices`] per model.
//!
//! # Layout
//! - this file: [`PriceDb`] (parse + validate, lookup by model id, diff of two copies), its
//!   [`PriceSource`] line (`data/prices/source.toml`) and the [`Date`] it resolves prices on;
//! - `matcher.rs`: the database's match clauses.
//!
//! # What is billed
//! Per model: `input_mtok` (uncached input), `cache_read_mtok` (cached input; absent: billed as
//! input), `cache_write_mtok` (absent: billed as input) and `output_mtok`, each a number or
//! `{base, tiers: [{start, price}]}`. Tiers are the database's "cliff" model: a call with more
//! than `start` input tokens pays the tier price on every token of that kind; per-kind tiers are
//! merged into [`ContextTier`]s. Other keys (audio, image, per-request, web-search prices) are
//! listed as unbilled. An entry with neither an input nor an output price is unpriced, never 0.
//!
//! A model's prices may be a list of conditional prices; the last whose condition holds on the
//! database's date wins (a `start_date` on or before it; a time-of-day window, e.g. DeepSeek's
//! off-peak hours, is not applied per call: the windowed price is taken as the price).
//!
//! # Lookup
//! `provider/model` or `provider:model` searches that provider (then its fallback providers);
//! a bare id searches, in file order, the providers whose `model_match` matches it (OpenAI for
//! `gpt-*` and `o1`/`o3`/`o4`, Anthropic for `claude*`, Google for `gemini*`, …), first match wins.

pub mod matcher;

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::catalog::{ContextTier, FlatPrices, Prices};
use matcher::Clause;

/// The vendored data file, embedded at build time.
pub const EMBEDDED_JSON: &str = include_str!("../../data/prices/genai-prices-v2-data.json");
/// Its source line (`source`, `checked`).
pub const EMBEDDED_SOURCE: &str = include_str!("../../data/prices/source.toml");
/// File names inside the data folder.
pub const DATA_FILE: &str = "genai-prices-v2-data.json";
pub const SOURCE_FILE: &str = "source.toml";
/// The data folder in the source tree this binary was built from (what `prices update` rewrites).
pub const VENDORED_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/prices");

/// A calendar date (UTC), for dated price changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

impl Date {
    /// `YYYY-MM-DD`.
    pub fn parse(s: &str) -> Option<Date> {
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let year = s[..4].parse().ok()?;
        let month: u32 = s[5..7].parse().ok()?;
        let day: u32 = s[8..].parse().ok()?;
        ((1..=12).contains(&month) && (1..=31).contains(&day)).then_some(Date { year, month, day })
    }

    /// Today in UTC (the system clock).
    pub fn today() -> Date {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Date::from_days((secs / 86_400) as i64)
    }

    /// The civil date `days` after 1970-01-01 (H. Hinnant's `civil_from_days`).
    pub fn from_days(days: i64) -> Date {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
        Date { year, month, day }
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// Where the data came from and when it was checked (`source.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PriceSource {
    pub source: String,
    pub checked: String,
}

impl PriceSource {
    pub fn parse(text: &str) -> Result<PriceSource, PriceDbError> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            source: String,
            checked: String,
        }
        let Raw { source, checked } =
            toml::from_str(text).map_err(|e| PriceDbError::Source(e.to_string()))?;
        if Date::parse(&checked).is_none() {
            return Err(PriceDbError::Source(format!(
                "checked: {checked:?} is not a YYYY-MM-DD date"
            )));
        }
        Ok(PriceSource { source, checked })
    }

    /// The file's text.
    pub fn to_toml(&self) -> String {
        let q = |s: &str| toml::Value::String(s.to_string()).to_string();
        format!(
            "# Where genai-prices-v2-data.json came from and when it was checked.\n\
             # `tierwise prices update FILE` rewrites this file together with the data.\n\
             source = {}\nchecked = {}\n",
            q(&self.source),
            q(&self.checked)
        )
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PriceDbError {
    #[error("not valid JSON: {0}")]
    Json(String),
    #[error("{0}")]
    Invalid(String),
    #[error("source.toml: {0}")]
    Source(String),
}

/// A provider of the database.
#[derive(Debug, Clone)]
pub struct DbProvider {
    pub id: String,
    pub name: String,
    pub pricing_url: Option<String>,
    model_match: Option<Clause>,
    fallbacks: Vec<String>,
    models: Range<usize>,
}

/// One model entry, its prices resolved on the database's date.
#[derive(Debug, Clone)]
pub struct DbModel {
    /// Index of its provider in [`PriceDb::providers`].
    pub provider: usize,
    pub id: String,
    pub name: Option<String>,
    pub context_window: Option<u64>,
    pub price_comments: Option<String>,
    pub deprecated: bool,
    matcher: Clause,
    /// The price active on the database's date; `None`: no text-token price (unpriced).
    pub prices: Option<Prices>,
    /// The condition of that price, when it is a conditional one (`from 2026-07-30`).
    pub condition: Option<String>,
    /// Every price of the entry in file order, with its condition.
    pub history: Vec<(Option<String>, Option<Prices>)>,
    /// Price keys of the entry that tierwise does not bill (audio, images, per request, …).
    pub unbilled: Vec<String>,
}

/// The parsed, validated database.
#[derive(Debug, Clone)]
pub struct PriceDb {
    providers: Vec<DbProvider>,
    models: Vec<DbModel>,
    source: PriceSource,
    as_of: Date,
}

impl PriceDb {
    /// The embedded copy, resolved on today's date; parsed once per process.
    pub fn builtin() -> Result<Arc<PriceDb>, PriceDbError> {
        static DB: OnceLock<Result<Arc<PriceDb>, PriceDbError>> = OnceLock::new();
        DB.get_or_init(|| {
            let source = PriceSource::parse(EMBEDDED_SOURCE)?;
            PriceDb::parse(EMBEDDED_JSON, source, Date::today()).map(Arc::new)
        })
        .clone()
    }

    /// Parses and validates `json` (a genai-prices v2 `data.json`); the first problem is the
    /// error, with its path (`openai.models[12] (gpt-5.4).prices.input_mtok.tiers[0]`).
    pub fn parse(json: &str, source: PriceSource, as_of: Date) -> Result<PriceDb, PriceDbError> {
        let root: Value =
            serde_json::from_str(json).map_err(|e| PriceDbError::Json(e.to_string()))?;
        let list = root.as_array().ok_or_else(|| {
            PriceDbError::Invalid("the top level must be an array of providers".into())
        })?;
        if list.is_empty() {
            return Err(PriceDbError::Invalid("no providers".into()));
        }
        let mut db = PriceDb {
            providers: Vec::with_capacity(list.len()),
            models: Vec::new(),
            source,
            as_of,
        };
        for (i, p) in list.iter().enumerate() {
            db.push_provider(p, i).map_err(PriceDbError::Invalid)?;
        }
        Ok(db)
    }

    fn push_provider(&mut self, v: &Value, index: usize) -> Result<(), String> {
        let at = format!("[{index}]");
        let obj = object(v, &at)?;
        let id = required_str(obj, "id", &at)?;
        if id.is_empty() || id.chars().any(char::is_whitespace) {
            return Err(format!("{at}.id: must be non-empty without spaces"));
        }
        if self.providers.iter().any(|p| p.id == id) {
            return Err(format!("{at}.id: duplicate provider {id:?}"));
        }
        let at = id.to_string();
        const KEYS: [&str; 11] = [
            "id",
            "name",
            "pricing_urls",
            "api_pattern",
            "description",
            "price_comments",
            "model_match",
            "provider_match",
            "extractors",
            "fallback_model_providers",
            "models",
        ];
        known_keys(obj, &KEYS, &at)?;
        let name = required_str(obj, "name", &at)?.to_string();
        let api = required_str(obj, "api_pattern", &at)?;
        regex::Regex::new(api).map_err(|e| format!("{at}.api_pattern: invalid regex: {e}"))?;
        let pricing_url = match obj.get("pricing_urls") {
            None => None,
            Some(u) => {
                let urls = u
                    .as_array()
                    .ok_or_else(|| format!("{at}.pricing_urls: must be an array"))?;
                let mut first = None;
                for (i, u) in urls.iter().enumerate() {
                    let s = u
                        .as_str()
                        .ok_or_else(|| format!("{at}.pricing_urls[{i}]: must be a string"))?;
                    first.get_or_insert_with(|| s.to_string());
                }
                first
            }
        };
        let model_match = obj
            .get("model_match")
            .map(|c| Clause::parse(c, &format!("{at}.model_match")))
            .transpose()?;
        if let Some(c) = obj.get("provider_match") {
            Clause::parse(c, &format!("{at}.provider_match"))?;
        }
        let fallbacks = match obj.get("fallback_model_providers") {
            None => Vec::new(),
            Some(f) => f
                .as_array()
                .ok_or_else(|| format!("{at}.fallback_model_providers: must be an array"))?
                .iter()
                .map(|s| s.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| format!("{at}.fallback_model_providers: must be strings"))?,
        };
        let models = obj
            .get("models")
            .ok_or_else(|| format!("{at}.models: missing"))?
            .as_array()
            .ok_or_else(|| format!("{at}.models: must be an array"))?;
        let provider = self.providers.len();
        let start = self.models.len();
        for (i, m) in models.iter().enumerate() {
            let model = self.parse_model(m, provider, &format!("{at}.models[{i}]"))?;
            if self.models[start..].iter().any(|o| o.id == model.id) {
                return Err(format!(
                    "{at}.models[{i}].id: duplicate model {:?}",
                    model.id
                ));
            }
            self.models.push(model);
        }
        self.providers.push(DbProvider {
            id: id.to_string(),
            name,
            pricing_url,
            model_match,
            fallbacks,
            models: start..self.models.len(),
        });
        Ok(())
    }

    fn parse_model(&self, v: &Value, provider: usize, at: &str) -> Result<DbModel, String> {
        let obj = object(v, at)?;
        let id = required_str(obj, "id", at)?;
        if id.is_empty() || id.chars().any(char::is_whitespace) {
            return Err(format!("{at}.id: must be non-empty without spaces"));
        }
        let at = format!("{at} ({id})");
        const KEYS: [&str; 8] = [
            "id",
            "name",
            "description",
            "match",
            "context_window",
            "price_comments",
            "prices",
            "deprecated",
        ];
        known_keys(obj, &KEYS, &at)?;
        let opt_str = |k: &str| -> Result<Option<String>, String> {
            match obj.get(k) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(format!("{at}.{k}: must be a string")),
            }
        };
        let name = opt_str("name")?;
        opt_str("description")?;
        let price_comments = opt_str("price_comments")?;
        let context_window =
            match obj.get("context_window") {
                None => None,
                Some(c) => Some(c.as_u64().ok_or_else(|| {
                    format!("{at}.context_window: must be a non-negative integer")
                })?),
            };
        let deprecated = match obj.get("deprecated") {
            None => false,
            Some(d) => d
                .as_bool()
                .ok_or_else(|| format!("{at}.deprecated: must be a boolean"))?,
        };
        let matcher = Clause::parse(
            obj.get("match")
                .ok_or_else(|| format!("{at}.match: missing"))?,
            &format!("{at}.match"),
        )?;
        let prices_v = obj
            .get("prices")
            .ok_or_else(|| format!("{at}.prices: missing"))?;
        let mut history = Vec::new();
        let mut unbilled = BTreeSet::new();
        // (condition text, holds on as_of)
        let mut conds: Vec<bool> = Vec::new();
        match prices_v {
            Value::Object(_) => {
                let (p, u) = model_price(prices_v, &format!("{at}.prices"))?;
                unbilled.extend(u);
                history.push((None, p));
                conds.push(true);
            }
            Value::Array(list) => {
                if list.is_empty() {
                    return Err(format!("{at}.prices: must not be empty"));
                }
                for (i, c) in list.iter().enumerate() {
                    let cat = format!("{at}.prices[{i}]");
                    let co = object(c, &cat)?;
                    known_keys(co, &["constraint", "prices"], &cat)?;
                    let (p, u) = model_price(
                        co.get("prices")
                            .ok_or_else(|| format!("{cat}.prices: missing"))?,
                        &format!("{cat}.prices"),
                    )?;
                    unbilled.extend(u);
                    let (text, holds) = match co.get("constraint") {
                        None => (None, true),
                        Some(k) => {
                            let (t, h) = constraint(k, self.as_of, &format!("{cat}.constraint"))?;
                            (Some(t), h)
                        }
                    };
                    history.push((text, p));
                    conds.push(holds);
                }
            }
            _ => return Err(format!("{at}.prices: must be an object or an array")),
        }
        let active = conds.iter().rposition(|&h| h).unwrap_or(0);
        let (condition, prices) = history[active].clone();
        Ok(DbModel {
            provider,
            id: id.to_string(),
            name,
            context_window,
            price_comments,
            deprecated,
            matcher,
            prices,
            condition,
            history,
            unbilled: unbilled.into_iter().collect(),
        })
    }

    pub fn source(&self) -> &PriceSource {
        &self.source
    }

    /// The date dated price changes were resolved on.
    pub fn as_of(&self) -> Date {
        self.as_of
    }

    pub fn providers(&self) -> &[DbProvider] {
        &self.providers
    }

    pub fn models(&self) -> &[DbModel] {
        &self.models
    }

    pub fn provider_of(&self, m: &DbModel) -> &DbProvider {
        &self.providers[m.provider]
    }

    /// The entry a model id resolves to (see the module docs), if any.
    pub fn find(&self, model: &str) -> Option<&DbModel> {
        self.find_index(model).map(|i| &self.models[i])
    }

    /// Index into [`PriceDb::models`] of [`PriceDb::find`].
    pub fn find_index(&self, model: &str) -> Option<usize> {
        for sep in ['/', ':'] {
            if let Some((p, rest)) = model.split_once(sep)
                && let Some(pi) = self.providers.iter().position(|x| x.id == p)
            {
                let mut order = vec![pi];
                for fb in &self.providers[pi].fallbacks {
                    if let Some(f) = self.providers.iter().position(|x| &x.id == fb) {
                        order.push(f);
                    }
                }
                for pi in order {
                    if let Some(i) = self.find_in(pi, rest).or_else(|| self.find_in(pi, model)) {
                        return Some(i);
                    }
                }
                return None;
            }
        }
        self.providers
            .iter()
            .enumerate()
            .filter(|(_, p)| p.model_match.as_ref().is_some_and(|c| c.matches(model)))
            .find_map(|(pi, _)| self.find_in(pi, model))
    }

    fn find_in(&self, provider: usize, model: &str) -> Option<usize> {
        let r = self.providers[provider].models.clone();
        let start = r.start;
        self.models[r]
            .iter()
            .position(|m| m.matcher.matches(model))
            .map(|i| start + i)
    }

    /// What changed from `old` to `self`, keyed by `provider/model`, in file order.
    pub fn diff(&self, old: &PriceDb) -> Vec<PriceChange> {
        let key = |db: &PriceDb, m: &DbModel| format!("{}/{}", db.provider_of(m).id, m.id);
        let old_map: std::collections::HashMap<String, &DbModel> =
            old.models.iter().map(|m| (key(old, m), m)).collect();
        let new_keys: std::collections::HashSet<String> =
            self.models.iter().map(|m| key(self, m)).collect();
        let mut out = Vec::new();
        for m in &self.models {
            let k = key(self, m);
            match old_map.get(&k) {
                None => out.push(PriceChange {
                    model: k,
                    kind: ChangeKind::Added,
                    old: None,
                    new: Some(describe(m.prices.as_ref())),
                }),
                Some(o) if o.history != m.history => out.push(PriceChange {
                    model: k,
                    kind: ChangeKind::Changed,
                    old: Some(describe_history(&o.history)),
                    new: Some(describe_history(&m.history)),
                }),
                Some(_) => {}
            }
        }
        for m in &old.models {
            let k = key(old, m);
            if !new_keys.contains(&k) {
                out.push(PriceChange {
                    model: k,
                    kind: ChangeKind::Removed,
                    old: Some(describe(m.prices.as_ref())),
                    new: None,
                });
            }
        }
        out
    }
}

/// One line of [`PriceDb::diff`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PriceChange {
    pub model: String,
    pub kind: ChangeKind,
    pub old: Option<String>,
    pub new: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
}

/// `in 2.5 / cached 0.25 / out 15; >272000: in 5 / cached 0.5 / out 22.5` (USD per 1M).
pub fn describe(p: Option<&Prices>) -> String {
    let Some(p) = p else {
        return "unpriced".into();
    };
    let band = |f: &FlatPrices| {
        let mut s = format!(
            "in {} / cached {} / out {}",
            f.input.normalize(),
            f.cached_input.normalize(),
            f.output.normalize()
        );
        if let Some(w) = f.cache_write {
            s.push_str(&format!(" / cache write {}", w.normalize()));
        }
        s
    };
    let mut s = band(&p.base());
    for t in &p.context_tiers {
        s.push_str(&format!("; >{}: {}", t.above, band(&t.prices)));
    }
    s
}

fn describe_history(h: &[(Option<String>, Option<Prices>)]) -> String {
    h.iter()
        .map(|(c, p)| match c {
            None => describe(p.as_ref()),
            Some(c) => format!("[{c}] {}", describe(p.as_ref())),
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

fn object<'a>(v: &'a Value, at: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("{at}: must be an object"))
}

fn required_str<'a>(obj: &'a Map<String, Value>, k: &str, at: &str) -> Result<&'a str, String> {
    match obj.get(k) {
        None => Err(format!("{at}.{k}: missing")),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(format!("{at}.{k}: must be a string")),
    }
}

fn known_keys(obj: &Map<String, Value>, keys: &[&str], at: &str) -> Result<(), String> {
    match obj.keys().find(|k| !keys.contains(&k.as_str())) {
        Some(k) => Err(format!("{at}: unknown field {k:?}")),
        None => Ok(()),
    }
}

/// A JSON number as an exact, non-negative `Decimal` (f64's shortest round-trip text).
fn decimal(v: &Value, at: &str) -> Result<Decimal, String> {
    let d = if let Some(u) = v.as_u64() {
        Decimal::from(u)
    } else if let Some(f) = v.as_f64() {
        if !f.is_finite() {
            return Err(format!("{at}: not a finite number"));
        }
        Decimal::from_str(&f.to_string()).map_err(|e| format!("{at}: {e}"))?
    } else {
        return Err(format!("{at}: must be a number"));
    };
    if d.is_sign_negative() && !d.is_zero() {
        return Err(format!("{at}: must not be negative"));
    }
    Ok(d.normalize())
}

/// A price: a number, or `{base, tiers: [{start, price}]}` with strictly ascending starts.
struct Tiered {
    base: Decimal,
    tiers: Vec<(u64, Decimal)>,
}

impl Tiered {
    /// The price for calls with more than `t` input tokens, `t` being a merged threshold.
    fn above(&self, t: u64) -> Decimal {
        self.tiers
            .iter()
            .rev()
            .find(|(s, _)| *s <= t)
            .map_or(self.base, |(_, p)| *p)
    }
}

fn price_value(v: &Value, at: &str) -> Result<Tiered, String> {
    if let Value::Object(o) = v {
        known_keys(o, &["base", "tiers"], at)?;
        let base = decimal(
            o.get("base").ok_or_else(|| format!("{at}.base: missing"))?,
            &format!("{at}.base"),
        )?;
        let list = o
            .get("tiers")
            .ok_or_else(|| format!("{at}.tiers: missing"))?
            .as_array()
            .ok_or_else(|| format!("{at}.tiers: must be an array"))?;
        let mut tiers: Vec<(u64, Decimal)> = Vec::with_capacity(list.len());
        for (i, t) in list.iter().enumerate() {
            let tat = format!("{at}.tiers[{i}]");
            let to = object(t, &tat)?;
            known_keys(to, &["start", "price"], &tat)?;
            let start = to
                .get("start")
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("{tat}.start: must be a non-negative integer"))?;
            let price = decimal(
                to.get("price")
                    .ok_or_else(|| format!("{tat}.price: missing"))?,
                &format!("{tat}.price"),
            )?;
            if tiers.last().is_some_and(|(s, _)| *s >= start) {
                return Err(format!("{tat}.start: tiers must ascend strictly"));
            }
            tiers.push((start, price));
        }
        Ok(Tiered { base, tiers })
    } else {
        Ok(Tiered {
            base: decimal(v, at)?,
            tiers: Vec::new(),
        })
    }
}

/// A `ModelPrice` object: the billed prices (`None` when it prices no text tokens) and the
/// keys tierwise does not bill.
fn model_price(v: &Value, at: &str) -> Result<(Option<Prices>, Vec<String>), String> {
    let obj = object(v, at)?;
    let mut input = None;
    let mut cached = None;
    let mut write = None;
    let mut output = None;
    let mut unbilled = Vec::new();
    for (k, val) in obj {
        let p = price_value(val, &format!("{at}.{k}"))?;
        match k.as_str() {
            "input_mtok" => input = Some(p),
            "cache_read_mtok" => cached = Some(p),
            "cache_write_mtok" => write = Some(p),
            "output_mtok" => output = Some(p),
            _ => unbilled.push(k.clone()),
        }
    }
    if input.is_none() && output.is_none() {
        return Ok((None, unbilled));
    }
    let zero = || Tiered {
        base: Decimal::ZERO,
        tiers: Vec::new(),
    };
    let input = input.unwrap_or_else(zero);
    let output = output.unwrap_or_else(zero);
    let band = |t: Option<u64>| {
        let at = |p: &Tiered| t.map_or(p.base, |t| p.above(t));
        FlatPrices {
            input: at(&input),
            cached_input: cached.as_ref().map_or_else(|| at(&input), at),
            output: at(&output),
            cache_write: write.as_ref().map(at),
        }
    };
    let thresholds: BTreeSet<u64> = [Some(&input), cached.as_ref(), write.as_ref(), Some(&output)]
        .into_iter()
        .flatten()
        .flat_map(|p| p.tiers.iter().map(|(s, _)| *s))
        .collect();
    let base = band(None);
    Ok((
        Some(Prices {
            input: base.input,
            cached_input: base.cached_input,
            output: base.output,
            cache_write: base.cache_write,
            context_tiers: thresholds
                .into_iter()
                .map(|t| ContextTier {
                    above: t,
                    prices: band(Some(t)),
                })
                .collect(),
        }),
        unbilled,
    ))
}

/// A constraint's text and whether it holds on `as_of`.
fn constraint(v: &Value, as_of: Date, at: &str) -> Result<(String, bool), String> {
    let o = object(v, at)?;
    if let Some(d) = o.get("start_date") {
        known_keys(o, &["start_date"], at)?;
        let s = d
            .as_str()
            .ok_or_else(|| format!("{at}.start_date: must be a string"))?;
        let date = Date::parse(s)
            .ok_or_else(|| format!("{at}.start_date: {s:?} is not a YYYY-MM-DD date"))?;
        return Ok((format!("from {date}"), date <= as_of));
    }
    known_keys(o, &["start_time", "end_time"], at)?;
    let time = |k: &str| -> Result<String, String> {
        let s = required_str(o, k, at)?;
        let ok = s.len() >= 8
            && s.as_bytes()[2] == b':'
            && s.as_bytes()[5] == b':'
            && s[..2].parse::<u32>().is_ok_and(|h| h < 24)
            && s[3..5].parse::<u32>().is_ok_and(|m| m < 60);
        if ok {
            Ok(s.to_string())
        } else {
            Err(format!("{at}.{k}: {s:?} is not a time (HH:MM:SS)"))
        }
    };
    let (a, b) = (time("start_time")?, time("end_time")?);
    Ok((format!("daily {a}–{b}"), true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn source() -> PriceSource {
        PriceSource::parse(EMBEDDED_SOURCE).unwrap()
    }

    fn db_on(date: &str) -> PriceDb {
        PriceDb::parse(EMBEDDED_JSON, source(), Date::parse(date).unwrap()).unwrap()
    }

    #[test]
    fn the_vendored_file_validates() {
        let db = db_on("2026-12-01");
        assert!(db.models().len() > 1000, "{}", db.models().len());
        assert!(PriceDb::builtin().is_ok());
        assert_eq!(source().checked, "2026-08-21");
    }

    #[test]
    fn gpt_5_4_has_the_272k_tier() {
        let db = db_on("2026-12-01");
        let m = db.find("gpt-5.4").unwrap();
        assert_eq!(db.provider_of(m).id, "openai");
        let p = m.prices.as_ref().unwrap();
        assert_eq!(
            (p.input, p.cached_input, p.output),
            (dec!(2.5), dec!(0.25), dec!(15))
        );
        assert_eq!(p.context_tiers.len(), 1);
        let t = p.context_tiers[0];
        assert_eq!(t.above, 272_000);
        assert_eq!(
            (t.prices.input, t.prices.cached_input, t.prices.output),
            (dec!(5), dec!(0.5), dec!(22.5))
        );
        // dated snapshots and provider prefixes resolve to the same entry
        assert_eq!(db.find("gpt-5.4-2026-03-05").unwrap().id, "gpt-5.4");
        assert_eq!(db.find("openai/gpt-5.4").unwrap().id, "gpt-5.4");
        assert_eq!(db.find("gpt-5.4-mini").unwrap().id, "gpt-5.4-mini");
    }

    #[test]
    fn gpt_5_6_family_with_cache_writes_and_dated_changes() {
        let before = db_on("2026-07-29");
        let after = db_on("2026-07-30");
        let luna_before = before.find("gpt-5.6-luna").unwrap().prices.clone().unwrap();
        let luna_after = after.find("gpt-5.6-luna-2026-09-01").unwrap();
        assert_eq!(luna_after.condition.as_deref(), Some("from 2026-07-30"));
        let luna_after = luna_after.prices.clone().unwrap();
        assert_eq!(luna_before.input, dec!(1));
        assert_eq!(luna_after.input, dec!(0.2));
        assert_eq!(luna_after.cache_write, Some(dec!(0.25)));
        assert_eq!(luna_after.context_tiers[0].prices.output, dec!(1.8));
        let sol = after.find("gpt-5.6-sol").unwrap().prices.clone().unwrap();
        assert_eq!(sol.cache_write, Some(dec!(6.25)));
        assert_eq!(after.find("gpt-5.6").unwrap().id, "gpt-5.6-sol");
        let terra = after.find("gpt-5.6-terra").unwrap().prices.clone().unwrap();
        assert_eq!((terra.input, terra.output), (dec!(2), dec!(12)));
    }

    #[test]
    fn other_providers_by_model_match() {
        let db = db_on("2026-12-01");
        assert_eq!(
            db.provider_of(db.find("claude-3-5-haiku-20241022").unwrap())
                .id,
            "anthropic"
        );
        assert!(db.find("gemini-2.5-pro").is_some());
        assert!(db.find("deepseek-chat").is_some());
        assert!(db.find("no-such-model-xyz").is_none());
    }

    #[test]
    fn bad_files_are_refused_with_the_first_error() {
        let s = source();
        let d = Date::parse("2026-12-01").unwrap();
        let err = PriceDb::parse("{", s.clone(), d).unwrap_err();
        assert!(matches!(err, PriceDbError::Json(_)), "{err}");
        let bad = EMBEDDED_JSON.replacen("\"input_mtok\":", "\"input_mtok\":-", 1);
        let err = PriceDb::parse(&bad, s.clone(), d).unwrap_err().to_string();
        assert!(err.contains("input_mtok: must not be negative"), "{err}");
        assert!(err.starts_with("anthropic.models["), "{err}");
        let bad = EMBEDDED_JSON.replacen("\"start\":272000", "\"start\":\"x\"", 1);
        let err = PriceDb::parse(&bad, s.clone(), d).unwrap_err().to_string();
        assert!(
            err.contains(".start: must be a non-negative integer"),
            "{err}"
        );
        let err = PriceDb::parse("[{\"id\":\"x\"}]", s, d)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "x.name: missing");
    }

    #[test]
    fn diff_reports_changes() {
        let s = source();
        let d = Date::parse("2026-12-01").unwrap();
        let old = PriceDb::parse(EMBEDDED_JSON, s.clone(), d).unwrap();
        let changed = EMBEDDED_JSON.replacen(
            "\"output_mtok\":{\"base\":15,\"tiers\":[{\"start\":272000,\"price\":22.5}]}",
            "\"output_mtok\":{\"base\":16,\"tiers\":[{\"start\":272000,\"price\":22.5}]}",
            1,
        );
        assert_ne!(changed, EMBEDDED_JSON);
        let new = PriceDb::parse(&changed, s, d).unwrap();
        let diff = new.diff(&old);
        assert_eq!(diff.len(), 1, "{diff:?}");
        assert_eq!(diff[0].model, "openai/gpt-5.4");
        assert_eq!(diff[0].kind, ChangeKind::Changed);
        assert!(new.diff(&new).is_empty());
    }

    #[test]
    fn dates() {
        assert_eq!(Date::from_days(0).to_string(), "1970-01-01");
        assert_eq!(Date::from_days(20_664).to_string(), "2026-07-30");
        assert!(Date::parse("2026-7-30").is_none());
        assert!(Date::parse("2026-07-30").unwrap() > Date::parse("2026-07-29").unwrap());
    }
}
