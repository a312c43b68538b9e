//! Aggregates: token sums per (model, service tier) bucket, per scenario. Cost is linear in
//! tokens within a context-length band, so pricing each bucket once at the end gives exactly
//! the sum of per-call costs (no rounding happens in `tierwise_core::cost`), at a fraction of
//! the work; the band is chosen per call, not by the bucket's summed input (`report::price`).

use std::hash::Hash;
use std::sync::Arc;

use tierwise_core::cost::{ServiceTier, Usage};

/// The audit's in-memory tables (per-call bucket sums, name interning, memos) use core's fast
/// hasher: keys are short model names, small tuples and content hashes.
pub use tierwise_core::hash::FastMap;

/// Requests and token sums.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Acc {
    pub requests: u64,
    pub usage: Usage,
}

impl Acc {
    pub fn add(&mut self, requests: u64, usage: &Usage) {
        self.requests += requests;
        self.usage.add(usage);
    }

    pub fn merge(&mut self, other: &Acc) {
        self.add(other.requests, &other.usage);
    }
}

/// A model id shared cheaply between aggregates.
pub type Name = Arc<str>;

/// `(model, service tier)`.
pub type ModelKey = (Name, ServiceTier);

/// Sums per key.
#[derive(Debug, Clone)]
pub struct Buckets<K: Eq + Hash>(pub FastMap<K, Acc>);

impl<K: Eq + Hash> Default for Buckets<K> {
    fn default() -> Self {
        Buckets(FastMap::default())
    }
}

impl<K: Eq + Hash + Clone> Buckets<K> {
    pub fn add(&mut self, key: K, requests: u64, usage: &Usage) {
        self.0.entry(key).or_default().add(requests, usage);
    }

    pub fn merge(&mut self, other: Buckets<K>) {
        for (k, v) in other.0 {
            self.0.entry(k).or_default().merge(&v);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &Acc)> {
        self.0.iter()
    }
}

/// Cache shares: input tokens and cached tokens now / simulated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheAcc {
    pub input: u64,
    pub actual: u64,
    pub as_sent: u64,
    pub static_first: u64,
}

impl CacheAcc {
    pub fn merge(&mut self, o: &CacheAcc) {
        self.input += o.input;
        self.actual += o.actual;
        self.as_sent += o.as_sent;
        self.static_first += o.static_first;
    }
}

/// One request shape being tracked.
#[derive(Debug, Clone, Default)]
pub struct ShapeEntry {
    pub label: String,
    /// Spend estimate (f64 list prices) for ranking only; money in reports comes from `spend`.
    pub rank: f64,
    /// Upper bound of spend this entry may have missed (it was not tracked from the start).
    pub rank_error: f64,
    pub spend: Buckets<ModelKey>,
    pub categories: FastMap<Name, u64>,
    /// Routed tier index → calls (`usize::MAX`: outside the ladder).
    pub routed: FastMap<usize, u64>,
    /// Longest cacheable prefix seen with static content first, tokens.
    pub cacheable_tokens: u32,
}

/// Heavy hitters by spend in bounded memory: when the table doubles past `cap`, only the
/// top `cap` by spend estimate are kept, and later newcomers carry the largest evicted
/// estimate as their error bound (a spend-weighted lossy count).
#[derive(Debug, Clone)]
pub struct ShapeTable {
    cap: usize,
    floor: f64,
    pub entries: FastMap<u64, ShapeEntry>,
}

impl ShapeTable {
    pub fn new(cap: usize) -> ShapeTable {
        ShapeTable {
            cap: cap.max(1),
            floor: 0.0,
            entries: FastMap::default(),
        }
    }

    /// The entry for `key`, created with `label()` if new.
    pub fn entry(&mut self, key: u64, label: impl FnOnce() -> String) -> &mut ShapeEntry {
        if !self.entries.contains_key(&key) && self.entries.len() >= self.cap * 2 {
            self.compact();
        }
        let floor = self.floor;
        self.entries.entry(key).or_insert_with(|| ShapeEntry {
            label: label(),
            rank_error: floor,
            ..ShapeEntry::default()
        })
    }

    fn compact(&mut self) {
        let mut ranks: Vec<f64> = self.entries.values().map(|e| e.rank).collect();
        ranks.sort_unstable_by(|a, b| b.total_cmp(a));
        let Some(&cut) = ranks.get(self.cap) else {
            return;
        };
        let mut evicted_max = self.floor;
        let mut kept = 0usize;
        self.entries.retain(|_, e| {
            let keep = e.rank > cut || (e.rank == cut && kept < self.cap);
            if keep {
                kept += 1;
            } else {
                evicted_max = evicted_max.max(e.rank);
            }
            keep
        });
        self.floor = evicted_max;
    }

    pub fn merge(&mut self, other: ShapeTable) {
        self.floor += other.floor;
        for (k, e) in other.entries {
            match self.entries.get_mut(&k) {
                None => {
                    self.entries.insert(k, e);
                }
                Some(mine) => {
                    mine.rank += e.rank;
                    mine.rank_error += e.rank_error;
                    mine.spend.merge(e.spend);
                    for (c, n) in e.categories {
                        *mine.categories.entry(c).or_default() += n;
                    }
                    for (t, n) in e.routed {
                        *mine.routed.entry(t).or_default() += n;
                    }
                    mine.cacheable_tokens = mine.cacheable_tokens.max(e.cacheable_tokens);
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;

    #[test]
    fn shape_table_keeps_heavy_hitters() {
        let mut t = ShapeTable::new(4);
        // one heavy shape among many light ones
        for i in 0..1000u64 {
            let e = t.entry(i % 50 + 1, || format!("s{i}"));
            e.rank += 1.0;
            let e = t.entry(999, || "heavy".into());
            e.rank += 10.0;
        }
        assert!(t.entries.len() <= 8);
        let top = t
            .entries
            .values()
            .max_by(|a, b| a.rank.total_cmp(&b.rank))
            .unwrap();
        assert_eq!(top.label, "heavy");
        assert_eq!(top.rank, 10_000.0);
    }
}
