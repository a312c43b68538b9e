//! The report: token sums priced with the catalog, in the shape `--json` prints.
//! Money is exact (`Decimal`) and serialized as decimal strings.

use std::collections::{BTreeMap, HashMap};

use rust_decimal::Decimal;
use serde::Serialize;
use tierwise_core::catalog::{Catalog, Prices};
use tierwise_core::cost::{ServiceTier, Usage, cost};
use tierwise_router::Policy;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::agg::{Acc, Buckets, ModelKey};
use crate::category::CATEGORIES;
use crate::engine::{Malformed, Options, SourceInfo, Totals};
use crate::error::AuditError;
use crate::prompt::{CACHE_MIN_TOKENS, CACHE_STEP_TOKENS};

mod money {
    pub use rust_decimal::serde::str::serialize;
}
mod money_opt {
    pub use rust_decimal::serde::str_option::serialize;
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Calls in the audited period (usage-export rows count their `num_model_requests`).
    pub requests: u64,
    /// Spend of all priced calls, USD.
    #[serde(with = "money")]
    pub spend_usd: Decimal,
    pub period: Period,
    pub sources: Vec<SourceInfo>,
    pub by_tier: Vec<TierRow>,
    pub by_category: Vec<CategoryRow>,
    pub category_by_tier: Vec<CategoryTierRow>,
    pub headline: Headline,
    pub what_if: WhatIf,
    pub top_shapes: Vec<ShapeRow>,
    pub unpriced_models: Vec<UnpricedRow>,
    /// Calls logged without usage: priced from counted input tokens, output unknown.
    pub estimated_requests: u64,
    pub malformed: MalformedReport,
    /// Calls outside --since/--until.
    pub filtered_requests: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_export: Option<ExportReport>,
    pub notes: Vec<String>,
    /// `--cascade`: the cascade scorer over the logged answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cascade_replay: Option<crate::cascade_replay::CascadeReplay>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Period {
    pub first: Option<String>,
    pub last: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TierRow {
    /// Tier name, or `none` for a model outside the ladder.
    pub tier: String,
    pub model: String,
    pub requests: u64,
    pub input_tokens: u64,
    pub cached_tokens: u64,
    pub output_tokens: u64,
    /// `null` when the model is unpriced.
    #[serde(with = "money_opt")]
    pub spend_usd: Option<Decimal>,
    pub spend_share_pct: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CategoryRow {
    pub category: String,
    pub requests: u64,
    pub input_tokens: u64,
    pub cached_tokens: u64,
    pub output_tokens: u64,
    #[serde(with = "money")]
    pub spend_usd: Decimal,
    pub spend_share_pct: f64,
    /// Calls of this category to unpriced models (not in `spend_usd`).
    pub unpriced_requests: u64,
    /// Where the policy would send this category's calls: tier → calls.
    pub routed_to: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CategoryTierRow {
    pub category: String,
    pub tier: String,
    pub requests: u64,
    #[serde(with = "money")]
    pub spend_usd: Decimal,
}

/// The seed's headline waste: flagship spend on calls the policy would send to a lower tier.
#[derive(Debug, Clone, Serialize)]
pub struct Headline {
    pub flagship_tier: String,
    #[serde(with = "money")]
    pub flagship_spend_usd: Decimal,
    #[serde(with = "money")]
    pub routable_lower_usd: Decimal,
    /// Share of flagship spend going to calls (and so categories) the policy sends lower, %.
    pub routable_lower_pct: f64,
    pub by_category: Vec<HeadlineCategory>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HeadlineCategory {
    pub category: String,
    #[serde(with = "money")]
    pub flagship_spend_usd: Decimal,
    #[serde(with = "money")]
    pub routable_lower_usd: Decimal,
    pub routable_lower_pct: f64,
    /// The tier the policy picks most often for these flagship calls.
    pub policy_tier: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct WhatIf {
    #[serde(with = "money")]
    pub baseline_usd: Decimal,
    #[serde(with = "money")]
    pub after_tiering_usd: Decimal,
    #[serde(with = "money")]
    pub after_batch_usd: Decimal,
    #[serde(with = "money")]
    pub after_cache_usd: Decimal,
    #[serde(with = "money")]
    pub after_tool_search_usd: Decimal,
    #[serde(with = "money")]
    pub savings_usd: Decimal,
    pub savings_pct: f64,
    /// Each lever cumulatively and alone.
    pub steps: Vec<Step>,
    pub routing: RoutingFacts,
    pub batch: BatchFacts,
    pub cache: CacheFacts,
    pub tool_search: ToolSearchFacts,
    pub assumptions: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub step: String,
    /// Spend after this step, on top of the previous ones.
    #[serde(with = "money")]
    pub after_usd: Decimal,
    /// What this step saves on top of the previous ones.
    #[serde(with = "money")]
    pub saving_usd: Decimal,
    /// What this lever saves applied alone to the baseline.
    #[serde(with = "money")]
    pub alone_saving_usd: Decimal,
    pub alone_saving_pct: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RoutingFacts {
    pub router: String,
    /// Calls per tier the policy picks.
    pub routed: BTreeMap<String, u64>,
    /// Calls the router refused (e.g. an unknown forced tier): kept as they were.
    pub errors: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BatchFacts {
    pub deferrable_requests: u64,
    pub deferrable_categories: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CacheFacts {
    pub ttl_secs: u64,
    /// Cached share of input tokens as logged.
    pub actual_cached_share: f64,
    /// … as the simulated cache would give on the prompts as sent.
    pub achievable_cached_share: f64,
    /// … with static content first (tools in a fixed order, system prompt first).
    pub static_first_cached_share: f64,
    /// Saving of caching as sent, alone.
    #[serde(with = "money")]
    pub as_sent_saving_usd: Decimal,
    /// What putting static content first adds on top of that, alone.
    #[serde(with = "money")]
    pub static_first_extra_usd: Decimal,
}

#[derive(Debug, Clone, Serialize)]
pub struct ToolSearchFacts {
    pub method: String,
    pub requests_with_tools: u64,
    pub requests_pruned: u64,
    pub tool_tokens: u64,
    pub removed_tokens: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShapeRow {
    pub shape: String,
    pub requests: u64,
    #[serde(with = "money")]
    pub spend_usd: Decimal,
    pub spend_share_pct: f64,
    /// Upper bound of spend missed because the shape was not tracked from the start (0: exact).
    pub spend_error_usd: f64,
    pub category: String,
    pub models: Vec<String>,
    pub policy_tier: String,
    /// Longest cacheable prefix with static content first, tokens.
    pub cacheable_prefix_tokens: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct UnpricedRow {
    pub model: String,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MalformedReport {
    pub count: u64,
    /// The first ones, with their line numbers.
    pub lines: Vec<Malformed>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    pub requests: u64,
    #[serde(with = "money")]
    pub spend_usd: Decimal,
    pub cached_share: f64,
    /// Ceiling: every non-batch call moved to the Batch API.
    #[serde(with = "money")]
    pub batch_ceiling_saving_usd: Decimal,
    /// Ceiling: every uncached input token read from cache.
    #[serde(with = "money")]
    pub cache_ceiling_saving_usd: Decimal,
}

/// The price of `requests` calls whose usage sums to `u`. A context-length tier applies per
/// call, so the sum is not priced by its own input count (2,000 calls of 1,000 tokens are not
/// one call of 2M): the band is the one of the mean call. Exact when a bucket's calls share a
/// band (every call below the first threshold: the common case); a bucket mixing calls on both
/// sides of a threshold is priced at its mean call's band.
fn price(
    catalog: &Catalog,
    model: &str,
    st: ServiceTier,
    requests: u64,
    u: &Usage,
) -> Result<Option<Decimal>, AuditError> {
    let Some(p) = catalog.prices_for(model) else {
        return Ok(None);
    };
    if p.context_tiers.is_empty() {
        return Ok(Some(cost(p, u, st, catalog.multipliers())?.total));
    }
    let band = p.at(u.input_tokens / requests.max(1));
    let flat = Prices {
        cache_write: band.cache_write,
        ..Prices::flat(band.input, band.cached_input, band.output)
    };
    Ok(Some(cost(&flat, u, st, catalog.multipliers())?.total))
}

fn total(catalog: &Catalog, b: &Buckets<ModelKey>) -> Result<Decimal, AuditError> {
    let mut sum = Decimal::ZERO;
    for ((m, st), acc) in b.iter() {
        if let Some(x) = price(catalog, m, *st, acc.requests, &acc.usage)? {
            sum += x;
        }
    }
    Ok(sum.normalize())
}

fn pct(part: Decimal, whole: Decimal) -> f64 {
    if whole.is_zero() {
        return 0.0;
    }
    let x = (part * Decimal::from(100) / whole).round_dp(2);
    x.to_string().parse().unwrap_or(0.0)
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        ((part as f64 / whole as f64) * 10_000.0).round() / 10_000.0
    }
}

fn time_str(ms: Option<i64>) -> Option<String> {
    let ms = ms?;
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    t.format(&Rfc3339).ok()
}

fn tier_name(catalog: &Catalog, idx: usize) -> String {
    catalog
        .tier(idx)
        .map_or_else(|| "none".to_string(), |t| t.name.clone())
}

fn tier_of(catalog: &Catalog, model: &str) -> String {
    catalog
        .tier_of_model(model)
        .map_or_else(|| "none".to_string(), |i| tier_name(catalog, i))
}

/// Ranks categories: built-ins in their order, then custom labels alphabetically.
fn category_rank(c: &str) -> (usize, String) {
    (
        CATEGORIES
            .iter()
            .position(|x| *x == c)
            .unwrap_or(CATEGORIES.len()),
        c.to_string(),
    )
}

/// (category rank, category), tier order, tier name.
type CatTierKey = ((usize, String), usize, String);
/// Flagship spend, the part routed lower, calls per routed tier.
type HeadAcc = (Decimal, Decimal, BTreeMap<usize, u64>);

/// Prices `totals` into the report.
pub fn build(totals: &Totals, policy: &Policy, options: &Options) -> Result<Report, AuditError> {
    let catalog = &policy.catalog;
    let top = catalog.top();

    // ---- by model / tier (call logs and usage exports together)
    let mut by_model: BTreeMap<String, (Acc, Option<Decimal>)> = BTreeMap::new();
    for b in [&totals.now, &totals.export] {
        for ((m, st), acc) in b.iter() {
            let e = by_model
                .entry(m.to_string())
                .or_insert((Acc::default(), Some(Decimal::ZERO)));
            e.0.merge(acc);
            let p = price(catalog, m, *st, acc.requests, &acc.usage)?;
            e.1 = match (e.1, p) {
                (Some(a), Some(b)) => Some(a + b),
                _ => None,
            };
        }
    }
    let spend: Decimal = by_model
        .values()
        .filter_map(|(_, s)| *s)
        .sum::<Decimal>()
        .normalize();
    let requests: u64 = by_model.values().map(|(a, _)| a.requests).sum();
    let mut by_tier: Vec<TierRow> = by_model
        .iter()
        .map(|(m, (acc, s))| TierRow {
            tier: tier_of(catalog, m),
            model: m.clone(),
            requests: acc.requests,
            input_tokens: acc.usage.input_tokens,
            cached_tokens: acc.usage.cached_tokens,
            output_tokens: acc.usage.output_tokens,
            spend_usd: s.map(|x| x.normalize()),
            spend_share_pct: s.map_or(0.0, |s| pct(s, spend)),
        })
        .collect();
    by_tier.sort_by(|a, b| {
        let ta = catalog.tier_of_model(&a.model);
        let tb = catalog.tier_of_model(&b.model);
        tb.cmp(&ta)
            .then(
                b.spend_usd
                    .unwrap_or_default()
                    .cmp(&a.spend_usd.unwrap_or_default()),
            )
            .then(a.model.cmp(&b.model))
    });

    // ---- routed tiers per category
    let mut routed_by_cat: HashMap<String, BTreeMap<String, u64>> = HashMap::new();
    let mut routed_all: BTreeMap<String, u64> = BTreeMap::new();
    for ((cat, idx), n) in &totals.routed {
        let name = tier_name(catalog, *idx);
        *routed_by_cat
            .entry(cat.to_string())
            .or_default()
            .entry(name.clone())
            .or_default() += n;
        *routed_all.entry(name).or_default() += n;
    }

    // ---- by category, category × tier
    let mut cats: BTreeMap<(usize, String), (Acc, Decimal, u64)> = BTreeMap::new();
    let mut cat_tier: BTreeMap<CatTierKey, (u64, Decimal)> = BTreeMap::new();
    for ((cat, m, st), acc) in totals.now_by_category.iter() {
        let key = category_rank(cat);
        let e = cats
            .entry(key.clone())
            .or_insert((Acc::default(), Decimal::ZERO, 0));
        e.0.merge(acc);
        let p = price(catalog, m, *st, acc.requests, &acc.usage)?;
        match p {
            Some(x) => e.1 += x,
            None => e.2 += acc.requests,
        }
        let t = catalog.tier_of_model(m);
        let tn = tier_of(catalog, m);
        // Higher tiers first within a category.
        let order = t.map_or(usize::MAX, |i| top - i);
        let c = cat_tier
            .entry((key, order, tn))
            .or_insert((0, Decimal::ZERO));
        c.0 += acc.requests;
        c.1 += p.unwrap_or_default();
    }
    let call_spend: Decimal = cats.values().map(|v| v.1).sum();
    let by_category: Vec<CategoryRow> = cats
        .into_iter()
        .map(|((_, c), (acc, s, unpriced))| CategoryRow {
            routed_to: routed_by_cat.get(&c).cloned().unwrap_or_default(),
            category: c,
            requests: acc.requests,
            input_tokens: acc.usage.input_tokens,
            cached_tokens: acc.usage.cached_tokens,
            output_tokens: acc.usage.output_tokens,
            spend_usd: s.normalize(),
            spend_share_pct: pct(s, call_spend),
            unpriced_requests: unpriced,
        })
        .collect();
    let category_by_tier: Vec<CategoryTierRow> = cat_tier
        .into_iter()
        .map(|(((_, c), _, t), (n, s))| CategoryTierRow {
            category: c,
            tier: t,
            requests: n,
            spend_usd: s.normalize(),
        })
        .collect();

    // ---- headline
    let mut head: BTreeMap<(usize, String), HeadAcc> = BTreeMap::new();
    for ((cat, routed, m, st), acc) in totals.flagship.iter() {
        let Some(x) = price(catalog, m, *st, acc.requests, &acc.usage)? else {
            continue;
        };
        let e = head.entry(category_rank(cat)).or_insert((
            Decimal::ZERO,
            Decimal::ZERO,
            BTreeMap::new(),
        ));
        e.0 += x;
        if *routed < top {
            e.1 += x;
        }
        *e.2.entry(*routed).or_default() += acc.requests;
    }
    let flagship_spend: Decimal = head.values().map(|v| v.0).sum();
    let lower: Decimal = head.values().map(|v| v.1).sum();
    let mut head_rows: Vec<HeadlineCategory> = head
        .into_iter()
        .map(|((_, c), (all, low, tiers))| {
            let policy_tier = tiers
                .iter()
                .max_by_key(|(t, n)| (**n, std::cmp::Reverse(**t)))
                .map_or_else(|| "-".to_string(), |(t, _)| tier_name(catalog, *t));
            HeadlineCategory {
                category: c,
                flagship_spend_usd: all.normalize(),
                routable_lower_usd: low.normalize(),
                routable_lower_pct: pct(low, all),
                policy_tier,
            }
        })
        .collect();
    head_rows.sort_by_key(|r| std::cmp::Reverse(r.flagship_spend_usd));
    let headline = Headline {
        flagship_tier: tier_name(catalog, top),
        flagship_spend_usd: flagship_spend.normalize(),
        routable_lower_usd: lower.normalize(),
        routable_lower_pct: pct(lower, flagship_spend),
        by_category: head_rows,
    };

    // ---- what-if (call logs + usage exports; exports pass through every step unchanged)
    let export = total(catalog, &totals.export)?;
    let baseline = total(catalog, &totals.baseline)? + export;
    let tiering = total(catalog, &totals.tiering)? + export;
    let batch = total(catalog, &totals.batch)? + export;
    let cache = total(catalog, &totals.cache)? + export;
    let tools = total(catalog, &totals.tool_search)? + export;
    let batch_alone = total(catalog, &totals.batch_alone)? + export;
    let cache_alone = total(catalog, &totals.cache_alone)? + export;
    let cache_as_sent = total(catalog, &totals.cache_alone_as_sent)? + export;
    let tools_alone = total(catalog, &totals.tool_search_alone)? + export;
    let step = |name: &str, prev: Decimal, after: Decimal, alone: Decimal| Step {
        step: name.to_string(),
        after_usd: after.normalize(),
        saving_usd: (prev - after).normalize(),
        alone_saving_usd: (baseline - alone).normalize(),
        alone_saving_pct: pct(baseline - alone, baseline),
    };
    let steps = vec![
        step("tier routing", baseline, tiering, tiering),
        step("batch (deferrable calls)", tiering, batch, batch_alone),
        step("prompt caching", batch, cache, cache_alone),
        step("tool search", cache, tools, tools_alone),
    ];
    let c = &totals.cache_shares;
    let m = catalog.multipliers();
    let tool_method = format!(
        "tierwise-tools selection, as the gateway applies it ({:?} ranking): requests with more \
         than {} tools keep the tools tool_choice names, already called or pinned, and the {} \
         most relevant; the tokens of the other schemas are not sent, and come off cached input \
         first",
        options.tool_search.method, options.tool_search.threshold, options.tool_search.top_k
    );
    let assumptions = vec![
        format!(
            "Tier routing: every call is re-sent as model \"auto\" and decided by the same decide() \
             and policy as `serve` (router: {}); hints come from request metadata, with the log \
             line's metadata acting as x-tierwise-* headers.",
            router_name(policy)
        ),
        "Usage is re-priced on the chosen tier: input, cached and output tokens are assumed \
         unchanged across tiers (reasoning-heavy models may write more or fewer tokens)."
            .to_string(),
        format!(
            "Batch: calls marked deferrable (metadata.deferrable, [audit] deferrable_categories, \
             or a batch/flex decision) are priced at the batch multiplier (×{}, flex ×{}); the rest \
             stay synchronous.",
            m.batch, m.flex
        ),
        format!(
            "Prompt caching: the provider's cache is simulated in time order, per model: prefixes \
             of at least {CACHE_MIN_TOKENS} tokens ending at a message boundary, read in \
             {CACHE_STEP_TOKENS}-token steps, alive for {} s after their last use; static first = \
             tools in a fixed order, then system/developer messages, then the conversation. A call \
             keeps its logged cached tokens when the simulation finds fewer.",
            options.cache_ttl_secs
        ),
        format!("Tool search: {tool_method}."),
        "Unpriced models and usage-export rows pass through every step unchanged.".to_string(),
    ];
    let what_if = WhatIf {
        baseline_usd: baseline.normalize(),
        after_tiering_usd: tiering.normalize(),
        after_batch_usd: batch.normalize(),
        after_cache_usd: cache.normalize(),
        after_tool_search_usd: tools.normalize(),
        savings_usd: (baseline - tools).normalize(),
        savings_pct: pct(baseline - tools, baseline),
        steps,
        routing: RoutingFacts {
            router: router_name(policy),
            routed: routed_all,
            errors: totals.route_errors,
        },
        batch: BatchFacts {
            deferrable_requests: totals.deferrable,
            deferrable_categories: options.deferrable_categories.clone(),
        },
        cache: CacheFacts {
            ttl_secs: options.cache_ttl_secs,
            actual_cached_share: share(c.actual, c.input),
            achievable_cached_share: share(c.as_sent, c.input),
            static_first_cached_share: share(c.static_first, c.input),
            as_sent_saving_usd: (baseline - cache_as_sent).normalize(),
            static_first_extra_usd: (cache_as_sent - cache_alone).normalize(),
        },
        tool_search: ToolSearchFacts {
            method: tool_method,
            requests_with_tools: totals.tool_requests,
            requests_pruned: totals.tool_search_requests,
            tool_tokens: totals.tool_tokens,
            removed_tokens: totals.tool_tokens_removed,
        },
        assumptions,
    };

    // ---- shapes
    let mut top_shapes = Vec::new();
    if let Some(t) = &totals.shapes {
        let mut entries: Vec<_> = t.entries.values().collect();
        entries.sort_by(|a, b| b.rank.total_cmp(&a.rank));
        for e in entries.into_iter().take(10) {
            let s = total(catalog, &e.spend)?;
            let requests = e.spend.iter().map(|(_, a)| a.requests).sum();
            let mut models: Vec<(u64, String)> = Vec::new();
            for ((m, _), a) in e.spend.iter() {
                match models.iter_mut().find(|(_, x)| x == &**m) {
                    Some(x) => x.0 += a.requests,
                    None => models.push((a.requests, m.to_string())),
                }
            }
            models.sort_by(|a, b| b.cmp(a));
            let category = e
                .categories
                .iter()
                .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                .map_or_else(|| "-".to_string(), |(c, _)| c.to_string());
            let policy_tier = e
                .routed
                .iter()
                .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                .map_or_else(|| "-".to_string(), |(t, _)| tier_name(catalog, *t));
            top_shapes.push(ShapeRow {
                shape: e.label.clone(),
                requests,
                spend_usd: s,
                spend_share_pct: pct(s, spend),
                spend_error_usd: (e.rank_error * 100.0).round() / 100.0,
                category,
                models: models.into_iter().map(|(_, m)| m).collect(),
                policy_tier,
                cacheable_prefix_tokens: e.cacheable_tokens,
            });
        }
    }

    // ---- unpriced
    let mut unpriced_models: Vec<UnpricedRow> = totals
        .unpriced
        .iter()
        .map(|(m, a)| UnpricedRow {
            model: m.to_string(),
            requests: a.requests,
            input_tokens: a.usage.input_tokens,
            output_tokens: a.usage.output_tokens,
        })
        .collect();
    unpriced_models.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.model.cmp(&b.model)));

    // ---- usage export
    let usage_export = if totals.export.0.is_empty() {
        None
    } else {
        let mut batch_ceiling = Decimal::ZERO;
        let mut cache_ceiling = Decimal::ZERO;
        let mut req = 0;
        let (mut input, mut cached) = (0u64, 0u64);
        for ((model, st), acc) in totals.export.iter() {
            req += acc.requests;
            input += acc.usage.input_tokens;
            cached += acc.usage.cached_tokens;
            let Some(now) = price(catalog, model, *st, acc.requests, &acc.usage)? else {
                continue;
            };
            if matches!(st, ServiceTier::Default | ServiceTier::Priority)
                && let Some(b) =
                    price(catalog, model, ServiceTier::Batch, acc.requests, &acc.usage)?
            {
                batch_ceiling += now - b;
            }
            let all_cached = Usage {
                cached_tokens: acc.usage.input_tokens,
                ..acc.usage
            };
            if let Some(cc) = price(catalog, model, *st, acc.requests, &all_cached)? {
                cache_ceiling += now - cc;
            }
        }
        Some(ExportReport {
            requests: req,
            spend_usd: export,
            cached_share: share(cached, input),
            batch_ceiling_saving_usd: batch_ceiling.normalize(),
            cache_ceiling_saving_usd: cache_ceiling.normalize(),
        })
    };

    let mut notes = Vec::new();
    if usage_export.is_some() {
        notes.push(
            "Usage export: it carries no prompts, so it gives spend by model, batch and cache only; \
             tier routing, the cache simulation and tool search need call logs (or --store). Its \
             batch and cache figures are ceilings (every call deferrable / every input token cached)."
                .to_string(),
        );
    }
    if !unpriced_models.is_empty() {
        let n: u64 = unpriced_models.iter().map(|u| u.requests).sum();
        notes.push(format!(
            "{n} calls to {} unpriced model(s) are left out of spend and of the what-if (never priced as zero); add them under [[models]] in the config.",
            unpriced_models.len()
        ));
    }
    if totals.estimated > 0 {
        notes.push(format!(
            "{} calls were logged without usage: priced from counted o200k input tokens, output unknown (0).",
            totals.estimated
        ));
    }
    if totals.malformed_count > 0 {
        notes.push(format!(
            "{} malformed lines were skipped (first: {}).",
            totals.malformed_count,
            totals
                .malformed
                .first()
                .map_or_else(String::new, |m| format!(
                    "{}:{}: {}",
                    m.source, m.line, m.error
                ))
        ));
    }
    if totals.filtered > 0 {
        notes.push(format!(
            "{} calls outside --since/--until (or without a timestamp while a filter is set) were left out.",
            totals.filtered
        ));
    }

    Ok(Report {
        requests,
        spend_usd: spend,
        period: Period {
            first: time_str(totals.first_ms),
            last: time_str(totals.last_ms),
        },
        sources: totals.sources.clone(),
        by_tier,
        by_category,
        category_by_tier,
        headline,
        what_if,
        top_shapes,
        unpriced_models,
        estimated_requests: totals.estimated,
        malformed: MalformedReport {
            count: totals.malformed_count,
            lines: totals.malformed.clone(),
        },
        filtered_requests: totals.filtered,
        usage_export,
        notes,
        cascade_replay: None,
    })
}

fn router_name(policy: &Policy) -> String {
    let mode = format!("{:?}", policy.routing.mode).to_lowercase();
    match &policy.learned {
        Some(l) => format!("{mode} + {}", l.name()),
        None => mode,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;

    /// A bucket's summed input is not one call's: 2,000 calls of 1,000 tokens on gpt-5.4 (whose
    /// long-context band starts above 272K) are priced at the base band, and one call of 300K
    /// at the long-context band.
    #[test]
    fn context_bands_are_chosen_per_call_not_per_bucket() {
        let catalog = tierwise_core::Config::embedded(&|_| None).unwrap().catalog;
        let p = catalog.prices_for("gpt-5.4").unwrap();
        assert!(!p.context_tiers.is_empty());
        let st = ServiceTier::Default;
        let many = Usage {
            input_tokens: 2_000_000,
            output_tokens: 200_000,
            ..Usage::default()
        };
        let got = price(&catalog, "gpt-5.4", st, 2000, &many)
            .unwrap()
            .unwrap();
        // $2.50 per 1M input, $15 per 1M output
        assert_eq!(got, Decimal::new(8, 0));
        let one = Usage {
            input_tokens: 300_000,
            output_tokens: 1_000,
            ..Usage::default()
        };
        let got = price(&catalog, "gpt-5.4", st, 1, &one).unwrap().unwrap();
        let want = cost(p, &one, st, catalog.multipliers()).unwrap().total;
        assert_eq!(got, want);
        assert!(got > Decimal::new(15, 1), "{got}");
    }
}
