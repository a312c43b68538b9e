//! Usage as the provider reports it, and its exact price in USD (`Decimal`).
//!
//! Billing rules (OpenAI's, for the chat completions and Responses APIs):
//! - `prompt_tokens` / `input_tokens` include cached tokens; cached ones are billed at the cached
//!   input price, the rest at the input price.
//! - `prompt_tokens_details.cache_write_tokens` / `input_tokens_details.cache_write_tokens`
//!   (also inside the input count) are billed at the model's cache-write price (e.g. 1.25× input
//!   on GPT-5.6), or at the input price when the model has none.
//! - `completion_tokens` / `output_tokens` include reasoning tokens; all are billed at the output
//!   price. Reasoning tokens are reported separately for visibility only.
//! - Context-length tiers: when a call's input tokens exceed a tier's threshold (e.g. 272K on
//!   gpt-5.4), every token of the call is billed at that tier's prices (the "cliff" model of the
//!   price lists), not only the tokens above it.
//! - The service tier scales every term: batch and flex at a discount (default 50%), priority at a
//!   premium.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::catalog::Prices;

/// Tokens of one call, in the provider's terms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// All prompt tokens, cached ones included.
    pub input_tokens: u64,
    /// The part of `input_tokens` read from the provider's prompt cache.
    pub cached_tokens: u64,
    /// All completion tokens, reasoning ones included.
    pub output_tokens: u64,
    /// The part of `output_tokens` spent on hidden reasoning.
    pub reasoning_tokens: u64,
    /// The part of `input_tokens` written to the prompt cache (disjoint from `cached_tokens`).
    #[serde(default)]
    pub cache_write_tokens: u64,
}

impl Usage {
    /// Reads a `usage` object of the chat completions API (`prompt_tokens`, …) or of the
    /// Responses API (`input_tokens`, …). `None` when it has neither shape.
    pub fn from_openai(usage: &Value) -> Option<Usage> {
        Usage::from_fields(&UsageFields::of(usage))
    }

    /// [`Usage::from_openai`] of the usage object whose numbers are `f`.
    pub fn from_fields(f: &UsageFields) -> Option<Usage> {
        let (input, output, cached, reasoning, written) = if let Some(p) = f.prompt_tokens {
            (
                p?,
                f.completion_tokens.flatten().unwrap_or(0),
                f.prompt_cached,
                f.completion_reasoning,
                f.prompt_cache_write,
            )
        } else if let Some(i) = f.input_tokens {
            (
                i?,
                f.output_tokens.flatten().unwrap_or(0),
                f.input_cached,
                f.output_reasoning,
                f.input_cache_write,
            )
        } else {
            return None;
        };
        let cached = cached.unwrap_or(0).min(input);
        let reasoning = reasoning.unwrap_or(0);
        Some(Usage {
            input_tokens: input,
            cached_tokens: cached,
            output_tokens: output,
            reasoning_tokens: reasoning.min(output),
            cache_write_tokens: written.unwrap_or(0).min(input - cached),
        })
    }

    /// Prompt tokens billed at the full input price: neither read from nor written to the cache.
    pub fn uncached_input(&self) -> u64 {
        self.input_tokens
            .saturating_sub(self.cached_tokens)
            .saturating_sub(self.cache_write_tokens)
    }

    pub fn add(&mut self, other: &Usage) {
        self.input_tokens += other.input_tokens;
        self.cached_tokens += other.cached_tokens;
        self.output_tokens += other.output_tokens;
        self.reasoning_tokens += other.reasoning_tokens;
        self.cache_write_tokens += other.cache_write_tokens;
    }
}

/// The numbers [`Usage::from_openai`] reads from a `usage` object, for a caller that reads
/// them itself (the audit's log reader): a token count is `None` when its key is absent and
/// `Some(None)` when its value is not a non-negative integer; a details count (e.g.
/// `prompt_tokens_details.cached_tokens`) is `None` when absent or not such an integer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageFields {
    pub prompt_tokens: Option<Option<u64>>,
    pub completion_tokens: Option<Option<u64>>,
    pub input_tokens: Option<Option<u64>>,
    pub output_tokens: Option<Option<u64>>,
    pub prompt_cached: Option<u64>,
    pub completion_reasoning: Option<u64>,
    pub input_cached: Option<u64>,
    pub output_reasoning: Option<u64>,
    /// `prompt_tokens_details.cache_write_tokens`.
    pub prompt_cache_write: Option<u64>,
    /// `input_tokens_details.cache_write_tokens`.
    pub input_cache_write: Option<u64>,
}

impl UsageFields {
    /// The numbers of a `usage` object.
    pub fn of(usage: &Value) -> UsageFields {
        let num = |k: &str| usage.get(k).map(Value::as_u64);
        let detail = |d: &str, k: &str| usage.get(d).and_then(|d| d.get(k)).and_then(Value::as_u64);
        UsageFields {
            prompt_tokens: num("prompt_tokens"),
            completion_tokens: num("completion_tokens"),
            input_tokens: num("input_tokens"),
            output_tokens: num("output_tokens"),
            prompt_cached: detail("prompt_tokens_details", "cached_tokens"),
            completion_reasoning: detail("completion_tokens_details", "reasoning_tokens"),
            input_cached: detail("input_tokens_details", "cached_tokens"),
            output_reasoning: detail("output_tokens_details", "reasoning_tokens"),
            prompt_cache_write: detail("prompt_tokens_details", "cache_write_tokens"),
            input_cache_write: detail("input_tokens_details", "cache_write_tokens"),
        }
    }
}

/// How the provider processed the call; it scales the price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum ServiceTier {
    #[default]
    Default,
    Flex,
    Batch,
    Priority,
}

impl ServiceTier {
    /// From the `service_tier` field of a response (`"default"`, `"flex"`, `"priority"`,
    /// `"scale"`, `"auto"`); unknown values are billed as default.
    pub fn from_response(s: Option<&str>) -> ServiceTier {
        match s {
            Some("flex") => ServiceTier::Flex,
            Some("priority") => ServiceTier::Priority,
            Some("batch") => ServiceTier::Batch,
            _ => ServiceTier::Default,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            ServiceTier::Default => "default",
            ServiceTier::Flex => "flex",
            ServiceTier::Batch => "batch",
            ServiceTier::Priority => "priority",
        }
    }
}

/// Price multipliers per service tier (1 = list price).
#[derive(Debug, Clone, PartialEq)]
pub struct TierMultipliers {
    pub batch: Decimal,
    pub flex: Decimal,
    pub priority: Decimal,
}

impl Default for TierMultipliers {
    fn default() -> Self {
        TierMultipliers {
            batch: Decimal::new(5, 1),
            flex: Decimal::new(5, 1),
            priority: Decimal::new(2, 0),
        }
    }
}

impl TierMultipliers {
    pub fn get(&self, tier: ServiceTier) -> Decimal {
        match tier {
            ServiceTier::Default => Decimal::ONE,
            ServiceTier::Flex => self.flex,
            ServiceTier::Batch => self.batch,
            ServiceTier::Priority => self.priority,
        }
    }
}

/// The price of one call, term by term, in USD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Cost {
    #[serde(with = "rust_decimal::serde::str")]
    pub input: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub cached_input: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub output: Decimal,
    /// Input tokens written to the prompt cache.
    #[serde(with = "rust_decimal::serde::str", default)]
    pub cache_write: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub total: Decimal,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CostError {
    #[error("cached tokens ({cached}) exceed input tokens ({input})")]
    CachedExceedsInput { cached: u64, input: u64 },
    #[error("negative price or multiplier")]
    Negative,
}

const PER_MILLION: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

/// Exact price of `usage` at `prices` (USD per 1M tokens), processed on `service_tier`: the
/// context tier of `usage.input_tokens` (if any), then each term at its price.
pub fn cost(
    prices: &Prices,
    usage: &Usage,
    service_tier: ServiceTier,
    multipliers: &TierMultipliers,
) -> Result<Cost, CostError> {
    if usage.cached_tokens > usage.input_tokens {
        return Err(CostError::CachedExceedsInput {
            cached: usage.cached_tokens,
            input: usage.input_tokens,
        });
    }
    // Cache writes are part of the input not read from the cache: a count beyond that (e.g. a
    // counterfactual that removed input tokens) is capped there.
    let written = usage
        .cache_write_tokens
        .min(usage.input_tokens - usage.cached_tokens);
    let uncached = usage.input_tokens - usage.cached_tokens - written;
    let m = multipliers.get(service_tier);
    let p = prices.at(usage.input_tokens);
    let cache_write_price = p.cache_write.unwrap_or(p.input);
    if m.is_sign_negative()
        || p.input.is_sign_negative()
        || p.cached_input.is_sign_negative()
        || p.output.is_sign_negative()
        || cache_write_price.is_sign_negative()
    {
        return Err(CostError::Negative);
    }
    let term = |tokens: u64, price: Decimal| Decimal::from(tokens) * price * m / PER_MILLION;
    let input = term(uncached, p.input);
    let cached_input = term(usage.cached_tokens, p.cached_input);
    let cache_write = term(written, cache_write_price);
    let output = term(usage.output_tokens, p.output);
    let total = input + cached_input + cache_write + output;
    Ok(Cost {
        input: input.normalize(),
        cached_input: cached_input.normalize(),
        output: output.normalize(),
        cache_write: cache_write.normalize(),
        total: total.normalize(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;
    use serde_json::json;

    use crate::catalog::{ContextTier, FlatPrices};

    fn flagship() -> Prices {
        Prices::flat(dec!(5.00), dec!(0.50), dec!(30.00))
    }

    /// gpt-5.4 as OpenAI lists it: $2.50 / $0.25 / $15, and above 272K input tokens
    /// $5.00 / $0.50 / $22.50.
    fn gpt_5_4() -> Prices {
        Prices {
            context_tiers: vec![ContextTier {
                above: 272_000,
                prices: FlatPrices {
                    input: dec!(5.00),
                    cached_input: dec!(0.50),
                    output: dec!(22.50),
                    cache_write: None,
                },
            }],
            ..Prices::flat(dec!(2.50), dec!(0.25), dec!(15.00))
        }
    }

    /// gpt-5.6-sol: cache writes at 1.25× input, 2× input and 1.5× output above 272K.
    fn sol() -> Prices {
        Prices {
            cache_write: Some(dec!(6.25)),
            context_tiers: vec![ContextTier {
                above: 272_000,
                prices: FlatPrices {
                    input: dec!(10),
                    cached_input: dec!(1),
                    output: dec!(45),
                    cache_write: Some(dec!(12.5)),
                },
            }],
            ..Prices::flat(dec!(5), dec!(0.5), dec!(30))
        }
    }

    fn usage(i: u64, c: u64, o: u64, r: u64) -> Usage {
        Usage {
            input_tokens: i,
            cached_tokens: c,
            output_tokens: o,
            reasoning_tokens: r,
            cache_write_tokens: 0,
        }
    }

    fn with_writes(u: Usage, w: u64) -> Usage {
        Usage {
            cache_write_tokens: w,
            ..u
        }
    }

    fn default_cost(p: &Prices, u: &Usage) -> Cost {
        cost(p, u, ServiceTier::Default, &Default::default()).unwrap()
    }

    /// FOUND.md: "gpt-5.4 calls over 272K input tokens are priced at the base rate".
    #[test]
    fn golden_gpt_5_4_over_272k_uses_the_long_context_tier() {
        // 300K input (100K cached), 10K output: every token at the >272K prices.
        let c = default_cost(&gpt_5_4(), &usage(300_000, 100_000, 10_000, 0));
        assert_eq!(c.input, dec!(1)); // 200K × $5
        assert_eq!(c.cached_input, dec!(0.05)); // 100K × $0.50
        assert_eq!(c.output, dec!(0.225)); // 10K × $22.50
        assert_eq!(c.total, dec!(1.275));
        // the base rate would have been 0.5 + 0.025 + 0.15 = 0.675
    }

    #[test]
    fn golden_context_tier_threshold_is_exclusive() {
        // exactly 272K input tokens: still the base band ("more than 272K")
        let c = default_cost(&gpt_5_4(), &usage(272_000, 0, 1_000, 0));
        assert_eq!(c.input, dec!(0.68));
        assert_eq!(c.output, dec!(0.015));
        let c = default_cost(&gpt_5_4(), &usage(272_001, 0, 1_000, 0));
        assert_eq!(c.input, dec!(1.360005));
        assert_eq!(c.output, dec!(0.0225));
    }

    #[test]
    fn golden_context_tier_times_service_tier() {
        let m = TierMultipliers::default();
        let u = usage(400_000, 0, 0, 0);
        let c = cost(&gpt_5_4(), &u, ServiceTier::Batch, &m).unwrap();
        assert_eq!(c.total, dec!(1)); // 400K × $5 × 0.5
    }

    #[test]
    fn golden_cache_writes_at_their_price() {
        // Sol: 10K input of which 8K written to the cache, 1K read from it.
        let u = with_writes(usage(10_000, 1_000, 0, 0), 8_000);
        let c = default_cost(&sol(), &u);
        assert_eq!(c.input, dec!(0.005)); // 1K uncached × $5
        assert_eq!(c.cached_input, dec!(0.0005)); // 1K × $0.50
        assert_eq!(c.cache_write, dec!(0.05)); // 8K × $6.25
        assert_eq!(c.total, dec!(0.0555));
    }

    #[test]
    fn golden_cache_writes_above_the_context_tier() {
        let u = with_writes(usage(300_000, 0, 0, 0), 100_000);
        let c = default_cost(&sol(), &u);
        assert_eq!(c.input, dec!(2)); // 200K × $10
        assert_eq!(c.cache_write, dec!(1.25)); // 100K × $12.50
    }

    #[test]
    fn golden_cache_writes_without_a_price_bill_as_input() {
        let u = with_writes(usage(10_000, 0, 0, 0), 8_000);
        let c = default_cost(&flagship(), &u);
        assert_eq!(c.input, dec!(0.01));
        assert_eq!(c.cache_write, dec!(0.04));
        assert_eq!(c.total, dec!(0.05)); // same as 10K uncached
    }

    #[test]
    fn cache_writes_are_capped_at_the_uncached_input() {
        // 10 input, 5 cached: at most 5 can have been written
        let c = default_cost(&sol(), &with_writes(usage(10, 5, 0, 0), 6));
        assert_eq!(c.input, dec!(0));
        assert_eq!(c.cache_write, dec!(0.00003125)); // 5 × $6.25 / 1M
    }

    #[test]
    fn usage_reads_cache_writes() {
        let chat = json!({"prompt_tokens": 100, "completion_tokens": 5,
            "prompt_tokens_details": {"cached_tokens": 10, "cache_write_tokens": 60}});
        assert_eq!(
            Usage::from_openai(&chat),
            Some(with_writes(usage(100, 10, 5, 0), 60))
        );
        let resp = json!({"input_tokens": 100, "output_tokens": 5,
            "input_tokens_details": {"cached_tokens": 50, "cache_write_tokens": 70}});
        // clamped so cached + written never exceed the input
        assert_eq!(
            Usage::from_openai(&resp),
            Some(with_writes(usage(100, 50, 5, 0), 50))
        );
    }

    #[test]
    fn golden_uncached_input() {
        let c = cost(
            &flagship(),
            &usage(1_000_000, 0, 0, 0),
            ServiceTier::Default,
            &Default::default(),
        )
        .unwrap();
        assert_eq!(c.total, dec!(5));
        assert_eq!(c.input, dec!(5));
    }

    #[test]
    fn golden_cached_input() {
        // 1000 prompt tokens of which 800 cached: 200 × 5/1M + 800 × 0.5/1M
        let c = cost(
            &flagship(),
            &usage(1000, 800, 0, 0),
            ServiceTier::Default,
            &Default::default(),
        )
        .unwrap();
        assert_eq!(c.input, dec!(0.001));
        assert_eq!(c.cached_input, dec!(0.0004));
        assert_eq!(c.total, dec!(0.0014));
    }

    #[test]
    fn golden_output_includes_reasoning() {
        // reasoning tokens are inside output_tokens: billed once, at the output price
        let c = cost(
            &flagship(),
            &usage(0, 0, 1500, 1000),
            ServiceTier::Default,
            &Default::default(),
        )
        .unwrap();
        assert_eq!(c.output, dec!(0.045));
        assert_eq!(c.total, dec!(0.045));
    }

    #[test]
    fn golden_service_tiers() {
        let u = usage(1000, 0, 1000, 0);
        let m = TierMultipliers::default();
        let std = cost(&flagship(), &u, ServiceTier::Default, &m)
            .unwrap()
            .total;
        assert_eq!(std, dec!(0.035));
        assert_eq!(
            cost(&flagship(), &u, ServiceTier::Batch, &m).unwrap().total,
            dec!(0.0175)
        );
        assert_eq!(
            cost(&flagship(), &u, ServiceTier::Flex, &m).unwrap().total,
            dec!(0.0175)
        );
        assert_eq!(
            cost(&flagship(), &u, ServiceTier::Priority, &m)
                .unwrap()
                .total,
            dec!(0.07)
        );
    }

    #[test]
    fn nano_small_call_is_exact() {
        let nano = Prices::flat(dec!(0.20), dec!(0.02), dec!(1.25));
        let c = cost(
            &nano,
            &usage(17, 0, 9, 0),
            ServiceTier::Default,
            &Default::default(),
        )
        .unwrap();
        // 17 × 0.2 + 9 × 1.25 = 3.4 + 11.25 = 14.65 micro-dollars
        assert_eq!(c.total, dec!(0.00001465));
    }

    #[test]
    fn cached_over_input_is_an_error() {
        let err = cost(
            &flagship(),
            &usage(10, 11, 0, 0),
            ServiceTier::Default,
            &Default::default(),
        );
        assert!(matches!(err, Err(CostError::CachedExceedsInput { .. })));
    }

    #[test]
    fn usage_from_chat_and_responses() {
        let chat = json!({"prompt_tokens": 100, "completion_tokens": 50,
            "prompt_tokens_details": {"cached_tokens": 64},
            "completion_tokens_details": {"reasoning_tokens": 20}});
        assert_eq!(Usage::from_openai(&chat), Some(usage(100, 64, 50, 20)));
        let resp = json!({"input_tokens": 10, "output_tokens": 5,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 3}});
        assert_eq!(Usage::from_openai(&resp), Some(usage(10, 0, 5, 3)));
        assert_eq!(Usage::from_openai(&json!({"foo": 1})), None);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        /// Base prices, an optional cache-write price, and up to two context tiers whose prices
        /// do not fall as the context grows (as on every real price list).
        fn prices() -> impl Strategy<Value = Prices> {
            (
                (0u32..100_000, 0u32..100_000, 0u32..100_000),
                proptest::option::of(0u32..100_000),
                proptest::collection::vec((1u64..2_000_000, 0u32..50_000), 0..3),
            )
                .prop_map(|((a, b, c), w, tiers)| {
                    let mut p = Prices::flat(
                        Decimal::new(a.into(), 3),
                        Decimal::new(b.into(), 4),
                        Decimal::new(c.into(), 3),
                    );
                    p.cache_write = w.map(|w| Decimal::new(w.into(), 3));
                    let mut tiers = tiers;
                    tiers.sort_by_key(|t| t.0);
                    tiers.dedup_by_key(|t| t.0);
                    let mut last = p.base();
                    for (above, bump) in tiers {
                        let up = Decimal::new(bump.into(), 3);
                        last = FlatPrices {
                            input: last.input + up,
                            cached_input: last.cached_input + up,
                            output: last.output + up,
                            cache_write: last.cache_write.map(|w| w + up),
                        };
                        p.context_tiers.push(ContextTier {
                            above,
                            prices: last,
                        });
                    }
                    p
                })
        }

        fn tiers() -> impl Strategy<Value = ServiceTier> {
            prop_oneof![
                Just(ServiceTier::Default),
                Just(ServiceTier::Flex),
                Just(ServiceTier::Batch),
                Just(ServiceTier::Priority)
            ]
        }

        proptest! {
            #[test]
            fn cost_is_non_negative(p in prices(), i in 0u64..10_000_000, c in 0u64..10_000_000,
                                    o in 0u64..10_000_000, w in 0u64..1_000_000, t in tiers()) {
                let u = with_writes(usage(i.max(c) + w, c, o, 0), w);
                let k = cost(&p, &u, t, &TierMultipliers::default()).unwrap();
                prop_assert!(k.total >= Decimal::ZERO);
                prop_assert_eq!(k.total, k.input + k.cached_input + k.cache_write + k.output);
            }

            #[test]
            fn cost_is_monotone_in_each_count(p in prices(), i in 0u64..1_000_000, c in 0u64..1_000_000,
                                              o in 0u64..1_000_000, d in 1u64..10_000, t in tiers()) {
                let m = TierMultipliers::default();
                let i = i.max(c);
                let base = cost(&p, &usage(i, c, o, 0), t, &m).unwrap().total;
                // more output
                prop_assert!(cost(&p, &usage(i, c, o + d, 0), t, &m).unwrap().total >= base);
                // more uncached input
                prop_assert!(cost(&p, &usage(i + d, c, o, 0), t, &m).unwrap().total >= base);
                // more cached input on top
                prop_assert!(cost(&p, &usage(i + d, c + d, o, 0), t, &m).unwrap().total >= base);
                // more cache writes on top
                let u = with_writes(usage(i + d, c, o, 0), d);
                prop_assert!(cost(&p, &u, t, &m).unwrap().total >= base);
            }
        }
    }
}
