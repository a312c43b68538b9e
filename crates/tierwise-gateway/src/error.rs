//! The gateway's one API error type. [`ApiError::status`] maps every variant to its HTTP status
//! with an exhaustive `match` (no `_ =>` arm: a new variant must choose its status), and the
//! response is OpenAI's shape `{"error": {"message", "type", "param", "code"}}` — except for
//! upstream errors that already are, which pass back verbatim with the upstream's status.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use tierwise_core::request::RequestError;
use tierwise_router::RouteError;

use crate::upstream::{UpstreamError, UpstreamErrorKind};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON.
    #[error("We could not parse the JSON body of your request. ({0})")]
    InvalidJson(String),
    /// JSON, but not a valid request (missing `messages`, wrong types, …).
    #[error("{0}")]
    InvalidRequest(RequestError),
    /// Unknown model or forced tier.
    #[error("{0}")]
    Route(RouteError),
    /// A `x-tierwise-*` header that is not text.
    #[error("Invalid value for header '{0}': expected visible ASCII text.")]
    InvalidHeader(&'static str),
    /// Body over `server.max_body_bytes`.
    #[error("Request body too large: the limit is {limit} bytes.")]
    BodyTooLarge { limit: usize },
    /// Over one of `[server]`'s request limits (JSON depth, messages, tools, header bytes):
    /// the message names the limit and its config key.
    #[error("{message}")]
    OverLimit {
        message: String,
        param: Option<&'static str>,
        code: &'static str,
    },
    /// The body could not be read (client went away, bad encoding).
    #[error("Could not read the request body: {0}")]
    BodyRead(String),
    /// The provider failed (after retries and fallbacks).
    #[error("{0}")]
    Upstream(UpstreamError),
    #[error("Invalid URL ({method} {path})")]
    NotFound { method: String, path: String },
    #[error("Method not allowed.")]
    MethodNotAllowed,
    #[error("Internal error: {0}")]
    Internal(String),
    /// No key, a malformed, unknown, revoked or expired key, or a wrong admin key.
    #[error("{0}")]
    Unauthorized(String),
    /// The key's tiers exclude every model this call could use.
    #[error("{0}")]
    KeyForbidsModel(String),
    /// A key or team budget would be exceeded (the message names the window and its reset).
    #[error("{0}")]
    InsufficientQuota(String),
    /// A key's rpm/tpm is used up for this minute.
    #[error("{message}")]
    RateLimited {
        /// `requests` or `tokens` (OpenAI's error type for rate limits).
        kind: &'static str,
        message: String,
        retry_after: u64,
        remaining: crate::limits::RateRemaining,
    },
    /// The store (keys, budgets) cannot be reached: fail closed.
    #[error("The key and budget store is unavailable; try again shortly. ({0})")]
    StoreUnavailable(String),
    /// Bad input to the admin API (negative budget, unknown field, bad date).
    #[error("{0}")]
    AdminInvalid(String),
    /// The admin API's key or team does not exist.
    #[error("{0}")]
    AdminNotFound(String),
}

impl ApiError {
    /// A store failure: unreachable → 503; bad input → 400; missing → 404; else 500.
    pub fn from_store(e: tierwise_store::StoreError) -> ApiError {
        use tierwise_store::StoreError as S;
        match e {
            S::Unavailable { .. } => ApiError::StoreUnavailable(e.to_string()),
            S::Invalid(m) => ApiError::AdminInvalid(m),
            S::NotFound(..) => ApiError::AdminNotFound(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidJson(_)
            | ApiError::InvalidRequest(_)
            | ApiError::InvalidHeader(_)
            | ApiError::OverLimit { .. }
            | ApiError::BodyRead(_) => StatusCode::BAD_REQUEST,
            ApiError::Route(r) => match r {
                RouteError::UnknownModel(_) => StatusCode::NOT_FOUND,
                RouteError::UnknownTier(..) => StatusCode::BAD_REQUEST,
            },
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Upstream(e) => match &e.kind {
                UpstreamErrorKind::Status { status, .. } => *status,
                UpstreamErrorKind::Connect(_)
                | UpstreamErrorKind::InvalidResponse(_)
                | UpstreamErrorKind::Request(_) => StatusCode::BAD_GATEWAY,
                UpstreamErrorKind::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            },
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::KeyForbidsModel(_) => StatusCode::FORBIDDEN,
            ApiError::InsufficientQuota(_) | ApiError::RateLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::AdminInvalid(_) => StatusCode::BAD_REQUEST,
            ApiError::AdminNotFound(_) => StatusCode::NOT_FOUND,
        }
    }

    /// OpenAI's `type`, `param` and `code` for this error.
    fn parts(&self) -> (&'static str, Option<String>, Option<&'static str>) {
        match self {
            ApiError::InvalidJson(_) => ("invalid_request_error", None, Some("invalid_json")),
            ApiError::InvalidRequest(e) => ("invalid_request_error", e.param.clone(), Some(e.code)),
            ApiError::Route(RouteError::UnknownModel(_)) => (
                "invalid_request_error",
                Some("model".into()),
                Some("model_not_found"),
            ),
            ApiError::Route(RouteError::UnknownTier(..)) => (
                "invalid_request_error",
                Some("x-tierwise-tier".into()),
                Some("invalid_value"),
            ),
            ApiError::InvalidHeader(h) => (
                "invalid_request_error",
                Some((*h).to_string()),
                Some("invalid_value"),
            ),
            ApiError::BodyTooLarge { .. } => {
                ("invalid_request_error", None, Some("request_too_large"))
            }
            ApiError::BodyRead(_) => ("invalid_request_error", None, None),
            ApiError::OverLimit { param, code, .. } => (
                "invalid_request_error",
                param.map(str::to_string),
                Some(code),
            ),
            ApiError::Upstream(e) => match &e.kind {
                UpstreamErrorKind::Status { .. } => ("upstream_error", None, None),
                UpstreamErrorKind::Connect(_) => {
                    ("upstream_error", None, Some("upstream_unreachable"))
                }
                UpstreamErrorKind::Timeout(_) => ("upstream_error", None, Some("upstream_timeout")),
                UpstreamErrorKind::InvalidResponse(_) => {
                    ("upstream_error", None, Some("upstream_invalid_response"))
                }
                UpstreamErrorKind::Request(_) => ("upstream_error", None, Some("upstream_error")),
            },
            ApiError::NotFound { .. } => ("invalid_request_error", None, Some("unknown_url")),
            ApiError::MethodNotAllowed => {
                ("invalid_request_error", None, Some("method_not_allowed"))
            }
            ApiError::Internal(_) => ("server_error", None, Some("internal_error")),
            ApiError::Unauthorized(_) => ("invalid_request_error", None, Some("invalid_api_key")),
            ApiError::KeyForbidsModel(_) => (
                "invalid_request_error",
                Some("model".into()),
                Some("model_not_allowed"),
            ),
            ApiError::InsufficientQuota(_) => {
                ("insufficient_quota", None, Some("insufficient_quota"))
            }
            ApiError::RateLimited { kind, .. } => (kind, None, Some("rate_limit_exceeded")),
            ApiError::StoreUnavailable(_) => ("server_error", None, Some("store_unavailable")),
            ApiError::AdminInvalid(_) => ("invalid_request_error", None, Some("invalid_value")),
            ApiError::AdminNotFound(_) => ("invalid_request_error", None, Some("not_found")),
        }
    }

    /// Logs the error at the level its variant deserves: client mistakes at debug, provider
    /// trouble at warn, our own bugs at error.
    pub fn log(&self) {
        match self {
            ApiError::InvalidJson(_)
            | ApiError::InvalidRequest(_)
            | ApiError::Route(_)
            | ApiError::InvalidHeader(_)
            | ApiError::BodyTooLarge { .. }
            | ApiError::OverLimit { .. }
            | ApiError::BodyRead(_)
            | ApiError::NotFound { .. }
            | ApiError::MethodNotAllowed
            | ApiError::Unauthorized(_)
            | ApiError::KeyForbidsModel(_)
            | ApiError::InsufficientQuota(_)
            | ApiError::RateLimited { .. }
            | ApiError::AdminInvalid(_)
            | ApiError::AdminNotFound(_) => tracing::debug!(error = %self, "rejected request"),
            ApiError::Upstream(_) | ApiError::StoreUnavailable(_) => {
                tracing::warn!(error = %self, "upstream failure")
            }
            ApiError::Internal(_) => tracing::error!(error = %self, "internal error"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        // An upstream error that is already OpenAI-shaped goes back as the provider sent it.
        if let ApiError::Upstream(UpstreamError {
            kind: UpstreamErrorKind::Status {
                body, content_type, ..
            },
            ..
        }) = &self
            && serde_json::from_slice::<Value>(body)
                .ok()
                .is_some_and(|v| v.get("error").is_some_and(Value::is_object))
        {
            let ct = content_type
                .clone()
                .unwrap_or(HeaderValue::from_static("application/json"));
            return (status, [(header::CONTENT_TYPE, ct)], body.clone()).into_response();
        }
        let (kind, param, code) = self.parts();
        let body = json!({"error": {"message": self.to_string(), "type": kind, "param": param, "code": code}});
        let mut resp = (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            Bytes::from(body.to_string()),
        )
            .into_response();
        if let ApiError::RateLimited {
            retry_after,
            remaining,
            ..
        } = &self
        {
            let h = resp.headers_mut();
            h.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            crate::limits::insert_rate_headers(h, *remaining);
        }
        resp
    }
}
