//! `tierwise prices show MODEL` and `tierwise prices update FILE`.
//!
//! `show` resolves a model the way the gateway and the audit price it: a configured tier, a
//! configured `[[models]]` entry, else the price database (`[pricing] database`).
//!
//! `update` validates a newer genai-prices v2 `data.json`, prints what changed against the
//! vendored copy, and rewrites it with its `source.toml` (the source tree's
//! `crates/tierwise-core/data/prices` unless `--data-dir`). The binary embeds the vendored copy
//! at build time, so the new prices ship with the next build; a config whose `[pricing]
//! database` names a data file reads it at start instead. Exit codes: 0 written (or no change),
//! 1 the file does not validate (nothing is written), 2 unreadable input or a bad argument.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{Value, json};
use tierwise_core::catalog::{FlatPrices, PriceOrigin};
use tierwise_core::prices::{
    self, ChangeKind, DATA_FILE, Date, PriceDb, PriceSource, SOURCE_FILE, VENDORED_DIR,
};
use tierwise_core::{Config, Prices};

use crate::cli::{PricesShowArgs, PricesUpdateArgs};
use crate::output::{self, Status};

pub fn show(args: PricesShowArgs) -> anyhow::Result<Status> {
    let config = super::load_config(args.config.as_deref())?;
    let config_name = args
        .config
        .as_deref()
        .map(|p| format!("config {}", p.display()))
        .unwrap_or_else(|| {
            if Path::new("tierwise.toml").is_file() {
                "config tierwise.toml".into()
            } else {
                "the embedded default config".into()
            }
        });
    let model = args.model.as_str();
    let Some(origin) = config.catalog.price_origin(model) else {
        return unpriced(
            &args,
            &config,
            "no configured tier or model, and no price database entry, matches it",
        );
    };
    let (what, source, checked, prices, extra) = match origin {
        PriceOrigin::Tier(_, t) => (
            format!("tier {:?} ({})", t.name, t.model),
            config_name.clone(),
            None,
            Some(&t.prices),
            db_shadow(&config, &t.model),
        ),
        PriceOrigin::Configured(m) => (
            format!("configured model {}", m.model),
            m.source
                .clone()
                .map_or_else(|| config_name.clone(), |s| format!("{s} ({config_name})")),
            None,
            Some(&m.prices),
            db_shadow(&config, &m.model),
        ),
        PriceOrigin::Database(db, m) => {
            let p = db.provider_of(m);
            let mut extra = Vec::new();
            if let Some(c) = &m.condition {
                extra.push(format!("price in force: {c} (resolved on {})", db.as_of()));
            }
            if let Some(w) = m.context_window {
                extra.push(format!("context window: {w} tokens"));
            }
            if let Some(u) = &p.pricing_url {
                extra.push(format!("pricing page: {u}"));
            }
            if !m.unbilled.is_empty() {
                extra.push(format!(
                    "also listed, not billed by tierwise: {}",
                    m.unbilled.join(", ")
                ));
            }
            if let Some(c) = &m.price_comments {
                extra.push(format!("note: {}", c.trim()));
            }
            (
                format!(
                    "{} {} (price database entry {}/{})",
                    p.name,
                    m.name.as_deref().unwrap_or(&m.id),
                    p.id,
                    m.id
                ),
                format!("genai-prices: {}", db.source().source),
                Some(db.source().checked.clone()),
                m.prices.as_ref(),
                extra,
            )
        }
    };
    let Some(prices) = prices else {
        return unpriced(&args, &config, &format!("{what} has no text-token price"));
    };
    if args.json {
        output::json(&json!({
            "model": model,
            "priced": true,
            "resolved": what,
            "source": source,
            "checked": checked,
            "prices": prices,
            "notes": extra,
        }))?;
    } else {
        let mut out = format!("{model}: {what}\nsource: {source}");
        if let Some(c) = &checked {
            out.push_str(&format!(", checked {c}"));
        }
        out.push('\n');
        out.push_str(&table(prices));
        for e in &extra {
            out.push_str(e);
            out.push('\n');
        }
        output::out(&out);
    }
    Ok(Status::Success)
}

fn unpriced(args: &PricesShowArgs, config: &Config, why: &str) -> anyhow::Result<Status> {
    let db = match config.catalog.price_db() {
        Some(db) => format!("price database checked {}", db.source().checked),
        None => "price database off".into(),
    };
    if args.json {
        output::json(
            &json!({"model": args.model, "priced": false, "reason": why, "database": db}),
        )?;
    } else {
        output::note(&format!("{}: unpriced: {why} ({db})", args.model));
    }
    Ok(Status::Problems)
}

/// What the database says about a model whose configured price takes precedence.
fn db_shadow(config: &Config, model: &str) -> Vec<String> {
    let Some(db) = config.catalog.price_db() else {
        return Vec::new();
    };
    match db.find(model) {
        Some(m) if m.prices.is_some() => vec![format!(
            "price database {}/{} (not used: configured prices take precedence): {}",
            db.provider_of(m).id,
            m.id,
            prices::describe(m.prices.as_ref())
        )],
        _ => Vec::new(),
    }
}

/// Rows per context band: `input tokens`, input, cached input, cache write, output.
fn table(p: &Prices) -> String {
    let mut rows = vec![[
        "USD per 1M tokens".to_string(),
        "input".into(),
        "cached input".into(),
        "cache write".into(),
        "output".into(),
    ]];
    let row = |band: String, f: &FlatPrices| {
        [
            band,
            f.input.normalize().to_string(),
            f.cached_input.normalize().to_string(),
            f.cache_write
                .map_or_else(|| "as input".to_string(), |w| w.normalize().to_string()),
            f.output.normalize().to_string(),
        ]
    };
    match p.context_tiers.first() {
        None => rows.push(row("any context".into(), &p.base())),
        Some(t) => rows.push(row(format!("input ≤ {}", t.above), &p.base())),
    }
    for t in &p.context_tiers {
        rows.push(row(format!("input > {}", t.above), &t.prices));
    }
    let widths: Vec<usize> = (0..5)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let pad = widths[i] - c.chars().count();
                if i == 0 {
                    format!("{c}{}", " ".repeat(pad))
                } else {
                    format!("{}{c}", " ".repeat(pad))
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

pub fn update(args: PricesUpdateArgs) -> anyhow::Result<Status> {
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(VENDORED_DIR));
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let checked = match &args.checked {
        Some(c) => {
            Date::parse(c).with_context(|| format!("--checked {c:?}: not a YYYY-MM-DD date"))?;
            c.clone()
        }
        None => Date::today().to_string(),
    };
    let source = PriceSource {
        source: args
            .source
            .clone()
            .unwrap_or_else(|| format!("{} (tierwise prices update)", args.file.display())),
        checked,
    };
    let today = Date::today();
    let new = match PriceDb::parse(&text, source.clone(), today) {
        Ok(db) => db,
        Err(e) => {
            let msg = format!(
                "{}: invalid: {e}; the price data in {} is unchanged",
                args.file.display(),
                dir.display()
            );
            if args.json {
                output::json(
                    &json!({"valid": false, "file": args.file.display().to_string(), "error": e.to_string()}),
                )?;
            }
            output::note(&msg);
            return Ok(Status::Problems);
        }
    };
    let data_path = dir.join(DATA_FILE);
    let old_text = std::fs::read_to_string(&data_path).ok();
    let old = old_text.as_deref().and_then(|t| {
        let s = std::fs::read_to_string(dir.join(SOURCE_FILE))
            .ok()
            .and_then(|s| PriceSource::parse(&s).ok())
            .unwrap_or_else(|| source.clone());
        PriceDb::parse(t, s, today).ok()
    });
    let changes = old.as_ref().map(|o| new.diff(o)).unwrap_or_default();
    let count = |k: ChangeKind| match (&old, k) {
        (None, ChangeKind::Added) => new.models().len(),
        _ => changes.iter().filter(|c| c.kind == k).count(),
    };
    let unchanged = old_text.as_deref() == Some(text.as_str());
    let write = !unchanged && !args.dry_run;
    if write {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        write_atomic(&data_path, &text)?;
        write_atomic(&dir.join(SOURCE_FILE), &source.to_toml())?;
    }
    if args.json {
        let list: Vec<Value> = changes.iter().map(|c| json!(c)).collect();
        output::json(&json!({
            "valid": true,
            "file": args.file.display().to_string(),
            "data_dir": dir.display().to_string(),
            "providers": new.providers().len(),
            "models": new.models().len(),
            "added": count(ChangeKind::Added),
            "removed": count(ChangeKind::Removed),
            "changed": count(ChangeKind::Changed),
            "changes": list,
            "written": write,
        }))?;
    } else {
        let mut out = format!(
            "{}: valid — {} providers, {} models; against {}: {} added, {} removed, {} changed\n",
            args.file.display(),
            new.providers().len(),
            new.models().len(),
            data_path.display(),
            count(ChangeKind::Added),
            count(ChangeKind::Removed),
            count(ChangeKind::Changed)
        );
        if old.is_none() {
            out.push_str("(no valid data there before: every model counts as added)\n");
        } else {
            for c in &changes {
                let line = match c.kind {
                    ChangeKind::Added => {
                        format!("+ {}: {}", c.model, c.new.as_deref().unwrap_or(""))
                    }
                    ChangeKind::Removed => {
                        format!("- {}: {}", c.model, c.old.as_deref().unwrap_or(""))
                    }
                    ChangeKind::Changed => format!(
                        "~ {}: {} → {}",
                        c.model,
                        c.old.as_deref().unwrap_or(""),
                        c.new.as_deref().unwrap_or("")
                    ),
                };
                out.push_str(&line);
                out.push('\n');
            }
        }
        output::out(&out);
    }
    if unchanged {
        output::note(&format!(
            "{} already holds this data; nothing written",
            data_path.display()
        ));
    } else if args.dry_run {
        output::note("dry run: nothing written");
    } else if dir == Path::new(VENDORED_DIR) {
        output::note(&format!(
            "wrote {} and {SOURCE_FILE} (checked {}); rebuild tierwise (cargo build --release) to embed them",
            data_path.display(),
            source.checked
        ));
    } else {
        output::note(&format!(
            "wrote {} and {SOURCE_FILE} (checked {}); a config reads it with [pricing] database = {:?}",
            data_path.display(),
            source.checked,
            data_path.display().to_string()
        ));
    }
    Ok(Status::Success)
}

/// Writes `path` through a temporary file in the same folder and a rename.
fn write_atomic(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}
