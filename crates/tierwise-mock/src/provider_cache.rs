//! A simulation of the provider's prompt cache, close enough to OpenAI's documented behaviour
//! that prompt-cache shaping can be measured against it (opt-in: [`crate::Mock::with_provider_cache`];
//! the default mock keeps its simple warm cache, see [`crate::answer`]).
//!
//! - The prompt is the o200k tokens of the tools (as JSON), then each message's role and text
//!   (Responses: `instructions`, then the input items), in request order.
//! - Routing: a request goes to a machine chosen by the hash of its first 256 tokens and its
//!   `prompt_cache_key`. A route takes [`ProviderCache::per_machine_per_minute`] requests a
//!   minute on its machine; the next ones overflow to the following machines (cold caches).
//! - Each machine caches prefixes of 1024 tokens and more, in 128-token steps, keyed by the
//!   prefix's hash and `prompt_cache_key`; an entry lives [`ProviderCache::ttl`] after its
//!   last use.
//! - A request reads the longest cached prefix of its own prompt on its machine
//!   (`cached_tokens`) and writes the rest of its cacheable prefix (`cache_write_tokens`).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use serde_json::Value;
use tierwise_core::hash::FastHasher;
use tierwise_core::tokens;

use crate::answer::MockUsage;

/// Tokens the routing hash covers.
pub const ROUTING_PREFIX_TOKENS: usize = 256;
/// The shortest cacheable prefix.
pub const MIN_PREFIX_TOKENS: usize = 1024;
/// Cached prefixes grow in steps of this many tokens.
pub const STEP_TOKENS: usize = 128;

/// The simulated cache (see the module docs).
#[derive(Debug)]
pub struct ProviderCache {
    /// Machines in the pool a route's overflow walks through.
    pub machines: u64,
    /// Requests a minute one route sends to one machine before overflowing.
    pub per_machine_per_minute: u64,
    /// How long an entry lives after its last use.
    pub ttl: Duration,
    /// Route hash → (start of its current minute, requests in it).
    routes: HashMap<u64, (Instant, u64)>,
    /// (machine, prefix-and-key hash) → expiry.
    entries: HashMap<(u64, u64), Instant>,
}

impl Default for ProviderCache {
    /// 64 machines, 15 requests a minute per route and machine, a 5-minute TTL (OpenAI's
    /// documented figures).
    fn default() -> Self {
        ProviderCache::new(64, 15, Duration::from_secs(300))
    }
}

fn h(value: impl Hash) -> u64 {
    let mut hasher = FastHasher::default();
    value.hash(&mut hasher);
    hasher.finish()
}

/// The prompt's tokens, in the order the provider sees them (see the module docs).
pub fn prompt_tokens(body: &Value) -> Vec<u32> {
    let mut text = String::new();
    if let Some(tools) = body.get("tools").filter(|t| !t.is_null()) {
        text.push_str(&tools.to_string());
        text.push('\n');
    }
    if let Some(Value::String(i)) = body.get("instructions") {
        text.push_str(i);
        text.push('\n');
    }
    let items = body.get("messages").or_else(|| body.get("input"));
    match items {
        Some(Value::Array(items)) => {
            for m in items {
                if let Some(role) = m.get("role").and_then(Value::as_str) {
                    text.push_str(role);
                    text.push('\n');
                }
                if let Some(content) = m.get("content") {
                    text.push_str(&tokens::content_text(content));
                }
                text.push('\n');
            }
        }
        Some(Value::String(s)) => text.push_str(s),
        _ => {}
    }
    tokens::encode(&text)
}

impl ProviderCache {
    pub fn new(machines: u64, per_machine_per_minute: u64, ttl: Duration) -> ProviderCache {
        ProviderCache {
            machines: machines.max(1),
            per_machine_per_minute: per_machine_per_minute.max(1),
            ttl,
            routes: HashMap::new(),
            entries: HashMap::new(),
        }
    }

    /// Serves one request at `now`: `(cached, written)` tokens of its prompt `toks`.
    pub fn serve(&mut self, toks: &[u32], key: Option<&str>, now: Instant) -> (u64, u64) {
        let head = &toks[..toks.len().min(ROUTING_PREFIX_TOKENS)];
        let route = h((head, key));
        let (start, count) = self.routes.entry(route).or_insert((now, 0));
        if now.duration_since(*start) >= Duration::from_secs(60) {
            *start = now;
            *count = 0;
        }
        let level = *count / self.per_machine_per_minute;
        *count += 1;
        let machine = route.wrapping_add(level) % self.machines;
        if self.entries.len() > 200_000 {
            self.entries.retain(|_, expiry| *expiry > now);
        }
        // the prefix hash at each 128-token boundary from 1024, chained
        let mut hasher = FastHasher::default();
        key.hash(&mut hasher);
        let mut boundaries = Vec::new();
        for (i, chunk) in toks.chunks(STEP_TOKENS).enumerate() {
            if chunk.len() < STEP_TOKENS {
                break;
            }
            chunk.hash(&mut hasher);
            let end = (i + 1) * STEP_TOKENS;
            if end >= MIN_PREFIX_TOKENS {
                boundaries.push((end, hasher.finish()));
            }
        }
        let cached = boundaries
            .iter()
            .rev()
            .find(|(_, hash)| {
                self.entries
                    .get(&(machine, *hash))
                    .is_some_and(|expiry| *expiry > now)
            })
            .map_or(0, |(end, _)| *end);
        let cacheable = boundaries.last().map_or(0, |(end, _)| *end);
        for (_, hash) in &boundaries {
            self.entries.insert((machine, *hash), now + self.ttl);
        }
        (cached as u64, (cacheable - cached) as u64)
    }

    /// Applies the simulation to a mock answer's usage (clamped to its prompt tokens).
    pub fn apply(&mut self, body: &Value, usage: &mut MockUsage) {
        let key = body.get("prompt_cache_key").and_then(Value::as_str);
        let (cached, written) = self.serve(&prompt_tokens(body), key, Instant::now());
        usage.cached = cached.min(usage.prompt);
        usage.cache_write = written.min(usage.prompt - usage.cached);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;

    fn prompt(n: usize, salt: u32) -> Vec<u32> {
        (0..n as u32).map(|i| i.wrapping_mul(7) ^ salt).collect()
    }

    #[test]
    fn caches_from_1024_in_128_steps_per_key() {
        let mut c = ProviderCache::default();
        let now = Instant::now();
        let p = prompt(1300, 0);
        assert_eq!(c.serve(&p[..1000], None, now), (0, 0));
        assert_eq!(c.serve(&p, None, now), (0, 1280));
        assert_eq!(c.serve(&p, None, now), (1280, 0));
        // a longer prompt sharing the prefix reads it and writes the rest
        let mut longer = p.clone();
        longer.extend(prompt(300, 9));
        assert_eq!(c.serve(&longer, None, now), (1280, 256));
        // another key is another cache
        assert_eq!(c.serve(&p, Some("k"), now), (0, 1280));
        assert_eq!(c.serve(&p, Some("k"), now), (1280, 0));
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let mut c = ProviderCache::new(64, 15, Duration::from_secs(300));
        let now = Instant::now();
        let p = prompt(2048, 1);
        c.serve(&p, None, now);
        assert_eq!(c.serve(&p, None, now + Duration::from_secs(299)).0, 2048);
        // the use at 299 s refreshed it
        assert_eq!(c.serve(&p, None, now + Duration::from_secs(598)).0, 2048);
        assert_eq!(c.serve(&p, None, now + Duration::from_secs(1000)).0, 0);
    }

    #[test]
    fn a_busy_route_overflows_to_cold_machines() {
        let mut c = ProviderCache::new(64, 15, Duration::from_secs(300));
        let now = Instant::now();
        let p = prompt(2048, 2);
        let misses = (0..30).filter(|_| c.serve(&p, None, now).0 == 0).count();
        // the 1st and the 16th request (first on the next machine) find cold caches
        assert_eq!(misses, 2);
        // a new minute starts back on the first machine, which is warm
        assert_eq!(c.serve(&p, None, now + Duration::from_secs(61)).0, 2048);
    }
}
