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

/// The top-level fields of a line the audit reads (`None`: absent).
#[derive(Default)]
struct Fields {
    request: Option<Value>,
    /// Only `model`, `usage`, `service_tier` and `created` of an object response are kept.
    response: Option<Value>,
    timestamp: Option<Value>,
    metadata: Option<Value>,
    usage_estimated: Option<Value>,
}

/// The fields, read without building the parts the audit does not use (the response's
/// answer, unknown keys): those are still fully checked — [`Skip`] visits every string and
/// number as a `Value` parse would — but not stored. `None` when the line is not a JSON object
/// (or has a non-object, non-null response): the caller then takes the `Value` path, so errors
/// read exactly as before.
/// The line is checked as UTF-8 once, up front (then parsed as a `str`, so strings are not
/// re-checked one by one); a line that is not UTF-8 takes the `Value` path.
fn fields_fast(line: &[u8]) -> Option<Fields> {
    let text = std::str::from_utf8(line).ok()?;
    serde_json::from_str::<FieldsSeed>(text).ok().map(|f| f.0)
}

/// [`Fields`] by parsing the whole line as a `Value` (the reference path).
fn fields_slow(line: &[u8]) -> Result<Fields, String> {
    let mut v: Value = serde_json::from_slice(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let obj = v.as_object_mut().ok_or("not a JSON object")?;
    Ok(Fields {
        request: obj.remove("request"),
        response: obj.remove("response"),
        timestamp: obj.remove("timestamp"),
        metadata: obj.remove("metadata"),
        usage_estimated: obj.remove("usage_estimated"),
    })
}

struct FieldsSeed(Fields);

impl<'de> serde::Deserialize<'de> for FieldsSeed {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FieldsVisitor)
    }
}

struct FieldsVisitor;

impl<'de> serde::de::Visitor<'de> for FieldsVisitor {
    type Value = FieldsSeed;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<FieldsSeed, A::Error> {
        let mut f = Fields::default();
        // duplicate keys: the last wins, as in a `Value` map
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Request => f.request = Some(map.next_value()?),
                Key::Response => f.response = Some(map.next_value::<LiteResponse>()?.0),
                Key::Timestamp => f.timestamp = Some(map.next_value()?),
                Key::Metadata => f.metadata = Some(map.next_value()?),
                Key::UsageEstimated => f.usage_estimated = Some(map.next_value()?),
                Key::Other => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        Ok(FieldsSeed(f))
    }
}

enum Key {
    Request,
    Response,
    Timestamp,
    Metadata,
    UsageEstimated,
    Other,
}

impl<'de> serde::Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: serde::de::Error>(self, k: &str) -> Result<Key, E> {
                Ok(match k {
                    "request" => Key::Request,
                    "response" => Key::Response,
                    "timestamp" => Key::Timestamp,
                    "metadata" => Key::Metadata,
                    "usage_estimated" => Key::UsageEstimated,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_str(V)
    }
}

/// A response: `null`, or an object of which `model`, `usage`, `service_tier`, `created` are
/// kept. Anything else is an error (the caller falls back to the `Value` path).
struct LiteResponse(Value);

impl<'de> serde::Deserialize<'de> for LiteResponse {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = LiteResponse;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object or null")
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<LiteResponse, E> {
                Ok(LiteResponse(Value::Null))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<LiteResponse, A::Error> {
                let mut kept = Map::new();
                while let Some(key) = map.next_key::<String>()? {
                    if matches!(key.as_str(), "model" | "usage" | "service_tier" | "created") {
                        kept.insert(key, map.next_value()?);
                    } else {
                        map.next_value::<Skip>()?;
                    }
                }
                Ok(LiteResponse(Value::Object(kept)))
            }
        }
        d.deserialize_any(V)
    }
}

/// Any JSON value, checked as a `Value` parse checks it (strings decoded, numbers converted)
/// and dropped.
struct Skip;

impl<'de> serde::Deserialize<'de> for Skip {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> serde::de::Visitor<'de> for SkipVisitor {
    type Value = Skip;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        // keys are strings, decoded like any string
        while map.next_key::<Skip>()?.is_some() {
            map.next_value::<Skip>()?;
        }
        Ok(Skip)
    }
}

/// Parses one log line. `Err` carries a short reason for the malformed-line report.
pub fn parse_line(line: &[u8]) -> Result<Call, String> {
    let fields = match fields_fast(line) {
        Some(f) => f,
        None => fields_slow(line)?,
    };
    from_fields(fields)
}

fn from_fields(f: Fields) -> Result<Call, String> {
    let response = f.response.filter(|r| !r.is_null());
    let has_content = f.request.as_ref().is_some_and(|r| !r.is_null());
    let mut request = match f.request {
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
    if let Some(Value::Object(line_meta)) = f.metadata {
        merge_metadata(&mut request, line_meta);
    }
    let ts_ms = f.timestamp.as_ref().and_then(time_of).or_else(|| {
        response
            .as_ref()
            .and_then(|r| r.get("created"))
            .and_then(time_of)
    });
    let is_responses = request.get("messages").is_none() && request.get("input").is_some();
    let request_tier: Option<String> = request
        .get("service_tier")
        .and_then(Value::as_str)
        .map(str::to_string);
    let view = if !has_content {
        empty_view(&request)
    } else if is_responses {
        RequestView::responses(&request)
    } else {
        // the request is not read again: its messages and tools move into the view
        RequestView::chat_owned(request)
    }
    .map_err(|e| format!("request: {e}"))?;
    let marked_estimated = f
        .usage_estimated
        .as_ref()
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
        .or(request_tier.as_deref());
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

    /// The fast field reader and the `Value` path give the same calls and the same errors.
    #[test]
    fn fast_fields_read_like_the_value_path() {
        let reference = |line: &[u8]| format!("{:?}", fields_slow(line).and_then(from_fields));
        let fast = |line: &[u8]| format!("{:?}", parse_line(line));
        let workload = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/workload.jsonl.gz");
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::MultiGzDecoder::new(std::fs::File::open(workload).unwrap()),
            &mut text,
        )
        .unwrap();
        let lines: Vec<&str> = text.lines().step_by(7).collect();
        assert!(lines.len() > 300);
        let odd: [&[u8]; 12] = [
            br#"{"request": {"model": "m", "messages": [{"role": "user", "content": "hi"}]}, "response": {"model": "m", "choices": [{"message": {"content": "bad \ud800 surrogate"}}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}}"#,
            br#"{"request": {"model": "m", "messages": [{"role": "user", "content": "hi"}]}, "response": {"model": "m", "logprob": 1e999, "usage": {"prompt_tokens": 1}}}"#,
            br#"{"request": {"model": "m", "messages": [{"role": "user", "content": "hi"}]}, "extra": {"x": [1, 2, {"y": "\u00e9"}]}, "response": "text"}"#,
            br#"{"request": {"model": "m", "messages": [{"role": "user", "content": "hi"}]}, "request": null, "response": {"model": "a", "usage": {"prompt_tokens": 4, "completion_tokens": 1}}}"#,
            br#"{"response": {"model": "m", "usage": {"prompt_tokens": 3}, "model": ""}, "metadata": {"category": "x"}, "metadata": 3}"#,
            br#"{"request": {"model": "m", "messages": [{"role": "user", "content": "hi"}]}, "timestamp": 1700000000, "usage_estimated": true} trailing"#,
            br#"{"request": {"model": "m", "messages": [{"role": "user", "content": "hi"}]}, "response": [1]}"#,
            br#"{"request": {"model": "m", "input": "hi", "service_tier": "flex"}, "response": null, "timestamp": "2026-01-02T03:04:05Z"}"#,
            br#"{"request": {"model": "m", "messages": [{"role": "user", "content": "hi"}]}, "k": ""}"#,
            b"[1, 2]",
            b"{\"request\": 1}",
            b"",
        ];
        for line in lines.iter().map(|l| l.as_bytes()).chain(odd) {
            assert_eq!(
                fast(line),
                reference(line),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
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
