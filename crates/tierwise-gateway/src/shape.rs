//! Hints in, request out: what the gateway reads from headers, and how it rewrites the body
//! before dispatch. Everything not named here is forwarded exactly as the client sent it.
//!
//! Order: tierwise never reorders messages or tools. Pruning keeps the client's tool order, and
//! no order is imposed on the rest: tool order is part of the prompt the model reads (it can
//! sway which tool is picked), so sorting would change answers for every client to help only
//! clients whose order varies. Such clients exist — the example workload sends 3 tool sets in
//! 156 orders over 288 calls — and a per-set "first order seen" rule would serve them without
//! touching stable clients; it is not implemented (see `docs/benchmarks.md`).

use std::fmt::Debug;

use axum::http::HeaderMap;
use serde_json::{Map, Value, json};
use tierwise_core::config::{CacheShaping, DispatchMode};
use tierwise_core::request::{Api, RequestError, RequestView};
use tierwise_core::signals::{HINT_KEYS, Hints, truthy};
use tierwise_router::Decision;

use crate::error::ApiError;
use crate::tools::ToolSearchSession;

/// Hints from `x-tierwise-*` headers (they win over the same keys in `metadata`).
pub fn hints_from_headers(headers: &HeaderMap) -> Result<Hints, ApiError> {
    let get = |name: &'static str| -> Result<Option<String>, ApiError> {
        match headers.get(name) {
            None => Ok(None),
            Some(v) => v
                .to_str()
                .map(|s| Some(s.trim().to_string()).filter(|s| !s.is_empty()))
                .map_err(|_| ApiError::InvalidHeader(name)),
        }
    };
    Ok(Hints {
        tier: get("x-tierwise-tier")?,
        role: get("x-tierwise-role")?,
        category: get("x-tierwise-category")?.map(|s| s.to_ascii_lowercase()),
        deferrable: get("x-tierwise-deferrable")?.is_some_and(|s| truthy(&s)),
        mode: get("x-tierwise-mode")?,
    })
}

/// Hints from `metadata`, refusing a hint key whose value is not text (a string, or a boolean
/// or number, which read as their text): `{"tier": ["x"]}` is a 400 naming `metadata.tier`,
/// like a wrong-typed `model`, not a hint silently ignored.
pub fn hints_from_metadata(view: &RequestView) -> Result<Hints, ApiError> {
    if let Some(meta) = &view.metadata {
        for (short, long) in HINT_KEYS {
            for key in [*short, *long] {
                match meta.get(key) {
                    None | Some(Value::String(_) | Value::Bool(_) | Value::Number(_)) => {}
                    Some(_) => {
                        let param = format!("metadata.{key}");
                        return Err(ApiError::InvalidRequest(RequestError {
                            message: format!("Invalid type for '{param}': expected a string."),
                            param: Some(param),
                            code: "invalid_type",
                        }));
                    }
                }
            }
        }
    }
    Ok(Hints::from_metadata(view))
}

/// Removes tierwise's hint keys (both spellings) from `metadata`; drops `metadata` if that
/// leaves it empty. The provider never sees our hints.
pub fn strip_hint_metadata(body: &mut Map<String, Value>) {
    let now_empty = match body.get_mut("metadata") {
        Some(Value::Object(meta)) => {
            for (short, long) in HINT_KEYS {
                meta.remove(*short);
                meta.remove(*long);
            }
            meta.is_empty()
        }
        _ => false,
    };
    if now_empty {
        body.remove("metadata");
    }
}

/// A request's tools as shaped, counted: what the tools headers, metrics and the log row report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ToolShaping {
    /// Tool schemas removed from the request.
    pub removed: usize,
    /// Tools the client sent (`x-tierwise-tools-offered`).
    pub offered: usize,
    /// Tools forwarded upstream (`x-tierwise-tools-sent`).
    pub sent: usize,
    /// o200k tokens of the client's tool schemas (0 when the shaper did not count them).
    pub tokens_offered: usize,
    /// o200k tokens of the forwarded tool schemas.
    pub tokens_sent: usize,
}

/// A tool shaper's result.
#[derive(Debug, Clone, Default)]
pub struct ShapedTools {
    pub counts: ToolShaping,
    /// Set when the shaper added the `tool_search` function: what dispatch needs to answer its
    /// calls (it travels in [`RequestCtx::tool_search`](crate::ctx::RequestCtx::tool_search)).
    pub search: Option<ToolSearchSession>,
}

/// The seam where a request's tools are pruned before forwarding (tool search).
/// It may rewrite `tools` (and `tool_choice`) in `body`; it must leave every other field alone.
pub trait ToolShaper: Send + Sync + Debug {
    fn shape(&self, body: &mut Map<String, Value>, view: &RequestView) -> ShapedTools;
}

/// Tools pass through untouched (counted only). The default shaper is
/// [`crate::tools::ToolSearchShaper`].
#[derive(Debug, Clone, Copy, Default)]
pub struct PassThrough;

impl ToolShaper for PassThrough {
    fn shape(&self, body: &mut Map<String, Value>, _view: &RequestView) -> ShapedTools {
        let n = body
            .get("tools")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        ShapedTools {
            counts: ToolShaping {
                offered: n,
                sent: n,
                ..ToolShaping::default()
            },
            search: None,
        }
    }
}

/// The body to send, minus `model` (set per candidate tier at dispatch).
#[derive(Debug, Clone)]
pub struct Shaped {
    pub body: Map<String, Value>,
    /// The client asked for the usage chunk itself (`stream_options.include_usage = true`);
    /// when false and we added it, the relay strips it from the client's stream.
    pub client_wants_usage: bool,
    pub tools: ToolShaping,
    /// The `tool_search` session, when the tool shaper added the function.
    pub tool_search: Option<ToolSearchSession>,
}

/// Rewrites the parsed body for dispatch:
/// 1. tierwise hint keys leave `metadata`;
/// 2. the tool shaper may prune `tools`;
/// 3. chat streams ask the provider for the usage chunk (so cost can be logged);
/// 4. mode `flex` sets `service_tier = "flex"`;
/// 5. with `[cache] shape`, a request without `prompt_cache_key` gets one
///    ([`prompt_cache_key`], from the client's stable prefix and `caller_key`, the virtual
///    key's id).
pub fn shape(
    mut body: Map<String, Value>,
    view: &RequestView,
    decision: &Decision,
    tools: &dyn ToolShaper,
    cache: CacheShaping,
    caller_key: Option<&str>,
) -> Shaped {
    strip_hint_metadata(&mut body);
    // the key hashes the client's prefix, before tool pruning (see `prompt_cache_key`)
    let cache_key = (cache.shape && !body.contains_key("prompt_cache_key"))
        .then(|| prompt_cache_key(&body, view.api, caller_key))
        .flatten();
    let ShapedTools {
        counts: tools,
        search: tool_search,
    } = tools.shape(&mut body, view);
    let mut client_wants_usage = false;
    if view.stream && view.api == Api::ChatCompletions {
        match body.get_mut("stream_options") {
            Some(Value::Object(opts)) => {
                client_wants_usage = opts.get("include_usage") == Some(&Value::Bool(true));
                opts.insert("include_usage".into(), Value::Bool(true));
            }
            _ => {
                body.insert("stream_options".into(), json!({"include_usage": true}));
            }
        }
    }
    if view.stream && view.api == Api::Responses {
        // The Responses stream always ends with `response.completed` carrying usage.
        client_wants_usage = true;
    }
    if decision.mode == DispatchMode::Flex {
        body.insert("service_tier".into(), Value::String("flex".into()));
    }
    if let Some(key) = cache_key {
        body.insert("prompt_cache_key".into(), Value::String(key));
    }
    Shaped {
        body,
        client_wants_usage,
        tools,
        tool_search,
    }
}

/// The `prompt_cache_key` tierwise sets on a request without one: `tw-` and 32 hex digits of
/// the xxh3-128 hash of the request's stable prefix as the client sent it — `tools` (before
/// pruning or tool search), the leading `system`/`developer` messages (chat) or `instructions` and the leading
/// `system`/`developer` input items (Responses) — and of `caller_key`, the virtual key's id
/// when the caller authenticated with one. Calls sharing that prefix (and key) share a key, so
/// the provider routes them to the same cache; different callers never share one. `None` when
/// the request has no stable prefix (no tools, no system text): a key would only pile unrelated
/// calls onto one cache.
///
/// Hashing the offered tools, not the pruned ones, keeps calls that offer the same tools on one
/// route even when pruning forwards different subsets, so they share the cache of their common
/// part: with the forwarded tools, the example workload's cached share fell from 0.547 to 0.496
/// in the mock's provider-cache simulation (`docs/benchmarks.md`).
pub fn prompt_cache_key(
    body: &Map<String, Value>,
    api: Api,
    caller_key: Option<&str>,
) -> Option<String> {
    let mut prefix: Vec<&Value> = Vec::new();
    if let Some(tools) = body.get("tools").filter(|t| !t.is_null()) {
        prefix.push(tools);
    }
    let lead = match api {
        Api::ChatCompletions => body.get("messages"),
        Api::Responses => {
            if let Some(instructions) = body.get("instructions").filter(|i| !i.is_null()) {
                prefix.push(instructions);
            }
            body.get("input")
        }
    };
    if let Some(Value::Array(items)) = lead {
        prefix.extend(items.iter().take_while(|m| {
            matches!(
                m.get("role").and_then(Value::as_str),
                Some("system" | "developer")
            )
        }));
    }
    if prefix.is_empty() {
        return None;
    }
    let mut text = String::new();
    if let Some(id) = caller_key {
        text.push_str("key:");
        text.push_str(id);
    }
    for part in prefix {
        text.push('\n');
        text.push_str(&part.to_string());
    }
    Some(format!(
        "tw-{:032x}",
        xxhash_rust::xxh3::xxh3_128(text.as_bytes())
    ))
}

/// Header-safe text: visible ASCII only (arrows and comparison signs spelled out), at most
/// 200 bytes.
pub fn ascii_header(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '→' => out.push_str("->"),
            '←' => out.push_str("<-"),
            '≥' => out.push_str(">="),
            '≤' => out.push_str("<="),
            '≠' => out.push_str("!="),
            '×' => out.push('x'),
            '…' => out.push_str("..."),
            '—' | '–' => out.push('-'),
            c if c == ' ' || c.is_ascii_graphic() => out.push(c),
            c if c.is_whitespace() => out.push(' '),
            _ => out.push('?'),
        }
        if out.len() >= 200 {
            out.truncate(200);
            break;
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn headers_become_hints() {
        let mut h = HeaderMap::new();
        h.insert("x-tierwise-tier", HeaderValue::from_static("nano"));
        h.insert(
            "x-tierwise-category",
            HeaderValue::from_static("Extraction"),
        );
        h.insert("x-tierwise-deferrable", HeaderValue::from_static("yes"));
        let hints = hints_from_headers(&h).unwrap();
        assert_eq!(hints.tier.as_deref(), Some("nano"));
        assert_eq!(hints.category.as_deref(), Some("extraction"));
        assert!(hints.deferrable);
        h.insert(
            "x-tierwise-role",
            HeaderValue::from_bytes(&[0xff, 0xfe]).unwrap(),
        );
        assert!(matches!(
            hints_from_headers(&h),
            Err(ApiError::InvalidHeader("x-tierwise-role"))
        ));
    }

    #[test]
    fn wrong_typed_metadata_hints_are_refused_by_name() {
        for (meta, param) in [
            (json!({"tier": ["x"]}), "metadata.tier"),
            (
                json!({"x-tierwise-category": {"a": 1}}),
                "metadata.x-tierwise-category",
            ),
            (json!({"deferrable": null}), "metadata.deferrable"),
        ] {
            let body = json!({"model": "auto", "metadata": meta,
                "messages": [{"role": "user", "content": "hi"}]});
            let view = RequestView::chat(&body).unwrap();
            match hints_from_metadata(&view) {
                Err(ApiError::InvalidRequest(e)) => {
                    assert_eq!(e.param.as_deref(), Some(param));
                    assert_eq!(e.code, "invalid_type");
                }
                other => panic!("{other:?}"),
            }
        }
        let body = json!({"model": "auto", "metadata": {"tier": "mini", "deferrable": true, "user": ["u"]},
            "messages": [{"role": "user", "content": "hi"}]});
        let hints = hints_from_metadata(&RequestView::chat(&body).unwrap()).unwrap();
        assert_eq!(hints.tier.as_deref(), Some("mini"));
        assert!(hints.deferrable);
    }

    #[test]
    fn metadata_loses_only_hint_keys() {
        let mut body =
            json!({"metadata": {"category": "coding", "x-tierwise-tier": "mini", "user": "u1"}})
                .as_object()
                .unwrap()
                .clone();
        strip_hint_metadata(&mut body);
        assert_eq!(Value::Object(body), json!({"metadata": {"user": "u1"}}));
        let mut body = json!({"metadata": {"role": "sub-agent"}, "x": 1})
            .as_object()
            .unwrap()
            .clone();
        strip_hint_metadata(&mut body);
        assert_eq!(Value::Object(body), json!({"x": 1}));
    }

    #[test]
    fn prompt_cache_key_follows_the_stable_prefix_and_the_caller() {
        let chat = |system: &str, user: &str| {
            json!({"model": "auto", "tools": [{"type": "function", "function": {"name": "f"}}],
                "messages": [{"role": "system", "content": system},
                    {"role": "user", "content": user}]})
            .as_object()
            .unwrap()
            .clone()
        };
        let key = |b: &Map<String, Value>, caller| {
            prompt_cache_key(b, Api::ChatCompletions, caller).unwrap()
        };
        let a = key(&chat("S", "one"), None);
        assert!(a.starts_with("tw-") && a.len() == 35, "{a}");
        // the user turn is not part of the stable prefix
        assert_eq!(a, key(&chat("S", "two"), None));
        assert_ne!(a, key(&chat("T", "one"), None));
        // callers never share a key
        let k1 = key(&chat("S", "one"), Some("key_1"));
        assert_ne!(a, k1);
        assert_ne!(k1, key(&chat("S", "one"), Some("key_2")));
        // no tools, no system text: no key
        let bare = json!({"messages": [{"role": "user", "content": "hi"}]});
        assert_eq!(
            prompt_cache_key(bare.as_object().unwrap(), Api::ChatCompletions, None),
            None
        );
        // Responses: instructions and leading developer items
        let r = |instr: &str| {
            json!({"instructions": instr, "input": [{"role": "developer", "content": "D"},
                {"role": "user", "content": "u"}]})
            .as_object()
            .unwrap()
            .clone()
        };
        let ra = prompt_cache_key(&r("I"), Api::Responses, None).unwrap();
        assert_ne!(ra, prompt_cache_key(&r("J"), Api::Responses, None).unwrap());
    }

    #[test]
    fn reasons_are_ascii() {
        assert_eq!(
            ascii_header("rule short-plain (≤400 tokens) → mini"),
            "rule short-plain (<=400 tokens) -> mini"
        );
        assert_eq!(ascii_header("naïve\n"), "na?ve ");
    }
}
