//! Offline evaluation on the tool-selection format (`tools.jsonl[.gz]` + `queries.jsonl[.gz]`):
//! recall of the gold tools vs. tool-schema tokens removed.
//!
//! Each query is treated like a gateway request: its tool list is its `candidates` when it has
//! them (an index is built for that list, as the gateway does per request), otherwise the whole
//! catalog (indexed once). Selection is the gateway's ([`crate::select::relevant`], then
//! [`select_ranked`]): the relevant tools of the (adaptive) k plus tools the index cannot read.
//! A query counts as recalled when **all** its gold tools are kept. The curve ranks every tool
//! and cuts at fixed values of k.
//!
//! Timing covers what the gateway does per request once the index is cached: the query from
//! the conversation (embedding of its text included, for methods that embed), scoring, the
//! top k and the selection; not the full ranking the curve needs. Each query is timed
//! [`TIMING_RUNS`] times and its fastest run counts.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use serde_json::{Value, json};
use tierwise_core::config::ToolMode;
use tierwise_core::request::RequestView;

use crate::index::{TextEmbedder, ToolIndex};
use crate::query::{Method, Query, rank};
use crate::select::{Adaptive, SelectionPolicy, relevant, select_ranked};

/// Values of k on the curve (those above the largest tool list are dropped).
pub const CURVE_KS: [usize; 18] = [
    1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64, 72, 96, 128,
];

/// Selection runs timed per query; the fastest counts. A shared machine's scheduler adds
/// milliseconds to single runs at random; the minimum is the work itself (the quantiles over
/// queries then show which requests are slow, not which runs were preempted).
pub const TIMING_RUNS: usize = 3;

/// A data set that cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{0}: no such directory")]
    NoDir(PathBuf),
    #[error("{dir}: no {name}.jsonl or {name}.jsonl.gz")]
    Missing { dir: PathBuf, name: &'static str },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}: no usable lines")]
    Empty(PathBuf),
}

/// A line that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    pub message: String,
}

/// One evaluation query.
#[derive(Debug, Clone)]
pub struct EvalQuery {
    pub id: String,
    pub view: RequestView,
    pub gold: Vec<String>,
    pub candidates: Option<Vec<String>>,
}

/// A loaded data set.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub tools: Vec<Value>,
    pub queries: Vec<EvalQuery>,
    pub problems: Vec<Problem>,
}

fn find(dir: &Path, name: &'static str) -> Result<PathBuf, EvalError> {
    for ext in ["jsonl", "jsonl.gz"] {
        let p = dir.join(format!("{name}.{ext}"));
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(EvalError::Missing {
        dir: dir.to_path_buf(),
        name,
    })
}

/// A numbered line (from 1): its text, or why it cannot be read.
type Line = (usize, Result<String, String>);

/// Lines of a `.jsonl` or `.jsonl.gz` file (blank lines skipped).
fn lines(path: &Path) -> Result<Vec<Line>, EvalError> {
    let io = |source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut out = Vec::new();
    for (i, line) in BufReader::new(reader).split(b'\n').enumerate() {
        let bytes = line.map_err(io)?;
        let text = String::from_utf8(bytes).map_err(|_| "not UTF-8".to_string());
        if text.as_ref().is_ok_and(|t| t.trim().is_empty()) {
            continue;
        }
        out.push((i + 1, text));
    }
    Ok(out)
}

fn string_list(v: Option<&Value>) -> Option<Vec<String>> {
    v?.as_array()?
        .iter()
        .map(|x| x.as_str().map(str::to_string))
        .collect()
}

impl Dataset {
    /// Reads `DIR/tools.jsonl[.gz]` and `DIR/queries.jsonl[.gz]`. Malformed lines, unknown tool
    /// names and duplicate tool names are reported in `problems` (with line numbers) and
    /// skipped; a missing directory or file is an error.
    pub fn load(dir: &Path) -> Result<Dataset, EvalError> {
        if !dir.is_dir() {
            return Err(EvalError::NoDir(dir.to_path_buf()));
        }
        let tools_path = find(dir, "tools")?;
        let queries_path = find(dir, "queries")?;
        let tools_file = file_name(&tools_path);
        let queries_file = file_name(&queries_path);
        let mut problems = Vec::new();
        let mut problem = |file: &str, line: usize, message: String| {
            problems.push(Problem {
                file: file.to_string(),
                line,
                message,
            });
        };

        let mut tools = Vec::new();
        let mut names = std::collections::HashSet::new();
        for (line, text) in lines(&tools_path)? {
            let v = match text
                .and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| e.to_string()))
            {
                Ok(v @ Value::Object(_)) => v,
                Ok(_) => {
                    problem(&tools_file, line, "not a JSON object".into());
                    continue;
                }
                Err(e) => {
                    problem(&tools_file, line, format!("invalid JSON: {e}"));
                    continue;
                }
            };
            let name = v
                .pointer("/function/name")
                .or_else(|| v.get("name"))
                .and_then(Value::as_str);
            match name {
                None => problem(
                    &tools_file,
                    line,
                    "tool has no name (kept, never selectable)".into(),
                ),
                Some(n) if !names.insert(n.to_string()) => {
                    problem(
                        &tools_file,
                        line,
                        format!("duplicate tool name {n:?} (kept)"),
                    );
                }
                Some(_) => {}
            }
            tools.push(v);
        }
        if tools.is_empty() {
            return Err(EvalError::Empty(tools_path));
        }

        let mut queries = Vec::new();
        for (line, text) in lines(&queries_path)? {
            let v = match text
                .and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| e.to_string()))
            {
                Ok(v) => v,
                Err(e) => {
                    problem(&queries_file, line, format!("invalid JSON: {e}"));
                    continue;
                }
            };
            let id = v
                .get("id")
                .and_then(Value::as_str)
                .map_or_else(|| format!("line {line}"), str::to_string);
            let Some(gold) = string_list(v.get("gold_tools")).filter(|g| !g.is_empty()) else {
                problem(
                    &queries_file,
                    line,
                    "`gold_tools` missing, empty or not a list of names".into(),
                );
                continue;
            };
            let candidates = match v.get("candidates") {
                None | Some(Value::Null) => None,
                c => match string_list(c) {
                    Some(c) if !c.is_empty() => Some(c),
                    _ => {
                        problem(
                            &queries_file,
                            line,
                            "`candidates` is not a non-empty list of names".into(),
                        );
                        continue;
                    }
                },
            };
            if let Some(unknown) = gold
                .iter()
                .chain(candidates.iter().flatten())
                .find(|n| !names.contains(*n))
            {
                problem(
                    &queries_file,
                    line,
                    format!("tool {unknown:?} is not in {tools_file}"),
                );
                continue;
            }
            if let Some(c) = &candidates
                && let Some(g) = gold.iter().find(|g| !c.contains(g))
            {
                problem(
                    &queries_file,
                    line,
                    format!("gold tool {g:?} is not among the candidates"),
                );
                continue;
            }
            let body = json!({"model": "eval", "messages": v.get("messages").cloned().unwrap_or(Value::Null)});
            match RequestView::chat(&body) {
                Ok(view) => queries.push(EvalQuery {
                    id,
                    view,
                    gold,
                    candidates,
                }),
                Err(e) => problem(&queries_file, line, format!("messages: {e}")),
            }
        }
        if queries.is_empty() {
            return Err(EvalError::Empty(queries_path));
        }
        Ok(Dataset {
            tools,
            queries,
            problems,
        })
    }
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Tools kept per request (`top_k`).
    pub k: usize,
    /// Share of a large pool also kept (`tools.keep_share`; 0: exactly `k`).
    pub keep_share: f64,
    pub method: Method,
    /// Prune only requests with more tools than this (0: always prune, the selector alone).
    pub threshold: usize,
    /// Ignore `candidates` and select from the whole catalog.
    pub whole_catalog: bool,
    /// Give each query a catalog of this many tools: its gold tools plus others drawn from the
    /// whole catalog (deterministic per query id) — a "catalog of a few hundred tools" made
    /// from a large one. Overrides `candidates` and `whole_catalog`.
    pub catalog_size: Option<usize>,
    /// Where tool vectors are cached ([`crate::embed_cache`]); `None`: not cached.
    pub cache_dir: Option<std::path::PathBuf>,
}

/// One point of the curve over k.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CurvePoint {
    pub k: usize,
    pub recall: f64,
    pub tokens_sent: f64,
    pub reduction: f64,
}

/// Timings (wall clock, this machine).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timing {
    /// Building the index of the whole catalog.
    pub index_build_ms: f64,
    /// Selection per query (index already built; query text, scoring, top k, selection):
    /// mean, median and 99th percentile, in µs.
    pub select_us_mean: f64,
    pub select_us_p50: f64,
    pub select_us_p99: f64,
}

/// The result of an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub queries: usize,
    /// Relevant tools kept at least (`max(top_k, ⌈keep_share × tools⌉)` of the pool).
    pub k: usize,
    /// Relevant tools kept at most (the adaptive ceiling; equal to `k` when k is fixed).
    pub k_max: usize,
    /// Relevant tools kept on average over the pruned queries.
    pub k_mean: f64,
    pub method: Method,
    pub threshold: usize,
    /// `query` (each query's candidates where given), `catalog`, or `sample` (`catalog_size`
    /// tools per query: its gold tools and a deterministic draw of others).
    pub pool: &'static str,
    pub catalog_tools: usize,
    /// Share of queries whose gold tools were all kept.
    pub recall: f64,
    /// Mean tool-schema tokens of the tool list (o200k).
    pub tokens_offered: f64,
    /// Mean tool-schema tokens kept.
    pub tokens_sent: f64,
    /// 1 − sent / offered.
    pub reduction: f64,
    pub curve: Vec<CurvePoint>,
    /// Ids of the queries that missed a gold tool at k (first 20).
    pub missed: Vec<String>,
    pub problems: Vec<Problem>,
    pub timing: Timing,
}

struct PerQuery {
    offered: usize,
    /// Tokens always kept (tools the index cannot read).
    always: usize,
    /// Tokens of the ranked tools, best first.
    ranked_tokens: Vec<usize>,
    /// Rank of the worst-ranked gold tool (None: a gold tool is always kept; usize::MAX: never).
    worst_gold: Option<usize>,
    /// All tools kept regardless of k (at most `threshold`).
    unpruned: bool,
    hit_at_k: bool,
    sent_at_k: usize,
}

/// Catalog positions for one query: its gold tools plus `size − gold` others drawn without
/// replacement from the whole catalog, seeded by the query id (the same draw on every run and
/// for every method), returned in catalog order like a client's tool list.
fn sample_pool(
    q: &EvalQuery,
    by_name: &std::collections::HashMap<&str, usize>,
    catalog: usize,
    size: usize,
) -> Vec<usize> {
    let mut chosen: Vec<usize> = q
        .gold
        .iter()
        .filter_map(|g| by_name.get(g.as_str()).copied())
        .collect();
    chosen.sort_unstable();
    chosen.dedup();
    let mut rest: Vec<usize> = (0..catalog).filter(|i| !chosen.contains(i)).collect();
    // FNV-1a of the id seeds a xorshift64*; a partial Fisher–Yates draws the others.
    let mut state = q.id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    }) | 1;
    let want = size.saturating_sub(chosen.len()).min(rest.len());
    for i in 0..want {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let r = state.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let span = (rest.len() - i) as u64;
        // `r % span` < span ≤ rest.len(), a usize.
        #[expect(clippy::cast_possible_truncation, reason = "below rest.len()")]
        let j = i + (r % span) as usize;
        rest.swap(i, j);
    }
    chosen.extend_from_slice(rest.get(..want).unwrap_or(&[]));
    chosen.sort_unstable();
    chosen
}

/// Runs the evaluation with a fixed k (`opts.k`, `opts.keep_share`); `tick` is called once
/// per query (progress).
pub fn evaluate(
    data: &Dataset,
    opts: &EvalOptions,
    embedder: Option<&dyn TextEmbedder>,
    tick: &mut dyn FnMut(),
) -> Report {
    evaluate_adaptive(data, opts, Adaptive::OFF, embedder, tick)
}

/// [`evaluate`] with the adaptive k of the `[tools]` config.
pub fn evaluate_adaptive(
    data: &Dataset,
    opts: &EvalOptions,
    adaptive: Adaptive,
    embedder: Option<&dyn TextEmbedder>,
    tick: &mut dyn FnMut(),
) -> Report {
    crate::warm_up();
    let t0 = Instant::now();
    let catalog = match embedder {
        Some(e) => crate::embed_cache::build(&data.tools, e, opts.cache_dir.as_deref()),
        None => ToolIndex::build(&data.tools),
    };
    let index_build_ms = t0.elapsed().as_secs_f64() * 1e3;
    let by_name: std::collections::HashMap<&str, usize> = data
        .tools
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            t.pointer("/function/name")
                .or_else(|| t.get("name"))
                .and_then(Value::as_str)
                .map(|n| (n, i))
        })
        .collect();
    let policy = SelectionPolicy {
        mode: ToolMode::Prune,
        threshold: opts.threshold,
        top_k: opts.k.max(1),
        keep_share: opts.keep_share,
        pinned: Vec::new(),
        method: opts.method,
        adaptive,
    };

    let mut per = Vec::with_capacity(data.queries.len());
    let mut select_us = Vec::new();
    let mut missed = Vec::new();
    let mut max_pool = 0;
    let mut kept_relevant = Vec::new();
    for q in &data.queries {
        let local;
        let pool: Option<Vec<usize>> = match (opts.catalog_size, &q.candidates) {
            (Some(size), _) => Some(sample_pool(q, &by_name, data.tools.len(), size)),
            (None, Some(c)) if !opts.whole_catalog => Some(
                c.iter()
                    .filter_map(|n| by_name.get(n.as_str()).copied())
                    .filter(|&i| i < data.tools.len())
                    .collect(),
            ),
            _ => None,
        };
        let index = match pool {
            Some(positions) => {
                let tools: Vec<Value> = positions
                    .iter()
                    .filter_map(|&i| data.tools.get(i).cloned())
                    .collect();
                let mut built = ToolIndex::build(&tools);
                // The catalog's vectors, not a second embedding of the same tools.
                if let Some(v) = catalog.vectors() {
                    let vectors = positions
                        .iter()
                        .map(|&i| v.get(i).cloned().unwrap_or_default())
                        .collect();
                    built.set_vectors(vectors);
                }
                local = built;
                &local
            }
            _ => &catalog,
        };
        max_pool = max_pool.max(index.len());
        let unpruned = index.len() <= policy.threshold;
        let mut best = f64::INFINITY;
        let mut selected = None;
        for _ in 0..TIMING_RUNS {
            let t = Instant::now();
            let query = Query::from_view(&q.view);
            let selection = if unpruned {
                crate::select::keep_all(index)
            } else {
                let cut = relevant(index, &query, &policy, embedder);
                select_ranked(index, &cut, &[], &policy)
            };
            best = best.min(t.elapsed().as_secs_f64() * 1e6);
            selected = Some(selection);
        }
        select_us.push(best);
        let selection = selected.unwrap_or_else(|| crate::select::keep_all(index));
        if !unpruned {
            kept_relevant.push(
                selection
                    .kept
                    .iter()
                    .filter(|k| matches!(k.reason, crate::select::Reason::Relevant { .. }))
                    .count(),
            );
        }
        let query = Query::from_view(&q.view);
        let ranking = rank(index, &query, opts.method, embedder, None);

        let kept = selection.indices();
        let mut worst_gold = None;
        let mut hit_at_k = true;
        for g in &q.gold {
            let positions = index.positions(g);
            if !positions.iter().any(|p| kept.contains(p)) {
                hit_at_k = false;
            }
            if positions
                .iter()
                .any(|&p| index.entries().get(p).is_some_and(|e| !e.is_indexed()))
            {
                continue;
            }
            let r = positions
                .iter()
                .filter_map(|p| ranking.iter().position(|x| x == p))
                .min()
                .unwrap_or(usize::MAX);
            worst_gold = Some(worst_gold.map_or(r, |w: usize| w.max(r)));
        }
        if !hit_at_k && missed.len() < 20 {
            missed.push(q.id.clone());
        }
        let always = index
            .entries()
            .iter()
            .filter(|e| !e.is_indexed())
            .map(|e| e.tokens)
            .sum();
        per.push(PerQuery {
            offered: selection.tokens_offered,
            always,
            ranked_tokens: ranking.iter().map(|&i| index.tokens_of([i])).collect(),
            worst_gold,
            unpruned,
            hit_at_k,
            sent_at_k: selection.tokens_sent,
        });
        tick();
    }

    let n = per.len().max(1) as f64;
    let offered: f64 = per.iter().map(|p| p.offered as f64).sum::<f64>();
    let reduction = |sent: f64| {
        if offered > 0.0 {
            1.0 - sent / offered
        } else {
            0.0
        }
    };
    let sent_k: f64 = per.iter().map(|p| p.sent_at_k as f64).sum();
    let mut ks: Vec<usize> = CURVE_KS
        .iter()
        .copied()
        .filter(|&k| k <= max_pool.max(1))
        .collect();
    // The k the policy uses on the catalog (per-query candidate pools are small: `top_k`).
    let k_catalog = policy.bounds(catalog.indexed_len());
    let (k_eff, k_max) = if let Some(size) = opts.catalog_size {
        policy.bounds(size.min(data.tools.len()))
    } else if data.queries.iter().any(|q| q.candidates.is_some()) && !opts.whole_catalog {
        (policy.top_k, policy.top_k.max(policy.adaptive.max_k))
    } else {
        k_catalog
    };
    if !ks.contains(&k_eff) {
        ks.push(k_eff);
        ks.sort_unstable();
    }
    let curve = ks
        .into_iter()
        .map(|k| {
            let mut hits = 0usize;
            let mut sent = 0.0;
            for p in &per {
                if p.unpruned {
                    hits += 1;
                    sent += p.offered as f64;
                    continue;
                }
                if p.worst_gold.is_none_or(|w| w < k) {
                    hits += 1;
                }
                sent += (p.always + p.ranked_tokens.iter().take(k).sum::<usize>()) as f64;
            }
            CurvePoint {
                k,
                recall: hits as f64 / n,
                tokens_sent: sent / n,
                reduction: reduction(sent),
            }
        })
        .collect();

    select_us.sort_by(f64::total_cmp);
    let select_us_mean = if select_us.is_empty() {
        0.0
    } else {
        select_us.iter().sum::<f64>() / select_us.len() as f64
    };
    let quantile = |q: f64| {
        // An index into the sorted samples.
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "0 <= q * len <= len"
        )]
        let i = ((select_us.len() as f64) * q) as usize;
        select_us
            .get(i)
            .or(select_us.last())
            .copied()
            .unwrap_or(0.0)
    };
    let k_mean = if kept_relevant.is_empty() {
        0.0
    } else {
        kept_relevant.iter().sum::<usize>() as f64 / kept_relevant.len() as f64
    };

    Report {
        queries: per.len(),
        k: k_eff,
        k_max,
        k_mean,
        method: opts.method,
        threshold: opts.threshold,
        pool: if opts.catalog_size.is_some() {
            "sample"
        } else if opts.whole_catalog || data.queries.iter().all(|q| q.candidates.is_none()) {
            "catalog"
        } else {
            "query"
        },
        catalog_tools: data.tools.len(),
        recall: per.iter().filter(|p| p.hit_at_k).count() as f64 / n,
        tokens_offered: offered / n,
        tokens_sent: sent_k / n,
        reduction: reduction(sent_k),
        curve,
        missed,
        problems: data.problems.clone(),
        timing: Timing {
            index_build_ms,
            select_us_mean,
            select_us_p50: quantile(0.5),
            select_us_p99: quantile(0.99),
        },
    }
}
