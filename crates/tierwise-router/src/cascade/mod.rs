//! The cascade: call a cheap tier, score its answer, escalate only when it falls short.
//!
//! # Layout
//! - [`answer`]: what the scorer reads — [`Query`] (from the request, once) and [`Answer`]
//!   (a chat completion or Responses object, or plain text offline); a JSON-schema subset check.
//! - [`text`]: answer text analysis — the final answer it states (letter / number / phrase),
//!   hedges, corrections, repetition, arithmetic that does not add up.
//! - [`features`]: the feature vector of one answer given the earlier attempts' answers
//!   (agreement between tiers' final answers), and the hard [`Gate`]s (empty, cut off, refused,
//!   JSON/tool arguments that do not parse or fit the schema).
//! - [`model`]: logistic regression, its versioned JSON file (`router/cascade.json`) and fit.
//! - [`Scorer`]: a loaded scorer file; [`Scorer::score`] → P(answer good enough), pure, ≪ 1 ms.
//! - [`Plan`] / [`Attempt`]: acceptance per tier and the `x-tierwise-attempts` header.
//!
//! Pure: no file or network I/O; callers pass the file's text ([`SHIPPED`] is the default).

pub mod answer;
pub mod features;
pub mod model;
pub mod text;

pub use answer::{Answer, Query};
pub use features::{Analysed, Gate, analyse};
pub use model::{ScorerError, ScorerFile};

use serde::Serialize;
use serde_json::Value;
use tierwise_core::request::RequestError;

/// The shipped scorer file, produced by `tierwise train --cascade` (command in the README).
pub const SHIPPED: &str = include_str!("../../../../router/cascade.json");

/// A scored answer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Score {
    /// P(the answer is good enough); 0 when a gate rejected it.
    pub p: f64,
    /// The gate that rejected it, if any.
    pub gate: Option<Gate>,
}

/// A loaded scorer.
#[derive(Debug, Clone, PartialEq)]
pub struct Scorer {
    file: ScorerFile,
}

impl Scorer {
    pub fn from_json(text: &str) -> Result<Scorer, ScorerError> {
        Ok(Scorer {
            file: ScorerFile::from_json(text)?,
        })
    }

    /// The shipped scorer ([`SHIPPED`]).
    pub fn shipped() -> Result<Scorer, ScorerError> {
        Scorer::from_json(SHIPPED)
    }

    pub fn from_file(file: ScorerFile) -> Scorer {
        Scorer { file }
    }

    pub fn file(&self) -> &ScorerFile {
        &self.file
    }

    /// Threshold for every tier when the config gives none.
    pub fn default_threshold(&self) -> f64 {
        self.file.default_threshold
    }

    /// Whether the model uses token log-probabilities (ask the upstream for `logprobs` only
    /// then).
    pub fn uses_logprobs(&self) -> bool {
        (14..=16).any(|i| self.file.weights[i] != 0.0)
    }

    /// Scores `answer` (analysed) to `query`, after the earlier attempts `previous` (oldest first).
    pub fn score(&self, query: &Query, answer: &Analysed, previous: &[&Analysed]) -> Score {
        if let Some(g) = answer.gate {
            return Score {
                p: 0.0,
                gate: Some(g),
            };
        }
        let x = features::features(query, answer, previous);
        Score {
            p: self.file.probability(&x),
            gate: None,
        }
    }

    /// Convenience for one call: request body, response body, earlier response bodies.
    pub fn score_json(
        &self,
        request: &Value,
        response: &Value,
        previous: &[&Value],
    ) -> Result<Score, RequestError> {
        let q = Query::from_body(request)?;
        let prev: Vec<Analysed> = previous
            .iter()
            .map(|r| analyse(&q, &Answer::from_response(r)))
            .collect();
        let refs: Vec<&Analysed> = prev.iter().collect();
        Ok(self.score(&q, &analyse(&q, &Answer::from_response(response)), &refs))
    }
}

/// Acceptance thresholds, one per tier (cheapest first; the last tier's answer is always kept).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub thresholds: Vec<f64>,
}

impl Plan {
    /// One threshold per tier tried, cheapest first.
    pub fn per_tier(thresholds: Vec<f64>) -> Plan {
        Plan { thresholds }
    }

    /// The same threshold for every tier.
    pub fn uniform(threshold: f64, tiers: usize) -> Plan {
        Plan {
            thresholds: vec![threshold; tiers],
        }
    }

    /// Accept the answer of tier `tier` (of `tiers`)? The top tier always; a gated answer never
    /// below it; otherwise `p > threshold`.
    pub fn accept(&self, tier: usize, tiers: usize, score: &Score) -> bool {
        if tier + 1 >= tiers {
            return true;
        }
        score.gate.is_none() && score.p > self.thresholds.get(tier).copied().unwrap_or(1.0)
    }
}

/// Two samples of the same tier agree (`routing.cascade.samples = 2`) when this is at least
/// [`SAMPLES_MIN_AGREEMENT`]; disagreeing samples are a rejection (gate `samples_disagree`).
///
/// Self-consistency: when a model gives two different final answers to the same question, at
/// most one is right, so the answer is escalated. The cut-off 0.5 is not fitted (the shared data
/// holds one response per model, so two-sample agreement cannot be measured offline): for final
/// answers (letter, number, JSON, tool call) agreement is 0 or 1, so any cut in (0, 1] means
/// "same final answer"; for free text it is the word-bag Jaccard similarity, where 0.5 asks that
/// the two samples share half their distinct words.
pub const SAMPLES_MIN_AGREEMENT: f64 = 0.5;

/// Agreement of two answers to the same query in [0, 1]: 1/0 when both state a comparable final
/// answer (same / different), else the Jaccard similarity of their word bags (normalized
/// tokens); `None` when either was gated (empty, cut off, refused, malformed…).
pub fn agreement(a: &Analysed, b: &Analysed) -> Option<f64> {
    if a.gate.is_some() || b.gate.is_some() {
        return None;
    }
    match (&a.extracted.last, &b.extracted.last) {
        (Some(x), Some(y)) => Some(if x.same(y) { 1.0 } else { 0.0 }),
        _ => Some(text::jaccard(&a.words.bag, &b.words.bag)),
    }
}

/// What happened to one attempt (for logs and `x-tierwise-attempts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// This answer went to the client.
    Accepted,
    /// Scored below the threshold (or gated): escalated.
    Rejected,
    /// The upstream call failed (or its 2xx body was not JSON): escalated without a score.
    Error,
    /// The latency budget ran out while this tier was answering: the answer in hand was kept.
    Timeout,
}

impl Verdict {
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Accepted => "accepted",
            Verdict::Rejected => "rejected",
            Verdict::Error => "error",
            Verdict::Timeout => "timeout",
        }
    }
}

/// One attempt of a cascade.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    pub model: String,
    pub verdict: Verdict,
    /// The scorer's probability (none for an upstream error).
    pub p: Option<f64>,
    pub gate: Option<Gate>,
}

/// `x-tierwise-attempts`: `model:verdict:p` per attempt, in order, comma-separated, p with two
/// decimals (omitted for errors), e.g. `gpt-5.4-nano:rejected:0.31,gpt-5.4-mini:accepted:0.82`.
pub fn attempts_header(attempts: &[Attempt]) -> String {
    attempts
        .iter()
        .map(|a| match a.p {
            Some(p) => format!("{}:{}:{:.2}", a.model, a.verdict.as_str(), p),
            None => format!("{}:{}", a.model, a.verdict.as_str()),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn shipped_scorer_loads_and_ranks_agreement_above_disagreement() {
        let s = Scorer::shipped().unwrap();
        let req = json!({"model": "auto", "messages": [{"role": "user", "content":
            "Which is a prime?\nA. 4\nB. 6\nC. 7\nD. 9\nAnswer with the letter of the correct option."}]});
        let ans = |t: &str| json!({"choices": [{"finish_reason": "stop", "message": {"role": "assistant", "content": t}}]});
        let cheap = ans("7 has no divisors other than 1 and itself. The answer is (C).");
        let agree = s
            .score_json(&req, &ans("7 is prime. The answer is (C)."), &[&cheap])
            .unwrap();
        let disagree = s
            .score_json(&req, &ans("9 is prime. The answer is (D)."), &[&cheap])
            .unwrap();
        assert!(agree.p > disagree.p, "{agree:?} vs {disagree:?}");
        let empty = s.score_json(&req, &ans(""), &[]).unwrap();
        assert_eq!((empty.p, empty.gate), (0.0, Some(Gate::Empty)));
        let cut = json!({"choices": [{"finish_reason": "length", "message": {"role": "assistant", "content": "The answer"}}]});
        assert_eq!(
            s.score_json(&req, &cut, &[]).unwrap().gate,
            Some(Gate::Truncated)
        );
        assert_eq!(
            s.score_json(&req, &json!({"oops": 1}), &[]).unwrap().gate,
            Some(Gate::Malformed)
        );
        assert!(
            ScorerFile::from_json(
                &SHIPPED.replace("\"format_version\": 1", "\"format_version\": 99")
            )
            .is_err()
        );
    }

    #[test]
    fn two_sample_agreement() {
        let q = Query::from_body(
            &json!({"model": "m", "messages": [{"role": "user", "content":
            "Tom has 3 apples and buys 4 more. How many apples does he have?"}]}),
        )
        .unwrap();
        let a = |t: &str| analyse(&q, &Answer::from_text(t));
        let seven = a("3 + 4 = 7. The answer is 7.");
        let seven_again = a("He has 3 and gets 4, so #### 7");
        let eight = a("3 + 4 = 8. The answer is 8.");
        assert_eq!(agreement(&seven, &seven_again), Some(1.0));
        assert_eq!(agreement(&seven, &eight), Some(0.0));
        assert_eq!(agreement(&seven, &a("")), None, "a gated sample");
        let chat = Query::from_body(
            &json!({"model": "m", "messages": [{"role": "user", "content":
            "Write one sentence about the sea."}]}),
        )
        .unwrap();
        let b = |t: &str| analyse(&chat, &Answer::from_text(t));
        let s1 = b("The sea is vast, blue and full of quiet life.");
        let s2 = b("The sea is vast and blue, full of life and quiet.");
        let s3 = b("Mountains rise above clouds where eagles nest.");
        let same = agreement(&s1, &s2).unwrap();
        let other = agreement(&s1, &s3).unwrap();
        assert!(same >= SAMPLES_MIN_AGREEMENT, "{same}");
        assert!(other < SAMPLES_MIN_AGREEMENT, "{other}");
    }

    #[test]
    fn plan_and_header() {
        let plan = Plan::uniform(0.5, 3);
        let ok = Score {
            p: 0.82,
            gate: None,
        };
        let weak = Score {
            p: 0.31,
            gate: None,
        };
        assert!(plan.accept(0, 3, &ok));
        assert!(!plan.accept(0, 3, &weak));
        assert!(plan.accept(2, 3, &weak), "the top tier's answer is kept");
        assert!(!plan.accept(
            0,
            3,
            &Score {
                p: 0.9,
                gate: Some(Gate::Empty)
            }
        ));
        let h = attempts_header(&[
            Attempt {
                model: "gpt-5.4-nano".into(),
                verdict: Verdict::Rejected,
                p: Some(0.31),
                gate: None,
            },
            Attempt {
                model: "gpt-5.4-mini".into(),
                verdict: Verdict::Error,
                p: None,
                gate: None,
            },
            Attempt {
                model: "gpt-5.4".into(),
                verdict: Verdict::Accepted,
                p: Some(0.824),
                gate: None,
            },
        ]);
        assert_eq!(
            h,
            "gpt-5.4-nano:rejected:0.31,gpt-5.4-mini:error,gpt-5.4:accepted:0.82"
        );
    }
}
