//! One fast, non-cryptographic hasher for in-process tables whose keys the caller produces
//! (token-piece memos, the audit's per-call sums, name interning, content-hash memos).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// FxHash's multiply-rotate mix on whole integers; xxh3 (seeded with the state so far) on byte
/// strings. SipHash, the std default, costs more than the lookups it guards here. Not a
/// defence against crafted collisions: use it only for keys an attacker does not choose in
/// bulk (a process's own memos, an offline report over the caller's own logs).
#[derive(Debug, Clone, Copy, Default)]
pub struct FastHasher(u64);

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
