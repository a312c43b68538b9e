//! Checkable answers, compared without a judge (the cheapest verdict, tried first).
//!
//! An answer is read into [`Answer`] (its text and its tool calls, from a chat completion or a
//! Responses object). Two answers are checkable, in this order, when:
//! 1. **tool calls**: either calls a tool. Agreement: the same calls (function names and
//!    arguments, arguments compared as parsed JSON), in any order.
//! 2. **json**: the request asked for structured output (`response_format` / `text.format`
//!    of type `json_schema` or `json_object`), or both texts parse as a JSON object or array.
//!    Agreement: field by field, every field equal (numbers by value, so `1` = `1.0`).
//! 3. **number**: both texts are one number (thousands separators, a leading `$`, a trailing
//!    `%` or `.` allowed). Agreement: equal to 1e-9 relative.
//! 4. **label**: both texts are short (at most 3 words, 40 characters, one line): a label from
//!    a closed set (`positive`, `B`, `yes`). Agreement: equal after lower-casing and trimming
//!    quotes, spaces and end punctuation.
//!
//! Anything else (free text) is judged (`crate::judge`).

use serde_json::Value;

/// What kind of check compared two answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    ToolCalls,
    Json,
    Number,
    Label,
}

impl CheckKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::ToolCalls => "tool_calls",
            CheckKind::Json => "json",
            CheckKind::Number => "number",
            CheckKind::Label => "label",
        }
    }
}

/// A check's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    pub kind: CheckKind,
    pub agree: bool,
}

/// One tool call of an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub name: String,
    /// Parsed arguments; a string that is not JSON stays a JSON string.
    pub arguments: Value,
}

/// The comparable parts of an answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
}

fn parse_args(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string()))
}

impl Answer {
    /// Reads a complete chat completion (first choice) or Responses object.
    pub fn from_response(v: &Value) -> Answer {
        let mut a = Answer::default();
        if let Some(msg) = v.pointer("/choices/0/message") {
            if let Some(s) = msg.get("content").and_then(Value::as_str) {
                a.text.push_str(s);
            }
            for call in msg
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(f) = call.get("function") {
                    a.tool_calls.push(ToolCall {
                        name: f.get("name").and_then(Value::as_str).unwrap_or("").into(),
                        arguments: parse_args(
                            f.get("arguments").and_then(Value::as_str).unwrap_or(""),
                        ),
                    });
                }
            }
        }
        for item in v
            .get("output")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            match item.get("type").and_then(Value::as_str) {
                Some("message") => {
                    for part in item
                        .get("content")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        if let Some(s) = part.get("text").and_then(Value::as_str) {
                            a.text.push_str(s);
                        }
                    }
                }
                Some("function_call") => a.tool_calls.push(ToolCall {
                    name: item
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .into(),
                    arguments: parse_args(
                        item.get("arguments").and_then(Value::as_str).unwrap_or(""),
                    ),
                }),
                _ => {}
            }
        }
        a
    }

    /// An answer that is text only (a relayed stream's assembled text).
    pub fn text(text: impl Into<String>) -> Answer {
        Answer {
            text: text.into(),
            tool_calls: Vec::new(),
        }
    }
}

/// Whether the request asked for a JSON answer (chat `response_format`, Responses
/// `text.format`).
pub fn wants_json(request: &Value) -> bool {
    let ty = request
        .pointer("/response_format/type")
        .or_else(|| request.pointer("/text/format/type"))
        .and_then(Value::as_str);
    matches!(ty, Some("json_schema" | "json_object"))
}

/// JSON equality with numbers compared by value.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => same_number(x, y),
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_json(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        (Value::String(x), Value::String(y)) => x.trim() == y.trim(),
        _ => a == b,
    }
}

fn same_number(x: f64, y: f64) -> bool {
    (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)
}

/// The text as one number, if it is one.
fn number(text: &str) -> Option<f64> {
    let t = text.trim();
    let t = t.strip_suffix('.').unwrap_or(t);
    let t = t.strip_suffix('%').unwrap_or(t);
    let t = t.strip_prefix('$').unwrap_or(t);
    let t: String = t.chars().filter(|c| *c != ',').collect();
    if t.is_empty() || t.chars().any(char::is_whitespace) {
        return None;
    }
    t.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// The JSON object or array a text holds (a fenced ```json block is unwrapped).
fn json_of(text: &str) -> Option<Value> {
    let t = text.trim();
    let t = t
        .strip_prefix("```json")
        .or_else(|| t.strip_prefix("```"))
        .and_then(|s| s.strip_suffix("```"))
        .unwrap_or(t)
        .trim();
    serde_json::from_str::<Value>(t)
        .ok()
        .filter(|v| v.is_object() || v.is_array())
}

/// The text as a label (short, one line), normalised.
fn label(text: &str) -> Option<String> {
    let t = text.trim();
    if t.is_empty() || t.len() > 40 || t.contains('\n') || t.split_whitespace().count() > 3 {
        return None;
    }
    let t = t.trim_matches(|c: char| c.is_whitespace() || "\"'`.,;:!?*".contains(c));
    (!t.is_empty()).then(|| t.to_lowercase())
}

fn same_calls(a: &[ToolCall], b: &[ToolCall]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut used = vec![false; b.len()];
    a.iter().all(|x| {
        let found = b
            .iter()
            .enumerate()
            .find(|(i, y)| !used[*i] && x.name == y.name && same_json(&x.arguments, &y.arguments));
        match found {
            Some((i, _)) => {
                used[i] = true;
                true
            }
            None => false,
        }
    })
}

/// Compares two answers to `request` when they are checkable (see the module doc); `None`:
/// they need a judge.
pub fn check(request: &Value, served: &Answer, candidate: &Answer) -> Option<Checked> {
    let done = |kind, agree| Some(Checked { kind, agree });
    if !served.tool_calls.is_empty() || !candidate.tool_calls.is_empty() {
        return done(
            CheckKind::ToolCalls,
            same_calls(&served.tool_calls, &candidate.tool_calls),
        );
    }
    let (js, jc) = (json_of(&served.text), json_of(&candidate.text));
    if wants_json(request) {
        return done(
            CheckKind::Json,
            matches!((&js, &jc), (Some(a), Some(b)) if same_json(a, b)),
        );
    }
    if let (Some(a), Some(b)) = (&js, &jc) {
        return done(CheckKind::Json, same_json(a, b));
    }
    if let (Some(a), Some(b)) = (number(&served.text), number(&candidate.text)) {
        return done(CheckKind::Number, same_number(a, b));
    }
    if let (Some(a), Some(b)) = (label(&served.text), label(&candidate.text)) {
        return done(CheckKind::Label, a == b);
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use serde_json::json;

    use super::*;

    fn t(s: &str) -> Answer {
        Answer::text(s)
    }

    #[test]
    fn labels_numbers_json_and_free_text() {
        let req = json!({});
        let c = |a: &str, b: &str| check(&req, &t(a), &t(b));
        assert_eq!(
            c("Positive.", " positive"),
            Some(Checked {
                kind: CheckKind::Label,
                agree: true
            })
        );
        assert_eq!(c("positive", "negative").map(|c| c.agree), Some(false));
        assert_eq!(
            c("1,234.5", "1234.50"),
            Some(Checked {
                kind: CheckKind::Number,
                agree: true
            })
        );
        assert_eq!(c("42", "41").map(|c| c.agree), Some(false));
        // a number and a word: both labels
        assert_eq!(c("42", "forty-two").map(|c| c.kind), Some(CheckKind::Label));
        assert_eq!(
            c(
                r#"{"a": 1, "b": [1, 2]}"#,
                "```json\n{\"b\": [1, 2.0], \"a\": 1.0}\n```"
            ),
            Some(Checked {
                kind: CheckKind::Json,
                agree: true
            })
        );
        assert_eq!(
            c(r#"{"a": 1}"#, r#"{"a": 2}"#).map(|c| c.agree),
            Some(false)
        );
        assert_eq!(
            c(r#"{"a": 1}"#, r#"{"a": 1, "b": 2}"#).map(|c| c.agree),
            Some(false)
        );
        assert_eq!(
            c(
                "The capital of France is Paris.",
                "Paris is the capital of France."
            ),
            None
        );
    }

    #[test]
    fn structured_output_that_does_not_parse_disagrees() {
        let req = json!({"response_format": {"type": "json_object"}});
        let r = check(&req, &t(r#"{"a": 1}"#), &t("sorry, I cannot")).unwrap();
        assert_eq!((r.kind, r.agree), (CheckKind::Json, false));
    }

    #[test]
    fn tool_calls_compare_names_and_parsed_arguments_in_any_order() {
        let chat = |calls: Value| json!({"choices": [{"message": {"content": null, "tool_calls": calls}}]});
        let a = Answer::from_response(&chat(json!([
            {"id": "1", "type": "function", "function": {"name": "get", "arguments": "{\"city\": \"Paris\", \"days\": 2}"}},
            {"id": "2", "type": "function", "function": {"name": "put", "arguments": "{}"}}
        ])));
        let b = Answer::from_response(&chat(json!([
            {"id": "x", "type": "function", "function": {"name": "put", "arguments": "{ }"}},
            {"id": "y", "type": "function", "function": {"name": "get", "arguments": "{\"days\":2,\"city\":\"Paris\"}"}}
        ])));
        let r = check(&json!({}), &a, &b).unwrap();
        assert_eq!((r.kind, r.agree), (CheckKind::ToolCalls, true));
        // a text answer where the other calls a tool: disagree
        let r = check(&json!({}), &a, &t("sure")).unwrap();
        assert_eq!((r.kind, r.agree), (CheckKind::ToolCalls, false));
    }

    #[test]
    fn responses_objects_are_read() {
        let v = json!({"output": [
            {"type": "reasoning", "summary": []},
            {"type": "message", "content": [{"type": "output_text", "text": "B"}]},
            {"type": "function_call", "name": "f", "arguments": "{\"x\":1}"}
        ]});
        let a = Answer::from_response(&v);
        assert_eq!(a.text, "B");
        assert_eq!(a.tool_calls[0].name, "f");
        assert_eq!(a.tool_calls[0].arguments, json!({"x": 1}));
    }
}
