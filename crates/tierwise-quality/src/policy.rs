//! `tierwise calibrate --from-log`: from verdicts to policy. A category moves down only where
//! its shadow-test verdict is *safe to move down*, as a `[[routing.rules]]` entry written
//! before every other rule (first match wins):
//!
//! ```toml
//! [[routing.rules]]
//! name = "quality-classification"   # the `quality-` prefix marks rules this command owns
//! tier = "mini"
//! when = { category = ["classification"] }
//! ```
//!
//! A rule sends *every* call of the category to the candidate, so a category is moved only
//! when all its logged calls (2xx, in the request log) were served by the tested tier: a
//! category also served elsewhere (e.g. by a hard-reasoning rule at the flagship) was never
//! tested from there and is left alone, with a note. Rules an earlier run wrote (`quality-…`)
//! are replaced. **Projected savings** re-price the logged calls of the moved categories, their
//! recorded usage at the candidate tier's prices (the audit's what-if method). **Quality
//! bound**: each moved pair's one-sided lower bound on the ratio at the confidence; across the
//! moved categories, Benjamini–Hochberg keeps the expected share wrongly moved ≤ 1 − confidence.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;
use serde::Serialize;
use tierwise_core::catalog::Catalog;
use tierwise_core::cost::{ServiceTier, Usage, cost};
use tierwise_store::RequestRow;

use crate::report::{QualityReport, SAFE};

/// The name prefix of the rules this command writes.
pub const RULE_PREFIX: &str = "quality-";

/// One category moved down.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Move {
    pub category: String,
    pub from_tier: String,
    pub to_tier: String,
    /// Logged calls of the category re-priced.
    pub calls: u64,
    /// Their cost as served.
    pub cost_usd: Decimal,
    /// The same usage at the candidate tier's prices.
    pub projected_usd: Decimal,
    pub savings_usd: Decimal,
    /// One-sided lower bound on the quality ratio at the confidence.
    pub quality_lower: f64,
    pub estimate: Option<f64>,
}

/// What calibration decided.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Calibration {
    pub bar: f64,
    pub confidence: f64,
    pub moves: Vec<Move>,
    /// Logged spend of all calls, and the projected savings of the moves on it.
    pub logged_usd: Decimal,
    pub savings_usd: Decimal,
    /// Safe pairs not applied, and why.
    pub skipped: Vec<String>,
    /// The config text before and after.
    #[serde(skip)]
    pub old_text: String,
    #[serde(skip)]
    pub new_text: String,
    /// Lines removed (`-`) and added (`+`).
    pub diff: Vec<String>,
}

fn usage_of(r: &RequestRow) -> Usage {
    Usage {
        input_tokens: r.input_tokens,
        cached_tokens: r.cached_tokens,
        output_tokens: r.output_tokens,
        reasoning_tokens: r.reasoning_tokens,
        cache_write_tokens: 0,
    }
}

/// Marks the comment line written above each rule.
const MOVED_COMMENT: &str = "# moved down by `tierwise calibrate --from-log`";

/// Removes the `[[routing.rules]]` blocks named `quality-…` (a block runs to the next blank
/// line or header) with the comment line written above them.
fn strip_owned_rules(text: &str) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut out: Vec<&str> = Vec::with_capacity(lines.len());
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() == "[[routing.rules]]" {
            let end = (i + 1..lines.len())
                .find(|&j| lines[j].trim().is_empty() || lines[j].trim_start().starts_with('['))
                .unwrap_or(lines.len());
            let owned = lines[i..end].iter().any(|l| {
                let t = l.trim();
                t.starts_with("name") && t.contains(&format!("\"{RULE_PREFIX}"))
            });
            if owned {
                if out.last().is_some_and(|l| l.starts_with(MOVED_COMMENT)) {
                    out.pop();
                }
                // the blank line after the block goes with it
                i = if lines.get(end).is_some_and(|l| l.trim().is_empty()) {
                    end + 1
                } else {
                    end
                };
                continue;
            }
        }
        out.push(lines[i]);
        i += 1;
    }
    out.concat()
}

fn rules_text(moves: &[Move], bar: f64, confidence: f64) -> String {
    let mut s = String::new();
    for m in moves {
        s.push_str(&format!(
            "{MOVED_COMMENT}: ratio >= {:.3} (bar {bar}, confidence {confidence})\n\
             [[routing.rules]]\nname = \"{RULE_PREFIX}{}\"\ntier = \"{}\"\n\
             when = {{ category = [\"{}\"] }}\n\n",
            m.quality_lower, m.category, m.to_tier, m.category
        ));
    }
    s
}

/// Inserts `rules` before the first `[[routing.rules]]`, else at the end.
fn insert_rules(text: &str, rules: &str) -> String {
    if rules.is_empty() {
        return text.to_string();
    }
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    match lines.iter().position(|l| l.trim() == "[[routing.rules]]") {
        Some(i) => {
            // keep the comment lines just above the first rule with it
            let mut at = i;
            while at > 0 && lines[at - 1].trim_start().starts_with('#') {
                at -= 1;
            }
            let mut out: String = lines[..at].concat();
            out.push_str(rules);
            out.push_str(&lines[at..].concat());
            out
        }
        None => {
            let mut out = text.to_string();
            if !out.ends_with('\n') {
                out.push('\n');
            }
            out.push('\n');
            out.push_str(rules);
            out
        }
    }
}

/// Line diff: lines of `old` not in `new` (`-`), then lines of `new` not in `old` (`+`).
fn diff(old: &str, new: &str) -> Vec<String> {
    let count = |t: &str| {
        let mut m: BTreeMap<String, i64> = BTreeMap::new();
        for l in t.lines() {
            *m.entry(l.to_string()).or_default() += 1;
        }
        m
    };
    let (a, b) = (count(old), count(new));
    let mut out = Vec::new();
    for l in old.lines() {
        if a.get(l).copied().unwrap_or(0) > b.get(l).copied().unwrap_or(0) {
            out.push(format!("- {l}"));
        }
    }
    let mut seen = BTreeSet::new();
    for l in new.lines() {
        if b.get(l).copied().unwrap_or(0) > a.get(l).copied().unwrap_or(0) && seen.insert(l) {
            out.push(format!("+ {l}"));
        }
    }
    out
}

/// Calibrates `config_text` from `report` and the logged calls `log`.
pub fn calibrate(
    report: &QualityReport,
    log: &[RequestRow],
    catalog: &Catalog,
    config_text: &str,
) -> Calibration {
    let ok = |r: &&RequestRow| (200..300).contains(&r.status) && r.category.is_some();
    // tiers each category was served by
    let mut served: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for r in log.iter().filter(ok) {
        if let Some(c) = &r.category {
            served
                .entry(c.as_str())
                .or_default()
                .insert(r.tier.as_str());
        }
    }
    let mut moves = Vec::new();
    let mut skipped = Vec::new();
    let mut moved_categories = BTreeSet::new();
    // the cheapest safe candidate per category
    let mut safe: Vec<_> = report.pairs.iter().filter(|p| p.verdict == SAFE).collect();
    safe.sort_by_key(|p| catalog.tier_index(&p.candidate_tier).unwrap_or(usize::MAX));
    for p in safe {
        if moved_categories.contains(p.category.as_str()) {
            continue;
        }
        let tiers = served.get(p.category.as_str());
        if tiers.is_none_or(|t| t.len() != 1 || !t.contains(p.served_tier.as_str())) {
            skipped.push(format!(
                "{}: {} → {} is safe, but the category's logged calls were served by {}",
                p.category,
                p.served_tier,
                p.candidate_tier,
                tiers.map_or("none".to_string(), |t| t
                    .iter()
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", "))
            ));
            continue;
        }
        let Some(to) = catalog
            .tier_index(&p.candidate_tier)
            .and_then(|i| catalog.tier(i))
        else {
            skipped.push(format!(
                "{}: candidate tier {} is not in the config",
                p.category, p.candidate_tier
            ));
            continue;
        };
        let mut m = Move {
            category: p.category.clone(),
            from_tier: p.served_tier.clone(),
            to_tier: p.candidate_tier.clone(),
            calls: 0,
            cost_usd: Decimal::ZERO,
            projected_usd: Decimal::ZERO,
            savings_usd: Decimal::ZERO,
            quality_lower: p.lower,
            estimate: p.estimate,
        };
        for r in log
            .iter()
            .filter(ok)
            .filter(|r| r.category.as_deref() == Some(p.category.as_str()))
        {
            let (Some(c), Ok(projected)) = (
                r.cost_usd,
                cost(
                    &to.prices,
                    &usage_of(r),
                    ServiceTier::from_response(Some(r.service_tier.as_str())),
                    catalog.multipliers(),
                ),
            ) else {
                continue;
            };
            m.calls += 1;
            m.cost_usd += c;
            m.projected_usd += projected.total;
        }
        m.savings_usd = m.cost_usd - m.projected_usd;
        moved_categories.insert(p.category.as_str());
        moves.push(m);
    }
    let old_text = config_text.to_string();
    let new_text = insert_rules(
        &strip_owned_rules(config_text),
        &rules_text(&moves, report.bar, report.confidence),
    );
    Calibration {
        bar: report.bar,
        confidence: report.confidence,
        logged_usd: log.iter().filter_map(|r| r.cost_usd).sum(),
        savings_usd: moves.iter().map(|m| m.savings_usd).sum(),
        diff: diff(&old_text, &new_text),
        moves,
        skipped,
        old_text,
        new_text,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;

    #[test]
    fn owned_rules_are_replaced_and_new_ones_go_first() {
        let text = "[routing]\nmode = \"rules\"\n\n# first rule\n[[routing.rules]]\nname = \"a\"\ntier = \"mini\"\n\n[[routing.rules]]\nname = \"quality-old\"\ntier = \"nano\"\nwhen = { category = [\"x\"] }\n\n[tools]\nmode = \"off\"\n";
        let stripped = strip_owned_rules(text);
        assert!(!stripped.contains("quality-old"));
        assert!(stripped.contains("name = \"a\"") && stripped.contains("[tools]"));
        let m2 = || Move {
            category: "classification".into(),
            from_tier: "standard".into(),
            to_tier: "mini".into(),
            calls: 0,
            cost_usd: Decimal::ZERO,
            projected_usd: Decimal::ZERO,
            savings_usd: Decimal::ZERO,
            quality_lower: 0.97,
            estimate: Some(1.0),
        };
        let m = Move {
            category: "classification".into(),
            from_tier: "standard".into(),
            to_tier: "mini".into(),
            calls: 0,
            cost_usd: Decimal::ZERO,
            projected_usd: Decimal::ZERO,
            savings_usd: Decimal::ZERO,
            quality_lower: 0.97,
            estimate: Some(1.0),
        };
        let out = insert_rules(&stripped, &rules_text(&[m], 0.95, 0.9));
        // a second run finds its own rules and writes the same text
        let again = insert_rules(&strip_owned_rules(&out), &rules_text(&[m2()], 0.95, 0.9));
        assert_eq!(again, out);
        let new_rule = out.find("quality-classification").unwrap();
        let first = out.find("name = \"a\"").unwrap();
        let comment = out.find("# first rule").unwrap();
        assert!(new_rule < comment && comment < first, "{out}");
        let d = diff(text, &out);
        assert!(d.iter().any(|l| l == "- name = \"quality-old\""));
        assert!(d.iter().any(|l| l == "+ name = \"quality-classification\""));
    }
}
