//! Request signals: cheap, deterministic facts about a request that routing rules and the
//! learned router read. Computing them is one o200k pass over the prompt plus a few scans.
//!
//! This file says what each signal is (the keyword patterns, the stop words, how the counts
//! decide); [`scan`] holds the byte scanners that compute them fast, each beside the reference
//! definition it is tested against.

use std::borrow::Cow;
use std::sync::OnceLock;

use serde::Serialize;

use crate::request::RequestView;
use crate::tokens;

mod scan;

use scan::{KeywordHits, Prepared};

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
        let last_idx = view.turns.iter().rposition(|t| t.role == "user");
        let last_user = last_idx.map_or("", |i| view.turns[i].text.as_str());
        // one o200k pass: the last user turn's count is taken from its message when the texts
        // are the same (they are for views built by `RequestView::chat`/`responses`)
        // bounded work: exact counts for the first `EXACT_BYTES` of text, estimates beyond
        let mut budget = tokens::Budget::new(tokens::EXACT_BYTES);
        let mut last_user_tokens = None;
        let prompt_tokens =
            tokens::count_messages_budgeted(&view.messages, &mut budget, |i, text, n| {
                if Some(i) == last_idx && text == last_user {
                    last_user_tokens = Some(n);
                }
            });
        let last_user_tokens = last_user_tokens.unwrap_or_else(|| budget.count(last_user));
        let tool_tokens = tokens::count_tools_budgeted(&view.tools, &mut budget);
        let mut not_assistant = view.turns.iter().filter(|t| t.role != "assistant");
        let all_text: Cow<'_, str> = match (not_assistant.next(), not_assistant.next()) {
            (None, _) => Cow::Borrowed(""),
            (Some(t), None) => Cow::Borrowed(t.text.as_str()),
            _ => Cow::Owned(
                view.turns
                    .iter()
                    .filter(|t| t.role != "assistant")
                    .map(|t| t.text.as_str())
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
        };
        let code_blocks = scan::count_fences(&all_text) / 2;
        let last = Prepared::new(last_user);
        let hits = scan::keyword_hits(&last);
        let code = code_blocks > 0 || looks_like_code(&all_text) || asks_for_code(&last, &hits);
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
            math: math_on_shadow(&last, &hits),
            structured_output: view.structured_output,
            tools: view.tools.len(),
            hard_domain: hard_domains(&hits),
            language: language(last_user),
            role: hints.role.clone(),
            category: hints.category.clone(),
            deferrable: hints.deferrable,
        }
    }
}

/// Lines that look like source code: statements ending in `;` or `{`, definitions, imports,
/// a Python traceback. True when at least two lines qualify (see [`scan::two_code_lines`]).
pub fn looks_like_code(text: &str) -> bool {
    scan::two_code_lines(text)
}

const ASKS_FOR_CODE: &str = r"(?i)\b(write|implement|fix|debug|refactor)\b.{0,40}\b(code|function|script|program|class|method|query|regex|sql|python|javascript|typescript|rust|java|golang|c\+\+)\b";

/// Asks for code (`hits` of the same text): only when one of its verbs is there.
fn asks_for_code(text: &Prepared<'_>, hits: &KeywordHits) -> bool {
    static ASK: OnceLock<Option<regex::bytes::Regex>> = OnceLock::new();
    hits.ask
        && scan::shadow_re(&ASK, ASKS_FOR_CODE)
            .is_some_and(|r| r.is_match(scan::haystack(text, ASKS_FOR_CODE)))
}

/// LaTeX, equations with numbers, or math vocabulary.
pub fn looks_like_math(text: &str) -> bool {
    let text = Prepared::new(text);
    math_on_shadow(&text, &scan::keyword_hits(&text))
}

const MATH_WORDS: &str = r"(?i)\b(solve|equation|integral|derivative|probability|theorem|prove|proof|polynomial|matrix|eigen\w*|logarithm|factorial|modulo|prime number|calculate|compute|how many|what is the value)\b";

/// [`looks_like_math`]: `latex || (equation && words >= 1) || words >= 2` (LaTeX as
/// [`scan::has_latex`] finds it, equations as [`scan::has_equation`] does, words: matches of
/// [`MATH_WORDS`]), each part computed only when the answer still depends on it.
fn math_on_shadow(text: &Prepared<'_>, hits: &KeywordHits) -> bool {
    let words = hits.math_words;
    if words >= 2 {
        return true;
    }
    let cased = text.cased();
    scan::has_latex(cased) || (words >= 1 && scan::has_equation(cased))
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
    hard_domains(&scan::keyword_hits(&Prepared::new(text)))
}

/// The hard domains among `hits`, in [`HARD_TERMS`] order.
fn hard_domains(hits: &KeywordHits) -> Vec<String> {
    HARD_TERMS
        .iter()
        .enumerate()
        .filter(|&(i, _)| hits.hard_term(i))
        .map(|(_, (d, _))| d.to_string())
        .collect()
}

/// `language`'s English stop words (all of at most 5 letters).
const EN_WORDS: [&[u8]; 17] = [
    b"the", b"and", b"is", b"of", b"to", b"what", b"a", b"in", b"for", b"how", b"you", b"that",
    b"with", b"are", b"this", b"it", b"which",
];

/// Script of the text, and English vs other Latin-script languages by stop words.
pub fn language(text: &str) -> &'static str {
    // letters of each script among the first 4,000 characters
    let scan::Scripts {
        latin,
        cjk,
        cyrillic: cyr,
        arabic,
        devanagari: deva,
        other,
    } = scan::script_counts(text, 4000);
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
    // the first 400 words (runs of alphabetic characters); a word is English when its lowercase
    // form is in EN_WORDS. The answer is "en" as soon as 34 of them are (34 × 12 ≥ 400 ≥ the
    // words there will be), so counting stops there.
    let (n_words, en) = scan::count_en_words(text, 400, 34, |w| {
        EN_WORDS.contains(&w.to_lowercase().as_bytes())
    });
    if n_words == 0 {
        return "en";
    }
    if en * 12 >= n_words || n_words < 4 {
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
    fn token_counts_are_the_counts_of_the_pieces() {
        let long = "Explain why the sky is blue, in detail. ".repeat(20);
        let bodies = [
            json!({"model": "auto", "messages": [{"role": "user", "content": "hi there"}]}),
            json!({"model": "auto", "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": long},
                {"role": "assistant", "content": "Because of Rayleigh scattering."},
                {"role": "user", "name": "bob", "content": [{"type": "text", "text": "And at sunset?"}, {"type": "image_url", "image_url": {"url": "x"}}, {"type": "text", "text": "Short answer ’please’."}]},
                {"role": "assistant", "content": null, "tool_calls": [{"type": "function", "function": {"name": "lookup", "arguments": "{\"q\": \"sunset\"}"}}]},
                {"role": "tool", "content": "red light"}
            ], "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]}),
        ];
        for body in bodies {
            let v = RequestView::chat(&body).unwrap();
            let s = Signals::compute(&v, &Hints::default());
            assert_eq!(s.prompt_tokens, tokens::count_messages(&v.messages));
            assert_eq!(s.tool_tokens, tokens::count_tools(&v.tools));
            let o200k = bpe_openai::o200k_base();
            assert_eq!(s.last_user_tokens, o200k.count(v.last_user_text()));
            let mut by_hand = tokens::REPLY_PRIMING;
            for m in &v.messages {
                by_hand += tokens::PER_MESSAGE;
                by_hand += o200k.count(m["role"].as_str().unwrap());
                if let Some(n) = m.get("name").and_then(|n| n.as_str()) {
                    by_hand += o200k.count(n) + 1;
                }
                by_hand += o200k.count(tokens::content_text(&m["content"]).as_str());
                for c in m
                    .get("tool_calls")
                    .and_then(|c| c.as_array())
                    .into_iter()
                    .flatten()
                {
                    by_hand += tokens::PER_MESSAGE
                        + o200k.count(c["function"]["name"].as_str().unwrap())
                        + o200k.count(c["function"]["arguments"].as_str().unwrap());
                }
            }
            assert_eq!(s.prompt_tokens, by_hand);
        }
        // a hand-built view whose turn text differs from its message: counted separately
        let mut v = RequestView::chat(
            &json!({"model": "auto", "messages": [{"role": "user", "content": "one two"}]}),
        )
        .unwrap();
        v.turns[0].text = "one two three four".into();
        let s = Signals::compute(&v, &Hints::default());
        assert_eq!(s.last_user_tokens, 4);
        assert_eq!(s.prompt_tokens, tokens::count_messages(&v.messages));
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
