//! The fast paths of o200k counting: per-thread memos of what was counted before (whole long
//! texts, short pieces in packed open-addressing tables, tool schemas) and a hand-written ASCII
//! pre-tokenizer, each giving exactly what its reference gives — `bpe_openai::o200k_base()`'s
//! `count` and `split`, and [`super::count_tools_direct`] — as the property tests and the
//! exhaustive split test below check. They exist because counting is on the gateway's request
//! path: every `model: "auto"` request's signals start with one o200k pass over the prompt, and
//! the decision bench (`cargo bench -p tierwise-eval --bench decide`, measurements in
//! `docs/benchmarks.md`) puts a fresh decision, this pass included, at ~23 µs, against the
//! gateway's target of at most 0.5 ms added latency at p99 under 2,000 req/s. The decision is a
//! small share of that budget: no further micro-optimisation below 1 µs is wanted here unless a
//! benchmark target named in an issue is missed, and a change here keeps its reference test.
//!
//! - [`count`]: a long text (system prompts, which repeat from request to request) is
//!   remembered whole, keyed by a 128-bit hash and its length; a shorter one is cut into pieces,
//!   each counted once and remembered: pieces of at most [`TINY_PIECE`] bytes in 8-byte slots
//!   ([`TinyMemo`]), of at most [`SHORT_PIECE`] bytes in 16-byte slots ([`ShortMemo`]), longer
//!   ones (up to [`PIECE_MAX_BYTES`]) in a hash map. Every memo is bounded: full, it is emptied.
//! - [`ascii_piece_end`]: o200k's pre-tokenizer regex for ASCII text by hand (about 10× faster
//!   than the regex, same pieces).
//! - [`count_tool`]: each tool schema's count, keyed by a hash of its [`super::encode_value`]
//!   bytes.

use std::cell::RefCell;

use serde_json::Value;

use super::{count_tool_direct, next_piece_end, with_encoded};
use crate::hash::FastMap;

// ---------------------------------------------------------------- texts and pieces

/// Texts at least this long are memoised whole (by a 128-bit hash and their length).
const WHOLE_MIN_BYTES: usize = 256;
const WHOLE_CAP: usize = 1 << 14;
/// Pieces longer than this are not memoised (rare; counted directly).
const PIECE_MAX_BYTES: usize = 48;
const PIECE_CAP: usize = 1 << 16;

/// One thread's memos: whole texts by hash and length, pieces by length class.
#[derive(Default)]
struct Memo {
    whole: FastMap<(u128, usize), usize>,
    tiny: TinyMemo,
    short: ShortMemo,
    pieces: FastMap<Box<str>, u32>,
}

thread_local! {
    static MEMO: RefCell<Memo> = RefCell::new(Memo::default());
}

/// `o200k_base().count(text)`, memoised per thread (see the module docs).
pub(super) fn count(text: &str) -> usize {
    MEMO.with(|m| {
        let Ok(mut memo) = m.try_borrow_mut() else {
            return bpe_openai::o200k_base().count(text);
        };
        if text.len() < WHOLE_MIN_BYTES {
            return count_pieces(&mut memo, text);
        }
        let key = (
            xxhash_rust::xxh3::xxh3_128_with_seed(text.as_bytes(), crate::hash::process_seed()),
            text.len(),
        );
        if let Some(&n) = memo.whole.get(&key) {
            return n;
        }
        let n = count_pieces(&mut memo, text);
        if memo.whole.len() >= WHOLE_CAP {
            memo.whole.clear();
        }
        memo.whole.insert(key, n);
        n
    })
}

/// Empties this thread's piece and text memos.
pub(super) fn clear_memo() {
    MEMO.with(|m| {
        if let Ok(mut memo) = m.try_borrow_mut() {
            *memo = Memo::default();
        }
    });
}

/// The sum of the counts of `text`'s pieces (as [`super::split`] cuts it).
fn count_pieces(memo: &mut Memo, text: &str) -> usize {
    let mut total = 0;
    let mut p = 0;
    while let Some(end) = next_piece_end(text, p) {
        total += count_piece(memo, text, p, end - p);
        p = end;
    }
    total
}

/// Tokens of `text[p..p + len]`, one pre-tokenizer piece (memoised).
fn count_piece(memo: &mut Memo, text: &str, p: usize, len: usize) -> usize {
    let tok = || bpe_openai::o200k_base();
    let bytes = text.as_bytes();
    if len <= TINY_PIECE {
        let (a, b) = short_key_at(bytes, p, len);
        let key = a | b;
        if let Some(n) = memo.tiny.get(key) {
            return n as usize;
        }
        let n = tok().bpe.count(bytes.get(p..p + len).unwrap_or_default());
        memo.tiny.insert(key, n as u32);
        return n;
    }
    if len <= SHORT_PIECE {
        let key = short_key_at(bytes, p, len);
        if let Some(n) = memo.short.get(key) {
            return n as usize;
        }
        let n = tok().bpe.count(bytes.get(p..p + len).unwrap_or_default());
        memo.short.insert(key, n as u32);
        return n;
    }
    let piece = text.get(p..p + len).unwrap_or_default();
    if len > PIECE_MAX_BYTES {
        return tok().bpe.count(piece.as_bytes());
    }
    if let Some(&n) = memo.pieces.get(piece) {
        return n as usize;
    }
    let n = tok().bpe.count(piece.as_bytes());
    if memo.pieces.len() >= PIECE_CAP {
        memo.pieces.clear();
    }
    memo.pieces.insert(piece.into(), n as u32);
    n
}

// ---------------------------------------------------------------- piece keys and tables

/// Pieces of at most this many bytes are keyed inline (bytes and length in two words).
const SHORT_PIECE: usize = 15;

/// The inline key of a short piece: its bytes (zero-padded) and, in the top byte, its length
/// (so `"a"` and `"a\0"` differ).
fn short_key(piece: &[u8]) -> (u64, u64) {
    let mut buf = [0u8; 16];
    if let Some(dst) = buf.get_mut(..piece.len()) {
        dst.copy_from_slice(piece);
    }
    buf[15] = piece.len() as u8;
    let (a, b) = buf.split_at(8);
    let word = |s: &[u8]| s.try_into().map_or(0, u64::from_le_bytes);
    (word(a), word(b))
}

/// [`short_key`] of `s[p..p + len]` (`len` ≤ [`SHORT_PIECE`]), read as two words straight
/// from the text when 16 bytes are there (no copy through a buffer).
fn short_key_at(s: &[u8], p: usize, len: usize) -> (u64, u64) {
    let Some(w) = s.get(p..p + 16) else {
        return short_key(s.get(p..p + len).unwrap_or_default());
    };
    let (lo, hi) = w.split_at(8);
    let word = |x: &[u8]| x.try_into().map_or(0, u64::from_le_bytes);
    let mask = |k: usize| if k >= 8 { !0 } else { (1u64 << (8 * k)) - 1 };
    let (a, b) = if len <= 8 {
        (word(lo) & mask(len), 0)
    } else {
        (word(lo), word(hi) & mask(len - 8))
    };
    (a, b | ((len as u64) << 56))
}

/// The bits of a slot's key word that hold the key; the top four hold the count (a piece of at
/// most 15 bytes has at most 15 tokens).
const SHORT_KEY_BITS: u64 = (1 << 60) - 1;

/// A slot of a [`CountMemo`]: a key and its count packed together, so a lookup reads one slot.
/// The all-zero slot ([`CountSlot::EMPTY`], the empty piece's, never looked up) is free.
trait CountSlot: Copy + PartialEq {
    type Key: Copy + PartialEq;
    const EMPTY: Self;
    fn pack(key: Self::Key, n: u32) -> Self;
    fn key(self) -> Self::Key;
    fn count(self) -> u32;
    /// Whether `key` can be held: not the empty slot's, no bits in the count's place.
    fn holds(key: Self::Key) -> bool;
    fn hash(key: Self::Key) -> u64;
}

/// Short pieces ([`short_key`]'s two words), the count in the top four bits of the second word,
/// which a short key leaves zero (its length, at most [`SHORT_PIECE`], is below them).
impl CountSlot for (u64, u64) {
    type Key = (u64, u64);
    const EMPTY: Self = (0, 0);
    fn pack(key: Self::Key, n: u32) -> Self {
        (key.0, key.1 | u64::from(n) << 60)
    }
    fn key(self) -> Self::Key {
        (self.0, self.1 & SHORT_KEY_BITS)
    }
    fn count(self) -> u32 {
        (self.1 >> 60) as u32
    }
    fn holds(key: Self::Key) -> bool {
        key != (0, 0) && key.1 & !SHORT_KEY_BITS == 0
    }
    fn hash(key: Self::Key) -> u64 {
        key.0 ^ key.1.rotate_left(29)
    }
}

/// Pieces of at most [`TINY_PIECE`] bytes in 8-byte slots: the piece's bytes, its length in bits
/// 56–59 (so the key is `short_key`'s two words or-ed, which do not overlap for such a piece)
/// and its count in bits 60–63. Half the bytes of a short slot, so a prompt's pieces touch fewer
/// cache lines.
impl CountSlot for u64 {
    type Key = u64;
    const EMPTY: Self = 0;
    fn pack(key: Self::Key, n: u32) -> Self {
        key | u64::from(n) << 60
    }
    fn key(self) -> Self::Key {
        self & SHORT_KEY_BITS
    }
    fn count(self) -> u32 {
        (self >> 60) as u32
    }
    fn holds(key: Self::Key) -> bool {
        key != 0 && key & !SHORT_KEY_BITS == 0
    }
    fn hash(key: Self::Key) -> u64 {
        key
    }
}

/// Counts of pieces by key: open addressing with linear probing, at most half full (one multiply
/// and, usually, one probe per lookup).
struct CountMemo<S> {
    slots: Vec<S>,
    len: usize,
}

impl<S> Default for CountMemo<S> {
    fn default() -> Self {
        CountMemo {
            slots: Vec::new(),
            len: 0,
        }
    }
}

/// Short pieces (at most [`SHORT_PIECE`] bytes).
type ShortMemo = CountMemo<(u64, u64)>;
/// Pieces of at most [`TINY_PIECE`] bytes (most words with their space).
type TinyMemo = CountMemo<u64>;

/// Pieces of at most this many bytes are kept in [`TinyMemo`].
const TINY_PIECE: usize = 7;

impl<S: CountSlot> CountMemo<S> {
    /// The home slot: the key (prompt bytes, chosen by clients) through a full-avalanche mix
    /// seeded per process, so keys crafted to share a slot under a fixed hash do not.
    fn slot(&self, key: S::Key) -> usize {
        let bits = self.slots.len().trailing_zeros();
        (crate::hash::seeded_mix(S::hash(key)) >> (64 - bits)) as usize
    }

    fn get(&self, key: S::Key) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.slot(key);
        loop {
            match self.slots.get(i) {
                Some(&v) if v.key() == key => return Some(v.count()),
                Some(&v) if v == S::EMPTY => return None,
                None => return None,
                Some(_) => i = (i + 1) & mask,
            }
        }
    }

    /// Remembers `key` (not in the memo) with its count `n` (not remembered if above 15, which a
    /// short piece's count never is); forgets everything when [`PIECE_CAP`] are held.
    fn insert(&mut self, key: S::Key, n: u32) {
        if !S::holds(key) || n > 15 {
            return;
        }
        if self.len >= PIECE_CAP {
            *self = CountMemo::default();
        }
        if 2 * (self.len + 1) > self.slots.len() {
            let size = (2 * self.slots.len()).max(1024);
            let old = std::mem::replace(
                self,
                CountMemo {
                    slots: vec![S::EMPTY; size],
                    len: 0,
                },
            );
            for v in old.slots {
                if v != S::EMPTY {
                    self.insert(v.key(), v.count());
                }
            }
        }
        let mask = self.slots.len() - 1;
        let mut i = self.slot(key);
        while self.slots.get(i).is_some_and(|&v| v != S::EMPTY) {
            i = (i + 1) & mask;
        }
        if let Some(slot) = self.slots.get_mut(i) {
            *slot = S::pack(key, n);
            self.len += 1;
        }
    }
}

// ---------------------------------------------------------------- the ASCII pre-tokenizer

/// Byte classes of the ASCII pre-tokenizer.
const UPPER: u8 = 1;
const LOWER: u8 = 2;
const DIGIT: u8 = 3;
/// `\r`, `\n`.
const NEWLINE: u8 = 4;
/// Other whitespace (Unicode `White_Space` within ASCII): space, `\t`, `\x0B`, `\x0C`.
const SPACE: u8 = 5;
/// Everything else (punctuation, symbols, control characters).
const OTHER: u8 = 6;
/// A byte of a non-ASCII character: the piece is left to the regex.
const NON_ASCII: u8 = 7;
/// Past the end of the text.
const END: u8 = 8;

const CLASS: [u8; 256] = {
    let mut t = [NON_ASCII; 256];
    let mut b = 0;
    while b < 128 {
        t[b] = match b as u8 {
            b'A'..=b'Z' => UPPER,
            b'a'..=b'z' => LOWER,
            b'0'..=b'9' => DIGIT,
            b'\r' | b'\n' => NEWLINE,
            b' ' | b'\t' | 0x0B | 0x0C => SPACE,
            _ => OTHER,
        };
        b += 1;
    }
    t
};

fn class(b: u8) -> u8 {
    CLASS[usize::from(b)]
}

/// End of the o200k piece starting at `s[p]`, for ASCII text (see [`split`] for when it is
/// used). The pattern, alternative by alternative (the first that matches at `p` wins; then
/// the second and third patterns):
/// 1. an optional non-letter/digit/newline prefix, `[A-Z]*[a-z]+`, an optional contraction
///    (`'s 't 're 've 'm 'll 'd`, any case);
/// 2. the same with `[A-Z]+[a-z]*`;
/// 3. 1–3 digits;
/// 4. an optional space, a run of other characters, trailing `\r\n/`;
/// 5. whitespace up to and including its last newline;
/// 6. whitespace to the end of the text;
/// 7. (`\s+\s` with the last character dropped) a whitespace run but its last character;
/// 8. a whitespace run.
pub(super) fn ascii_piece_end(s: &[u8], p: usize) -> Option<usize> {
    // the commonest piece first: a word of ASCII letters, with or without a leading space,
    // not followed by an apostrophe (a contraction) or a non-ASCII character (which might be
    // a letter or a mark of the word); the same end as alternatives 1 and 2 below
    let q = p + usize::from(s.get(p) == Some(&b' '));
    let mut i = q;
    while s.get(i).is_some_and(u8::is_ascii_uppercase) {
        i += 1;
    }
    while s.get(i).is_some_and(u8::is_ascii_lowercase) {
        i += 1;
    }
    if i > q {
        match s.get(i) {
            None => return Some(i),
            Some(&b) if b.is_ascii() && b != b'\'' => return Some(i),
            _ => {}
        }
    }
    let n = s.len();
    // the class of s[i] (END past the text); None as soon as the decision would depend on a
    // non-ASCII character: the caller then asks the regex
    let at = |i: usize| -> Option<u8> {
        match s.get(i) {
            None => Some(END),
            Some(&b) if b.is_ascii() => Some(class(b)),
            Some(_) => None,
        }
    };
    let c = at(p)?;
    // 1, 2: letters, with an optional one-character prefix
    let q = if c == SPACE || c == OTHER { p + 1 } else { p };
    if matches!(at(q)?, UPPER | LOWER) {
        let mut i = q;
        while at(i)? == UPPER {
            i += 1;
        }
        while at(i)? == LOWER {
            i += 1;
        }
        if s.get(i) == Some(&b'\'') {
            at(i + 1)?;
            at(i + 2)?;
            let (a, b) = (
                s.get(i + 1).map(u8::to_ascii_lowercase),
                s.get(i + 2).map(u8::to_ascii_lowercase),
            );
            match (a, b) {
                (Some(b's' | b't' | b'm' | b'd'), _) => return Some(i + 2),
                (Some(b'r' | b'v'), Some(b'e')) | (Some(b'l'), Some(b'l')) => return Some(i + 3),
                _ => {}
            }
        }
        return Some(i);
    }
    // 3: digits
    if c == DIGIT {
        let mut i = p + 1;
        while i < p + 3 && at(i)? == DIGIT {
            i += 1;
        }
        return Some(i);
    }
    // 4: optional space, other characters, trailing newlines and slashes
    let r = if s[p] == b' ' { p + 1 } else { p };
    if at(r)? == OTHER {
        let mut i = r + 1;
        while at(i)? == OTHER {
            i += 1;
        }
        while at(i)? != END && matches!(s[i], b'\r' | b'\n' | b'/') {
            i += 1;
        }
        return Some(i);
    }
    // whitespace from here on (c is SPACE or NEWLINE)
    let mut e = p;
    let mut last_newline = None;
    loop {
        match at(e)? {
            NEWLINE => last_newline = Some(e),
            SPACE => {}
            _ => break,
        }
        e += 1;
    }
    if e == p {
        // unreachable (every ASCII class is handled above); never loop forever
        return None;
    }
    Some(match last_newline {
        Some(l) => l + 1,
        None if e == n => n,
        None if e - p >= 2 => e - 1,
        None => e,
    })
}

// ---------------------------------------------------------------- tool schemas

/// Tool counts remembered before the memo is emptied.
const TOOL_CAP: usize = 1 << 12;

thread_local! {
    static TOOL_COUNTS: RefCell<FastMap<(u128, usize), usize>> = RefCell::new(FastMap::default());
}

/// One tool's [`count_tool_direct`], memoised per thread.
pub(super) fn count_tool(tool: &Value) -> usize {
    let key = with_encoded(tool, |b| {
        (
            xxhash_rust::xxh3::xxh3_128_with_seed(b, crate::hash::process_seed()),
            b.len(),
        )
    });
    TOOL_COUNTS.with(|m| {
        let Ok(mut m) = m.try_borrow_mut() else {
            return count_tool_direct(tool);
        };
        if let Some(&n) = m.get(&key) {
            return n;
        }
        let n = count_tool_direct(tool);
        if m.len() >= TOOL_CAP {
            m.clear();
        }
        m.insert(key, n);
        n
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::{count_tools, count_tools_direct, encode_value, split};
    use super::*;

    impl<S: CountSlot> CountMemo<S> {
        /// The longest distance from a held key's home slot to where it sits (probes - 1).
        fn max_probe(&self) -> usize {
            let mask = self.slots.len() - 1;
            self.slots
                .iter()
                .enumerate()
                .filter(|(_, v)| **v != S::EMPTY)
                .map(|(i, v)| i.wrapping_sub(self.slot(v.key())) & mask)
                .max()
                .unwrap_or(0)
        }
    }

    /// Hash flooding: 1,500 six-letter pieces chosen so that, under the fixed multiplicative
    /// hash the memo used before, all share one home slot of a 4,096-slot table (one cluster:
    /// each lookup would probe ~750 slots). With the per-process seed they spread out and
    /// every lookup stays short.
    #[test]
    fn crafted_piece_keys_do_not_cluster() {
        let old_slot = |k: u64| (k.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - 12)) as usize;
        let key_of = |mut n: u64| {
            let mut bytes = [0u8; 8];
            for b in bytes.iter_mut().take(6) {
                *b = b'a' + (n % 26) as u8;
                n /= 26;
            }
            u64::from_le_bytes(bytes) | 6 << 56
        };
        let target = old_slot(key_of(0));
        let keys: Vec<u64> = (0..)
            .map(key_of)
            .filter(|&k| old_slot(k) == target)
            .take(1500)
            .collect();
        let mut memo = CountMemo::<u64>::default();
        for &k in &keys {
            memo.insert(k, 1);
        }
        assert_eq!(memo.slots.len(), 4096);
        // the keys are adversarial for the fixed hash …
        assert!(keys.iter().all(|&k| old_slot(k) == target));
        // … not for the seeded one: a cluster of 1,500 would put the last key ~1,500 away
        assert!(memo.max_probe() < 64, "max probe {}", memo.max_probe());
        for &k in &keys {
            assert_eq!(memo.get(k), Some(1));
        }
    }

    /// The memoised `count_tools` gives the direct count, first time and from the memo, and
    /// values that print differently never share a memo key.
    #[test]
    fn count_tools_memo_is_exact() {
        let tools = vec![
            json!({"type": "function", "function": {"name": "get_weather", "description": "Weather for a city.",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "maximum": 14}}, "required": ["city"]}}}),
            json!({"type": "function", "function": {"name": "f", "parameters": {"x": 1}}}),
            json!({"type": "function", "function": {"name": "f", "parameters": {"x": 1.0}}}),
            json!({"type": "function", "function": {"name": "f", "parameters": {"x": -1}}}),
            json!({"type": "function", "function": {"name": "f", "parameters": {"x": 18446744073709551615u64}}}),
            json!({"type": "function", "function": {"parameters": {"x": 1}, "name": "f"}}),
            json!({"type": "function", "function": {"name": "caf\u{e9} \"quoted\"\n\u{1}", "strict": true, "x": null, "y": false}}),
            json!(["ab"]),
            json!(["a", "b"]),
            json!([["a"], "b"]),
            json!({"a": "b"}),
            json!({"ab": ""}),
            json!("{\"a\":\"b\"}"),
            json!(1e300),
            json!(0.1),
            json!([]),
            json!({}),
        ];
        for _ in 0..2 {
            for t in &tools {
                assert_eq!(
                    count_tools(std::slice::from_ref(t)),
                    count_tools_direct(std::slice::from_ref(t)),
                    "{t}"
                );
            }
            assert_eq!(count_tools(&tools), count_tools_direct(&tools));
        }
        let mut keys = std::collections::HashSet::new();
        let mut json = std::collections::HashSet::new();
        for t in &tools {
            let mut b = Vec::new();
            encode_value(t, &mut b);
            keys.insert(b);
            json.insert(serde_json::to_string(t).unwrap());
        }
        assert_eq!(keys.len(), json.len());
        assert_eq!(keys.len(), tools.len());
    }

    #[test]
    fn memoised_count_is_exact() {
        let texts = [
            "Don't stop: it's 12345678 o'clock, café au lait — naïve résumé!\n\n  x",
            "请把这句话翻译成英文 and back again 123",
            "fn main() {\n    println!(\"{}\", 42);\n}\n",
            "   leading and trailing spaces   \n\n\n",
        ];
        for t in texts {
            let long = t.repeat(40);
            for x in [t, long.as_str()] {
                let direct = bpe_openai::o200k_base().count(x);
                // first (miss) and second (hit) calls agree with the tokenizer
                assert_eq!(count(x), direct, "{x:?}");
                assert_eq!(count(x), direct, "{x:?}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn memoised_count_matches_the_tokenizer(words in proptest::collection::vec("[ a-zA-Z0-9'.,é中\n]{0,12}", 0..80)) {
            let text = words.join(" ");
            let direct = bpe_openai::o200k_base().count(text.as_str());
            proptest::prop_assert_eq!(count(&text), direct);
            proptest::prop_assert_eq!(count(&text), direct);
        }
    }

    /// Every string of up to 4 characters over an alphabet with one character of each class the
    /// pattern distinguishes (and the contraction letters, and non-ASCII letters, marks,
    /// digits, spaces and punctuation) splits like `bpe-openai`.
    #[test]
    fn split_matches_the_tokenizer_exhaustively() {
        let alphabet = [
            'a', 'B', 's', 'T', '7', ' ', '\n', '\r', '\t', '\'', '/', '.', '\x0b', '\x1c', 'é',
            'É', '’', '\u{a0}', '中', '٣', '\u{301}',
        ];
        let tok = bpe_openai::o200k_base();
        let mut text = String::new();
        let k = alphabet.len();
        for len in 1..=4u32 {
            for mut code in 0..k.pow(len) {
                text.clear();
                for _ in 0..len {
                    text.push(alphabet[code % k]);
                    code /= k;
                }
                let want: Vec<&str> = tok.split(&text).collect();
                let got: Vec<&str> = split(&text).collect();
                assert_eq!(got, want, "{text:?}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn split_matches_the_tokenizer(text in "[ -~\t\n\r\x00-\x1f\x7f]{0,64}", mixed in "([ -~\t\n\r]|\\PC){0,64}", words in proptest::collection::vec("[a-zA-Z]{1,6}('(s|t|re|ve|m|ll|d|S|T|rE|Ve|M|LL|D))?|[0-9]{1,5}| {1,3}|\n{1,2}|[.,;:!?/()'\"-]{1,3}|\t|[éÉ’\u{a0}\u{3000}中٣\u{301}😀]{1,2}", 0..40)) {
            let tok = bpe_openai::o200k_base();
            for t in [text, mixed, words.concat()] {
                let want: Vec<&str> = tok.split(&t).collect();
                let got: Vec<&str> = split(&t).collect();
                proptest::prop_assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn short_keys_tell_pieces_apart() {
        let pieces: [&[u8]; 6] = [
            b"",
            b"a",
            b"a\0",
            b"\0a",
            b"abcdefghijklmno",
            b"abcdefghijklmn",
        ];
        for (i, a) in pieces.iter().enumerate() {
            for b in &pieces[i + 1..] {
                assert_ne!(short_key(a), short_key(b), "{a:?} {b:?}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn short_keys_read_in_place_are_the_copied_keys(text in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            for p in 0..text.len() {
                for len in 0..=SHORT_PIECE.min(text.len() - p) {
                    proptest::prop_assert_eq!(short_key_at(&text, p, len), short_key(&text[p..p + len]));
                }
            }
        }
    }

    #[test]
    fn short_memo_remembers_and_forgets_at_the_cap() {
        let mut m = ShortMemo::default();
        let key = |i: u64| short_key(&i.to_le_bytes());
        for i in 0..5000u64 {
            assert_eq!(m.get(key(i)), None);
            m.insert(key(i), (i % 16) as u32);
        }
        for i in 0..5000u64 {
            assert_eq!(m.get(key(i)), Some((i % 16) as u32));
        }
        // counts above 15 (never a short piece's) are not remembered
        m.insert(short_key(b"y"), 16);
        assert_eq!(m.get(short_key(b"y")), None);
        // the same for the tiny memo, keyed by pieces of at most 7 bytes
        let mut t = TinyMemo::default();
        let tiny = |i: u64| {
            let (a, b) = short_key(&i.to_le_bytes()[..7]);
            assert_eq!(a & b, 0);
            a | b
        };
        for i in 0..5000u64 {
            assert_eq!(t.get(tiny(i)), None);
            t.insert(tiny(i), (i % 16) as u32);
        }
        for i in 0..5000u64 {
            assert_eq!(t.get(tiny(i)), Some((i % 16) as u32));
        }
        t.insert(tiny(1 << 40), 16);
        assert_eq!(t.get(tiny(1 << 40)), None);
        for i in 5000..PIECE_CAP as u64 + 10 {
            t.insert(tiny(i), 1);
        }
        assert!(t.len <= 10 && t.get(tiny(0)).is_none());
        assert_eq!(t.get(tiny(PIECE_CAP as u64 + 9)), Some(1));
        assert_eq!(m.get(short_key(b"x")), None);
        for i in 5000..PIECE_CAP as u64 + 10 {
            m.insert(key(i), 1);
        }
        // emptied once full, then refilled
        assert!(m.len <= 10 && m.get(key(0)).is_none());
        assert_eq!(m.get(key(PIECE_CAP as u64 + 9)), Some(1));
    }
}
