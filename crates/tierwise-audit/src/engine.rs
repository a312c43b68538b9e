//! The streaming pipeline: read → (parse, categorize, decide, hash) on worker threads →
//! time-ordered cache simulation on the calling thread → one [`Totals`].
//!
//! ```text
//! reader thread ──batches of lines──▶ workers (N) ──calls with cacheable prefixes──▶ caller
//!   (files, gzip,        bounded        parse, Signals, categorize,      bounded      reorder window
//!    usage exports)      channel        decide() on model "auto",       channel      (by time) → 3
//!                                       prefixes; order-free sums                     cache sims
//! ```
//! Memory is bounded by the channel depths, the reorder window, the cache simulators' caps
//! and the shape tables; it does not grow with the log.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::io::BufRead;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use tierwise_core::catalog::Catalog;
use tierwise_core::config::{Config, DispatchMode};
use tierwise_core::cost::{ServiceTier, Usage};
use tierwise_core::signals::{Hints, Signals};
use tierwise_router::{Policy, decide};
use xxhash_rust::xxh3::xxh3_64;

use crate::agg::{Buckets, CacheAcc, FastMap, ModelKey, Name, ShapeTable};
use crate::cache_sim::CacheSim;
use crate::call::{Call, parse_line};
use crate::error::AuditError;
use crate::input::{self, ExportRow, Format, InputSpec};
use crate::prompt::{self, Prefix, ToolMemo, cached_for_match};
use tierwise_router::category::categorize;

/// What to audit and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// Only calls at or after this time (unix ms).
    pub since_ms: Option<i64>,
    /// Only calls before this time (unix ms).
    pub until_ms: Option<i64>,
    /// A malformed line stops the audit.
    pub strict: bool,
    /// Worker threads (0: one per core).
    pub threads: usize,
    /// Prompt cache time-to-live, seconds of inactivity.
    pub cache_ttl_secs: u64,
    /// Categories that can wait (Batch API).
    pub deferrable_categories: Vec<String>,
    /// Tool search as the gateway would apply it (`[tools]`; mode `off` is treated as `prune`:
    /// the what-if is turning it on).
    pub tool_search: tierwise_tools::SelectionPolicy,
    /// Calls held to restore time order before the cache simulation.
    pub reorder_window: usize,
    /// Live prefixes per cache simulator.
    pub cache_cap: usize,
    /// Shapes tracked per worker.
    pub shape_cap: usize,
}

impl Options {
    /// Defaults from the config's `[audit]` and `[tools]` sections.
    pub fn from_config(config: &Config) -> Options {
        Options {
            since_ms: None,
            until_ms: None,
            strict: false,
            threads: 0,
            cache_ttl_secs: config.audit.cache_ttl_secs,
            deferrable_categories: config
                .audit
                .deferrable_categories
                .iter()
                .map(|c| crate::category::normalize(c).into_owned())
                .collect(),
            tool_search: {
                let mut p = tierwise_tools::SelectionPolicy::from_config(&config.tools);
                if p.mode == tierwise_core::config::ToolMode::Off {
                    p.mode = tierwise_core::config::ToolMode::Prune;
                }
                p
            },
            reorder_window: 100_000,
            cache_cap: 1_000_000,
            shape_cap: 512,
        }
    }
}

/// A malformed line, as reported.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Malformed {
    pub source: String,
    pub line: u64,
    pub error: String,
}

/// One input as read.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SourceInfo {
    pub name: String,
    pub format: Format,
    pub calls: u64,
    /// Request-log rows never sent upstream (rejected before dispatch), not counted as calls.
    #[serde(skip_serializing_if = "is_zero")]
    pub skipped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Everything the report is built from (token sums; money is computed in `report`).
#[derive(Debug, Default)]
pub struct Totals {
    pub sources: Vec<SourceInfo>,
    /// Call-log / store calls by (served model, service tier).
    pub now: Buckets<ModelKey>,
    /// … by (category, served model, service tier).
    pub now_by_category: Buckets<(Name, Name, ServiceTier)>,
    /// Usage-export rows by (model, service tier); `batch` rows are on the batch tier.
    pub export: Buckets<ModelKey>,
    pub estimated: u64,
    /// Calls whose served model has no price, by model.
    pub unpriced: Buckets<Name>,
    /// What-if scenarios over priced calls, by (model, service tier).
    pub baseline: Buckets<ModelKey>,
    pub tiering: Buckets<ModelKey>,
    pub batch: Buckets<ModelKey>,
    pub cache: Buckets<ModelKey>,
    pub tool_search: Buckets<ModelKey>,
    pub batch_alone: Buckets<ModelKey>,
    pub cache_alone: Buckets<ModelKey>,
    pub cache_alone_as_sent: Buckets<ModelKey>,
    pub tool_search_alone: Buckets<ModelKey>,
    /// Flagship (top tier) calls by (category, routed tier index) at their served model.
    pub flagship: Buckets<(Name, usize, Name, ServiceTier)>,
    /// Routed tier index by category, calls (`usize::MAX`: outside the ladder).
    pub routed: FastMap<(Name, usize), u64>,
    pub route_errors: u64,
    pub deferrable: u64,
    pub cache_shares: CacheAcc,
    pub tool_requests: u64,
    pub tool_search_requests: u64,
    pub tool_tokens: u64,
    pub tool_tokens_removed: u64,
    pub shapes: Option<ShapeTable>,
    pub malformed: Vec<Malformed>,
    pub malformed_count: u64,
    /// Calls left out by --since/--until (or without a timestamp while a filter is set).
    pub filtered: u64,
    pub first_ms: Option<i64>,
    pub last_ms: Option<i64>,
}

const MALFORMED_KEPT: usize = 50;
const BATCH_LINES: usize = 256;

impl Totals {
    fn merge(&mut self, o: Totals) {
        self.now.merge(o.now);
        self.now_by_category.merge(o.now_by_category);
        self.export.merge(o.export);
        self.estimated += o.estimated;
        self.unpriced.merge(o.unpriced);
        self.baseline.merge(o.baseline);
        self.tiering.merge(o.tiering);
        self.batch.merge(o.batch);
        self.cache.merge(o.cache);
        self.tool_search.merge(o.tool_search);
        self.batch_alone.merge(o.batch_alone);
        self.cache_alone.merge(o.cache_alone);
        self.cache_alone_as_sent.merge(o.cache_alone_as_sent);
        self.tool_search_alone.merge(o.tool_search_alone);
        self.flagship.merge(o.flagship);
        for (k, v) in o.routed {
            *self.routed.entry(k).or_default() += v;
        }
        self.route_errors += o.route_errors;
        self.deferrable += o.deferrable;
        self.cache_shares.merge(&o.cache_shares);
        self.tool_requests += o.tool_requests;
        self.tool_search_requests += o.tool_search_requests;
        self.tool_tokens += o.tool_tokens;
        self.tool_tokens_removed += o.tool_tokens_removed;
        match (&mut self.shapes, o.shapes) {
            (Some(a), Some(b)) => a.merge(b),
            (None, b) => self.shapes = b,
            _ => {}
        }
        self.malformed.extend(o.malformed);
        self.malformed_count += o.malformed_count;
        self.filtered += o.filtered;
        self.first_ms = min_opt(self.first_ms, o.first_ms);
        self.last_ms = max_opt(self.last_ms, o.last_ms);
    }

    fn see_time(&mut self, t: Option<i64>) {
        self.first_ms = min_opt(self.first_ms, t);
        self.last_ms = max_opt(self.last_ms, t);
    }
}

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn max_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Lines of one input, for a worker: their bytes back to back (each with its `\n`, as read)
/// and where each ends. One buffer per batch, recycled through a [`BufferPool`]: no allocation
/// per line, no buffer growing line by line.
struct WorkBatch {
    source: u32,
    first_line: u64,
    data: Vec<u8>,
    ends: Vec<usize>,
}

impl WorkBatch {
    fn new(source: u32, first_line: u64, pool: &BufferPool) -> WorkBatch {
        let (data, ends) = pool.take();
        WorkBatch {
            source,
            first_line,
            data,
            ends,
        }
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn push(&mut self, line: &[u8]) {
        self.data.extend_from_slice(line);
        self.ends.push(self.data.len());
    }

    /// The lines, in order.
    fn lines(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let line = self.data.get(start..end).unwrap_or_default();
            start = end;
            line
        })
    }
}

/// Where the reader sends batches, and the pool it takes their buffers from.
struct Work<'a> {
    tx: SyncSender<WorkBatch>,
    pool: &'a BufferPool,
}

/// Emptied batch buffers, from the workers back to the reader.
#[derive(Default)]
struct BufferPool(Mutex<Vec<(Vec<u8>, Vec<usize>)>>);

impl BufferPool {
    /// Buffers kept for reuse (more are in flight only while the channels are full).
    const KEPT: usize = 64;
    /// A buffer grown past this (a huge line) is freed, not kept.
    const MAX_BYTES: usize = 16 << 20;

    fn take(&self) -> (Vec<u8>, Vec<usize>) {
        self.0
            .lock()
            .ok()
            .and_then(|mut p| p.pop())
            .unwrap_or_else(|| {
                (
                    Vec::with_capacity(BATCH_LINES * 2048),
                    Vec::with_capacity(BATCH_LINES),
                )
            })
    }

    fn give(&self, mut data: Vec<u8>, mut ends: Vec<usize>) {
        if data.capacity() > Self::MAX_BYTES {
            return;
        }
        data.clear();
        ends.clear();
        if let Ok(mut p) = self.0.lock()
            && p.len() < Self::KEPT
        {
            p.push((data, ends));
        }
    }
}

/// A call whose prompt has cacheable prefixes: the caller simulates the cache on it.
struct SimCall {
    ts: Option<i64>,
    source: u32,
    line: u64,
    actual: ModelKey,
    routed: ModelKey,
    actual_key: u64,
    routed_key: u64,
    usage: Usage,
    removed: u64,
    as_sent: Vec<Prefix>,
    static_first: Vec<Prefix>,
}

impl SimCall {
    fn order(&self) -> (i64, u32, u64) {
        (self.ts.unwrap_or(i64::MIN), self.source, self.line)
    }
}

impl PartialEq for SimCall {
    fn eq(&self, o: &Self) -> bool {
        self.order() == o.order()
    }
}
impl Eq for SimCall {}
impl PartialOrd for SimCall {
    fn partial_cmp(&self, o: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(o))
    }
}
impl Ord for SimCall {
    // Reversed: BinaryHeap pops the earliest call first.
    fn cmp(&self, o: &Self) -> CmpOrdering {
        o.order().cmp(&self.order())
    }
}

enum ToCaller {
    Sim(Vec<SimCall>),
    Progress { calls: u64 },
    Malformed(Malformed),
    Export(u32, Vec<ExportRow>),
    Failed(AuditError),
}

/// Prices per 1M tokens as f64, for ranking shapes only.
fn rank_prices(catalog: &Catalog, model: &str) -> Option<[f64; 3]> {
    let p = catalog.prices_for(model)?;
    let f = |d: rust_decimal::Decimal| d.to_string().parse::<f64>().unwrap_or(0.0);
    Some([f(p.input), f(p.cached_input), f(p.output)])
}

struct Worker<'a> {
    policy: &'a Policy,
    options: &'a Options,
    memo: ToolMemo,
    names: FastMap<String, Name>,
    rank: FastMap<Name, Option<[f64; 3]>>,
    totals: Totals,
    top: usize,
}

/// Removes `removed` tool-schema tokens from a call's input: cached tokens first (the tool
/// block opens the prompt, so it is the part most likely read from cache; this also makes the
/// saving the smaller one), then uncached.
fn without_tools(u: &Usage, removed: u64) -> Usage {
    let removed = removed.min(u.input_tokens);
    let from_cached = removed.min(u.cached_tokens);
    Usage {
        input_tokens: u.input_tokens - removed,
        cached_tokens: u.cached_tokens - from_cached,
        ..*u
    }
}

fn with_cached(u: &Usage, cached: u64) -> Usage {
    Usage {
        cached_tokens: cached.max(u.cached_tokens).min(u.input_tokens),
        ..*u
    }
}

impl<'a> Worker<'a> {
    fn new(policy: &'a Policy, options: &'a Options) -> Worker<'a> {
        Worker {
            policy,
            options,
            memo: ToolMemo::default(),
            names: FastMap::default(),
            rank: FastMap::default(),
            totals: Totals {
                shapes: Some(ShapeTable::new(options.shape_cap)),
                ..Totals::default()
            },
            top: policy.catalog.top(),
        }
    }

    fn name(&mut self, s: &str) -> Name {
        if let Some(n) = self.names.get(s) {
            return n.clone();
        }
        let n: Name = Arc::from(s);
        if self.names.len() < 4096 {
            self.names.insert(s.to_string(), n.clone());
        }
        n
    }

    fn in_range(&self, ts: Option<i64>) -> bool {
        let o = self.options;
        if o.since_ms.is_none() && o.until_ms.is_none() {
            return true;
        }
        let Some(t) = ts else { return false };
        o.since_ms.is_none_or(|s| t >= s) && o.until_ms.is_none_or(|u| t < u)
    }

    /// One call; returns it for the cache simulation when it has cacheable prefixes.
    fn call(&mut self, call: Call, source: u32, line: u64) -> Option<SimCall> {
        let Call {
            ts_ms,
            model,
            usage,
            estimated,
            service_tier,
            mut view,
            has_content,
        } = call;
        if !self.in_range(ts_ms) {
            self.totals.filtered += 1;
            return None;
        }
        self.totals.see_time(ts_ms);
        if estimated {
            self.totals.estimated += 1;
        }
        let hints = Hints::from_metadata(&view);
        let signals = Signals::compute(&view, &hints);
        // decide() categorizes too; without the request's content there is no decision, and
        // the category is the hint's (or `other`).
        view.model = "auto".to_string();
        let decision = has_content.then(|| decide(&view, &signals, &hints, self.policy));
        let category: Name = match &decision {
            Some(Ok(d)) => self.name(&d.category.name),
            _ => self.name(&categorize(&view, &signals, &hints).name),
        };
        let actual_model = self.name(&model);
        let actual: ModelKey = (actual_model.clone(), service_tier);
        self.totals.now.add(actual.clone(), 1, &usage);
        self.totals.now_by_category.add(
            (category.clone(), actual_model.clone(), service_tier),
            1,
            &usage,
        );
        let catalog = &self.policy.catalog;
        let priced = catalog.prices_for(&model).is_some();
        if !priced {
            self.totals.unpriced.add(actual_model.clone(), 1, &usage);
        }

        // The routing what-if: the same request sent as `model: "auto"`, decided by the
        // function `serve` calls, with the same policy.
        // Without the request there is nothing to decide on: the call stays where it was.
        let (routed_model, routed_tier, mode) = match &decision {
            Some(Ok(d)) => (d.model.clone(), d.tier, d.mode),
            Some(Err(_)) => {
                self.totals.route_errors += 1;
                (
                    model.clone(),
                    catalog.tier_of_model(&model),
                    DispatchMode::Sync,
                )
            }
            None => (
                model.clone(),
                catalog.tier_of_model(&model),
                DispatchMode::Sync,
            ),
        };
        let routed_idx = routed_tier.unwrap_or(usize::MAX);
        *self
            .totals
            .routed
            .entry((category.clone(), routed_idx))
            .or_default() += 1;
        let deferrable = hints.deferrable
            || matches!(mode, DispatchMode::Batch | DispatchMode::Flex)
            || self
                .options
                .deferrable_categories
                .iter()
                .any(|c| c.as_str() == &*category);
        if deferrable {
            self.totals.deferrable += 1;
        }
        let deferred_tier = |st: ServiceTier| match (deferrable, st) {
            (true, ServiceTier::Default | ServiceTier::Priority) => {
                if mode == DispatchMode::Flex {
                    ServiceTier::Flex
                } else {
                    ServiceTier::Batch
                }
            }
            (_, st) => st,
        };

        let facts = prompt::facts_counted(
            &view,
            &mut self.memo,
            &self.options.tool_search,
            Some(signals.prompt_tokens),
        );
        let removed = u64::from(facts.tool_search_removed);
        if !view.tools.is_empty() {
            self.totals.tool_requests += 1;
            self.totals.tool_tokens += u64::from(facts.tool_tokens);
        }
        if removed > 0 {
            self.totals.tool_search_requests += 1;
            self.totals.tool_tokens_removed += removed;
        }

        // Shapes.
        let rank = match self.rank.get(&actual_model) {
            Some(r) => *r,
            None => {
                let r = rank_prices(catalog, &model);
                self.rank.insert(actual_model.clone(), r);
                r
            }
        };
        let est = rank.map_or(0.0, |p| {
            let m = service_tier_factor(catalog, service_tier);
            (usage.uncached_input() as f64 * p[0]
                + usage.cached_tokens as f64 * p[1]
                + usage.output_tokens as f64 * p[2])
                * m
                / 1e6
        });
        if let Some(shapes) = self.totals.shapes.as_mut() {
            let e = shapes.entry(facts.shape, || {
                if facts.shape == 0 {
                    "(no system prompt, no tools)".to_string()
                } else {
                    prompt::shape_label(&view)
                }
            });
            e.rank += est;
            e.spend.add(actual.clone(), 1, &usage);
            *e.categories.entry(category.clone()).or_default() += 1;
            *e.routed.entry(routed_idx).or_default() += 1;
            let cacheable = facts.static_first.last().map_or(0, |p| p.tokens);
            e.cacheable_tokens = e.cacheable_tokens.max(cacheable);
        }

        if !priced {
            return None;
        }
        let top = self.top;
        let routed_name = if routed_model == *actual_model {
            actual_model.clone()
        } else {
            self.name(&routed_model)
        };
        let t2 = &mut self.totals;
        let routed: ModelKey = (routed_name.clone(), service_tier);
        let routed_batched: ModelKey = (routed_name, deferred_tier(service_tier));
        let actual_batched: ModelKey = (actual_model.clone(), deferred_tier(service_tier));
        t2.baseline.add(actual.clone(), 1, &usage);
        t2.tiering.add(routed.clone(), 1, &usage);
        t2.batch.add(routed_batched.clone(), 1, &usage);
        t2.batch_alone.add(actual_batched, 1, &usage);
        if catalog.tier_of_model(&model) == Some(top) {
            t2.flagship.add(
                (category, routed_idx, actual_model.clone(), service_tier),
                1,
                &usage,
            );
        }
        let lean = without_tools(&usage, removed);
        t2.tool_search_alone.add(actual.clone(), 1, &lean);
        t2.cache_shares.input += usage.input_tokens;
        t2.cache_shares.actual += usage.cached_tokens;
        if facts.as_sent.is_empty() && facts.static_first.is_empty() {
            // Nothing cacheable: every cache scenario keeps the logged cached tokens.
            t2.cache_shares.as_sent += usage.cached_tokens;
            t2.cache_shares.static_first += usage.cached_tokens;
            t2.cache.add(routed_batched.clone(), 1, &usage);
            t2.tool_search.add(routed_batched, 1, &lean);
            t2.cache_alone.add(actual.clone(), 1, &usage);
            t2.cache_alone_as_sent.add(actual, 1, &usage);
            return None;
        }
        Some(SimCall {
            ts: ts_ms,
            source,
            line,
            actual_key: xxh3_64(model.as_bytes()),
            routed_key: xxh3_64(routed_batched.0.as_bytes()),
            actual,
            routed: routed_batched,
            usage,
            removed,
            as_sent: facts.as_sent,
            static_first: facts.static_first,
        })
    }
}

fn service_tier_factor(catalog: &Catalog, st: ServiceTier) -> f64 {
    catalog
        .multipliers()
        .get(st)
        .to_string()
        .parse::<f64>()
        .unwrap_or(1.0)
}

/// The caller's side: restores time order and runs the three cache simulations.
struct Simulator {
    heap: BinaryHeap<SimCall>,
    window: usize,
    actual_as_sent: CacheSim,
    actual_static: CacheSim,
    routed_static: CacheSim,
    totals: Totals,
}

impl Simulator {
    fn new(o: &Options) -> Simulator {
        Simulator {
            heap: BinaryHeap::new(),
            window: o.reorder_window.max(1),
            actual_as_sent: CacheSim::new(o.cache_ttl_secs, o.cache_cap),
            actual_static: CacheSim::new(o.cache_ttl_secs, o.cache_cap),
            routed_static: CacheSim::new(o.cache_ttl_secs, o.cache_cap),
            totals: Totals::default(),
        }
    }

    fn push(&mut self, c: SimCall) {
        self.heap.push(c);
        while self.heap.len() > self.window {
            if let Some(c) = self.heap.pop() {
                self.run(c);
            }
        }
    }

    fn finish(&mut self) {
        while let Some(c) = self.heap.pop() {
            self.run(c);
        }
    }

    fn run(&mut self, c: SimCall) {
        let input = c.usage.input_tokens;
        let m_sent = self.actual_as_sent.call(c.actual_key, &c.as_sent, c.ts);
        let m_static = self.actual_static.call(c.actual_key, &c.static_first, c.ts);
        let m_routed = self.routed_static.call(c.routed_key, &c.static_first, c.ts);
        let u_sent = with_cached(&c.usage, cached_for_match(m_sent, input));
        let u_static = with_cached(&c.usage, cached_for_match(m_static, input));
        let u_routed = with_cached(&c.usage, cached_for_match(m_routed, input));
        let t = &mut self.totals;
        t.cache_shares.as_sent += u_sent.cached_tokens;
        t.cache_shares.static_first += u_static.cached_tokens;
        t.cache_alone_as_sent.add(c.actual.clone(), 1, &u_sent);
        t.cache_alone.add(c.actual, 1, &u_static);
        t.cache.add(c.routed.clone(), 1, &u_routed);
        t.tool_search
            .add(c.routed, 1, &without_tools(&u_routed, c.removed));
    }
}

/// Audits `inputs` (call logs and usage exports; tierwise stores are read by the caller and
/// passed as `extra` calls). `on_progress(bytes_read, calls)` is called from this thread.
pub fn run(
    inputs: &[InputSpec],
    policy: &Policy,
    options: &Options,
    on_progress: &mut dyn FnMut(u64, u64),
) -> Result<Totals, AuditError> {
    // A missing or unreadable file fails before any work starts.
    for spec in inputs {
        match spec {
            InputSpec::Path(p) => {
                std::fs::File::open(p).map_err(|source| AuditError::Open {
                    path: p.clone(),
                    source,
                })?;
            }
            InputSpec::Store(p) => {
                tierwise_store::LogReader::open_location(&p.to_string_lossy()).map_err(|e| {
                    AuditError::Store {
                        path: tierwise_store::postgres::redact(&p.to_string_lossy()).into(),
                        message: e.to_string(),
                    }
                })?;
            }
            InputSpec::Stdin => {}
        }
    }
    let threads = if options.threads == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        options.threads
    }
    .clamp(1, 16);
    let bytes_read = Arc::new(AtomicU64::new(0));
    let stop = AtomicBool::new(false);
    let sources: Mutex<Vec<SourceInfo>> = Mutex::new(Vec::new());
    let (work_tx, work_rx) = sync_channel::<WorkBatch>(threads * 2);
    let work_rx = Mutex::new(work_rx);
    let (out_tx, out_rx) = sync_channel::<ToCaller>(threads * 4);

    let mut sim = Simulator::new(options);
    let mut failure: Option<AuditError> = None;
    let mut exports: Vec<(u32, Vec<ExportRow>)> = Vec::new();
    let worker_totals: Mutex<Vec<Totals>> = Mutex::new(Vec::new());
    let mut malformed: Vec<Malformed> = Vec::new();
    let mut malformed_count = 0u64;
    let pool = BufferPool::default();

    std::thread::scope(|s| {
        {
            let out_tx = out_tx.clone();
            let bytes_read = bytes_read.clone();
            let stop = &stop;
            let sources = &sources;
            let range = time_range(options);
            let pool = &pool;
            s.spawn(move || {
                let work = Work { tx: work_tx, pool };
                read_all(inputs, work, out_tx, bytes_read, stop, sources, range)
            });
        }
        for _ in 0..threads {
            let out_tx = out_tx.clone();
            let work_rx = &work_rx;
            let stop = &stop;
            let worker_totals = &worker_totals;
            let pool = &pool;
            s.spawn(move || {
                let mut w = Worker::new(policy, options);
                work_loop(&mut w, work_rx, &out_tx, stop, pool);
                if let Ok(mut all) = worker_totals.lock() {
                    all.push(w.totals);
                }
            });
        }
        drop(out_tx);
        let mut calls = 0u64;
        for msg in out_rx.iter() {
            match msg {
                ToCaller::Sim(batch) => {
                    for c in batch {
                        sim.push(c);
                    }
                }
                ToCaller::Progress { calls: n } => {
                    calls += n;
                    on_progress(bytes_read.load(Ordering::Relaxed), calls);
                }
                ToCaller::Malformed(mut m) => {
                    m.source = source_name(&sources, &m.source);
                    malformed_count += 1;
                    if options.strict && failure.is_none() {
                        failure = Some(AuditError::Strict {
                            name: m.source.clone(),
                            line: m.line,
                            message: m.error.clone(),
                        });
                        stop.store(true, Ordering::Relaxed);
                    }
                    if malformed.len() < MALFORMED_KEPT * 4 {
                        malformed.push(m);
                    }
                }
                ToCaller::Export(src, rows) => exports.push((src, rows)),
                ToCaller::Failed(e) => {
                    if failure.is_none() {
                        failure = Some(e);
                    }
                    stop.store(true, Ordering::Relaxed);
                }
            }
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    sim.finish();
    let mut totals = std::mem::take(&mut sim.totals);
    for w in worker_totals
        .into_inner()
        .map_err(|_| AuditError::Internal("a worker panicked".into()))?
    {
        totals.merge(w);
    }
    malformed.sort_by(|a, b| (&a.source, a.line).cmp(&(&b.source, b.line)));
    malformed.truncate(MALFORMED_KEPT);
    totals.malformed = malformed;
    totals.malformed_count = malformed_count;
    let mut infos = sources
        .into_inner()
        .map_err(|_| AuditError::Internal("the reader panicked".into()))?;
    for (src, rows) in exports {
        add_export(&mut totals, &policy.catalog, options, &rows);
        if let Some(info) = infos.get_mut(src as usize) {
            info.calls = rows.iter().map(|r| r.requests).sum();
        }
    }
    totals.sources = infos;
    Ok(totals)
}

fn source_name(sources: &Mutex<Vec<SourceInfo>>, idx: &str) -> String {
    let i: usize = idx.parse().unwrap_or(usize::MAX);
    sources
        .lock()
        .ok()
        .and_then(|s| s.get(i).map(|x| x.name.clone()))
        .unwrap_or_else(|| idx.to_string())
}

fn add_export(totals: &mut Totals, catalog: &Catalog, options: &Options, rows: &[ExportRow]) {
    for r in rows {
        let in_range = (options.since_ms.is_none() && options.until_ms.is_none())
            || r.start_ms.is_some_and(|t| {
                options.since_ms.is_none_or(|s| t >= s) && options.until_ms.is_none_or(|u| t < u)
            });
        if !in_range {
            totals.filtered += r.requests;
            continue;
        }
        totals.see_time(r.start_ms);
        let model: Name = Arc::from(r.model.as_deref().unwrap_or("(all models)"));
        let st = if r.batch == Some(true) {
            ServiceTier::Batch
        } else {
            ServiceTier::from_response(r.service_tier.as_deref())
        };
        totals.export.add((model.clone(), st), r.requests, &r.usage);
        if catalog.prices_for(&model).is_none() {
            totals.unpriced.add(model, r.requests, &r.usage);
        }
    }
}

fn work_loop(
    w: &mut Worker<'_>,
    work_rx: &Mutex<Receiver<WorkBatch>>,
    out: &SyncSender<ToCaller>,
    stop: &AtomicBool,
    pool: &BufferPool,
) {
    loop {
        let batch = {
            let Ok(rx) = work_rx.lock() else { return };
            match rx.recv() {
                Ok(b) => b,
                Err(_) => return,
            }
        };
        if stop.load(Ordering::Relaxed) {
            continue;
        }
        let mut sims = Vec::new();
        let n = batch.len() as u64;
        for (i, line) in batch.lines().enumerate() {
            let line_no = batch.first_line + i as u64;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match parse_line(line) {
                Ok(call) => {
                    if let Some(s) = w.call(call, batch.source, line_no) {
                        sims.push(s);
                    }
                }
                Err(error) => {
                    let m = Malformed {
                        source: batch.source.to_string(),
                        line: line_no,
                        error,
                    };
                    if out.send(ToCaller::Malformed(m)).is_err() {
                        return;
                    }
                }
            }
        }
        pool.give(batch.data, batch.ends);
        if !sims.is_empty() && out.send(ToCaller::Sim(sims)).is_err() {
            return;
        }
        if out.send(ToCaller::Progress { calls: n }).is_err() {
            return;
        }
    }
}

fn read_store(
    path: &std::path::Path,
    source: u32,
    work: &Work<'_>,
    stop: &AtomicBool,
    range: tierwise_store::TimeRange,
) -> Result<(u64, u64), AuditError> {
    let pool = work.pool;
    let store_err = |e: tierwise_store::StoreError| AuditError::Store {
        path: tierwise_store::postgres::redact(&path.to_string_lossy()).into(),
        message: e.to_string(),
    };
    let reader =
        tierwise_store::LogReader::open_location(&path.to_string_lossy()).map_err(store_err)?;
    let mut row_no = 0u64;
    let mut calls = 0u64;
    let mut skipped = 0u64;
    let mut batch = WorkBatch::new(source, 1, pool);
    let mut send_failed = false;
    reader
        .for_each(&range, |row| {
            row_no += 1;
            match crate::store::row_line(&row) {
                Some(line) => {
                    calls += 1;
                    batch.push(&line);
                }
                None => {
                    skipped += 1;
                    // Keep row numbers aligned with lines: an empty line is skipped by workers.
                    batch.push(&[]);
                }
            }
            if batch.len() >= BATCH_LINES {
                let next = WorkBatch::new(source, row_no + 1, pool);
                if stop.load(Ordering::Relaxed)
                    || work.tx.send(std::mem::replace(&mut batch, next)).is_err()
                {
                    send_failed = true;
                    return std::ops::ControlFlow::Break(());
                }
            }
            std::ops::ControlFlow::Continue(())
        })
        .map_err(store_err)?;
    if !send_failed && batch.len() > 0 {
        let _ = work.tx.send(batch);
    }
    Ok((calls, skipped))
}

/// The `--since` / `--until` window of the options, as the store reads it.
pub fn time_range(o: &Options) -> tierwise_store::TimeRange {
    let t = |ms: Option<i64>| {
        ms.and_then(|m| {
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(m) * 1_000_000).ok()
        })
    };
    tierwise_store::TimeRange {
        since: t(o.since_ms),
        until: t(o.until_ms),
    }
}

fn read_all(
    inputs: &[InputSpec],
    work: Work<'_>,
    out: SyncSender<ToCaller>,
    bytes_read: Arc<AtomicU64>,
    stop: &AtomicBool,
    sources: &Mutex<Vec<SourceInfo>>,
    range: tierwise_store::TimeRange,
) {
    for (idx, spec) in inputs.iter().enumerate() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let src = idx as u32;
        let mut opened = match input::open(spec, bytes_read.clone()) {
            Ok(o) => o,
            Err(e) => {
                let _ = out.send(ToCaller::Failed(e));
                return;
            }
        };
        if let Ok(mut s) = sources.lock() {
            s.push(SourceInfo {
                name: opened.name.clone(),
                format: opened.format,
                calls: 0,
                skipped: 0,
            });
        }
        let result = match opened.format {
            Format::UsageExport => {
                input::read_export(&mut opened.reader, &opened.name).map(|rows| {
                    let _ = out.send(ToCaller::Export(src, rows));
                    0
                })
            }
            Format::Store => match spec {
                InputSpec::Path(p) | InputSpec::Store(p) => read_store(p, src, &work, stop, range)
                    .map(|(n, skipped)| {
                        if let Ok(mut s) = sources.lock()
                            && let Some(info) = s.get_mut(idx)
                        {
                            info.skipped = skipped;
                        }
                        n
                    }),
                InputSpec::Stdin => Err(AuditError::Format {
                    name: opened.name.clone(),
                    reason: "a SQLite request log cannot be read from stdin: pass it with --store"
                        .to_string(),
                }),
            },
            Format::CallLog => read_lines(&mut opened.reader, &opened.name, src, &work, stop),
        };
        match result {
            Ok(n) => {
                if let Ok(mut s) = sources.lock()
                    && let Some(info) = s.get_mut(idx)
                    && opened.format != Format::UsageExport
                {
                    info.calls = n;
                }
            }
            Err(e) => {
                let _ = out.send(ToCaller::Failed(e));
                return;
            }
        }
    }
}

fn read_lines(
    reader: &mut Box<dyn BufRead + Send>,
    name: &str,
    source: u32,
    work: &Work<'_>,
    stop: &AtomicBool,
) -> Result<u64, AuditError> {
    let pool = work.pool;
    let mut line_no = 0u64;
    let mut calls = 0u64;
    let mut batch = WorkBatch::new(source, 1, pool);
    // Lines are copied from the reader's buffer straight onto the end of the batch's buffer
    // (what `read_until(b'\n', …)` reads, with a vectorized newline search).
    let mut start = 0usize;
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(AuditError::Read {
                    name: name.to_string(),
                    line: line_no + 1,
                    source,
                });
            }
        };
        let (used, line_done) = match memchr::memchr(b'\n', available) {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        let at_end = available.is_empty();
        batch
            .data
            .extend_from_slice(available.get(..used).unwrap_or_default());
        reader.consume(used);
        // a line ends at its newline, or at the end of the input when it has none
        let line_ends = line_done || (at_end && batch.data.len() > start);
        if !line_ends {
            if at_end {
                break;
            }
            continue;
        }
        line_no += 1;
        let line = batch.data.get(start..).unwrap_or_default();
        if !line.iter().all(u8::is_ascii_whitespace) {
            calls += 1;
        }
        batch.ends.push(batch.data.len());
        if batch.len() >= BATCH_LINES {
            if stop.load(Ordering::Relaxed) {
                return Ok(calls);
            }
            let next = WorkBatch::new(source, line_no + 1, pool);
            if work.tx.send(std::mem::replace(&mut batch, next)).is_err() {
                return Ok(calls);
            }
        }
        start = batch.data.len();
        if at_end {
            break;
        }
    }
    if batch.len() > 0 {
        let _ = work.tx.send(batch);
    }
    Ok(calls)
}

/// Names of the inputs, for messages.
pub fn input_names(inputs: &[PathBuf]) -> Vec<InputSpec> {
    inputs.iter().map(|p| InputSpec::parse(p)).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;

    /// `read_lines` batches the lines `read_until(b'\n')` reads (newlines kept, a last line
    /// without one, blank lines), numbered from 1, whatever the reader's buffer size.
    #[test]
    fn read_lines_reads_what_read_until_reads() {
        let mut text = String::new();
        for i in 0..700 {
            match i % 7 {
                0 => text.push('\n'),
                1 => text.push_str("  \r\n"),
                _ => text.push_str(&format!(
                    "{{\"n\": {i}, \"pad\": \"{}\"}}\n",
                    "x".repeat(i % 50)
                )),
            }
        }
        for input in [
            text.clone(),
            format!("{text}last without newline"),
            String::new(),
            "a".into(),
        ] {
            let mut expected = Vec::new();
            let mut r = std::io::Cursor::new(input.as_bytes());
            loop {
                let mut line = Vec::new();
                if std::io::BufRead::read_until(&mut r, b'\n', &mut line).unwrap() == 0 {
                    break;
                }
                expected.push(line);
            }
            let want_calls = expected
                .iter()
                .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
                .count() as u64;
            for cap in [1, 5, 64, 1 << 16] {
                let pool = BufferPool::default();
                let (tx, rx) = sync_channel::<WorkBatch>(1024);
                let work = Work { tx, pool: &pool };
                let mut reader: Box<dyn BufRead + Send> =
                    Box::new(std::io::BufReader::with_capacity(
                        cap,
                        std::io::Cursor::new(input.clone().into_bytes()),
                    ));
                let stop = AtomicBool::new(false);
                let calls = read_lines(&mut reader, "t", 0, &work, &stop).unwrap();
                drop(work);
                let mut got: Vec<Vec<u8>> = Vec::new();
                for b in rx.iter() {
                    assert_eq!(b.first_line, got.len() as u64 + 1);
                    assert!(b.len() <= BATCH_LINES);
                    got.extend(b.lines().map(<[u8]>::to_vec));
                }
                assert_eq!(got, expected, "buffer {cap}");
                assert_eq!(calls, want_calls);
            }
        }
    }
}
