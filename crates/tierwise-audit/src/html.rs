//! `--html FILE`: one self-contained page (inline CSS and SVG, no script, no network) with
//! the charts — spend by tier, category × tier, the savings waterfall, top shapes — and the
//! report's tables.

use std::fmt::Write as _;

use rust_decimal::Decimal;

use crate::render::{num, usd};
use crate::report::Report;

const PALETTE: &[&str] = &[
    "#2f6fdf", "#27a17a", "#e5a823", "#d9534f", "#8e5bd6", "#5a6a7a", "#1fb3c4", "#b46b2a",
];
const WIDTH: f64 = 880.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn f(d: Decimal) -> f64 {
    d.to_string().parse().unwrap_or(0.0)
}

/// Tier → color, flagship warm, cheaper tiers cool.
fn tier_color(tiers: &[String], tier: &str) -> &'static str {
    let i = tiers.iter().position(|t| t == tier).unwrap_or(tiers.len());
    PALETTE[i % PALETTE.len()]
}

/// Horizontal bars: (label, value, color, text).
fn hbars(title: &str, rows: &[(String, f64, &str, String)]) -> String {
    let max = rows.iter().map(|r| r.1).fold(0.0, f64::max).max(1e-12);
    let row_h = 26.0;
    let label_w = 300.0;
    let bar_w = WIDTH - label_w - 140.0;
    let h = 40.0 + row_h * rows.len() as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<figure><figcaption>{}</figcaption><svg role="img" width="{WIDTH}" height="{h}" viewBox="0 0 {WIDTH} {h}" xmlns="http://www.w3.org/2000/svg">"#,
        esc(title)
    );
    for (i, (label, v, color, text)) in rows.iter().enumerate() {
        let y = 20.0 + row_h * i as f64;
        let w = (v / max * bar_w).max(if *v > 0.0 { 1.0 } else { 0.0 });
        let short: String = label.chars().take(46).collect();
        let _ = write!(
            s,
            r#"<text x="{x}" y="{ty}" text-anchor="end" class="l">{}</text><rect x="{label_w}" y="{y}" width="{w:.1}" height="18" fill="{color}" rx="2"><title>{}</title></rect><text x="{tx:.1}" y="{ty}" class="v">{}</text>"#,
            esc(&short),
            esc(label),
            esc(text),
            x = label_w - 8.0,
            ty = y + 13.0,
            tx = label_w + w + 6.0,
        );
    }
    s.push_str("</svg></figure>");
    s
}

fn tier_chart(r: &Report, tiers: &[String]) -> String {
    let rows: Vec<(String, f64, &str, String)> = r
        .by_tier
        .iter()
        .map(|t| {
            (
                format!("{} · {}", t.tier, t.model),
                t.spend_usd.map_or(0.0, f),
                tier_color(tiers, &t.tier),
                t.spend_usd.map_or_else(
                    || "unpriced".to_string(),
                    |s| format!("{} ({:.1}%)", usd(s), t.spend_share_pct),
                ),
            )
        })
        .collect();
    hbars("Spend by tier and model", &rows)
}

fn category_tier_chart(r: &Report, tiers: &[String]) -> String {
    let mut cats: Vec<&str> = Vec::new();
    for c in &r.category_by_tier {
        if !cats.contains(&c.category.as_str()) {
            cats.push(&c.category);
        }
    }
    let totals: Vec<f64> = cats
        .iter()
        .map(|c| {
            r.category_by_tier
                .iter()
                .filter(|x| x.category == *c)
                .map(|x| f(x.spend_usd))
                .sum()
        })
        .collect();
    let max = totals.iter().copied().fold(0.0, f64::max).max(1e-12);
    let row_h = 26.0;
    let label_w = 140.0;
    let bar_w = WIDTH - label_w - 120.0;
    let h = 60.0 + row_h * cats.len() as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<figure><figcaption>Spend by category × tier (served tier)</figcaption><svg role="img" width="{WIDTH}" height="{h}" viewBox="0 0 {WIDTH} {h}" xmlns="http://www.w3.org/2000/svg">"#
    );
    for (i, c) in cats.iter().enumerate() {
        let y = 10.0 + row_h * i as f64;
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end" class="l">{}</text>"#,
            label_w - 8.0,
            y + 13.0,
            esc(c)
        );
        let mut x = label_w;
        for tier in tiers {
            let Some(cell) = r
                .category_by_tier
                .iter()
                .find(|z| z.category == *c && &z.tier == tier)
            else {
                continue;
            };
            let w = f(cell.spend_usd) / max * bar_w;
            let _ = write!(
                s,
                r#"<rect x="{x:.1}" y="{y}" width="{w:.1}" height="18" fill="{}"><title>{} · {}: {} ({} calls)</title></rect>"#,
                tier_color(tiers, tier),
                esc(c),
                esc(tier),
                usd(cell.spend_usd),
                num(cell.requests)
            );
            x += w;
        }
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{}" class="v">{}</text>"#,
            x + 6.0,
            y + 13.0,
            usd(Decimal::from_f64_retain(totals[i]).unwrap_or_default())
        );
    }
    // legend
    let ly = 20.0 + row_h * cats.len() as f64;
    let mut lx = label_w;
    for tier in tiers {
        let _ = write!(
            s,
            r#"<rect x="{lx}" y="{ly}" width="12" height="12" fill="{}"/><text x="{}" y="{}" class="l">{}</text>"#,
            tier_color(tiers, tier),
            lx + 16.0,
            ly + 10.0,
            esc(tier)
        );
        lx += 30.0 + 8.0 * tier.len() as f64;
    }
    s.push_str("</svg></figure>");
    s
}

fn waterfall_chart(r: &Report) -> String {
    let w = &r.what_if;
    let base = f(w.baseline_usd).max(1e-12);
    let mut bars: Vec<(String, f64, f64, &str, String)> = vec![(
        "baseline".to_string(),
        0.0,
        f(w.baseline_usd),
        "#5a6a7a",
        usd(w.baseline_usd),
    )];
    let mut level = f(w.baseline_usd);
    for s in &w.steps {
        let after = f(s.after_usd);
        let (lo, hi, color) = if after <= level {
            (after, level, "#27a17a")
        } else {
            (level, after, "#d9534f")
        };
        bars.push((
            s.step.clone(),
            lo,
            hi,
            color,
            format!("−{}", usd(s.saving_usd)),
        ));
        level = after;
    }
    bars.push((
        "after all".to_string(),
        0.0,
        f(w.after_tool_search_usd),
        "#2f6fdf",
        format!("{} (−{:.1}%)", usd(w.after_tool_search_usd), w.savings_pct),
    ));
    // The spend level after each bar, for the dashed connectors.
    let mut levels = vec![f(w.baseline_usd)];
    levels.extend(w.steps.iter().map(|s| f(s.after_usd)));
    levels.push(f(w.after_tool_search_usd));
    let h = 300.0;
    let plot_h = 220.0;
    let top = 30.0;
    let col = WIDTH / bars.len() as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<figure><figcaption>Savings waterfall (each step on top of the previous)</figcaption><svg role="img" width="{WIDTH}" height="{h}" viewBox="0 0 {WIDTH} {h}" xmlns="http://www.w3.org/2000/svg">"#
    );
    let y_of = |v: f64| top + plot_h - v / base * plot_h;
    let mut prev_level: Option<f64> = None;
    for (i, (label, lo, hi, color, text)) in bars.iter().enumerate() {
        let x = col * i as f64 + col * 0.18;
        let bw = col * 0.64;
        let y = y_of(*hi);
        let bh = (y_of(*lo) - y).max(1.0);
        if let Some(pl) = prev_level {
            let _ = write!(
                s,
                r##"<line x1="{:.1}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#999" stroke-dasharray="3,3"/>"##,
                x - col * 0.36,
                x,
                y_of(pl),
                y_of(pl)
            );
        }
        let _ = write!(
            s,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{bw:.1}" height="{bh:.1}" fill="{color}" rx="2"><title>{}: {}</title></rect><text x="{cx:.1}" y="{ty:.1}" text-anchor="middle" class="v">{}</text><text x="{cx:.1}" y="{ly:.1}" text-anchor="middle" class="l">{}</text>"#,
            esc(label),
            esc(text),
            esc(text),
            esc(label),
            cx = x + bw / 2.0,
            ty = y - 6.0,
            ly = top + plot_h + 20.0,
        );
        prev_level = Some(levels[i]);
    }
    s.push_str("</svg></figure>");
    s
}

fn shapes_chart(r: &Report) -> String {
    let rows: Vec<(String, f64, &str, String)> = r
        .top_shapes
        .iter()
        .map(|s| {
            (
                s.shape.clone(),
                f(s.spend_usd),
                "#8e5bd6",
                format!("{} · {} calls", usd(s.spend_usd), num(s.requests)),
            )
        })
        .collect();
    hbars("Top request shapes by spend", &rows)
}

fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut s = String::from("<table><thead><tr>");
    for h in header {
        let _ = write!(s, "<th>{}</th>", esc(h));
    }
    s.push_str("</tr></thead><tbody>");
    for r in rows {
        s.push_str("<tr>");
        for c in r {
            let _ = write!(s, "<td>{}</td>", esc(&c));
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    s
}

/// The page.
pub fn render(r: &Report) -> String {
    let mut tiers: Vec<String> = Vec::new();
    for row in &r.by_tier {
        if !tiers.contains(&row.tier) {
            tiers.push(row.tier.clone());
        }
    }
    let w = &r.what_if;
    let h = &r.headline;
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>tierwise audit</h1><p class=\"sub\">{} calls · {} spent{}</p>",
        num(r.requests),
        usd(r.spend_usd),
        match (&r.period.first, &r.period.last) {
            (Some(a), Some(b)) => format!(" · {} → {}", esc(a), esc(b)),
            _ => String::new(),
        }
    );
    let _ = write!(
        body,
        "<div class=\"cards\"><div class=\"card\"><b>{}</b><span>could be saved ({:.1}%)</span></div><div class=\"card\"><b>{:.1}%</b><span>of {} spend goes to calls the policy sends lower ({})</span></div><div class=\"card\"><b>{:.1}% → {:.1}%</b><span>cached share of input, logged → achievable with static content first</span></div></div>",
        usd(w.savings_usd),
        w.savings_pct,
        h.routable_lower_pct,
        esc(&h.flagship_tier),
        usd(h.routable_lower_usd),
        w.cache.actual_cached_share * 100.0,
        w.cache.static_first_cached_share * 100.0,
    );
    body.push_str(&waterfall_chart(r));
    body.push_str(&table(
        &["step", "spend after", "saves", "alone saves", "alone %"],
        std::iter::once(vec![
            "baseline (as logged)".to_string(),
            usd(w.baseline_usd),
            String::new(),
            String::new(),
            String::new(),
        ])
        .chain(w.steps.iter().map(|s| {
            vec![
                s.step.clone(),
                usd(s.after_usd),
                usd(s.saving_usd),
                usd(s.alone_saving_usd),
                format!("{:.1}%", s.alone_saving_pct),
            ]
        }))
        .collect(),
    ));
    body.push_str(&tier_chart(r, &tiers));
    body.push_str(&table(
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
        r.by_tier
            .iter()
            .map(|t| {
                vec![
                    t.tier.clone(),
                    t.model.clone(),
                    num(t.requests),
                    num(t.input_tokens),
                    num(t.cached_tokens),
                    num(t.output_tokens),
                    t.spend_usd.map_or_else(|| "unpriced".to_string(), usd),
                    format!("{:.1}%", t.spend_share_pct),
                ]
            })
            .collect(),
    ));
    body.push_str(&category_tier_chart(r, &tiers));
    body.push_str(&table(
        &["category", "calls", "spend", "share", "policy sends to"],
        r.by_category
            .iter()
            .map(|c| {
                vec![
                    c.category.clone(),
                    num(c.requests),
                    usd(c.spend_usd),
                    format!("{:.1}%", c.spend_share_pct),
                    c.routed_to
                        .iter()
                        .map(|(t, n)| format!("{t} {}", num(*n)))
                        .collect::<Vec<_>>()
                        .join(", "),
                ]
            })
            .collect(),
    ));
    if !r.top_shapes.is_empty() {
        body.push_str(&shapes_chart(r));
        body.push_str(&table(
            &[
                "shape",
                "calls",
                "spend",
                "category",
                "policy picks",
                "cacheable prefix",
            ],
            r.top_shapes
                .iter()
                .map(|s| {
                    vec![
                        s.shape.clone(),
                        num(s.requests),
                        usd(s.spend_usd),
                        s.category.clone(),
                        s.policy_tier.clone(),
                        format!("{} tok", num(u64::from(s.cacheable_prefix_tokens))),
                    ]
                })
                .collect(),
        ));
    }
    if !r.unpriced_models.is_empty() {
        body.push_str("<h2>Unpriced models</h2>");
        body.push_str(&table(
            &["model", "calls", "input tok", "output tok"],
            r.unpriced_models
                .iter()
                .map(|u| {
                    vec![
                        u.model.clone(),
                        num(u.requests),
                        num(u.input_tokens),
                        num(u.output_tokens),
                    ]
                })
                .collect(),
        ));
    }
    body.push_str("<h2>Notes and assumptions</h2><ul>");
    for n in r.notes.iter().chain(w.assumptions.iter()) {
        let _ = write!(body, "<li>{}</li>", esc(n));
    }
    body.push_str("</ul>");
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tierwise audit</title>
<style>
body{{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:920px;color:#1d2733;background:#fff}}
h1{{margin:0 0 4px}} .sub{{color:#5a6a7a;margin:0 0 16px}}
figure{{margin:24px 0 8px}} figcaption{{font-weight:600;margin-bottom:6px}}
svg text.l{{font-size:12px;fill:#1d2733}} svg text.v{{font-size:12px;fill:#5a6a7a}}
table{{border-collapse:collapse;width:100%;font-size:13px;margin:6px 0 18px}}
th,td{{border-bottom:1px solid #e3e8ee;padding:4px 8px;text-align:right}}
th:first-child,td:first-child{{text-align:left}} th{{background:#f5f7fa}}
.cards{{display:flex;gap:12px}} .card{{flex:1;border:1px solid #e3e8ee;border-radius:8px;padding:12px}}
.card b{{display:block;font-size:22px}} .card span{{color:#5a6a7a;font-size:13px}}
li{{font-size:13px;margin:4px 0}}
</style></head><body>
{body}
</body></html>
"#
    )
}
