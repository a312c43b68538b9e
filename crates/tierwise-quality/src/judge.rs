//! Pairwise LLM-as-judge, for answers no check can compare (`crate::check`).
//!
//! The rubric is `prompts/judge.md` (system message) and `prompts/judge_user.md` (the user
//! message with the request and the two answers), both in the repository and embedded in the
//! binary. Each pair is judged **twice, in both orders** (served as A then candidate as A) to
//! cancel position bias; each judgment ends with `VERDICT: A | B | TIE`. From the candidate's
//! side, the two orders combine as:
//!
//! | order 1 (served = A) | order 2 (candidate = A) | verdict |
//! |---|---|---|
//! | B better | A better | win |
//! | B better / tie | tie / A better | win (one better, one tie) |
//! | tie | tie | tie |
//! | A better | B better | loss |
//! | A better / tie | tie / B better | loss |
//! | disagree (B, B or A, A) | | tie: the judge followed the position |
//!
//! A judgment that does not end in a verdict makes the pair **unjudged** (never a win).

use serde_json::{Value, json};
use tierwise_core::request::{Api, RequestView};
use tierwise_store::ShadowVerdict;

use crate::check::Answer;

/// The rubric (system message), as in the repository.
pub const RUBRIC: &str = include_str!("../prompts/judge.md");
/// The user message template: `{request}`, `{answer_a}`, `{answer_b}`.
pub const USER_TEMPLATE: &str = include_str!("../prompts/judge_user.md");

/// Most characters of the request shown to the judge (its end is kept).
const MAX_REQUEST_CHARS: usize = 16_000;
/// Most characters of each answer shown to the judge (its start is kept).
const MAX_ANSWER_CHARS: usize = 8_000;

/// One judgment: which position the judge preferred.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preference {
    A,
    B,
    Tie,
}

fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut i = s.len() - max;
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

fn head(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut i = max;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    &s[..i]
}

/// The request as the judge reads it: one `role: text` block per turn (tool calls named).
pub fn render_request(api: Api, body: &Value) -> String {
    let view = match api {
        Api::ChatCompletions => RequestView::chat(body),
        Api::Responses => RequestView::responses(body),
    };
    let Ok(view) = view else {
        return String::new();
    };
    let mut out = String::new();
    for t in &view.turns {
        out.push_str(&t.role);
        out.push_str(": ");
        out.push_str(&t.text);
        for c in &t.tool_calls {
            out.push_str(&format!(" [calls {c}]"));
        }
        out.push_str("\n\n");
    }
    tail(out.trim_end(), MAX_REQUEST_CHARS).to_string()
}

/// An answer as the judge reads it.
pub fn render_answer(a: &Answer) -> String {
    let mut out = a.text.clone();
    for c in &a.tool_calls {
        out.push_str(&format!("\n[calls {}({})]", c.name, c.arguments));
    }
    head(out.trim(), MAX_ANSWER_CHARS).to_string()
}

/// The chat request asking `judge_model` to compare `a` (position A) with `b`.
pub fn judge_request(judge_model: &str, request: &str, a: &str, b: &str) -> Value {
    let user = USER_TEMPLATE
        .replace("{request}", request)
        .replace("{answer_a}", a)
        .replace("{answer_b}", b);
    json!({
        "model": judge_model,
        "messages": [
            {"role": "system", "content": RUBRIC},
            {"role": "user", "content": user}
        ]
    })
}

/// The verdict in a judge's answer: the last `VERDICT:` line; `None` when there is none or it
/// names something else.
pub fn parse_preference(text: &str) -> Option<Preference> {
    let line = text.lines().rev().map(str::trim).find(|l| !l.is_empty())?;
    let upper = line.to_ascii_uppercase();
    let rest = upper.strip_prefix("VERDICT:")?;
    let word = rest.trim().trim_matches(|c: char| "*`.'\"[]".contains(c));
    match word {
        "A" => Some(Preference::A),
        "B" => Some(Preference::B),
        "TIE" => Some(Preference::Tie),
        _ => None,
    }
}

/// The candidate's verdict from the two orders (see the module doc): `first` judged with the
/// served answer as A, `second` with the candidate as A.
pub fn combine(first: Option<Preference>, second: Option<Preference>) -> ShadowVerdict {
    use Preference::{A, B, Tie};
    // +1: the candidate is better in that order, −1: worse
    let side = |p: Preference, candidate_is_a: bool| match (p, candidate_is_a) {
        (Tie, _) => 0,
        (A, true) | (B, false) => 1,
        (A, false) | (B, true) => -1,
    };
    match (first, second) {
        (Some(f), Some(s)) => match side(f, false) + side(s, true) {
            1 | 2 => ShadowVerdict::Win,
            -1 | -2 => ShadowVerdict::Loss,
            _ => ShadowVerdict::Tie,
        },
        _ => ShadowVerdict::Unjudged,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;

    #[test]
    fn verdict_is_the_last_line() {
        assert_eq!(
            parse_preference("A is shorter.\nVERDICT: B"),
            Some(Preference::B)
        );
        assert_eq!(parse_preference("verdict: tie\n\n"), Some(Preference::Tie));
        assert_eq!(parse_preference("**VERDICT: A**"), None);
        assert_eq!(parse_preference("VERDICT: **A**"), Some(Preference::A));
        assert_eq!(parse_preference("VERDICT: A\nbut maybe B"), None);
        assert_eq!(parse_preference("I prefer A"), None);
        assert_eq!(parse_preference("VERDICT: C"), None);
        assert_eq!(parse_preference(""), None);
    }

    #[test]
    fn both_orders_cancel_position_bias() {
        use Preference::{A, B, Tie};
        // served = A first, candidate = A second
        assert_eq!(combine(Some(B), Some(A)), ShadowVerdict::Win);
        assert_eq!(combine(Some(Tie), Some(A)), ShadowVerdict::Win);
        assert_eq!(combine(Some(A), Some(B)), ShadowVerdict::Loss);
        assert_eq!(combine(Some(A), Some(Tie)), ShadowVerdict::Loss);
        assert_eq!(combine(Some(Tie), Some(Tie)), ShadowVerdict::Tie);
        // always "A": position, not quality
        assert_eq!(combine(Some(A), Some(A)), ShadowVerdict::Tie);
        assert_eq!(combine(Some(B), Some(B)), ShadowVerdict::Tie);
        assert_eq!(combine(None, Some(A)), ShadowVerdict::Unjudged);
        assert_eq!(combine(Some(B), None), ShadowVerdict::Unjudged);
    }

    #[test]
    fn the_request_and_answers_are_rendered_and_bounded() {
        let body = serde_json::json!({"model": "m", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "what is 2+2?"}]});
        let r = render_request(Api::ChatCompletions, &body);
        assert!(r.contains("user: what is 2+2?"), "{r}");
        let long = Answer::text("é".repeat(10_000));
        assert!(render_answer(&long).len() <= MAX_ANSWER_CHARS);
        let req = judge_request("judge", &r, "4", "5");
        let user = req
            .pointer("/messages/1/content")
            .unwrap()
            .as_str()
            .unwrap();
        assert!(user.contains("<answer_a>\n4\n</answer_a>"), "{user}");
        assert!(user.contains("<answer_b>\n5\n</answer_b>"));
    }
}
