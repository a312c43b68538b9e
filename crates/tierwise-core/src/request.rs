//! A validated, read-only view of a request body. The body itself stays a `serde_json::Value`
//! so every field the gateway does not touch is forwarded exactly as the client sent it.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::tokens::{content_text, fields_of};

/// Which OpenAI endpoint the body is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    ChatCompletions,
    Responses,
}

/// One conversation turn, as text.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub role: String,
    pub text: String,
    /// Names of tools this turn called (assistant turns).
    pub tool_calls: Vec<String>,
}

/// What the router and the gateway read from a request.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestView {
    pub api: Api,
    pub model: String,
    pub turns: Vec<Turn>,
    /// The raw `messages` (chat) or the normalised input items (Responses), for token counting.
    pub messages: Vec<Value>,
    pub stream: bool,
    /// Shared, read-only: a caller that reads many requests with the same tool schemas (the
    /// audit) hands every view the same list instead of a copy.
    pub tools: Arc<[Value]>,
    /// `response_format` (chat) / `text.format` (Responses) asks for JSON.
    pub structured_output: bool,
    pub metadata: Option<Map<String, Value>>,
    pub tool_choice: Option<Value>,
}

/// The top-level fields of a chat completions body that [`RequestView::chat`] reads (`None`:
/// absent), for [`RequestView::chat_fields`]. Other fields play no part in the view.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatFields {
    pub model: Option<Value>,
    pub messages: Option<Value>,
    pub stream: Option<Value>,
    pub tools: Option<Value>,
    pub response_format: Option<Value>,
    pub metadata: Option<Value>,
    pub tool_choice: Option<Value>,
}

impl ChatFields {
    /// The field named `key` (a body's top-level key), if it is one of these and present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match key {
            "model" => self.model.as_ref(),
            "messages" => self.messages.as_ref(),
            "stream" => self.stream.as_ref(),
            "tools" => self.tools.as_ref(),
            "response_format" => self.response_format.as_ref(),
            "metadata" => self.metadata.as_ref(),
            "tool_choice" => self.tool_choice.as_ref(),
            _ => None,
        }
    }

    /// The slot of the field named `key`, if it is one of these.
    pub fn slot(&mut self, key: &str) -> Option<&mut Option<Value>> {
        Some(match key {
            "model" => &mut self.model,
            "messages" => &mut self.messages,
            "stream" => &mut self.stream,
            "tools" => &mut self.tools,
            "response_format" => &mut self.response_format,
            "metadata" => &mut self.metadata,
            "tool_choice" => &mut self.tool_choice,
            _ => return None,
        })
    }
}

/// A client error in the request body, in OpenAI's terms.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    pub message: String,
    /// The offending parameter, e.g. `messages`.
    pub param: Option<String>,
    /// OpenAI's code, e.g. `missing_required_parameter`, `invalid_type`.
    pub code: &'static str,
}

impl RequestError {
    fn missing(param: &str) -> RequestError {
        RequestError {
            message: format!("Missing required parameter: '{param}'."),
            param: Some(param.to_string()),
            code: "missing_required_parameter",
        }
    }
    fn invalid_type(param: &str, expected: &str) -> RequestError {
        RequestError {
            message: format!("Invalid type for '{param}': expected {expected}."),
            param: Some(param.to_string()),
            code: "invalid_type",
        }
    }
    fn invalid_value(param: &str, message: String) -> RequestError {
        RequestError {
            message,
            param: Some(param.to_string()),
            code: "invalid_value",
        }
    }
}

impl RequestView {
    /// Reads a chat completions body.
    pub fn chat(body: &Value) -> Result<RequestView, RequestError> {
        let mut view = Self::chat_checked(body)?;
        if let Some(Value::Array(a)) = body.get("messages") {
            view.messages = a.clone();
        }
        if let Some(Value::Array(a)) = body.get("tools") {
            view.tools = a.as_slice().into();
        }
        Ok(view)
    }

    /// [`RequestView::chat`] of a body the caller gives away: the same view (same checks, same
    /// errors), with `messages` and `tools` moved out of the body instead of copied.
    pub fn chat_owned(mut body: Value) -> Result<RequestView, RequestError> {
        let mut view = Self::chat_checked(&body)?;
        if let Some(obj) = body.as_object_mut() {
            if let Some(Value::Array(a)) = obj.get_mut("messages") {
                view.messages = std::mem::take(a);
            }
            if let Some(Value::Array(a)) = obj.get_mut("tools") {
                view.tools = std::mem::take(a).into();
            }
        }
        Ok(view)
    }

    /// [`RequestView::chat`] of a body given as its fields (e.g. by a parser that reads a log
    /// line without building the body): the same view, checks and errors as for the body
    /// holding these fields, with `messages` and `tools` moved into the view.
    pub fn chat_fields(mut f: ChatFields) -> Result<RequestView, RequestError> {
        // `metadata` is checked last (as in `chat_checked_by`) and moved, not copied;
        // `tool_choice` is not checked
        let metadata = f.metadata.take();
        let tool_choice = f.tool_choice.take();
        let mut view = Self::chat_checked_by(|k| f.get(k))?;
        view.metadata = metadata_owned(metadata)?;
        view.tool_choice = tool_choice;
        if let Some(Value::Array(a)) = f.messages.as_mut() {
            view.messages = std::mem::take(a);
        }
        if let Some(Value::Array(a)) = f.tools.as_mut() {
            view.tools = std::mem::take(a).into();
        }
        Ok(view)
    }

    /// Everything of [`RequestView::chat`] but copying `messages` and `tools` (left empty).
    fn chat_checked(body: &Value) -> Result<RequestView, RequestError> {
        let obj = body
            .as_object()
            .ok_or_else(|| RequestError::invalid_type("body", "a JSON object"))?;
        Self::chat_checked_by(|k| obj.get(k))
    }

    /// [`RequestView::chat_checked`] of the body whose top-level fields `get` reads.
    fn chat_checked_by<'a>(
        get: impl Fn(&str) -> Option<&'a Value>,
    ) -> Result<RequestView, RequestError> {
        let model = match get("model") {
            None => return Err(RequestError::missing("model")),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(RequestError::invalid_type("model", "a string")),
        };
        let messages = match get("messages") {
            None => return Err(RequestError::missing("messages")),
            Some(Value::Array(a)) => a,
            Some(_) => return Err(RequestError::invalid_type("messages", "an array")),
        };
        if messages.is_empty() {
            return Err(RequestError::invalid_value(
                "messages",
                "Invalid 'messages': empty array. Expected an array with minimum length 1.".into(),
            ));
        }
        let mut turns = Vec::with_capacity(messages.len());
        for (i, m) in messages.iter().enumerate() {
            // named only when a check fails (no allocation per message otherwise)
            let param = || format!("messages[{i}]");
            if !m.is_object() {
                return Err(RequestError::invalid_type(&param(), "an object"));
            }
            let [role, content, tool_calls] = fields_of(m, ["role", "content", "tool_calls"]);
            let role = match role {
                Some(Value::String(r)) => r.clone(),
                Some(_) => {
                    return Err(RequestError::invalid_type(
                        &format!("{}.role", param()),
                        "a string",
                    ));
                }
                None => return Err(RequestError::missing(&format!("{}.role", param()))),
            };
            if !matches!(
                role.as_str(),
                "system" | "developer" | "user" | "assistant" | "tool" | "function"
            ) {
                return Err(RequestError::invalid_value(
                    &format!("{}.role", param()),
                    format!("Invalid value for '{}.role': {role:?}.", param()),
                ));
            }
            let text = match content {
                None | Some(Value::Null) => String::new(),
                Some(c @ (Value::String(_) | Value::Array(_))) => content_text(c),
                Some(_) => {
                    return Err(RequestError::invalid_type(
                        &format!("{}.content", param()),
                        "a string or an array of content parts",
                    ));
                }
            };
            let tool_calls = tool_calls
                .and_then(Value::as_array)
                .map(|calls| {
                    calls
                        .iter()
                        .filter_map(|c| c.pointer("/function/name").and_then(Value::as_str))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            turns.push(Turn {
                role,
                text,
                tool_calls,
            });
        }
        let stream = match get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(RequestError::invalid_type("stream", "a boolean")),
        };
        match get("tools") {
            None | Some(Value::Null) | Some(Value::Array(_)) => {}
            Some(_) => return Err(RequestError::invalid_type("tools", "an array")),
        }
        let structured_output = get("response_format")
            .and_then(|f| f.get("type"))
            .and_then(Value::as_str)
            .is_some_and(|t| t == "json_schema" || t == "json_object");
        let metadata = metadata_in(get("metadata"))?;
        Ok(RequestView {
            api: Api::ChatCompletions,
            model,
            turns,
            messages: Vec::new(),
            stream,
            tools: Vec::new().into(),
            structured_output,
            metadata,
            tool_choice: get("tool_choice").cloned(),
        })
    }

    /// Reads a Responses API body (`input` as a string or a list of items, `instructions`).
    pub fn responses(body: &Value) -> Result<RequestView, RequestError> {
        let obj = body
            .as_object()
            .ok_or_else(|| RequestError::invalid_type("body", "a JSON object"))?;
        let model = match obj.get("model") {
            None => return Err(RequestError::missing("model")),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(RequestError::invalid_type("model", "a string")),
        };
        let mut messages = Vec::new();
        if let Some(instr) = obj.get("instructions").and_then(Value::as_str) {
            messages.push(serde_json::json!({"role": "system", "content": instr}));
        }
        match obj.get("input") {
            None => return Err(RequestError::missing("input")),
            Some(Value::String(s)) => {
                messages.push(serde_json::json!({"role": "user", "content": s}))
            }
            Some(Value::Array(items)) => {
                for item in items {
                    let role = item.get("role").and_then(Value::as_str);
                    let kind = item
                        .get("type")
                        .and_then(Value::as_str)
                        .unwrap_or("message");
                    match (role, kind) {
                        (Some(r), _) => {
                            let content = item.get("content").cloned().unwrap_or(Value::Null);
                            messages.push(serde_json::json!({"role": r, "content": content}));
                        }
                        (None, "function_call") => {
                            let name = item.get("name").cloned().unwrap_or(Value::Null);
                            let args = item.get("arguments").cloned().unwrap_or(Value::Null);
                            messages.push(serde_json::json!({"role": "assistant", "content": null,
                                "tool_calls": [{"type": "function", "function": {"name": name, "arguments": args}}]}));
                        }
                        (None, "function_call_output") => {
                            let out = item.get("output").cloned().unwrap_or(Value::Null);
                            messages.push(serde_json::json!({"role": "tool", "content": out}));
                        }
                        _ => {}
                    }
                }
            }
            Some(_) => return Err(RequestError::invalid_type("input", "a string or an array")),
        }
        let turns = messages
            .iter()
            .map(|m| Turn {
                role: m
                    .get("role")
                    .and_then(Value::as_str)
                    .unwrap_or("user")
                    .to_string(),
                text: m.get("content").map(content_text).unwrap_or_default(),
                tool_calls: m
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .map(|c| {
                        c.iter()
                            .filter_map(|c| c.pointer("/function/name").and_then(Value::as_str))
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect();
        let stream = obj.get("stream").and_then(Value::as_bool).unwrap_or(false);
        let tools: Arc<[Value]> = obj
            .get("tools")
            .and_then(Value::as_array)
            .map_or_else(|| Vec::new().into(), |a| a.as_slice().into());
        let structured_output = obj
            .get("text")
            .and_then(|t| t.pointer("/format/type"))
            .and_then(Value::as_str)
            .is_some_and(|t| t == "json_schema" || t == "json_object");
        let metadata = metadata_of(obj)?;
        Ok(RequestView {
            api: Api::Responses,
            model,
            turns,
            messages,
            stream,
            tools,
            structured_output,
            metadata,
            tool_choice: obj.get("tool_choice").cloned(),
        })
    }

    /// The text of the last user turn.
    pub fn last_user_text(&self) -> &str {
        self.turns
            .iter()
            .rev()
            .find(|t| t.role == "user")
            .map(|t| t.text.as_str())
            .unwrap_or("")
    }

    /// A metadata value as a string (OpenAI metadata values are strings; booleans tolerated).
    pub fn metadata_str(&self, key: &str) -> Option<String> {
        let m = self.metadata.as_ref()?;
        // keys are unique: a small map is searched in one pass, without hashing `key`
        let v = if m.len() <= 8 {
            m.iter().find(|(k, _)| k.as_str() == key)?.1
        } else {
            m.get(key)?
        };
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

fn metadata_of(obj: &Map<String, Value>) -> Result<Option<Map<String, Value>>, RequestError> {
    metadata_in(obj.get("metadata"))
}

/// [`metadata_in`] of a value the caller gives away (moved, not copied).
fn metadata_owned(metadata: Option<Value>) -> Result<Option<Map<String, Value>>, RequestError> {
    match metadata {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(RequestError::invalid_type("metadata", "an object")),
    }
}

fn metadata_in(metadata: Option<&Value>) -> Result<Option<Map<String, Value>>, RequestError> {
    match metadata {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m.clone())),
        Some(_) => Err(RequestError::invalid_type("metadata", "an object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chat_errors_name_the_parameter() {
        let e = RequestView::chat(&json!({"model": "auto"})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages"));
        let e = RequestView::chat(&json!({"model": 3, "messages": []})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("model"));
        let e = RequestView::chat(&json!({"model": "auto", "messages": "hi"})).unwrap_err();
        assert_eq!(e.code, "invalid_type");
        let e = RequestView::chat(&json!({"model": "auto", "messages": [{"content": "x"}]}))
            .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].role"));
    }

    #[test]
    fn chat_view() {
        let v = RequestView::chat(&json!({"model": "auto", "stream": true,
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            "response_format": {"type": "json_object"}, "metadata": {"category": "extraction"}}))
        .unwrap();
        assert!(v.stream && v.structured_output);
        assert_eq!(v.last_user_text(), "hi");
        assert_eq!(v.metadata_str("category").as_deref(), Some("extraction"));
    }

    #[test]
    fn chat_owned_is_chat() {
        let bodies = [
            json!({"model": "auto", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
                "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "auto", "metadata": {"a": "b"}}),
            json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}], "tools": null}),
            json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}], "tools": 3}),
            json!({"model": "auto", "messages": []}),
            json!({"model": "auto", "messages": [{"role": "wizard", "content": "hi"}]}),
            json!([1]),
        ];
        for b in bodies {
            assert_eq!(
                RequestView::chat_owned(b.clone()),
                RequestView::chat(&b),
                "{b}"
            );
        }
    }

    #[test]
    fn chat_fields_is_chat() {
        let bodies = [
            json!({"model": "auto", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
                "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "auto", "metadata": {"a": "b"},
                "stream": true, "response_format": {"type": "json_schema"}, "temperature": 0}),
            json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}], "tools": null}),
            json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}], "tools": 3}),
            json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}], "metadata": 3}),
            json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}], "metadata": null, "tool_choice": {"type": "function"}}),
            json!({"model": "auto", "messages": [], "metadata": 3}),
            json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}], "stream": "no", "metadata": 3}),
            json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}], "stream": "no"}),
            json!({"model": "auto", "messages": []}),
            json!({"model": "auto", "messages": [{"role": "wizard", "content": "hi"}]}),
            json!({"model": 1, "messages": [{"role": "user", "content": "hi"}]}),
            json!({"messages": [{"role": "user", "content": "hi"}]}),
        ];
        for b in bodies {
            let mut f = ChatFields::default();
            for (k, v) in b.as_object().unwrap() {
                if let Some(slot) = f.slot(k) {
                    *slot = Some(v.clone());
                }
            }
            assert_eq!(RequestView::chat_fields(f), RequestView::chat(&b), "{b}");
        }
    }

    #[test]
    fn metadata_str_small_and_large_maps() {
        for n in [0, 3, 8, 9, 30] {
            let mut m = Map::new();
            for i in 0..n {
                m.insert(format!("k{i}"), json!(format!("v{i}")));
            }
            m.insert("flag".into(), json!(true));
            m.insert("n".into(), json!(7));
            m.insert("o".into(), json!({}));
            let v = RequestView::chat(&json!({"model": "auto", "metadata": m,
                "messages": [{"role": "user", "content": "hi"}]}))
            .unwrap();
            assert_eq!(v.metadata_str("flag").as_deref(), Some("true"));
            assert_eq!(v.metadata_str("n").as_deref(), Some("7"));
            assert_eq!(v.metadata_str("o"), None);
            assert_eq!(v.metadata_str("missing"), None);
            for i in 0..n {
                assert_eq!(v.metadata_str(&format!("k{i}")), Some(format!("v{i}")));
            }
        }
    }

    #[test]
    fn responses_view() {
        let v = RequestView::responses(
            &json!({"model": "mini", "instructions": "sys", "input": "hello"}),
        )
        .unwrap();
        assert_eq!(v.turns.len(), 2);
        assert_eq!(v.last_user_text(), "hello");
    }
}
