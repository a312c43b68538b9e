//! The `tool_search` function (mode `tool_search`): a small tool the gateway adds to the kept
//! set and answers itself, so a model is never stuck without a pruned tool.
//!
//! Gateway loop (bounded by `tools.max_search_rounds`):
//! 1. add [`schema`] (or [`schema_responses`]) under [`function_name`] to the kept tools;
//! 2. when the model's reply calls it, [`parse_arguments`], run [`search`] over the tools not
//!    yet sent, add the found tools to the request (keeping original order), append the
//!    assistant call and a tool message with [`answer`], and re-issue the call;
//! 3. when rounds run out, drop the `tool_search` tool from the last call.

use serde_json::{Value, json};

use crate::index::ToolIndex;
use crate::query::{Method, Query, QueryEmbedder};

/// The preferred name of the search function.
pub const NAME: &str = "tool_search";
/// Tools returned per search unless the model asks for another number.
pub const DEFAULT_RESULTS: usize = 5;
/// Most tools one search may return.
pub const MAX_RESULTS: usize = 20;

const DESCRIPTION: &str = "Search the tools available to you that are not loaded yet. Call it when none \
of your current tools fits the task; describe the capability you need. Matching tools are \
added to your tools for the next step.";

/// A name for the search function that no tool of the request already uses.
pub fn function_name(index: &ToolIndex) -> String {
    let mut name = NAME.to_string();
    let mut n = 2;
    while !index.positions(&name).is_empty() {
        name = format!("{NAME}_{n}");
        n += 1;
    }
    name
}

fn parameters() -> Value {
    json!({
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "What the tool should do, in a few words."},
            "limit": {"type": "integer", "description": "How many tools to return (default 5).", "minimum": 1, "maximum": MAX_RESULTS}
        },
        "required": ["query"],
        "additionalProperties": false
    })
}

/// The function tool in chat-completions shape.
pub fn schema(name: &str) -> Value {
    json!({"type": "function", "function": {"name": name, "description": DESCRIPTION, "parameters": parameters()}})
}

/// The function tool in Responses shape.
pub fn schema_responses(name: &str) -> Value {
    json!({"type": "function", "name": name, "description": DESCRIPTION, "parameters": parameters()})
}

/// A model's call of the search function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchCall {
    pub query: String,
    pub limit: usize,
}

/// A call the gateway cannot run; answer the model with its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SearchCallError {
    #[error("tool_search arguments are not a JSON object: {0}")]
    NotJson(String),
    #[error("tool_search needs a non-empty string `query`")]
    NoQuery,
}

/// Parses the `arguments` string of a search call (`limit` is clamped to 1..=MAX_RESULTS).
pub fn parse_arguments(arguments: &str) -> Result<SearchCall, SearchCallError> {
    let v: Value =
        serde_json::from_str(arguments).map_err(|e| SearchCallError::NotJson(e.to_string()))?;
    if !v.is_object() {
        return Err(SearchCallError::NotJson("expected an object".into()));
    }
    let query = v
        .get("query")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .ok_or(SearchCallError::NoQuery)?;
    let limit = v
        .get("limit")
        .and_then(Value::as_u64)
        .map_or(DEFAULT_RESULTS, |l| {
            usize::try_from(l).unwrap_or(MAX_RESULTS)
        })
        .clamp(1, MAX_RESULTS);
    Ok(SearchCall {
        query: query.to_string(),
        limit,
    })
}

/// The best `limit` indexed tools for `query`, skipping `exclude` (tools already sent),
/// best first. Tools with no match at all are not returned.
pub fn search(
    index: &ToolIndex,
    query: &str,
    limit: usize,
    exclude: &[usize],
    method: Method,
    embedder: QueryEmbedder<'_>,
) -> Vec<usize> {
    let q = Query::from_text(query);
    let scores = crate::query::scores(index, &q, method, embedder, None);
    let mut found: Vec<usize> = (0..index.len())
        .filter(|i| !exclude.contains(i))
        .filter(|&i| scores.get(i).is_some_and(|s| *s > 0.0))
        .collect();
    found.sort_unstable_by(|&a, &b| {
        let (sa, sb) = (
            scores.get(a).copied().unwrap_or(0.0),
            scores.get(b).copied().unwrap_or(0.0),
        );
        sb.total_cmp(&sa).then(a.cmp(&b))
    });
    found.truncate(limit);
    found
}

/// Longest description (chars) quoted in a search answer; the full schema is in `tools`.
pub const MAX_DESCRIPTION: usize = 200;

/// `text` cut to [`MAX_DESCRIPTION`] characters (with `…` when cut).
fn short(text: &str) -> String {
    match text.char_indices().nth(MAX_DESCRIPTION) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// The tool message content answering a search: the found tools' names and descriptions.
pub fn answer(index: &ToolIndex, found: &[usize]) -> String {
    let tools: Vec<Value> = found
        .iter()
        .filter_map(|&i| index.entries().get(i))
        .map(|e| json!({"name": e.name, "description": short(&e.description)}))
        .collect();
    let note = if tools.is_empty() {
        "No matching tool. Rephrase the capability, or answer without a tool."
    } else {
        "These tools are now available: call them directly."
    };
    json!({"tools": tools, "note": note}).to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;

    fn idx() -> ToolIndex {
        ToolIndex::build(&[
            json!({"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city"}}),
            json!({"type": "function", "function": {"name": "tool_search", "description": "client's own"}}),
            json!({"type": "function", "function": {"name": "send_sms", "description": "Send a text message"}}),
        ])
    }

    #[test]
    fn name_avoids_collisions() {
        assert_eq!(function_name(&idx()), "tool_search_2");
        assert_eq!(function_name(&ToolIndex::build(&[])), "tool_search");
        assert_eq!(schema("x")["function"]["name"], "x");
        assert_eq!(schema_responses("x")["name"], "x");
    }

    #[test]
    fn arguments() {
        assert_eq!(
            parse_arguments(r#"{"query": " weather "}"#),
            Ok(SearchCall {
                query: "weather".into(),
                limit: 5
            })
        );
        assert_eq!(
            parse_arguments(r#"{"query": "w", "limit": 500}"#).map(|c| c.limit),
            Ok(MAX_RESULTS)
        );
        assert_eq!(
            parse_arguments(r#"{"query": "w", "limit": 0}"#).map(|c| c.limit),
            Ok(1)
        );
        assert_eq!(
            parse_arguments(r#"{"query": ""}"#),
            Err(SearchCallError::NoQuery)
        );
        assert!(matches!(
            parse_arguments("nope"),
            Err(SearchCallError::NotJson(_))
        ));
        assert!(matches!(
            parse_arguments("[1]"),
            Err(SearchCallError::NotJson(_))
        ));
    }

    #[test]
    fn search_excludes_sent_tools_and_unmatched_ones() {
        let i = idx();
        assert_eq!(
            search(&i, "text message", 5, &[], Method::Lexical, None),
            [2]
        );
        assert!(search(&i, "text message", 5, &[2], Method::Lexical, None).is_empty());
        let a: Value = serde_json::from_str(&answer(&i, &[2])).unwrap();
        assert_eq!(a["tools"][0]["name"], "send_sms");
        assert_eq!(short("ab"), "ab");
        let long = "é".repeat(300);
        assert_eq!(short(&long).chars().count(), MAX_DESCRIPTION + 1);
    }
}
