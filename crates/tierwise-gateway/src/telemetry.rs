//! OpenTelemetry traces: one span per request, one child span per upstream attempt, exported
//! over OTLP/HTTP (protobuf). Off unless the standard `OTEL_*` variables ask for it.
//!
//! # Configuration (environment, as every OpenTelemetry SDK reads it)
//! - on when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is set, or
//!   `OTEL_TRACES_EXPORTER=otlp` (then the default `http://localhost:4318`); off when neither,
//!   or `OTEL_TRACES_EXPORTER=none`, or `OTEL_SDK_DISABLED=true`. Another exporter name is an
//!   error at start (only `otlp` and `none` exist here).
//! - endpoint: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as given, else `OTEL_EXPORTER_OTLP_ENDPOINT`
//!   + `/v1/traces`.
//! - protocol (`OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` / `OTEL_EXPORTER_OTLP_PROTOCOL`): only
//!   `http/protobuf`; `grpc` or `http/json` is an error at start.
//! - `OTEL_SERVICE_NAME` (else `service.name` in `OTEL_RESOURCE_ATTRIBUTES`, else `tierwise`)
//!   and the other `OTEL_RESOURCE_ATTRIBUTES` name the resource.
//! - `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS`, `…_TIMEOUT` and `…_COMPRESSION` are read by the
//!   exporter (`opentelemetry-otlp`) itself.
//!
//! # Spans
//! Spans are built when a request is accounted (`account::finish`), from its typed context,
//! with the recorded start and end times: nothing is created or held on the request path, and
//! with telemetry off that path pays one `Option` check per request and per upstream attempt.
//! Export runs on the SDK's batch thread (bounded queue; a full queue drops spans, never blocks
//! a request).
//! - the request: kind SERVER, named `POST /v1/chat/completions` (or `/v1/responses`), child of
//!   the client's `traceparent` when it sent one; HTTP attributes (`http.request.method`,
//!   `url.path`, `http.response.status_code`, `error.type`), the GenAI ones
//!   (`gen_ai.operation.name` = `chat`, `gen_ai.provider.name` and `gen_ai.system` = `openai`,
//!   `gen_ai.request.model` as the client asked — e.g. `auto` —, `gen_ai.response.model`,
//!   `gen_ai.response.id`, `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`,
//!   `gen_ai.usage.cache_read.input_tokens`, `gen_ai.usage.cache_creation.input_tokens`) and
//!   tierwise's decision under `tierwise.` (`request_id`, `endpoint`, `tier`, `reason`,
//!   `category`, `category_source`, `mode`, `service_tier`, `cost_usd` and
//!   `baseline_cost_usd` as exact decimal strings, `usage_estimated`, `usage.reasoning_tokens`,
//!   `attempts`, `tiers_tried`, `streamed`);
//! - each upstream attempt: kind CLIENT, named `chat {model}`, from the send to the provider's
//!   response headers; `gen_ai.operation.name`, `gen_ai.provider.name`, `gen_ai.system`,
//!   `gen_ai.request.model` (the model sent), `server.address`, `server.port`,
//!   `http.response.status_code` or `error.type`, `tierwise.tier`, `tierwise.attempt`; status
//!   error when it failed.

use std::time::{Duration, SystemTime};

use axum::http::HeaderMap;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{
    Span as _, SpanContext, SpanKind, Status, TraceContextExt, Tracer, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

use crate::account::Outcome;
use crate::ctx::RequestCtx;

/// What the `OTEL_*` variables ask for (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// The full traces URL, e.g. `http://collector:4318/v1/traces`.
    pub endpoint: String,
    pub service_name: String,
    /// `OTEL_RESOURCE_ATTRIBUTES` other than `service.name`.
    pub resource: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("{var}={value}: {why}")]
    Env {
        var: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("OpenTelemetry exporter: {0}")]
    Exporter(String),
}

const DEFAULT_ENDPOINT: &str = "http://localhost:4318";

impl TelemetryConfig {
    /// Reads the `OTEL_*` variables through `env` (`None`: unset). `Ok(None)`: traces are off.
    pub fn from_env(
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<TelemetryConfig>, TelemetryError> {
        let get = |k: &str| {
            env(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        if get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let exporter = get("OTEL_TRACES_EXPORTER");
        match exporter.as_deref() {
            None | Some("otlp") => {}
            Some("none") => return Ok(None),
            Some(other) => {
                return Err(TelemetryError::Env {
                    var: "OTEL_TRACES_EXPORTER",
                    value: other.to_string(),
                    why: "unsupported exporter (tierwise exports `otlp`, or `none`)",
                });
            }
        }
        for var in [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ] {
            if let Some(p) = get(var) {
                if p != "http/protobuf" {
                    return Err(TelemetryError::Env {
                        var,
                        value: p,
                        why: "unsupported protocol (tierwise exports OTLP over http/protobuf)",
                    });
                }
                break;
            }
        }
        let endpoint = match (
            get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            get("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            (Some(e), _) => e,
            (None, Some(base)) => traces_url(&base),
            (None, None) if exporter.is_some() => traces_url(DEFAULT_ENDPOINT),
            (None, None) => return Ok(None),
        };
        let mut resource = Vec::new();
        let mut service_name = None;
        for pair in get("OTEL_RESOURCE_ATTRIBUTES")
            .unwrap_or_default()
            .split(',')
        {
            if let Some((k, v)) = pair.split_once('=') {
                let (k, v) = (k.trim().to_string(), v.trim().to_string());
                if k == "service.name" {
                    service_name = Some(v);
                } else if !k.is_empty() {
                    resource.push((k, v));
                }
            }
        }
        let service_name = get("OTEL_SERVICE_NAME")
            .or(service_name)
            .unwrap_or_else(|| "tierwise".to_string());
        Ok(Some(TelemetryConfig {
            endpoint,
            service_name,
            resource,
        }))
    }
}

/// `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`.
fn traces_url(base: &str) -> String {
    format!("{}/v1/traces", base.trim_end_matches('/'))
}

/// A running trace exporter: the tracer the gateway's spans are made with.
#[derive(Debug, Clone)]
pub struct Telemetry {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    /// `server.address` / `server.port` of the upstream, for attempt spans.
    server: Option<(String, i64)>,
    endpoint: String,
}

impl Telemetry {
    /// Starts the exporter (its batch thread) for `config`; spans go to `upstream_base`'s
    /// calls tagged with its host and port.
    pub fn start(
        config: &TelemetryConfig,
        upstream_base: &str,
    ) -> Result<Telemetry, TelemetryError> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(config.endpoint.clone())
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        let resource = Resource::builder_empty()
            .with_service_name(config.service_name.clone())
            .with_attributes(
                config
                    .resource
                    .iter()
                    .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
            )
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("tierwise");
        Ok(Telemetry {
            provider,
            tracer,
            server: server_of(upstream_base),
            endpoint: config.endpoint.clone(),
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Exports every finished span now (blocking).
    pub fn force_flush(&self) -> Result<(), TelemetryError> {
        self.provider
            .force_flush()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))
    }

    /// Flushes and stops the exporter (blocking; at shutdown).
    pub fn shutdown(&self) -> Result<(), TelemetryError> {
        self.provider
            .shutdown()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))
    }

    /// The client's trace context (`traceparent`, `tracestate`), if it sent a valid one.
    pub fn remote_parent(headers: &HeaderMap) -> Option<SpanContext> {
        let cx =
            TraceContextPropagator::new().extract(&opentelemetry_http::HeaderExtractor(headers));
        let sc = cx.span().span_context().clone();
        sc.is_valid().then_some(sc)
    }

    /// The spans of one finished request (see the module docs).
    pub fn record(&self, ctx: &RequestCtx, outcome: &Outcome, elapsed: Duration) {
        let start: SystemTime = ctx.received.into();
        let end = start + elapsed;
        let path = match ctx.endpoint() {
            "responses" => "/v1/responses",
            _ => "/v1/chat/completions",
        };
        let mut attrs = vec![
            KeyValue::new("http.request.method", "POST"),
            KeyValue::new("url.path", path),
            KeyValue::new("http.response.status_code", i64::from(outcome.status)),
            KeyValue::new("gen_ai.operation.name", "chat"),
            KeyValue::new("gen_ai.provider.name", "openai"),
            KeyValue::new("gen_ai.system", "openai"),
            KeyValue::new("gen_ai.request.model", ctx.requested_model.clone()),
            KeyValue::new("tierwise.request_id", ctx.id.to_string()),
            KeyValue::new("tierwise.endpoint", ctx.endpoint()),
            KeyValue::new("tierwise.streamed", ctx.stream),
            KeyValue::new("tierwise.attempts", i64::from(ctx.trail.attempts)),
        ];
        if ctx.candidate().is_some() {
            attrs.push(KeyValue::new(
                "gen_ai.response.model",
                ctx.model().to_string(),
            ));
        }
        if let Some(id) = &outcome.response_id {
            attrs.push(KeyValue::new("gen_ai.response.id", id.clone()));
        }
        if let Some(d) = &ctx.decision {
            attrs.extend([
                KeyValue::new("tierwise.tier", ctx.tier_name().to_string()),
                KeyValue::new("tierwise.reason", ctx.reason()),
                KeyValue::new("tierwise.category", d.category.name.to_string()),
                KeyValue::new("tierwise.category_source", d.category.source.as_str()),
                KeyValue::new("tierwise.mode", d.mode.as_str()),
            ]);
        }
        if !ctx.trail.tried.is_empty() {
            attrs.push(KeyValue::new(
                "tierwise.tiers_tried",
                ctx.trail.tried.join(","),
            ));
        }
        if ctx.trail.attempts > 0 || outcome.status < 400 {
            let u = &outcome.usage;
            attrs.extend([
                KeyValue::new("gen_ai.usage.input_tokens", to_i64(u.input_tokens)),
                KeyValue::new("gen_ai.usage.output_tokens", to_i64(u.output_tokens)),
                KeyValue::new(
                    "gen_ai.usage.cache_read.input_tokens",
                    to_i64(u.cached_tokens),
                ),
                KeyValue::new(
                    "gen_ai.usage.cache_creation.input_tokens",
                    to_i64(u.cache_write_tokens),
                ),
                KeyValue::new(
                    "tierwise.usage.reasoning_tokens",
                    to_i64(u.reasoning_tokens),
                ),
                KeyValue::new("tierwise.usage_estimated", outcome.usage_estimated),
                KeyValue::new("tierwise.service_tier", outcome.service_tier.as_str()),
            ]);
        }
        for (key, value) in [
            ("tierwise.cost_usd", outcome.priced.cost),
            ("tierwise.baseline_cost_usd", outcome.priced.baseline),
        ] {
            if let Some(v) = value {
                attrs.push(KeyValue::new(key, v.to_string()));
            }
        }
        if outcome.status >= 400 {
            attrs.push(KeyValue::new("error.type", outcome.status.to_string()));
        }
        let parent = match &ctx.trace_parent {
            Some(sc) => Context::new().with_remote_span_context(sc.clone()),
            None => Context::new(),
        };
        let mut span = self
            .tracer
            .span_builder(format!("POST {path}"))
            .with_kind(SpanKind::Server)
            .with_start_time(start)
            .with_attributes(attrs)
            .start_with_context(&self.tracer, &parent);
        if outcome.status >= 500 {
            span.set_status(Status::error(outcome.error.clone().unwrap_or_default()));
        }
        let cx = parent.with_span(span);
        for (i, call) in ctx.trail.calls.iter().enumerate() {
            let mut attrs = vec![
                KeyValue::new("gen_ai.operation.name", "chat"),
                KeyValue::new("gen_ai.provider.name", "openai"),
                KeyValue::new("gen_ai.system", "openai"),
                KeyValue::new("gen_ai.request.model", call.model.clone()),
                KeyValue::new("tierwise.tier", call.tier_name.clone()),
                KeyValue::new("tierwise.attempt", i as i64 + 1),
            ];
            if let Some((host, port)) = &self.server {
                attrs.push(KeyValue::new("server.address", host.clone()));
                attrs.push(KeyValue::new("server.port", *port));
            }
            match &call.result {
                Ok(status) => {
                    attrs.push(KeyValue::new(
                        "http.response.status_code",
                        i64::from(*status),
                    ));
                }
                Err(label) => attrs.push(KeyValue::new("error.type", label.clone())),
            }
            let mut child = self
                .tracer
                .span_builder(format!("chat {}", call.model))
                .with_kind(SpanKind::Client)
                .with_start_time(call.start)
                .with_attributes(attrs)
                .start_with_context(&self.tracer, &cx);
            if let Err(label) = &call.result {
                child.set_status(Status::error(label.clone()));
            }
            child.end_with_timestamp(call.start + call.duration);
        }
        cx.span().end_with_timestamp(end);
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Host and port of a base URL (`https://api.openai.com/v1` → `api.openai.com`, 443).
fn server_of(base: &str) -> Option<(String, i64)> {
    let (scheme, rest) = base.split_once("://")?;
    let authority = rest.split('/').next()?;
    match authority
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<i64>().ok()?)))
    {
        Some((host, port)) => Some((host.to_string(), port)),
        None => Some((
            authority.to_string(),
            if scheme == "https" { 443 } else { 80 },
        )),
    }
}

/// One upstream call, as the dispatch made it (recorded only when telemetry is on).
#[derive(Debug, Clone)]
pub struct UpstreamCall {
    pub tier_name: String,
    pub model: String,
    pub start: SystemTime,
    /// Until the provider's response headers (or the failure).
    pub duration: Duration,
    /// The provider's status, or the error label (`429`, `timeout`, `connect`, …).
    pub result: Result<u16, String>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn off_by_default_and_on_by_the_standard_variables() {
        assert_eq!(TelemetryConfig::from_env(&env(&[])).unwrap(), None);
        let c = TelemetryConfig::from_env(&env(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://collector:4318/",
        )]))
        .unwrap()
        .unwrap();
        assert_eq!(c.endpoint, "http://collector:4318/v1/traces");
        assert_eq!(c.service_name, "tierwise");
        let c = TelemetryConfig::from_env(&env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://b:9999/traces"),
            ("OTEL_SERVICE_NAME", "gw"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=x,deployment.environment=prod",
            ),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.endpoint, "http://b:9999/traces");
        assert_eq!(c.service_name, "gw");
        assert_eq!(
            c.resource,
            vec![("deployment.environment".to_string(), "prod".to_string())]
        );
        let c = TelemetryConfig::from_env(&env(&[("OTEL_TRACES_EXPORTER", "otlp")]))
            .unwrap()
            .unwrap();
        assert_eq!(c.endpoint, "http://localhost:4318/v1/traces");
        for off in [
            [
                ("OTEL_TRACES_EXPORTER", "none"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a"),
            ],
            [
                ("OTEL_SDK_DISABLED", "true"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a"),
            ],
        ] {
            assert_eq!(TelemetryConfig::from_env(&env(&off)).unwrap(), None);
        }
    }

    #[test]
    fn unsupported_exporters_and_protocols_are_refused_by_name() {
        let e = TelemetryConfig::from_env(&env(&[("OTEL_TRACES_EXPORTER", "zipkin")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("OTEL_TRACES_EXPORTER=zipkin: unsupported"),
            "{e}"
        );
        let e = TelemetryConfig::from_env(&env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("OTEL_EXPORTER_OTLP_PROTOCOL=grpc"), "{e}");
    }

    #[test]
    fn server_address_of_base_urls() {
        assert_eq!(
            server_of("https://api.openai.com/v1"),
            Some(("api.openai.com".into(), 443))
        );
        assert_eq!(
            server_of("http://127.0.0.1:3000/v1"),
            Some(("127.0.0.1".into(), 3000))
        );
    }
}
