//! `tierwise tools eval`: recall of gold tools vs tool-schema tokens removed.

use std::fmt::Write as _;

use tierwise_tools::eval::{Dataset, EvalOptions, Report, evaluate};
use tierwise_tools::{Method, TextEmbedder};

use crate::cli::{ToolsEvalArgs, ToolsMethodArg};
use crate::output::{self, Status};

/// The shared embedding model as the tool index's embedder.
struct Embeddings(tierwise_embed::Embedder);

impl TextEmbedder for Embeddings {
    fn embed_text(&self, text: &str) -> Vec<f32> {
        self.0.embed(text)
    }
}

/// Problems listed on stderr in the human report (all of them are in `--json`).
const SHOWN_PROBLEMS: usize = 10;

pub fn run_eval(args: ToolsEvalArgs) -> anyhow::Result<Status> {
    let k = match args.k {
        Some(0) => anyhow::bail!("--k must be at least 1"),
        Some(k) => k,
        None => super::load_config(args.config.as_deref())?.tools.top_k,
    };
    let method = match args.method {
        ToolsMethodArg::Bm25 => Method::Bm25,
        ToolsMethodArg::Lexical => Method::Lexical,
        ToolsMethodArg::Hybrid => Method::Hybrid,
    };
    let embedder = if method == Method::Hybrid {
        match super::eval::load_embedder(args.embed_dir.as_deref())? {
            Some(e) => Some(Embeddings(e)),
            None => anyhow::bail!(
                "--method hybrid needs an embedding model: run scripts/fetch-embeddings.sh or pass --embed-dir"
            ),
        }
    } else {
        None
    };
    let data = Dataset::load(&args.data)?;
    let opts = EvalOptions {
        k,
        method,
        threshold: args.threshold,
        whole_catalog: args.all_tools,
    };
    let bar = output::progress(data.queries.len() as u64, args.json, "queries");
    let report = evaluate(
        &data,
        &opts,
        embedder.as_ref().map(|e| e as &dyn TextEmbedder),
        &mut || bar.inc(1),
    );
    bar.finish_and_clear();

    if args.json {
        output::json(&report)?;
    } else {
        output::out(&human(
            &report,
            &args,
            embedder.as_ref().map(|e| e.0.name()),
        ));
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
    let pool = if r.pool == "query" {
        "each query's candidates"
    } else {
        "the whole catalog"
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
    let _ = writeln!(
        s,
        "k = {}: recall {} (all gold tools kept), tool-schema tokens {:.1} offered → {:.1} sent, reduction {}",
        r.k,
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
        "index build ({} tools): {:.1} ms; ranking + selection per request: {:.0} µs mean, {:.0} µs p99",
        r.catalog_tools, r.timing.index_build_ms, r.timing.select_us_mean, r.timing.select_us_p99
    );
    s
}
