//! Which tools a request keeps: a pure function of the index, the conversation and the policy.
//!
//! Kept = every tool the index could not read (passed through) ∪ tools named by `tool_choice`
//! ∪ tools the conversation already called ∪ pinned tools ∪ the k most relevant. Nothing
//! is pruned when the request has at most `threshold` tools or the mode is `off`. Kept tools
//! stay in their **original order**, so the same tool set always yields the same prefix and
//! the provider's prompt cache keeps hitting.
//!
//! k adapts to the scores ([`SelectionPolicy::bounds`], [`adaptive_k`]): at least
//! `max(top_k, ⌈keep_share × tools⌉)`, plus every further tool scoring at least `tail_ratio` ×
//! the best score, up to `max(floor, min(max_k, ⌈max_share × tools⌉))`. A flat tail (many
//! near-ties, little evidence which one is meant) keeps more tools; a sharp head keeps the
//! floor. On a small catalog the share bound lets recall hold; on thousands of tools `max_k`
//! keeps the schema tokens sent near the floor.

use serde_json::Value;
use tierwise_core::config::{ToolMethod, ToolMode, Tools};
use tierwise_core::request::RequestView;

use crate::index::ToolIndex;
use crate::query::{Method, Query, QueryEmbedder, top_scored};

/// Which tools [`select`] keeps: the `[tools]` config section (not the router's
/// `tierwise_router::Policy`, which picks a tier).
#[derive(Debug, Clone, PartialEq)]
pub struct SelectionPolicy {
    pub mode: ToolMode,
    /// Prune only when a request has more tools than this.
    pub threshold: usize,
    /// Relevant tools kept (on top of named, called, pinned and unreadable ones).
    pub top_k: usize,
    /// Tool names always kept.
    pub pinned: Vec<String>,
    pub method: Method,
    /// Share of the indexed tools also kept on large requests (see [`SelectionPolicy::k_for`]).
    pub keep_share: f64,
    /// Adaptive k beyond [`SelectionPolicy::k_for`] ([`Adaptive::OFF`]: exactly that).
    pub adaptive: Adaptive,
}

/// Bounds and cut of the adaptive k (`tools.max_k`, `tools.max_share`, `tools.tail_ratio`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adaptive {
    /// At most this many relevant tools (unless the floor is higher).
    pub max_k: usize,
    /// At most this share of the indexed tools (unless the floor is higher).
    pub max_share: f64,
    /// Tools beyond the floor are kept while their score is at least this × the best score.
    pub tail_ratio: f32,
}

impl Adaptive {
    /// No adaptation: k is [`SelectionPolicy::k_for`].
    pub const OFF: Adaptive = Adaptive {
        max_k: 0,
        max_share: 0.0,
        tail_ratio: 1.0,
    };

    /// The adaptive part of a `[tools]` config section.
    pub fn from_config(tools: &Tools) -> Adaptive {
        Adaptive {
            max_k: tools.max_k,
            max_share: tools.max_share,
            // A config ratio in [0, 1]: exact enough as f32.
            #[expect(clippy::cast_possible_truncation, reason = "a ratio in [0, 1]")]
            tail_ratio: tools.tail_ratio as f32,
        }
    }
}

/// ⌈share × n⌉ for a share clamped to [0, 1].
fn share_of(share: f64, n: usize) -> usize {
    let x = (share.clamp(0.0, 1.0) * n as f64).ceil();
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "0 <= x <= n"
    )]
    let x = x as usize;
    x.min(n)
}

/// How many of `scores` (best first) to keep: `lo`, then further tools while their score is at
/// least `ratio` × the best, at most `hi`. A best score of 0 (nothing matched) keeps `hi`: with no
/// evidence, recall needs the whole budget.
pub fn adaptive_k(scores: &[f32], lo: usize, hi: usize, ratio: f32) -> usize {
    let hi = hi.min(scores.len());
    let lo = lo.min(hi);
    let best = scores.first().copied().unwrap_or(0.0);
    if best <= 0.0 || !best.is_finite() {
        return hi;
    }
    let cut = ratio * best;
    lo + scores
        .get(lo..hi)
        .unwrap_or(&[])
        .iter()
        .take_while(|&&s| s >= cut)
        .count()
}

impl SelectionPolicy {
    /// The policy of a `[tools]` config section. Hybrid needs an embedder, which the caller
    /// passes to [`select_with`] (without one it ranks like lexical).
    pub fn from_config(tools: &Tools) -> SelectionPolicy {
        SelectionPolicy {
            mode: tools.mode,
            threshold: tools.threshold,
            top_k: tools.top_k,
            pinned: tools.pinned.clone(),
            method: match tools.method {
                ToolMethod::Bm25 => Method::Bm25,
                ToolMethod::Lexical => Method::Lexical,
                ToolMethod::Hybrid => Method::Hybrid,
            },
            keep_share: tools.keep_share,
            adaptive: Adaptive::from_config(tools),
        }
    }

    /// Relevant tools kept from `indexed` searchable tools: `top_k`, or ⌈keep_share × indexed⌉
    /// when larger. A token budget is relative (removing 98% of the schemas of 4,000 tools
    /// leaves room for ~80 of them), so large catalogs keep more than a fixed k.
    pub fn k_for(&self, indexed: usize) -> usize {
        let share = (self.keep_share.clamp(0.0, 1.0) * indexed as f64).ceil();
        // `share` is at most `indexed`, a usize.
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "0 <= share <= indexed"
        )]
        let share = share as usize;
        self.top_k.max(share)
    }

    /// The floor and ceiling of k for `indexed` searchable tools (ceiling ≥ floor; both may
    /// exceed `indexed`, which then keeps everything).
    pub fn bounds(&self, indexed: usize) -> (usize, usize) {
        let lo = self.k_for(indexed);
        let a = self.adaptive;
        let hi = a.max_k.min(share_of(a.max_share, indexed));
        (lo, lo.max(hi))
    }
}

/// Why a tool was kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum Reason {
    /// Nothing was pruned (mode off, or at most `threshold` tools).
    NotPruned,
    /// Named by `tool_choice`.
    ToolChoice,
    /// Called earlier in the conversation.
    Called,
    /// Pinned in config.
    Pinned,
    /// Not a readable function tool: passed through untouched.
    Unindexed,
    /// Among the `top_k` most relevant (rank 0 = best).
    Relevant { rank: usize },
}

/// One kept tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Kept {
    /// Position in the request's `tools`.
    pub index: usize,
    #[serde(flatten)]
    pub reason: Reason,
}

/// The outcome of selection.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Selection {
    /// Kept tools in their original order.
    pub kept: Vec<Kept>,
    /// Whether any tool was removed.
    pub pruned: bool,
    /// o200k tokens of all the request's tool schemas.
    pub tokens_offered: usize,
    /// o200k tokens of the kept tool schemas.
    pub tokens_sent: usize,
}

impl Selection {
    /// Positions of the kept tools, in original order.
    pub fn indices(&self) -> Vec<usize> {
        self.kept.iter().map(|k| k.index).collect()
    }

    /// The kept tools, cloned from `tools` (the same list the index was built from).
    pub fn apply(&self, tools: &[Value]) -> Vec<Value> {
        self.kept
            .iter()
            .filter_map(|k| tools.get(k.index).cloned())
            .collect()
    }
}

/// Names in a `tool_choice`: `{"type":"function","function":{"name":…}}` (chat),
/// `{"type":"function","name":…}` (Responses), and `allowed_tools` lists (both shapes).
pub fn tool_choice_names(choice: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut push = |v: &Value| {
        if let Some(n) = v
            .pointer("/function/name")
            .or_else(|| v.get("name"))
            .and_then(Value::as_str)
        {
            out.push(n.to_string());
        }
    };
    push(choice);
    let lists = [
        choice.get("tools"),
        choice.pointer("/allowed_tools/tools"),
        choice.get("allowed_tools").filter(|v| v.is_array()),
    ];
    for list in lists.into_iter().flatten().filter_map(Value::as_array) {
        list.iter().for_each(&mut push);
    }
    out
}

/// Selects the tools of a request (lexical, or hybrid with the index's embedder).
pub fn select(index: &ToolIndex, view: &RequestView, policy: &SelectionPolicy) -> Selection {
    select_with(index, view, policy, None)
}

/// [`select`] with an embedder for [`Method::Hybrid`] (the one the index was built with).
pub fn select_with(
    index: &ToolIndex,
    view: &RequestView,
    policy: &SelectionPolicy,
    embedder: QueryEmbedder<'_>,
) -> Selection {
    let mut forced: Vec<(usize, Reason)> = Vec::new();
    if let Some(choice) = &view.tool_choice {
        for name in tool_choice_names(choice) {
            forced.extend(
                index
                    .positions(&name)
                    .iter()
                    .map(|&i| (i, Reason::ToolChoice)),
            );
        }
    }
    for turn in &view.turns {
        for name in &turn.tool_calls {
            forced.extend(index.positions(name).iter().map(|&i| (i, Reason::Called)));
        }
    }
    for name in &policy.pinned {
        forced.extend(index.positions(name).iter().map(|&i| (i, Reason::Pinned)));
    }
    if !prunes(index, policy) {
        return keep_all(index);
    }
    let ranking = relevant(index, &Query::from_view(view), policy, embedder);
    select_ranked(index, &ranking, &forced, policy)
}

/// The relevant tools the policy keeps for `query`, best first: the top of the ranking, cut by
/// [`adaptive_k`] within [`SelectionPolicy::bounds`].
pub fn relevant(
    index: &ToolIndex,
    query: &Query,
    policy: &SelectionPolicy,
    embedder: QueryEmbedder<'_>,
) -> Vec<usize> {
    let (lo, hi) = policy.bounds(index.indexed_len());
    let scored = top_scored(index, query, policy.method, embedder, None, hi);
    let scores: Vec<f32> = scored.iter().map(|&(_, s)| s).collect();
    let k = adaptive_k(&scores, lo, hi, policy.adaptive.tail_ratio);
    scored.into_iter().take(k).map(|(i, _)| i).collect()
}

/// Whether `policy` prunes a list of this many tools.
pub fn prunes(index: &ToolIndex, policy: &SelectionPolicy) -> bool {
    policy.mode != ToolMode::Off && index.len() > policy.threshold
}

/// Everything kept, as is.
pub fn keep_all(index: &ToolIndex) -> Selection {
    let tokens = index.tokens_of(0..index.len());
    Selection {
        kept: (0..index.len())
            .map(|index| Kept {
                index,
                reason: Reason::NotPruned,
            })
            .collect(),
        pruned: false,
        tokens_offered: tokens,
        tokens_sent: tokens,
    }
}

/// The selection given a ranking (best first) and the forced tools: at most the ceiling of
/// [`SelectionPolicy::bounds`] relevant tools (pass [`relevant`]'s cut ranking for the
/// adaptive k, or a full ranking with [`Adaptive::OFF`] for exactly `k_for`). The first reason
/// given for a tool wins; pass forced tools in precedence order.
pub fn select_ranked(
    index: &ToolIndex,
    ranking: &[usize],
    forced: &[(usize, Reason)],
    policy: &SelectionPolicy,
) -> Selection {
    let n = index.len();
    let mut reason: Vec<Option<Reason>> = vec![None; n];
    for &(i, r) in forced {
        if let Some(slot) = reason.get_mut(i)
            && slot.is_none()
        {
            *slot = Some(r);
        }
    }
    for (slot, e) in reason.iter_mut().zip(index.entries()) {
        if slot.is_none() && !e.is_indexed() {
            *slot = Some(Reason::Unindexed);
        }
    }
    for (rank, &i) in ranking
        .iter()
        .take(policy.bounds(index.indexed_len()).1)
        .enumerate()
    {
        if let Some(slot) = reason.get_mut(i)
            && slot.is_none()
        {
            *slot = Some(Reason::Relevant { rank });
        }
    }
    let kept: Vec<Kept> = reason
        .iter()
        .enumerate()
        .filter_map(|(index, r)| r.map(|reason| Kept { index, reason }))
        .collect();
    Selection {
        pruned: kept.len() < n,
        tokens_offered: index.tokens_of(0..n),
        tokens_sent: index.tokens_of(kept.iter().map(|k| k.index)),
        kept,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;
    use serde_json::json;

    fn tools(n: usize) -> Vec<Value> {
        let topics = [
            "weather",
            "flight",
            "email",
            "stock",
            "invoice",
            "translate",
            "recipe",
            "taxi",
            "music",
            "news",
        ];
        (0..n)
            .map(|i| {
                let t = topics[i % topics.len()];
                json!({"type": "function", "function": {"name": format!("{t}_tool_{i}"), "description": format!("Handles {t} requests, variant {i}"), "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}})
            })
            .collect()
    }

    fn policy(threshold: usize, top_k: usize) -> SelectionPolicy {
        SelectionPolicy {
            mode: ToolMode::Prune,
            threshold,
            top_k,
            pinned: vec![],
            keep_share: 0.0,
            method: Method::Lexical,
            adaptive: Adaptive::OFF,
        }
    }

    #[test]
    fn adaptive_k_keeps_a_flat_tail_and_cuts_a_sharp_head() {
        let flat = [1.0, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4];
        let sharp = [1.0, 0.2, 0.1, 0.1, 0.05, 0.0, 0.0, 0.0];
        assert_eq!(adaptive_k(&flat, 2, 6, 0.55), 6, "bounded by the ceiling");
        assert_eq!(adaptive_k(&flat, 2, 8, 0.55), 6);
        assert_eq!(adaptive_k(&sharp, 2, 8, 0.3), 2, "the floor");
        assert_eq!(adaptive_k(&sharp, 0, 8, 0.3), 1);
        assert_eq!(
            adaptive_k(&[0.0; 5], 1, 4, 0.3),
            4,
            "no evidence: the ceiling"
        );
        assert_eq!(adaptive_k(&flat[..3], 2, 64, 0.3), 3, "never past the pool");
        assert_eq!(adaptive_k(&[], 2, 64, 0.3), 0);
        assert_eq!(adaptive_k(&flat, 3, 8, 1.0), 3, "ratio 1: only exact ties");
    }

    #[test]
    fn bounds_follow_the_config() {
        let mut p = policy(16, 24);
        p.keep_share = 0.016;
        assert_eq!(p.bounds(4076), (66, 66), "off: exactly k_for");
        p.adaptive = Adaptive {
            max_k: 64,
            max_share: 0.25,
            tail_ratio: 0.3,
        };
        assert_eq!(p.bounds(200), (24, 50), "small catalogs: a share");
        assert_eq!(p.bounds(1951), (32, 64), "larger: max_k");
        assert_eq!(p.bounds(4076), (66, 66), "the floor wins");
        assert_eq!(p.bounds(1), (24, 24), "one tool: the floor (past the pool)");
        let defaults = SelectionPolicy::from_config(
            &tierwise_core::Config::embedded(&|_: &str| None)
                .unwrap()
                .tools,
        );
        assert!(defaults.adaptive.max_k >= defaults.top_k);
        assert!(defaults.adaptive.tail_ratio > 0.0 && defaults.adaptive.tail_ratio < 1.0);
    }

    #[test]
    fn adaptive_selection_stays_within_bounds_on_one_tool_and_duplicates() {
        let mut ts = tools(40);
        ts.push(ts[0].clone());
        let idx = ToolIndex::build(&ts);
        let view = RequestView::chat(
            &json!({"model": "auto", "messages": [{"role": "user", "content": "weather please"}]}),
        )
        .unwrap();
        let mut p = policy(0, 2);
        p.adaptive = Adaptive {
            max_k: 8,
            max_share: 1.0,
            tail_ratio: 0.5,
        };
        let s = select(&idx, &view, &p);
        let relevant = s
            .kept
            .iter()
            .filter(|k| matches!(k.reason, Reason::Relevant { .. }))
            .count();
        // Five weather tools (one a duplicate name) tie: the flat head is kept, up to max_k.
        assert_eq!(relevant, 5, "{:?}", s.kept);
        let one = ToolIndex::build(&tools(1));
        let s = select(&one, &view, &p);
        assert_eq!(s.kept.len(), 1);
        assert!(!s.pruned);
    }

    #[test]
    fn large_catalogs_keep_a_share() {
        let mut p = policy(16, 24);
        assert_eq!(p.k_for(4076), 24);
        p.keep_share = 0.016;
        assert_eq!(p.k_for(4076), 66);
        assert_eq!(p.k_for(1951), 32);
        assert_eq!(p.k_for(300), 24);
        p.keep_share = 7.0; // clamped to 1
        assert_eq!(p.k_for(30), 30);
    }

    #[test]
    fn keeps_named_called_pinned_and_unreadable_tools() {
        let mut ts = tools(30);
        ts.push(json!({"type": "web_search"}));
        let idx = ToolIndex::build(&ts);
        let view = RequestView::chat(&json!({"model": "auto", "tool_choice": {"type": "function", "function": {"name": "music_tool_8"}},
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "news_tool_9", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "ok"},
                {"role": "user", "content": "what is the weather forecast"}]}))
        .unwrap();
        let mut p = policy(16, 2);
        p.pinned = vec!["taxi_tool_7".into(), "no_such_tool".into()];
        let s = select(&idx, &view, &p);
        assert!(s.pruned);
        let reasons: Vec<(usize, Reason)> = s.kept.iter().map(|k| (k.index, k.reason)).collect();
        assert!(reasons.contains(&(8, Reason::ToolChoice)));
        assert!(reasons.contains(&(9, Reason::Called)));
        assert!(reasons.contains(&(7, Reason::Pinned)));
        assert!(reasons.contains(&(30, Reason::Unindexed)));
        let relevant: Vec<usize> = s
            .kept
            .iter()
            .filter(|k| matches!(k.reason, Reason::Relevant { .. }))
            .map(|k| k.index)
            .collect();
        assert_eq!(relevant.len(), 2);
        assert!(
            relevant.iter().all(|i| i % 10 == 0),
            "weather tools: {relevant:?}"
        );
        let idxs = s.indices();
        assert!(idxs.windows(2).all(|w| w[0] < w[1]), "original order");
        assert!(s.tokens_sent < s.tokens_offered);
        assert_eq!(s.apply(&ts).len(), s.kept.len());
    }

    #[test]
    fn no_pruning_at_or_below_threshold_or_when_off() {
        let ts = tools(16);
        let idx = ToolIndex::build(&ts);
        let view = RequestView::chat(
            &json!({"model": "auto", "messages": [{"role": "user", "content": "weather"}]}),
        )
        .unwrap();
        let s = select(&idx, &view, &policy(16, 2));
        assert!(!s.pruned);
        assert_eq!(s.kept.len(), 16);
        assert_eq!(s.tokens_sent, s.tokens_offered);
        let ts = tools(40);
        let idx = ToolIndex::build(&ts);
        let mut p = policy(16, 2);
        p.mode = ToolMode::Off;
        assert_eq!(select(&idx, &view, &p).kept.len(), 40);
    }

    #[test]
    fn duplicate_names_are_kept_together_when_named() {
        let mut ts = tools(20);
        ts.push(ts[3].clone());
        let idx = ToolIndex::build(&ts);
        let view = RequestView::chat(
            &json!({"model": "auto", "tool_choice": {"type": "function", "name": "stock_tool_3"},
            "messages": [{"role": "user", "content": "weather"}]}),
        )
        .unwrap();
        let s = select(&idx, &view, &policy(16, 1));
        let named: Vec<usize> = s
            .kept
            .iter()
            .filter(|k| k.reason == Reason::ToolChoice)
            .map(|k| k.index)
            .collect();
        assert_eq!(named, [3, 20]);
    }

    #[test]
    fn tool_choice_shapes() {
        assert_eq!(tool_choice_names(&json!("auto")), Vec::<String>::new());
        assert_eq!(
            tool_choice_names(&json!({"type": "function", "function": {"name": "a"}})),
            ["a"]
        );
        assert_eq!(
            tool_choice_names(&json!({"type": "function", "name": "b"})),
            ["b"]
        );
        assert_eq!(
            tool_choice_names(
                &json!({"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [{"type": "function", "function": {"name": "c"}}]}})
            ),
            ["c"]
        );
        assert_eq!(
            tool_choice_names(
                &json!({"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "d"}]})
            ),
            ["d"]
        );
    }

    #[test]
    fn same_tool_set_same_selection() {
        let ts = tools(50);
        let idx = ToolIndex::build(&ts);
        let view = RequestView::chat(&json!({"model": "auto", "messages": [{"role": "user", "content": "stock price then email"}]})).unwrap();
        let a = select(&idx, &view, &policy(16, 5));
        let b = select(&ToolIndex::build(&ts), &view, &policy(16, 5));
        assert_eq!(a, b);
    }
}
