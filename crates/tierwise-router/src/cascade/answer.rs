//! What the scorer reads: the request ([`Query`], once per request) and each upstream answer
//! ([`Answer`], a chat completion or a Responses object), plus a small JSON-schema check for
//! `response_format` and tool arguments.

use serde_json::{Map, Value};
use tierwise_core::request::{RequestError, RequestView};
use tierwise_core::signals::looks_like_math;

use super::text::{Expect, expect_of, numbers};

/// What the client asked the answer to be, besides text.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum JsonWant {
    #[default]
    None,
    /// `json_object`: any JSON object.
    Object,
    /// `json_schema`: JSON fitting this schema.
    Schema(Value),
}

/// What the scorer needs from a request: computed once, reused for every attempt.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Query {
    pub expect: Expect,
    pub json: JsonWant,
    /// Tools offered: name → parameters schema.
    pub tools: Vec<(String, Value)>,
    /// `tool_choice` requires a call (`required`, or a named function: `Some(name)`).
    pub tool_required: Option<Option<String>>,
}

impl Query {
    /// From a request view (no `response_format` schema: a structured-output request is
    /// checked as "any JSON").
    pub fn from_view(view: &RequestView) -> Query {
        let mut q = Query::from_parts(
            view.last_user_text(),
            &view.tools,
            view.tool_choice.as_ref(),
        );
        if view.structured_output {
            q.json = JsonWant::Object;
        }
        q
    }

    /// From a chat completions or Responses request body.
    pub fn from_body(body: &Value) -> Result<Query, RequestError> {
        let view = if body.get("messages").is_some() {
            RequestView::chat(body)?
        } else {
            RequestView::responses(body)?
        };
        let mut q = Query::from_view(&view);
        let format = body
            .get("response_format")
            .or_else(|| body.pointer("/text/format"));
        q.json = match format.and_then(|f| f.get("type")).and_then(Value::as_str) {
            Some("json_object") => JsonWant::Object,
            Some("json_schema") => {
                let f = format.unwrap_or(&Value::Null);
                match f.pointer("/json_schema/schema").or_else(|| f.get("schema")) {
                    Some(s) => JsonWant::Schema(s.clone()),
                    None => JsonWant::Object,
                }
            }
            _ => q.json,
        };
        Ok(q)
    }

    fn from_parts(prompt: &str, tools: &[Value], tool_choice: Option<&Value>) -> Query {
        let lower = prompt.to_ascii_lowercase();
        let numeric = looks_like_math(prompt)
            || (numbers(prompt).len() >= 2
                && ["how many", "how much", "total", "calculate"]
                    .iter()
                    .any(|p| lower.contains(p)));
        let tools = tools
            .iter()
            .filter_map(|t| {
                let f = t.get("function").unwrap_or(t);
                let name = f.get("name")?.as_str()?.to_string();
                Some((name, f.get("parameters").cloned().unwrap_or(Value::Null)))
            })
            .collect();
        let tool_required = match tool_choice {
            Some(Value::String(s)) if s == "required" => Some(None),
            Some(v @ Value::Object(_)) => v
                .pointer("/function/name")
                .or_else(|| v.get("name"))
                .and_then(Value::as_str)
                .map(|n| Some(n.to_string())),
            _ => None,
        };
        Query {
            expect: expect_of(prompt, numeric),
            json: JsonWant::None,
            tools,
            tool_required,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub name: String,
    /// The arguments as the model wrote them (a JSON text).
    pub arguments: String,
}

/// One upstream answer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Answer {
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
    /// `stop`, `length`, `content_filter`, `tool_calls` (Responses `incomplete` maps to `length`
    /// or `content_filter`).
    pub finish_reason: Option<String>,
    /// The model's refusal message, when the API returns one.
    pub refusal: Option<String>,
    /// Token log-probabilities, when returned.
    pub logprobs: Vec<f64>,
    /// The body is not a completion we can read (no choices / output).
    pub malformed: bool,
}

impl Answer {
    /// An answer that is only text (offline data).
    pub fn from_text(text: &str) -> Answer {
        Answer {
            text: text.to_string(),
            ..Answer::default()
        }
    }

    /// From a chat completion (`choices[0]`) or a Responses object (`output`). Anything else is
    /// an answer marked `malformed` (a rejection, never an error).
    pub fn from_response(v: &Value) -> Answer {
        if let Some(choice) = v
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
        {
            return Answer::from_choice(choice);
        }
        if let Some(output) = v.get("output").and_then(Value::as_array) {
            return Answer::from_output(v, output);
        }
        Answer {
            malformed: true,
            ..Answer::default()
        }
    }

    fn from_choice(choice: &Value) -> Answer {
        let msg = choice.get("message").unwrap_or(&Value::Null);
        let text = match msg.get("content") {
            Some(c @ (Value::String(_) | Value::Array(_))) => {
                tierwise_core::tokens::content_text(c)
            }
            _ => String::new(),
        };
        let tool_calls = msg
            .get("tool_calls")
            .and_then(Value::as_array)
            .map(|calls| {
                calls
                    .iter()
                    .map(|c| ToolCall {
                        name: c
                            .pointer("/function/name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        arguments: c
                            .pointer("/function/arguments")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let logprobs = choice
            .pointer("/logprobs/content")
            .and_then(Value::as_array)
            .map(|toks| {
                toks.iter()
                    .filter_map(|t| t.get("logprob").and_then(Value::as_f64))
                    .collect()
            })
            .unwrap_or_default();
        Answer {
            text,
            tool_calls,
            finish_reason: choice
                .get("finish_reason")
                .and_then(Value::as_str)
                .map(str::to_string),
            refusal: msg
                .get("refusal")
                .and_then(Value::as_str)
                .filter(|r| !r.is_empty())
                .map(str::to_string),
            logprobs,
            malformed: false,
        }
    }

    fn from_output(v: &Value, output: &[Value]) -> Answer {
        let mut a = Answer::default();
        for item in output {
            match item.get("type").and_then(Value::as_str) {
                Some("message") => {
                    for part in item
                        .get("content")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        match part.get("type").and_then(Value::as_str) {
                            Some("output_text") => {
                                if !a.text.is_empty() {
                                    a.text.push('\n');
                                }
                                a.text.push_str(
                                    part.get("text").and_then(Value::as_str).unwrap_or(""),
                                );
                                for lp in part
                                    .get("logprobs")
                                    .and_then(Value::as_array)
                                    .into_iter()
                                    .flatten()
                                {
                                    if let Some(x) = lp.get("logprob").and_then(Value::as_f64) {
                                        a.logprobs.push(x);
                                    }
                                }
                            }
                            Some("refusal") => {
                                a.refusal = part
                                    .get("refusal")
                                    .and_then(Value::as_str)
                                    .map(str::to_string);
                            }
                            _ => {}
                        }
                    }
                }
                Some("function_call") => a.tool_calls.push(ToolCall {
                    name: item
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    arguments: item
                        .get("arguments")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                }),
                _ => {}
            }
        }
        a.finish_reason = match v.get("status").and_then(Value::as_str) {
            Some("incomplete") => Some(
                match v
                    .pointer("/incomplete_details/reason")
                    .and_then(Value::as_str)
                {
                    Some("content_filter") => "content_filter",
                    _ => "length",
                }
                .to_string(),
            ),
            Some("completed") => Some(
                if a.tool_calls.is_empty() {
                    "stop"
                } else {
                    "tool_calls"
                }
                .to_string(),
            ),
            _ => None,
        };
        a
    }
}

/// Whether `v` fits `schema` (the JSON-schema subset structured outputs use: `type`,
/// `properties`, `required`, `additionalProperties: false`, `items`, `enum`, `const`,
/// `anyOf`/`oneOf`, local `$ref` into `$defs`/`definitions`). Unknown keywords pass.
pub fn fits(v: &Value, schema: &Value) -> bool {
    fits_in(v, schema, schema, 0)
}

fn fits_in(v: &Value, schema: &Value, root: &Value, depth: usize) -> bool {
    if depth > 32 {
        return true;
    }
    let Some(s) = schema.as_object() else {
        return true;
    };
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let target = r.strip_prefix('#').and_then(|p| root.pointer(p));
        return target.is_none_or(|t| fits_in(v, t, root, depth + 1));
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(alts) = s.get(key).and_then(Value::as_array)
            && !alts.iter().any(|a| fits_in(v, a, root, depth + 1))
        {
            return false;
        }
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array)
        && !e.contains(v)
    {
        return false;
    }
    if let Some(c) = s.get("const")
        && c != v
    {
        return false;
    }
    let type_ok = |t: &str| match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.as_f64().is_some_and(|x| x.fract() == 0.0),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => true,
    };
    match s.get("type") {
        Some(Value::String(t)) if !type_ok(t) => return false,
        Some(Value::Array(ts)) if !ts.iter().filter_map(Value::as_str).any(type_ok) => {
            return false;
        }
        _ => {}
    }
    if let Some(obj) = v.as_object() {
        return object_fits(obj, s, root, depth);
    }
    if let (Some(items), Some(arr)) = (s.get("items"), v.as_array()) {
        return arr.iter().all(|x| fits_in(x, items, root, depth + 1));
    }
    true
}

fn object_fits(
    obj: &Map<String, Value>,
    s: &Map<String, Value>,
    root: &Value,
    depth: usize,
) -> bool {
    let props = s.get("properties").and_then(Value::as_object);
    for r in s
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(name) = r.as_str()
            && !obj.contains_key(name)
        {
            return false;
        }
    }
    let closed = s.get("additionalProperties") == Some(&Value::Bool(false));
    for (k, x) in obj {
        match props.and_then(|p| p.get(k)) {
            Some(ps) if !fits_in(x, ps, root, depth + 1) => return false,
            Some(_) => {}
            None if closed => return false,
            None => {}
        }
    }
    true
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_chat_and_responses_bodies() {
        let a = Answer::from_response(
            &json!({"choices": [{"finish_reason": "length", "message": {"role": "assistant", "content": "hi"},
            "logprobs": {"content": [{"token": "hi", "logprob": -0.5}]}}]}),
        );
        assert_eq!(
            (
                a.text.as_str(),
                a.finish_reason.as_deref(),
                a.logprobs.len()
            ),
            ("hi", Some("length"), 1)
        );
        let r = Answer::from_response(&json!({"object": "response", "status": "incomplete",
            "incomplete_details": {"reason": "max_output_tokens"},
            "output": [{"type": "message", "content": [{"type": "output_text", "text": "partial"}]},
                       {"type": "function_call", "name": "f", "arguments": "{}"}]}));
        assert_eq!(r.text, "partial");
        assert_eq!(r.finish_reason.as_deref(), Some("length"));
        assert_eq!(r.tool_calls.len(), 1);
        assert!(Answer::from_response(&json!({"error": "x"})).malformed);
    }

    #[test]
    fn query_reads_format_and_tools() {
        let q = Query::from_body(&json!({"model": "auto", "messages": [{"role": "user", "content": "give json"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "required": ["a"]}}},
            "tools": [{"type": "function", "function": {"name": "get", "parameters": {"type": "object"}}}],
            "tool_choice": "required"}))
        .unwrap();
        assert!(matches!(q.json, JsonWant::Schema(_)));
        assert_eq!(q.tools[0].0, "get");
        assert_eq!(q.tool_required, Some(None));
        let r = Query::from_body(
            &json!({"model": "auto", "input": "hi", "text": {"format": {"type": "json_object"}}}),
        )
        .unwrap();
        assert_eq!(r.json, JsonWant::Object);
    }

    #[test]
    fn schema_subset() {
        let s = json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"enum": ["x", "y"]},
            "c": {"type": "array", "items": {"$ref": "#/$defs/n"}}}, "required": ["a"], "additionalProperties": false,
            "$defs": {"n": {"type": "number"}}});
        assert!(fits(&json!({"a": 1, "b": "x", "c": [1.5]}), &s));
        assert!(!fits(&json!({"b": "x"}), &s), "missing required");
        assert!(!fits(&json!({"a": 1.5}), &s), "not an integer");
        assert!(!fits(&json!({"a": 1, "b": "z"}), &s), "not in enum");
        assert!(!fits(&json!({"a": 1, "d": 0}), &s), "closed object");
        assert!(!fits(&json!({"a": 1, "c": ["s"]}), &s), "ref item type");
    }
}
