//! The one place that talks to the provider: a pooled `reqwest` client, and upstream errors that
//! say where they came from and whether a retry may help (pingora's `ErrorSource` / `RetryType`).
//! Fallback and retry logic branch on those fields, never on message text.

use std::fmt;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use bytes::Bytes;
use serde_json::Value;
use tierwise_core::config::Upstream;

/// Who caused an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorSource {
    /// The provider (5xx, rate limits, unreachable, timeouts, broken answers).
    Upstream,
    /// The request itself (the provider answered 4xx other than rate limits).
    Client,
    /// tierwise (could not build the request).
    Internal,
}

/// Whether trying again (same tier after a pause, or the next tier up) may succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    Yes,
    No,
}

/// What went wrong.
#[derive(Debug, Clone)]
pub enum UpstreamErrorKind {
    /// The provider answered with a non-2xx status; the body is passed back to the client.
    Status {
        status: StatusCode,
        body: Bytes,
        content_type: Option<HeaderValue>,
    },
    /// No connection could be made.
    Connect(String),
    /// The provider did not answer in time.
    Timeout(String),
    /// The provider answered 2xx with something that is not an answer (not JSON, cut short).
    InvalidResponse(String),
    /// The request could not be sent for another reason.
    Request(String),
}

#[derive(Debug, Clone)]
pub struct UpstreamError {
    pub source: ErrorSource,
    pub retry: Retry,
    pub kind: UpstreamErrorKind,
    /// How long the provider asked us to wait (`retry-after-ms` / `retry-after`).
    pub retry_after: Option<Duration>,
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            UpstreamErrorKind::Status { status, body, .. } => {
                let msg = serde_json::from_slice::<Value>(body)
                    .ok()
                    .and_then(|v| {
                        v.pointer("/error/message")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                    .unwrap_or_default();
                write!(f, "upstream returned {}", status.as_u16())?;
                if !msg.is_empty() {
                    write!(f, ": {msg}")?;
                }
                Ok(())
            }
            UpstreamErrorKind::Connect(m) => write!(f, "upstream unreachable: {m}"),
            UpstreamErrorKind::Timeout(m) => write!(f, "upstream timed out: {m}"),
            UpstreamErrorKind::InvalidResponse(m) => write!(f, "upstream answered badly: {m}"),
            UpstreamErrorKind::Request(m) => write!(f, "upstream request failed: {m}"),
        }
    }
}

impl std::error::Error for UpstreamError {}

impl UpstreamError {
    /// A short label for metrics: the status code, or the kind of transport failure.
    pub fn label(&self) -> String {
        match &self.kind {
            UpstreamErrorKind::Status { status, .. } => status.as_u16().to_string(),
            UpstreamErrorKind::Connect(_) => "connect".into(),
            UpstreamErrorKind::Timeout(_) => "timeout".into(),
            UpstreamErrorKind::InvalidResponse(_) => "invalid_response".into(),
            UpstreamErrorKind::Request(_) => "request".into(),
        }
    }

    pub fn invalid_response(message: impl Into<String>) -> UpstreamError {
        UpstreamError {
            source: ErrorSource::Upstream,
            retry: Retry::No,
            kind: UpstreamErrorKind::InvalidResponse(message.into()),
            retry_after: None,
        }
    }

    /// From a transport error of reqwest. Its text names the URL, never headers (so never the key).
    pub fn from_reqwest(e: &reqwest::Error) -> UpstreamError {
        let text = e.to_string();
        let (source, retry, kind) = if e.is_timeout() {
            (
                ErrorSource::Upstream,
                Retry::Yes,
                UpstreamErrorKind::Timeout(text),
            )
        } else if e.is_connect() {
            (
                ErrorSource::Upstream,
                Retry::Yes,
                UpstreamErrorKind::Connect(text),
            )
        } else if e.is_builder() {
            (
                ErrorSource::Internal,
                Retry::No,
                UpstreamErrorKind::Request(text),
            )
        } else {
            // Connection reset, closed mid-answer, protocol errors: transient.
            (
                ErrorSource::Upstream,
                Retry::Yes,
                UpstreamErrorKind::Request(text),
            )
        };
        UpstreamError {
            source,
            retry,
            kind,
            retry_after: None,
        }
    }

    /// Classifies a non-2xx answer the way OpenAI's SDKs do: 408, 409, 429 and 5xx are worth
    /// retrying, other 4xx are the request's fault. `x-should-retry` overrides; a 429 for an
    /// exhausted quota (`insufficient_quota`) is not retried.
    pub fn from_status(status: StatusCode, headers: &HeaderMap, body: Bytes) -> UpstreamError {
        let mut retry = match status.as_u16() {
            408 | 409 | 429 | 500..=599 => Retry::Yes,
            _ => Retry::No,
        };
        if status == StatusCode::TOO_MANY_REQUESTS {
            let code = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
                v.pointer("/error/code")
                    .or_else(|| v.pointer("/error/type"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            });
            if code.as_deref() == Some("insufficient_quota") {
                retry = Retry::No;
            }
        }
        match headers.get("x-should-retry").and_then(|v| v.to_str().ok()) {
            Some("true") => retry = Retry::Yes,
            Some("false") => retry = Retry::No,
            _ => {}
        }
        let source = if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            ErrorSource::Upstream
        } else {
            ErrorSource::Client
        };
        UpstreamError {
            source,
            retry,
            kind: UpstreamErrorKind::Status {
                status,
                body,
                content_type: headers.get(header::CONTENT_TYPE).cloned(),
            },
            retry_after: retry_after(headers),
        }
    }
}

/// `retry-after-ms` (OpenAI), else `retry-after` in seconds.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|x| x.is_finite() && *x >= 0.0)
    };
    if let Some(ms) = get("retry-after-ms") {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    get("retry-after").map(Duration::from_secs_f64)
}

/// Client headers forwarded upstream (besides `Authorization` when no key is configured).
const FORWARDED: &[&str] = &["openai-organization", "openai-project", "openai-beta"];

/// Upstream response headers worth passing back to the client.
pub fn passes_back(name: &str) -> bool {
    name == "x-request-id"
        || name.starts_with("openai-")
        || name.starts_with("x-ratelimit-")
        || name == "retry-after"
        || name == "retry-after-ms"
}

/// The upstream response headers that go back to the client ([`passes_back`]).
pub fn passback_headers(headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    headers
        .iter()
        .filter(|(k, _)| passes_back(k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The pooled client.
#[derive(Debug, Clone)]
pub struct UpstreamClient {
    http: reqwest::Client,
    base_url: String,
    /// `Bearer KEY`, marked sensitive so it never shows in debug output.
    auth: Option<HeaderValue>,
    timeout: Duration,
}

impl UpstreamClient {
    pub fn new(cfg: &Upstream) -> Result<UpstreamClient, reqwest::Error> {
        let timeout = Duration::from_secs(cfg.timeout_secs);
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(cfg.pool_max_idle_per_host)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(cfg.connect_timeout_secs))
            // Streams may run long: bound the silence between bytes, not the whole answer.
            .read_timeout(timeout)
            .build()?;
        let auth = cfg.api_key.as_ref().and_then(|k| {
            let mut v = HeaderValue::from_str(&format!("Bearer {}", k.expose())).ok()?;
            v.set_sensitive(true);
            Some(v)
        });
        Ok(UpstreamClient {
            http,
            base_url: cfg.base_url.clone(),
            auth,
            timeout,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// POSTs `body` to `{base_url}{path}`. `Ok` only for a 2xx answer (body not yet read);
    /// anything else is an [`UpstreamError`]. Without a configured key, the client's own
    /// `Authorization` is forwarded.
    pub async fn post(
        &self,
        path: &str,
        body: Bytes,
        client_headers: &HeaderMap,
        stream: bool,
    ) -> Result<reqwest::Response, UpstreamError> {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base_url))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body);
        if !stream {
            req = req.timeout(self.timeout);
        } else {
            req = req.header(header::ACCEPT, "text/event-stream");
        }
        req = self.authorize(req, client_headers);
        let resp = req
            .send()
            .await
            .map_err(|e| UpstreamError::from_reqwest(&e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let headers = resp.headers().clone();
        let body = resp.bytes().await.unwrap_or_default();
        Err(UpstreamError::from_status(status, &headers, body))
    }

    /// The `model` that answered Responses call `id` (`GET {base_url}/responses/{id}`), for a
    /// conversation that continues it. `Ok(None)` when the provider does not know the id (or
    /// answers without a model) and for an id that is not a plain token (letters, digits, `_`,
    /// `-`: a client's id never becomes another path).
    pub async fn retrieve_response_model(
        &self,
        id: &str,
        client_headers: &HeaderMap,
        timeout: Duration,
    ) -> Result<Option<String>, UpstreamError> {
        let plain = !id.is_empty()
            && id.len() <= 256
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !plain {
            return Ok(None);
        }
        let req = self
            .http
            .get(format!("{}/responses/{id}", self.base_url))
            .timeout(timeout);
        let resp = self
            .authorize(req, client_headers)
            .send()
            .await
            .map_err(|e| UpstreamError::from_reqwest(&e))?;
        if !resp.status().is_success() {
            return Ok(None);
        }
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| UpstreamError::from_reqwest(&e))?;
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|_| UpstreamError::invalid_response("the response lookup is not JSON"))?;
        Ok(v.get("model")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string))
    }

    /// Sends any other request (`Files`, `Batches`, `Embeddings`, …) to `{base_url}{path_query}`
    /// unchanged: method, body (streamed, never buffered) and the headers that describe it.
    /// Any status the provider answers is returned as-is — a pass-through never retries or
    /// reinterprets; only a failure to reach the provider is an [`UpstreamError`].
    pub async fn forward(
        &self,
        method: Method,
        path_query: &str,
        client_headers: &HeaderMap,
        body: reqwest::Body,
    ) -> Result<reqwest::Response, UpstreamError> {
        let mut req = self
            .http
            .request(method, format!("{}{path_query}", self.base_url))
            .body(body);
        for name in [header::CONTENT_TYPE, header::CONTENT_LENGTH, header::ACCEPT] {
            if let Some(v) = client_headers.get(&name) {
                req = req.header(name, v.clone());
            }
        }
        if let Some(v) = client_headers.get("idempotency-key") {
            req = req.header("idempotency-key", v.clone());
        }
        req = self.authorize(req, client_headers);
        req.send()
            .await
            .map_err(|e| UpstreamError::from_reqwest(&e))
    }

    /// The configured key, else the client's own `Authorization`; plus the OpenAI
    /// organization/project/beta headers the client sent.
    fn authorize(
        &self,
        mut req: reqwest::RequestBuilder,
        client_headers: &HeaderMap,
    ) -> reqwest::RequestBuilder {
        match (&self.auth, client_headers.get(header::AUTHORIZATION)) {
            (Some(auth), _) => req = req.header(header::AUTHORIZATION, auth.clone()),
            (None, Some(client)) => {
                let mut v = client.clone();
                v.set_sensitive(true);
                req = req.header(header::AUTHORIZATION, v);
            }
            (None, None) => {}
        }
        for name in FORWARDED {
            if let Some(v) = client_headers.get(*name) {
                req = req.header(*name, v.clone());
            }
        }
        req
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;

    fn status_err(
        status: u16,
        body: &str,
        headers: &[(&'static str, &'static str)],
    ) -> UpstreamError {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, HeaderValue::from_static(v));
        }
        UpstreamError::from_status(
            StatusCode::from_u16(status).unwrap(),
            &h,
            Bytes::from(body.to_string()),
        )
    }

    #[test]
    fn classification_follows_openai_sdks() {
        assert_eq!(status_err(429, "{}", &[]).retry, Retry::Yes);
        assert_eq!(status_err(503, "{}", &[]).retry, Retry::Yes);
        assert_eq!(status_err(400, "{}", &[]).retry, Retry::No);
        assert_eq!(status_err(400, "{}", &[]).source, ErrorSource::Client);
        assert_eq!(status_err(500, "{}", &[]).source, ErrorSource::Upstream);
        let quota = r#"{"error": {"code": "insufficient_quota", "type": "insufficient_quota"}}"#;
        assert_eq!(status_err(429, quota, &[]).retry, Retry::No);
        assert_eq!(
            status_err(500, "{}", &[("x-should-retry", "false")]).retry,
            Retry::No
        );
        assert_eq!(
            status_err(429, "{}", &[("retry-after-ms", "1500")]).retry_after,
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            status_err(429, "{}", &[("retry-after", "2")]).retry_after,
            Some(Duration::from_secs(2))
        );
        let e = status_err(404, r#"{"error": {"message": "no such model"}}"#, &[]);
        assert_eq!(e.to_string(), "upstream returned 404: no such model");
    }
}
