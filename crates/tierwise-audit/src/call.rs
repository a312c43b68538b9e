//! One line of a JSONL call log → a [`Call`].
//!
//! Line shape: `{"request": {chat completions or Responses body}, "response": {body incl. usage},
//! "timestamp": "RFC 3339" | unix seconds, "metadata": {...}}`; `response`, `timestamp` and
//! `metadata` are optional.
//! - The served model is `response.model`, else `request.model`.
//! - The time is `timestamp`, else `response.created`.
//! - Line-level `metadata` is merged over the request's own `metadata` (line keys win): it plays
//!   the part of the `x-tierwise-*` headers a team would send (`category`, `deferrable`, `role`,
//!   `tier`), so the what-if sees the same hints `serve` would.
//! - Without a response (or without usage in it) the call is priced from counted o200k input
//!   tokens (messages + tool schemas), output 0, and marked estimated.

use serde_json::{Map, Value};
use tierwise_core::cost::{ServiceTier, Usage};
use tierwise_core::request::RequestView;
use tierwise_core::tokens;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A parsed call.
#[derive(Debug, Clone)]
pub struct Call {
    /// Unix milliseconds.
    pub ts_ms: Option<i64>,
    /// The model that served (or was asked for) the call.
    pub model: String,
    pub usage: Usage,
    /// No usage was logged: input tokens were counted, output is unknown (0).
    pub estimated: bool,
    pub service_tier: ServiceTier,
    /// The request (for a line without one: an empty view carrying the line's metadata).
    pub view: RequestView,
    /// False when only the response was logged: no categorizing from content, no routing
    /// what-if, no cache simulation.
    pub has_content: bool,
}

/// Parses an RFC 3339 time to unix milliseconds.
pub fn parse_time(s: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(s.trim(), &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

fn time_of(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => parse_time(s),
        // Unix seconds (or milliseconds when obviously so).
        Value::Number(n) => {
            let x = n.as_f64()?;
            if x > 1e11 {
                Some(x as i64)
            } else {
                Some((x * 1000.0) as i64)
            }
        }
        _ => None,
    }
}

/// Parses one log line. `Err` carries a short reason for the malformed-line report.
pub fn parse_line(line: &[u8]) -> Result<Call, String> {
    let mut v: Value = serde_json::from_slice(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let obj = v.as_object_mut().ok_or("not a JSON object")?;
    let response = obj.remove("response").filter(|r| !r.is_null());
    let has_content = obj.get("request").is_some_and(|r| !r.is_null());
    let mut request = match obj.remove("request") {
        Some(r @ Value::Object(_)) => r,
        Some(Value::Null) | None => {
            // Only the response was logged (e.g. a request log without bodies): usage and
            // model must be there.
            let has_usage = response
                .as_ref()
                .and_then(|r| r.get("usage"))
                .and_then(Usage::from_openai)
                .is_some();
            let model = response
                .as_ref()
                .and_then(|r| r.get("model"))
                .and_then(Value::as_str);
            match (has_usage, model) {
                (true, Some(m)) => serde_json::json!({"model": m, "messages": []}),
                _ => {
                    return Err(
                        "missing `request` (and no response with model and usage)".to_string()
                    );
                }
            }
        }
        Some(_) => return Err("`request` is not an object".to_string()),
    };
    if let Some(Value::Object(line_meta)) = obj.remove("metadata") {
        merge_metadata(&mut request, line_meta);
    }
    let ts_ms = obj.get("timestamp").and_then(time_of).or_else(|| {
        response
            .as_ref()
            .and_then(|r| r.get("created"))
            .and_then(time_of)
    });
    let is_responses = request.get("messages").is_none() && request.get("input").is_some();
    let view = if !has_content {
        empty_view(&request)
    } else if is_responses {
        RequestView::responses(&request)
    } else {
        RequestView::chat(&request)
    }
    .map_err(|e| format!("request: {e}"))?;
    let marked_estimated = obj
        .get("usage_estimated")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let served = response
        .as_ref()
        .and_then(|r| r.get("model"))
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty());
    let model = served
        .map(str::to_string)
        .unwrap_or_else(|| view.model.clone());
    let tier_field = response
        .as_ref()
        .and_then(|r| r.get("service_tier"))
        .and_then(Value::as_str)
        .or_else(|| request.get("service_tier").and_then(Value::as_str));
    let service_tier = ServiceTier::from_response(tier_field);
    let logged = response
        .as_ref()
        .and_then(|r| r.get("usage"))
        .and_then(Usage::from_openai);
    let (usage, estimated) = match logged {
        Some(u) => (u, marked_estimated),
        None => {
            let input = tokens::count_messages(&view.messages) + tokens::count_tools(&view.tools);
            (
                Usage {
                    input_tokens: input as u64,
                    ..Usage::default()
                },
                true,
            )
        }
    };
    Ok(Call {
        ts_ms,
        model,
        usage,
        estimated,
        service_tier,
        view,
        has_content,
    })
}

/// A view with no turns that carries the line's metadata (hints) only.
fn empty_view(request: &Value) -> Result<RequestView, tierwise_core::request::RequestError> {
    Ok(RequestView {
        api: tierwise_core::request::Api::ChatCompletions,
        model: request
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        turns: Vec::new(),
        messages: Vec::new(),
        stream: false,
        tools: Vec::new(),
        structured_output: false,
        metadata: request.get("metadata").and_then(Value::as_object).cloned(),
        tool_choice: None,
    })
}

fn merge_metadata(request: &mut Value, line_meta: Map<String, Value>) {
    if line_meta.is_empty() {
        return;
    }
    let Some(req) = request.as_object_mut() else {
        return;
    };
    let slot = req
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    if let Value::Object(m) = slot {
        for (k, v) in line_meta {
            m.insert(k, v);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;

    #[test]
    fn chat_line_with_usage() {
        let line = br#"{"request": {"model": "gpt-5.5", "messages": [{"role": "user", "content": "hi"}]},
            "response": {"model": "gpt-5.5-2026-01-01", "service_tier": "flex", "created": 1700000000,
              "usage": {"prompt_tokens": 9, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 0}}},
            "metadata": {"category": "chat"}}"#;
        let c = parse_line(line).unwrap();
        assert_eq!(c.model, "gpt-5.5-2026-01-01");
        assert_eq!(c.usage.input_tokens, 9);
        assert_eq!(c.service_tier, ServiceTier::Flex);
        assert_eq!(c.ts_ms, Some(1_700_000_000_000));
        assert!(!c.estimated);
        assert_eq!(c.view.metadata_str("category").as_deref(), Some("chat"));
    }

    #[test]
    fn responses_line_without_response_is_estimated() {
        let line = br#"{"request": {"model": "gpt-5.4-mini", "input": "hello world"}, "timestamp": "2026-01-02T03:04:05Z"}"#;
        let c = parse_line(line).unwrap();
        assert!(c.estimated);
        // 3 priming + 3 per message + 1 ("user") + 2 ("hello world")
        assert_eq!(c.usage.input_tokens, 9);
        assert_eq!(c.usage.output_tokens, 0);
        assert_eq!(c.ts_ms, parse_time("2026-01-02T03:04:05Z"));
        assert_eq!(c.model, "gpt-5.4-mini");
    }

    #[test]
    fn response_only_line() {
        let c = parse_line(br#"{"response": {"model": "gpt-5.5", "usage": {"prompt_tokens": 30, "completion_tokens": 2}},
            "metadata": {"category": "extraction"}, "usage_estimated": true}"#)
        .unwrap();
        assert!(!c.has_content);
        assert!(c.estimated);
        assert_eq!(c.usage.input_tokens, 30);
        assert_eq!(
            c.view.metadata_str("category").as_deref(),
            Some("extraction")
        );
    }

    #[test]
    fn malformed() {
        assert!(parse_line(b"{not json").is_err());
        assert!(parse_line(b"[1]").is_err());
        assert!(parse_line(br#"{"response": {}}"#).is_err());
        assert!(parse_line(br#"{"response": {"usage": {"prompt_tokens": 3}}}"#).is_err());
        assert!(parse_line(br#"{"request": {"model": "m", "messages": "x"}}"#).is_err());
    }
}
