//! Tool search in the gateway (issue 5): the [`ToolShaper`] that prunes a request's `tools`.
//!
//! A request with more tools than `[tools].threshold` keeps the `top_k` most relevant tools
//! plus every tool named by `tool_choice`, already called in the conversation, or pinned in
//! config ([`tierwise_tools::select`]). Kept tools stay in their original order, so the same
//! tool set always yields the same prompt prefix (provider prompt cache).
//!
//! Bad input: a tool the index cannot read (not a function tool, no name) is **always kept**,
//! untouched; duplicate names and missing descriptions are indexed as they are and never
//! edited. With mode `off` the body is not touched at all.
//!
//! Indexes are cached by [`ToolIndex::fingerprint`] of the tool list (agents resend the same
//! list on every call), at most [`CACHE_CAPACITY`] of them, oldest evicted first.
//!
//! Mode `tool_search` currently prunes like `prune` (the gateway does not yet add and answer
//! the `tool_search` function).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Map, Value};
use tierwise_core::config::{ToolMode, Tools};
use tierwise_core::request::RequestView;
use tierwise_tools::{Policy, ToolIndex, select};

use crate::shape::{ToolShaper, ToolShaping};

/// Tool lists whose index is kept.
pub const CACHE_CAPACITY: usize = 256;

/// Prunes `tools` with the `[tools]` policy (see the module docs).
#[derive(Debug)]
pub struct ToolSearchShaper {
    policy: Policy,
    cache: Mutex<IndexCache>,
}

#[derive(Debug, Default)]
struct IndexCache {
    map: HashMap<u64, Arc<ToolIndex>>,
    order: VecDeque<u64>,
}

impl IndexCache {
    fn get_or_build(&mut self, tools: &[Value]) -> Arc<ToolIndex> {
        let key = ToolIndex::fingerprint(tools);
        if let Some(index) = self.map.get(&key) {
            return Arc::clone(index);
        }
        let index = Arc::new(ToolIndex::build(tools));
        while self.map.len() >= CACHE_CAPACITY {
            match self.order.pop_front() {
                Some(old) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
        self.map.insert(key, Arc::clone(&index));
        self.order.push_back(key);
        index
    }
}

impl ToolSearchShaper {
    pub fn new(policy: Policy) -> ToolSearchShaper {
        ToolSearchShaper {
            policy,
            cache: Mutex::new(IndexCache::default()),
        }
    }

    /// The shaper of a `[tools]` config section.
    pub fn from_config(tools: &Tools) -> ToolSearchShaper {
        ToolSearchShaper::new(Policy::from_config(tools))
    }

    /// Indexes currently cached.
    pub fn cached(&self) -> usize {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .len()
    }

    fn index(&self, tools: &[Value]) -> Arc<ToolIndex> {
        // The lock is held while building: concurrent requests with the same new tool list
        // then build it once. A build of a few hundred tools takes well under a millisecond.
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_build(tools)
    }
}

impl ToolShaper for ToolSearchShaper {
    fn shape(&self, body: &mut Map<String, Value>, view: &RequestView) -> ToolShaping {
        let Some(Value::Array(tools)) = body.get("tools") else {
            return ToolShaping::default();
        };
        let offered = tools.len();
        if self.policy.mode == ToolMode::Off || offered <= self.policy.threshold {
            return ToolShaping {
                offered,
                sent: offered,
                ..ToolShaping::default()
            };
        }
        let index = self.index(tools);
        let selection = select(&index, view, &self.policy);
        let shaping = ToolShaping {
            removed: offered.saturating_sub(selection.kept.len()),
            offered,
            sent: selection.kept.len(),
            tokens_offered: selection.tokens_offered,
            tokens_sent: selection.tokens_sent,
        };
        if selection.pruned {
            let kept = selection.apply(tools);
            body.insert("tools".into(), Value::Array(kept));
        }
        shaping
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool(name: &str, desc: &str) -> Value {
        json!({"type": "function", "function": {"name": name, "description": desc,
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}})
    }

    fn catalog(n: usize) -> Vec<Value> {
        (0..n)
            .map(|i| tool(&format!("tool_{i}"), &format!("does thing number {i}")))
            .collect()
    }

    fn policy(mode: ToolMode) -> Policy {
        Policy {
            mode,
            threshold: 16,
            top_k: 3,
            pinned: vec!["tool_7".into()],
            method: tierwise_tools::Method::Lexical,
        }
    }

    fn body(tools: Vec<Value>, extra: Value) -> (Map<String, Value>, RequestView) {
        let mut v = json!({"model": "auto",
            "messages": [{"role": "user", "content": "get the weather forecast for Paris"}],
            "tools": tools});
        if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
            m.extend(e);
        }
        let view = RequestView::chat(&v).unwrap();
        (v.as_object().unwrap().clone(), view)
    }

    #[test]
    fn prunes_keeps_forced_in_original_order_and_caches() {
        let mut tools = catalog(40);
        tools.insert(
            5,
            tool("get_weather_forecast", "Weather forecast for a city"),
        );
        tools.push(json!({"type": "web_search"}));
        let shaper = ToolSearchShaper::new(policy(ToolMode::Prune));
        let extra = json!({"tool_choice": {"type": "function", "function": {"name": "tool_30"}}});
        let (mut b, view) = body(tools.clone(), extra.clone());
        let s = shaper.shape(&mut b, &view);
        let kept = b["tools"].as_array().unwrap().clone();
        let names: Vec<&str> = kept
            .iter()
            .map(|t| {
                t.pointer("/function/name")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
            })
            .collect();
        assert!(names.contains(&"get_weather_forecast"), "{names:?}");
        assert!(
            names.contains(&"tool_30") && names.contains(&"tool_7"),
            "{names:?}"
        );
        assert!(
            names.contains(&"?"),
            "the unindexable tool is kept: {names:?}"
        );
        assert!(kept.len() <= 3 + 3, "{names:?}");
        // Original order.
        let pos: Vec<usize> = kept
            .iter()
            .map(|k| tools.iter().position(|t| t == k).unwrap())
            .collect();
        assert!(pos.windows(2).all(|w| w[0] < w[1]), "{pos:?}");
        assert_eq!(
            (s.offered, s.sent, s.removed),
            (42, kept.len(), 42 - kept.len())
        );
        assert!(s.tokens_sent < s.tokens_offered && s.tokens_sent > 0);
        // Same list again: the cached index, the same result.
        let (mut b2, view2) = body(tools, extra);
        assert_eq!(shaper.shape(&mut b2, &view2), s);
        assert_eq!(b2["tools"], b["tools"]);
        assert_eq!(shaper.cached(), 1);
    }

    #[test]
    fn off_and_small_lists_are_untouched() {
        let (mut b, view) = body(catalog(40), json!({}));
        let before = b.clone();
        let s = ToolSearchShaper::new(policy(ToolMode::Off)).shape(&mut b, &view);
        assert_eq!(b, before);
        assert_eq!((s.offered, s.sent, s.removed), (40, 40, 0));
        let (mut b, view) = body(catalog(16), json!({}));
        let before = b.clone();
        let s = ToolSearchShaper::new(policy(ToolMode::Prune)).shape(&mut b, &view);
        assert_eq!(b, before);
        assert_eq!(s.removed, 0);
    }
}
