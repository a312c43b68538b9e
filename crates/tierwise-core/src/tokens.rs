//! o200k_base token counting (the tokenizer of the gpt-4o / gpt-5 families).
//!
//! Ranks are embedded in the binary by `bpe-openai`; nothing is downloaded.
//! The first call builds the tokenizer (~40 ms); later calls are cheap.
//!
//! [`count`] gives exactly `o200k_base().count(text)`: the text is cut into pieces by the
//! tokenizer's pre-tokenizer ([`split`]) and the pieces' counts are summed. [`fast`] holds how
//! that is done fast — per-thread memos of texts, pieces and tool schemas, and a hand-written
//! equivalent of the pre-tokenizer for ASCII text — beside the tests that hold it to
//! `bpe-openai`.

use std::borrow::Cow;
use std::cell::RefCell;

use serde_json::Value;

mod fast;

/// Tokens in `text` under o200k_base (memoised per thread; see [`fast`]).
pub fn count(text: &str) -> usize {
    fast::count(text)
}

/// Empties this thread's memos, so the next [`count`] of any text works from scratch (for
/// benchmarks of never-seen text; counts are the same either way).
pub fn clear_memo() {
    fast::clear_memo();
}

/// The pieces o200k's pre-tokenizer cuts `text` into — the same pieces, in order, as
/// `bpe_openai::o200k_base().split(text)` (o200k does not NFC-normalize). Each piece is the
/// anchored match of the pre-tokenizer's patterns at the end of the previous one, so it can be
/// found piece by piece: with [`fast::ascii_piece_end`] when every character that decides it is
/// ASCII, else with `bpe-openai`'s regex on the rest of the text.
pub fn split(text: &str) -> impl Iterator<Item = &str> {
    piece_bounds(text).map_while(|(p, e)| text.get(p..e))
}

/// [`split`]'s pieces as `(start, end)` byte offsets.
fn piece_bounds(text: &str) -> impl Iterator<Item = (usize, usize)> {
    let mut p = 0usize;
    std::iter::from_fn(move || {
        let start = p;
        p = next_piece_end(text, p)?;
        Some((start, p))
    })
}

/// The end of the piece that starts at `p` (`None` at the end of `text`).
#[inline]
fn next_piece_end(text: &str, p: usize) -> Option<usize> {
    let s = text.as_bytes();
    if p >= s.len() {
        return None;
    }
    let end = match fast::ascii_piece_end(s, p) {
        Some(e) => e,
        None => {
            let piece = bpe_openai::o200k_base().split(text.get(p..)?).next()?;
            p + piece.len()
        }
    };
    (end > p).then_some(end)
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
    content_str(content).into_owned()
}

/// [`content_text`], borrowed when the content is a plain string.
pub fn content_str(content: &Value) -> Cow<'_, str> {
    match content {
        Value::String(s) => Cow::Borrowed(s.as_str()),
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
            Cow::Owned(out)
        }
        _ => Cow::Borrowed(""),
    }
}

/// Objects with at most this many entries are searched by [`fields_of`] in one pass.
const SCAN_MAX_ENTRIES: usize = 8;

/// `keys.map(|k| v.get(k))`: the values of `keys` in `v` (`None`: absent, or `v` is not an
/// object). A small object (a message, a content part) is searched in one pass over its
/// entries — keys are unique, so the first equal key is the one `get` finds — instead of one
/// hashed lookup per key.
pub fn fields_of<'a, const N: usize>(v: &'a Value, keys: [&str; N]) -> [Option<&'a Value>; N] {
    let Value::Object(obj) = v else {
        return [None; N];
    };
    if obj.len() > SCAN_MAX_ENTRIES {
        return keys.map(|k| obj.get(k));
    }
    let mut out = [None; N];
    for (k, x) in obj {
        if let Some(i) = keys.iter().position(|w| *w == k.as_str())
            && let Some(slot) = out.get_mut(i)
        {
            *slot = Some(x);
        }
    }
    out
}

/// Text the request path counts exactly per [`Budget`] (message and tool-schema bytes); beyond
/// it, counts are estimated. 64 KiB is ≥ 8,000 tokens of any text seen in practice — above
/// every token threshold of the routing rules — and costs at most ~7 ms of o200k work on
/// never-seen text (distinct short words, the slowest kind measured).
pub const EXACT_BYTES: usize = 64 * 1024;

/// Bounded token counting: exact o200k counts for the first `limit` bytes of text, then an
/// estimate at the exact part's tokens per byte (4 bytes per token before 256 bytes were
/// counted). The work of a request's counts is then bounded whatever its size; `estimated`
/// says whether any count was estimated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    left: usize,
    exact_bytes: usize,
    exact_tokens: usize,
    pub estimated: bool,
}

impl Budget {
    pub fn new(limit: usize) -> Budget {
        Budget {
            left: limit,
            exact_bytes: 0,
            exact_tokens: 0,
            estimated: false,
        }
    }

    /// No limit: every count exact.
    pub fn unlimited() -> Budget {
        Budget::new(usize::MAX)
    }

    /// Tokens of `text`: exact while the budget lasts (a text that crosses the limit is
    /// counted exactly up to it), estimated beyond.
    pub fn count(&mut self, text: &str) -> usize {
        if text.len() <= self.left {
            let n = count(text);
            self.spend(text.len(), n);
            return n;
        }
        let mut cut = self.left;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let n = if cut > 0 { count(&text[..cut]) } else { 0 };
        self.spend(cut, n);
        self.left = 0;
        n + self.estimate(text.len() - cut)
    }

    /// Tokens of `bytes` bytes of text not counted (sets `estimated`).
    pub fn estimate(&mut self, bytes: usize) -> usize {
        if bytes == 0 {
            return 0;
        }
        self.estimated = true;
        if self.exact_bytes < 256 {
            return bytes.div_ceil(4);
        }
        let n = (bytes as u128 * self.exact_tokens as u128).div_ceil(self.exact_bytes as u128);
        usize::try_from(n).unwrap_or(usize::MAX)
    }

    fn spend(&mut self, bytes: usize, tokens: usize) {
        self.left = self.left.saturating_sub(bytes);
        self.exact_bytes += bytes;
        self.exact_tokens += tokens;
    }
}

/// Prompt tokens of a chat `messages` array, the way the provider bills them
/// (content + role + per-message overhead + reply priming). Tool calls in assistant
/// messages are counted from their JSON arguments and names.
pub fn count_messages(messages: &[Value]) -> usize {
    count_messages_with(messages, |_, _, _| {})
}

/// [`count_messages`], also telling `seen(index, content text, content tokens)` for every message
/// that has a `content`, so a caller can reuse a message's count instead of tokenizing it again.
pub fn count_messages_with(messages: &[Value], seen: impl FnMut(usize, &str, usize)) -> usize {
    count_messages_budgeted(messages, &mut Budget::unlimited(), seen)
}

/// [`count_messages_with`] within `budget`: exact for the first bytes, estimated beyond.
pub fn count_messages_budgeted(
    messages: &[Value],
    budget: &mut Budget,
    mut seen: impl FnMut(usize, &str, usize),
) -> usize {
    let mut count = |text: &str| budget.count(text);
    let mut total = REPLY_PRIMING;
    for (i, m) in messages.iter().enumerate() {
        total += PER_MESSAGE;
        let [role, name, content, tool_calls] =
            fields_of(m, ["role", "name", "content", "tool_calls"]);
        if let Some(role) = role.and_then(Value::as_str) {
            total += count(role);
        }
        if let Some(name) = name.and_then(Value::as_str) {
            total += count(name) + 1;
        }
        if let Some(c) = content {
            let text = content_str(c);
            let n = count(&text);
            seen(i, &text, n);
            total += n;
        }
        if let Some(calls) = tool_calls.and_then(Value::as_array) {
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
///
/// Memoised per thread: tool schemas repeat from request to request, so each tool's count is
/// remembered by a 128-bit hash (and the length) of [`encode_value`]'s bytes, which are cheaper
/// to produce than the compact JSON (no escaping, no allocation) and equal only for equal
/// values. The result is exactly [`count_tools_direct`]'s.
pub fn count_tools(tools: &[Value]) -> usize {
    tools.iter().map(fast::count_tool).sum()
}

/// [`count_tools`] within `budget`: tools are counted exactly while their schemas fit (sized
/// by [`encode_value`], about their JSON length), estimated beyond.
pub fn count_tools_budgeted(tools: &[Value], budget: &mut Budget) -> usize {
    tools
        .iter()
        .map(|t| {
            let len = with_encoded(t, <[u8]>::len);
            if len <= budget.left {
                let n = fast::count_tool(t);
                budget.spend(len, n);
                n
            } else {
                budget.left = 0;
                budget.estimate(len)
            }
        })
        .sum()
}

/// [`count_tools`] without the memo: the o200k tokens of each tool's compact JSON.
pub fn count_tools_direct(tools: &[Value]) -> usize {
    tools.iter().map(count_tool_direct).sum()
}

fn count_tool_direct(tool: &Value) -> usize {
    count(&serde_json::to_string(tool).unwrap_or_default())
}

/// An encoding buffer grown past this (a huge value) is freed after use.
const ENCODE_BUF_MAX: usize = 1 << 20;

thread_local! {
    static ENCODE_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// `f` of [`encode_value`]'s bytes of `v` (equal bytes exactly for equal values), written into
/// a per-thread buffer: content hashes of JSON values without an allocation per value.
pub fn with_encoded<T>(v: &Value, f: impl FnOnce(&[u8]) -> T) -> T {
    ENCODE_BUF.with(|b| match b.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            encode_value(v, &mut buf);
            let out = f(&buf);
            if buf.capacity() > ENCODE_BUF_MAX {
                *buf = Vec::new();
            }
            out
        }
        Err(_) => {
            let mut buf = Vec::new();
            encode_value(v, &mut buf);
            f(&buf)
        }
    })
}

/// Appends an unambiguous encoding of `v` to `out`: a tag per kind, lengths before strings,
/// arrays and objects, numbers as they print between tags. Two values get the same bytes only
/// when they are equal, keys in the same order — so they serialize to the same JSON.
pub fn encode_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.push(b'n'),
        Value::Bool(b) => out.push(if *b { b't' } else { b'f' }),
        Value::Number(n) => {
            use std::io::Write as _;
            out.push(b'#');
            // writing to a Vec cannot fail
            let _ = write!(out, "{n}");
            out.push(b';');
        }
        Value::String(s) => {
            out.push(b's');
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Value::Array(a) => {
            out.push(b'[');
            out.extend_from_slice(&(a.len() as u64).to_le_bytes());
            for x in a {
                encode_value(x, out);
            }
        }
        Value::Object(o) => {
            out.push(b'{');
            out.extend_from_slice(&(o.len() as u64).to_le_bytes());
            for (k, x) in o {
                out.extend_from_slice(&(k.len() as u64).to_le_bytes());
                out.extend_from_slice(k.as_bytes());
                encode_value(x, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Within the budget every count is exact; past it, the estimate follows the exact part's
    /// tokens per byte, and the work done is the budget's, not the text's.
    #[test]
    fn budget_is_exact_then_estimates() {
        let text = "The quick brown fox jumps over the lazy dog. ".repeat(50);
        let mut b = Budget::new(10_000);
        assert_eq!(b.count(&text), count(&text));
        assert!(!b.estimated);
        let messages = vec![
            json!({"role": "system", "content": text}),
            json!({"role": "user", "content": text}),
        ];
        assert_eq!(
            count_messages_budgeted(&messages, &mut Budget::unlimited(), |_, _, _| {}),
            count_messages(&messages)
        );
        // 2 × 2,250 bytes with 3,000 counted exactly: the rest is estimated from the ratio
        let mut b = Budget::new(3_000);
        let estimated = count_messages_budgeted(&messages, &mut b, |_, _, _| {});
        assert!(b.estimated);
        let exact = count_messages(&messages);
        assert!(
            estimated.abs_diff(exact) * 50 <= exact,
            "{estimated} vs {exact}"
        );
        // nothing counted yet: 4 bytes per token, on a char boundary
        let mut b = Budget::new(0);
        assert_eq!(b.count("ééé"), 2);
        let mut b = Budget::new(3);
        assert_eq!(b.count("ééé"), count("é") + 1);
        // tools: exact while they fit, estimated after
        let tools: Vec<Value> = (0..40)
            .map(|i| {
                json!({"type": "function", "function": {"name": format!("tool_{i}"),
                "description": "Does one thing with the input it is given, carefully."}})
            })
            .collect();
        let mut b = Budget::new(1 << 20);
        assert_eq!(count_tools_budgeted(&tools, &mut b), count_tools(&tools));
        let mut b = Budget::new(1_000);
        let est = count_tools_budgeted(&tools, &mut b);
        assert!(b.estimated);
        let all = count_tools(&tools);
        assert!(est.abs_diff(all) * 5 <= all, "{est} vs {all}");
    }

    /// `fields_of` finds what `get` finds, on small and large objects and non-objects.
    #[test]
    fn fields_of_is_get() {
        let mut big = serde_json::Map::new();
        for i in 0..20 {
            big.insert(format!("k{i}"), json!(i));
        }
        big.insert("role".into(), json!("user"));
        let values = [
            json!({"role": "user", "content": "hi"}),
            json!({"content": null, "role": 3, "name": "n", "tool_calls": [], "x": 1}),
            json!({}),
            json!([1, 2]),
            json!("role"),
            json!(null),
            Value::Object(big),
        ];
        let keys = ["role", "name", "content", "tool_calls", "k3"];
        for v in &values {
            assert_eq!(fields_of(v, keys), keys.map(|k| v.get(k)), "{v}");
        }
    }

    #[test]
    fn count_messages_with_reports_content_counts() {
        let msgs = vec![
            json!({"role": "system", "content": "You are terse."}),
            json!({"role": "user", "content": [{"type": "text", "text": "hello"}, {"type": "text", "text": "world"}]}),
            json!({"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}),
        ];
        let mut seen = Vec::new();
        let total = count_messages_with(&msgs, |i, t, n| seen.push((i, t.to_string(), n)));
        assert_eq!(total, count_messages(&msgs));
        assert_eq!(seen.len(), 3);
        for (i, t, n) in seen {
            assert_eq!(t, content_text(&msgs[i]["content"]));
            assert_eq!(n, bpe_openai::o200k_base().count(t.as_str()));
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
