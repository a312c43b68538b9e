//! One fast, non-cryptographic hasher for in-process tables whose keys the caller produces
//! (token-piece memos, the audit's per-call sums, name interning, content-hash memos).
//!
//! Hash flooding: the keys of the request path's memos come from clients (prompt pieces,
//! texts, tool schemas). Every hash they go through starts from [`process_seed`], a random
//! number drawn once per process, so which keys collide cannot be worked out in advance
//! (crafted keys that share a slot under a fixed hash spread out here; see the tests of
//! `tokens::fast`).

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::OnceLock;

/// A random number drawn once per process (from std's `RandomState`, seeded by the OS): the
/// seed of every hash of client-chosen keys.
pub fn process_seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x7469_6572_7769_7365);
        h.finish() | 1
    })
}

/// A full-avalanche mix of `x` with [`process_seed`] (murmur3's finalizer): every output bit
/// depends on every input bit and on the seed.
#[inline]
pub fn seeded_mix(x: u64) -> u64 {
    let mut z = x ^ process_seed();
    z = (z ^ (z >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    z = (z ^ (z >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    z ^ (z >> 33)
}

/// FxHash's multiply-rotate mix on whole integers; xxh3 (seeded with the state so far) on byte
/// strings; the state starts at [`process_seed`]. SipHash, the std default, costs more than the
/// lookups it guards here.
#[derive(Debug, Clone, Copy)]
pub struct FastHasher(u64);

impl Default for FastHasher {
    #[inline]
    fn default() -> Self {
        FastHasher(process_seed())
    }
}

impl FastHasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxhash_rust::xxh3::xxh3_64_with_seed(bytes, self.0);
    }

    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.mix(u64::from(n));
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.mix(u64::from(n));
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.mix(n);
    }

    #[inline]
    fn write_u128(&mut self, n: u128) {
        self.mix(n as u64);
        self.mix((n >> 64) as u64);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// The `BuildHasher` of [`FastHasher`].
pub type FastBuild = BuildHasherDefault<FastHasher>;

/// A `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, FastBuild>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hash};

    fn h<T: Hash>(t: &T) -> u64 {
        FastBuild::default().hash_one(t)
    }

    #[test]
    fn equal_keys_hash_equal_and_different_keys_differ() {
        assert_eq!(h(&"gpt-5.4"), h(&"gpt-5.4"));
        assert_ne!(h(&"gpt-5.4"), h(&"gpt-5.5"));
        assert_ne!(h(&("a", 1u64)), h(&("a", 2u64)));
        assert_ne!(h(&1u128), h(&(1u128 << 64)));
        // a string's end marker keeps ("ab", "c") apart from ("a", "bc")
        assert_ne!(h(&("ab", "c")), h(&("a", "bc")));
    }
}
