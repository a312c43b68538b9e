//! What the mock does, chosen by the model name of the request.
//!
//! Prefixes combine and are read left to right, e.g. `slow-50-flaky-2-gpt-5.4-mini`:
//!
//! | model name            | behaviour                                                          |
//! |-----------------------|--------------------------------------------------------------------|
//! | `error-NNN…`          | always HTTP NNN with an OpenAI error body (429 carries `retry-after-ms: 5`) |
//! | `quota-429…`          | 429 `insufficient_quota` (a 429 that retrying does not fix)        |
//! | `flaky-N-…`           | the first N calls for this exact model name fail with 503; then OK (`flaky-…` = 1) |
//! | `slow-MS-…`           | waits MS milliseconds before answering (`slow-…` = 250 ms)        |
//! | `drip-MS-…`           | streams: waits MS milliseconds between SSE events                  |
//! | `gated-…`             | streams: sends the first content event, then holds the rest until [`crate::Mock::release`]; non-streaming: holds the whole answer |
//! | `nousage-…`           | the answer carries no `usage` (also not in streams)                |
//! | `garbage-…`           | HTTP 200 with a body that is not JSON                              |
//! | `cut-…`               | streams: the connection drops after the first content event        |
//! | `empty-…`             | chat: the answer's content is the empty string (usage: reasoning only) |
//! | `toolsearch-…`        | chat: a model that searches for tools (see [`crate::answer::tool_search_answer`]) |
//! | `says-WORD-…`         | the text answer is exactly WORD (structured output: `{"answer": "WORD"}`); WORD ends at the next `-` |
//! | `judge-…`             | a pairwise judge (shadow tests): reads `<answer_a>` / `<answer_b>` in the last user message and ends with `VERDICT: A`, `B` or `TIE` — the answer with more words wins, equal counts tie |
//! | `judge-first-…`       | a judge biased to the first position: always `VERDICT: A` |
//! | `judge-garbage-…`     | a judge whose answer has no verdict line |
//! | anything else         | a normal answer                                                    |

use std::time::Duration;

/// Behaviour parsed from a model name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Behavior {
    pub error: Option<u16>,
    pub quota: bool,
    pub flaky: Option<u64>,
    pub slow: Option<Duration>,
    pub drip: Option<Duration>,
    pub gated: bool,
    pub no_usage: bool,
    pub garbage: bool,
    pub cut: bool,
    pub tool_search: bool,
    pub empty: bool,
    /// `says-WORD-`: the answer text.
    pub says: Option<String>,
    pub judge: Option<JudgeStyle>,
}

/// How a `judge-` model judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JudgeStyle {
    /// More words wins; equal counts tie.
    Longer,
    /// Always the first position.
    First,
    /// No verdict line.
    Garbage,
}

/// Splits `N-rest` into (N, rest) when the name continues with a number.
fn number(rest: &str) -> (Option<u64>, &str) {
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return (None, rest);
    }
    let n = rest[..digits].parse().ok();
    let tail = &rest[digits..];
    (n, tail.strip_prefix('-').unwrap_or(tail))
}

impl Behavior {
    pub fn parse(model: &str) -> Behavior {
        let mut b = Behavior::default();
        let mut rest = model;
        loop {
            if let Some(r) = rest.strip_prefix("error-") {
                let (n, _) = number(r);
                b.error = n
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|s| (400..600).contains(s));
                if b.error.is_none() {
                    b.error = Some(500);
                }
                return b;
            } else if rest.starts_with("quota-429") {
                b.quota = true;
                return b;
            } else if let Some(r) = rest.strip_prefix("flaky-") {
                let (n, r) = number(r);
                b.flaky = Some(n.unwrap_or(1));
                rest = r;
            } else if let Some(r) = rest.strip_prefix("slow-") {
                let (n, r) = number(r);
                b.slow = Some(Duration::from_millis(n.unwrap_or(250)));
                rest = r;
            } else if let Some(r) = rest.strip_prefix("drip-") {
                let (n, r) = number(r);
                b.drip = Some(Duration::from_millis(n.unwrap_or(10)));
                rest = r;
            } else if let Some(r) = rest.strip_prefix("gated-") {
                b.gated = true;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("nousage-") {
                b.no_usage = true;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("garbage-") {
                b.garbage = true;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("cut-") {
                b.cut = true;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("toolsearch-") {
                b.tool_search = true;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("empty-") {
                b.empty = true;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("says-") {
                let (word, r) = r.split_once('-').unwrap_or((r, ""));
                b.says = Some(word.to_string());
                rest = r;
            } else if let Some(r) = rest.strip_prefix("judge-first-") {
                b.judge = Some(JudgeStyle::First);
                rest = r;
            } else if let Some(r) = rest.strip_prefix("judge-garbage-") {
                b.judge = Some(JudgeStyle::Garbage);
                rest = r;
            } else if let Some(r) = rest.strip_prefix("judge-") {
                b.judge = Some(JudgeStyle::Longer);
                rest = r;
            } else {
                return b;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;

    #[test]
    fn parses_prefix_chains() {
        assert_eq!(Behavior::parse("gpt-5.4"), Behavior::default());
        assert_eq!(Behavior::parse("error-429").error, Some(429));
        assert_eq!(Behavior::parse("error-x").error, Some(500));
        let b = Behavior::parse("slow-50-flaky-2-gpt-5.4-mini");
        assert_eq!(b.slow, Some(Duration::from_millis(50)));
        assert_eq!(b.flaky, Some(2));
        let b = Behavior::parse("flaky-gated-mini");
        assert_eq!(b.flaky, Some(1));
        assert!(b.gated);
        assert!(Behavior::parse("quota-429").quota);
        assert!(Behavior::parse("empty-gpt-5.4-nano").empty);
        assert!(Behavior::parse("slow-5-toolsearch-mini").tool_search);
        let b = Behavior::parse("says-positive-gpt-5.4-mini");
        assert_eq!(b.says.as_deref(), Some("positive"));
        assert_eq!(
            Behavior::parse("judge-gpt-5.5").judge,
            Some(JudgeStyle::Longer)
        );
        assert_eq!(
            Behavior::parse("judge-first-x").judge,
            Some(JudgeStyle::First)
        );
        assert_eq!(
            Behavior::parse("judge-garbage-x").judge,
            Some(JudgeStyle::Garbage)
        );
        assert_eq!(
            Behavior::parse("drip-mini").drip,
            Some(Duration::from_millis(10))
        );
    }
}
