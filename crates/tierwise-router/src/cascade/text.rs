//! Text analysis of one answer: words, hedges and corrections, the final answer it states
//! (a letter, a number, a boxed/`####`/"the answer is" phrase), repetition, arithmetic that
//! does not add up. Hand-written scanners (no regex): a few µs on a 2 kB answer.

/// A stated final answer, normalized so two tiers' answers compare.
#[derive(Debug, Clone, PartialEq)]
pub enum Final {
    /// A multiple-choice option letter (upper case).
    Letter(char),
    Number(f64),
    /// Lower-cased, whitespace-collapsed, without surrounding punctuation (≤ 80 chars).
    Text(String),
}

impl Final {
    /// Same answer: letters and texts equal, numbers within 1e-6 relative.
    pub fn same(&self, other: &Final) -> bool {
        match (self, other) {
            (Final::Letter(a), Final::Letter(b)) => a == b,
            (Final::Number(a), Final::Number(b)) => {
                (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0)
            }
            (Final::Text(a), Final::Text(b)) => a == b,
            _ => false,
        }
    }
}

/// What the prompt lets us expect of the answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expect {
    /// Option letters offered (multiple choice), in order; empty when none.
    pub options: Vec<char>,
    /// The prompt asks for a final answer in a recognisable form (a letter, "the answer is",
    /// `\boxed`, `####`, "final answer", a number).
    pub wants_final: bool,
    /// The question looks like math: the last number of the answer stands in for a final answer.
    pub numeric: bool,
    /// Words in the question (last user turn).
    pub question_words: usize,
}

/// Lines like `A. text`, `(B) text`, `C) text`, `D: text` in order from A: the letters offered.
pub fn options_of(prompt: &str) -> Vec<char> {
    let mut letters: Vec<char> = Vec::new();
    for line in prompt.lines() {
        let t = line.trim_start();
        let t = t.strip_prefix('(').unwrap_or(t);
        let mut cs = t.chars();
        let (Some(c), Some(sep)) = (cs.next(), cs.next()) else {
            continue;
        };
        if !c.is_ascii_uppercase() || !matches!(sep, '.' | ')' | ':') {
            continue;
        }
        if !cs.next().is_none_or(char::is_whitespace) {
            continue;
        }
        let want = letters.last().map_or('A', |&l| ((l as u8) + 1) as char);
        if c == want {
            letters.push(c);
        } else if c == 'A' {
            letters.clear();
            letters.push('A');
        }
    }
    if letters.len() >= 2 {
        letters
    } else {
        Vec::new()
    }
}

const ASK_FINAL: &[&str] = &[
    "the answer is",
    "answer with",
    "final answer",
    "\\boxed",
    "####",
    "answer:",
    "respond with",
    "reply with",
    "only the letter",
    "only the number",
    "correct option",
];

/// What the prompt (text of the last user turn, plus any system text) lets us expect.
pub fn expect_of(prompt: &str, numeric: bool) -> Expect {
    let options = options_of(prompt);
    let lower = prompt.to_lowercase();
    let asks = ASK_FINAL.iter().any(|p| lower.contains(p));
    Expect {
        wants_final: asks || !options.is_empty() || numeric,
        numeric,
        question_words: prompt.split_whitespace().count(),
        options,
    }
}

/// A number at the start of `s` (after optional `$`, sign), with `,` thousands separators.
fn number_at(s: &[u8], i: usize) -> Option<(f64, usize)> {
    let mut j = i;
    let neg = j < s.len() && s[j] == b'-';
    if neg {
        j += 1;
    }
    let start = j;
    let mut buf = String::new();
    let mut seen_dot = false;
    while j < s.len() {
        let c = s[j];
        if c.is_ascii_digit() {
            buf.push(c as char);
        } else if c == b',' && !seen_dot && !buf.is_empty() {
            // thousands separator only when followed by exactly three digits
            let next3 = s
                .get(j + 1..j + 4)
                .is_some_and(|d| d.iter().all(u8::is_ascii_digit));
            let fourth = s.get(j + 4).is_some_and(u8::is_ascii_digit);
            if !next3 || fourth {
                break;
            }
        } else if c == b'.' && !seen_dot && s.get(j + 1).is_some_and(u8::is_ascii_digit) {
            seen_dot = true;
            buf.push('.');
        } else {
            break;
        }
        j += 1;
    }
    if j == start || buf.is_empty() {
        return None;
    }
    let v: f64 = buf.parse().ok()?;
    Some((if neg { -v } else { v }, j))
}

/// Every number in `s`, in order.
pub fn numbers(s: &str) -> Vec<f64> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let prev_alnum = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'.');
        if !prev_alnum
            && (b[i].is_ascii_digit()
                || (b[i] == b'-' && b.get(i + 1).is_some_and(u8::is_ascii_digit)))
            && let Some((v, j)) = number_at(b, i)
        {
            out.push(v);
            i = j;
            continue;
        }
        i += 1;
    }
    out
}

fn strip_decor(s: &str) -> &str {
    s.trim_matches(|c: char| {
        c.is_whitespace() || matches!(c, '*' | '$' | ':' | '"' | '\'' | '`' | '_')
    })
}

/// A candidate answer string as a [`Final`], under the prompt's expectations.
pub fn classify(raw: &str, expect: &Expect) -> Option<Final> {
    let s = strip_decor(raw);
    if s.is_empty() {
        return None;
    }
    if !expect.options.is_empty() {
        let lower = s.to_ascii_lowercase();
        let t = ["option ", "choice ", "answer "]
            .iter()
            .find_map(|p| lower.starts_with(p).then(|| &s[p.len()..]))
            .unwrap_or(s);
        let t = strip_decor(t);
        let t = t
            .strip_prefix('(')
            .or_else(|| t.strip_prefix('['))
            .unwrap_or(t);
        let mut cs = t.chars();
        if let Some(c) = cs.next()
            && c.is_ascii_alphabetic()
            && cs.next().is_none_or(|n| !n.is_ascii_alphanumeric())
        {
            return Some(Final::Letter(c.to_ascii_uppercase()));
        }
    }
    if let Some(&n) = numbers(s).first() {
        // a number stated as the answer (allow a unit or short words around it)
        if s.split_whitespace().count() <= 6 || expect.numeric {
            return Some(Final::Number(n));
        }
    }
    let mut norm = String::with_capacity(s.len().min(80));
    let mut space = false;
    for c in s.chars() {
        if c.is_whitespace() {
            space = !norm.is_empty();
            continue;
        }
        if space {
            norm.push(' ');
            space = false;
        }
        norm.extend(c.to_lowercase());
        if norm.len() >= 80 {
            break;
        }
    }
    let norm = norm
        .trim_end_matches(['.', ',', ';', '!'])
        .trim_start_matches("the ")
        .to_string();
    (!norm.is_empty()).then_some(Final::Text(norm))
}

/// The end of an answer phrase that starts at byte `i`: the end of the line, or of the sentence.
fn phrase_end(s: &str, i: usize) -> usize {
    let b = s.as_bytes();
    let mut j = i;
    while j < b.len() {
        match b[j] {
            b'\n' => break,
            b'.' if b.get(j + 1).is_none_or(|c| c.is_ascii_whitespace()) && j > i => {
                // "3.5" keeps going; ". " ends the sentence
                break;
            }
            _ => {}
        }
        j += 1;
    }
    let mut end = j.min(i + 200).min(b.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    end
}

/// Content of the brace group opening at byte `open` (which holds `{`).
fn braced(s: &str, open: usize) -> Option<&str> {
    let b = s.as_bytes();
    let mut depth = 0usize;
    for (j, &c) in b.iter().enumerate().skip(open) {
        match c {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return s.get(open + 1..j);
                }
            }
            _ => {}
        }
    }
    None
}

/// Answer phrases in `text` (`lower`: its ASCII lower-cased copy, same byte offsets),
/// each as (byte position, raw candidate).
fn stated(text: &str, lower: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (pos, _) in lower.match_indices("\\boxed{") {
        if let Some(inner) = braced(text, pos + 6) {
            out.push((pos, inner.to_string()));
        }
    }
    for (pos, _) in lower.match_indices("####") {
        let start = pos + 4;
        out.push((
            pos,
            text.get(start..phrase_end(text, start))
                .unwrap_or("")
                .to_string(),
        ));
    }
    for pat in [
        "answer is",
        "answer:",
        "answer would be",
        "answer should be",
        "final answer",
    ] {
        for (pos, _) in lower.match_indices(pat) {
            let mut start = pos + pat.len();
            // "final answer is: X", "answer is: (C)"
            for skip in [" is", ":", " would be", " -"] {
                if lower[start..].starts_with(skip) {
                    start += skip.len();
                }
            }
            let cand = text
                .get(start..phrase_end(text, start))
                .unwrap_or("")
                .to_string();
            if !strip_decor(&cand).is_empty() {
                out.push((pos, cand));
            }
        }
    }
    out.sort_by_key(|(p, _)| *p);
    out
}

/// The answer's final answer, how many distinct ones it states, and whether it was stated
/// explicitly (a phrase) rather than inferred (a bare letter, the last number).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Extracted {
    pub last: Option<Final>,
    pub distinct: usize,
    pub explicit: bool,
    /// A letter that is not among the options offered.
    pub invalid: bool,
}

pub fn extract(text: &str, expect: &Expect) -> Extracted {
    // ASCII lower-casing keeps byte offsets, so positions found in `lower` index `text`
    let lower = text.to_ascii_lowercase();
    let finals: Vec<Final> = stated(text, &lower)
        .iter()
        .filter_map(|(_, c)| classify(c, expect))
        .collect();
    let mut distinct: Vec<&Final> = Vec::new();
    for f in &finals {
        if !distinct.iter().any(|d| d.same(f)) {
            distinct.push(f);
        }
    }
    let (last, explicit) = match finals.last() {
        Some(f) => (Some(f.clone()), true),
        None => (implicit(text, expect), false),
    };
    let invalid = matches!(last, Some(Final::Letter(c)) if !expect.options.contains(&c));
    Extracted {
        distinct: distinct.len(),
        last,
        explicit,
        invalid,
    }
}

/// A final answer without an answer phrase: a short answer that is itself a letter/number, a
/// bold letter on its own line, or the last number of a math answer.
fn implicit(text: &str, expect: &Expect) -> Option<Final> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    if t.split_whitespace().count() <= 4
        && let Some(f) = classify(t, expect)
    {
        return Some(f);
    }
    if !expect.options.is_empty() {
        // last line like "**C**" or "(C) text"
        let last = t.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
        let l = strip_decor(last.trim());
        if l.starts_with('(') && l.get(2..3) == Some(")") {
            return classify(&l[..3], expect);
        }
        if l.chars().count() == 1 {
            return classify(l, expect);
        }
    }
    if expect.numeric {
        return numbers(t).last().map(|&n| Final::Number(n));
    }
    None
}

/// Word-level statistics of an answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Words {
    pub words: usize,
    pub hedges: usize,
    pub corrections: usize,
    pub no_match: usize,
    pub refusal: bool,
    /// 1 − unique/total word 4-grams (0 under 20 words).
    pub repetition: f64,
    /// Hashes of the distinct lower-cased words (first 600 words), sorted.
    pub bag: Vec<u64>,
}

const HEDGE_WORDS: &[&str] = &[
    "might",
    "perhaps",
    "possibly",
    "probably",
    "likely",
    "unclear",
    "uncertain",
    "seems",
    "appears",
    "guess",
    "assume",
    "assuming",
    "approximately",
    "roughly",
    "estimate",
    "unsure",
];
const HEDGE_PHRASES: &[&str] = &[
    "not sure",
    "i think",
    "i believe",
    "it is possible",
    "not certain",
    "hard to say",
];
const CORRECTION_WORDS: &[&str] = &[
    "wait",
    "actually",
    "oops",
    "mistake",
    "recalculate",
    "recompute",
    "reevaluate",
    "re-evaluate",
    "correction",
    "re-examine",
    "reconsider",
];
const NO_MATCH_PHRASES: &[&str] = &[
    "none of the",
    "closest",
    "not listed",
    "not among",
    "does not match",
    "doesn't match",
    "do not match",
    "not one of the",
    "no correct",
    "cannot be determined",
    "not enough information",
];
const REFUSAL_PHRASES: &[&str] = &[
    "i can't help",
    "i cannot help",
    "i can't assist",
    "i cannot assist",
    "i'm sorry, but",
    "i am sorry, but",
    "as an ai",
    "i'm unable to",
    "i am unable to",
    "i cannot provide",
    "i can't provide",
    "i won't be able",
    "i cannot answer",
    "i can't answer",
];

pub fn fnv(s: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in s {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

pub fn words(text: &str, lower: &str) -> Words {
    let mut w = Words::default();
    let mut hashes: Vec<u64> = Vec::new();
    for tok in lower.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '-')) {
        if tok.is_empty() {
            continue;
        }
        w.words += 1;
        if HEDGE_WORDS.contains(&tok) {
            w.hedges += 1;
        }
        if CORRECTION_WORDS.contains(&tok) {
            w.corrections += 1;
        }
        if hashes.len() < 600 {
            hashes.push(fnv(tok.as_bytes()));
        }
    }
    w.hedges += HEDGE_PHRASES
        .iter()
        .map(|p| lower.matches(p).count())
        .sum::<usize>();
    w.corrections += lower.matches("let me re").count();
    w.no_match = NO_MATCH_PHRASES
        .iter()
        .map(|p| lower.matches(p).count())
        .sum();
    // refusals are judged on the opening of the answer, where they sit
    let head = lower.get(..lower.len().min(300)).unwrap_or(lower);
    w.refusal = REFUSAL_PHRASES.iter().any(|p| head.contains(p)) && w.words < 120;
    if hashes.len() >= 20 {
        let grams: Vec<u64> = hashes
            .windows(4)
            .map(|g| g.iter().fold(0u64, |h, &x| h.rotate_left(17) ^ x))
            .collect();
        let mut uniq = grams.clone();
        uniq.sort_unstable();
        uniq.dedup();
        w.repetition = 1.0 - uniq.len() as f64 / grams.len() as f64;
    }
    hashes.sort_unstable();
    hashes.dedup();
    w.bag = hashes;
    let _ = text;
    w
}

/// Jaccard similarity of two sorted, deduplicated hash bags.
pub fn jaccard(a: &[u64], b: &[u64]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let (mut i, mut j, mut both) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                both += 1;
                i += 1;
                j += 1;
            }
        }
    }
    both as f64 / (a.len() + b.len() - both) as f64
}

/// The answer stops mid-sentence (long answers only): a sign of a cut-off generation.
pub fn ends_abruptly(text: &str, words: usize) -> bool {
    if words < 30 {
        return false;
    }
    let last = text.trim_end().chars().last();
    !last.is_some_and(|c| ".!?)]}\"'*`$:>|".contains(c) || c.is_ascii_digit() || !c.is_ascii())
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok {
    Num(f64),
    Op(u8),
    Eq,
    Other,
}

fn arith_tokens(text: &str) -> Vec<Tok> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit()
            && !(i > 0 && (b[i - 1].is_ascii_alphabetic() || b[i - 1] == b'^' || b[i - 1] == b'_'))
            && let Some((v, j)) = number_at(b, i)
        {
            {
                // 10^3, 5%, 2x: not plain arithmetic
                if b.get(j)
                    .is_some_and(|&n| matches!(n, b'^' | b'%') || n.is_ascii_alphabetic())
                {
                    out.push(Tok::Other);
                } else {
                    out.push(Tok::Num(v));
                }
                i = j;
                continue;
            }
        }
        match c {
            b' ' | b'\t' | b'$' | b',' => {}
            b'+' | b'-' | b'*' | b'/' => out.push(Tok::Op(c)),
            b'x' if i > 0 && b[i - 1] == b' ' && b.get(i + 1) == Some(&b' ') => {
                out.push(Tok::Op(b'*'))
            }
            b'=' => out.push(Tok::Eq),
            b'\\' => {
                let rest = &text[i..];
                if rest.starts_with("\\times") {
                    out.push(Tok::Op(b'*'));
                    i += 6;
                    continue;
                } else if rest.starts_with("\\cdot") {
                    out.push(Tok::Op(b'*'));
                    i += 5;
                    continue;
                }
                out.push(Tok::Other);
            }
            _ if c >= 0x80 => {
                // a multi-byte character: × and ÷ are operators, anything else is text
                let ch = text.get(i..).and_then(|t| t.chars().next());
                match ch {
                    Some('×') => out.push(Tok::Op(b'*')),
                    Some('÷') => out.push(Tok::Op(b'/')),
                    _ => out.push(Tok::Other),
                }
                i += ch.map_or(1, char::len_utf8);
                continue;
            }
            _ => out.push(Tok::Other),
        }
        i += 1;
    }
    out
}

/// Evaluates `n (op n)*` with × and ÷ before + and −.
fn eval(nums: &[f64], ops: &[u8]) -> Option<f64> {
    let mut terms = vec![nums[0]];
    let mut signs = Vec::new();
    for (k, &op) in ops.iter().enumerate() {
        let n = nums[k + 1];
        match op {
            b'*' => *terms.last_mut()? *= n,
            b'/' => {
                if n == 0.0 {
                    return None;
                }
                *terms.last_mut()? /= n
            }
            b'+' | b'-' => {
                signs.push(op);
                terms.push(n);
            }
            _ => return None,
        }
    }
    let mut v = terms[0];
    for (s, t) in signs.iter().zip(&terms[1..]) {
        if *s == b'+' { v += t } else { v -= t }
    }
    Some(v)
}

/// Arithmetic the answer writes out as `a op b … = c`: (checked, wrong). A result within 1%
/// (or 0.01) counts as right — answers round.
pub fn arithmetic(text: &str) -> (usize, usize) {
    let toks = arith_tokens(text);
    let (mut checked, mut wrong) = (0, 0);
    let mut i = 0;
    while i < toks.len() {
        // start of an expression: a number not preceded by a number/op
        if !matches!(toks[i], Tok::Num(_))
            || (i > 0 && matches!(toks[i - 1], Tok::Num(_) | Tok::Op(_)))
        {
            i += 1;
            continue;
        }
        let mut nums = Vec::new();
        let mut ops = Vec::new();
        let mut j = i;
        while let Some(Tok::Num(n)) = toks.get(j) {
            nums.push(*n);
            match toks.get(j + 1) {
                Some(Tok::Op(o)) if matches!(toks.get(j + 2), Some(Tok::Num(_))) => {
                    ops.push(*o);
                    j += 2;
                }
                _ => break,
            }
        }
        if !ops.is_empty()
            && toks.get(j + 1) == Some(&Tok::Eq)
            && let Some(Tok::Num(rhs)) = toks.get(j + 2)
            && !matches!(toks.get(j + 3), Some(Tok::Op(_)))
            && let Some(v) = eval(&nums, &ops)
        {
            checked += 1;
            if (v - rhs).abs() > (0.01 * rhs.abs()).max(0.01) {
                wrong += 1;
            }
        }
        i = j + 1;
    }
    (checked, wrong)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;

    fn mc() -> Expect {
        expect_of(
            "Q?\nA. one\nB. two\nC. three\nD. four\nAnswer with the letter of the correct option.",
            false,
        )
    }

    #[test]
    fn options_and_expectations() {
        assert_eq!(mc().options, vec!['A', 'B', 'C', 'D']);
        assert!(mc().wants_final);
        let chat = expect_of("Write a haiku about autumn.", false);
        assert!(chat.options.is_empty() && !chat.wants_final);
        assert_eq!(options_of("(A) x\n(B) y\n"), vec!['A', 'B']);
    }

    #[test]
    fn extracts_letters_numbers_and_phrases() {
        let e = extract("Let's think. The answer is (C).", &mc());
        assert_eq!(e.last, Some(Final::Letter('C')));
        assert!(e.explicit);
        let e = extract("B", &mc());
        assert_eq!(e.last, Some(Final::Letter('B')));
        assert!(!e.explicit);
        let e = extract(
            "First the answer is (A). Wait, actually the answer is (D).",
            &mc(),
        );
        assert_eq!((e.last, e.distinct), (Some(Final::Letter('D')), 2));
        let e = extract("The answer is (K).", &mc());
        assert!(e.invalid);
        let math = expect_of("Tom has 3 apples and buys 4 more. How many apples?", true);
        let e = extract("3 + 4 = 7\n#### 7", &math);
        assert_eq!(e.last, Some(Final::Number(7.0)));
        let e = extract("He ends with $1,250.50 in total", &math);
        assert_eq!(e.last, Some(Final::Number(1250.5)));
        let e = extract("So \\boxed{\\frac{1}{2}}", &math);
        assert!(e.explicit);
        let e = extract("The final answer is: 42 apples.", &math);
        assert_eq!(e.last, Some(Final::Number(42.0)));
        assert!(Final::Number(0.1 + 0.2).same(&Final::Number(0.3)));
    }

    #[test]
    fn arithmetic_checks() {
        assert_eq!(arithmetic("So 12 * 3 = 36 and 36 + 4 = 40."), (2, 0));
        assert_eq!(arithmetic("So 12 × 3 = 38."), (1, 1));
        assert_eq!(arithmetic("2 + 3 * 4 = 14"), (1, 0));
        assert_eq!(arithmetic("x = 5, 10^3 = 1000"), (0, 0));
        assert_eq!(arithmetic("1/3 = 0.333"), (1, 0));
        assert_eq!(
            arithmetic("σ = 0.2, β × 2 = 3 and 2 ÷ 4 = 0.5 — done"),
            (1, 0)
        );
        let long = format!("The answer is {}", "β".repeat(150));
        let _ = extract(&long, &Expect::default());
    }

    #[test]
    fn words_and_repetition() {
        let t = "I think the answer might be B, but I'm not sure. Wait, actually it is C.";
        let w = words(t, &t.to_lowercase());
        assert_eq!(w.hedges, 3);
        assert_eq!(w.corrections, 2);
        let loop_text = "the cat sat on the mat ".repeat(20);
        let w = words(&loop_text, &loop_text);
        assert!(w.repetition > 0.9);
        let r = "I'm sorry, but I can't help with that.";
        assert!(words(r, &r.to_lowercase()).refusal);
        assert!(jaccard(&[1, 2, 3], &[2, 3, 4]) - 0.5 < 1e-12);
    }

    #[test]
    fn abrupt_ending() {
        let long = "word ".repeat(40);
        assert!(ends_abruptly(&format!("{long}and then the"), 43));
        assert!(!ends_abruptly(&format!("{long}done."), 41));
    }
}
