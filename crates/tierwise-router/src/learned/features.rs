//! Features of a request for the learned router: the request signals the rule router reads,
//! lexical statistics, hashed word uni/bi-grams of the prompt, and (optionally) a sentence
//! embedding computed by the caller.
//!
//! Dense features come out raw; the model standardizes them with the means and spreads it
//! learned at training time. Hashed n-grams come out as sorted `(bucket, value)` pairs with an
//! L2-normalized binary bag of words.

use serde::{Deserialize, Serialize};
use tierwise_core::request::RequestView;
use tierwise_core::signals::Signals;

/// Prompt text longer than this (bytes) is cut to its last part before featurizing, which keeps
/// the decision fast on huge prompts; the question usually sits at the end.
pub const MAX_TEXT_BYTES: usize = 16_384;

/// The embedding sees at most this many bytes from the start of the prompt text (cut on a char
/// boundary, ~380 tokens of English): tokenizing with the embedding model's tokenizer costs
/// ~0.5 ms per KB and dominated the decision; the static embedding is a mean of token vectors,
/// so the opening of the prompt carries most of its topic.
pub const EMBED_MAX_BYTES: usize = 1536;

/// The part of `text` the embedding reads (see [`EMBED_MAX_BYTES`]).
pub fn embed_text(text: &str) -> &str {
    head(text, EMBED_MAX_BYTES)
}

/// The word scan of the lexical features and n-grams reads at most this many bytes from the
/// start of the prompt text (cut on a char boundary, like [`embed_text`]): it was the decision's
/// largest cost after the token count, linear in the prompt's length. Word and number counts are
/// scaled to the whole text by its length in bytes; line, question and option-line counts and
/// the LaTeX flag still read the whole text (cheap byte counts), and the prompt's exact o200k
/// count (the `ln_prompt_tokens` signal) carries its length.
pub const LEXICAL_MAX_BYTES: usize = 1536;

/// The first `max` bytes of `text`, cut back to a char boundary.
fn head(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.get(..cut).unwrap_or_default()
}

/// The part of `text` the word scan reads (see [`LEXICAL_MAX_BYTES`]).
pub fn lexical_text(text: &str) -> &str {
    head(text, LEXICAL_MAX_BYTES)
}

/// Which feature groups a model uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSpec {
    /// Request signals (`tierwise_core::signals`).
    pub signals: bool,
    /// Lexical statistics of the prompt (length, digits, symbols, options, …).
    pub lexical: bool,
    /// log2 of the number of hashed uni/bi-gram buckets; 0 = no n-grams.
    pub hash_bits: u8,
    /// A sentence embedding of the prompt, from the named model.
    pub embedding: Option<EmbeddingSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingSpec {
    /// Which embedding model (as `tierwise_embed::Embedder::name` reports it).
    pub name: String,
    pub dim: usize,
}

impl FeatureSpec {
    /// Parses a comma list of `signals`, `lexical`, `ngrams` (or `ngrams=BITS`), `embed`.
    /// `all` = every group. The embedding's name and size are filled in by the caller.
    pub fn parse(list: &str, embedding: Option<EmbeddingSpec>) -> Result<FeatureSpec, String> {
        let mut spec = FeatureSpec {
            signals: false,
            lexical: false,
            hash_bits: 0,
            embedding: None,
        };
        let mut want_embed = false;
        for part in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match part {
                "signals" => spec.signals = true,
                "lexical" => spec.lexical = true,
                "ngrams" => spec.hash_bits = DEFAULT_HASH_BITS,
                "embed" | "embedding" | "embeddings" => want_embed = true,
                "all" => {
                    spec.signals = true;
                    spec.lexical = true;
                    spec.hash_bits = DEFAULT_HASH_BITS;
                    want_embed = true;
                }
                p => match p.strip_prefix("ngrams=").map(str::parse::<u8>) {
                    Some(Ok(b)) if (8..=22).contains(&b) => spec.hash_bits = b,
                    _ => {
                        return Err(format!(
                            "unknown feature group {p:?} (expected signals, lexical, ngrams[=8..22], embed, all)"
                        ));
                    }
                },
            }
        }
        if want_embed {
            match embedding {
                Some(e) => spec.embedding = Some(e),
                None => return Err("feature group `embed` needs an embedding model (see scripts/fetch-embeddings.sh)".into()),
            }
        }
        if spec.dense_len() == 0 && spec.hash_bits == 0 {
            return Err("no feature group selected".into());
        }
        Ok(spec)
    }

    /// Short label, e.g. `signals+lexical+ngrams16+embed`.
    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        if self.signals {
            parts.push("signals".to_string());
        }
        if self.lexical {
            parts.push("lexical".to_string());
        }
        if self.hash_bits > 0 {
            parts.push(format!("ngrams{}", self.hash_bits));
        }
        if self.embedding.is_some() {
            parts.push("embed".to_string());
        }
        parts.join("+")
    }

    pub fn dense_len(&self) -> usize {
        (if self.signals { SIGNAL_NAMES.len() } else { 0 })
            + (if self.lexical { LEXICAL_NAMES.len() } else { 0 })
            + self.embedding.as_ref().map_or(0, |e| e.dim)
    }

    pub fn hash_len(&self) -> usize {
        if self.hash_bits == 0 {
            0
        } else {
            1usize << self.hash_bits
        }
    }

    /// Length of the weight vector: dense features, then hashed buckets.
    pub fn len(&self) -> usize {
        self.dense_len() + self.hash_len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Names of the dense features, in order (embedding dims as `embed[i]`).
    pub fn dense_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.signals {
            out.extend(SIGNAL_NAMES.iter().map(|s| s.to_string()));
        }
        if self.lexical {
            out.extend(LEXICAL_NAMES.iter().map(|s| s.to_string()));
        }
        if let Some(e) = &self.embedding {
            out.extend((0..e.dim).map(|i| format!("embed[{i}]")));
        }
        out
    }
}

pub const DEFAULT_HASH_BITS: u8 = 16;

pub const SIGNAL_NAMES: &[&str] = &[
    "ln_prompt_tokens",
    "ln_last_user_tokens",
    "ln_turns",
    "ln_messages",
    "has_system",
    "ln_code_blocks",
    "code",
    "math",
    "structured_output",
    "ln_tools",
    "domain_law",
    "domain_medicine",
    "domain_finance",
    "domain_science",
    "domain_proof",
    "domain_algorithms",
    "domain_security",
    "lang_en",
    "lang_latin",
    "lang_cjk",
    "lang_other",
];

pub const LEXICAL_NAMES: &[&str] = &[
    "ln_words",
    "mean_word_len",
    "digit_frac",
    "upper_frac",
    "symbol_frac",
    "ln_lines",
    "ln_questions",
    "ln_option_lines",
    "latex",
    "type_token_ratio",
    "ln_numbers",
    "ln_max_word_len",
];

/// Features of one request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Featurized {
    /// Raw dense features, [`FeatureSpec::dense_names`] order.
    pub dense: Vec<f32>,
    /// Hashed n-grams: (bucket, value), sorted by bucket, buckets unique.
    pub sparse: Vec<(u32, f32)>,
}

/// Text of the turns the router reads (system, developer and user turns), joined by newlines,
/// cut to the last [`MAX_TEXT_BYTES`].
pub fn prompt_text(view: &RequestView) -> String {
    let mut out = String::new();
    for t in view
        .turns
        .iter()
        .filter(|t| t.role != "assistant" && t.role != "tool")
    {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&t.text);
    }
    if out.len() > MAX_TEXT_BYTES {
        let mut cut = out.len() - MAX_TEXT_BYTES;
        while !out.is_char_boundary(cut) {
            cut += 1;
        }
        out.drain(..cut);
    }
    out
}

fn ln1p(x: usize) -> f32 {
    (x as f32).ln_1p()
}

fn b(x: bool) -> f32 {
    if x { 1.0 } else { 0.0 }
}

fn signal_features(s: &Signals, out: &mut Vec<f32>) {
    out.push(ln1p(s.prompt_tokens));
    out.push(ln1p(s.last_user_tokens));
    out.push(ln1p(s.turns));
    out.push(ln1p(s.messages));
    out.push(b(s.has_system));
    out.push(ln1p(s.code_blocks));
    out.push(b(s.code));
    out.push(b(s.math));
    out.push(b(s.structured_output));
    out.push(ln1p(s.tools));
    for d in [
        "law",
        "medicine",
        "finance",
        "science",
        "proof",
        "algorithms",
        "security",
    ] {
        out.push(b(s.hard_domain.iter().any(|h| h == d)));
    }
    let l = s.language;
    out.push(b(l == "en"));
    out.push(b(l == "latin"));
    out.push(b(l == "cjk"));
    out.push(b(!matches!(l, "en" | "latin" | "cjk")));
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn mix(h: u64) -> u64 {
    // splitmix64 finalizer: spreads FNV's low bits before masking.
    let mut z = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Word-level scan: lowercased alphanumeric runs (digit runs become `#` × min(len, 4)) and
/// single symbol characters are tokens. Calls `f(hash, is_word)` per token and gathers the
/// lexical statistics.
#[derive(Debug, Default, PartialEq)]
struct Scan {
    words: usize,
    word_chars: usize,
    max_word: usize,
    numbers: usize,
    chars: usize,
    digits: usize,
    letters: usize,
    upper: usize,
    symbols: usize,
}

/// ASCII byte kinds for [`scan`].
const K_DIGIT: u8 = 0;
const K_UPPER: u8 = 1;
const K_LOWER: u8 = 2;
/// `char::is_whitespace`: `\t`, `\n`, `\x0B`, `\x0C`, `\r`, space.
const K_SPACE: u8 = 3;
const K_SYMBOL: u8 = 4;

const ASCII_KIND: [u8; 128] = {
    let mut t = [K_SYMBOL; 128];
    let mut b = 0;
    while b < 128 {
        t[b] = match b as u8 {
            b'0'..=b'9' => K_DIGIT,
            b'A'..=b'Z' => K_UPPER,
            b'a'..=b'z' => K_LOWER,
            b'\t' | b'\n' | 0x0B | 0x0C | b'\r' | b' ' => K_SPACE,
            _ => K_SYMBOL,
        };
        b += 1;
    }
    t
};

#[expect(
    unused_assignments,
    reason = "the last flush! resets a word nothing reads"
)]
fn scan(text: &str, mut f: impl FnMut(u64)) -> Scan {
    // counters in locals (kept in registers), gathered into a `Scan` at the end
    let (mut words, mut word_chars, mut max_word, mut numbers) = (0usize, 0usize, 0usize, 0usize);
    let (mut digits, mut letters, mut upper, mut symbols) = (0usize, 0usize, 0usize, 0usize);
    // the word being read
    let (mut h, mut len, mut all_digits) = (FNV_OFFSET, 0usize, true);
    macro_rules! flush {
        () => {
            if len > 0 {
                let token = if all_digits {
                    // numbers: hash by digit count class only
                    let mut d = FNV_OFFSET ^ 0x23;
                    d = d.wrapping_mul(FNV_PRIME) ^ len.min(4) as u64;
                    numbers += 1;
                    d.wrapping_mul(FNV_PRIME)
                } else {
                    h
                };
                words += 1;
                word_chars += len;
                max_word = max_word.max(len);
                f(token);
                h = FNV_OFFSET;
                len = 0;
                all_digits = true;
            }
        };
    }
    let bytes = text.as_bytes();
    let mut i = 0usize;
    while let Some(&b) = bytes.get(i) {
        if let Some(&kind) = ASCII_KIND.get(usize::from(b)) {
            // ASCII: the same tokens and hashes as the general path below (`| 0x20`
            // lowercases a letter)
            i += 1;
            match kind {
                K_DIGIT => {
                    digits += 1;
                    h = (h ^ u64::from(b)).wrapping_mul(FNV_PRIME);
                    len += 1;
                }
                K_UPPER | K_LOWER => {
                    all_digits = false;
                    letters += 1;
                    upper += usize::from(kind == K_UPPER);
                    h = (h ^ u64::from(b | 0x20)).wrapping_mul(FNV_PRIME);
                    len += 1;
                }
                K_SPACE => flush!(),
                _ => {
                    flush!();
                    symbols += 1;
                    f((FNV_OFFSET ^ 0x5f ^ u64::from(b)).wrapping_mul(FNV_PRIME));
                }
            }
            continue;
        }
        let Some(c) = text.get(i..).and_then(|t| t.chars().next()) else {
            break;
        };
        i += c.len_utf8();
        if c.is_alphanumeric() {
            all_digits = false;
            letters += 1;
            if c.is_uppercase() {
                upper += 1;
            }
            for lc in c.to_lowercase() {
                let mut buf = [0u8; 4];
                for &byte in lc.encode_utf8(&mut buf).as_bytes() {
                    h = (h ^ u64::from(byte)).wrapping_mul(FNV_PRIME);
                }
            }
            len += 1;
        } else {
            flush!();
            if !c.is_whitespace() {
                symbols += 1;
                f((FNV_OFFSET ^ 0x5f ^ u64::from(c)).wrapping_mul(FNV_PRIME));
            }
        }
    }
    flush!();
    Scan {
        words,
        word_chars,
        max_word,
        numbers,
        chars: text.chars().count(),
        digits,
        letters,
        upper,
        symbols,
    }
}

/// The first `scan` (a `char` loop), the reference for the byte loop.
#[cfg(test)]
fn scan_reference(text: &str, mut f: impl FnMut(u64)) -> Scan {
    let mut s = Scan {
        words: 0,
        word_chars: 0,
        max_word: 0,
        numbers: 0,
        chars: 0,
        digits: 0,
        letters: 0,
        upper: 0,
        symbols: 0,
    };
    let mut h = FNV_OFFSET;
    let mut len = 0usize;
    let mut all_digits = true;
    let flush = |h: &mut u64,
                 len: &mut usize,
                 all_digits: &mut bool,
                 s: &mut Scan,
                 f: &mut dyn FnMut(u64)| {
        if *len > 0 {
            let token = if *all_digits {
                // numbers: hash by digit count class only
                let mut d = FNV_OFFSET ^ 0x23;
                d = d.wrapping_mul(FNV_PRIME) ^ (*len).min(4) as u64;
                s.numbers += 1;
                d.wrapping_mul(FNV_PRIME)
            } else {
                *h
            };
            s.words += 1;
            s.word_chars += *len;
            s.max_word = s.max_word.max(*len);
            f(token);
        }
        *h = FNV_OFFSET;
        *len = 0;
        *all_digits = true;
    };
    for c in text.chars() {
        s.chars += 1;
        if c.is_ascii() {
            // fast path, same tokens and hashes as the general one below
            let b = c as u8;
            if b.is_ascii_alphanumeric() {
                if b.is_ascii_digit() {
                    s.digits += 1;
                } else {
                    all_digits = false;
                    s.letters += 1;
                    if b.is_ascii_uppercase() {
                        s.upper += 1;
                    }
                }
                h = (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(FNV_PRIME);
                len += 1;
            } else {
                flush(&mut h, &mut len, &mut all_digits, &mut s, &mut f);
                if !c.is_whitespace() {
                    s.symbols += 1;
                    f((FNV_OFFSET ^ 0x5f ^ u64::from(b)).wrapping_mul(FNV_PRIME));
                }
            }
            continue;
        }
        if c.is_alphanumeric() {
            if c.is_ascii_digit() {
                s.digits += 1;
            } else {
                all_digits = false;
                s.letters += 1;
                if c.is_uppercase() {
                    s.upper += 1;
                }
            }
            for lc in c.to_lowercase() {
                let mut buf = [0u8; 4];
                for &byte in lc.encode_utf8(&mut buf).as_bytes() {
                    h = (h ^ u64::from(byte)).wrapping_mul(FNV_PRIME);
                }
            }
            len += 1;
        } else {
            flush(&mut h, &mut len, &mut all_digits, &mut s, &mut f);
            if !c.is_whitespace() {
                s.symbols += 1;
                let sym = (FNV_OFFSET ^ 0x5f ^ u64::from(c)).wrapping_mul(FNV_PRIME);
                f(sym);
            }
        }
    }
    flush(&mut h, &mut len, &mut all_digits, &mut s, &mut f);
    s
}

/// How many distinct values were inserted (an open-addressing set; what sorting and
/// deduplicating them would count, without the sort).
struct DistinctCount {
    /// Power-of-two slots; 0 = empty (the value 0 is tracked by `zero`).
    slots: Vec<u64>,
    zero: bool,
    len: usize,
}

impl DistinctCount {
    /// A set that stays at most half full for up to `n` distinct values (it grows past that).
    fn with_capacity(n: usize) -> DistinctCount {
        DistinctCount {
            slots: vec![0; (2 * n).next_power_of_two().max(16)],
            zero: false,
            len: 0,
        }
    }

    #[inline]
    fn insert(&mut self, v: u64) {
        if v == 0 {
            self.len += usize::from(!self.zero);
            self.zero = true;
            return;
        }
        if 2 * (self.len + 1) > self.slots.len() {
            let bigger = vec![0; 2 * self.slots.len()];
            let old = std::mem::replace(&mut self.slots, bigger);
            for x in old.into_iter().filter(|&x| x != 0) {
                self.place(x);
            }
        }
        if self.place(v) {
            self.len += 1;
        }
    }

    /// Puts `v` (not 0) in its slot; false if it was there.
    #[inline]
    fn place(&mut self, v: u64) -> bool {
        let mask = self.slots.len() - 1;
        // Fibonacci hashing: the product's top bits (FNV's low bits are weak)
        let bits = self.slots.len().trailing_zeros();
        let mut i = (v.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - bits)) as usize;
        loop {
            match self.slots.get(i).copied() {
                Some(0) | None => {
                    if let Some(slot) = self.slots.get_mut(i) {
                        *slot = v;
                    }
                    return true;
                }
                Some(x) if x == v => return false,
                Some(_) => i = (i + 1) & mask,
            }
        }
    }
}

/// Occurrences of `b` in `bytes` (counted in `u8`s 255 bytes at a time, which vectorizes).
fn count_byte(bytes: &[u8], b: u8) -> usize {
    bytes
        .chunks(255)
        .map(|c| usize::from(c.iter().map(|&x| u8::from(x == b)).sum::<u8>()))
        .sum()
}

/// Lines of `text` (split at `\n`, like `text.split('\n')`) that are answer options
/// ([`is_option_line`]). Lines are cut with memchr and most are turned down by their first
/// byte: an ASCII byte that is not whitespace, `(` or A–J cannot start an option line (a
/// non-ASCII one may be Unicode whitespace, so it takes the full check).
fn count_option_lines(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut n = 0;
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', bytes).chain(std::iter::once(bytes.len()));
    for end in ends {
        let first = bytes.get(start).copied().unwrap_or(b'\n');
        // (`trim_start` skips Unicode white space: in ASCII, space and \t \n \v \f \r)
        let may = !first.is_ascii()
            || first == b' '
            || (0x09..=0x0d).contains(&first)
            || first == b'('
            || (b'A'..=b'J').contains(&first);
        // (`start..end` lies on char boundaries: both are at a `\n` or the text's ends)
        if may && text.get(start..end).is_some_and(is_option_line) {
            n += 1;
        }
        start = end + 1;
    }
    n
}

fn is_option_line(line: &str) -> bool {
    let t = line.trim_start();
    let t = t.strip_prefix('(').unwrap_or(t);
    let mut cs = t.chars();
    match (cs.next(), cs.next(), cs.next()) {
        (Some(l), Some(p), Some(sp)) => {
            ('A'..='J').contains(&l) && matches!(p, '.' | ')' | ':') && sp == ' '
        }
        _ => false,
    }
}

/// Computes the features `spec` asks for. `embedding` must be given (of `spec`'s size) when the
/// spec uses one; otherwise its dims are zeros.
pub fn featurize(
    spec: &FeatureSpec,
    text: &str,
    signals: &Signals,
    embedding: Option<&[f32]>,
) -> Featurized {
    let mut dense = Vec::with_capacity(spec.dense_len());
    if spec.signals {
        signal_features(signals, &mut dense);
    }
    let mut buckets: Vec<u32> = Vec::new();
    let need_scan = spec.lexical || spec.hash_bits > 0;
    if need_scan {
        let mask = if spec.hash_bits > 0 {
            (1u64 << spec.hash_bits) - 1
        } else {
            0
        };
        let mut prev: Option<u64> = None;
        let sample = lexical_text(text);
        let mut uniq_words =
            DistinctCount::with_capacity(if spec.lexical { sample.len() / 8 } else { 0 });
        // the tokens first (a push per token keeps the scan loop tight), then their uses
        let mut tokens: Vec<u64> = Vec::with_capacity(sample.len() / 2 + 1);
        let st = scan(sample, |h| tokens.push(h));
        for &h in &tokens {
            if spec.lexical {
                uniq_words.insert(h);
            }
            if mask != 0 {
                buckets.push((mix(h) & mask) as u32);
                if let Some(p) = prev {
                    let bi = (p.rotate_left(17) ^ h).wrapping_mul(FNV_PRIME);
                    buckets.push((mix(bi) & mask) as u32);
                }
            }
            prev = Some(h);
        }
        if spec.lexical {
            let chars = st.chars.max(1) as f32;
            // word and number counts of the sample, scaled to the whole text
            let scale = text.len() as f32 / sample.len().max(1) as f32;
            let scaled = |n: usize| (n as f32 * scale).ln_1p();
            // `text.lines().count()`: the `\n`s, and one more for an unterminated last line
            let bytes = text.as_bytes();
            let newlines = count_byte(bytes, b'\n');
            let lines = newlines + usize::from(bytes.last().is_some_and(|&b| b != b'\n'));
            let questions = count_byte(bytes, b'?');
            // (`lines()` also drops a final empty line and a line's trailing `\r`: neither can
            // be an option line)
            let options = count_option_lines(text);
            let latex = memchr::memchr2(b'\\', b'$', bytes).is_some();
            dense.push(scaled(st.words));
            dense.push(if st.words > 0 {
                st.word_chars as f32 / st.words as f32
            } else {
                0.0
            });
            dense.push(st.digits as f32 / chars);
            dense.push(if st.letters > 0 {
                st.upper as f32 / st.letters as f32
            } else {
                0.0
            });
            dense.push(st.symbols as f32 / chars);
            dense.push(ln1p(lines));
            dense.push(ln1p(questions));
            dense.push(ln1p(options));
            dense.push(b(latex));
            dense.push(if st.words > 0 {
                uniq_words.len as f32 / (st.words + st.symbols).max(1) as f32
            } else {
                0.0
            });
            dense.push(scaled(st.numbers));
            dense.push(ln1p(st.max_word));
        }
    }
    if let Some(e) = &spec.embedding {
        match embedding {
            Some(v) if v.len() == e.dim => dense.extend_from_slice(v),
            _ => dense.extend(std::iter::repeat_n(0.0, e.dim)),
        }
    }
    let mut sparse = Vec::new();
    if !buckets.is_empty() {
        buckets.sort_unstable();
        buckets.dedup();
        let v = 1.0 / (buckets.len() as f32).sqrt();
        sparse = buckets.into_iter().map(|b| (b, v)).collect();
    }
    Featurized { dense, sparse }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests may unwrap"
)]
mod tests {
    use super::*;
    use serde_json::json;
    use tierwise_core::signals::Hints;

    fn feats(spec: &FeatureSpec, text: &str) -> Featurized {
        let body = json!({"model": "auto", "messages": [{"role": "user", "content": text}]});
        let view = RequestView::chat(&body).unwrap();
        let s = Signals::compute(&view, &Hints::default());
        featurize(spec, &prompt_text(&view), &s, None)
    }

    #[test]
    fn sizes_match_spec() {
        let spec = FeatureSpec::parse("signals,lexical,ngrams=10", None).unwrap();
        let f = feats(&spec, "What is 2 + 2?\nA. 3\nB. 4");
        assert_eq!(f.dense.len(), spec.dense_len());
        assert!(!f.sparse.is_empty());
        assert!(
            f.sparse
                .iter()
                .all(|(b, _)| (*b as usize) < spec.hash_len())
        );
        let norm: f32 = f.sparse.iter().map(|(_, v)| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-4);
        // option lines counted
        let i = SIGNAL_NAMES.len()
            + LEXICAL_NAMES
                .iter()
                .position(|n| *n == "ln_option_lines")
                .unwrap();
        assert!((f.dense[i] - 2f32.ln_1p()).abs() < 1e-6);
    }

    #[test]
    fn case_and_numbers_normalized() {
        let spec = FeatureSpec::parse("ngrams=12", None).unwrap();
        assert_eq!(
            feats(&spec, "Hello World 123").sparse,
            feats(&spec, "hello world 456").sparse
        );
        assert_ne!(
            feats(&spec, "hello world").sparse,
            feats(&spec, "world hello").sparse
        );
    }

    #[test]
    fn ascii_and_unicode_paths_agree() {
        // the same word in ASCII and with a non-ASCII neighbour hashes the same
        let mut a = Vec::new();
        scan("Hello, world 42", |h| a.push(h));
        let mut b = Vec::new();
        scan("Hello\u{2014}world 42", |h| b.push(h));
        assert_eq!(a[0], b[0]);
        assert_eq!(a[2], b[2]);
        assert_eq!(a.len(), b.len());
    }

    fn same_scan(t: &str) {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let sa = scan(t, |h| a.push(h));
        let sb = scan_reference(t, |h| b.push(h));
        assert_eq!((sa, a), (sb, b), "{t:?}");
    }

    /// The byte loop gives the `char` loop's tokens and counts, on the committed fixtures'
    /// prompts (tierwise-eval's and tierwise-audit's) and on random text.
    #[test]
    fn scan_matches_the_reference() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let mut n = 0;
        for f in [
            "tierwise-eval/fixtures/mmlu_pro/outcomes.jsonl",
            "tierwise-eval/fixtures/llmrouter/outcomes_train.jsonl",
            "tierwise-audit/tests/fixtures/labelled_prompts.jsonl",
        ] {
            let text = std::fs::read_to_string(format!("{root}/{f}")).unwrap();
            for line in text.lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                let body = json!({"model": "m", "messages": v.get("messages").cloned().unwrap_or_else(|| json!([{"role": "user", "content": v["text"]}]))});
                same_scan(&prompt_text(&RequestView::chat(&body).unwrap()));
                n += 1;
            }
        }
        assert!(n > 500, "{n}");
        for t in [
            "",
            "x",
            "ÉTÉ 42 naïve ½ ٣ ǅ İ ß\u{b}\u{1c}\u{85}\u{a0}— 😀 1\u{301}2",
            "a\x00b\x7f",
        ] {
            same_scan(t);
        }
    }

    proptest::proptest! {
        #[test]
        fn scan_matches_the_reference_on_random_text(t in "([ -~\t\n\r\x00-\x1f\x7f]|\\PC)*") {
            same_scan(&t);
        }

        #[test]
        fn option_lines_and_latex_match_the_plain_versions(
            t in "([A-K(.):$\\\\ \t\n\r\x0b\x0c\x1c-\x1f\u{85}\u{a0}\u{3000}x]|\\PC)*",
            lines in proptest::collection::vec(
                "[ \t\x0b\x0c\r\u{85}\u{a0}\u{3000}\x1c]{0,2}\\(?[A-K(a][.):x]( |x)?\\PC{0,3}",
                0..8
            ),
            crlf in proptest::bool::ANY,
        ) {
            let option_like = lines.join(if crlf { "\r\n" } else { "\n" });
            proptest::prop_assert_eq!(
                count_option_lines(&option_like),
                option_like.split('\n').filter(|l| is_option_line(l)).count()
            );
            proptest::prop_assert_eq!(
                count_option_lines(&t),
                t.split('\n').filter(|l| is_option_line(l)).count()
            );
            proptest::prop_assert_eq!(
                memchr::memchr2(b'\\', b'$', t.as_bytes()).is_some(),
                t.bytes().any(|b| b == b'\\' || b == b'$')
            );
        }
    }

    #[test]
    fn distinct_count_is_the_deduplicated_length() {
        let mut x = 7u64;
        for n in [0usize, 1, 5, 100, 3000] {
            for cap in [0, n / 3, n] {
                let mut set = DistinctCount::with_capacity(cap);
                let mut all = Vec::new();
                for i in 0..n {
                    x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    // repeats, zeros and large values
                    let v = match i % 4 {
                        0 => (x >> 60) % 7,
                        1 => 0,
                        _ => x,
                    };
                    set.insert(v);
                    all.push(v);
                }
                all.sort_unstable();
                all.dedup();
                assert_eq!(set.len, all.len(), "{n} {cap}");
            }
        }
    }

    #[test]
    fn line_counts_are_those_of_lines() {
        let spec = FeatureSpec::parse("lexical", None).unwrap();
        let at = |n: &str| LEXICAL_NAMES.iter().position(|x| *x == n).unwrap();
        for t in [
            "",
            "a",
            "a\n",
            "a\n\n",
            "\n",
            "A. x\r\nB) y\r\n(C: z\n  D. w\nE.\r\nF.x\nK. no\n\u{a0}J) yes?\n?",
            "q?\r\n\r\nA. one\nB. two",
            &"A. ?\n".repeat(300),
            &format!("{}$", "x?".repeat(700)),
        ] {
            let f = featurize(
                &spec,
                t,
                &Signals::compute(
                    &RequestView::chat(
                        &json!({"model": "m", "messages": [{"role": "user", "content": t}]}),
                    )
                    .unwrap(),
                    &Hints::default(),
                ),
                None,
            );
            let lines = t.lines().count();
            let options = t.lines().filter(|l| is_option_line(l)).count();
            assert_eq!(f.dense[at("ln_lines")], ln1p(lines), "{t:?}");
            assert_eq!(f.dense[at("ln_option_lines")], ln1p(options), "{t:?}");
            assert_eq!(
                f.dense[at("ln_questions")],
                ln1p(t.matches('?').count()),
                "{t:?}"
            );
            assert_eq!(
                f.dense[at("latex")],
                b(t.contains('\\') || t.contains('$')),
                "{t:?}"
            );
        }
    }

    /// Past [`LEXICAL_MAX_BYTES`], the word statistics are those of the text's head (cut on a
    /// char boundary), word and number counts scaled by length; lines, questions, option lines
    /// and LaTeX still come from the whole text. Up to it, the whole text is scanned.
    #[test]
    fn word_scan_reads_the_head() {
        let spec = FeatureSpec::parse("lexical", None).unwrap();
        let at = |n: &str| LEXICAL_NAMES.iter().position(|x| *x == n).unwrap();
        let unit = "Which is 12 é? A. one\nB. two Ünïcode words\n";
        // (padded so that the cut falls inside a two-byte character)
        let long = (0..8)
            .map(|pad| {
                format!(
                    "{}{}$x$ tail words here",
                    " ".repeat(pad),
                    unit.repeat(3 * LEXICAL_MAX_BYTES / unit.len())
                )
            })
            .find(|t| !t.is_char_boundary(LEXICAL_MAX_BYTES))
            .unwrap();
        let short = unit.repeat(LEXICAL_MAX_BYTES / unit.len());
        let f = |t: &str| {
            let v = RequestView::chat(
                &json!({"model": "m", "messages": [{"role": "user", "content": t}]}),
            )
            .unwrap();
            featurize(&spec, t, &Signals::compute(&v, &Hints::default()), None)
        };
        // a short text: its own scan, unscaled
        assert!(short.len() <= LEXICAL_MAX_BYTES);
        assert_eq!(
            f(&short).dense[at("ln_words")],
            ln1p(scan(&short, |_| ()).words)
        );
        // a long text: the head's word statistics
        let head = lexical_text(&long);
        assert_eq!(head.len(), LEXICAL_MAX_BYTES - 1);
        assert!(long.len() > 2 * LEXICAL_MAX_BYTES);
        let (fl, fh) = (f(&long), f(head));
        for name in [
            "mean_word_len",
            "digit_frac",
            "upper_frac",
            "symbol_frac",
            "type_token_ratio",
            "ln_max_word_len",
        ] {
            assert_eq!(fl.dense[at(name)], fh.dense[at(name)], "{name}");
        }
        let hs = scan(head, |_| ());
        let scale = long.len() as f32 / head.len() as f32;
        assert_eq!(fl.dense[at("ln_words")], (hs.words as f32 * scale).ln_1p());
        assert_eq!(
            fl.dense[at("ln_numbers")],
            (hs.numbers as f32 * scale).ln_1p()
        );
        // the whole text's lines, questions, options and LaTeX (the `$` is past the head)
        assert_eq!(fl.dense[at("ln_lines")], ln1p(long.lines().count()));
        assert_eq!(
            fl.dense[at("ln_questions")],
            ln1p(long.matches('?').count())
        );
        assert_eq!(
            fl.dense[at("ln_option_lines")],
            ln1p(long.lines().filter(|l| is_option_line(l)).count())
        );
        assert_eq!(fl.dense[at("latex")], 1.0);
        assert_eq!(fh.dense[at("latex")], 0.0);
    }

    #[test]
    fn parse_errors() {
        assert!(FeatureSpec::parse("signals,bogus", None).is_err());
        assert!(FeatureSpec::parse("embed", None).is_err());
        assert!(FeatureSpec::parse("", None).is_err());
    }

    #[test]
    fn long_text_is_cut_on_a_char_boundary() {
        let text = "é".repeat(MAX_TEXT_BYTES);
        let body = json!({"model": "auto", "messages": [{"role": "user", "content": text}]});
        let view = RequestView::chat(&body).unwrap();
        let t = prompt_text(&view);
        assert!(t.len() <= MAX_TEXT_BYTES);
    }
}
