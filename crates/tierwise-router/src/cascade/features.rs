//! Features of one answer (given the request and the answers of earlier attempts), and the hard
//! gates that reject an answer whatever the model says: empty, cut off, refused, or not in the
//! format the request demanded.

use serde::Serialize;
use serde_json::Value;

use super::answer::{Answer, JsonWant, Query, fits};
use super::text::{self, Extracted, Final, Words};

/// A rule that rejects an answer outright (the model's probability is not consulted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Gate {
    /// No text and no tool call.
    Empty,
    /// The response body is not a completion.
    Malformed,
    /// `finish_reason: length` (or Responses `incomplete`): cut off.
    Truncated,
    ContentFilter,
    /// The API's `refusal` field is set, or a short answer opens with a refusal ("I'm sorry,
    /// but I can't help…"): a stronger tier may answer; escalating costs, it never harms.
    Refusal,
    /// JSON was requested (`response_format`) and the text does not parse.
    JsonInvalid,
    /// The JSON does not fit the requested schema.
    SchemaMismatch,
    /// A tool call names a tool the request did not offer.
    ToolUnknown,
    /// Tool-call arguments do not parse or do not fit the tool's schema.
    ToolArgsInvalid,
    /// `tool_choice` required a call and none was made.
    ToolMissing,
    /// Two samples of the same tier disagree (`routing.cascade.samples = 2`).
    SamplesDisagree,
}

impl Gate {
    pub fn as_str(&self) -> &'static str {
        match self {
            Gate::Empty => "empty",
            Gate::Malformed => "malformed",
            Gate::Truncated => "truncated",
            Gate::ContentFilter => "content_filter",
            Gate::Refusal => "refusal",
            Gate::JsonInvalid => "json_invalid",
            Gate::SchemaMismatch => "schema_mismatch",
            Gate::ToolUnknown => "tool_unknown",
            Gate::ToolArgsInvalid => "tool_args_invalid",
            Gate::ToolMissing => "tool_missing",
            Gate::SamplesDisagree => "samples_disagree",
        }
    }
}

/// Feature names, in vector order. A scorer file lists them and must match exactly.
pub const FEATURE_NAMES: [&str; 25] = [
    "ln_words",
    "ln_len_ratio",
    "hedge_rate",
    "correction_rate",
    "no_match",
    "refusal_text",
    "final_missing",
    "final_multiple",
    "final_invalid",
    "final_implicit",
    "repetition",
    "ends_abruptly",
    "arith_checked",
    "arith_wrong_frac",
    "has_logprobs",
    "mean_logprob",
    "min_logprob",
    "has_prev",
    "prev_same",
    "prev_diff",
    "prev_sim",
    "any_prev_same",
    "all_prev_same",
    "prev_len_ratio_abs",
    "prev_final_missing",
];

pub const N_FEATURES: usize = FEATURE_NAMES.len();

/// One answer, analysed once (reused as "the previous answer" by later attempts).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Analysed {
    pub gate: Option<Gate>,
    pub extracted: Extracted,
    pub words: Words,
    pub ends_abruptly: bool,
    /// (equations checked, wrong).
    pub arith: (usize, usize),
    /// (mean, min) token log-probability.
    pub logprobs: Option<(f64, f64)>,
}

/// Tool calls as one comparable answer: names and canonical arguments, in order.
fn tool_key(a: &Answer) -> String {
    fn canon(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for k in keys {
                    out.push_str(k);
                    out.push(':');
                    canon(&m[k], out);
                    out.push(',');
                }
                out.push('}');
            }
            Value::Array(xs) => {
                out.push('[');
                for x in xs {
                    canon(x, out);
                    out.push(',');
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut s = String::new();
    for c in &a.tool_calls {
        s.push_str(&c.name);
        match serde_json::from_str::<Value>(&c.arguments) {
            Ok(v) => canon(&v, &mut s),
            Err(_) => s.push_str(&c.arguments),
        }
        s.push(';');
    }
    s
}

fn gate_of(q: &Query, a: &Answer) -> Option<Gate> {
    if a.malformed {
        return Some(Gate::Malformed);
    }
    match a.finish_reason.as_deref() {
        Some("length") => return Some(Gate::Truncated),
        Some("content_filter") => return Some(Gate::ContentFilter),
        _ => {}
    }
    if a.refusal.is_some() {
        return Some(Gate::Refusal);
    }
    if a.text.trim().is_empty() && a.tool_calls.is_empty() {
        return Some(Gate::Empty);
    }
    if !a.tool_calls.is_empty() {
        for c in &a.tool_calls {
            let Some((_, schema)) = q.tools.iter().find(|(n, _)| *n == c.name) else {
                return Some(Gate::ToolUnknown);
            };
            match serde_json::from_str::<Value>(&c.arguments) {
                Ok(v) if v.is_object() && (schema.is_null() || fits(&v, schema)) => {}
                _ => return Some(Gate::ToolArgsInvalid),
            }
        }
        if let Some(Some(name)) = &q.tool_required
            && !a.tool_calls.iter().any(|c| c.name == *name)
        {
            return Some(Gate::ToolMissing);
        }
        return None;
    }
    if q.tool_required.is_some() {
        return Some(Gate::ToolMissing);
    }
    match &q.json {
        JsonWant::None => None,
        want => match serde_json::from_str::<Value>(a.text.trim()) {
            Err(_) => Some(Gate::JsonInvalid),
            Ok(v) => match want {
                JsonWant::Schema(s) if !fits(&v, s) => Some(Gate::SchemaMismatch),
                JsonWant::Object if !v.is_object() => Some(Gate::SchemaMismatch),
                _ => None,
            },
        },
    }
}

/// Analyses one answer to `q`.
pub fn analyse(q: &Query, a: &Answer) -> Analysed {
    let lower = a.text.to_lowercase();
    let words = text::words(&a.text, &lower);
    let gate = gate_of(q, a)
        .or_else(|| (words.refusal && a.tool_calls.is_empty()).then_some(Gate::Refusal));
    let mut extracted = text::extract(&a.text, &q.expect);
    if !a.tool_calls.is_empty() {
        extracted = Extracted {
            last: Some(Final::Text(tool_key(a))),
            distinct: 1,
            explicit: true,
            invalid: false,
        };
    } else if q.json != JsonWant::None
        && let Ok(v) = serde_json::from_str::<Value>(a.text.trim())
    {
        // structured answers agree when their JSON is equal
        let key = tool_key(&Answer {
            tool_calls: vec![super::answer::ToolCall {
                name: String::new(),
                arguments: v.to_string(),
            }],
            ..Answer::default()
        });
        extracted = Extracted {
            last: Some(Final::Text(key)),
            distinct: 1,
            explicit: true,
            invalid: false,
        };
    }
    let logprobs = (!a.logprobs.is_empty()).then(|| {
        let sum: f64 = a.logprobs.iter().sum();
        let min = a.logprobs.iter().copied().fold(0.0, f64::min);
        (sum / a.logprobs.len() as f64, min)
    });
    Analysed {
        gate,
        ends_abruptly: text::ends_abruptly(&a.text, words.words),
        arith: text::arithmetic(&a.text),
        extracted,
        words,
        logprobs,
    }
}

fn ln1(x: usize) -> f64 {
    (1.0 + x as f64).ln()
}

/// The feature vector of answer `a` to `q`, after the earlier attempts `prev` (oldest first).
pub fn features(q: &Query, a: &Analysed, prev: &[&Analysed]) -> [f64; N_FEATURES] {
    let w = &a.words;
    let per100 = |n: usize| (100.0 * n as f64 / w.words.max(20) as f64).min(10.0);
    let e = &a.extracted;
    let (lp_has, lp_mean, lp_min) = match a.logprobs {
        Some((m, n)) => (1.0, m.clamp(-20.0, 0.0), n.clamp(-20.0, 0.0)),
        None => (0.0, 0.0, 0.0),
    };
    let mut x = [0.0; N_FEATURES];
    x[0] = ln1(w.words);
    x[1] = ln1(w.words) - ln1(q.expect.question_words);
    x[2] = per100(w.hedges);
    x[3] = per100(w.corrections);
    x[4] = (w.no_match as f64).min(1.0);
    x[5] = f64::from(u8::from(w.refusal));
    x[6] = f64::from(u8::from(q.expect.wants_final && e.last.is_none()));
    x[7] = f64::from(u8::from(e.distinct >= 2));
    x[8] = f64::from(u8::from(e.invalid));
    x[9] = f64::from(u8::from(e.last.is_some() && !e.explicit));
    x[10] = w.repetition;
    x[11] = f64::from(u8::from(a.ends_abruptly));
    x[12] = f64::from(u8::from(a.arith.0 > 0));
    x[13] = if a.arith.0 > 0 {
        a.arith.1 as f64 / a.arith.0 as f64
    } else {
        0.0
    };
    x[14] = lp_has;
    x[15] = lp_mean;
    x[16] = lp_min;
    if let Some(p) = prev.last() {
        x[17] = 1.0;
        let same = |o: &Analysed| match (&e.last, &o.extracted.last) {
            (Some(a), Some(b)) => Some(a.same(b)),
            _ => None,
        };
        match same(p) {
            Some(true) => x[18] = 1.0,
            Some(false) => x[19] = 1.0,
            None => {}
        }
        x[20] = text::jaccard(&w.bag, &p.words.bag);
        let agree: Vec<Option<bool>> = prev.iter().map(|o| same(o)).collect();
        x[21] = f64::from(u8::from(agree.contains(&Some(true))));
        x[22] = f64::from(u8::from(agree.iter().all(|s| *s == Some(true))));
        x[23] = (ln1(w.words) - ln1(p.words.words)).abs();
        x[24] = f64::from(u8::from(p.extracted.last.is_none()));
    }
    x
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use serde_json::json;

    use super::*;

    fn q(body: Value) -> Query {
        Query::from_body(&body).unwrap()
    }

    #[test]
    fn gates() {
        let plain = q(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}));
        assert_eq!(
            analyse(&plain, &Answer::from_text("  ")).gate,
            Some(Gate::Empty)
        );
        assert_eq!(analyse(&plain, &Answer::from_text("hello")).gate, None);
        assert_eq!(
            analyse(
                &plain,
                &Answer::from_text("I'm sorry, but I can't help with that.")
            )
            .gate,
            Some(Gate::Refusal)
        );
        let cut = Answer {
            finish_reason: Some("length".into()),
            ..Answer::from_text("hello")
        };
        assert_eq!(analyse(&plain, &cut).gate, Some(Gate::Truncated));
        let js = q(
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object", "required": ["a"]}}}}),
        );
        assert_eq!(analyse(&js, &Answer::from_text("{\"a\": 1}")).gate, None);
        assert_eq!(
            analyse(&js, &Answer::from_text("{\"b\": 1}")).gate,
            Some(Gate::SchemaMismatch)
        );
        assert_eq!(
            analyse(&js, &Answer::from_text("Sure! {\"a\": 1}")).gate,
            Some(Gate::JsonInvalid)
        );
        let tools = q(
            json!({"model": "m", "messages": [{"role": "user", "content": "weather?"}], "tool_choice": "required",
            "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]}),
        );
        let call = |name: &str, args: &str| Answer {
            tool_calls: vec![super::super::answer::ToolCall {
                name: name.into(),
                arguments: args.into(),
            }],
            ..Answer::default()
        };
        assert_eq!(
            analyse(&tools, &call("weather", r#"{"city": "Paris"}"#)).gate,
            None
        );
        assert_eq!(
            analyse(&tools, &call("weather", r#"{"town": "Paris"}"#)).gate,
            Some(Gate::ToolArgsInvalid)
        );
        assert_eq!(
            analyse(&tools, &call("weather", "{city")).gate,
            Some(Gate::ToolArgsInvalid)
        );
        assert_eq!(
            analyse(&tools, &call("news", "{}")).gate,
            Some(Gate::ToolUnknown)
        );
        assert_eq!(
            analyse(&tools, &Answer::from_text("It is sunny.")).gate,
            Some(Gate::ToolMissing)
        );
    }

    #[test]
    fn agreement_features() {
        let mc = q(
            json!({"model": "m", "messages": [{"role": "user", "content": "Q\nA. x\nB. y\nC. z\nAnswer with the letter."}]}),
        );
        let a = analyse(&mc, &Answer::from_text("Reasoning. The answer is (B)."));
        let b = analyse(
            &mc,
            &Answer::from_text("Other reasoning. The answer is (B)."),
        );
        let c = analyse(&mc, &Answer::from_text("The answer is (C)."));
        let none = analyse(
            &mc,
            &Answer::from_text("I am not sure at all about this one honestly"),
        );
        let x = features(&mc, &b, &[&a]);
        assert_eq!(
            (x[17], x[18], x[19], x[21], x[22]),
            (1.0, 1.0, 0.0, 1.0, 1.0)
        );
        let x = features(&mc, &c, &[&a, &b]);
        assert_eq!((x[18], x[19], x[21]), (0.0, 1.0, 0.0));
        let x = features(&mc, &b, &[&a, &c]);
        assert_eq!((x[18], x[19], x[21], x[22]), (0.0, 1.0, 1.0, 0.0));
        let x = features(&mc, &none, &[]);
        assert_eq!((x[6], x[17]), (1.0, 0.0));
        let x = features(&mc, &a, &[&none]);
        assert_eq!((x[18], x[19], x[24]), (0.0, 0.0, 1.0));
    }
}
