//! The fast paths of the request signals: byte scanners that give exactly what their
//! reference definitions give (the keyword, LaTeX, equation and code-line regexes on the
//! Unicode text; `language` computed the obvious way), each reference beside its scanner
//! (`#[cfg(test)]`) and compared with it by property tests and on every fixture prompt. They
//! exist because the routing decision is on the gateway's request path: `Signals::compute`
//! runs for every `model: "auto"` request, and the decision bench (`cargo bench -p
//! tierwise-eval --bench decide`, measurements in `docs/benchmarks.md`) puts a fresh decision
//! at ~23 µs, against the gateway's target of at most 0.5 ms added latency at p99 under 2,000
//! req/s. The decision is a small share of that budget: no further micro-optimisation below
//! 1 µs is wanted here unless a benchmark target named in an issue is missed, and a change to a
//! scanner keeps its reference and its property test.
//!
//! - [`Prepared`]: the ASCII shadow of a text, on which the keyword regexes run on the regex
//!   engine's fast paths, and its lowercase copy.
//! - [`keyword_hits`]: every keyword pattern (`MATH_WORDS`, `HARD_TERMS`, the verbs of
//!   `ASKS_FOR_CODE`) in one pass over word starts, found 64 bytes at a time by SWAR masks.
//! - [`has_latex`], [`has_equation`], [`two_code_lines`], [`count_fences`]: the other regexes,
//!   as `memchr` scans.
//! - [`script_counts`], [`count_en_words`]: `language`'s letter and stop-word counts, ASCII
//!   read 64 bytes at a time, stop words looked up in a perfect-hash table.

use std::borrow::Cow;
use std::sync::OnceLock;

use super::{ASKS_FOR_CODE, EN_WORDS, HARD_TERMS, MATH_WORDS};

// ---------------------------------------------------------------- fences

/// `text.matches("```").count()`, skipping the substring search when there is no backtick at
/// all (`memchr` is a vectorized byte search; the two-way search is not).
pub(super) fn count_fences(text: &str) -> usize {
    if memchr::memchr(b'`', text.as_bytes()).is_some() {
        text.matches("```").count()
    } else {
        0
    }
}

// ---------------------------------------------------------------- the ASCII shadow

/// An ASCII stand-in for `text` on which the keyword regexes of `signals` match exactly as on `text`
/// (same matches, counted the same; offsets are not used). Why: Unicode `\b` keeps the regex
/// engine on its fast lazy DFA only while the haystack is ASCII; one curly quote pushes it onto
/// a ~100× slower engine for the whole scan.
///
/// Each non-ASCII character becomes one ASCII character of the same kind for every construct
/// those patterns use: an uppercase letter when it case-folds to an ASCII letter (`ſ` → `S`,
/// Kelvin sign → `K`: matched by `(?i)` literals, not by the case-sensitive patterns, which have
/// no uppercase letters), else a vertical tab for Unicode whitespace (`\s`, but not the
/// literal spaces of the patterns, which match U+0020 only), `0` for a decimal digit
/// (`\d`, which is also `\w`), `_` for another word character (`\w`, so `\b` is unchanged), and
/// `\x01` for anything else (punctuation, symbols: neither word, space nor newline). `.`,
/// `[^$\n]` and counted repetitions see one character for one character.
fn ascii_shadow(text: &str) -> Cow<'_, str> {
    if text.is_ascii() {
        return Cow::Borrowed(text);
    }
    let kinds = char_kinds();
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        // copy the ASCII run, then shadow one character
        let run = ascii_prefix_len(rest.as_bytes());
        let (ascii, tail) = rest.split_at(run);
        out.push_str(ascii);
        let mut chars = tail.chars();
        if let Some(c) = chars.next() {
            out.push(kinds.shadow(c));
        }
        rest = chars.as_str();
    }
    Cow::Owned(out)
}

/// Bytes before the first non-ASCII byte of `b` (all of them if there is none), eight at a
/// time.
fn ascii_prefix_len(b: &[u8]) -> usize {
    let mut words = b.chunks_exact(8);
    let mut at = 0;
    for w in &mut words {
        let high = w.try_into().map_or(0, u64::from_le_bytes) & 0x8080_8080_8080_8080;
        if high != 0 {
            return at + (high.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    at + words
        .remainder()
        .iter()
        .position(|c| !c.is_ascii())
        .unwrap_or(words.remainder().len())
}

/// A text prepared for the keyword patterns: its [`ascii_shadow`], and that lowercased (for the
/// case-insensitive patterns: on ASCII text, `(?i)` with lowercase literals matches exactly what
/// the literals match on the lowercased text, and the case-sensitive form lets the regex engine
/// use its fast literal search — about 10× faster here). The copy is made whether or not there
/// is an uppercase letter: a vectorized byte map costs less than looking for one first.
pub(super) struct Prepared<'a> {
    cased: Cow<'a, str>,
    lower: Vec<u8>,
}

impl<'a> Prepared<'a> {
    pub(super) fn new(text: &'a str) -> Prepared<'a> {
        let cased = ascii_shadow(text);
        let lower = cased.as_bytes().to_ascii_lowercase();
        Prepared { cased, lower }
    }

    pub(super) fn cased(&self) -> &[u8] {
        self.cased.as_bytes()
    }

    fn lower(&self) -> &[u8] {
        &self.lower
    }
}

/// A keyword pattern compiled for [`Prepared`] text: byte-oriented with Unicode off (`(?-u)`;
/// on ASCII text `\w`, `\d`, `\s`, `\b` and `.` mean the same with Unicode on or off), and a
/// leading `(?i)` dropped: such patterns are matched against [`Prepared::lower`].
pub(super) fn shadow_re(
    cell: &'static OnceLock<Option<regex::bytes::Regex>>,
    pat: &str,
) -> Option<&'static regex::bytes::Regex> {
    cell.get_or_init(|| regex::bytes::Regex::new(&shadow_pattern(pat)).ok())
        .as_ref()
}

fn shadow_pattern(pat: &str) -> String {
    format!("(?-u){}", pat.strip_prefix("(?i)").unwrap_or(pat))
}

/// Runs `pat` (compiled by [`shadow_re`]) on the right form of `text`.
pub(super) fn haystack<'t>(text: &'t Prepared<'_>, pat: &str) -> &'t [u8] {
    if pat.starts_with("(?i)") {
        text.lower()
    } else {
        text.cased()
    }
}

/// Unicode classes as the regex engine defines them (parsed by `regex-syntax`, so exact).
struct CharKinds {
    /// Shadow character of every BMP code point (surrogates: unused).
    bmp: Vec<u8>,
    word: Vec<(char, char)>,
    digit: Vec<(char, char)>,
    space: Vec<(char, char)>,
    /// Non-ASCII characters that `(?i)` matches to an ASCII letter, with that letter (uppercase).
    folds: Vec<(char, char)>,
}

fn class_ranges(pat: &str) -> Vec<(char, char)> {
    use regex_syntax::hir::{Class, HirKind};
    let Ok(hir) = regex_syntax::Parser::new().parse(pat) else {
        return Vec::new();
    };
    match hir.kind() {
        HirKind::Class(Class::Unicode(c)) => {
            c.ranges().iter().map(|r| (r.start(), r.end())).collect()
        }
        _ => Vec::new(),
    }
}

fn in_ranges(ranges: &[(char, char)], c: char) -> bool {
    ranges
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

impl CharKinds {
    fn build() -> CharKinds {
        let mut folds = Vec::new();
        for up in 'A'..='Z' {
            for (lo, hi) in class_ranges(&format!("(?i){up}")) {
                for c in lo..=hi {
                    if !c.is_ascii() {
                        folds.push((c, up));
                    }
                }
            }
        }
        let mut k = CharKinds {
            bmp: Vec::new(),
            word: class_ranges(r"\w"),
            digit: class_ranges(r"\d"),
            space: class_ranges(r"\s"),
            folds,
        };
        k.bmp = (0..=0xFFFFu32)
            .map(|u| char::from_u32(u).map_or(1, |c| k.classify(c) as u8))
            .collect();
        k
    }

    fn classify(&self, c: char) -> char {
        if let Some(&(_, up)) = self.folds.iter().find(|(f, _)| *f == c) {
            up
        } else if c.is_ascii() {
            c
        } else if in_ranges(&self.space, c) {
            // not a space: the patterns' literal spaces match U+0020 only
            '\x0B'
        } else if in_ranges(&self.digit, c) {
            '0'
        } else if in_ranges(&self.word, c) {
            '_'
        } else {
            '\x01'
        }
    }

    fn shadow(&self, c: char) -> char {
        match self.bmp.get(c as usize) {
            Some(&b) => char::from(b),
            None => self.classify(c),
        }
    }
}

fn char_kinds() -> &'static CharKinds {
    static KINDS: OnceLock<CharKinds> = OnceLock::new();
    KINDS.get_or_init(CharKinds::build)
}

// ---------------------------------------------------------------- code lines

/// What [`two_code_lines`] computes, as a regex (the reference its tests compare against).
#[cfg(test)]
const CODE_LINES: &str = r"(?m)^\s*(def |class |fn |function |func |import |from \S+ import|#include|public |private |package |SELECT |select .* from|const |let |var |return |if \(|for \(|while \(|\}\s*$|.*;\s*$|.*\{\s*$|Traceback \(most recent call last\))";

/// At least two lines of `text` look like source code — exactly when [`CODE_LINES`]
/// (multi-line mode, Unicode `\s`) matches at least twice, found line by line without a regex:
/// - a match starts at a line start, skips whitespace (possibly whole blank lines) and decides
///   on the first non-blank line's own text (the only alternatives that may start on
///   whitespace, `.*;`/`.*{`, cannot cross a line end), so a match exists there iff that
///   line qualifies ([`is_code_line`]);
/// - a match ends inside its line, or (`\s*$`) at the last newline before the next non-blank
///   line, so the next qualifying line still starts a match of its own.
pub(super) fn two_code_lines(text: &str) -> bool {
    // the lines of `text.split('\n')`, cut at newlines found by `memchr` (vectorized)
    let mut start = 0;
    let mut found = 0;
    for end in memchr::memchr_iter(b'\n', text.as_bytes()).chain([text.len()]) {
        if is_code_line(text.get(start..end).unwrap_or_default()) {
            found += 1;
            if found == 2 {
                return true;
            }
        }
        start = end + 1;
    }
    false
}

/// One line (no `\n`) as [`CODE_LINES`] sees it from its first non-whitespace character.
fn is_code_line(line: &str) -> bool {
    // fast rejections: most prose lines neither end in `;`, `{`, `}` nor start with a keyword;
    // when the line's first and last bytes are printable ASCII (not whitespace), they are the
    // first and last characters left by the trims below
    let bytes = line.as_bytes();
    if let (Some(&f), Some(&l)) = (bytes.first(), bytes.last())
        && f.is_ascii_graphic()
        && l.is_ascii_graphic()
        && !matches!(l, b';' | b'{' | b'}')
        && !may_start_code(f)
    {
        return false;
    }
    let t = line.trim_start();
    let Some(&first) = t.as_bytes().first() else {
        return false;
    };
    let end = t.trim_end();
    // `.*;\s*$`, `.*\{\s*$`, `\}\s*$` (`$` is before `\n` only: trailing `\r` is whitespace)
    if matches!(end.as_bytes().last(), Some(b';' | b'{')) || end == "}" {
        return true;
    }
    const STARTS: &[&str] = &[
        "def ",
        "class ",
        "fn ",
        "function ",
        "func ",
        "import ",
        "#include",
        "public ",
        "private ",
        "package ",
        "SELECT ",
        "const ",
        "let ",
        "var ",
        "return ",
        "if (",
        "for (",
        "while (",
        "Traceback (most recent call last)",
    ];
    if !may_start_code(first) {
        return false;
    }
    if STARTS.iter().any(|k| t.starts_with(k)) {
        return true;
    }
    // `from \S+ import`: `\S+` takes the whole non-space run (backing off leaves a non-space
    // next, never the space ` import` needs)
    if let Some(rest) = t.strip_prefix("from ") {
        let run = rest.find(char::is_whitespace).unwrap_or(rest.len());
        return run > 0 && rest.get(run..).is_some_and(|r| r.starts_with(" import"));
    }
    // `select .* from`: `.` is anything but `\n`
    t.strip_prefix("select ")
        .is_some_and(|r| r.contains(" from"))
}

/// The first bytes of [`is_code_line`]'s line starts (`STARTS`, `from `, `select `).
fn may_start_code(first: u8) -> bool {
    matches!(
        first,
        b'd' | b'c' | b'f' | b'i' | b'#' | b'p' | b'S' | b'l' | b'v' | b'r' | b'w' | b'T' | b's'
    )
}

// ---------------------------------------------------------------- keywords

/// How a keyword alternative ends: `\b` (no word byte follows), `\w+` (one does), `\w*`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum KeywordEnd {
    Word,
    More,
    Any,
}

/// The alternatives of a `(?i)\b(a|b|…)\b` keyword pattern as literals with their endings;
/// None if the pattern uses anything else (every pattern here is of that form: tested).
fn keyword_alternatives(pat: &str) -> Option<Vec<(String, KeywordEnd)>> {
    let body = pat.strip_prefix(r"(?i)\b(")?.strip_suffix(r")\b")?;
    let mut out = Vec::new();
    for alt in body.split('|') {
        let (lit, ends): (&str, &[(&str, KeywordEnd)]) = if let Some(l) = alt.strip_suffix(r"\w+") {
            (l, &[("", KeywordEnd::More)])
        } else if let Some(l) = alt.strip_suffix(r"\w*") {
            (l, &[("", KeywordEnd::Any)])
        } else if let Some(l) = alt.strip_suffix("(ly)?") {
            (l, &[("", KeywordEnd::Word), ("ly", KeywordEnd::Word)])
        } else {
            (alt, &[("", KeywordEnd::Word)])
        };
        let plain = |c: u8| c.is_ascii_lowercase() || c == b' ' || c == b'-';
        if lit.is_empty() || !lit.bytes().all(plain) {
            return None;
        }
        out.extend(
            ends.iter()
                .map(|(suffix, end)| (format!("{lit}{suffix}"), *end)),
        );
    }
    Some(out)
}

/// Bit of [`MATH_WORDS`] in [`KeywordHits`]; `HARD_TERMS[i]` is bit `1 + i`, the verbs of
/// [`ASKS_FOR_CODE`] bit [`ASK_BIT`].
const MATH_BIT: u16 = 1;
const ASK_BIT: u16 = 1 << 8;

/// Every keyword pattern at once: each alternative as a literal (sorted), and where the literals
/// with each 3-byte beginning are.
struct Keywords {
    alts: Vec<(String, KeywordEnd, u16)>,
    /// Open addressing on [`prefix3`]: `(key, from, to)`, `alts[from..to]` begin with `key`'s
    /// bytes; key 0 = empty slot.
    prefixes: Vec<(u32, usize, usize)>,
    /// A 2^16-bit filter: bit [`filter_bit`] of each literal's [`prefix3`] is set (most word
    /// starts are rejected by one load).
    filter: Vec<u64>,
}

fn filter_bit(key: u32) -> usize {
    (key.wrapping_mul(0x9e37_79b1) >> 16) as usize
}

/// Word bytes (`\w` in ASCII mode: letters, digits, `_`) as 0/1 (the reference of
/// [`word_byte_mask`]).
#[cfg(test)]
const WORD_BYTE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = is_word_byte(c) as u8;
        b += 1;
    }
    t
};

/// Bit i set when byte i of `block` (at most 64 bytes) is a word byte ([`WORD_BYTE`]): eight
/// bytes at a time (SWAR), as [`ascii_alpha_mask`] finds letters, plus digits (`0x30..=0x39`)
/// and `_`; non-ASCII bytes (high bit set) are not word bytes.
fn word_byte_mask(block: &[u8]) -> u64 {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    // high bit of each byte of `x` (bytes below 0x80) in `lo..=hi`: no sum leaves its byte
    let in_range = |x: u64, lo: u8, hi: u8| {
        x.wrapping_add(u64::from(0x80 - lo) * LO) & !x.wrapping_add(u64::from(0x7F - hi) * LO)
    };
    let eight_mask = |w: u64| {
        let x = w & !HI;
        let hits = (in_range(x | (0x20 * LO), b'a', b'z')
            | in_range(x, b'0', b'9')
            | in_range(x, b'_', b'_'))
            & !w
            & HI;
        hits.wrapping_mul(0x0002_0408_1020_4081) >> 56
    };
    mask_by_eights(block, eight_mask)
}

/// Slots of [`Keywords::prefixes`] (a power of two, at least twice the literals).
const PREFIX_SLOTS: usize = 256;

/// The first three bytes of `b` as a key (zeros past its end).
fn prefix3(b: &[u8]) -> u32 {
    let at = |i: usize| u32::from(b.get(i).copied().unwrap_or(0));
    at(0) | (at(1) << 8) | (at(2) << 16)
}

fn prefix_slot(key: u32) -> usize {
    (key.wrapping_mul(0x9e37_79b1) >> 24) as usize % PREFIX_SLOTS
}

impl Keywords {
    /// The literals that begin like `rest`.
    fn candidates(&self, rest: &[u8]) -> &[(String, KeywordEnd, u16)] {
        let key = match rest.get(..4) {
            Some(&[a, b, c, _]) => u32::from_le_bytes([a, b, c, 0]),
            _ => prefix3(rest),
        };
        let bit = filter_bit(key);
        if self
            .filter
            .get(bit / 64)
            .is_none_or(|w| w >> (bit % 64) & 1 == 0)
        {
            return &[];
        }
        let mut i = prefix_slot(key);
        loop {
            match self.prefixes.get(i) {
                Some(&(k, from, to)) if k == key => {
                    return self.alts.get(from..to).unwrap_or_default();
                }
                Some(&(0, _, _)) | None => return &[],
                Some(_) => i = (i + 1) % PREFIX_SLOTS,
            }
        }
    }
}

/// The `(?i)\b(…)\b` verb part of [`ASKS_FOR_CODE`].
fn ask_verbs() -> &'static str {
    ASKS_FOR_CODE.split(r".{0,40}").next().unwrap_or_default()
}

fn keywords() -> Option<&'static Keywords> {
    static KW: OnceLock<Option<Keywords>> = OnceLock::new();
    KW.get_or_init(|| {
        let mut pats = vec![(MATH_WORDS, MATH_BIT)];
        pats.extend(
            HARD_TERMS
                .iter()
                .zip(1..)
                .map(|((_, p), i)| (*p, 1u16 << i)),
        );
        pats.push((ask_verbs(), ASK_BIT));
        let mut alts = Vec::new();
        for (pat, bit) in pats {
            alts.extend(
                keyword_alternatives(pat)?
                    .into_iter()
                    .map(|(l, e)| (l, e, bit)),
            );
        }
        alts.sort_by(|a, b| a.0.cmp(&b.0));
        if alts.len() * 2 > PREFIX_SLOTS || alts.iter().any(|(l, _, _)| l.len() < 3) {
            return None;
        }
        let mut prefixes = vec![(0u32, 0usize, 0usize); PREFIX_SLOTS];
        let mut filter = vec![0u64; (1 << 16) / 64];
        let mut from = 0;
        while let Some((lit, _, _)) = alts.get(from) {
            let key = prefix3(lit.as_bytes());
            let to = from
                + alts
                    .get(from..)?
                    .iter()
                    .take_while(|(l, _, _)| prefix3(l.as_bytes()) == key)
                    .count();
            let mut i = prefix_slot(key);
            while prefixes.get(i)?.0 != 0 {
                i = (i + 1) % PREFIX_SLOTS;
            }
            *prefixes.get_mut(i)? = (key, from, to);
            let bit = filter_bit(key);
            *filter.get_mut(bit / 64)? |= 1 << (bit % 64);
            from = to;
        }
        Some(Keywords {
            alts,
            prefixes,
            filter,
        })
    })
    .as_ref()
}

/// What the keyword patterns find in a [`Prepared`] text.
#[derive(Debug, Default, PartialEq)]
pub(super) struct KeywordHits {
    /// Matches of [`MATH_WORDS`] (as `find_iter` counts them).
    pub(super) math_words: usize,
    /// Bits of the patterns that match (see [`MATH_BIT`]).
    bits: u16,
    /// One of [`ASKS_FOR_CODE`]'s verbs is there.
    pub(super) ask: bool,
}

impl KeywordHits {
    /// The pattern of `HARD_TERMS[i]` matches.
    pub(super) fn hard_term(&self, i: usize) -> bool {
        i < 15 && self.bits & (1u16 << (i + 1)) != 0
    }
}

/// One pass for every keyword pattern (they are all case-insensitive: matched on the lowercase
/// text, which is ASCII). A match of any of them starts at a word start (each alternative
/// starts with a letter, after `\b`); no alternative can start inside another's match (inside
/// a word there is no `\b`, and no alternative begins with the second word of a phrase —
/// tested), so every word start is checked on its own, against the literals that begin with
/// its first three bytes. A pattern's matches do not
/// overlap either, so [`MATH_WORDS`]' count is the number of word starts where it matches.
pub(super) fn keyword_hits(text: &Prepared<'_>) -> KeywordHits {
    let mut hits = KeywordHits::default();
    let Some(kw) = keywords() else {
        return hits;
    };
    let lo = text.lower();
    // word starts, 64 bytes at a time as a bit mask (no branch per byte)
    let mut prev_word = false;
    for (c, chunk) in lo.chunks(64).enumerate() {
        let word = word_byte_mask(chunk);
        let mut starts = word & !((word << 1) | u64::from(prev_word));
        prev_word = chunk.len() == 64 && word >> 63 == 1;
        while starts != 0 {
            let at = c * 64 + starts.trailing_zeros() as usize;
            starts &= starts - 1;
            let rest = lo.get(at..).unwrap_or_default();
            let mut bits = 0u16;
            for (lit, end, bit) in kw.candidates(rest) {
                if bits & bit != 0 || !rest.starts_with(lit.as_bytes()) {
                    continue;
                }
                let next = rest.get(lit.len()).copied();
                let ends = match end {
                    KeywordEnd::Word => !next.is_some_and(is_word_byte),
                    KeywordEnd::More => next.is_some_and(is_word_byte),
                    KeywordEnd::Any => true,
                };
                if ends {
                    bits |= bit;
                }
            }
            hits.math_words += usize::from(bits & MATH_BIT != 0);
            hits.bits |= bits;
        }
    }
    hits.ask = hits.bits & ASK_BIT != 0;
    hits
}

// ---------------------------------------------------------------- LaTeX and equations

/// What [`has_latex`] finds, as a regex (the reference its tests compare against).
#[cfg(test)]
const LATEX: &str = r"\\(frac|int|sum|sqrt|lim|prod|cdot|times|le|ge|neq|infty|pi|theta|alpha|beta)\b|\$[^$\n]{1,80}\$";
/// What [`has_equation`] finds, as a regex (the reference its tests compare against).
#[cfg(test)]
const EQUATION: &str = r"\d\s*[\^*/=]\s*[\d(a-z]|[a-z]\s*\^\s*\d|\b[xyz]\s*[=+\-]\s*\d";

/// The LaTeX commands of [`LATEX`].
const LATEX_COMMANDS: &[&[u8]] = &[
    b"frac", b"int", b"sum", b"sqrt", b"lim", b"prod", b"cdot", b"times", b"le", b"ge", b"neq",
    b"infty", b"pi", b"theta", b"alpha", b"beta",
];

/// A word byte (`\w` in ASCII mode): a letter, a digit or `_`.
const fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// `\s` in ASCII mode.
fn is_space_byte(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0B | 0x0C | b'\r' | b' ')
}

/// Whether [`LATEX`] (ASCII mode) matches the ASCII `text`, without a regex: every match starts
/// at a backslash or a dollar sign (found by `memchr`). At a backslash, one of the commands
/// follows and then no word byte (`\b` after a word byte); at a dollar sign, the next dollar
/// sign or newline is a dollar sign 1–80 bytes further (`[^$\n]{1,80}` cannot step over
/// either; on ASCII text a byte is a character).
pub(super) fn has_latex(text: &[u8]) -> bool {
    for at in memchr::memchr2_iter(b'\\', b'$', text) {
        let rest = text.get(at + 1..).unwrap_or_default();
        if text.get(at) == Some(&b'\\') {
            if LATEX_COMMANDS.iter().any(|c| {
                rest.starts_with(c) && !rest.get(c.len()).is_some_and(|&b| is_word_byte(b))
            }) {
                return true;
            }
        } else if let Some(j) = memchr::memchr2(b'$', b'\n', rest.get(..81).unwrap_or(rest))
            && j >= 1
            && rest.get(j) == Some(&b'$')
        {
            return true;
        }
    }
    false
}

/// Whether [`EQUATION`] (ASCII mode) matches the ASCII `text`, without a regex. Each
/// alternative is `X \s* OP \s* Y`: the `\s*` runs take all the bytes between, so X is the
/// last non-space byte before an operator and Y the first one after it, and a match exists
/// iff some operator (found by `memchr`) has an X and Y that fit: a digit, `^*/=`, a digit,
/// `(` or lowercase letter; a lowercase letter, `^`, a digit; or `x`/`y`/`z` at a word start
/// (`\b` before a word byte), `=+-`, a digit.
pub(super) fn has_equation(text: &[u8]) -> bool {
    let ops = memchr::memchr3_iter(b'^', b'*', b'/', text)
        .chain(memchr::memchr3_iter(b'=', b'+', b'-', text));
    for at in ops {
        let before = text.get(..at).unwrap_or_default();
        let Some(xi) = before.iter().rposition(|&b| !is_space_byte(b)) else {
            continue;
        };
        let Some(&y) = text
            .get(at + 1..)
            .unwrap_or_default()
            .iter()
            .find(|&&b| !is_space_byte(b))
        else {
            continue;
        };
        let (Some(&x), Some(&op)) = (before.get(xi), text.get(at)) else {
            continue;
        };
        let word_start = xi == 0 || !before.get(xi - 1).is_some_and(|&b| is_word_byte(b));
        let fits = (matches!(op, b'^' | b'*' | b'/' | b'=')
            && x.is_ascii_digit()
            && (y.is_ascii_digit() || y == b'(' || y.is_ascii_lowercase()))
            || (op == b'^' && x.is_ascii_lowercase() && y.is_ascii_digit())
            || (matches!(op, b'=' | b'+' | b'-')
                && matches!(x, b'x' | b'y' | b'z')
                && word_start
                && y.is_ascii_digit());
        if fits {
            return true;
        }
    }
    false
}

// ---------------------------------------------------------------- language

/// Letters of each script, as `language` weighs them.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(super) struct Scripts {
    pub(super) latin: usize,
    pub(super) cjk: usize,
    pub(super) cyrillic: usize,
    pub(super) arabic: usize,
    pub(super) devanagari: usize,
    pub(super) other: usize,
}

impl Scripts {
    /// Counts `c` under its script if it is alphabetic.
    fn add(&mut self, c: char) {
        if !c.is_alphabetic() {
            return;
        }
        match c as u32 {
            0x0041..=0x024F => self.latin += 1,
            0x0400..=0x04FF => self.cyrillic += 1,
            0x0600..=0x06FF => self.arabic += 1,
            0x0900..=0x097F => self.devanagari += 1,
            0x3040..=0x30FF | 0x3400..=0x9FFF | 0xAC00..=0xD7AF => self.cjk += 1,
            _ => self.other += 1,
        }
    }
}

/// [`Scripts::add`] of each of the first `max_chars` characters of `text`, ASCII bytes counted
/// without decoding (a whole ASCII 64-byte block by [`ascii_alpha_mask`]).
pub(super) fn script_counts(text: &str, max_chars: usize) -> Scripts {
    let mut s = Scripts::default();
    let bytes = text.as_bytes();
    let (mut i, mut seen) = (0usize, 0usize);
    while let Some(&b) = bytes.get(i) {
        if seen >= max_chars {
            break;
        }
        if max_chars - seen >= 64
            && let Some(chunk) = bytes.get(i..i + 64)
            && chunk.is_ascii()
        {
            s.latin += ascii_alpha_mask(chunk).count_ones() as usize;
            i += 64;
            seen += 64;
            continue;
        }
        seen += 1;
        if b.is_ascii() {
            s.latin += usize::from(b.is_ascii_alphabetic());
            i += 1;
            continue;
        }
        let Some(c) = text.get(i..).and_then(|t| t.chars().next()) else {
            break;
        };
        i += c.len_utf8();
        s.add(c);
    }
    s
}

/// (words, English words) among the first `max` words of `text` — maximal runs of alphabetic
/// characters, as `text.split(|c| !c.is_alphabetic())` without the empty pieces gives them —
/// or among the words up to the `enough`-th English one, if there are that many. ASCII words
/// are checked by [`is_en_word`], the others by `non_ascii_en`. Runs of all-ASCII 64-byte
/// blocks are read as bit masks ([`count_ascii_words`]); the rest byte by byte
/// ([`count_words_from`]), from the start of the word a non-ASCII block interrupts.
pub(super) fn count_en_words(
    text: &str,
    max: usize,
    enough: usize,
    non_ascii_en: impl Fn(&str) -> bool,
) -> (usize, usize) {
    let mut tally = WordTally {
        words: 0,
        en: 0,
        max,
        enough,
    };
    let Some(resume) = count_ascii_words(text.as_bytes(), &mut tally) else {
        return (tally.words, tally.en);
    };
    count_words_from(text, resume, &mut tally, non_ascii_en);
    (tally.words, tally.en)
}

/// Words and English words counted so far, and where counting stops.
struct WordTally {
    words: usize,
    en: usize,
    max: usize,
    enough: usize,
}

impl WordTally {
    /// Another word may be counted (checked when a word starts; a word's own count cannot
    /// change this before it ends, so checking at its end is the same).
    fn open(&self) -> bool {
        self.words < self.max && self.en < self.enough
    }
}

/// Counts the words of `bytes` 64 bytes at a time while the blocks are ASCII: a mask of the
/// alphabetic bytes gives every word's start and end. Returns `None` when counting is over
/// (the text's end or a limit reached), else the offset to go on from byte by byte: the
/// start of the first non-ASCII block, or of the word that runs into it (a non-ASCII letter
/// may continue it).
fn count_ascii_words(bytes: &[u8], tally: &mut WordTally) -> Option<usize> {
    // start of the word being read, if one is open at the block boundary
    let mut open_word: Option<usize> = None;
    for (c, block) in bytes.chunks(64).enumerate() {
        let base = c * 64;
        if !block.is_ascii() {
            return Some(open_word.unwrap_or(base));
        }
        let alpha = ascii_alpha_mask(block);
        let before = (alpha << 1) | u64::from(open_word.is_some());
        // bit i: a word starts at i / ends just before i
        let mut events = (alpha & !before) | (!alpha & before);
        if block.len() < 64 {
            events &= (1u64 << block.len()) - 1;
        }
        while events != 0 {
            let i = events.trailing_zeros() as usize;
            events &= events - 1;
            match open_word.take() {
                None => open_word = Some(base + i),
                Some(start) => {
                    if !tally.open() {
                        return None;
                    }
                    tally.words += 1;
                    tally.en += usize::from(is_en_word_at(bytes, start, base + i - start));
                }
            }
        }
    }
    // a word open at the end ends there
    if let Some(start) = open_word
        && tally.open()
    {
        tally.words += 1;
        let w = bytes.get(start..).unwrap_or_default();
        tally.en += usize::from(w.len() <= 5 && is_en_word_bytes(w));
    }
    None
}

/// Bit i set when byte i of `block` (ASCII, at most 64 bytes) is a letter: eight bytes at a
/// time (SWAR). `b | 0x20` folds case and puts a letter in `0x61..=0x7A` (no other ASCII byte
/// lands there); adding `0x1F` / `0x05` sets a byte's high bit when it is `>= 0x61` / `>= 0x7B`
/// (no carry leaves a byte: every byte is below `0x80`); the multiply gathers the eight high
/// bits into the top byte.
fn ascii_alpha_mask(block: &[u8]) -> u64 {
    const LO: u64 = 0x0101_0101_0101_0101;
    let eight_mask = |w: u64| {
        let t = w | (0x20 * LO);
        let letter = t.wrapping_add(0x1F * LO) & !t.wrapping_add(0x05 * LO) & (0x80 * LO);
        letter.wrapping_mul(0x0002_0408_1020_4081) >> 56
    };
    mask_by_eights(block, eight_mask)
}

/// The 64-bit mask of `block` (at most 64 bytes) from `eight_mask`, which maps eight bytes
/// (little endian) to their eight bits: whole words read in place, the last few bytes padded
/// with zeros (which neither caller counts).
#[inline(always)]
fn mask_by_eights(block: &[u8], eight_mask: impl Fn(u64) -> u64) -> u64 {
    let mut mask = 0u64;
    let mut words = block.chunks_exact(8);
    for (k, eight) in (&mut words).enumerate() {
        mask |= eight_mask(eight.try_into().map_or(0, u64::from_le_bytes)) << (8 * k);
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let w = rest
            .iter()
            .rev()
            .fold(0u64, |w, &b| (w << 8) | u64::from(b));
        mask |= eight_mask(w) << (block.len() - rest.len());
    }
    mask
}

/// [`count_en_words`] byte by byte from offset `from` (a word start or a non-word byte).
fn count_words_from(
    text: &str,
    from: usize,
    tally: &mut WordTally,
    non_ascii_en: impl Fn(&str) -> bool,
) {
    let bytes = text.as_bytes();
    let n = bytes.len();
    // (is alphabetic, byte length) of the non-ASCII character at `at`
    let wide = |at: usize| -> (bool, usize) {
        text.get(at..)
            .and_then(|t| t.chars().next())
            .map_or((false, 1), |c| (c.is_alphabetic(), c.len_utf8()))
    };
    let mut i = from;
    while tally.open() {
        // to the next word's start
        while let Some(&b) = bytes.get(i) {
            if b.is_ascii_alphabetic() {
                break;
            }
            if b.is_ascii() {
                i += 1;
                continue;
            }
            let (alpha, len) = wide(i);
            if alpha {
                break;
            }
            i += len;
        }
        if i >= n {
            break;
        }
        let start = i;
        let mut ascii = true;
        while let Some(&b) = bytes.get(i) {
            if b.is_ascii_alphabetic() {
                i += 1;
                continue;
            }
            if b.is_ascii() {
                break;
            }
            let (alpha, len) = wide(i);
            if !alpha {
                break;
            }
            ascii = false;
            i += len;
        }
        tally.words += 1;
        let w = text.get(start..i).unwrap_or_default();
        tally.en += usize::from(if ascii {
            is_en_word(w)
        } else {
            non_ascii_en(w)
        });
    }
}

/// `w` (ASCII) lowercased is one of [`EN_WORDS`].
fn is_en_word(w: &str) -> bool {
    is_en_word_bytes(w.as_bytes())
}

/// A word of at most 5 bytes as one integer, each byte `| 0x20` (which lowercases a letter
/// and maps every other byte to a non-letter: `0x41..=0x5A` and `0x61..=0x7A` are the only
/// bytes that land in `0x61..=0x7A`), and its length in the top byte.
const fn en_key(w: &[u8]) -> u64 {
    let mut k = (w.len() as u64) << 56;
    let mut i = 0;
    while i < w.len() && i < 5 {
        k |= ((w[i] | 0x20) as u64) << (8 * i);
        i += 1;
    }
    k
}

/// Multiplier of [`en_slot`]: it sends the 17 [`EN_WORDS`] keys to 17 different slots of 32
/// (checked when [`EN_TABLE`] is built: a collision stops the build).
const EN_MAGIC: u64 = 0x6a8a_c4ba_0580_5975;

const fn en_slot(key: u64) -> usize {
    (key.wrapping_mul(EN_MAGIC) >> 59) as usize
}

/// [`en_key`] of every [`EN_WORDS`] entry at its [`en_slot`]; 0 (no word's key) elsewhere.
const EN_TABLE: [u64; 32] = {
    let mut table = [0u64; 32];
    let mut i = 0;
    while i < EN_WORDS.len() {
        let key = en_key(EN_WORDS[i]);
        let slot = en_slot(key);
        assert!(table[slot] == 0, "EN_MAGIC: two stop words share a slot");
        table[slot] = key;
        i += 1;
    }
    table
};

/// [`is_en_word_bytes`] of `bytes[start..start + len]`, its [`en_key`] read as one 8-byte word
/// when 8 bytes are there (no loop over the word's bytes).
fn is_en_word_at(bytes: &[u8], start: usize, len: usize) -> bool {
    if !(1..=5).contains(&len) {
        return false;
    }
    let key = match bytes.get(start..start + 8) {
        Some(w) => {
            let v = w.try_into().map_or(0, u64::from_le_bytes);
            ((v | 0x2020_2020_2020_2020) & ((1u64 << (8 * len)) - 1)) | (len as u64) << 56
        }
        None => en_key(bytes.get(start..start + len).unwrap_or_default()),
    };
    EN_TABLE.get(en_slot(key)) == Some(&key)
}

/// [`is_en_word`] of ASCII bytes: `w` lowercased is one of [`EN_WORDS`] (compared as one
/// integer at its one possible slot — no branch on the word; the words' letters are letters,
/// so a byte that is not a letter never matches).
fn is_en_word_bytes(w: &[u8]) -> bool {
    let key = en_key(w);
    (1..=5).contains(&w.len()) && EN_TABLE.get(en_slot(key)) == Some(&key)
}

/// `language` as it was first written (allocating), the reference for the faster one.
#[cfg(test)]
fn language_reference(text: &str) -> &'static str {
    let (mut latin, mut cjk, mut cyr, mut arabic, mut deva, mut other) = (0usize, 0, 0, 0, 0, 0);
    for c in text.chars().take(4000) {
        if !c.is_alphabetic() {
            continue;
        }
        match c as u32 {
            0x0041..=0x024F => latin += 1,
            0x0400..=0x04FF => cyr += 1,
            0x0600..=0x06FF => arabic += 1,
            0x0900..=0x097F => deva += 1,
            0x3040..=0x30FF | 0x3400..=0x9FFF | 0xAC00..=0xD7AF => cjk += 1,
            _ => other += 1,
        }
    }
    let total = latin + cjk + cyr + arabic + deva + other;
    if total == 0 {
        return "en";
    }
    let max = [latin, cjk, cyr, arabic, deva, other]
        .into_iter()
        .max()
        .unwrap();
    if max == cjk && cjk * 5 >= total {
        return "cjk";
    }
    if max != latin {
        return match max {
            m if m == cyr => "cyrillic",
            m if m == arabic => "arabic",
            m if m == deva => "devanagari",
            _ => "other",
        };
    }
    const EN: &[&str] = &[
        "the", "and", "is", "of", "to", "what", "a", "in", "for", "how", "you", "that", "with",
        "are", "this", "it", "which",
    ];
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| !w.is_empty())
        .take(400)
        .map(|w| w.to_lowercase())
        .collect();
    if words.is_empty() {
        return "en";
    }
    let en = words.iter().filter(|w| EN.contains(&w.as_str())).count();
    if en * 12 >= words.len() || words.len() < 4 {
        "en"
    } else {
        "latin"
    }
}

#[cfg(test)]
mod tests {
    use proptest::strategy::Strategy;
    use regex::Regex;

    use super::super::{asks_for_code, hard_domain_terms, language, looks_like_math};
    use super::*;
    use crate::tokens;

    /// Every keyword pattern: the Unicode regex on the text must agree with the production
    /// matcher ([`shadow_re`], ASCII mode) on the text's shadow.
    fn shadowed_patterns() -> Vec<&'static str> {
        let mut p: Vec<&str> = HARD_TERMS.iter().map(|(_, p)| *p).collect();
        p.extend([LATEX, EQUATION, MATH_WORDS, ASKS_FOR_CODE]);
        p
    }

    fn same_on_shadow(t: &str) {
        type Pair = (&'static str, Regex, regex::bytes::Regex);
        static COMPILED: OnceLock<Vec<Pair>> = OnceLock::new();
        let compiled = COMPILED.get_or_init(|| {
            shadowed_patterns()
                .into_iter()
                .map(|p| {
                    let fast = regex::bytes::Regex::new(&shadow_pattern(p)).unwrap();
                    (p, Regex::new(p).unwrap(), fast)
                })
                .collect()
        });
        let shadow = ascii_shadow(t);
        assert!(shadow.is_ascii());
        assert_eq!(shadow.chars().count(), t.chars().count());
        let prepared = Prepared::new(t);
        for (p, full, fast) in compiled {
            let b = haystack(&prepared, p);
            assert_eq!(fast.is_match(b), full.is_match(t), "{p} on {t:?}");
            assert_eq!(
                fast.find_iter(b).count(),
                full.find_iter(t).count(),
                "{p} on {t:?}"
            );
        }
        // and the functions built on them
        let count = |p: &str| {
            compiled
                .iter()
                .find(|(q, _, _)| *q == p)
                .map_or(0, |(_, full, _)| full.find_iter(t).count())
        };
        let want_hard: Vec<String> = HARD_TERMS
            .iter()
            .filter(|(_, p)| count(p) > 0)
            .map(|(d, _)| d.to_string())
            .collect();
        assert_eq!(hard_domain_terms(t), want_hard, "{t:?}");
        let words = count(MATH_WORDS);
        let want_math = count(LATEX) > 0 || (count(EQUATION) > 0 && words >= 1) || words >= 2;
        assert_eq!(looks_like_math(t), want_math, "{t:?}");
        let hits = keyword_hits(&prepared);
        assert_eq!(
            asks_for_code(&prepared, &hits),
            count(ASKS_FOR_CODE) > 0,
            "{t:?}"
        );
        assert_eq!(hits.math_words, count(MATH_WORDS), "{t:?}");
    }

    /// What [`keyword_hits`] relies on: every keyword pattern is a list of literals, and no
    /// alternative can start at a word start inside another one (the second word of a phrase).
    #[test]
    fn keyword_alternatives_are_literals_that_do_not_nest() {
        let kw = keywords().unwrap();
        let mut pats = vec![MATH_WORDS, ask_verbs()];
        pats.extend(HARD_TERMS.iter().map(|(_, p)| *p));
        let n: usize = pats
            .iter()
            .map(|p| p.matches('|').count() + 1 + p.matches("(ly)?").count())
            .sum();
        assert_eq!(kw.alts.len(), n);
        assert_eq!(ask_verbs(), r"(?i)\b(write|implement|fix|debug|refactor)\b");
        for (lit, _, _) in &kw.alts {
            let b = lit.as_bytes();
            for j in 1..b.len() {
                if b[j - 1].is_ascii_alphanumeric() || !b[j].is_ascii_alphanumeric() {
                    continue;
                }
                let inner = &lit[j..];
                for (other, _, _) in &kw.alts {
                    assert!(
                        !other.starts_with(inner) && !inner.starts_with(other.as_str()),
                        "{other:?} starts inside {lit:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn keyword_regexes_match_on_the_shadow_like_on_the_text() {
        // no pattern may contain uppercase letters (see `ascii_shadow` and `Prepared`), and the
        // case-insensitive ones say so only by a leading `(?i)`
        for p in shadowed_patterns() {
            assert!(!p.chars().any(|c| c.is_ascii_uppercase()), "{p}");
            assert!(!p.trim_start_matches("(?i)").contains("(?"), "{p}");
        }
        let kinds = char_kinds();
        assert!(
            kinds.folds.contains(&('\u{17F}', 'S')) && kinds.folds.contains(&('\u{212A}', 'K'))
        );
        let texts = [
            "The plaintiff’s statute — naïve café: prove the theorem, how many? x = 3",
            "Résumé: diagnosé with symptoms; patient 42; compute the eigenvalues ∑",
            "Écrire une fonction: write a function in python — déjà vu",
            "quantum entropy ≠ ſtatute Kelvin-sign \u{212A}ernel $x^2$ \\frac{1}{2}",
            "plaintiffé éplaintiff é plaintiff é",
            "ordinary ascii text without anything",
            "x\u{a0}=\u{a0}3 and ٣ ^ 2, \\ſum, \\\u{212A}, eigenvalue\u{301}s, prove\u{301} proof_x",
            "write\u{2028}a function — 写一个 function in rust 😀 (how many?)",
            "prime\u{a0}number, how\u{3000}many, contract\u{2009}law, big-o, what is\u{a0}the value",
        ];
        for t in texts {
            same_on_shadow(t);
        }
    }

    proptest::proptest! {
        #[test]
        fn keyword_regexes_match_on_random_shadows(parts in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::sample::select(vec![
                    "plaintiff", "prove", "PROOF", "x = 3", "2^x", "\\frac", "\\pi", "$x^2$",
                    "eigen", "write a", "function", "c++", "how many", "symptom", "entropy",
                    " ", "\n", "_", "7", "how", "many", "prime", "number", "case", "law",
                    "\u{a0}", "\u{3000}", "\u{b}", "HOW MANY", "Solve", "DiagnoSIS", "Write",
                ]).prop_map(str::to_string),
                "[ſ\u{212A}éÉ’—\u{a0}\u{2028}\u{301}٣中😀ß\u{3000}]{1,2}",
                "\\PC{1,3}",
            ],
            0..24,
        )) {
            same_on_shadow(&parts.concat());
        }
    }

    #[test]
    fn language_counts_the_first_4000_characters_like_the_reference() {
        let texts = [
            format!("{}{}", "a".repeat(3999), "中".repeat(3000)),
            format!("{}{}", "中".repeat(3998), " the cat ".repeat(50)),
            format!("{}{}", "й ".repeat(1999), "é".repeat(5000)),
            "Bonjour à tous, voici le résumé ".repeat(300),
            "x".repeat(10_000),
            "The cat is on the mat. ".repeat(50),
            "Lorem ipsum dolor sit amet, consectetur adipiscing elit ".repeat(100),
            "one two three four five six seven eight nine ten, and the".to_string(),
        ];
        for t in texts {
            assert_eq!(language(&t), language_reference(&t), "{}", &t[..40]);
        }
    }

    proptest::proptest! {
        #[test]
        fn code_lines_match_like_the_regex(parts in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::sample::select(vec![
                    "def ", "def\u{a0}", "class ", "SELECT ", "ſELECT ", "select x from", "x;", ";", "{",
                    "}", "\n", "\n\n", " ", "\u{a0}", "\u{2028}", "\u{3000}", "Traceback (most recent call last)",
                    "if (", "for (", "from a import", "from é import", "#include", "let ", "é", "中", "😀", "\t",
                    "\r", "\r\n", "\u{85}", "from ", " import", "from\u{a0}x import", "select ", " from", "from",
                    "while (", "fn ", "return ", "x", "}}", "{;",
                ]).prop_map(str::to_string),
                "\\PC{1,3}",
            ],
            0..30,
        )) {
            let t = parts.concat();
            let full = Regex::new(CODE_LINES).unwrap();
            proptest::prop_assert_eq!(two_code_lines(&t), full.find_iter(&t).take(2).count() >= 2, "{:?}", t);
        }
    }

    proptest::proptest! {
        #[test]
        fn en_words_read_in_place_are_the_copied_words(text in proptest::collection::vec(proptest::prop_oneof![
            proptest::sample::select(b"theandisofwhatinforhowyouwithrecTHEANDWICH@[`{ 0_".to_vec()),
            proptest::num::u8::ANY,
        ], 0..20)) {
            for start in 0..=text.len() {
                for len in 0..=(text.len() - start).min(7) {
                    let w = &text[start..start + len];
                    proptest::prop_assert_eq!(is_en_word_at(&text, start, len), is_en_word_bytes(w), "{:?}", w);
                }
            }
        }

        #[test]
        fn en_word_keys_are_the_lowercase_comparison(w in proptest::collection::vec(proptest::prop_oneof![
            proptest::sample::select(b"theandisofwhatinforhowyouwithrecTHEANDWICH@[`{ 0_".to_vec()),
            proptest::num::u8::ANY,
        ], 0..7)) {
            let lower: Vec<u8> = w.to_ascii_lowercase();
            let want = EN_WORDS.contains(&lower.as_slice());
            proptest::prop_assert_eq!(is_en_word_bytes(&w), want, "{:?}", w);
        }
    }

    #[test]
    fn en_words() {
        for w in ["the", "THE", "Which", "a", "it", "iT"] {
            assert!(is_en_word(w), "{w}");
        }
        for w in ["", "thee", "whiches", "b", "th"] {
            assert!(!is_en_word(w), "{w}");
        }
    }

    proptest::proptest! {
        #[test]
        fn language_matches_the_reference(parts in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::sample::select(vec![
                    " the", " THE", " Is", " which", " a", " ok", " la", " de", "é", "İs", "\u{212A}",
                    " и", " 中文", " ئ", " क", " 😀", "\n", ", ",
                ]).prop_map(str::to_string),
                "\\PC{1,4}",
            ],
            0..60,
        )) {
            let t = parts.concat();
            proptest::prop_assert_eq!(language(&t), language_reference(&t));
        }

        #[test]
        fn en_words_are_counted_on_the_split(t in "([ -~\n]|\\PC|( the| It| which| İs| \u{212A}))*", max in 0usize..30) {
            let words: Vec<&str> = t.split(|c: char| !c.is_alphabetic()).filter(|w| !w.is_empty()).take(max).collect();
            let en = words.iter().filter(|w| if w.is_ascii() { is_en_word(w) } else { w.len() % 2 == 0 }).count();
            proptest::prop_assert_eq!(count_en_words(&t, max, usize::MAX, |w| w.len() % 2 == 0), (words.len(), en));
            // stopping at the `enough`-th English word
            let (n, e) = count_en_words(&t, max, 2, |w| w.len() % 2 == 0);
            let upto = words.iter().scan(0, |k, w| {
                let before = *k;
                *k += usize::from(if w.is_ascii() { is_en_word(w) } else { w.len() % 2 == 0 });
                (before < 2).then_some(())
            }).count();
            proptest::prop_assert_eq!((n, e), (upto, en.min(2)));
        }

        #[test]
        fn word_masks_are_the_word_bytes(block in proptest::collection::vec(proptest::prop_oneof![
            4 => proptest::sample::select(b"az AZ09_@[`{/:^\x7f".to_vec()),
            1 => proptest::num::u8::ANY,
        ], 0..=64)) {
            let want = block.iter().enumerate().fold(0u64, |m, (i, &b)| m | u64::from(WORD_BYTE[usize::from(b)]) << i);
            proptest::prop_assert_eq!(word_byte_mask(&block), want);
        }

        #[test]
        fn alpha_masks_are_the_letters(block in proptest::collection::vec(0u8..128, 0..=64)) {
            let want = block.iter().enumerate().fold(0u64, |m, (i, &b)| m | u64::from(b.is_ascii_alphabetic()) << i);
            proptest::prop_assert_eq!(ascii_alpha_mask(&block), want);
        }

        /// Long texts, so words cross the 64-byte blocks of the mask path and non-ASCII
        /// blocks interrupt it (mid-word, too).
        #[test]
        fn en_words_are_counted_on_the_split_in_long_texts(parts in proptest::collection::vec(
            proptest::prop_oneof![
                30 => proptest::sample::select(vec![
                    " the", " It", " which", " a", " ok", " longerword", "x", "\n", ", ", "ab",
                    "1", " is", " WHAT", " Which",
                ]),
                1 => proptest::sample::select(vec!["é", "İs", "\u{212A}", "’", " 中文"]),
            ],
            0..300,
        ), max in 0usize..500, enough in 0usize..60) {
            let t = parts.concat();
            let words: Vec<&str> = t.split(|c: char| !c.is_alphabetic()).filter(|w| !w.is_empty()).collect();
            let is_en = |w: &str| if w.is_ascii() { is_en_word(w) } else { w.len().is_multiple_of(2) };
            let (mut n, mut e) = (0usize, 0usize);
            for w in &words {
                if n >= max || e >= enough {
                    break;
                }
                n += 1;
                e += usize::from(is_en(w));
            }
            proptest::prop_assert_eq!(count_en_words(&t, max, enough, |w| w.len().is_multiple_of(2)), (n, e));
        }
    }

    /// Every prompt of the repository's committed fixtures (the eval and audit test sets).
    fn fixture_texts() -> Vec<String> {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let mut out = Vec::new();
        for f in [
            "tierwise-eval/fixtures/mmlu_pro/outcomes.jsonl",
            "tierwise-eval/fixtures/llmrouter/outcomes_train.jsonl",
            "tierwise-audit/tests/fixtures/labelled_prompts.jsonl",
        ] {
            let text = std::fs::read_to_string(format!("{root}/{f}")).unwrap();
            for line in text.lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                if let Some(t) = v["text"].as_str() {
                    out.push(t.to_string());
                }
                for m in v["messages"].as_array().into_iter().flatten() {
                    out.push(tokens::content_text(&m["content"]));
                }
            }
        }
        out
    }

    /// The byte-scanning detectors give what their reference definitions (the regexes, the
    /// first `language`) give, on every fixture prompt, on its first 20 lines, and on runs of 8
    /// of them joined (multi-line code, the 4,000-character and 400-word limits).
    #[test]
    fn detectors_match_the_references_on_the_fixtures() {
        let texts = fixture_texts();
        assert!(texts.len() > 500, "{}", texts.len());
        let code = Regex::new(CODE_LINES).unwrap();
        let joined: Vec<String> = texts.chunks(8).map(|c| c.join("\n")).collect();
        let heads: Vec<String> = texts
            .iter()
            .map(|t| t.lines().take(20).collect::<Vec<_>>().join("\n"))
            .collect();
        let (mut code_n, mut en_n) = (0, 0);
        for t in texts.iter().chain(&heads).chain(&joined) {
            let is_code = code.find_iter(t).take(2).count() >= 2;
            assert_eq!(two_code_lines(t), is_code, "{t}");
            assert_eq!(language(t), language_reference(t), "{t}");
            code_n += usize::from(is_code);
            en_n += usize::from(language(t) == "en");
        }
        // the keyword detectors (per text: their heads add nothing there)
        for t in texts.iter().chain(&joined) {
            same_on_shadow(t);
        }
        // the fixtures exercise both answers
        assert!(code_n > 0 && code_n < texts.len(), "{code_n}");
        assert!(en_n > 0 && en_n < 3 * texts.len(), "{en_n}");
    }

    proptest::proptest! {
        /// The hand-written LaTeX and equation scanners find a match exactly when their
        /// regexes (ASCII mode, as on the shadow) do, on text dense in what they look for.
        #[test]
        fn latex_and_equation_scanners_are_the_regexes(parts in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::sample::select(vec![
                    "\\frac", "\\le", "\\left", "\\pi", "\\pix", "\\beta_", "\\", "$", "$$",
                    "x", "y", "z", "ax", "_x", "3", "12", " ", "\t", "\n", "\u{b}", "\r", "^", "*",
                    "/", "=", "+", "-", "(", "a", "Q", "_", ".", "0x", "\u{c}",
                ]).prop_map(str::to_string),
                "[ -~]{1,3}",
                "[a-z$ ]{70,90}",
            ],
            0..40,
        )) {
            let t = parts.concat();
            let latex = regex::bytes::Regex::new(&shadow_pattern(LATEX)).unwrap();
            let eq = regex::bytes::Regex::new(&shadow_pattern(EQUATION)).unwrap();
            proptest::prop_assert_eq!(has_latex(t.as_bytes()), latex.is_match(t.as_bytes()), "{:?}", t);
            proptest::prop_assert_eq!(has_equation(t.as_bytes()), eq.is_match(t.as_bytes()), "{:?}", t);
        }

        #[test]
        fn ascii_prefix_is_the_first_non_ascii_byte(b in proptest::collection::vec(proptest::prop_oneof![
            20 => 0u8..128,
            1 => 128u8..=255,
        ], 0..80)) {
            let want = b.iter().position(|c| !c.is_ascii()).unwrap_or(b.len());
            proptest::prop_assert_eq!(ascii_prefix_len(&b), want);
        }
    }

    #[test]
    fn fences_counted_like_matches() {
        for t in [
            "",
            "`",
            "``",
            "```",
            "````",
            "``````",
            "a ```rust\nfn x() {}\n``` b `c` ``",
            "é```é``",
        ] {
            assert_eq!(count_fences(t), t.matches("```").count(), "{t:?}");
        }
    }
}
