//! Usage as the provider reports it, and its exact price in USD (`Decimal`).
//!
//! Billing rules (OpenAI's, for the chat completions and Responses APIs):
//! - `prompt_tokens` / `input_tokens` include cached tokens; cached ones are billed at the cached
//!   input price, the rest at the input price.
//! - `completion_tokens` / `output_tokens` include reasoning tokens; all are billed at the output
//!   price. Reasoning tokens are reported separately for visibility only.
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
}

impl Usage {
    /// Reads a `usage` object of the chat completions API (`prompt_tokens`, …) or of the
    /// Responses API (`input_tokens`, …). `None` when it has neither shape.
    pub fn from_openai(usage: &Value) -> Option<Usage> {
        Usage::from_fields(&UsageFields::of(usage))
    }

    /// [`Usage::from_openai`] of the usage object whose numbers are `f`.
    pub fn from_fields(f: &UsageFields) -> Option<Usage> {
        let (input, output, cached, reasoning) = if let Some(p) = f.prompt_tokens {
            (
                p?,
                f.completion_tokens.flatten().unwrap_or(0),
                f.prompt_cached,
                f.completion_reasoning,
            )
        } else if let Some(i) = f.input_tokens {
            (
                i?,
                f.output_tokens.flatten().unwrap_or(0),
                f.input_cached,
                f.output_reasoning,
            )
        } else {
            return None;
        };
        let cached = cached.unwrap_or(0);
        let reasoning = reasoning.unwrap_or(0);
        Some(Usage {
            input_tokens: input,
            cached_tokens: cached.min(input),
            output_tokens: output,
            reasoning_tokens: reasoning.min(output),
        })
    }

    /// Prompt tokens billed at the full input price.
    pub fn uncached_input(&self) -> u64 {
        self.input_tokens.saturating_sub(self.cached_tokens)
    }

    pub fn add(&mut self, other: &Usage) {
        self.input_tokens += other.input_tokens;
        self.cached_tokens += other.cached_tokens;
        self.output_tokens += other.output_tokens;
        self.reasoning_tokens += other.reasoning_tokens;
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

/// Exact price of `usage` at `prices` (USD per 1M tokens), processed on `service_tier`.
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
    let m = multipliers.get(service_tier);
    if m.is_sign_negative()
        || prices.input.is_sign_negative()
        || prices.cached_input.is_sign_negative()
        || prices.output.is_sign_negative()
    {
        return Err(CostError::Negative);
    }
    let term = |tokens: u64, price: Decimal| Decimal::from(tokens) * price * m / PER_MILLION;
    let input = term(usage.uncached_input(), prices.input);
    let cached_input = term(usage.cached_tokens, prices.cached_input);
    let output = term(usage.output_tokens, prices.output);
    let total = input + cached_input + output;
    Ok(Cost {
        input: input.normalize(),
        cached_input: cached_input.normalize(),
        output: output.normalize(),
        total: total.normalize(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;
    use serde_json::json;

    fn flagship() -> Prices {
        Prices {
            input: dec!(5.00),
            cached_input: dec!(0.50),
            output: dec!(30.00),
        }
    }

    fn usage(i: u64, c: u64, o: u64, r: u64) -> Usage {
        Usage {
            input_tokens: i,
            cached_tokens: c,
            output_tokens: o,
            reasoning_tokens: r,
        }
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
        let nano = Prices {
            input: dec!(0.20),
            cached_input: dec!(0.02),
            output: dec!(1.25),
        };
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

        fn prices() -> impl Strategy<Value = Prices> {
            (0u32..100_000, 0u32..100_000, 0u32..100_000).prop_map(|(a, b, c)| Prices {
                input: Decimal::new(a.into(), 3),
                cached_input: Decimal::new(b.into(), 4),
                output: Decimal::new(c.into(), 3),
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
                                    o in 0u64..10_000_000, t in tiers()) {
                let u = usage(i.max(c), c, o, 0);
                let k = cost(&p, &u, t, &TierMultipliers::default()).unwrap();
                prop_assert!(k.total >= Decimal::ZERO);
                prop_assert_eq!(k.total, k.input + k.cached_input + k.output);
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
            }
        }
    }
}
