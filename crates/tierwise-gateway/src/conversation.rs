//! Responses conversations keep their tier: a call that continues a stored conversation
//! (`previous_response_id`) goes to the model that answered the response it continues.
//!
//! Why: the provider keeps the conversation (and its reasoning items) per response, and its
//! prompt cache per model. Moving a follow-up to another tier re-bills the whole stored
//! conversation as uncached input on a model that never saw it, and makes the answers of one
//! conversation bounce between models. So for `model: "auto"` (a decision by rules, the
//! learned router or the default tier) the follow-up is pinned to the model that answered; a
//! forced tier (`x-tierwise-tier`) or an explicitly named model still wins.
//!
//! Where the tier comes from:
//! 1. [`Conversations`], a bounded in-memory map response id → the candidate that answered,
//!    filled by `account::finish` for every 2xx Responses call (JSON, stream, cascade) —
//!    [`CAPACITY`] ids, the oldest forgotten first;
//! 2. on a miss (an id answered before a restart, or by another replica), the provider itself:
//!    `GET /responses/{id}` names the `model` that answered (one round trip, bounded by
//!    [`LOOKUP_TIMEOUT`]); the answer is remembered. Nothing needs to be shared between
//!    replicas or kept across restarts, and the request log is not read on the hot path.
//!
//! An id found nowhere (not stored, deleted, another key's) routes as usual.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use axum::http::HeaderMap;
use tierwise_core::catalog::Catalog;
use tierwise_router::{Decision, Source};

use crate::dispatch::Candidate;
use crate::upstream::UpstreamClient;

/// Response ids remembered (about 100 bytes each: ~6.5 MB when full).
pub const CAPACITY: usize = 65_536;
/// The longest a provider lookup may take before the call routes as usual.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Response id → the model (and tier) that answered it. The map's hasher is std's randomly
/// seeded SipHash: the ids a client sends cannot be chosen to collide.
#[derive(Debug)]
pub struct Conversations {
    inner: Mutex<Inner>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<String, Candidate>,
    order: VecDeque<String>,
}

impl Default for Conversations {
    fn default() -> Self {
        Conversations::with_capacity(CAPACITY)
    }
}

impl Conversations {
    pub fn with_capacity(capacity: usize) -> Conversations {
        Conversations {
            inner: Mutex::new(Inner::default()),
            capacity: capacity.max(1),
        }
    }

    /// Remembers that `candidate` answered response `id`.
    pub fn remember(&self, id: &str, candidate: &Candidate) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.map.contains_key(id) {
            return;
        }
        while inner.map.len() >= self.capacity {
            match inner.order.pop_front() {
                Some(old) => {
                    inner.map.remove(&old);
                }
                None => break,
            }
        }
        inner.map.insert(id.to_string(), candidate.clone());
        inner.order.push_back(id.to_string());
    }

    /// The candidate that answered `id`, if remembered.
    pub fn get(&self, id: &str) -> Option<Candidate> {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .get(id)
            .cloned()
    }

    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The candidate that answered `id`: remembered, else asked of the provider (and then
    /// remembered). `None` when neither knows it.
    pub async fn find(
        &self,
        id: &str,
        upstream: &UpstreamClient,
        client_headers: &HeaderMap,
        catalog: &Catalog,
    ) -> Option<Candidate> {
        if let Some(c) = self.get(id) {
            return Some(c);
        }
        let lookup = upstream.retrieve_response_model(id, client_headers, LOOKUP_TIMEOUT);
        let model = match lookup.await {
            Ok(Some(model)) => model,
            Ok(None) => return None,
            Err(e) => {
                tracing::debug!(error = %e, id, "previous response: provider lookup failed");
                return None;
            }
        };
        let candidate = candidate_of(&model, catalog);
        self.remember(id, &candidate);
        Some(candidate)
    }
}

/// The candidate for a model the provider named (a tier's model or a snapshot of it, else a
/// model outside the ladder, sent as named).
pub fn candidate_of(model: &str, catalog: &Catalog) -> Candidate {
    match catalog
        .tier_of_model(model)
        .and_then(|i| Some((i, catalog.tier(i)?)))
    {
        Some((i, t)) => Candidate {
            tier: Some(i),
            tier_name: t.name.clone(),
            model: t.model.clone(),
        },
        None => Candidate {
            tier: None,
            tier_name: "none".to_string(),
            model: model.to_string(),
        },
    }
}

/// Whether the router chose the tier itself (`auto`), so a conversation may pin it.
pub fn routed_automatically(decision: &Decision) -> bool {
    matches!(
        decision.source,
        Source::Rule(_) | Source::Learned | Source::Default
    )
}

/// `decision` moved to `prev`, the model that answered the response it continues: fallbacks
/// are the tiers above it, the router's reason is kept after the pin's.
pub fn pin(decision: &mut Decision, prev: &Candidate, catalog: &Catalog) {
    let same = decision.tier == prev.tier && decision.model == prev.model;
    decision.reason = if same {
        format!(
            "{} (conversation stays on {})",
            decision.reason, prev.tier_name
        )
    } else {
        format!(
            "previous_response_id → {} (conversation keeps its tier; router: {})",
            prev.tier_name, decision.reason
        )
    };
    if same {
        return;
    }
    decision.tier = prev.tier;
    decision.tier_name = prev.tier_name.clone();
    decision.model = prev.model.clone();
    decision.raised_from = None;
    decision.fallbacks = match prev.tier {
        Some(i) => (i + 1..catalog.tiers().len()).collect(),
        None => Vec::new(),
    };
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;

    fn cand(i: usize) -> Candidate {
        Candidate {
            tier: Some(i),
            tier_name: format!("t{i}"),
            model: format!("m{i}"),
        }
    }

    #[test]
    fn bounded_oldest_forgotten_first() {
        let c = Conversations::with_capacity(3);
        for i in 0..5 {
            c.remember(&format!("resp_{i}"), &cand(i));
        }
        assert_eq!(c.len(), 3);
        assert!(c.get("resp_0").is_none() && c.get("resp_1").is_none());
        assert_eq!(c.get("resp_4"), Some(cand(4)));
        // remembering a known id again does not grow the order queue
        c.remember("resp_4", &cand(1));
        assert_eq!(c.get("resp_4"), Some(cand(4)));
        assert_eq!(c.inner.lock().unwrap().order.len(), 3);
    }
}
