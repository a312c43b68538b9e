//! `tierwise quality plan --data DIR`: per category, the cheapest model proven on a shadow
//! sample to clear the quality bar (`tierwise_eval::quality_plan`), as a table or JSON.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, Table};
use tierwise_eval::quality_plan::{self, QualityPlan, QualityPlanOptions};

use crate::cli::QualityPlanArgs;
use crate::output::{self, Bar, Status};

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
