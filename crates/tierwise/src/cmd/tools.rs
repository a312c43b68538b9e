//! `tierwise tools eval`: recall of gold tools vs tool-schema tokens removed.

use anyhow::Context;
use std::fmt::Write as _;

use tierwise_tools::embedders::{self, MiniLmEmbedder, StaticEmbedder};
use tierwise_tools::eval::{Dataset, EvalOptions, Report, evaluate_adaptive};
use tierwise_tools::{Adaptive, Method, SelectionPolicy, TextEmbedder};

use crate::cli::{ToolsEvalArgs, ToolsMethodArg};
use crate::output::{self, Status};

/// Problems listed on stderr in the human report (all of them are in `--json`).
const SHOWN_PROBLEMS: usize = 10;

/// The embedder for hybrid ranking, its display name and its tool-vector cache folder.
type Loaded = (Box<dyn TextEmbedder>, String, Option<std::path::PathBuf>);

/// MiniLM from `--embed-dir` or the default folder; a static model from an `--embed-dir`
/// that holds one. `None`: no model.
fn load_hybrid_embedder(arg: Option<&std::path::Path>) -> anyhow::Result<Option<Loaded>> {
    let dir = match arg {
        Some(d) => Some(d.to_path_buf()),
        None => embedders::minilm_dir(),
    };
    let Some(dir) = dir else { return Ok(None) };
    if embedders::is_bert_dir(&dir) {
        let e = MiniLmEmbedder::load(&dir)
            .map_err(|e| anyhow::anyhow!("embedding model {}: {e}", dir.display()))?;
        let name = e.name().to_string();
        let cache = e.cache_dir().to_path_buf();
        return Ok(Some((Box::new(e), name, Some(cache))));
    }
    match tierwise_embed::load_optional(Some(&dir)).context("embedding model")? {
        Some(e) => {
            let name = e.name().to_string();
            Ok(Some((Box::new(StaticEmbedder(e)), name, None)))
        }
        None => Ok(None),
    }
}

pub fn run_eval(args: ToolsEvalArgs) -> anyhow::Result<Status> {
    let config = super::load_config(args.config.as_deref())?;
    // `--k` is a fixed k; without it, the config's floor and adaptive k (as the gateway).
    let (k, keep_share, adaptive) = match args.k {
        Some(0) => anyhow::bail!("--k must be at least 1"),
        Some(k) => (k, 0.0, Adaptive::OFF),
        None => (
            config.tools.top_k,
            config.tools.keep_share,
            Adaptive::from_config(&config.tools),
        ),
    };
    let method = match args.method {
        Some(ToolsMethodArg::Bm25) => Method::Bm25,
        Some(ToolsMethodArg::Lexical) => Method::Lexical,
        Some(ToolsMethodArg::Hybrid) => Method::Hybrid,
        None => SelectionPolicy::from_config(&config.tools).method,
    };
    // A method that needs a model never falls back silently to a weaker one.
    let embedder = if method == Method::Hybrid {
        match load_hybrid_embedder(args.embed_dir.as_deref())? {
            Some(e) => Some(e),
            None => anyhow::bail!(
                "method hybrid needs an embedding model: no MiniLM model in {} (run scripts/fetch-minilm.sh or pass --embed-dir)",
                embedders::MINILM_DIR
            ),
        }
    } else {
        None
    };
    let data = Dataset::load(&args.data)?;
    let opts = EvalOptions {
        k,
        keep_share,
        method,
        threshold: args.threshold,
        whole_catalog: args.all_tools,
        catalog_size: args.catalog_size,
        cache_dir: embedder.as_ref().and_then(|e| e.2.clone()),
    };
    let bar = output::progress(data.queries.len() as u64, args.json, "queries");
    let report = evaluate_adaptive(
        &data,
        &opts,
        adaptive,
        embedder.as_ref().map(|e| e.0.as_ref()),
        &mut || bar.inc(1),
    );
    bar.finish_and_clear();

    if args.json {
        output::json(&report)?;
    } else {
        let text = human(&report, &args, embedder.as_ref().map(|e| e.1.as_str()));
        output::out(&text);
    }
    if !report.problems.is_empty() {
        for p in report.problems.iter().take(SHOWN_PROBLEMS) {
            output::note(&format!("warning: {}:{}: {}", p.file, p.line, p.message));
        }
        let more = report.problems.len().saturating_sub(SHOWN_PROBLEMS);
        let tail = if more > 0 {
            format!(" ({more} more in --json)")
        } else {
            String::new()
        };
        output::note(&format!(
            "warning: {} malformed or unusable lines skipped{tail}",
            report.problems.len()
        ));
    }
    Ok(Status::Success)
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn human(r: &Report, args: &ToolsEvalArgs, model: Option<&str>) -> String {
    let mut s = String::new();
    let sample;
    let pool = match (r.pool, args.catalog_size) {
        ("query", _) => "each query's candidates",
        ("sample", Some(n)) => {
            sample = format!("{n} tools per query (its gold tools + a fixed draw)");
            sample.as_str()
        }
        _ => "the whole catalog",
    };
    let method = match model {
        Some(m) => format!("{} (embeddings: {m})", r.method.as_str()),
        None => r.method.as_str().to_string(),
    };
    let _ = writeln!(
        s,
        "tool selection on {}: {} queries, {} tools in the catalog, chosen from {pool}; method {method}",
        args.data.display(),
        r.queries,
        r.catalog_tools
    );
    if r.threshold > 0 {
        let _ = writeln!(
            s,
            "requests with at most {} tools are not pruned",
            r.threshold
        );
    }
    let k = if r.k_max > r.k {
        format!("{}..{} (adaptive, mean {:.1})", r.k, r.k_max, r.k_mean)
    } else {
        r.k.to_string()
    };
    let _ = writeln!(
        s,
        "k = {k}: recall {} (all gold tools kept), tool-schema tokens {:.1} offered → {:.1} sent, reduction {}",
        pct(r.recall),
        r.tokens_offered,
        r.tokens_sent,
        pct(r.reduction)
    );
    if args.sweep {
        let mut t = comfy_table::Table::new();
        t.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
        t.set_header(["k", "recall", "tokens sent", "reduction"]);
        for p in &r.curve {
            t.add_row([
                p.k.to_string(),
                pct(p.recall),
                format!("{:.1}", p.tokens_sent),
                pct(p.reduction),
            ]);
        }
        let _ = writeln!(s, "{t}");
    }
    let _ = writeln!(
        s,
        "index build ({} tools): {:.1} ms; selection per request: {:.0} µs p50, {:.0} µs p99, {:.0} µs mean",
        r.catalog_tools,
        r.timing.index_build_ms,
        r.timing.select_us_p50,
        r.timing.select_us_p99,
        r.timing.select_us_mean
    );
    s
}
