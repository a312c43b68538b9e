//! `tierwise quality [--store FILE]`: the gateway's shadow tests, per category × (served →
//! candidate tier), with their verdicts at the bar (`tierwise_quality::report`), as a table,
//! JSON or HTML. `tierwise quality plan --data DIR`: per category, the cheapest model proven
//! on a shadow sample to clear the quality bar (`tierwise_eval::quality_plan`), offline.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, Table};
use tierwise_eval::quality_plan::{self, QualityPlan, QualityPlanOptions};

use std::path::PathBuf;

use anyhow::Context;
use tierwise_quality::report::{QualityReport, ReportOptions};
use tierwise_store::{ShadowLog, TimeRange};

use crate::cli::{QualityPlanArgs, QualityReportArgs};
use crate::output::{self, Bar, Status};

/// The SQLite file `--store` names (default: the config's `log.path`); a URL is refused.
pub fn store_path(arg: Option<&str>, config: &tierwise_core::Config) -> anyhow::Result<PathBuf> {
    match arg {
        None => Ok(config.log.path.clone()),
        Some(s) if s.contains("://") => anyhow::bail!(
            "--store {s}: only SQLite files are supported (PostgreSQL stores are not yet)"
        ),
        Some(s) => Ok(PathBuf::from(s)),
    }
}

/// Bar and confidence: the flags, else the config's `[quality]`; checked.
pub fn bar_confidence(
    bar: Option<f64>,
    confidence: Option<f64>,
    config: &tierwise_core::Config,
) -> anyhow::Result<ReportOptions> {
    let bar = bar.unwrap_or(config.quality.bar);
    let confidence = confidence.unwrap_or(config.quality.confidence);
    if !(bar > 0.0 && bar <= 1.0) {
        anyhow::bail!("--bar {bar}: must be in (0, 1]");
    }
    if !(confidence > 0.0 && confidence < 1.0) {
        anyhow::bail!("--confidence {confidence}: must be in (0, 1)");
    }
    Ok(ReportOptions { bar, confidence })
}

/// The shadow rows of the store at `path` since `since` (RFC 3339).
pub fn shadow_rows(
    path: &std::path::Path,
    since: Option<&str>,
) -> anyhow::Result<Vec<tierwise_store::ShadowRow>> {
    if !path.is_file() {
        anyhow::bail!("no store at {}", path.display());
    }
    let since = since
        .map(|s| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .with_context(|| format!("--since {s}: not an RFC 3339 time"))
        })
        .transpose()?;
    let log = ShadowLog::open_read(path)?;
    Ok(log.rows(&TimeRange { since, until: None })?)
}

pub fn report(args: QualityReportArgs) -> anyhow::Result<Status> {
    let config = super::load_config(args.config.as_deref())?;
    let opts = bar_confidence(args.bar, args.confidence, &config)?;
    let path = store_path(args.store.as_deref(), &config)?;
    let rows = shadow_rows(&path, args.since.as_deref())?;
    let r = tierwise_quality::report::report(&rows, opts);
    if let Some(html) = &args.html {
        std::fs::write(html, tierwise_quality::html::render(&r))
            .with_context(|| format!("cannot write {}", html.display()))?;
        if !args.json {
            output::note(&format!("wrote {}", html.display()));
        }
    }
    if args.json {
        output::json(&r)?;
    } else {
        output::out(&report_text(&r));
    }
    Ok(Status::Success)
}

fn report_text(r: &QualityReport) -> String {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "category",
        "served → candidate",
        "n",
        "win/tie/loss",
        "unjudged",
        "failed",
        "ratio [lower, upper]",
        "shadow $",
        "judge $",
        "verdict",
    ]);
    let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
    for p in &r.pairs {
        t.add_row(vec![
            Cell::new(&p.category),
            Cell::new(format!("{} → {}", p.served_tier, p.candidate_tier)),
            right(p.n.to_string()),
            right(format!("{}/{}/{}", p.wins, p.ties, p.losses)),
            right(p.unjudged.to_string()),
            right(p.failed.to_string()),
            right(format!(
                "{} [{:.3}, {}]",
                num(p.estimate),
                p.lower,
                num(p.upper)
            )),
            right(p.shadow_usd.round_dp(6).to_string()),
            right(p.judge_usd.round_dp(6).to_string()),
            Cell::new(&p.verdict),
        ]);
    }
    let mut s = format!(
        "quality: shadow tests at bar {} with confidence {}\n{t}\n",
        r.bar, r.confidence
    );
    s.push_str(&format!(
        "spend: shadow ${}, judge ${}; unjudged {}, failed {}, capped {}\n",
        r.shadow_usd.round_dp(6),
        r.judge_usd.round_dp(6),
        r.unjudged,
        r.failed,
        r.capped
    ));
    s.push_str(&format!("method: {}\n", r.method));
    for n in &r.notes {
        s.push_str(&format!("note: {n}\n"));
    }
    s
}

pub fn plan(args: QualityPlanArgs) -> anyhow::Result<Status> {
    let opts = QualityPlanOptions {
        models: args.models.clone(),
        samples: args.samples,
        bar: args.bar,
        confidence: args.confidence,
        seed: args.seed,
    };
    // bad options fail before the data is read
    opts.validate()?;
    let ds = super::load_data(&args.data, args.split.as_deref(), args.json)?;
    let plan = quality_plan::plan(&ds, &opts, &Bar::new(args.json))?;
    if args.json {
        output::json(&plan)?;
    } else {
        output::out(&text(&plan));
    }
    Ok(Status::Success)
}

fn num(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), |v| format!("{v:.3}"))
}

fn text(p: &QualityPlan) -> String {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "category",
        "rows",
        "sampled",
        "strongest mean",
        "chosen",
        "tested: ratio [lower, upper] p",
        "realized ratio",
    ]);
    let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
    for c in &p.categories {
        let tested: Vec<String> = c
            .candidates
            .iter()
            .map(|k| {
                format!(
                    "{} {} [{:.3}, {}] p {:.4} {}",
                    k.model,
                    num(k.estimate),
                    k.lower,
                    num(k.upper),
                    k.p_value,
                    if k.passed { "pass" } else { "-" }
                )
            })
            .collect();
        t.add_row(vec![
            Cell::new(&c.category),
            right(c.rows.to_string()),
            right(c.sampled.to_string()),
            right(format!("{:.3}", c.strongest_mean)),
            Cell::new(if c.miss {
                format!("{} (miss)", c.model)
            } else {
                c.model.clone()
            }),
            Cell::new(tested.join("\n")),
            right(num(c.realized_ratio)),
        ]);
    }
    let r = &p.realized;
    let mut s = format!(
        "quality plan: {} — bar {} at confidence {}, {} samples per category (seed {}), \
         strongest {}\n{t}\n",
        p.data, p.bar, p.confidence, p.samples, p.seed, p.strongest
    );
    s.push_str(
        "ratio: sampled mean(candidate) / mean(strongest); lower, upper: one-sided bounds at \
         the confidence, per category\n",
    );
    s.push_str(&format!(
        "moved {} of {} categories (BH level {:.4}); shadow rows used {}\n",
        p.categories_moved, p.categories_tested, p.level, p.samples_used
    ));
    s.push_str(&format!(
        "realized on all {} rows ({} moved): quality ratio {:.4}, cost ratio {:.4} \
         (${} vs ${} always-strongest); misses (moved, ratio < bar over all rows): {}\n",
        r.rows,
        r.moved_rows,
        r.quality_ratio,
        r.cost_ratio,
        r.cost_usd.round_dp(4),
        r.strongest_cost_usd.round_dp(4),
        p.misses
    ));
    for n in &p.notes {
        s.push_str(&format!("note: {n}\n"));
    }
    s
}
