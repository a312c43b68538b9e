//! The prompt as the provider's cache sees it: a sequence of segments (the tool schemas, then
//! each message), each with a content hash and its o200k tokens; and the request's "shape"
//! (same system prompt + same tool set).
//!
//! Token accounting follows `tierwise_core::tokens`: a message costs what
//! `count_messages(&[m]) - REPLY_PRIMING` says, a tool what `count_tools(&[t])` says.
//!
//! Two layouts are produced:
//! - **as sent**: tools in the order the client sent them, then the messages in order;
//! - **static first**: tools in a canonical order (by name), then every system/developer
//!   message, then the rest of the conversation in order — what tierwise's shaping would send.

use std::sync::Arc;

use serde_json::Value;
use tierwise_core::config::ToolMode;
use tierwise_core::request::RequestView;
use tierwise_core::tokens;
use tierwise_tools::{SelectionPolicy, ToolIndex};
use xxhash_rust::xxh3::{Xxh3, xxh3_64, xxh3_128};

use crate::agg::FastMap;

/// The provider caches prompts of at least this many tokens …
pub const CACHE_MIN_TOKENS: u32 = 1024;
/// … in steps of this many tokens.
pub const CACHE_STEP_TOKENS: u32 = 128;

/// A prefix of the prompt ending at a segment boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    /// Hash of every segment up to here (chained).
    pub hash: u64,
    /// Tokens up to here.
    pub tokens: u32,
}

/// What the cache simulator and the shape table need from one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PromptFacts {
    /// Cacheable prefixes (≥ [`CACHE_MIN_TOKENS`]) of the prompt as sent, shortest first.
    pub as_sent: Vec<Prefix>,
    /// Cacheable prefixes with static content first, shortest first.
    pub static_first: Vec<Prefix>,
    /// Tokens of the tool schemas.
    pub tool_tokens: u32,
    /// Tool-schema tokens the tool-search rule would not send.
    pub tool_search_removed: u32,
    /// Same system prompt(s) + same tool set → same key. 0: neither.
    pub shape: u64,
}

/// A 64-bit content hash of `v`.
fn hash_of(v: &Value) -> u64 {
    tokens::with_encoded(v, xxh3_64)
}

/// [`hash_of`] and a 128-bit hash of the same stream (the key of the message-token memo).
fn hashes_of(v: &Value) -> (u64, u128) {
    tokens::with_encoded(v, |b| (xxh3_64(b), xxh3_128(b)))
}

fn chain(prev: u64, next: u64) -> u64 {
    let mut h = Xxh3::new();
    h.update(&prev.to_le_bytes());
    h.update(&next.to_le_bytes());
    h.digest()
}

fn tool_name(t: &Value) -> &str {
    t.pointer("/function/name")
        .or_else(|| t.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Per-worker memo: tool schema tokens by content hash, tool indexes by tool-set hash
/// (tool sets repeat across calls, so each is indexed once), and message tokens by a 128-bit
/// hash of the message (system prompts and shared turns repeat).
#[derive(Default)]
pub struct ToolMemo {
    tokens: FastMap<u64, u32>,
    indexes: FastMap<u64, Arc<ToolIndex>>,
    messages: FastMap<u128, u32>,
    /// Each tool's hash and the list's schema tokens, by the address of a shared tool list
    /// (`RequestView::tools`, shared between calls by the log reader). The memo holds the list,
    /// so an address found here is that same list, unchanged.
    lists: FastMap<usize, ListFacts>,
}

/// A shared tool list (kept alive), each tool's hash and the schemas' tokens.
type ListFacts = (Arc<[Value]>, Arc<[u64]>, u32);

impl std::fmt::Debug for ToolMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolMemo")
            .field("tokens", &self.tokens.len())
            .field("indexes", &self.indexes.len())
            .field("messages", &self.messages.len())
            .field("lists", &self.lists.len())
            .finish()
    }
}

impl ToolMemo {
    const TOKENS_CAP: usize = 1 << 16;
    const INDEX_CAP: usize = 256;
    const LISTS_CAP: usize = 256;

    /// Each tool's hash ([`hash_of`]) and the tokens of all the schemas.
    fn tool_list(&mut self, tools: &Arc<[Value]>) -> (Arc<[u64]>, u32) {
        let key = Arc::as_ptr(tools).cast::<u8>() as usize;
        if let Some((list, hashes, n)) = self.lists.get(&key)
            && Arc::ptr_eq(list, tools)
        {
            return (hashes.clone(), *n);
        }
        let hashes: Arc<[u64]> = tools.iter().map(hash_of).collect();
        let n = hashes
            .iter()
            .zip(tools.iter())
            .map(|(h, t)| self.tokens(*h, t))
            .sum();
        if !tools.is_empty() {
            if self.lists.len() >= Self::LISTS_CAP {
                self.lists.clear();
            }
            self.lists.insert(key, (tools.clone(), hashes.clone(), n));
        }
        (hashes, n)
    }

    fn tokens(&mut self, hash: u64, tool: &Value) -> u32 {
        if let Some(&n) = self.tokens.get(&hash) {
            return n;
        }
        let n = tokens::count_tools(std::slice::from_ref(tool)) as u32;
        if self.tokens.len() >= Self::TOKENS_CAP {
            self.tokens.clear();
        }
        self.tokens.insert(hash, n);
        n
    }

    fn message_tokens(&mut self, hash: u128, m: &Value) -> u32 {
        if let Some(&n) = self.messages.get(&hash) {
            return n;
        }
        let n = message_tokens(m);
        if self.messages.len() >= Self::TOKENS_CAP {
            self.messages.clear();
        }
        self.messages.insert(hash, n);
        n
    }

    fn index(&mut self, set_hash: u64, tools: &[Value]) -> Arc<ToolIndex> {
        if let Some(i) = self.indexes.get(&set_hash) {
            return i.clone();
        }
        let i = Arc::new(ToolIndex::build(tools));
        if self.indexes.len() >= Self::INDEX_CAP {
            self.indexes.clear();
        }
        self.indexes.insert(set_hash, i.clone());
        i
    }
}

/// Tool-schema tokens tool search would not send: `tierwise_tools::select` — the selection
/// the gateway applies (tools named by `tool_choice`, already called, pinned, and the `top_k`
/// most relevant to the conversation; nothing when the request has at most `threshold` tools).
pub fn tool_search_removed(
    view: &RequestView,
    set_hash: u64,
    memo: &mut ToolMemo,
    policy: &SelectionPolicy,
) -> u32 {
    if view.tools.len() <= policy.threshold || policy.mode == ToolMode::Off {
        return 0;
    }
    let index = memo.index(set_hash, &view.tools);
    let s = tierwise_tools::select(&index, view, policy);
    s.tokens_offered.saturating_sub(s.tokens_sent) as u32
}

fn message_tokens(m: &Value) -> u32 {
    tokens::count_messages(std::slice::from_ref(m)).saturating_sub(tokens::REPLY_PRIMING) as u32
}

fn is_static_role(m: &Value) -> bool {
    let [role] = tokens::fields_of(m, ["role"]);
    matches!(role.and_then(Value::as_str), Some("system" | "developer"))
}

fn push_prefixes(segments: &[(u64, u32)], out: &mut Vec<Prefix>) {
    let mut h = 0u64;
    let mut t = 0u32;
    for &(sh, st) in segments {
        h = chain(h, sh);
        t = t.saturating_add(st);
        if t >= CACHE_MIN_TOKENS {
            out.push(Prefix { hash: h, tokens: t });
        }
    }
}

/// Segments, prefixes, shape and tool-search removal of one request.
pub fn facts(view: &RequestView, memo: &mut ToolMemo, policy: &SelectionPolicy) -> PromptFacts {
    facts_counted(view, memo, policy, None)
}

/// [`facts`], when the caller already has the prompt's message tokens as
/// `tokens::count_messages` counts them (`Signals::prompt_tokens`): a prompt below
/// [`CACHE_MIN_TOKENS`] has no cacheable prefix, so its messages are neither counted one by one
/// nor hashed, except the system / developer ones (the shape). Same facts as [`facts`].
pub fn facts_counted(
    view: &RequestView,
    memo: &mut ToolMemo,
    policy: &SelectionPolicy,
    prompt_tokens: Option<usize>,
) -> PromptFacts {
    let (hashes, tool_tokens) = memo.tool_list(&view.tools);
    let tools: Vec<(u64, &Value)> = hashes.iter().copied().zip(view.tools.iter()).collect();
    let set_hash = {
        let mut h = Xxh3::new();
        for (th, _) in &tools {
            h.update(&th.to_le_bytes());
        }
        h.digest()
    };
    let below_cache = prompt_tokens.is_some_and(|n| {
        let total = n.saturating_sub(tokens::REPLY_PRIMING)
            + usize::try_from(tool_tokens).unwrap_or(usize::MAX);
        total < CACHE_MIN_TOKENS as usize
    });
    let messages: Vec<(u64, u32, bool)> = view
        .messages
        .iter()
        .map(|m| {
            let is_static = is_static_role(m);
            if below_cache {
                // only the shape reads these: the hash of a system / developer message
                return (if is_static { hash_of(m) } else { 0 }, 0, is_static);
            }
            let (h, key) = hashes_of(m);
            (h, memo.message_tokens(key, m), is_static)
        })
        .collect();

    let total: u32 = tool_tokens + messages.iter().map(|m| m.1).sum::<u32>();
    let mut as_sent = Vec::new();
    let mut static_first = Vec::new();
    if total >= CACHE_MIN_TOKENS {
        let mut seg: Vec<(u64, u32)> = Vec::with_capacity(messages.len() + 1);
        if !tools.is_empty() {
            seg.push((set_hash, tool_tokens));
        }
        seg.extend(messages.iter().map(|&(h, t, _)| (h, t)));
        push_prefixes(&seg, &mut as_sent);

        seg.clear();
        if !tools.is_empty() {
            let mut order: Vec<(&str, u64)> =
                tools.iter().map(|(h, t)| (tool_name(t), *h)).collect();
            order.sort_unstable();
            let mut h = Xxh3::new();
            for (_, th) in &order {
                h.update(&th.to_le_bytes());
            }
            seg.push((h.digest(), tool_tokens));
        }
        seg.extend(messages.iter().filter(|m| m.2).map(|&(h, t, _)| (h, t)));
        seg.extend(messages.iter().filter(|m| !m.2).map(|&(h, t, _)| (h, t)));
        push_prefixes(&seg, &mut static_first);
    }

    // Shape: the system prompt(s) and the tool set (order-insensitive).
    let mut shape = 0u64;
    let has_system = messages.iter().any(|m| m.2);
    if has_system || !tools.is_empty() {
        let mut h = Xxh3::new();
        for m in messages.iter().filter(|m| m.2) {
            h.update(&m.0.to_le_bytes());
        }
        let mut th: Vec<u64> = tools.iter().map(|(h, _)| *h).collect();
        th.sort_unstable();
        h.update(b"|tools|");
        for x in th {
            h.update(&x.to_le_bytes());
        }
        shape = h.digest().max(1);
    }

    PromptFacts {
        as_sent,
        static_first,
        tool_tokens,
        tool_search_removed: tool_search_removed(view, set_hash, memo, policy),
        shape,
    }
}

/// A short label of a shape: the opening of the system prompt and the tool count.
pub fn shape_label(view: &RequestView) -> String {
    let sys = view
        .turns
        .iter()
        .find(|t| t.role == "system" || t.role == "developer")
        .map(|t| t.text.as_str());
    let mut label = match sys {
        Some(s) => {
            let one_line: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
            let mut cut: String = one_line.chars().take(72).collect();
            if cut.len() < one_line.len() {
                cut.push('…');
            }
            format!("system: {cut}")
        }
        None => "(no system prompt)".to_string(),
    };
    if !view.tools.is_empty() {
        label.push_str(&format!(" + {} tools", view.tools.len()));
    }
    label
}

/// Tokens the provider would read from cache for a matched prefix of `matched` tokens in a
/// prompt of `input` tokens: 0 below [`CACHE_MIN_TOKENS`], else whole 128-token steps.
pub fn cached_for_match(matched: u32, input: u64) -> u64 {
    if matched < CACHE_MIN_TOKENS || input < u64::from(CACHE_MIN_TOKENS) {
        return 0;
    }
    let steps = u64::from(matched / CACHE_STEP_TOKENS * CACHE_STEP_TOKENS);
    steps.min(input)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(threshold: usize, top_k: usize) -> SelectionPolicy {
        SelectionPolicy {
            mode: ToolMode::Prune,
            threshold,
            top_k,
            pinned: vec![],
            method: tierwise_tools::Method::Lexical,
            keep_share: 0.0,
            adaptive: tierwise_tools::Adaptive::OFF,
        }
    }

    fn tool(name: &str, desc: &str) -> Value {
        json!({"type": "function", "function": {"name": name, "description": desc}})
    }

    /// Values that differ hash apart (lengths and kinds are part of the encoding); equal values
    /// hash alike, and the two hashes of `hashes_of` are of the same bytes.
    #[test]
    fn content_hashes_tell_values_apart() {
        let values = [
            json!(["ab", "c"]),
            json!(["a", "bc"]),
            json!([["a"], "b"]),
            json!([["a", "b"]]),
            json!({"a": 1}),
            json!({"a": "1"}),
            json!({"a": 1.0}),
            json!({"a": [1]}),
            json!({"ab": ""}),
            json!({"a": "b"}),
            json!({"role": "system", "content": "x"}),
            json!({"content": "x", "role": "system"}),
            json!(null),
            json!(false),
            json!([]),
            json!({}),
        ];
        let hashes: std::collections::HashSet<u64> = values.iter().map(hash_of).collect();
        assert_eq!(hashes.len(), values.len());
        for v in &values {
            assert_eq!(hash_of(v), hash_of(&v.clone()));
            assert_eq!(hashes_of(v).0, hash_of(v));
        }
    }

    #[test]
    fn cache_steps() {
        assert_eq!(cached_for_match(1023, 5000), 0);
        assert_eq!(cached_for_match(1024, 5000), 1024);
        assert_eq!(cached_for_match(1151, 5000), 1024);
        assert_eq!(cached_for_match(1152, 5000), 1152);
        assert_eq!(cached_for_match(2000, 1500), 1500);
    }

    #[test]
    fn static_first_moves_system_and_sorts_tools() {
        let long = "policy ".repeat(1200);
        let a = RequestView::chat(&json!({"model": "m",
            "tools": [tool("b", "x"), tool("a", "y")],
            "messages": [{"role": "user", "content": "ctx 1"}, {"role": "system", "content": long}]}))
        .unwrap();
        let b = RequestView::chat(&json!({"model": "m",
            "tools": [tool("a", "y"), tool("b", "x")],
            "messages": [{"role": "user", "content": "ctx 2"}, {"role": "system", "content": long}]}))
        .unwrap();
        let mut memo = ToolMemo::default();
        let fa = facts(&a, &mut memo, &policy(2, 1));
        let fb = facts(&b, &mut memo, &policy(2, 1));
        // As sent: different tool order and a different first message: no common prefix.
        assert!(
            fa.as_sent
                .iter()
                .all(|p| fb.as_sent.iter().all(|q| q.hash != p.hash))
        );
        // Static first: tools sorted, then the system prompt: a shared ≥1024-token prefix.
        assert_eq!(fa.static_first[0].hash, fb.static_first[0].hash);
        assert!(fa.static_first[0].tokens >= CACHE_MIN_TOKENS);
        assert_eq!(fa.shape, fb.shape);
        assert_ne!(fa.shape, 0);
    }

    /// Given the prompt's token count, facts skip per-message work below the cache minimum
    /// and are the same facts (the example workload, short and long prompts, with and without
    /// tools and system prompts).
    #[test]
    fn counted_facts_are_the_facts() {
        let text = crate::test_workload();
        let mut views: Vec<RequestView> = text
            .lines()
            .step_by(5)
            .filter_map(|l| crate::call::parse_line(l.as_bytes()).ok())
            .map(|c| c.view)
            .collect();
        let long = "policy ".repeat(1200);
        views.push(
            RequestView::chat(&json!({"model": "m", "tools": [tool("a", "y")],
                "messages": [{"role": "system", "content": long}, {"role": "user", "content": "q"}]}))
            .unwrap(),
        );
        let (mut below, mut above) = (0, 0);
        let mut memo = ToolMemo::default();
        for v in &views {
            let n = tokens::count_messages(&v.messages);
            let reference = facts(v, &mut ToolMemo::default(), &policy(2, 1));
            assert_eq!(
                facts_counted(v, &mut memo, &policy(2, 1), Some(n)),
                reference
            );
            if reference.as_sent.is_empty() {
                below += 1;
            } else {
                above += 1;
            }
        }
        assert!(below > 50 && above > 0, "{below} below, {above} above");
    }

    #[test]
    fn tool_search_uses_the_selection() {
        let tools = vec![
            tool("get_weather", "Current weather for a city"),
            tool("send_email", "Send an email to a recipient"),
            tool("book_flight", "Book a flight between two airports"),
            tool("convert_currency", "Convert an amount between currencies"),
        ];
        let v = RequestView::chat(&json!({"model": "m", "tools": tools,
            "messages": [{"role": "user", "content": "What is the weather in Paris?"}]}))
        .unwrap();
        let mut memo = ToolMemo::default();
        let each: Vec<u32> = tools
            .iter()
            .map(|t| tokens::count_tools(std::slice::from_ref(t)) as u32)
            .collect();
        // 4 tools > threshold 2, top_k 1: only get_weather is kept
        let f = facts(&v, &mut memo, &policy(2, 1));
        assert_eq!(f.tool_tokens, each.iter().sum::<u32>());
        assert_eq!(f.tool_search_removed, each[1] + each[2] + each[3]);
        // at or under the threshold nothing is removed
        let f = facts(&v, &mut memo, &policy(4, 1));
        assert_eq!(f.tool_search_removed, 0);
    }
}
