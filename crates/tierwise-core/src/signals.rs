//! Request signals: cheap, deterministic facts about a request that routing rules and the
//! learned router read. Computing them is one o200k pass over the prompt plus a few scans.

use std::sync::OnceLock;

use regex::Regex;
use serde::Serialize;

use crate::request::RequestView;
use crate::tokens;

/// Caller-supplied hints (headers `x-tierwise-*` or the same keys in `metadata`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Hints {
    /// Force this tier (name or model id).
    pub tier: Option<String>,
    /// e.g. `sub-agent`.
    pub role: Option<String>,
    /// e.g. `classification`, `extraction`, `summarization`, `coding`, `reasoning`.
    pub category: Option<String>,
    /// The caller can wait (batch / flex).
    pub deferrable: bool,
    /// Ask for a routing mode for this call (`cascade`, `sync`).
    pub mode: Option<String>,
}

/// Metadata keys tierwise reads as hints (both spellings), stripped before forwarding.
pub const HINT_KEYS: &[(&str, &str)] = &[
    ("tier", "x-tierwise-tier"),
    ("role", "x-tierwise-role"),
    ("category", "x-tierwise-category"),
    ("deferrable", "x-tierwise-deferrable"),
    ("mode", "x-tierwise-mode"),
];

impl Hints {
    /// Hints from the request's `metadata` (`tier`, `role`, `category`, `deferrable`, `mode`,
    /// or the same with an `x-tierwise-` prefix).
    pub fn from_metadata(view: &RequestView) -> Hints {
        let get = |k: &str, long: &str| view.metadata_str(long).or_else(|| view.metadata_str(k));
        Hints {
            tier: get("tier", "x-tierwise-tier").filter(|s| !s.is_empty()),
            role: get("role", "x-tierwise-role").filter(|s| !s.is_empty()),
            category: get("category", "x-tierwise-category")
                .map(|s| s.to_ascii_lowercase())
                .filter(|s| !s.is_empty()),
            deferrable: get("deferrable", "x-tierwise-deferrable").is_some_and(|s| truthy(&s)),
            mode: get("mode", "x-tierwise-mode").filter(|s| !s.is_empty()),
        }
    }

    /// `other` wins where it has a value (headers over metadata).
    pub fn overlay(self, other: Hints) -> Hints {
        Hints {
            tier: other.tier.or(self.tier),
            role: other.role.or(self.role),
            category: other.category.or(self.category),
            deferrable: other.deferrable || self.deferrable,
            mode: other.mode.or(self.mode),
        }
    }
}

pub fn truthy(s: &str) -> bool {
    matches!(
        s.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Signals {
    /// Prompt tokens as billed (messages with overhead), tools excluded.
    pub prompt_tokens: usize,
    /// Tokens of the tool schemas offered.
    pub tool_tokens: usize,
    /// Tokens of the last user turn.
    pub last_user_tokens: usize,
    /// User turns in the conversation.
    pub turns: usize,
    pub messages: usize,
    pub has_system: bool,
    /// Fenced code blocks (```), anywhere in the conversation.
    pub code_blocks: usize,
    /// Code present (fences or code-like lines) or asked for.
    pub code: bool,
    /// Math present (LaTeX, equations, math vocabulary).
    pub math: bool,
    pub structured_output: bool,
    pub tools: usize,
    /// Keywords of hard domains found in the last user turn (law, medicine, proofs, …).
    pub hard_domain: Vec<String>,
    /// `en`, `latin` (other Latin-script), `cjk`, `cyrillic`, `arabic`, `devanagari`, `other`.
    pub language: &'static str,
    pub role: Option<String>,
    pub category: Option<String>,
    pub deferrable: bool,
}

impl Signals {
    pub fn compute(view: &RequestView, hints: &Hints) -> Signals {
        let prompt_tokens = tokens::count_messages(&view.messages);
        let tool_tokens = tokens::count_tools(&view.tools);
        let last_user = view.last_user_text();
        let last_user_tokens = tokens::count(last_user);
        let all_text: String = view
            .turns
            .iter()
            .filter(|t| t.role != "assistant")
            .map(|t| t.text.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let code_blocks = all_text.matches("```").count() / 2;
        let code = code_blocks > 0 || looks_like_code(&all_text) || asks_for_code(last_user);
        Signals {
            prompt_tokens,
            tool_tokens,
            last_user_tokens,
            turns: view.turns.iter().filter(|t| t.role == "user").count(),
            messages: view.turns.len(),
            has_system: view
                .turns
                .iter()
                .any(|t| t.role == "system" || t.role == "developer"),
            code_blocks,
            code,
            math: looks_like_math(last_user),
            structured_output: view.structured_output,
            tools: view.tools.len(),
            hard_domain: hard_domain_terms(last_user),
            language: language(last_user),
            role: hints.role.clone(),
            category: hints.category.clone(),
            deferrable: hints.deferrable,
        }
    }
}

fn re(cell: &'static OnceLock<Option<Regex>>, pat: &str) -> Option<&'static Regex> {
    cell.get_or_init(|| Regex::new(pat).ok()).as_ref()
}

/// A regex plus a cheaper pre-check on non-ASCII text: the same pattern without its `\b`
/// assertions. Removing a zero-width assertion only widens what matches, so when the pre-check
/// finds nothing the full pattern cannot match either: results are identical. It matters for
/// speed: on non-ASCII text, Unicode word boundaries push the regex engine off its lazy DFA
/// onto a ~100× slower one, for every call, while the pre-check stays on the DFA.
struct Gated {
    pre: Regex,
    full: Regex,
}

impl Gated {
    fn new(pat: &str) -> Option<Gated> {
        Some(Gated {
            pre: Regex::new(&strip_word_boundaries(pat)).ok()?,
            full: Regex::new(pat).ok()?,
        })
    }

    fn may_match(&self, text: &str) -> bool {
        text.is_ascii() || self.pre.is_match(text)
    }

    fn is_match(&self, text: &str) -> bool {
        self.may_match(text) && self.full.is_match(text)
    }

    fn count(&self, text: &str) -> usize {
        if self.may_match(text) {
            self.full.find_iter(text).count()
        } else {
            0
        }
    }
}

fn gated(cell: &'static OnceLock<Option<Gated>>, pat: &str) -> Option<&'static Gated> {
    cell.get_or_init(|| Gated::new(pat)).as_ref()
}

/// `pat` without its `\b` word-boundary assertions (escaped backslashes are kept as they are).
fn strip_word_boundaries(pat: &str) -> String {
    let mut out = String::with_capacity(pat.len());
    let mut chars = pat.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('b') => {}
            Some(n) => {
                out.push(c);
                out.push(n);
            }
            None => out.push(c),
        }
    }
    out
}

/// Lines that look like source code: statements ending in `;` or `{`, definitions, imports.
pub fn looks_like_code(text: &str) -> bool {
    static CODE: OnceLock<Option<Regex>> = OnceLock::new();
    let Some(r) = re(
        &CODE,
        r"(?m)^\s*(def |class |fn |function |func |import |from \S+ import|#include|public |private |package |SELECT |select .* from|const |let |var |return |if \(|for \(|while \(|\}\s*$|.*;\s*$|.*\{\s*$|Traceback \(most recent call last\))",
    ) else {
        return false;
    };
    r.find_iter(text).take(3).count() >= 2
}

fn asks_for_code(text: &str) -> bool {
    static ASK: OnceLock<Option<Gated>> = OnceLock::new();
    gated(
        &ASK,
        r"(?i)\b(write|implement|fix|debug|refactor)\b.{0,40}\b(code|function|script|program|class|method|query|regex|sql|python|javascript|typescript|rust|java|golang|c\+\+)\b",
    )
    .is_some_and(|r| r.is_match(text))
}

/// LaTeX, equations with numbers, or math vocabulary.
pub fn looks_like_math(text: &str) -> bool {
    static LATEX: OnceLock<Option<Gated>> = OnceLock::new();
    static EQ: OnceLock<Option<Gated>> = OnceLock::new();
    static WORDS: OnceLock<Option<Gated>> = OnceLock::new();
    let latex = gated(&LATEX, r"\\(frac|int|sum|sqrt|lim|prod|cdot|times|le|ge|neq|infty|pi|theta|alpha|beta)\b|\$[^$\n]{1,80}\$")
        .is_some_and(|r| r.is_match(text));
    let eq = gated(
        &EQ,
        r"\d\s*[\^*/=]\s*[\d(a-z]|[a-z]\s*\^\s*\d|\b[xyz]\s*[=+\-]\s*\d",
    )
    .is_some_and(|r| r.count(text) >= 1);
    let words = gated(
        &WORDS,
        r"(?i)\b(solve|equation|integral|derivative|probability|theorem|prove|proof|polynomial|matrix|eigen\w*|logarithm|factorial|modulo|prime number|calculate|compute|how many|what is the value)\b",
    )
    .map(|r| r.count(text))
    .unwrap_or(0);
    latex || (eq && words >= 1) || words >= 2
}

/// Hard domains: where small models fail more often and errors cost more.
const HARD_TERMS: &[(&str, &str)] = &[
    (
        "law",
        r"(?i)\b(statute|plaintiff|defendant|jurisdiction|tort|liability|contract law|case law|legal(ly)?)\b",
    ),
    (
        "medicine",
        r"(?i)\b(diagnos\w+|symptom\w*|clinical|patient|dosage|patholog\w+|prognosis|pharmac\w+)\b",
    ),
    (
        "finance",
        r"(?i)\b(derivative pricing|valuation|amortiz\w+|hedg\w+|portfolio|arbitrage|discounted cash flow|ebitda)\b",
    ),
    (
        "science",
        r"(?i)\b(quantum|thermodynamic\w*|entropy|enthalpy|molecular|genom\w+|relativity|electromagnet\w*|stoichiometr\w+)\b",
    ),
    (
        "proof",
        r"(?i)\b(prove|proof|lemma|theorem|rigorous(ly)?)\b",
    ),
    (
        "algorithms",
        r"(?i)\b(time complexity|np-hard|dynamic programming|big-o|asymptotic)\b",
    ),
    (
        "security",
        r"(?i)\b(exploit|vulnerabilit\w+|cryptograph\w+|threat model)\b",
    ),
];

pub fn hard_domain_terms(text: &str) -> Vec<String> {
    static COMPILED: OnceLock<Vec<(&'static str, Gated)>> = OnceLock::new();
    let compiled = COMPILED.get_or_init(|| {
        HARD_TERMS
            .iter()
            .filter_map(|(d, p)| Gated::new(p).map(|r| (*d, r)))
            .collect()
    });
    compiled
        .iter()
        .filter(|(_, r)| r.is_match(text))
        .map(|(d, _)| d.to_string())
        .collect()
}

/// Script of the text, and English vs other Latin-script languages by stop words.
pub fn language(text: &str) -> &'static str {
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
        .unwrap_or(0);
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
    use super::*;
    use serde_json::json;

    fn sig(body: serde_json::Value) -> Signals {
        let v = RequestView::chat(&body).unwrap();
        Signals::compute(&v, &Hints::from_metadata(&v))
    }

    #[test]
    fn detects_code_math_language() {
        let s = sig(
            json!({"model": "auto", "messages": [{"role": "user", "content": "Fix this:\n```python\ndef f(x):\n    return x+1\n```"}]}),
        );
        assert!(s.code);
        assert_eq!(s.code_blocks, 1);
        let s = sig(
            json!({"model": "auto", "messages": [{"role": "user", "content": "Solve the equation x^2 - 5x + 6 = 0 and prove the roots are integers."}]}),
        );
        assert!(s.math);
        assert!(s.hard_domain.contains(&"proof".to_string()));
        let s = sig(
            json!({"model": "auto", "messages": [{"role": "user", "content": "Quelle est la capitale de la France ? Réponds en une phrase courte, merci beaucoup."}]}),
        );
        assert_eq!(s.language, "latin");
        let s = sig(
            json!({"model": "auto", "messages": [{"role": "user", "content": "请把这句话翻译成英文"}]}),
        );
        assert_eq!(s.language, "cjk");
        let s = sig(
            json!({"model": "auto", "messages": [{"role": "user", "content": "What is the capital of France?"}]}),
        );
        assert_eq!(s.language, "en");
        assert!(!s.math && !s.code && s.hard_domain.is_empty());
    }

    #[test]
    fn gated_regexes_match_like_the_full_ones() {
        assert_eq!(
            strip_word_boundaries(r"\\(beta)\b|\bx\\b"),
            r"\\(beta)|x\\b"
        );
        let texts = [
            "The plaintiff’s statute — naïve café: prove the theorem, how many? x = 3",
            "Résumé: diagnosé with symptoms; patient 42; compute the eigenvalues ∑",
            "Écrire une fonction: write a function in python — déjà vu",
            "quantum entropy ≠ ſtatute Kelvin-sign \u{212A}ernel $x^2$ \\frac{1}{2}",
            "plaintiffé éplaintiff é plaintiff é",
            "ordinary ascii text without anything",
        ];
        for t in texts {
            for (_, p) in HARD_TERMS {
                let full = Regex::new(p).unwrap();
                let g = Gated::new(p).unwrap();
                assert_eq!(g.is_match(t), full.is_match(t), "{p} on {t:?}");
                assert_eq!(g.count(t), full.find_iter(t).count(), "{p} on {t:?}");
            }
        }
    }

    #[test]
    fn hints_from_metadata() {
        let s = sig(
            json!({"model": "auto", "metadata": {"x-tierwise-role": "sub-agent", "category": "Extraction", "deferrable": "true"},
            "messages": [{"role": "user", "content": "x"}]}),
        );
        assert_eq!(s.role.as_deref(), Some("sub-agent"));
        assert_eq!(s.category.as_deref(), Some("extraction"));
        assert!(s.deferrable);
    }
}
