//! Prometheus metrics, rendered on `GET /metrics`.
//!
//! Each gateway owns its recorder (no process-global state), so several gateways in one process
//! — tests, the bench — do not mix their numbers.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `tierwise_requests_total` | counter | `endpoint`, `tier`, `status`, `streamed` |
//! | `tierwise_request_duration_seconds` | histogram | `endpoint`, `tier`, `streamed` |
//! | `tierwise_tokens_total` | counter | `tier`, `kind` (`input`, `cached`, `output`, `reasoning`) |
//! | `tierwise_cost_usd_total` | counter (float) | `tier` |
//! | `tierwise_baseline_cost_usd_total` | counter (float) | `tier` |
//! | `tierwise_category_requests_total` | counter | `category` (built-in, or `custom`), `source` (`hint`, `categorizer`), `tier` |
//! | `tierwise_upstream_errors_total` | counter | `tier`, `status`, `retryable` |
//! | `tierwise_fallbacks_total` | counter | `from`, `to` |
//! | `tierwise_passthrough_total` | counter | `resource`, `method`, `status` |
//! | `tierwise_shadow_total` | counter | `outcome` (a shadow verdict, or `busy`: sampled but every slot was taken) |
//!
//! The exporter's counters are integers, so the two money sums are recorded as gauges that only
//! grow and exposed as what they are, counters ([`MONEY`]: `render` writes their `# TYPE` as
//! `counter`; Prometheus counters may hold floats, and `promtool check metrics` refuses a
//! non-counter with a `_total` suffix). The exact ledger is the request log.

use crate::shape::ToolShaping;
use metrics::{Key, Label, Level, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use tierwise_core::cost::Usage;

const META: Metadata<'static> = Metadata::new("tierwise_gateway", Level::INFO, None);

/// Latency buckets (seconds): sub-millisecond overhead up to long reasoning answers.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0,
];

/// The money sums: recorded as growing gauges, exposed as counters.
const MONEY: [&str; 2] = [
    "tierwise_cost_usd_total",
    "tierwise_baseline_cost_usd_total",
];

pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn labels(pairs: &[(&'static str, String)]) -> Vec<Label> {
    pairs
        .iter()
        .map(|(k, v)| Label::new(*k, v.clone()))
        .collect()
}

impl Metrics {
    pub fn new() -> Metrics {
        let builder = PrometheusBuilder::new();
        // `set_buckets` only fails on an empty list.
        let builder = match builder.set_buckets(BUCKETS) {
            Ok(b) => b,
            Err(_) => PrometheusBuilder::new(),
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let m = Metrics { recorder, handle };
        m.describe();
        m
    }

    fn describe(&self) {
        let r = &self.recorder;
        r.describe_counter(
            "tierwise_requests_total".into(),
            None,
            "Requests to the proxy endpoints.".into(),
        );
        r.describe_histogram(
            "tierwise_request_duration_seconds".into(),
            Some(Unit::Seconds),
            "Time from request received to last byte sent.".into(),
        );
        r.describe_counter(
            "tierwise_tokens_total".into(),
            None,
            "Tokens by tier and kind, as the upstream reported them.".into(),
        );
        r.describe_gauge(
            "tierwise_cost_usd_total".into(),
            None,
            "Cumulative cost in USD by tier.".into(),
        );
        r.describe_gauge(
            "tierwise_baseline_cost_usd_total".into(),
            None,
            "Cumulative cost the same usage would have had on the baseline tier.".into(),
        );
        r.describe_counter(
            "tierwise_category_requests_total".into(),
            None,
            "Requests by category (hint, else the categorizer's) and the tier that answered."
                .into(),
        );
        r.describe_counter(
            "tierwise_upstream_errors_total".into(),
            None,
            "Failed upstream attempts (each retry counts).".into(),
        );
        r.describe_counter(
            "tierwise_tools_total".into(),
            None,
            "Tool schemas per request: offered by the client vs sent upstream.".into(),
        );
        r.describe_counter(
            "tierwise_tool_schema_tokens_total".into(),
            None,
            "o200k tokens of tool schemas: offered by the client vs sent upstream.".into(),
        );
        r.describe_counter(
            "tierwise_fallbacks_total".into(),
            None,
            "Moves to the next tier after a retryable failure.".into(),
        );
        r.describe_counter(
            "tierwise_key_requests_total".into(),
            None,
            "Requests by virtual key and team (keys mode).".into(),
        );
        r.describe_gauge(
            "tierwise_key_cost_usd".into(),
            None,
            "Cumulative cost in USD by virtual key and team (keys mode).".into(),
        );
        r.describe_counter(
            "tierwise_passthrough_total".into(),
            None,
            "Other /v1 calls (files, batches, embeddings, …) relayed unchanged.".into(),
        );
        r.describe_counter(
            "tierwise_shadow_total".into(),
            None,
            "Shadow tests by outcome ([quality.shadow]).".into(),
        );
    }

    /// One sampled call's shadow outcome (`win`, `agree`, `failed`, `capped`, `busy`, …).
    pub fn shadow(&self, outcome: &'static str) {
        let key = Key::from_parts(
            "tierwise_shadow_total",
            labels(&[("outcome", outcome.to_string())]),
        );
        self.recorder.register_counter(&key, &META).increment(1);
    }

    /// One keyed request: counted, and its cost added, by key id and team (`none` without one).
    /// Key ids are the admin's, not the client's: the label set stays bounded.
    pub fn by_key(&self, key_id: &str, team: Option<&str>, cost: Option<Decimal>) {
        let l = labels(&[
            ("key", key_id.to_string()),
            ("team", team.unwrap_or("none").to_string()),
        ]);
        let key = Key::from_parts("tierwise_key_requests_total", l.clone());
        self.recorder.register_counter(&key, &META).increment(1);
        if let Some(v) = cost.and_then(|d| d.to_f64()) {
            let key = Key::from_parts("tierwise_key_cost_usd", l);
            self.recorder.register_gauge(&key, &META).increment(v);
        }
    }

    pub fn request(&self, endpoint: &str, tier: &str, status: u16, streamed: bool, secs: f64) {
        let key = Key::from_parts(
            "tierwise_requests_total",
            labels(&[
                ("endpoint", endpoint.to_string()),
                ("tier", tier.to_string()),
                ("status", status.to_string()),
                ("streamed", streamed.to_string()),
            ]),
        );
        self.recorder.register_counter(&key, &META).increment(1);
        let key = Key::from_parts(
            "tierwise_request_duration_seconds",
            labels(&[
                ("endpoint", endpoint.to_string()),
                ("tier", tier.to_string()),
                ("streamed", streamed.to_string()),
            ]),
        );
        self.recorder.register_histogram(&key, &META).record(secs);
    }

    pub fn usage(
        &self,
        tier: &str,
        usage: &Usage,
        cost: Option<Decimal>,
        baseline: Option<Decimal>,
    ) {
        for (kind, n) in [
            ("input", usage.input_tokens),
            ("cached", usage.cached_tokens),
            ("output", usage.output_tokens),
            ("reasoning", usage.reasoning_tokens),
        ] {
            let key = Key::from_parts(
                "tierwise_tokens_total",
                labels(&[("tier", tier.to_string()), ("kind", kind.to_string())]),
            );
            self.recorder.register_counter(&key, &META).increment(n);
        }
        for (name, value) in [
            ("tierwise_cost_usd_total", cost),
            ("tierwise_baseline_cost_usd_total", baseline),
        ] {
            if let Some(v) = value.and_then(|d| d.to_f64()) {
                let key = Key::from_parts(name, labels(&[("tier", tier.to_string())]));
                self.recorder.register_gauge(&key, &META).increment(v);
            }
        }
    }

    /// One routed request's category: a built-in name (hints naming others count as `custom`,
    /// so client labels never become label values), where it came from, the tier that answered.
    pub fn category(&self, category: &str, source: &str, tier: &str) {
        let name = if tierwise_router::category::CATEGORIES.contains(&category) {
            category
        } else {
            "custom"
        };
        let key = Key::from_parts(
            "tierwise_category_requests_total",
            labels(&[
                ("category", name.to_string()),
                ("source", source.to_string()),
                ("tier", tier.to_string()),
            ]),
        );
        self.recorder.register_counter(&key, &META).increment(1);
    }

    /// Tool schemas and their o200k tokens, offered by the client vs sent upstream.
    pub fn tools(&self, t: &ToolShaping) {
        for (name, kind, n) in [
            ("tierwise_tools_total", "offered", t.offered),
            ("tierwise_tools_total", "sent", t.sent),
            (
                "tierwise_tool_schema_tokens_total",
                "offered",
                t.tokens_offered,
            ),
            ("tierwise_tool_schema_tokens_total", "sent", t.tokens_sent),
        ] {
            let key = Key::from_parts(name, labels(&[("kind", kind.to_string())]));
            self.recorder
                .register_counter(&key, &META)
                .increment(n as u64);
        }
    }

    pub fn upstream_error(&self, tier: &str, status: &str, retryable: bool) {
        let key = Key::from_parts(
            "tierwise_upstream_errors_total",
            labels(&[
                ("tier", tier.to_string()),
                ("status", status.to_string()),
                ("retryable", retryable.to_string()),
            ]),
        );
        self.recorder.register_counter(&key, &META).increment(1);
    }

    pub fn fallback(&self, from: &str, to: &str) {
        let key = Key::from_parts(
            "tierwise_fallbacks_total",
            labels(&[("from", from.to_string()), ("to", to.to_string())]),
        );
        self.recorder.register_counter(&key, &META).increment(1);
    }

    /// A relayed `/v1` call; `resource` is a known OpenAI resource name or `other` (client
    /// paths never become label values, so cardinality stays bounded).
    pub fn passthrough(&self, resource: &'static str, method: &str, status: u16) {
        let key = Key::from_parts(
            "tierwise_passthrough_total",
            labels(&[
                ("resource", resource.to_string()),
                ("method", method.to_string()),
                ("status", status.to_string()),
            ]),
        );
        self.recorder.register_counter(&key, &META).increment(1);
    }

    /// Prometheus text format; the [`MONEY`] sums typed as counters.
    pub fn render(&self) -> String {
        let mut text = self.handle.render();
        for name in MONEY {
            text = text.replace(
                &format!("# TYPE {name} gauge\n"),
                &format!("# TYPE {name} counter\n"),
            );
        }
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;

    /// Every `_total` metric is typed `counter` (what `promtool check metrics` asks), money too.
    #[test]
    fn totals_are_counters() {
        let m = Metrics::new();
        let usage = Usage {
            input_tokens: 10,
            output_tokens: 5,
            ..Usage::default()
        };
        m.request("chat.completions", "mini", 200, false, 0.01);
        m.usage(
            "mini",
            &usage,
            Some(Decimal::new(15, 4)),
            Some(Decimal::new(2, 2)),
        );
        m.category("classification", "categorizer", "nano");
        m.category("Billing-Triage", "hint", "mini");
        let text = m.render();
        let mut typed = 0;
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let mut parts = line.split_whitespace().skip(2);
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
            if name.ends_with("_total") {
                assert_eq!(kind, "counter", "{line}");
                typed += 1;
            }
        }
        assert!(typed >= 5, "{text}");
        assert!(
            text.contains("tierwise_cost_usd_total{tier=\"mini\"} 0.0015"),
            "{text}"
        );
        assert!(text.contains(
            "tierwise_category_requests_total{category=\"classification\",source=\"categorizer\",tier=\"nano\"} 1"
        ));
        assert!(
            text.contains("category=\"custom\",source=\"hint\""),
            "{text}"
        );
    }
}
