//! o200k_base token counting (the tokenizer of the gpt-4o / gpt-5 families).
//!
//! Ranks are embedded in the binary by `bpe-openai`; nothing is downloaded.
//! The first call builds the tokenizer (~40 ms); later calls are cheap.
//!
//! [`count`] memoises per thread, with exactly the result of `o200k_base().count(text)`:
//! the text is split by the tokenizer's own pre-tokenizer and each piece (mostly a word with its
//! leading space) is counted once and remembered; long texts (system prompts, tool schemas,
//! which repeat from request to request) are remembered whole. Both memos are bounded.

use std::cell::RefCell;
use std::collections::HashMap;

use serde_json::Value;

/// Texts at least this long are memoised whole (by a 64-bit hash and their length).
const WHOLE_MIN_BYTES: usize = 256;
const WHOLE_CAP: usize = 1 << 14;
/// Pieces longer than this are not memoised (rare; counted directly).
const PIECE_MAX_BYTES: usize = 48;
const PIECE_CAP: usize = 1 << 16;

#[derive(Default)]
struct Memo {
    whole: HashMap<(u64, usize), usize>,
    pieces: HashMap<Box<str>, u32>,
}

thread_local! {
    static MEMO: RefCell<Memo> = RefCell::new(Memo::default());
}

fn count_pieces(memo: &mut Memo, text: &str) -> usize {
    let tok = bpe_openai::o200k_base();
    let normalized = tok.normalize(text);
    let mut total = 0usize;
    for piece in tok.split(normalized.as_str()) {
        if piece.len() > PIECE_MAX_BYTES {
            total += tok.bpe.count(piece.as_bytes());
            continue;
        }
        if let Some(&n) = memo.pieces.get(piece) {
            total += n as usize;
            continue;
        }
        let n = tok.bpe.count(piece.as_bytes());
        if memo.pieces.len() >= PIECE_CAP {
            memo.pieces.clear();
        }
        memo.pieces.insert(piece.into(), n as u32);
        total += n;
    }
    total
}

/// Tokens in `text` under o200k_base (memoised per thread; see the module docs).
pub fn count(text: &str) -> usize {
    MEMO.with(|m| {
        let Ok(mut memo) = m.try_borrow_mut() else {
            return bpe_openai::o200k_base().count(text);
        };
        if text.len() < WHOLE_MIN_BYTES {
            return count_pieces(&mut memo, text);
        }
        let key = (xxhash_rust::xxh3::xxh3_64(text.as_bytes()), text.len());
        if let Some(&n) = memo.whole.get(&key) {
            return n;
        }
        let n = count_pieces(&mut memo, text);
        if memo.whole.len() >= WHOLE_CAP {
            memo.whole.clear();
        }
        memo.whole.insert(key, n);
        n
    })
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
    fn memoised_count_is_exact() {
        let texts = [
            "Don't stop: it's 12345678 o'clock, café au lait — naïve résumé!\n\n  x",
            "请把这句话翻译成英文 and back again 123",
            "fn main() {\n    println!(\"{}\", 42);\n}\n",
            "   leading and trailing spaces   \n\n\n",
        ];
        for t in texts {
            let long = t.repeat(40);
            for x in [t, long.as_str()] {
                let direct = bpe_openai::o200k_base().count(x);
                // first (miss) and second (hit) calls agree with the tokenizer
                assert_eq!(count(x), direct, "{x:?}");
                assert_eq!(count(x), direct, "{x:?}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn memoised_count_matches_the_tokenizer(words in proptest::collection::vec("[ a-zA-Z0-9'.,é中\n]{0,12}", 0..80)) {
            let text = words.join(" ");
            let direct = bpe_openai::o200k_base().count(text.as_str());
            proptest::prop_assert_eq!(count(&text), direct);
            proptest::prop_assert_eq!(count(&text), direct);
        }
    }

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
