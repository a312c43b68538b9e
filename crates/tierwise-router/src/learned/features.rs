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
    if text.len() <= EMBED_MAX_BYTES {
        return text;
    }
    let mut cut = EMBED_MAX_BYTES;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    &text[..cut]
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

fn scan(text: &str, mut f: impl FnMut(u64)) -> Scan {
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
        let mut uniq_words: Vec<u64> = Vec::new();
        let st = scan(text, |h| {
            if spec.lexical {
                uniq_words.push(h);
            }
            if mask != 0 {
                buckets.push((mix(h) & mask) as u32);
                if let Some(p) = prev {
                    let bi = (p.rotate_left(17) ^ h).wrapping_mul(FNV_PRIME);
                    buckets.push((mix(bi) & mask) as u32);
                }
            }
            prev = Some(h);
        });
        if spec.lexical {
            uniq_words.sort_unstable();
            uniq_words.dedup();
            let chars = st.chars.max(1) as f32;
            let lines = text.lines().count();
            let questions = text.matches('?').count();
            let options = text.lines().filter(|l| is_option_line(l)).count();
            let latex = text.contains('\\') || text.contains('$');
            dense.push(ln1p(st.words));
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
                uniq_words.len() as f32 / (st.words + st.symbols).max(1) as f32
            } else {
                0.0
            });
            dense.push(ln1p(st.numbers));
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
