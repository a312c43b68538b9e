//! `tierwise quality --html FILE`: one self-contained page (inline CSS and SVG, no script, no
//! network — the audit report's approach) with each pair's interval against the bar and the
//! verdict table. [`intervals_svg`] and [`verdict_table`] are shared with the gateway's `/ui`.

use std::fmt::Write as _;

use crate::report::{PairVerdict, QualityReport, SAFE};

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const WIDTH: f64 = 880.0;
/// The ratio axis shown: [AXIS_MIN, AXIS_MAX].
const AXIS_MIN: f64 = 0.5;
const AXIS_MAX: f64 = 1.2;

fn label(p: &PairVerdict) -> String {
    format!("{}: {} → {}", p.category, p.served_tier, p.candidate_tier)
}

fn color(p: &PairVerdict) -> &'static str {
    if p.verdict == SAFE {
        "#27a17a"
    } else if p.verdict.starts_with("need ") {
        "#e5a823"
    } else {
        "#d9534f"
    }
}

/// Each pair's interval [lower, upper] and estimate on the ratio axis, the bar as a line.
pub fn intervals_svg(r: &QualityReport) -> String {
    let row_h = 26.0;
    let label_w = 300.0;
    let plot_w = WIDTH - label_w - 30.0;
    let h = 50.0 + row_h * r.pairs.len() as f64;
    let x = |v: f64| {
        label_w + (v.clamp(AXIS_MIN, AXIS_MAX) - AXIS_MIN) / (AXIS_MAX - AXIS_MIN) * plot_w
    };
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<figure><figcaption>Quality ratio of the candidate (interval at confidence {:.0}%, dot: estimate; line: bar {})</figcaption><svg id="intervals" role="img" width="{WIDTH}" height="{h}" viewBox="0 0 {WIDTH} {h}" xmlns="http://www.w3.org/2000/svg">"#,
        r.confidence * 100.0,
        r.bar
    );
    for (i, p) in r.pairs.iter().enumerate() {
        let y = 20.0 + row_h * i as f64;
        let lo = x(p.lower);
        let hi = x(p.upper.unwrap_or(AXIS_MAX));
        let _ = write!(
            s,
            r#"<text x="{lx}" y="{ty}" text-anchor="end" class="l">{}</text><line x1="{lo:.1}" x2="{hi:.1}" y1="{cy}" y2="{cy}" stroke="{c}" stroke-width="6" stroke-linecap="round"><title>{} [{:.3}, {}]</title></line>"#,
            esc(&label(p)),
            esc(&label(p)),
            p.lower,
            p.upper.map_or("∞".to_string(), |u| format!("{u:.3}")),
            lx = label_w - 8.0,
            ty = y + 13.0,
            cy = y + 9.0,
            c = color(p),
        );
        if let Some(e) = p.estimate {
            let _ = write!(
                s,
                r##"<circle cx="{:.1}" cy="{}" r="4" fill="#222"/>"##,
                x(e),
                y + 9.0
            );
        }
    }
    let bx = x(r.bar);
    let _ = write!(
        s,
        r##"<line x1="{bx:.1}" x2="{bx:.1}" y1="10" y2="{}" stroke="#2f6fdf" stroke-dasharray="4 3"/>"##,
        h - 25.0
    );
    for t in [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2] {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle" class="v">{t:.1}</text>"#,
            x(t),
            h - 8.0
        );
    }
    s.push_str("</svg></figure>");
    s
}

fn num(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), |v| format!("{v:.3}"))
}

/// The verdict table (`id="verdicts"`).
pub fn verdict_table(r: &QualityReport) -> String {
    let mut s = String::from(
        "<table id=\"verdicts\"><thead><tr><th>category</th><th>served → candidate</th><th>n</th>\
         <th>wins</th><th>ties</th><th>losses</th><th>unjudged</th><th>failed</th>\
         <th>estimate</th><th>lower</th><th>upper</th><th>shadow $</th><th>judge $</th>\
         <th>verdict</th></tr></thead><tbody>",
    );
    for p in &r.pairs {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{} → {}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.3}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td style=\"color:{}\">{}</td></tr>",
            esc(&p.category),
            esc(&p.served_tier),
            esc(&p.candidate_tier),
            p.n,
            p.wins,
            p.ties,
            p.losses,
            p.unjudged,
            p.failed,
            num(p.estimate),
            p.lower,
            num(p.upper),
            p.shadow_usd.round_dp(6),
            p.judge_usd.round_dp(6),
            color(p),
            esc(&p.verdict),
        );
    }
    s.push_str("</tbody></table>");
    s
}

/// Inline CSS shared by the report page and `/ui`.
pub const CSS: &str = "body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:960px}\
table{border-collapse:collapse;margin:12px 0;font-size:13px}th,td{border-bottom:1px solid #ddd;\
padding:4px 8px;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}\
figure{margin:16px 0}figcaption{font-weight:600;margin-bottom:4px}.l{font-size:12px}\
.v{font-size:11px;fill:#555}.note{color:#8a5a00}";

/// The whole page.
pub fn render(r: &QualityReport) -> String {
    let mut s = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>tierwise quality</title>\
         <style>{CSS}</style></head><body><h1>Quality verdicts from shadow tests</h1>\
         <p>Bar {} at confidence {}: shadow spend ${}, judge spend ${}, unjudged {}, failed {}, \
         capped {}.</p>",
        r.bar,
        r.confidence,
        r.shadow_usd.round_dp(6),
        r.judge_usd.round_dp(6),
        r.unjudged,
        r.failed,
        r.capped
    );
    for n in &r.notes {
        let _ = write!(s, "<p class=\"note\">{}</p>", esc(n));
    }
    s.push_str(&intervals_svg(r));
    s.push_str(&verdict_table(r));
    let _ = write!(
        s,
        "<p><small>Method: {}</small></p></body></html>",
        esc(&r.method)
    );
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use crate::report::{ReportOptions, report};

    use super::*;

    #[test]
    fn the_page_is_self_contained_and_names_every_pair() {
        let r = report(
            &[],
            ReportOptions {
                bar: 0.95,
                confidence: 0.9,
            },
        );
        let page = render(&r);
        assert!(page.contains("id=\"verdicts\""));
        assert!(!page.contains("<script"));
        assert!(page.contains("no shadow tests"));
    }
}
