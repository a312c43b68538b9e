//! Streaming: the upstream's SSE relayed to the client chunk by chunk.
//!
//! [`SseRelay`] forwards each upstream chunk as it arrives (no buffering of the answer) while a
//! [`Scanner`] reads the events on the side for the usage (the chat usage chunk, or the
//! Responses `response.completed` event), the billed service tier and the answer text (for an
//! estimate when no usage comes). When the gateway added `stream_options.include_usage` for
//! its own accounting, the scanner also cuts the usage-only chunk out of the client's stream:
//! then complete events are forwarded as soon as they are complete.
//!
//! The request is accounted when the stream ends, breaks, or the client goes away (`Drop`).
//! A stream that ends normally gets one more event after the upstream's last: SSE comment lines
//! with what the call cost (`: x-tierwise-cost-usd: …`, see [`cost_comment`]), the streamed
//! counterpart of the non-streaming response's cost headers, which a stream cannot have because
//! its headers leave before the usage arrives. SSE clients skip comment lines.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use futures::Stream;
use serde_json::Value;
use tierwise_core::cost::{ServiceTier, Usage};
use tierwise_core::request::Api;

use crate::account::{self, Outcome, Priced, usage_or_estimate};
use crate::app::AppState;
use crate::ctx::RequestCtx;
use crate::dispatch::{Candidate, Dispatched};
use crate::shadow::ShadowRunner;
use crate::upstream::{UpstreamError, passback_headers};
use tierwise_quality::check::Answer;

/// Most answer text kept for estimates and stored bodies.
const MAX_TEXT: usize = 1 << 20;

/// Reads SSE events as they pass.
#[derive(Debug)]
pub struct Scanner {
    api: Api,
    /// Cut usage-only chat chunks out of the forwarded stream.
    strip_usage: bool,
    /// Bytes of an event not yet complete.
    buf: Vec<u8>,
    pub usage: Option<Usage>,
    pub service_tier: Option<String>,
    /// Responses: the answer's `id` (from `response.created` / `response.completed`).
    pub response_id: Option<String>,
    /// The answer text seen so far (capped at 1 MiB).
    pub text: String,
}

/// End of the first complete event in `buf`: index just past its blank line.
fn event_end(buf: &[u8]) -> Option<usize> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Scanner {
    pub fn new(api: Api, strip_usage: bool) -> Scanner {
        Scanner {
            api,
            strip_usage,
            buf: Vec::new(),
            usage: None,
            service_tier: None,
            response_id: None,
            text: String::new(),
        }
    }

    /// Reads `chunk`. `None`: forward the chunk as it is. `Some(bytes)`: forward these
    /// instead (complete events minus the usage chunk; possibly empty).
    pub fn feed(&mut self, chunk: &[u8]) -> Option<Bytes> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(len) = event_end(&self.buf[start..]) {
            let end = start + len;
            let usage_only = self.inspect(start, end);
            if self.strip_usage && !usage_only {
                out.extend_from_slice(&self.buf[start..end]);
            }
            start = end;
        }
        self.buf.drain(..start);
        self.strip_usage.then(|| Bytes::from(out))
    }

    /// Whether the stream so far ends inside an event (no blank line after its last bytes).
    pub fn mid_event(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Bytes of an unfinished last event (forwarded as they are at the end of the stream).
    pub fn take_rest(&mut self) -> Bytes {
        if self.strip_usage {
            Bytes::from(std::mem::take(&mut self.buf))
        } else {
            Bytes::new()
        }
    }

    fn push_text(&mut self, s: &str) {
        if self.text.len() + s.len() <= MAX_TEXT {
            self.text.push_str(s);
        }
    }

    /// Reads one event in `buf[start..end]`; true when it is a usage-only chat chunk.
    fn inspect(&mut self, start: usize, end: usize) -> bool {
        let mut data = Vec::new();
        for line in self.buf[start..end].split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(d) = line.strip_prefix(b"data:") {
                if !data.is_empty() {
                    data.push(b'\n');
                }
                data.extend_from_slice(d.strip_prefix(b" ").unwrap_or(d));
            }
        }
        if data.is_empty() || data == b"[DONE]" {
            return false;
        }
        let Ok(v) = serde_json::from_slice::<Value>(&data) else {
            return false;
        };
        match self.api {
            Api::ChatCompletions => self.chat_event(&v),
            Api::Responses => {
                self.responses_event(&v);
                false
            }
        }
    }

    fn chat_event(&mut self, v: &Value) -> bool {
        if let Some(t) = v.get("service_tier").and_then(Value::as_str) {
            self.service_tier = Some(t.to_string());
        }
        let mut usage_only = false;
        if let Some(u) = v
            .get("usage")
            .filter(|u| u.is_object())
            .and_then(Usage::from_openai)
        {
            self.usage = Some(u);
            usage_only = v
                .get("choices")
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty);
        }
        for c in v
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(s) = c.pointer("/delta/content").and_then(Value::as_str) {
                self.push_text(s);
            }
            for call in c
                .pointer("/delta/tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                for key in ["/function/name", "/function/arguments"] {
                    if let Some(s) = call.pointer(key).and_then(Value::as_str) {
                        self.push_text(s);
                    }
                }
            }
        }
        usage_only
    }

    fn responses_event(&mut self, v: &Value) {
        match v.get("type").and_then(Value::as_str) {
            Some("response.output_text.delta" | "response.function_call_arguments.delta") => {
                if let Some(s) = v.get("delta").and_then(Value::as_str) {
                    self.push_text(s);
                }
            }
            Some("response.created") => {
                if let Some(id) = v.pointer("/response/id").and_then(Value::as_str) {
                    self.response_id = Some(id.to_string());
                }
            }
            Some("response.completed" | "response.incomplete" | "response.failed") => {
                if let Some(r) = v.get("response") {
                    if let Some(id) = r.get("id").and_then(Value::as_str) {
                        self.response_id = Some(id.to_string());
                    }
                    if let Some(u) = r.get("usage").and_then(Usage::from_openai) {
                        self.usage = Some(u);
                    }
                    if let Some(t) = r.get("service_tier").and_then(Value::as_str) {
                        self.service_tier = Some(t.to_string());
                    }
                }
            }
            _ => {}
        }
    }
}

/// What accounting needs once the stream is over.
#[derive(Debug)]
struct Finisher {
    state: Arc<AppState>,
    ctx: RequestCtx,
    candidate: Candidate,
}

/// The client's response body: upstream chunks, relayed.
pub struct SseRelay {
    upstream: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    scan: Scanner,
    finisher: Option<Finisher>,
    done: bool,
}

/// The event a normally ended stream closes with: SSE comment lines named like the
/// non-streaming cost headers (a price the catalog does not have is left out, never shown as
/// zero) and whether the usage was estimated (the upstream sent none).
pub fn cost_comment(priced: &Priced, usage_estimated: bool) -> String {
    let mut out = String::new();
    for (name, value) in priced.named() {
        if let Some(v) = value {
            out.push_str(&format!(": {name}: {v}\n"));
        }
    }
    out.push_str(&format!(
        ": x-tierwise-usage-estimated: {usage_estimated}\n\n"
    ));
    out
}

impl SseRelay {
    /// Accounts the call once; returns its price and whether the usage was estimated.
    fn finish(&mut self, status: u16, error: Option<String>) -> Option<(Priced, bool)> {
        let mut f = self.finisher.take()?;
        let (usage, estimated) = usage_or_estimate(self.scan.usage, &f.ctx, &self.scan.text);
        let service_tier = ServiceTier::from_response(self.scan.service_tier.as_deref());
        let priced = account::price(&f.state, &f.candidate.model, &usage, service_tier);
        let store = f.state.config.log.store_bodies;
        account::finish(
            &f.state,
            &f.ctx,
            Outcome {
                status,
                usage,
                usage_estimated: estimated,
                service_tier,
                priced,
                error,
                response_body: store.then(|| self.scan.text.clone()),
                response_id: self.scan.response_id.take(),
            },
        );
        if let Some(sampled) = f.ctx.shadow.take()
            && status == 200
        {
            ShadowRunner::launch(
                &f.state,
                &f.ctx,
                sampled,
                Answer::text(self.scan.text.clone()),
            );
        }
        Some((priced, estimated))
    }
}

impl Stream for SseRelay {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match this.upstream.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => match this.scan.feed(&chunk) {
                    None => return Poll::Ready(Some(Ok(chunk))),
                    Some(out) if out.is_empty() => continue,
                    Some(out) => return Poll::Ready(Some(Ok(out))),
                },
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    let err = UpstreamError::from_reqwest(&e);
                    if let Some(f) = &this.finisher {
                        f.state
                            .metrics
                            .upstream_error(&f.candidate.tier_name, "stream", true);
                    }
                    tracing::warn!(error = %err, "upstream stream broke");
                    this.finish(502, Some(format!("stream broken: {err}")));
                    return Poll::Ready(Some(Err(std::io::Error::other(err.to_string()))));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    let mid_event = this.scan.mid_event();
                    let mut tail = this.scan.take_rest().to_vec();
                    if let Some((priced, estimated)) = this.finish(200, None) {
                        if mid_event {
                            // close the upstream's unfinished event before ours
                            tail.extend_from_slice(b"\n\n");
                        }
                        tail.extend_from_slice(cost_comment(&priced, estimated).as_bytes());
                    }
                    if !tail.is_empty() {
                        return Poll::Ready(Some(Ok(Bytes::from(tail))));
                    }
                    return Poll::Ready(None);
                }
            }
        }
    }
}

impl Drop for SseRelay {
    fn drop(&mut self) {
        // Still unaccounted: the client went away before the end.
        self.finish(
            499,
            Some("client disconnected before the end of the stream".into()),
        );
    }
}

/// The streaming response: headers now, body relayed.
pub fn respond(
    state: Arc<AppState>,
    ctx: RequestCtx,
    d: Dispatched,
    strip_usage: bool,
) -> Response {
    let passback = passback_headers(d.response.headers());
    let relay = SseRelay {
        upstream: Box::pin(d.response.bytes_stream()),
        scan: Scanner::new(ctx.api, strip_usage),
        finisher: Some(Finisher {
            state,
            ctx,
            candidate: d.candidate,
        }),
        done: false,
    };
    let mut resp = Response::new(Body::from_stream(relay));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Ask reverse proxies (nginx) not to buffer the stream.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    for (k, v) in passback {
        h.insert(k, v);
    }
    resp
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;

    const USAGE: &str = r#"data: {"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":2}}}"#;

    fn chat_stream() -> String {
        format!(
            "data: {{\"choices\":[{{\"delta\":{{\"content\":\"Hel\"}}}}],\"usage\":null,\"service_tier\":\"flex\"}}\n\n\
             data: {{\"choices\":[{{\"delta\":{{\"content\":\"lo\"}}}}],\"usage\":null}}\n\n\
             {USAGE}\n\n\
             data: [DONE]\n\n"
        )
    }

    #[test]
    fn cost_comment_names_the_headers_and_leaves_out_unknown_prices() {
        let priced = Priced {
            cost: Some(rust_decimal::Decimal::new(12, 4)),
            baseline: None,
        };
        assert_eq!(
            cost_comment(&priced, false),
            ": x-tierwise-cost-usd: 0.0012\n: x-tierwise-usage-estimated: false\n\n"
        );
        let mut s = Scanner::new(Api::ChatCompletions, false);
        assert_eq!(s.feed(b"data: {}\n\ndata: [DO"), None);
        assert!(s.mid_event());
        s.feed(b"NE]\n\n");
        assert!(!s.mid_event());
    }

    #[test]
    fn strips_usage_chunk_across_arbitrary_splits() {
        let s = chat_stream();
        for split in 1..s.len() {
            let mut scan = Scanner::new(Api::ChatCompletions, true);
            let mut out = Vec::new();
            for part in [&s.as_bytes()[..split], &s.as_bytes()[split..]] {
                out.extend_from_slice(&scan.feed(part).unwrap());
            }
            out.extend_from_slice(&scan.take_rest());
            let out = String::from_utf8(out).unwrap();
            assert_eq!(out, s.replace(&format!("{USAGE}\n\n"), ""), "split {split}");
            assert_eq!(scan.usage.unwrap().input_tokens, 9);
            assert_eq!(scan.usage.unwrap().reasoning_tokens, 2);
            assert_eq!(scan.text, "Hello");
            assert_eq!(scan.service_tier.as_deref(), Some("flex"));
        }
    }

    #[test]
    fn passthrough_forwards_chunks_unchanged_and_still_reads_usage() {
        let s = chat_stream();
        let mut scan = Scanner::new(Api::ChatCompletions, false);
        for b in s.as_bytes().chunks(7) {
            assert!(scan.feed(b).is_none());
        }
        assert_eq!(scan.usage.unwrap().output_tokens, 5);
    }

    #[test]
    fn crlf_events_and_responses_usage() {
        let s = "event: response.output_text.delta\r\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\r\n\r\n\
                 event: response.completed\r\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\r\n\r\n";
        let mut scan = Scanner::new(Api::Responses, false);
        assert!(scan.feed(s.as_bytes()).is_none());
        assert_eq!(scan.text, "Hi");
        assert_eq!(scan.usage.unwrap().input_tokens, 3);
    }
}
