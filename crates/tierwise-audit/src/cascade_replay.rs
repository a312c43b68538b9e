//! Cascade replay (`tierwise audit --cascade`, JSON key `cascade_replay`): the cascade's answer
//! scorer applied to the answers a call log recorded.
//!
//! A log holds one answer per call — from the tier that served it — so the honest replay is:
//! - calls served by a tier below the top of the cascade ladder: the share the scorer would
//!   accept at that tier (threshold from `[routing.cascade]`) vs escalate, and what escalating
//!   would add (the same tokens priced at the next tier on the ladder: an estimate, since the
//!   next tier's answer length is unknown);
//! - calls served by the top tier (or a model outside the ladder): their answers are scored
//!   (how many would pass the gates), but what a cheaper tier would have answered is not in the
//!   log, so no saving is claimed for them.
//!
//! Opt-in and separate from the streaming engine: a second pass over the JSONL call logs that
//! reads each line's `request` and `response`. tierwise's SQLite request log (`--store`) keeps no
//! answers in a form the scorer reads yet, and stdin cannot be read twice: both are skipped and
//! said so in `notes`.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;
use tierwise_core::Config;
use tierwise_core::catalog::Catalog;
use tierwise_core::cost::{ServiceTier, Usage, cost};
use tierwise_router::cascade::{Answer, Query, Scorer, analyse};

use crate::error::AuditError;
use crate::input::{self, Format, InputSpec};

/// What the replay needs: the scorer and the cascade settings of the config.
#[derive(Debug, Clone)]
pub struct Setup {
    pub scorer: Scorer,
    /// Where the scorer came from (for the report).
    pub scorer_name: String,
    pub cascade: tierwise_core::config::Cascade,
}

impl Setup {
    /// The scorer `[routing.cascade] scorer` names, else the shipped one.
    pub fn from_config(config: &Config) -> Result<Setup, AuditError> {
        let (scorer, scorer_name) = match &config.routing.cascade.scorer {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| AuditError::Open {
                    path: p.clone(),
                    source,
                })?;
                let s = Scorer::from_json(&text)
                    .map_err(|e| AuditError::Internal(format!("{}: {e}", p.display())))?;
                (s, p.display().to_string())
            }
            None => (
                Scorer::shipped().map_err(|e| AuditError::Internal(e.to_string()))?,
                "shipped (router/cascade.json)".to_string(),
            ),
        };
        Ok(Setup {
            scorer,
            scorer_name,
            cascade: config.routing.cascade.clone(),
        })
    }
}

/// The replay of one served tier.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReplayTier {
    /// Tier name, or `none` for models outside the ladder.
    pub tier: String,
    /// Calls served by it (in the call logs read).
    pub calls: u64,
    /// Calls with a request and an answer the scorer reads.
    pub scored: u64,
    /// Below the top of the cascade ladder: the acceptance threshold; `None` at the top.
    pub threshold: Option<f64>,
    /// Scored answers that pass the gates and (below the top) score above the threshold.
    pub accepted: u64,
    /// Scored answers the cascade would escalate (below the top) / that fail a gate (at the top).
    pub rejected: u64,
    /// `accepted / scored`.
    pub accept_share: Option<f64>,
    /// Rejections by gate (empty, truncated, refusal, …); the rest scored below the threshold.
    pub gates: BTreeMap<String, u64>,
    pub mean_p: Option<f64>,
    /// Spend of the scored calls as logged, USD.
    #[serde(with = "rust_decimal::serde::str")]
    pub spend_usd: Decimal,
    /// The next tier on the cascade ladder (where rejected calls would go); `None` at the top.
    pub escalate_to: Option<String>,
    /// Rejected calls re-sent to `escalate_to` with the same tokens (estimate), USD.
    #[serde(with = "rust_decimal::serde::str_option")]
    pub escalation_cost_usd: Option<Decimal>,
    /// Whether the log can say what a cheaper tier would have done (false at the top).
    pub cheaper_tier_known: bool,
}

/// `cascade_replay` in the audit report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CascadeReplay {
    pub scorer: String,
    /// The cascade ladder, cheapest first.
    pub ladder: Vec<String>,
    /// Call-log lines read.
    pub calls: u64,
    /// … with a request and an answer the scorer reads.
    pub scored: u64,
    pub tiers: Vec<ReplayTier>,
    pub notes: Vec<String>,
}

#[derive(Default)]
struct Acc {
    calls: u64,
    scored: u64,
    accepted: u64,
    rejected: u64,
    gates: BTreeMap<String, u64>,
    p_sum: f64,
    spend: Decimal,
    escalation: Decimal,
}

/// One call of a log line: served model, usage, service tier, time, request and answer.
struct Line {
    model: String,
    usage: Usage,
    tier: ServiceTier,
    ts_ms: Option<i64>,
    request: Option<Value>,
    response: Option<Value>,
}

fn parse(line: &[u8]) -> Option<Line> {
    let mut v: Value = serde_json::from_slice(line).ok()?;
    let obj = v.as_object_mut()?;
    let response = obj.remove("response").filter(Value::is_object);
    let request = obj.remove("request").filter(Value::is_object);
    let model = response
        .as_ref()
        .and_then(|r| r.get("model"))
        .or_else(|| request.as_ref().and_then(|r| r.get("model")))
        .and_then(Value::as_str)?
        .to_string();
    let usage = response
        .as_ref()
        .and_then(|r| r.get("usage"))
        .and_then(Usage::from_openai)
        .unwrap_or_default();
    let tier = ServiceTier::from_response(
        response
            .as_ref()
            .and_then(|r| r.get("service_tier"))
            .and_then(Value::as_str),
    );
    // as the audit reads it: `timestamp` (RFC 3339 or unix s/ms), else the response's `created`
    let time = |v: &Value| match v {
        Value::String(s) => crate::call::parse_time(s),
        Value::Number(n) => n.as_f64().map(|x| {
            if x > 1e11 {
                x as i64
            } else {
                (x * 1000.0) as i64
            }
        }),
        _ => None,
    };
    let ts_ms = obj.get("timestamp").and_then(time).or_else(|| {
        response
            .as_ref()
            .and_then(|r| r.get("created"))
            .and_then(time)
    });
    Some(Line {
        model,
        usage,
        tier,
        ts_ms,
        request,
        response,
    })
}

fn price(catalog: &Catalog, model: &str, usage: &Usage, tier: ServiceTier) -> Option<Decimal> {
    let p = catalog.prices_for(model)?;
    cost(p, usage, tier, catalog.multipliers())
        .ok()
        .map(|c| c.total)
}

/// Replays the cascade over the call logs among `inputs` (time window as the audit's).
pub fn replay(
    inputs: &[InputSpec],
    setup: &Setup,
    catalog: &Catalog,
    since_ms: Option<i64>,
    until_ms: Option<i64>,
) -> Result<CascadeReplay, AuditError> {
    let cfg = &setup.cascade;
    let ladder: Vec<usize> = cfg
        .ladder
        .iter()
        .copied()
        .filter(|&t| t < catalog.tiers().len())
        .collect();
    let top = ladder.last().copied();
    let mut notes = Vec::new();
    // index: ladder position, or usize::MAX for "none"
    let mut acc: BTreeMap<usize, Acc> = BTreeMap::new();
    let mut calls = 0u64;
    for spec in inputs {
        let path = match spec {
            InputSpec::Path(p) => p,
            InputSpec::Stdin => {
                notes.push("stdin is not replayed (it cannot be read twice)".into());
                continue;
            }
            InputSpec::Store(p) => {
                notes.push(format!(
                    "{}: the request log keeps no answers the scorer reads; not replayed",
                    p.display()
                ));
                continue;
            }
        };
        let mut opened = input::open(spec, Arc::new(AtomicU64::new(0)))?;
        if opened.format != Format::CallLog {
            notes.push(format!(
                "{}: not a call log (no answers); not replayed",
                path.display()
            ));
            continue;
        }
        let mut buf = Vec::new();
        let mut n = 0u64;
        loop {
            buf.clear();
            let read = opened
                .reader
                .read_until(b'\n', &mut buf)
                .map_err(|source| AuditError::Read {
                    name: opened.name.clone(),
                    line: n + 1,
                    source,
                })?;
            if read == 0 {
                break;
            }
            n += 1;
            let Some(line) = parse(&buf) else { continue };
            // with a time window, a call without a time is outside it (as in the audit)
            if (since_ms.is_some() || until_ms.is_some())
                && !line.ts_ms.is_some_and(|t| {
                    since_ms.is_none_or(|s| t >= s) && until_ms.is_none_or(|u| t < u)
                })
            {
                continue;
            }
            calls += 1;
            let pos = catalog
                .tier_of_model(&line.model)
                .and_then(|t| ladder.iter().position(|&l| l == t));
            let a = acc.entry(pos.unwrap_or(usize::MAX)).or_default();
            a.calls += 1;
            let (Some(req), Some(resp)) = (&line.request, &line.response) else {
                continue;
            };
            let answer = Answer::from_response(resp);
            if answer.malformed {
                continue;
            }
            let Ok(query) = Query::from_body(req) else {
                continue;
            };
            let analysed = analyse(&query, &answer);
            let score = setup.scorer.score(&query, &analysed, &[]);
            a.scored += 1;
            a.p_sum += score.p;
            a.spend += price(catalog, &line.model, &line.usage, line.tier).unwrap_or_default();
            let cheap = pos.is_some_and(|p| Some(ladder[p]) != top);
            let threshold = pos
                .filter(|_| cheap)
                .map(|p| cfg.threshold(Some(ladder[p]), setup.scorer.default_threshold()));
            let ok = score.gate.is_none() && threshold.is_none_or(|t| score.p > t);
            if ok {
                a.accepted += 1;
            } else {
                a.rejected += 1;
                if let Some(g) = score.gate {
                    *a.gates.entry(g.as_str().to_string()).or_default() += 1;
                }
                if let Some(p) = pos.filter(|_| cheap)
                    && let Some(next) = catalog.tier(ladder[p + 1])
                {
                    a.escalation +=
                        price(catalog, &next.model, &line.usage, line.tier).unwrap_or_default();
                }
            }
        }
    }
    let name = |pos: usize| {
        ladder
            .get(pos)
            .and_then(|&t| catalog.tier(t))
            .map_or("none".to_string(), |t| t.name.clone())
    };
    let tiers: Vec<ReplayTier> = acc
        .iter()
        .map(|(&pos, a)| {
            let cheap = pos != usize::MAX && Some(ladder[pos]) != top;
            ReplayTier {
                tier: name(pos),
                calls: a.calls,
                scored: a.scored,
                threshold: cheap
                    .then(|| cfg.threshold(Some(ladder[pos]), setup.scorer.default_threshold())),
                accepted: a.accepted,
                rejected: a.rejected,
                accept_share: (a.scored > 0).then(|| a.accepted as f64 / a.scored as f64),
                gates: a.gates.clone(),
                mean_p: (a.scored > 0).then(|| a.p_sum / a.scored as f64),
                spend_usd: a.spend.normalize(),
                escalate_to: cheap.then(|| name(pos + 1)),
                escalation_cost_usd: cheap.then(|| a.escalation.normalize()),
                cheaper_tier_known: cheap,
            }
        })
        .collect();
    let scored = tiers.iter().map(|t| t.scored).sum();
    if tiers.iter().any(|t| !t.cheaper_tier_known && t.scored > 0) {
        notes.push("calls served by the top of the ladder (or outside it) carry only that answer: what a cheaper tier would have said is unknown, so no cascade saving is claimed for them".into());
    }
    if calls > scored {
        notes.push(format!(
            "{} calls not scored: no request or no readable answer logged",
            calls - scored
        ));
    }
    Ok(CascadeReplay {
        scorer: setup.scorer_name.clone(),
        ladder: ladder.iter().map(|&t| name_of(catalog, t)).collect(),
        calls,
        scored,
        tiers,
        notes,
    })
}

fn name_of(catalog: &Catalog, t: usize) -> String {
    catalog
        .tier(t)
        .map_or("none".to_string(), |t| t.name.clone())
}

/// The replay as a short text section for the terminal report.
pub fn render(r: &CascadeReplay) -> String {
    let mut s = format!(
        "\nCascade replay (scorer {}; ladder {}): {} calls, {} scored\n",
        r.scorer,
        r.ladder.join(" → "),
        r.calls,
        r.scored
    );
    s.push_str(&format!(
        "  {:<10} {:>8} {:>8} {:>10} {:>9} {:>12} {:>14}\n",
        "served by", "calls", "scored", "threshold", "accepted", "escalate to", "escalation USD"
    ));
    for t in &r.tiers {
        s.push_str(&format!(
            "  {:<10} {:>8} {:>8} {:>10} {:>9} {:>12} {:>14}\n",
            t.tier,
            t.calls,
            t.scored,
            t.threshold.map_or("top".into(), |x| format!("{x:.3}")),
            t.accept_share
                .map_or("n/a".into(), |x| format!("{:.1}%", x * 100.0)),
            t.escalate_to.as_deref().unwrap_or("-"),
            t.escalation_cost_usd
                .map_or("-".into(), |c| c.round_dp(4).to_string()),
        ));
    }
    for n in &r.notes {
        s.push_str(&format!("  note: {n}\n"));
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "tests may unwrap")]
mod tests {
    use std::io::Write;

    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn line(model: &str, text: &str, finish: &str) -> String {
        serde_json::json!({
            "timestamp": "2026-01-02T03:04:05Z",
            "request": {"model": model, "messages": [{"role": "user", "content":
                "Which is a prime?\nA. 4\nB. 6\nC. 7\nD. 9\nAnswer with the letter."}]},
            "response": {"model": model, "choices": [{"index": 0, "finish_reason": finish,
                "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 1000, "completion_tokens": 100}}
        })
        .to_string()
    }

    #[test]
    fn replays_cheap_tiers_and_says_what_the_top_cannot_tell() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("calls.jsonl");
        let mut f = std::fs::File::create(&path).unwrap();
        for l in [
            line("gpt-5.4-nano", "7 is prime. The answer is (C).", "stop"),
            line("gpt-5.4-nano", "", "stop"),
            line("gpt-5.4-nano", "The answer", "length"),
            line("gpt-5.5", "The answer is (C).", "stop"),
            r#"{"request": {"model": "gpt-5.4-nano", "messages": [{"role": "user", "content": "hi"}]}}"#
                .to_string(),
        ] {
            writeln!(f, "{l}").unwrap();
        }
        drop(f);
        let config = Config::embedded(&no_env).unwrap();
        let mut setup = Setup::from_config(&config).unwrap();
        // threshold 0: every non-gated cheap answer is accepted
        setup.cascade.default_threshold = Some(0.0);
        let r = replay(
            &[InputSpec::Path(path.clone())],
            &setup,
            &config.catalog,
            None,
            None,
        )
        .unwrap();
        assert_eq!((r.calls, r.scored), (5, 4));
        let nano = r.tiers.iter().find(|t| t.tier == "nano").unwrap();
        assert_eq!((nano.calls, nano.scored), (4, 3));
        assert_eq!((nano.accepted, nano.rejected), (1, 2));
        assert_eq!(nano.gates.get("empty"), Some(&1));
        assert_eq!(nano.gates.get("truncated"), Some(&1));
        assert_eq!(nano.escalate_to.as_deref(), Some("mini"));
        // two rejected calls, 1000 in + 100 out each at mini (0.75 / 4.50 per 1M)
        assert_eq!(
            nano.escalation_cost_usd,
            Some(Decimal::new(2 * (750 + 450), 6))
        );
        let top = r.tiers.iter().find(|t| t.tier == "flagship").unwrap();
        assert!(!top.cheaper_tier_known && top.threshold.is_none());
        assert_eq!(top.accepted, 1);
        assert!(r.notes.iter().any(|n| n.contains("unknown")));
        // the time window applies
        let none = replay(
            &[InputSpec::Path(path)],
            &setup,
            &config.catalog,
            crate::call::parse_time("2027-01-01T00:00:00Z"),
            None,
        )
        .unwrap();
        assert_eq!(none.calls, 0);
        assert!(render(&r).contains("nano"));
    }
}
