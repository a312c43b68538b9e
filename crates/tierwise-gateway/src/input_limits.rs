//! Hostile input: `[server]`'s request limits, checked before the body is parsed or read
//! further, each over-limit case refused with an OpenAI-shaped 400 that names the limit and
//! its config key (the body size limit is `DefaultBodyLimit`'s 413, in `app.rs`).
//!
//! - header bytes (`server.max_header_bytes`): a layer over every route;
//! - JSON nesting (`server.max_json_depth`): a byte scan before `serde_json` builds anything,
//!   so a deeply nested body costs one pass, never a deep recursion;
//! - `messages` / `input` items (`server.max_messages`) and `tools` (`server.max_tools`):
//!   counted on the parsed value before the request view, signals or tool search look at them.
//!
//! The work a request may cost before the upstream call is bounded too, but elsewhere: token
//! counts are exact for the first `tierwise_core::tokens::EXACT_BYTES` and estimated beyond.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tierwise_core::config::RequestLimits;
use tierwise_core::request::Api;

use crate::app::AppState;
use crate::error::ApiError;

/// The header-size layer (every route).
pub async fn headers(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let limit = state.config.limits.max_header_bytes;
    let size: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if size > limit {
        return ApiError::OverLimit {
            message: format!(
                "Request headers too large: {size} bytes, the limit is {limit} bytes \
                 (server.max_header_bytes)."
            ),
            param: None,
            code: "request_headers_too_large",
        }
        .into_response();
    }
    next.run(req).await
}

/// The deepest nesting of arrays and objects in `json` (strings skipped), stopping as soon as
/// it passes `limit`: `Err(depth)` then.
pub fn json_depth(json: &[u8], limit: usize) -> Result<usize, usize> {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut in_string = false;
    let mut i = 0;
    while i < json.len() {
        let b = json[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > limit {
                        return Err(depth);
                    }
                    max = max.max(depth);
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        i += 1;
    }
    Ok(max)
}

/// Refuses a body nested deeper than `server.max_json_depth`.
pub fn check_depth(body: &[u8], limits: &RequestLimits) -> Result<(), ApiError> {
    let limit = limits.max_json_depth;
    json_depth(body, limit)
        .map(drop)
        .map_err(|_| ApiError::OverLimit {
            message: format!(
                "The JSON body is nested deeper than {limit} levels (server.max_json_depth)."
            ),
            param: None,
            code: "json_too_deep",
        })
}

/// Refuses more `messages` (chat) / `input` items (Responses) than `server.max_messages`, or
/// more `tools` than `server.max_tools` — OpenAI's `array_above_max_length`, the limit named.
pub fn check_counts(body: &Value, api: Api, limits: &RequestLimits) -> Result<(), ApiError> {
    let items = match api {
        Api::ChatCompletions => "messages",
        Api::Responses => "input",
    };
    for (param, key, limit) in [
        (items, "server.max_messages", limits.max_messages),
        ("tools", "server.max_tools", limits.max_tools),
    ] {
        if let Some(n) = body.get(param).and_then(Value::as_array).map(Vec::len)
            && n > limit
        {
            return Err(ApiError::OverLimit {
                message: format!(
                    "Invalid '{param}': array too long. Expected an array with maximum length \
                     {limit} ({key}), but got an array with length {n} instead."
                ),
                param: Some(param),
                code: "array_above_max_length",
            });
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;

    #[test]
    fn depth_skips_strings_and_escapes() {
        assert_eq!(json_depth(br#"{"a": [1, {"b": "[[[{{{"}]}"#, 10), Ok(3));
        assert_eq!(json_depth(br#"{"a": "\"[[[", "b": [[]]}"#, 10), Ok(3));
        assert_eq!(json_depth(b"[[[[[]]]]]", 4), Err(5));
        assert_eq!(json_depth(b"", 4), Ok(0));
        // a deep body stops the scan at the limit
        let deep = "[".repeat(1_000_000);
        assert_eq!(json_depth(deep.as_bytes(), 64), Err(65));
    }
}
