//! The evaluation report: router curve and metrics beside the baselines (each model alone,
//! random routing, the oracle), as JSON, a text table and a self-contained HTML/SVG chart.

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::data::Malformed;
use crate::ladder::{Ladder, Point, downsample, oracle_estimates, oracle_point, sweep};
use crate::metrics::{Metrics, Reference, metrics, random_curve, random_metrics};

/// Points kept in the report's curves.
pub const CURVE_POINTS: usize = 101;

#[derive(Debug, Clone, Serialize)]
pub struct CurvePoint {
    pub point: f64,
    pub quality: f64,
    #[serde(with = "rust_decimal::serde::str")]
    pub cost_usd: Decimal,
    /// Share of rows per model, ladder order.
    pub share: Map<String, Value>,
}

impl CurvePoint {
    pub fn new(p: &Point, models: &[String]) -> CurvePoint {
        let share = models
            .iter()
            .zip(&p.share)
            .map(|(m, s)| (m.clone(), Value::from(round6(*s))))
            .collect();
        CurvePoint {
            point: round6(p.point),
            quality: round6(p.quality),
            cost_usd: p.cost_usd.round_dp(8).normalize(),
            share,
        }
    }

    pub fn strong_share(&self) -> f64 {
        self.share
            .values()
            .next_back()
            .and_then(Value::as_f64)
            .unwrap_or(0.0)
    }
}

fn round6(x: f64) -> f64 {
    if x.is_finite() {
        (x * 1e6).round() / 1e6
    } else {
        0.0
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub model: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub input_per_mtok: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub output_per_mtok: Decimal,
}

#[derive(Debug, Clone, Serialize)]
pub struct Alone {
    pub model: String,
    pub quality: f64,
    #[serde(with = "rust_decimal::serde::str")]
    pub cost_usd: Decimal,
    /// Performance gap recovered by this model alone.
    pub pgr: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    #[serde(flatten)]
    pub metrics: Metrics,
    pub curve: Vec<CurvePoint>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OracleBaseline {
    /// The oracle's point: each row on the cheapest model with its best score.
    pub quality: f64,
    #[serde(with = "rust_decimal::serde::str")]
    pub cost_usd: Decimal,
    pub share: Map<String, Value>,
    #[serde(flatten)]
    pub metrics: Metrics,
    pub curve: Vec<CurvePoint>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Baselines {
    pub models: Vec<Alone>,
    pub random: Baseline,
    pub oracle: OracleBaseline,
}

/// How the router was obtained.
#[derive(Debug, Clone, Serialize)]
pub struct RouterInfo {
    /// `default`, a file path, `oracle`, `random`, or `cv` (trained per fold).
    pub name: String,
    /// Feature groups of the model used (learned routers).
    pub features: Option<String>,
    /// `trained` (the ladder's models were in its training data) or `positional`.
    pub abilities: Option<String>,
    /// Folds, with `--cv`.
    pub cv: Option<usize>,
    /// The router's training data includes these rows (in-sample numbers).
    pub trained_on_these_rows: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub data: String,
    pub files: Vec<String>,
    pub rows: usize,
    pub skipped: usize,
    pub malformed: usize,
    /// The first malformed lines, with file and line number.
    pub malformed_lines: Vec<Malformed>,
    pub models: Vec<ModelInfo>,
    pub router: RouterInfo,
    pub curve: Vec<CurvePoint>,
    pub apgr: Option<f64>,
    pub cpt50: Option<f64>,
    pub cpt80: Option<f64>,
    pub savings_at_95: Option<f64>,
    /// The operating point behind `savings_at_95`.
    pub savings_point: Option<CurvePoint>,
    pub baselines: Baselines,
    pub notes: Vec<String>,
}

/// Reference points of the ladder (cheapest and strongest model alone).
pub fn reference(ladder: &Ladder) -> Reference {
    let (wq, wc) = ladder.alone(0);
    let (sq, sc) = ladder.alone(ladder.top());
    Reference {
        weak_quality: wq,
        strong_quality: sq,
        weak_cost: wc,
        strong_cost: sc,
    }
}

/// The report's curve: `points` downsampled to [`CURVE_POINTS`], keeping the savings point.
pub fn curve(points: &[Point], m: &Metrics, models: &[String]) -> Vec<CurvePoint> {
    let keep: Vec<usize> = m.savings_point.into_iter().collect();
    downsample(points, CURVE_POINTS, &keep)
        .iter()
        .map(|p| CurvePoint::new(p, models))
        .collect()
}

/// Baselines of a ladder.
pub fn baselines(ladder: &Ladder) -> Baselines {
    let r = reference(ladder);
    let models = (0..ladder.tiers())
        .map(|k| {
            let (q, c) = ladder.alone(k);
            Alone {
                model: ladder.models[k].clone(),
                quality: round6(q),
                cost_usd: c.round_dp(8).normalize(),
                pgr: r.pgr(q).map(round6),
            }
        })
        .collect();
    let rp = random_curve(&r, ladder.tiers(), CURVE_POINTS - 1);
    let random = Baseline {
        metrics: random_metrics(&r),
        curve: rp
            .iter()
            .map(|p| CurvePoint::new(p, &ladder.models))
            .collect(),
    };
    let op = sweep(ladder, &oracle_estimates(ladder));
    let om = metrics(&op, &r);
    let point = CurvePoint::new(&oracle_point(ladder), &ladder.models);
    let oracle = OracleBaseline {
        quality: point.quality,
        cost_usd: point.cost_usd,
        share: point.share.clone(),
        curve: curve(&op, &om, &ladder.models),
        metrics: om,
    };
    Baselines {
        models,
        random,
        oracle,
    }
}

/// The full report for a router's per-row estimates on `ladder`.
pub fn evaluate(
    ladder: &Ladder,
    estimates: &[Vec<f64>],
    router: RouterInfo,
) -> (EvalReport, Vec<Point>) {
    let r = reference(ladder);
    let points = sweep(ladder, estimates);
    let m = metrics(&points, &r);
    let savings_point = m
        .savings_point
        .and_then(|i| points.get(i))
        .map(|p| CurvePoint::new(p, &ladder.models));
    let report = EvalReport {
        data: String::new(),
        files: Vec::new(),
        rows: ladder.rows.len(),
        skipped: ladder.skipped,
        malformed: 0,
        malformed_lines: Vec::new(),
        models: Vec::new(),
        router,
        curve: curve(&points, &m, &ladder.models),
        apgr: m.apgr.map(round6),
        cpt50: m.cpt50.map(round6),
        cpt80: m.cpt80.map(round6),
        savings_at_95: m.savings_at_95.map(round6),
        savings_point,
        baselines: baselines(ladder),
        notes: Vec::new(),
    };
    (report, points)
}

fn pct(x: Option<f64>) -> String {
    x.map_or("n/a".into(), |v| format!("{:.1}%", v * 100.0))
}

fn num(x: Option<f64>) -> String {
    x.map_or("n/a".into(), |v| format!("{v:.3}"))
}

/// A plain-text summary (the CLI renders it; no colors here).
pub fn text(rep: &EvalReport) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "data {} — {} rows evaluated, {} skipped (missing a ladder model), {} malformed\n",
        rep.data, rep.rows, rep.skipped, rep.malformed
    ));
    s.push_str(&format!(
        "ladder (cheapest first): {}\n",
        rep.models
            .iter()
            .map(|m| m.model.as_str())
            .collect::<Vec<_>>()
            .join(" → ")
    ));
    let r = &rep.router;
    s.push_str(&format!(
        "router: {}{}{}{}\n\n",
        r.name,
        r.features
            .as_ref()
            .map(|f| format!(" [{f}]"))
            .unwrap_or_default(),
        r.abilities
            .as_ref()
            .map(|a| format!(" abilities={a}"))
            .unwrap_or_default(),
        r.cv.map(|k| format!(" ({k}-fold CV)")).unwrap_or_default()
    ));
    s.push_str(&format!(
        "{:<34} {:>8} {:>8} {:>8} {:>13}\n",
        "", "APGR", "CPT50", "CPT80", "savings@95"
    ));
    let line = |name: &str, m: (Option<f64>, Option<f64>, Option<f64>, Option<f64>)| {
        format!(
            "{:<34} {:>8} {:>8} {:>8} {:>13}\n",
            name,
            num(m.0),
            pct(m.1),
            pct(m.2),
            pct(m.3)
        )
    };
    s.push_str(&line(
        "router",
        (rep.apgr, rep.cpt50, rep.cpt80, rep.savings_at_95),
    ));
    let b = &rep.baselines;
    s.push_str(&line(
        "random",
        (
            b.random.metrics.apgr,
            b.random.metrics.cpt50,
            b.random.metrics.cpt80,
            b.random.metrics.savings_at_95,
        ),
    ));
    s.push_str(&line(
        "oracle",
        (
            b.oracle.metrics.apgr,
            b.oracle.metrics.cpt50,
            b.oracle.metrics.cpt80,
            b.oracle.metrics.savings_at_95,
        ),
    ));
    s.push_str(&format!(
        "\n{:<34} {:>8} {:>14} {:>8}\n",
        "model alone", "quality", "cost USD", "PGR"
    ));
    for a in &b.models {
        s.push_str(&format!(
            "{:<34} {:>8.4} {:>14} {:>8}\n",
            a.model,
            a.quality,
            a.cost_usd.round_dp(4),
            num(a.pgr)
        ));
    }
    s.push_str(&format!(
        "{:<34} {:>8.4} {:>14} {:>8}\n",
        "oracle (cheapest best per row)",
        b.oracle.quality,
        b.oracle.cost_usd.round_dp(4),
        ""
    ));
    if let Some(p) = &rep.savings_point {
        s.push_str(&format!(
            "\nat savings@95: quality {:.4}, cost {} USD, strong share {:.1}%\n",
            p.quality,
            p.cost_usd.round_dp(4),
            p.strong_share() * 100.0
        ));
    }
    for n in &rep.notes {
        s.push_str(&format!("note: {n}\n"));
    }
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

struct Chart {
    w: f64,
    h: f64,
    pad: f64,
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

impl Chart {
    fn x(&self, v: f64) -> f64 {
        self.pad + (v - self.x0) / (self.x1 - self.x0).max(1e-12) * (self.w - 2.0 * self.pad)
    }
    fn y(&self, v: f64) -> f64 {
        self.h
            - self.pad
            - (v - self.y0) / (self.y1 - self.y0).max(1e-12) * (self.h - 2.0 * self.pad)
    }
    fn axes(&self, xl: &str, yl: &str, out: &mut String) {
        let (l, r, t, b) = (self.pad, self.w - self.pad, self.pad, self.h - self.pad);
        out.push_str(&format!(
            r##"<rect x="{l}" y="{t}" width="{}" height="{}" fill="none" stroke="#999"/>"##,
            r - l,
            b - t
        ));
        for i in 0..=4 {
            let fx = self.x0 + (self.x1 - self.x0) * i as f64 / 4.0;
            let fy = self.y0 + (self.y1 - self.y0) * i as f64 / 4.0;
            out.push_str(&format!(
                r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle" fill="#444">{}</text>"##,
                self.x(fx),
                b + 16.0,
                fmt_tick(fx)
            ));
            out.push_str(&format!(
                r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end" fill="#444">{}</text>"##,
                l - 6.0,
                self.y(fy) + 4.0,
                fmt_tick(fy)
            ));
        }
        out.push_str(&format!(
            r##"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">{}</text>"##,
            (l + r) / 2.0,
            self.h - 8.0,
            esc(xl)
        ));
        out.push_str(&format!(
            r##"<text x="14" y="{:.1}" font-size="12" text-anchor="middle" transform="rotate(-90 14 {:.1})">{}</text>"##,
            (t + b) / 2.0,
            (t + b) / 2.0,
            esc(yl)
        ));
    }
    fn line(&self, pts: &[(f64, f64)], color: &str, dash: bool, out: &mut String) {
        let d: Vec<String> = pts
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", self.x(*x), self.y(*y)))
            .collect();
        out.push_str(&format!(
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" {} points="{}"/>"#,
            if dash {
                r#"stroke-dasharray="5,4""#
            } else {
                ""
            },
            d.join(" ")
        ));
    }
    fn dot(&self, x: f64, y: f64, color: &str, label: &str, out: &mut String) {
        out.push_str(&format!(
            r##"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{color}"/><text x="{:.1}" y="{:.1}" font-size="10" fill="#333">{}</text>"##,
            self.x(x),
            self.y(y),
            self.x(x) + 6.0,
            self.y(y) - 6.0,
            esc(label)
        ));
    }
}

fn fmt_tick(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// SVG charts: quality vs cost, and PGR vs strong-model call share.
pub fn svg(rep: &EvalReport) -> String {
    let cost = |p: &CurvePoint| p.cost_usd.to_f64().unwrap_or(0.0);
    let b = &rep.baselines;
    let mut all_c: Vec<f64> = rep.curve.iter().map(cost).collect();
    all_c.extend(b.models.iter().map(|m| m.cost_usd.to_f64().unwrap_or(0.0)));
    let mut all_q: Vec<f64> = rep.curve.iter().map(|p| p.quality).collect();
    all_q.extend(b.models.iter().map(|m| m.quality));
    all_q.push(b.oracle.quality);
    let maxc = all_c.iter().copied().fold(0.0, f64::max).max(1e-9);
    let (minq, maxq) = all_q
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, z), &q| {
            (a.min(q), z.max(q))
        });
    let ch = Chart {
        w: 560.0,
        h: 380.0,
        pad: 64.0,
        x0: 0.0,
        x1: maxc * 1.05,
        y0: (minq - 0.02).max(0.0),
        y1: (maxq + 0.02).min(1.0),
    };
    let mut s = String::from(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="1160" height="400" font-family="sans-serif">"#,
    );
    s.push_str(r#"<g transform="translate(0,10)">"#);
    ch.axes("total cost, USD", "quality (mean score)", &mut s);
    ch.line(
        &b.random
            .curve
            .iter()
            .map(|p| (cost(p), p.quality))
            .collect::<Vec<_>>(),
        "#999",
        true,
        &mut s,
    );
    ch.line(
        &b.oracle
            .curve
            .iter()
            .map(|p| (cost(p), p.quality))
            .collect::<Vec<_>>(),
        "#2a9d8f",
        true,
        &mut s,
    );
    ch.line(
        &rep.curve
            .iter()
            .map(|p| (cost(p), p.quality))
            .collect::<Vec<_>>(),
        "#e76f51",
        false,
        &mut s,
    );
    for m in &b.models {
        ch.dot(
            m.cost_usd.to_f64().unwrap_or(0.0),
            m.quality,
            "#264653",
            &m.model,
            &mut s,
        );
    }
    ch.dot(
        b.oracle.cost_usd.to_f64().unwrap_or(0.0),
        b.oracle.quality,
        "#2a9d8f",
        "oracle",
        &mut s,
    );
    s.push_str("</g>");
    // PGR vs strong share
    let r = reference_from(rep);
    let pg = |p: &CurvePoint| {
        r.map_or(0.0, |(w, st)| {
            if st - w > 1e-12 {
                (p.quality - w) / (st - w)
            } else {
                0.0
            }
        })
    };
    let mut ys: Vec<f64> = rep.curve.iter().map(pg).collect();
    ys.extend(b.oracle.curve.iter().map(pg));
    let (lo, hi) = ys
        .iter()
        .fold((0.0f64, 1.0f64), |(a, z), &v| (a.min(v), z.max(v)));
    let ch2 = Chart {
        w: 560.0,
        h: 380.0,
        pad: 64.0,
        x0: 0.0,
        x1: 1.0,
        y0: lo,
        y1: hi,
    };
    s.push_str(r#"<g transform="translate(590,10)">"#);
    ch2.axes(
        "share of calls to the strongest model",
        "performance gap recovered",
        &mut s,
    );
    ch2.line(&[(0.0, 0.0), (1.0, 1.0)], "#999", true, &mut s);
    ch2.line(
        &b.oracle
            .curve
            .iter()
            .map(|p| (p.strong_share(), pg(p)))
            .collect::<Vec<_>>(),
        "#2a9d8f",
        true,
        &mut s,
    );
    ch2.line(
        &rep.curve
            .iter()
            .map(|p| (p.strong_share(), pg(p)))
            .collect::<Vec<_>>(),
        "#e76f51",
        false,
        &mut s,
    );
    let (lx, ly) = (ch2.w - ch2.pad - 70.0, ch2.h - ch2.pad - 50.0);
    s.push_str(&format!(
        r##"<text x="{lx}" y="{ly}" font-size="12" fill="#e76f51">router</text><text x="{lx}" y="{}" font-size="12" fill="#2a9d8f">oracle</text><text x="{lx}" y="{}" font-size="12" fill="#999">random</text>"##,
        ly + 16.0,
        ly + 32.0
    ));
    s.push_str("</g></svg>");
    s
}

fn reference_from(rep: &EvalReport) -> Option<(f64, f64)> {
    let w = rep.baselines.models.first()?.quality;
    let s = rep.baselines.models.last()?.quality;
    Some((w, s))
}

/// A self-contained HTML page: the charts and the metrics table.
pub fn html(rep: &EvalReport) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>tierwise eval — {}</title>\
         <style>body{{font-family:sans-serif;margin:24px}}pre{{background:#f6f6f6;padding:12px}}</style></head>\
         <body><h1>tierwise eval — {}</h1>{}<pre>{}</pre></body></html>\n",
        esc(&rep.data),
        esc(&rep.data),
        svg(rep),
        esc(&text(rep))
    )
}
