//! Where the gateway is assembled: shared state, the route table, and `serve`.
//!
//! # Request lifecycle (read top to bottom)
//!
//! ```text
//! TCP accept (TCP_NODELAY) ─ hyper HTTP/1.1 ─ axum Router
//!   layer  input_limits::headers                     headers over server.max_header_bytes → 400
//!   layer  DefaultBodyLimit(server.max_body_bytes)   caps what the body extractor may read
//!   route  POST /v1/chat/completions | /v1/responses → proxy::handle
//!          GET  /v1/models, /healthz, /metrics      → small handlers below
//!          /admin/keys[/{id}], /admin/teams[/{name}] → admin.rs (admin key only)
//!          any other /v1/* (files, batches, embeddings …) → passthrough::handle, relayed as is
//!          anything else (outside /v1) → 404 / 405, OpenAI-shaped
//!
//! proxy::handle — one RequestCtx (ctx.rs) per request. Each stage writes the fields after ⇒;
//! later stages read them. Nothing one stage hands another rides in the JSON body.
//!   1 receive   RequestCtx::new                        ⇒ id (UUID v7), received, started, api;
//!               trace_parent (client's traceparent, telemetry on only)
//!   1b auth     keys mode: Bearer tw-… → key cache / store (401 unknown, revoked, expired);
//!               the client's Authorization is then removed ⇒ caller
//!   2 read      body bytes; over the limit → 413       ⇒ request_body (if log.store_bodies)
//!   3 parse     nesting ≤ server.max_json_depth (byte scan) → JSON → messages/input ≤
//!               server.max_messages, tools ≤ server.max_tools → RequestView::chat | responses
//!                                                      ⇒ requested_model, stream
//!   4 hints     metadata hints, overlaid by x-tierwise-* headers  ⇒ hints
//!   5 signals   tierwise_core::Signals (o200k tokens …) ⇒ prompt_estimate
//!               (on a blocking thread for bodies > 64 KiB)
//!   6 decide    tierwise_router::decide (pure)         ⇒ decision
//!               Responses `previous_response_id` (auto-routed): pinned to the model that
//!               answered it (conversation.rs; remembered, else asked of the provider)
//!   6b admit    keyed calls: the key's tiers cap the decision; rpm/tpm counted (429
//!               rate_limit_exceeded); the budget estimate reserved on the key's and team's
//!               windows (429 insufficient_quota; store down → 503 unless store.fail_open)
//!                                                      ⇒ rate, reservation, budget_remaining
//!   7 shape     strip hint metadata; ToolShaper (tool pruning); stream usage; flex
//!                                                      ⇒ tools (counts); tool_search (the
//!                                                        session, if the function was added)
//!               shadow sampling ([quality.shadow])     ⇒ shadow (the shaped body, if sampled)
//!   8 dispatch  reads decision; Candidates (tier, then fallbacks) × retries
//!                                                      ⇒ trail (calls, tiers tried, last)
//!               takes tool_search: answers its rounds  ⇒ tools (the final round's counts)
//!               cascade runner: takes tool_search (withdraws the function); scores answers
//!                                                      ⇒ cascade (tiers tried, verdicts)
//!   9 respond   reads decision, trail, tools → x-tierwise-* headers; cascade → -attempts
//!               non-streaming: read, price, x-tierwise-cost-usd headers, send
//!               streaming: headers now, SSE relayed chunk by chunk (usage chunk stripped
//!               if the client did not ask for it); the relay owns the RequestCtx from here
//!  10 account   reads the RequestCtx: usage → cost + baseline cost → metrics →
//!               the reservation reconciled with the exact cost (a task; shutdown waits) →
//!               spans (telemetry.rs, only when OTEL_* turned it on) →
//!               RequestLog::record (a channel push; the writer thread does the I/O);
//!               a Responses answer's id → the model that answered (conversations). For
//!               streams this runs when the stream ends or the client goes away (Drop).
//!               Then, for a sampled call answered 2xx: ShadowRunner::launch takes shadow
//!               (a spawned test: candidate call, check or judge, row to shadow_results).
//! Errors at any stage: ApiError → status + OpenAI JSON; the request is still accounted.
//! ```
//!
//! Shutdown: the `shutdown` future resolves → axum stops accepting and waits for in-flight
//! requests (streams included) → shadow tests in flight finish (at most `shadow::DRAIN`) →
//! the request log is drained and closed → `serve` returns.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::serve::ListenerExt;
use serde_json::{Value, json};
use tierwise_core::Config;
use tierwise_core::config::AuthMode;
use tierwise_router::Policy;
use tierwise_router::cascade::Scorer;
use tierwise_store::ShadowLog;
use tierwise_store::{Location, LogStats, Store, StoreError, WriterOptions};
use tokio::net::TcpListener;

use crate::admin;
use crate::auth::KeyCache;
use crate::conversation::Conversations;
use crate::error::ApiError;
use crate::limits::Reconciler;
use crate::metrics::Metrics;
use crate::passthrough;
use crate::proxy;
use crate::shadow::ShadowRunner;
use crate::shape::ToolShaper;
use crate::telemetry::Telemetry;
use crate::tools::ToolSearchShaper;
use crate::upstream::UpstreamClient;

/// Everything a request handler reads; shared behind an `Arc`, never mutated per request.
#[derive(Debug)]
pub struct AppState {
    pub config: Config,
    pub policy: Policy,
    pub upstream: UpstreamClient,
    /// Request log, keys, teams, budget and rate windows (SQLite or PostgreSQL).
    pub store: Arc<dyn Store>,
    /// Key lookups, trusted for `auth.key_cache_ms`.
    pub keys: KeyCache,
    /// Budget reconciliations in flight (shutdown waits for them).
    pub reconciler: Arc<Reconciler>,
    pub metrics: Metrics,
    pub tools: Arc<dyn ToolShaper>,
    /// The cascade's answer scorer (`router/cascade.json` as shipped); `None` if it failed to
    /// load, and cascade decisions are then sent like sync ones.
    pub scorer: Option<Scorer>,
    /// Responses ids → the model that answered (conversations keep their tier).
    pub conversations: Conversations,
    /// OpenTelemetry traces; `None` (the default): off.
    pub telemetry: Option<Telemetry>,
    /// Shadow tests (`[quality.shadow]`).
    pub shadow: ShadowRunner,
    models: Bytes,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Log(#[from] StoreError),
    #[error("upstream client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
    #[error("request log: closing failed: {0}")]
    Close(String),
    #[error("{0}")]
    Scorer(String),
    #[error(
        "refusing to serve without keys on {0}: auth.mode = \"open\" is only allowed on a loopback \
         address (set auth.mode = \"keys\", listen on 127.0.0.1, or set \
         auth.allow_open_on_public_address = true)"
    )]
    OpenOnPublicAddress(std::net::SocketAddr),
    #[error("telemetry: {0}")]
    Telemetry(String),
}

/// What `serve` reports when it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    pub log: LogStats,
}

/// A configured gateway, ready to serve.
#[derive(Debug, Clone)]
pub struct Gateway {
    state: Arc<AppState>,
}

impl Gateway {
    /// Opens the request log (creating it on first start) and builds the upstream client.
    /// The policy is the config's rules, the tool shaper the `[tools]` section's tool search;
    /// use [`Gateway::with_parts`] for a learned router.
    pub fn new(config: Config) -> Result<Gateway, GatewayError> {
        let policy = Policy::from_config(&config);
        let tools = Arc::new(ToolSearchShaper::from_config(&config.tools));
        Gateway::with_parts(config, policy, tools)
    }

    /// A gateway with an explicit routing policy and tool shaper.
    pub fn with_parts(
        config: Config,
        policy: Policy,
        tools: Arc<dyn ToolShaper>,
    ) -> Result<Gateway, GatewayError> {
        if let Some(warning) = missing_key_warning(&config) {
            tracing::warn!("{warning}");
        }
        // the categorizer's regexes compile here, not on the first request
        if !tierwise_router::category::warm_up() {
            tracing::error!("the categorizer's patterns failed to compile: categories are `other`");
        }
        let upstream = UpstreamClient::new(&config.upstream)?;
        let scorer = crate::cascade::load_scorer(&config).map_err(GatewayError::Scorer)?;
        let location = match &config.store.url {
            Some(url) => Location::Postgres(url.expose().to_string()),
            None => Location::Sqlite(config.log.path.clone()),
        };
        let store = tierwise_store::open(&location, WriterOptions::default())?;
        // Shadow results live in the SQLite store only (so far): with a PostgreSQL store the
        // runner is off, said at start.
        let shadow_log = match &location {
            Location::Sqlite(path) if config.quality.shadow.enabled() => {
                Some(Arc::new(ShadowLog::open(path)?))
            }
            Location::Postgres(_) if config.quality.shadow.enabled() => {
                tracing::warn!(
                    "[quality.shadow]: shadow tests need the SQLite store; they are off with \
                     [store] url (PostgreSQL)"
                );
                None
            }
            _ => None,
        };
        let shadow = ShadowRunner::new(config.quality.shadow.clone(), shadow_log);
        let models = Bytes::from(models_json(&config).to_string());
        Ok(Gateway {
            state: Arc::new(AppState {
                config,
                policy,
                upstream,
                store,
                keys: KeyCache::default(),
                reconciler: Arc::new(Reconciler::default()),
                metrics: Metrics::new(),
                tools,
                scorer,
                conversations: Conversations::default(),
                telemetry: None,
                shadow,
                models,
            }),
        })
    }

    /// Exports traces through `telemetry` (see [`crate::telemetry`]). Call it on the gateway
    /// just built, before it is cloned or served.
    pub fn with_telemetry(mut self, telemetry: Telemetry) -> Result<Gateway, GatewayError> {
        let state = Arc::get_mut(&mut self.state).ok_or_else(|| {
            GatewayError::Telemetry("the gateway is already shared; set telemetry first".into())
        })?;
        state.telemetry = Some(telemetry);
        Ok(self)
    }

    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// The route table (see the module docs for the order of stages).
    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/chat/completions", post(proxy::chat))
            .route("/v1/responses", post(proxy::responses))
            .route("/v1/models", get(models))
            .route("/healthz", get(healthz))
            .route("/metrics", get(metrics))
            .route("/admin/keys", get(admin::list_keys).post(admin::create_key))
            .route(
                "/admin/keys/{id}",
                get(admin::show_key)
                    .patch(admin::update_key)
                    .delete(admin::revoke_key),
            )
            .route(
                "/admin/teams",
                get(admin::list_teams).post(admin::create_team),
            )
            .route(
                "/admin/teams/{name}",
                get(admin::show_team).patch(admin::update_team),
            )
            .route("/v1/{*rest}", any(passthrough::handle))
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(DefaultBodyLimit::max(self.state.config.max_body_bytes))
            .layer(axum::middleware::from_fn_with_state(
                Arc::clone(&self.state),
                crate::input_limits::headers,
            ))
            .with_state(Arc::clone(&self.state))
    }

    /// Serves until `shutdown` resolves, then waits for in-flight requests and drains the log.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<ShutdownReport, GatewayError> {
        check_listen(&self.state.config, listener.local_addr()?)?;
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::trace!(error = %e, "TCP_NODELAY");
            }
        });
        let router = self.router();
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await;
        let state = Arc::clone(&self.state);
        drop(self);
        state.shadow.drain(crate::shadow::DRAIN).await;
        state
            .reconciler
            .drain(std::time::Duration::from_secs(5))
            .await;
        let closed = tokio::task::spawn_blocking(move || {
            if let Some(t) = &state.telemetry
                && let Err(e) = t.shutdown()
            {
                tracing::warn!(error = %e, "telemetry: flushing spans at shutdown failed");
            }
            state.store.log().close()
        })
        .await
        .map_err(|e| GatewayError::Close(e.to_string()))?;
        served?;
        Ok(ShutdownReport { log: closed? })
    }
}

/// `serve(listener, config, shutdown)`: the gateway with the config's routing rules.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<ShutdownReport, GatewayError> {
    Gateway::new(config)?.serve(listener, shutdown).await
}

/// `GET /v1/models`: `auto`, each tier's model (with its tier), and the tier names as aliases.
fn models_json(config: &Config) -> Value {
    let mut data =
        vec![json!({"id": "auto", "object": "model", "created": 0, "owned_by": "tierwise"})];
    for t in config.catalog.tiers() {
        data.push(json!({"id": t.model, "object": "model", "created": 0, "owned_by": "openai", "tier": t.name}));
    }
    for t in config.catalog.tiers() {
        data.push(json!({"id": t.name, "object": "model", "created": 0, "owned_by": "tierwise", "tier": t.name}));
    }
    json!({"object": "list", "data": data})
}

async fn models(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        state.models.clone(),
    )
        .into_response()
}

/// Without a provider key every call fails at the provider unless the client sends its own
/// `Authorization`: said at start (a warning) and in `/healthz`, naming the variable.
pub fn missing_key_warning(config: &Config) -> Option<String> {
    config.upstream.api_key.is_none().then(|| {
        if config.auth.mode == AuthMode::Keys {
            // A client's tierwise key is never forwarded: nothing can authenticate upstream.
            return format!(
                "no upstream API key: {} is not set and upstream.api_key is empty; in keys mode \
                 clients' keys are never forwarded, so every call fails at the provider",
                config.upstream.api_key_env
            );
        }
        format!(
            "no upstream API key: {} is not set and upstream.api_key is empty; calls are sent \
             with the client's own Authorization header, and fail at the provider without one",
            config.upstream.api_key_env
        )
    })
}

/// Open mode is refused on a non-loopback address unless the config overrides it.
pub fn check_listen(config: &Config, addr: std::net::SocketAddr) -> Result<(), GatewayError> {
    let auth = &config.auth;
    if auth.mode == AuthMode::Open && !addr.ip().is_loopback() && !auth.allow_open_on_public_address
    {
        return Err(GatewayError::OpenOnPublicAddress(addr));
    }
    Ok(())
}

async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    if state.store.log().is_alive() {
        let mut body = json!({"status": "ok", "upstream_api_key": true});
        if let Some(warning) = missing_key_warning(&state.config) {
            body["upstream_api_key"] = json!(false);
            body["warning"] = json!(warning);
        }
        axum::Json(body).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "error", "reason": "request log writer stopped"})),
        )
            .into_response()
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound {
        method: method.to_string(),
        path: uri.path().to_string(),
    }
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
