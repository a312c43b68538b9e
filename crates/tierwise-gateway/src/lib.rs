//! The tierwise gateway: an OpenAI-compatible proxy that routes each call to a model tier,
//! prices it exactly and logs it.
//!
//! # Layout
//! - [`app`]: shared state, the route table, [`serve`] / [`Gateway`] — and the request
//!   lifecycle (which stage writes or reads which field of the per-request state), written down
//!   where the stack is assembled.
//! - [`ctx`]: [`ctx::RequestCtx`], the typed per-request state the stages hand each other.
//! - [`proxy`]: `POST /v1/chat/completions` and `POST /v1/responses`: read, parse, hints,
//!   signals, decide, shape, dispatch, respond.
//! - [`shape`]: hints from `x-tierwise-*` headers, metadata stripping, the [`shape::ToolShaper`]
//!   seam (tool pruning), stream usage and flex rewriting; ASCII-safe header text.
//! - [`tools`]: [`tools::ToolSearchShaper`], the default tool shaper (tool search): prunes
//!   `tools` by the `[tools]` config, indexes cached by fingerprint; the `tool_search` rounds
//!   of a [`tools::ToolSearchSession`].
//! - [`dispatch`]: [`dispatch::Candidates`] (the tier, then fallbacks up the ladder) and the
//!   sync runner (retries with backoff, fallback on retryable failures); the seam for the
//!   cascade runner.
//! - [`conversation`]: Responses conversations keep their tier (`previous_response_id` →
//!   the model that answered it; a bounded map, the provider asked on a miss).
//! - [`cascade`]: the cascade runner — cheapest tier first, answer scored, escalated when weak;
//!   `x-tierwise-attempts`; SSE rebuilt for streaming clients.
//! - [`passthrough`]: every other `/v1/*` call (Files, Batches, Embeddings, …) relayed
//!   unchanged, bodies streamed both ways.
//! - [`upstream`]: the pooled HTTP client — the only code that talks to the provider — and
//!   [`upstream::UpstreamError`] with its source and retryability.
//! - [`stream`]: SSE relay, chunk by chunk, reading usage on the side.
//! - [`shadow`]: shadow tests (`[quality.shadow]`): sampling at stage 7, the candidate call
//!   and its check or judge after the response is complete, results to the store.
//! - [`account`]: pricing, metrics and the log row, from a finished request's context.
//! - [`input_limits`]: hostile input — `[server]`'s limits on header bytes, JSON depth,
//!   messages and tools, each refused with a 400 naming the limit.
//! - [`metrics`]: the Prometheus recorder behind `GET /metrics`.
//! - [`auth`]: virtual keys (`[auth] mode = "keys"`, a ≤ 1 s key cache per replica) and the
//!   admin key; [`limits`]: a key's tier cap, rate limits and budget reservations;
//!   [`admin`]: `/admin/keys` and `/admin/teams`.
//! - [`telemetry`]: OpenTelemetry traces (OTLP/HTTP, off unless `OTEL_*` asks): a span per
//!   request and per upstream attempt, GenAI semantic-convention attributes.
//! - [`error`]: [`ApiError`], the one API error type, mapped to status and OpenAI-shaped JSON.

pub mod account;
pub mod admin;
pub mod app;
pub mod auth;
pub mod cascade;
pub mod conversation;
pub mod ctx;
pub mod dispatch;
pub mod error;
pub mod input_limits;
pub mod limits;
pub mod metrics;
pub mod passthrough;
pub mod proxy;
pub mod shadow;
pub mod shape;
pub mod stream;
pub mod telemetry;
pub mod tools;
pub mod upstream;

pub use app::{Gateway, GatewayError, ShutdownReport, serve};
pub use error::ApiError;
