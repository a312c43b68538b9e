//! A simulation of the provider's prompt cache, fed calls in time order.
//!
//! Model: an entry is a prompt prefix (ending at a segment boundary, ≥ 1024 tokens) on one
//! model. A call reads the longest live entry that is a prefix of its prompt and pays the
//! cached price for whole 128-token steps of it ([`crate::prompt::cached_for_match`]); then
//! every cacheable prefix of the call becomes (or stays) live. An entry dies after `ttl` of
//! inactivity (every hit refreshes it).
//!
//! Memory is bounded: entries expire in time order (a queue of insertions), and past `cap`
//! live entries the least recently inserted go first (fewer hits: the estimate stays low).

use std::collections::{HashMap, VecDeque};

use crate::prompt::Prefix;

#[derive(Debug)]
pub struct CacheSim {
    ttl_ms: i64,
    cap: usize,
    /// key → last use (ms).
    live: HashMap<u64, i64>,
    /// (time, key) in insertion order; stale pairs are skipped when popped.
    queue: VecDeque<(i64, u64)>,
    clock: i64,
}

fn mix(prefix: u64, model: u64) -> u64 {
    // splitmix64 finaliser over the pair: distinct models never share an entry.
    let mut z = prefix ^ model.rotate_left(29).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl CacheSim {
    pub fn new(ttl_secs: u64, cap: usize) -> CacheSim {
        CacheSim {
            ttl_ms: i64::try_from(ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
            cap: cap.max(1),
            live: HashMap::new(),
            queue: VecDeque::new(),
            clock: i64::MIN,
        }
    }

    /// Live entries now (for tests and memory checks).
    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// One call at time `now` (`None`: the clock does not move) on `model`, whose cacheable
    /// prefixes are `prefixes` (shortest first). Returns the matched prefix length in tokens.
    pub fn call(&mut self, model: u64, prefixes: &[Prefix], now: Option<i64>) -> u32 {
        if let Some(t) = now {
            self.clock = self.clock.max(t);
        }
        let now = self.clock;
        self.expire(now);
        let mut matched = 0;
        for p in prefixes.iter().rev() {
            if let Some(&t) = self.live.get(&mix(p.hash, model))
                && now.saturating_sub(t) <= self.ttl_ms
            {
                matched = p.tokens;
                break;
            }
        }
        for p in prefixes {
            let k = mix(p.hash, model);
            self.live.insert(k, now);
            self.queue.push_back((now, k));
        }
        while self.live.len() > self.cap || self.queue.len() > self.cap.saturating_mul(4) {
            let Some((t, k)) = self.queue.pop_front() else {
                break;
            };
            if self.live.get(&k) == Some(&t) {
                self.live.remove(&k);
            }
        }
        matched
    }

    fn expire(&mut self, now: i64) {
        while let Some(&(t, k)) = self.queue.front() {
            if now.saturating_sub(t) <= self.ttl_ms {
                break;
            }
            self.queue.pop_front();
            if self.live.get(&k) == Some(&t) {
                self.live.remove(&k);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;

    fn p(hash: u64, tokens: u32) -> Prefix {
        Prefix { hash, tokens }
    }

    #[test]
    fn hit_within_ttl_miss_after() {
        let mut c = CacheSim::new(300, 1000);
        let pre = [p(1, 1100), p(2, 2000)];
        assert_eq!(c.call(7, &pre, Some(0)), 0);
        // same prompt 10 s later: the whole 2000-token prefix is live
        assert_eq!(c.call(7, &pre, Some(10_000)), 2000);
        // a prompt sharing only the first prefix
        assert_eq!(c.call(7, &[p(1, 1100), p(3, 1500)], Some(20_000)), 1100);
        // other model: nothing
        assert_eq!(c.call(8, &pre, Some(30_000)), 0);
        // 301 s after the last use of prefix 1 on model 7: expired
        assert_eq!(c.call(7, &pre, Some(20_000 + 301_000)), 0);
    }

    #[test]
    fn hits_refresh_and_memory_is_bounded() {
        let mut c = CacheSim::new(300, 100);
        for i in 0..10_000u64 {
            c.call(1, &[p(i, 2000)], Some(i as i64));
        }
        assert!(c.len() <= 100);
        // refresh keeps an entry alive past the first TTL
        let mut c = CacheSim::new(1, 10);
        c.call(1, &[p(9, 2000)], Some(0));
        c.call(1, &[p(9, 2000)], Some(900));
        assert_eq!(c.call(1, &[p(9, 2000)], Some(1800)), 2000);
    }
}
