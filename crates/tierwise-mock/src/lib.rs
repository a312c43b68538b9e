//! A mock OpenAI upstream (axum), for tierwise's tests and benchmarks.
//!
//! It speaks chat completions (JSON and SSE, with the `stream_options.include_usage` usage
//! chunk), Responses (JSON and SSE events), Files and Batches, answers deterministically from
//! the prompt (usage included: cached and reasoning tokens, see [`answer`]), and misbehaves on
//! request: errors, flakiness, delays, held streams — chosen by the model name (see
//! [`behavior`]). It counts calls per model so a test can assert which tiers were tried.
//!
//! # Layout
//! - [`Mock`]: shared state (counters, recorded requests, files, batches, the stream gate) and
//!   its [`Mock::router`].
//! - [`serve`] / [`MockServer`]: run it on a listener (tests bind `127.0.0.1:0`).
//! - [`behavior`]: model name → behaviour.
//! - [`answer`]: the deterministic answer and usage.
//! - `chat`, `responses`: the two generation endpoints (JSON and SSE).
//! - `files`: Files and Batches (a batch completes on its second retrieve).
//!
//! Stored state a test can rely on: prompt caches by `prompt_cache_key` (the first request
//! with a key writes it, see [`answer`]), and — when recording — every Responses answer by its
//! id, for `GET /v1/responses/{id}` and `previous_response_id` (an id the mock did not answer
//! is a 400 `previous_response_not_found`, as OpenAI answers).

pub mod answer;
pub mod behavior;
mod chat;
mod files;
pub mod provider_cache;
mod responses;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::behavior::Behavior;

/// One request the mock received.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub path: String,
    /// The `model` field, if any.
    pub model: Option<String>,
    /// The JSON body (Null for non-JSON bodies).
    pub body: Value,
    /// Request headers, names lowercased.
    pub headers: HashMap<String, String>,
}

#[derive(Debug)]
struct Inner {
    calls: Mutex<HashMap<String, u64>>,
    requests: Mutex<Vec<Recorded>>,
    record: bool,
    api_key: Option<String>,
    gate: watch::Sender<bool>,
    next_id: AtomicU64,
    files: Mutex<HashMap<String, files::StoredFile>>,
    batches: Mutex<HashMap<String, files::Batch>>,
    /// `prompt_cache_key`s whose cache has been written.
    prompt_caches: Mutex<HashSet<String>>,
    /// The provider-cache simulation, when on ([`Mock::with_provider_cache`]).
    provider_cache: Option<Mutex<provider_cache::ProviderCache>>,
    /// Responses answers by id (only when recording).
    responses: Mutex<HashMap<String, Value>>,
}

/// The mock's state. Clones share it.
#[derive(Debug, Clone)]
pub struct Mock {
    inner: Arc<Inner>,
}

impl Default for Mock {
    fn default() -> Self {
        Mock::new()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Mock {
    /// A mock that records every request (for tests).
    pub fn new() -> Mock {
        Mock::build(true, None)
    }

    /// A mock that only counts calls (for benchmarks: no per-request memory growth).
    pub fn counting_only() -> Mock {
        Mock::build(false, None)
    }

    /// A mock that answers 401 unless `Authorization: Bearer KEY` is sent.
    pub fn with_api_key(key: &str) -> Mock {
        Mock::build(true, Some(key.to_string()))
    }

    fn build(record: bool, api_key: Option<String>) -> Mock {
        Mock {
            inner: Arc::new(Inner {
                calls: Mutex::new(HashMap::new()),
                requests: Mutex::new(Vec::new()),
                record,
                api_key,
                gate: watch::channel(false).0,
                next_id: AtomicU64::new(1),
                files: Mutex::new(HashMap::new()),
                batches: Mutex::new(HashMap::new()),
                prompt_caches: Mutex::new(HashSet::new()),
                provider_cache: None,
                responses: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The routes: `/v1/chat/completions`, `/v1/responses`, `/v1/files…`, `/v1/batches…`,
    /// `/v1/models`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/chat/completions", post(chat::handle))
            .route("/v1/responses", post(responses::handle))
            .route("/v1/responses/{id}", get(responses::retrieve))
            .route("/v1/files", post(files::create_file))
            .route("/v1/files/{id}", get(files::get_file))
            .route("/v1/files/{id}/content", get(files::file_content))
            .route("/v1/batches", post(files::create_batch))
            .route("/v1/batches/{id}", get(files::get_batch))
            .route("/v1/batches/{id}/cancel", post(files::cancel_batch))
            .route("/v1/models", get(models))
            .fallback(|| async {
                error(
                    StatusCode::NOT_FOUND,
                    "Invalid URL",
                    "invalid_request_error",
                    None,
                )
            })
            .with_state(self.clone())
    }

    /// Calls made with this exact model name (chat, Responses and batch lines).
    pub fn calls(&self, model: &str) -> u64 {
        lock(&self.inner.calls).get(model).copied().unwrap_or(0)
    }

    /// Calls made, all models.
    pub fn total_calls(&self) -> u64 {
        lock(&self.inner.calls).values().sum()
    }

    /// Calls per model.
    pub fn all_calls(&self) -> HashMap<String, u64> {
        lock(&self.inner.calls).clone()
    }

    /// Requests received so far, in order (empty for [`Mock::counting_only`]).
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.inner.requests).clone()
    }

    /// Lets every held (`gated-…`) answer continue, now and later.
    pub fn release(&self) {
        self.inner.gate.send_replace(true);
    }

    pub(crate) async fn wait_gate(&self) {
        let mut rx = self.inner.gate.subscribe();
        // An error means the sender is gone, which cannot happen while `self` lives.
        let _ = rx.wait_for(|open| *open).await;
    }

    /// A recording mock whose prompt cache is the [`provider_cache`] simulation (routing,
    /// overflow, 128-token steps, TTL) instead of the simple warm cache.
    pub fn with_provider_cache(sim: provider_cache::ProviderCache) -> Mock {
        let mut mock = Mock::build(true, None);
        if let Some(inner) = Arc::get_mut(&mut mock.inner) {
            inner.provider_cache = Some(Mutex::new(sim));
        }
        mock
    }

    /// Applies the prompt cache to `usage`. With [`Mock::with_provider_cache`], the simulation
    /// decides. Otherwise: the first request with a `prompt_cache_key` writes what the warm
    /// cache holds (`cached` becomes `cache_write`); later ones read it; without a key,
    /// `usage` is left as it is (a warm cache).
    pub fn prompt_cache(&self, body: &Value, usage: &mut answer::MockUsage) {
        if let Some(sim) = &self.inner.provider_cache {
            lock(sim).apply(body, usage);
            return;
        }
        let Some(key) = body.get("prompt_cache_key").and_then(Value::as_str) else {
            return;
        };
        if lock(&self.inner.prompt_caches).insert(key.to_string()) {
            usage.cache_write = usage.cached;
            usage.cached = 0;
        }
    }

    /// Keeps a Responses answer for `GET /v1/responses/{id}` and `previous_response_id`
    /// (only when recording).
    pub(crate) fn store_response(&self, response: &Value) {
        if !self.inner.record {
            return;
        }
        if let Some(id) = response.get("id").and_then(Value::as_str) {
            lock(&self.inner.responses).insert(id.to_string(), response.clone());
        }
    }

    /// A Responses answer the mock gave (when recording).
    pub fn stored_response(&self, id: &str) -> Option<Value> {
        lock(&self.inner.responses).get(id).cloned()
    }

    /// Whether `previous_response_id` may be used: always when not recording (nothing is
    /// stored), else only for an id the mock answered.
    pub(crate) fn knows_response(&self, id: &str) -> bool {
        !self.inner.record || lock(&self.inner.responses).contains_key(id)
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Counts a call for `model` and returns how many calls it has had, this one included.
    pub(crate) fn count(&self, model: &str) -> u64 {
        let mut calls = lock(&self.inner.calls);
        let n = calls.entry(model.to_string()).or_insert(0);
        *n += 1;
        *n
    }

    fn record(&self, path: &str, body: &Value, headers: &HeaderMap) {
        if !self.inner.record {
            return;
        }
        let headers = headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        lock(&self.inner.requests).push(Recorded {
            path: path.to_string(),
            model: body
                .get("model")
                .and_then(Value::as_str)
                .map(str::to_string),
            body: body.clone(),
            headers,
        });
    }

    /// The 401 to answer when a key is required and not sent.
    fn key_rejection(&self, headers: &HeaderMap) -> Option<Response> {
        let key = self.inner.api_key.as_ref()?;
        let sent = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if sent == Some(key.as_str()) {
            None
        } else {
            Some(error(
                StatusCode::UNAUTHORIZED,
                "Incorrect API key provided.",
                "invalid_request_error",
                Some("invalid_api_key"),
            ))
        }
    }

    /// The common front of the generation endpoints: key check, JSON parse, recording,
    /// counting, and the model-name behaviours that replace the answer. `Ok` carries the body,
    /// the model and the behaviour for the answer path.
    pub(crate) async fn admit(
        &self,
        path: &str,
        headers: &HeaderMap,
        bytes: &[u8],
    ) -> Result<(Value, String, Behavior), Response> {
        if let Some(rejection) = self.key_rejection(headers) {
            return Err(rejection);
        }
        let body: Value = serde_json::from_slice(bytes).map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                &format!("We could not parse the JSON body of your request: {e}"),
                "invalid_request_error",
                None,
            )
        })?;
        self.record(path, &body, headers);
        let model = body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let n = self.count(&model);
        let b = Behavior::parse(&model);
        if let Some(d) = b.slow {
            tokio::time::sleep(d).await;
        }
        if let Some(status) = b.error {
            return Err(status_error(status));
        }
        if b.quota {
            return Err(error(
                StatusCode::TOO_MANY_REQUESTS,
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                Some("insufficient_quota"),
            ));
        }
        if let Some(fails) = b.flaky
            && n <= fails
        {
            return Err(status_error(503));
        }
        if b.garbage {
            return Err((StatusCode::OK, "<html>not json</html>").into_response());
        }
        Ok((body, model, b))
    }
}

/// An OpenAI-shaped error response.
pub(crate) fn error(status: StatusCode, message: &str, kind: &str, code: Option<&str>) -> Response {
    (
        status,
        axum::Json(
            json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
        ),
    )
        .into_response()
}

/// The error the mock sends for `error-NNN`.
fn status_error(status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = match status {
        429 => error(
            code,
            "Rate limit reached for requests (mock).",
            "requests",
            Some("rate_limit_exceeded"),
        ),
        400..=499 => error(
            code,
            &format!("Mock client error {status}."),
            "invalid_request_error",
            None,
        ),
        _ => error(
            code,
            "The server had an error while processing your request (mock).",
            "server_error",
            None,
        ),
    };
    if status == 429 {
        resp.headers_mut()
            .insert("retry-after-ms", axum::http::HeaderValue::from_static("5"));
    }
    resp
}

async fn models() -> Response {
    let data: Vec<Value> = ["gpt-5.4-nano", "gpt-5.4-mini", "gpt-5.4", "gpt-5.5"]
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "mock"}))
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

/// Serves `mock` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    mock: Mock,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, mock.router())
        .with_graceful_shutdown(shutdown)
        .await
}

/// A mock running in the background on `127.0.0.1:0`; stops when dropped.
#[derive(Debug)]
pub struct MockServer {
    pub addr: SocketAddr,
    pub mock: Mock,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl MockServer {
    /// Starts `mock` on an ephemeral port of 127.0.0.1 (in the current tokio runtime).
    pub async fn start(mock: Mock) -> std::io::Result<MockServer> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server_mock = mock.clone();
        // The mock is test infrastructure: nothing it does must outlive the test.
        tokio::spawn(async move {
            let _ = serve(listener, server_mock, async {
                let _ = stopped.await;
            })
            .await;
        });
        Ok(MockServer {
            addr,
            mock,
            stop: Some(stop),
        })
    }

    /// `http://127.0.0.1:PORT/v1`, the base URL an OpenAI client uses.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
