//! Every other `/v1/*` call (Files, Batches, Embeddings, Moderations, Uploads, …) relayed to the
//! provider unchanged, so a client that points its base URL at tierwise keeps working for the
//! endpoints tierwise does not route.
//!
//! Nothing is parsed or buffered: the request body streams up, the response body streams back,
//! with the provider's status and its descriptive headers (content type, disposition, request
//! id, rate limits). Authorization follows the routed endpoints' rule: the configured key when
//! there is one, else the client's own. A provider that cannot be reached is a 502 in OpenAI's
//! error shape; any answer it gives (errors included) is passed back as it is.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, Method, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::error::ApiError;
use crate::upstream::passes_back;

/// Resources counted by name in `tierwise_passthrough_total`; anything else is `other`.
const RESOURCES: &[&str] = &[
    "files",
    "batches",
    "uploads",
    "embeddings",
    "moderations",
    "images",
    "audio",
    "completions",
    "vector_stores",
    "fine_tuning",
    "conversations",
    "realtime",
];

/// The first path segment after `/v1`, if it names a known resource.
pub fn resource(path: &str) -> &'static str {
    let first = path
        .strip_prefix("/v1/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("");
    RESOURCES
        .iter()
        .find(|r| **r == first)
        .copied()
        .unwrap_or("other")
}

/// Response headers relayed besides the ones every proxied answer keeps ([`passes_back`]).
fn relayed(name: &HeaderName) -> bool {
    *name == header::CONTENT_TYPE
        || *name == header::CONTENT_LENGTH
        || *name == header::CONTENT_DISPOSITION
        || *name == header::CACHE_CONTROL
        || passes_back(name.as_str())
}

/// `ANY /v1/{*rest}` (after the routed endpoints): relays the call unchanged.
pub async fn handle(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    mut headers: HeaderMap,
    body: Body,
) -> Response {
    // Keys mode covers these routes too: a key is needed, and never forwarded.
    if let Err(e) = crate::auth::authenticate(&state, &headers).await {
        e.log();
        return e.into_response();
    }
    if state.config.auth.mode == tierwise_core::config::AuthMode::Keys {
        headers.remove(header::AUTHORIZATION);
    }
    let path = uri.path();
    let resource = resource(path);
    // The configured base URL already ends in `/v1`.
    let upstream_path = match uri.query() {
        Some(q) => format!("{}?{q}", path.strip_prefix("/v1").unwrap_or(path)),
        None => path.strip_prefix("/v1").unwrap_or(path).to_string(),
    };
    let upload = reqwest::Body::wrap_stream(body.into_data_stream());
    let sent = state
        .upstream
        .forward(method.clone(), &upstream_path, &headers, upload)
        .await;
    match sent {
        Ok(resp) => {
            let status = resp.status();
            state
                .metrics
                .passthrough(resource, method.as_str(), status.as_u16());
            tracing::debug!(%method, path, status = status.as_u16(), "relayed");
            let mut out = Response::builder().status(status);
            for (name, value) in resp.headers() {
                if relayed(name) {
                    out = out.header(name, value);
                }
            }
            match out.body(Body::from_stream(resp.bytes_stream())) {
                Ok(r) => r,
                Err(e) => ApiError::Internal(e.to_string()).into_response(),
            }
        }
        Err(e) => {
            let err = ApiError::Upstream(e);
            state
                .metrics
                .passthrough(resource, method.as_str(), err.status().as_u16());
            err.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_bounded() {
        assert_eq!(resource("/v1/files"), "files");
        assert_eq!(resource("/v1/files/file-abc/content"), "files");
        assert_eq!(resource("/v1/batches/b1/cancel"), "batches");
        assert_eq!(resource("/v1/embeddings"), "embeddings");
        assert_eq!(resource("/v1/whatever-a-client-sends"), "other");
        assert_eq!(resource("/v1/"), "other");
    }
}
