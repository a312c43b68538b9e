//! Terminal tables (comfy-table) of a [`Report`]. Returns text; the CLI prints it.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table};
use rust_decimal::Decimal;

use crate::report::Report;

/// `$1,234.56`; amounts under a cent keep four decimals.
pub fn usd(d: Decimal) -> String {
    let neg = d.is_sign_negative() && !d.is_zero();
    let a = d.abs();
    let dp = if a < Decimal::new(1, 2) && !a.is_zero() {
        4
    } else {
        2
    };
    let s = a.round_dp(dp).to_string();
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i.to_string(), format!("{f:0<dp$}", dp = dp as usize)),
        None => (s.clone(), "0".repeat(dp as usize)),
    };
    format!("{}${}.{frac}", if neg { "-" } else { "" }, group(&int))
}

fn group(int: &str) -> String {
    let mut out = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1,234,567`.
pub fn num(n: u64) -> String {
    group(&n.to_string())
}

fn pct(p: f64) -> String {
    format!("{p:.1}%")
}

fn share(s: f64) -> String {
    format!("{:.1}%", s * 100.0)
}

fn table(header: &[&str], color: bool) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.iter().copied().map(Cell::new));
    if !color {
        t.force_no_tty();
    }
    t
}

fn right(t: &mut Table, from: usize) {
    let n = t.column_count();
    for i in from..n {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
}

/// The whole report as text.
pub fn render(r: &Report, color: bool) -> String {
    let mut out = String::new();
    let period = match (&r.period.first, &r.period.last) {
        (Some(a), Some(b)) => format!(", {a} → {b}"),
        _ => String::new(),
    };
    out.push_str(&format!(
        "tierwise audit: {} calls, {} spent{period}\n",
        num(r.requests),
        usd(r.spend_usd)
    ));
    for s in &r.sources {
        out.push_str(&format!(
            "  {} ({:?}, {} calls)\n",
            s.name,
            s.format,
            num(s.calls)
        ));
    }

    out.push_str("\nSpend by tier and model\n");
    let mut t = table(
        &[
            "tier",
            "model",
            "calls",
            "input tok",
            "cached tok",
            "output tok",
            "spend",
            "share",
        ],
        color,
    );
    for row in &r.by_tier {
        t.add_row(vec![
            row.tier.clone(),
            row.model.clone(),
            num(row.requests),
            num(row.input_tokens),
            num(row.cached_tokens),
            num(row.output_tokens),
            row.spend_usd.map_or_else(|| "unpriced".to_string(), usd),
            pct(row.spend_share_pct),
        ]);
    }
    right(&mut t, 2);
    out.push_str(&format!("{t}\n"));

    out.push_str("\nSpend by category\n");
    let mut t = table(
        &[
            "category",
            "calls",
            "input tok",
            "cached tok",
            "output tok",
            "spend",
            "share",
            "policy sends to",
        ],
        color,
    );
    for row in &r.by_category {
        let routed: Vec<String> = row
            .routed_to
            .iter()
            .map(|(tier, n)| format!("{tier} {}", num(*n)))
            .collect();
        t.add_row(vec![
            row.category.clone(),
            num(row.requests),
            num(row.input_tokens),
            num(row.cached_tokens),
            num(row.output_tokens),
            usd(row.spend_usd),
            pct(row.spend_share_pct),
            routed.join(", "),
        ]);
    }
    right(&mut t, 1);
    if let Some(c) = t.column_mut(7) {
        c.set_cell_alignment(CellAlignment::Left);
    }
    out.push_str(&format!("{t}\n"));

    // category × tier matrix
    let mut tiers: Vec<String> = Vec::new();
    for row in &r.by_tier {
        if !tiers.contains(&row.tier) {
            tiers.push(row.tier.clone());
        }
    }
    if !r.category_by_tier.is_empty() {
        out.push_str("\nSpend by category × tier\n");
        let mut header = vec!["category"];
        header.extend(tiers.iter().map(String::as_str));
        let mut t = table(&header, color);
        let mut cats: Vec<&str> = Vec::new();
        for c in &r.category_by_tier {
            if !cats.contains(&c.category.as_str()) {
                cats.push(&c.category);
            }
        }
        for c in cats {
            let mut row = vec![c.to_string()];
            for tier in &tiers {
                let cell = r
                    .category_by_tier
                    .iter()
                    .find(|x| x.category == c && &x.tier == tier)
                    .map_or_else(|| "-".to_string(), |x| usd(x.spend_usd));
                row.push(cell);
            }
            t.add_row(row);
        }
        right(&mut t, 1);
        out.push_str(&format!("{t}\n"));
    }

    let h = &r.headline;
    if !h.flagship_spend_usd.is_zero() {
        out.push_str(&format!(
            "\nHeadline: {} of {} spend ({} of {}) goes to calls the policy would send to a lower tier.\n",
            pct(h.routable_lower_pct),
            h.flagship_tier,
            usd(h.routable_lower_usd),
            usd(h.flagship_spend_usd)
        ));
        let mut t = table(
            &[
                "category",
                "flagship spend",
                "routable lower",
                "share",
                "policy picks",
            ],
            color,
        );
        for c in &h.by_category {
            t.add_row(vec![
                c.category.clone(),
                usd(c.flagship_spend_usd),
                usd(c.routable_lower_usd),
                pct(c.routable_lower_pct),
                c.policy_tier.clone(),
            ]);
        }
        right(&mut t, 1);
        out.push_str(&format!("{t}\n"));
    }

    let w = &r.what_if;
    out.push_str(
        "\nWhat-if waterfall (each step on top of the previous; \"alone\" = that lever only)\n",
    );
    let mut t = table(
        &["step", "spend after", "saves", "alone saves", "alone %"],
        color,
    );
    t.add_row(vec![
        "baseline (as logged)".to_string(),
        usd(w.baseline_usd),
        String::new(),
        String::new(),
        String::new(),
    ]);
    for s in &w.steps {
        t.add_row(vec![
            s.step.clone(),
            usd(s.after_usd),
            usd(s.saving_usd),
            usd(s.alone_saving_usd),
            pct(s.alone_saving_pct),
        ]);
    }
    t.add_row(vec![
        Cell::new("total"),
        Cell::new(usd(w.after_tool_search_usd)),
        Cell::new(format!("{} ({})", usd(w.savings_usd), pct(w.savings_pct))),
        Cell::new(""),
        Cell::new(""),
    ]);
    right(&mut t, 1);
    out.push_str(&format!("{t}\n"));
    let routed: Vec<String> = w
        .routing
        .routed
        .iter()
        .map(|(tier, n)| format!("{tier} {}", num(*n)))
        .collect();
    out.push_str(&format!(
        "  routing ({}): {}{}\n",
        w.routing.router,
        routed.join(", "),
        if w.routing.errors > 0 {
            format!(" ({} refused, kept as logged)", num(w.routing.errors))
        } else {
            String::new()
        }
    ));
    out.push_str(&format!(
        "  batch: {} deferrable calls\n",
        num(w.batch.deferrable_requests)
    ));
    let c = &w.cache;
    out.push_str(&format!(
        "  cache: cached share of input {} as logged, {} achievable as sent, {} with static content first (TTL {} s); static first adds {}\n",
        share(c.actual_cached_share),
        share(c.achievable_cached_share),
        share(c.static_first_cached_share),
        c.ttl_secs,
        usd(c.static_first_extra_usd)
    ));
    let ts = &w.tool_search;
    out.push_str(&format!(
        "  tool search: {} of {} calls with tools pruned, {} of {} tool-schema tokens not sent ({})\n",
        num(ts.requests_pruned),
        num(ts.requests_with_tools),
        num(ts.removed_tokens),
        num(ts.tool_tokens),
        ts.method
    ));

    if !r.top_shapes.is_empty() {
        out.push_str("\nTop request shapes by spend (same system prompt + same tools)\n");
        let mut t = table(
            &[
                "shape",
                "calls",
                "spend",
                "share",
                "category",
                "policy picks",
                "cacheable prefix",
            ],
            color,
        );
        for s in &r.top_shapes {
            t.add_row(vec![
                s.shape.clone(),
                num(s.requests),
                usd(s.spend_usd),
                pct(s.spend_share_pct),
                s.category.clone(),
                s.policy_tier.clone(),
                if s.cacheable_prefix_tokens > 0 {
                    format!("{} tok", num(u64::from(s.cacheable_prefix_tokens)))
                } else {
                    "-".to_string()
                },
            ]);
        }
        right(&mut t, 1);
        for i in [4, 5] {
            if let Some(c) = t.column_mut(i) {
                c.set_cell_alignment(CellAlignment::Left);
            }
        }
        out.push_str(&format!("{t}\n"));
    }

    if let Some(e) = &r.usage_export {
        out.push_str(&format!(
            "\nUsage export: {} calls, {}, cached share {}; ceilings: batch saves up to {}, caching up to {}\n",
            num(e.requests),
            usd(e.spend_usd),
            share(e.cached_share),
            usd(e.batch_ceiling_saving_usd),
            usd(e.cache_ceiling_saving_usd)
        ));
    }

    if !r.unpriced_models.is_empty() {
        out.push_str("\nUnpriced models (not in spend)\n");
        let mut t = table(&["model", "calls", "input tok", "output tok"], color);
        for u in &r.unpriced_models {
            t.add_row(vec![
                u.model.clone(),
                num(u.requests),
                num(u.input_tokens),
                num(u.output_tokens),
            ]);
        }
        right(&mut t, 1);
        out.push_str(&format!("{t}\n"));
    }

    if r.malformed.count > 0 {
        out.push_str(&format!("\nMalformed lines: {}\n", num(r.malformed.count)));
        for m in r.malformed.lines.iter().take(10) {
            out.push_str(&format!("  {}:{}: {}\n", m.source, m.line, m.error));
        }
    }
    if let Some(c) = &r.cascade_replay {
        out.push_str(&crate::cascade_replay::render(c));
    }
    if !r.notes.is_empty() {
        out.push_str("\nNotes\n");
        for n in &r.notes {
            out.push_str(&format!("  - {n}\n"));
        }
    }
    out.push_str("\nAssumptions\n");
    for a in &w.assumptions {
        out.push_str(&format!("  - {a}\n"));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn money_format() {
        assert_eq!(usd(dec!(1234567.891)), "$1,234,567.89");
        assert_eq!(usd(dec!(0.00012345)), "$0.0001");
        assert_eq!(usd(dec!(0)), "$0.00");
        assert_eq!(usd(dec!(12)), "$12.00");
        assert_eq!(usd(dec!(-3.5)), "-$3.50");
        assert_eq!(num(1234567), "1,234,567");
    }
}
