//! OpenTelemetry traces exported over OTLP/HTTP to an in-process collector: a span per request,
//! a child span per upstream attempt, GenAI semantic-convention attributes and tierwise's
//! decision.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests may unwrap"
)]

mod common;

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind, status::StatusCode};
use prost::Message;
use serde_json::{Value, json};

/// What the collector received: (service.name, span) pairs.
type Received = Arc<Mutex<Vec<(String, Span)>>>;

/// An OTLP/HTTP protobuf receiver on 127.0.0.1:0; returns its base URL.
async fn collector(received: Received) -> String {
    async fn traces(State(received): State<Received>, body: Bytes) -> Vec<u8> {
        let req = ExportTraceServiceRequest::decode(body).unwrap();
        for rs in req.resource_spans {
            let service = rs
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
                .and_then(|a| a.value.as_ref()?.value.clone())
                .map(|v| match v {
                    Any::StringValue(s) => s,
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for span in ss.spans {
                    received.lock().unwrap().push((service.clone(), span));
                }
            }
        }
        // An empty ExportTraceServiceResponse.
        Vec::new()
    }
    let app = axum::Router::new()
        .route("/v1/traces", post(traces))
        .with_state(received);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn attr(span: &Span, key: &str) -> Option<Value> {
    let v = span.attributes.iter().find(|a| a.key == key)?;
    Some(match v.value.as_ref()?.value.clone()? {
        Any::StringValue(s) => json!(s),
        Any::IntValue(i) => json!(i),
        Any::BoolValue(b) => json!(b),
        Any::DoubleValue(d) => json!(d),
        other => json!(format!("{other:?}")),
    })
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

#[tokio::test]
async fn spans_per_request_and_attempt_reach_an_otlp_collector() {
    let received: Received = Arc::default();
    let endpoint = collector(Arc::clone(&received)).await;
    let h = Harness::with(
        Setup {
            otel_env: vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), endpoint),
                ("OTEL_SERVICE_NAME".into(), "tierwise-test".into()),
            ],
            ..Setup::default()
        }
        // nano answers 503 once, then 200: two attempts.
        .tier_model("gpt-5.4-nano", "flaky-gpt-5.4-nano"),
    )
    .await;

    let r = h
        .client
        .post(h.url("/v1/chat/completions"))
        .header("x-tierwise-tier", "nano")
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .json(&user("auto", "Say hello."))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let request_id = header(&r, "x-tierwise-request-id").to_string();
    let cost = header(&r, "x-tierwise-cost-usd").to_string();
    let answer: Value = r.json().await.unwrap();

    // A streamed Responses call: its span ends when the stream does.
    let sse = h
        .post(
            "/v1/responses",
            &json!({"model": "standard", "input": "Name a river.", "stream": true}),
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(sse.contains("response.completed"));
    // An error before any upstream call: a request span, no attempt.
    let r = h
        .post("/v1/chat/completions", &json!({"model": "auto"}))
        .await;
    assert_eq!(r.status(), 400);

    let telemetry = h.gateway.state().telemetry.clone().unwrap();
    tokio::task::spawn_blocking(move || telemetry.force_flush())
        .await
        .unwrap()
        .unwrap();
    let spans = received.lock().unwrap().clone();
    assert!(spans.iter().all(|(service, _)| service == "tierwise-test"));
    let spans: Vec<Span> = spans.into_iter().map(|(_, s)| s).collect();

    // The chat request: SERVER, child of the client's traceparent.
    let req = spans
        .iter()
        .find(|s| attr(s, "tierwise.request_id") == Some(json!(request_id)))
        .expect("the request span");
    assert_eq!(req.name, "POST /v1/chat/completions");
    assert_eq!(req.kind, SpanKind::Server as i32);
    assert_eq!(hex(&req.trace_id), TRACE_ID);
    assert_eq!(hex(&req.parent_span_id), PARENT_ID);
    let usage = &answer["usage"];
    for (key, want) in [
        ("gen_ai.operation.name", json!("chat")),
        ("gen_ai.provider.name", json!("openai")),
        ("gen_ai.system", json!("openai")),
        ("gen_ai.request.model", json!("auto")),
        ("gen_ai.response.model", json!("flaky-gpt-5.4-nano")),
        ("gen_ai.usage.input_tokens", usage["prompt_tokens"].clone()),
        (
            "gen_ai.usage.output_tokens",
            usage["completion_tokens"].clone(),
        ),
        ("gen_ai.usage.cache_read.input_tokens", json!(0)),
        (
            "tierwise.usage.reasoning_tokens",
            usage["completion_tokens_details"]["reasoning_tokens"].clone(),
        ),
        ("http.response.status_code", json!(200)),
        ("tierwise.tier", json!("nano")),
        ("tierwise.reason", json!("forced by hint → nano")),
        ("tierwise.mode", json!("sync")),
        ("tierwise.attempts", json!(2)),
        ("tierwise.cost_usd", json!(cost)),
        ("tierwise.endpoint", json!("chat.completions")),
    ] {
        assert_eq!(attr(req, key), Some(want), "{key}");
    }
    assert!(attr(req, "tierwise.category").is_some());
    assert!(attr(req, "tierwise.baseline_cost_usd").is_some());

    // One CLIENT child per upstream attempt: a 503, then a 200.
    let mut children: Vec<&Span> = spans
        .iter()
        .filter(|s| s.parent_span_id == req.span_id)
        .collect();
    children.sort_by_key(|s| s.start_time_unix_nano);
    assert_eq!(children.len(), 2);
    for (child, n) in children.iter().zip(1..) {
        assert_eq!(child.name, "chat flaky-gpt-5.4-nano");
        assert_eq!(child.kind, SpanKind::Client as i32);
        assert_eq!(child.trace_id, req.trace_id);
        assert_eq!(attr(child, "tierwise.attempt"), Some(json!(n)));
        assert_eq!(
            attr(child, "gen_ai.request.model"),
            Some(json!("flaky-gpt-5.4-nano"))
        );
        assert_eq!(attr(child, "server.address"), Some(json!("127.0.0.1")));
        assert_eq!(attr(child, "server.port"), Some(json!(h.mock.addr.port())));
        assert!(child.start_time_unix_nano >= req.start_time_unix_nano);
        assert!(child.end_time_unix_nano <= req.end_time_unix_nano);
    }
    assert_eq!(attr(children[0], "error.type"), Some(json!("503")));
    assert_eq!(
        children[0].status.as_ref().map(|s| s.code),
        Some(StatusCode::Error as i32)
    );
    assert_eq!(
        attr(children[1], "http.response.status_code"),
        Some(json!(200))
    );

    // The streamed Responses call: a root span (no traceparent) with its usage and one attempt.
    let responses = spans
        .iter()
        .find(|s| s.name == "POST /v1/responses")
        .expect("the Responses span");
    assert!(responses.parent_span_id.is_empty());
    assert_eq!(attr(responses, "tierwise.streamed"), Some(json!(true)));
    assert_eq!(
        attr(responses, "gen_ai.response.model"),
        Some(json!("gpt-5.4"))
    );
    assert!(attr(responses, "gen_ai.response.id").is_some());
    assert!(attr(responses, "gen_ai.usage.output_tokens").is_some_and(|v| v.as_i64() > Some(0)));
    assert_eq!(
        spans
            .iter()
            .filter(|s| s.parent_span_id == responses.span_id)
            .count(),
        1
    );

    // The refused request: its status, the error, no attempt.
    let refused = spans
        .iter()
        .find(|s| attr(s, "http.response.status_code") == Some(json!(400)))
        .expect("the refused request's span");
    assert_eq!(attr(refused, "error.type"), Some(json!("400")));
    assert!(!spans.iter().any(|s| s.parent_span_id == refused.span_id));
    assert_eq!(spans.len(), 1 + 2 + 1 + 1 + 1);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
