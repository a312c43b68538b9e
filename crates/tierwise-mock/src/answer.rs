//! The mock's deterministic answer and usage for a request.
//!
//! Usage rules (documented so tests can compute expected costs by hand):
//! - `prompt_tokens` = o200k count of the messages as billed (`tokens::count_messages`) plus the
//!   tool schemas (`tokens::count_tools`).
//! - `cached_tokens`: a warm prompt cache — for prompts of 1024 tokens or more, the largest
//!   multiple of 128 not above `prompt_tokens` (OpenAI caches in 128-token steps from 1024);
//!   0 below 1024.
//! - `cache_write_tokens` (in `prompt_tokens_details` / `input_tokens_details`, sent only when
//!   not 0): a request naming a `prompt_cache_key` the mock has not seen finds the cache cold
//!   and writes it — `cached_tokens` 0, `cache_write_tokens` what the warm cache would have
//!   held (the rule above); the next requests with that key read it (`cached_tokens` as
//!   above, no writes). Requests without a key see the warm cache. See
//!   [`crate::Mock::prompt_cache`].
//! - `reasoning_tokens` from the requested effort (`reasoning_effort` in chat,
//!   `reasoning.effort` in Responses): none/minimal 0, low 16, medium (or unset) 64, high 256,
//!   xhigh 512.
//! - `completion_tokens` = o200k count of the answer text (or tool name + arguments) plus the
//!   reasoning tokens.

use serde_json::{Map, Value, json};
use tierwise_core::request::{Api, RequestView};
use tierwise_core::tokens;

use crate::behavior::{Behavior, JudgeStyle};

/// Token counts in the provider's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MockUsage {
    pub prompt: u64,
    pub cached: u64,
    pub completion: u64,
    pub reasoning: u64,
    /// Prompt tokens written to the cache (see the module docs).
    pub cache_write: u64,
}

impl MockUsage {
    /// Chat completions shape.
    pub fn chat_json(&self) -> Value {
        let mut u = json!({
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt + self.completion,
            "prompt_tokens_details": {"cached_tokens": self.cached, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": self.reasoning, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
        });
        if self.cache_write > 0 {
            u["prompt_tokens_details"]["cache_write_tokens"] = json!(self.cache_write);
        }
        u
    }

    /// Responses API shape.
    pub fn responses_json(&self) -> Value {
        let mut u = json!({
            "input_tokens": self.prompt,
            "input_tokens_details": {"cached_tokens": self.cached},
            "output_tokens": self.completion,
            "output_tokens_details": {"reasoning_tokens": self.reasoning},
            "total_tokens": self.prompt + self.completion
        });
        if self.cache_write > 0 {
            u["input_tokens_details"]["cache_write_tokens"] = json!(self.cache_write);
        }
        u
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Text content (absent when the answer is a tool call).
    pub text: Option<String>,
    pub tool_call: Option<ToolCall>,
    pub usage: MockUsage,
}

/// Cached tokens of a warm cache (see the module docs).
pub fn cached_for(prompt: u64) -> u64 {
    if prompt >= 1024 {
        prompt / 128 * 128
    } else {
        0
    }
}

/// Reasoning tokens for an effort (see the module docs).
pub fn reasoning_for(effort: Option<&str>) -> u64 {
    match effort {
        Some("none" | "minimal") => 0,
        Some("low") => 16,
        Some("high") => 256,
        Some("xhigh") => 512,
        _ => 64,
    }
}

fn tool_name(tool: &Value) -> Option<&str> {
    tool.pointer("/function/name")
        .or_else(|| tool.get("name"))
        .and_then(Value::as_str)
}

fn tool_params(tool: &Value) -> Option<&Value> {
    tool.pointer("/function/parameters")
        .or_else(|| tool.get("parameters"))
}

/// Arguments that satisfy the schema's `required` list with placeholder values.
fn arguments_for(params: Option<&Value>) -> String {
    let mut args = Map::new();
    if let Some(p) = params {
        let required = p.get("required").and_then(Value::as_array);
        for name in required.into_iter().flatten().filter_map(Value::as_str) {
            let ty = p
                .pointer(&format!("/properties/{name}/type"))
                .and_then(Value::as_str)
                .unwrap_or("string");
            let v = match ty {
                "number" | "integer" => json!(1),
                "boolean" => json!(true),
                "array" => json!([]),
                "object" => json!({}),
                _ => json!("mock"),
            };
            args.insert(name.to_string(), v);
        }
    }
    Value::Object(args).to_string()
}

/// The tool the answer calls, if any: the named one for a forced `tool_choice`, else the first
/// tool when tools are offered, `tool_choice` is not `none`, and the last message is not a tool
/// result.
fn chosen_tool(view: &RequestView) -> Option<&Value> {
    if view.tools.is_empty() {
        return None;
    }
    let forced = match &view.tool_choice {
        Some(Value::String(s)) if s == "none" => return None,
        Some(Value::Object(o)) => o
            .get("function")
            .and_then(|f| f.get("name"))
            .or_else(|| o.get("name"))
            .and_then(Value::as_str),
        _ => None,
    };
    if let Some(name) = forced {
        return view.tools.iter().find(|t| tool_name(t) == Some(name));
    }
    if view.turns.last().is_some_and(|t| t.role == "tool") {
        return None;
    }
    view.tools.first()
}

/// The deterministic answer to `body` (already read into `view`) for `model`.
pub fn answer(view: &RequestView, body: &Value, model: &str, id: u64) -> Answer {
    let effort = match view.api {
        Api::ChatCompletions => body.get("reasoning_effort").and_then(Value::as_str),
        Api::Responses => body.pointer("/reasoning/effort").and_then(Value::as_str),
    };
    let reasoning = reasoning_for(effort);
    let prompt = (tokens::count_messages(&view.messages) + tokens::count_tools(&view.tools)) as u64;
    let (text, tool_call, visible) = if let Some(tool) = chosen_tool(view) {
        let name = tool_name(tool).unwrap_or("tool").to_string();
        let arguments = arguments_for(tool_params(tool));
        let n = tokens::count(&name) + tokens::count(&arguments);
        let call = ToolCall {
            id: format!("call_mock_{id}"),
            name,
            arguments,
        };
        (None, Some(call), n)
    } else {
        let behavior = Behavior::parse(model);
        let text = if let Some(style) = behavior.judge {
            judge_text(view.last_user_text(), style)
        } else if let Some(word) = &behavior.says {
            if view.structured_output {
                json!({"answer": word}).to_string()
            } else {
                word.clone()
            }
        } else if view.structured_output {
            json!({"answer": "mock", "model": model}).to_string()
        } else {
            let words: Vec<&str> = view.last_user_text().split_whitespace().take(12).collect();
            if words.is_empty() {
                format!("Mock answer from {model}.")
            } else {
                format!("Mock answer from {model} to: {}", words.join(" "))
            }
        };
        let n = tokens::count(&text);
        (Some(text), None, n)
    };
    Answer {
        text,
        tool_call,
        usage: MockUsage {
            prompt,
            cached: cached_for(prompt),
            completion: visible as u64 + reasoning,
            reasoning,
            cache_write: 0,
        },
    }
}

/// The text between `<tag>` and `</tag>`.
fn between<'a>(text: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = text.find(&open)? + open.len();
    let end = start + text[start..].find(&close)?;
    Some(&text[start..end])
}

/// A `judge-` model's answer to a pairwise prompt (see [`crate::behavior`]).
pub fn judge_text(prompt: &str, style: JudgeStyle) -> String {
    let verdict = match style {
        JudgeStyle::Garbage => return "Both answers have merit; I cannot decide.".to_string(),
        JudgeStyle::First => "A",
        JudgeStyle::Longer => {
            let words = |tag| between(prompt, tag).map_or(0, |t| t.split_whitespace().count());
            match words("answer_a").cmp(&words("answer_b")) {
                std::cmp::Ordering::Greater => "A",
                std::cmp::Ordering::Less => "B",
                std::cmp::Ordering::Equal => "TIE",
            }
        }
    };
    format!("Compared the two answers.\nVERDICT: {verdict}")
}

/// Words of four letters or more, lowercased (what the `toolsearch-` model matches on).
fn long_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 4)
        .map(str::to_lowercase)
        .collect()
}

/// Whether a tool "fits" `words`: one of them appears in its name (split at `_`, `-`, `.`) or
/// its description, case-insensitively.
fn tool_fits(tool: &Value, words: &[String]) -> bool {
    let name = tool_name(tool)
        .unwrap_or("")
        .to_lowercase()
        .replace(['_', '-', '.'], " ");
    let desc = tool
        .pointer("/function/description")
        .or_else(|| tool.get("description"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_lowercase();
    let hay = long_words(&format!("{name} {desc}"));
    words.iter().any(|w| hay.contains(w))
}

/// The answer of a `toolsearch-` model (chat): a model that looks for the tool it needs.
/// - A function whose name starts with `tool_search` is offered and no other offered tool fits
///   the last user message (a word of 4+ letters of it appears in the tool's name or
///   description): it calls that function with `{"query": <last user message>}` — again after
///   a tool result, so a search that finds nothing is repeated until the tool disappears.
/// - A tool fits and the last message is not a tool result: it calls the first fitting tool.
/// - Otherwise: the normal answer ([`answer`]).
pub fn tool_search_answer(view: &RequestView, body: &Value, model: &str, id: u64) -> Answer {
    let normal = answer(view, body, model, id);
    let words = long_words(view.last_user_text());
    let is_search = |t: &&Value| tool_name(t).is_some_and(|n| n.starts_with("tool_search"));
    let search = view.tools.iter().find(is_search);
    let fitting = view
        .tools
        .iter()
        .filter(|t| !is_search(t))
        .find(|t| tool_fits(t, &words));
    let last_is_tool = view.turns.last().is_some_and(|t| t.role == "tool");
    let (name, arguments) = match (search, fitting) {
        (Some(s), None) => (
            tool_name(s).unwrap_or("tool_search").to_string(),
            json!({"query": view.last_user_text()}).to_string(),
        ),
        (_, Some(t)) if !last_is_tool => (
            tool_name(t).unwrap_or("tool").to_string(),
            arguments_for(tool_params(t)),
        ),
        _ => return normal,
    };
    let visible = (tokens::count(&name) + tokens::count(&arguments)) as u64;
    Answer {
        text: None,
        tool_call: Some(ToolCall {
            id: format!("call_mock_{id}"),
            name,
            arguments,
        }),
        usage: MockUsage {
            completion: visible + normal.usage.reasoning,
            ..normal.usage
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;

    #[test]
    fn usage_is_deterministic_from_the_prompt() {
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "hello world"}]});
        let view = RequestView::chat(&body).unwrap();
        let a = answer(&view, &body, "m", 1);
        assert_eq!(a.usage.prompt, 9);
        assert_eq!(a.usage.cached, 0);
        assert_eq!(a.usage.reasoning, 64);
        let text = a.text.unwrap();
        assert_eq!(text, "Mock answer from m to: hello world");
        assert_eq!(a.usage.completion, tokens::count(&text) as u64 + 64);
        assert_eq!(answer(&view, &body, "m", 2).usage, a.usage);
    }

    #[test]
    fn says_and_judge_models() {
        let ask = |model: &str, content: &str, structured: bool| {
            let mut body =
                json!({"model": model, "messages": [{"role": "user", "content": content}]});
            if structured {
                body["response_format"] = json!({"type": "json_object"});
            }
            let view = RequestView::chat(&body).unwrap();
            answer(&view, &body, model, 1).text.unwrap()
        };
        assert_eq!(ask("says-positive-mini", "classify", false), "positive");
        assert_eq!(ask("says-42-mini", "x", true), r#"{"answer":"42"}"#);
        let prompt = "<answer_a>\none two\n</answer_a>\n<answer_b>\none two three\n</answer_b>";
        assert!(ask("judge-gpt-5.5", prompt, false).ends_with("VERDICT: B"));
        assert!(ask("judge-first-gpt-5.5", prompt, false).ends_with("VERDICT: A"));
        let tie = "<answer_a>a b</answer_a><answer_b>c d</answer_b>";
        assert!(ask("judge-gpt-5.5", tie, false).ends_with("VERDICT: TIE"));
        assert!(!ask("judge-garbage-gpt-5.5", prompt, false).contains("VERDICT"));
    }

    #[test]
    fn warm_cache_in_128_steps() {
        assert_eq!(cached_for(1023), 0);
        assert_eq!(cached_for(1024), 1024);
        assert_eq!(cached_for(1300), 1280);
    }

    #[test]
    fn tool_call_fills_required_arguments() {
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "weather?"}],
            "tools": [{"type": "function", "function": {"name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["city", "days"]}}}]});
        let view = RequestView::chat(&body).unwrap();
        let a = answer(&view, &body, "m", 7);
        let call = a.tool_call.unwrap();
        assert_eq!(call.name, "get_weather");
        assert_eq!(call.arguments, r#"{"city":"mock","days":1}"#);
        assert!(a.text.is_none());
    }

    #[test]
    fn tool_search_model_searches_then_calls_the_fitting_tool() {
        let search = json!({"type": "function", "function": {"name": "tool_search", "description": "find tools"}});
        let other = json!({"type": "function", "function": {"name": "send_sms", "description": "Send a text"}});
        let weather = json!({"type": "function", "function": {"name": "get_weather", "description": "Forecast"}});
        let ask = |tools: Vec<Value>, tool_result: bool| {
            let mut messages = vec![json!({"role": "user", "content": "weather in Paris?"})];
            if tool_result {
                messages.push(json!({"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "tool_search", "arguments": "{}"}}]}));
                messages.push(json!({"role": "tool", "tool_call_id": "c1", "content": "{}"}));
            }
            let body = json!({"model": "m", "messages": messages, "tools": tools});
            let view = RequestView::chat(&body).unwrap();
            tool_search_answer(&view, &body, "m", 3)
        };
        let a = ask(vec![other.clone(), search.clone()], false);
        let call = a.tool_call.unwrap();
        assert_eq!(call.name, "tool_search");
        assert_eq!(
            call.arguments,
            json!({"query": "weather in Paris?"}).to_string()
        );
        // Still nothing fits after a search: it searches again.
        assert_eq!(
            ask(vec![other.clone(), search.clone()], true)
                .tool_call
                .unwrap()
                .name,
            "tool_search"
        );
        // The tool fits: it is called; after a tool result, a text answer.
        assert_eq!(
            ask(vec![other.clone(), weather.clone(), search.clone()], false)
                .tool_call
                .unwrap()
                .name,
            "get_weather"
        );
        let done = ask(vec![other, weather, search], true);
        assert!(done.tool_call.is_none() && done.text.is_some());
    }
}
