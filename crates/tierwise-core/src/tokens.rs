//! o200k_base token counting (the tokenizer of the gpt-4o / gpt-5 families).
//!
//! Ranks are embedded in the binary by `bpe-openai`; nothing is downloaded.
//! The first call builds the tokenizer (~40 ms); later calls are cheap.

use serde_json::Value;

/// Tokens in `text` under o200k_base.
pub fn count(text: &str) -> usize {
    bpe_openai::o200k_base().count(text)
}

/// Token ids of `text` under o200k_base.
pub fn encode(text: &str) -> Vec<u32> {
    bpe_openai::o200k_base().encode(text)
}

/// Tokens each chat message costs on top of its content (OpenAI's published accounting for the
/// gpt-4o family: `<|start|>role<|message|>…<|end|>`).
pub const PER_MESSAGE: usize = 3;
/// Tokens that prime the assistant reply.
pub const REPLY_PRIMING: usize = 3;

/// Text of a message `content`: a string, or an array of parts whose `text` fields are joined.
/// Non-text parts (images, audio, files) contribute nothing here.
pub fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => {
            let mut out = String::new();
            for part in parts {
                let text = part
                    .get("text")
                    .and_then(Value::as_str)
                    .or_else(|| part.as_str());
                if let Some(t) = text {
                    if !out.is_empty() {
                        out.push('\n');
                    }
                    out.push_str(t);
                }
            }
            out
        }
        _ => String::new(),
    }
}

/// Prompt tokens of a chat `messages` array, the way the provider bills them
/// (content + role + per-message overhead + reply priming). Tool calls in assistant
/// messages are counted from their JSON arguments and names.
pub fn count_messages(messages: &[Value]) -> usize {
    let mut total = REPLY_PRIMING;
    for m in messages {
        total += PER_MESSAGE;
        if let Some(role) = m.get("role").and_then(Value::as_str) {
            total += count(role);
        }
        if let Some(name) = m.get("name").and_then(Value::as_str) {
            total += count(name) + 1;
        }
        if let Some(c) = m.get("content") {
            total += count(&content_text(c));
        }
        if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
            for call in calls {
                if let Some(f) = call.get("function") {
                    total += count(f.get("name").and_then(Value::as_str).unwrap_or(""));
                    total += count(f.get("arguments").and_then(Value::as_str).unwrap_or(""));
                    total += PER_MESSAGE;
                }
            }
        }
    }
    total
}

/// Tokens of tool schemas as sent (the compact JSON of each tool), an estimate of what the
/// provider adds to the prompt for them.
pub fn count_tools(tools: &[Value]) -> usize {
    tools
        .iter()
        .map(|t| count(&serde_json::to_string(t).unwrap_or_default()))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_match_o200k() {
        // Reference counts from tiktoken's o200k_base.
        assert_eq!(count("hello world"), 2);
        assert_eq!(count(""), 0);
        assert_eq!(count("tiktoken is great!"), 6);
    }

    #[test]
    fn message_overhead() {
        let msgs = vec![json!({"role": "user", "content": "hello world"})];
        // 3 priming + 3 per message + 1 ("user") + 2 content
        assert_eq!(count_messages(&msgs), 9);
        let parts =
            vec![json!({"role": "user", "content": [{"type": "text", "text": "hello world"}]})];
        assert_eq!(count_messages(&parts), 9);
    }
}
