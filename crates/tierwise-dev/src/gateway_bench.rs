//! The gateway benchmark behind `tierwise bench gateway --requests N [--concurrency C] [--json]`
//! (a binary built with `--features bench`): the latency the gateway adds over calling the
//! upstream directly.
//!
//! The mock upstream and the gateway run in this process, each on its own runtime (as if they
//! were separate services), on 127.0.0.1 with ephemeral ports; the client runs on a third.
//! The same chat request (156 prompt tokens) goes to the mock directly (`model` =
//! the mini tier's model) and through the gateway (`model` = `auto`, routed by the default
//! rules to the same model), in alternating blocks of 10 requests per client so drift and load
//! from elsewhere on the machine hit both sides alike. Latency is request sent → full response
//! read; "added" is the gateway's percentile minus the direct one. The gateway does its full
//! work: parse, o200k signals, routing, shaping, pooled upstream call, pricing, metrics and a
//! request-log row (SQLite in a temp file, written by the log thread as in production).

use std::time::{Duration, Instant};

use anyhow::Context;
use comfy_table::{Cell, Table, presets::UTF8_FULL_CONDENSED};
use futures::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};
use tierwise_core::Config;
use tierwise_gateway::Gateway;
use tierwise_mock::Mock;
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

/// Requests per block per concurrent client; the sides alternate block by block, so a burst of
/// load from elsewhere on the machine hits both sides alike.
const BLOCK: usize = 10;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Stats {
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    mean_ms: f64,
    max_ms: f64,
    requests_per_sec: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub requests: usize,
    pub concurrency: usize,
    pub warmup: usize,
    pub prompt_tokens: usize,
    pub direct: Stats,
    pub gateway: Stats,
    /// gateway − direct, per statistic.
    pub added: Added,
    pub errors: usize,
    pub log_rows_written: u64,
}

#[derive(Debug, Serialize)]
pub struct Added {
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    mean_ms: f64,
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // Nearest rank.
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e3
}

fn stats(mut lat: Vec<Duration>, wall: Duration) -> Stats {
    lat.sort_unstable();
    let n = lat.len().max(1) as f64;
    Stats {
        p50_ms: percentile(&lat, 0.50),
        p90_ms: percentile(&lat, 0.90),
        p99_ms: percentile(&lat, 0.99),
        p999_ms: percentile(&lat, 0.999),
        mean_ms: lat.iter().map(Duration::as_secs_f64).sum::<f64>() * 1e3 / n,
        max_ms: lat.last().map(|d| d.as_secs_f64() * 1e3).unwrap_or(0.0),
        requests_per_sec: lat.len() as f64 / wall.as_secs_f64().max(1e-9),
    }
}

fn runtime(name: &str, workers: usize) -> anyhow::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(name)
        .enable_all()
        .build()
        .with_context(|| format!("cannot start the {name} runtime"))
}

/// A typical chat call: a system prompt and one question.
fn request_body(model: &str) -> Value {
    let system = "You are a helpful assistant for an online bookstore. Answer questions about \
        orders, shipping, returns and book recommendations. Be concise and friendly; if you do \
        not know, say so and offer to connect the customer with a human agent. Never invent \
        order numbers, prices or delivery dates. Prefer short paragraphs and bullet lists when \
        listing options. Today's promotions: free shipping on orders over 35 dollars, and 10 \
        percent off all poetry titles.";
    let user = "Hi! I ordered two paperbacks last Tuesday and the tracking page still says the \
        label was created but nothing has moved since. Is that normal, and how long should I \
        wait before asking for a replacement? Also, can you recommend a short poetry collection \
        for a friend who liked Mary Oliver?";
    json!({"model": model, "messages": [
        {"role": "system", "content": system},
        {"role": "user", "content": user}
    ], "temperature": 0.2})
}

/// Sends `n` requests (`concurrency` at a time); returns per-request latency and error count.
async fn block(
    client: &reqwest::Client,
    url: &str,
    body: &[u8],
    n: usize,
    concurrency: usize,
    key: Option<&str>,
) -> (Vec<Duration>, usize) {
    let results: Vec<Option<Duration>> = futures::stream::iter(0..n)
        .map(|_| async {
            let t = Instant::now();
            let mut req = client
                .post(url)
                .header("content-type", "application/json")
                .body(body.to_vec());
            if let Some(k) = key {
                req = req.bearer_auth(k);
            }
            let resp = req.send().await.ok()?;
            let ok = resp.status().is_success();
            let bytes = resp.bytes().await.ok()?;
            let elapsed = t.elapsed();
            (ok && !bytes.is_empty()).then_some(elapsed)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let errors = results.iter().filter(|r| r.is_none()).count();
    (results.into_iter().flatten().collect(), errors)
}

/// What to run: requests per side and concurrent clients; keys mode and the store.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub requests: usize,
    pub concurrency: usize,
    /// Every gateway call presents a key with a day budget and an rpm limit.
    pub keys: bool,
    /// A postgres:// URL; `None`: SQLite in a temp file.
    pub store: Option<String>,
}

/// Runs the benchmark; `progress` is called with the number of requests done so far out of
/// `total` (both sides, warm-up included).
pub fn run(args: BenchOptions, progress: &(dyn Fn(u64, u64) + Sync)) -> anyhow::Result<Report> {
    if args.requests == 0 {
        anyhow::bail!("--requests must be at least 1");
    }
    if args.concurrency == 0 {
        anyhow::bail!("--concurrency must be at least 1");
    }
    let n = args.requests;
    let warmup = (n / 10).clamp(50, 1000);

    // The upstream: the mock, counting only (no per-request memory).
    let mock_rt = runtime("bench-mock", 1)?;
    let (mock_stop, mock_stopped) = oneshot::channel::<()>();
    let mock_listener = mock_rt.block_on(TcpListener::bind("127.0.0.1:0"))?;
    let mock_addr = mock_listener.local_addr()?;
    let mock = Mock::counting_only();
    let mock_task = mock_rt.spawn(tierwise_mock::serve(mock_listener, mock.clone(), async {
        let _ = mock_stopped.await;
    }));
    let mock_base = format!("http://{mock_addr}/v1");

    // The gateway: the embedded default config pointed at the mock; the log in a temp file.
    let env_base = mock_base.clone();
    let env = move |k: &str| (k == "TIERWISE_UPSTREAM_BASE_URL").then(|| env_base.clone());
    let mut config = Config::embedded(&env).context("embedded config")?;
    let db = std::env::temp_dir().join(format!("tierwise-bench-{}.db", std::process::id()));
    config.log.path = db.clone();
    if args.keys {
        config.auth.mode = tierwise_core::config::AuthMode::Keys;
    }
    if let Some(url) = &args.store {
        config.store.url = Some(tierwise_core::config::Secret::new(url.clone()));
    }
    let mini_model = config
        .catalog
        .tier_index("mini")
        .and_then(|i| config.catalog.tier(i))
        .map(|t| t.model.clone())
        .context("the default config has no mini tier")?;
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let gw_rt = runtime("bench-gateway", workers)?;
    let gateway = Gateway::new(config).context("cannot start the gateway")?;
    let key = if args.keys {
        let store = std::sync::Arc::clone(&gateway.state().store);
        let created = gw_rt.block_on(store.create_key(tierwise_store::keys::NewKey {
            name: format!("bench-{}", std::process::id()),
            limits: tierwise_store::keys::Limits {
                budget_usd_day: Some(rust_decimal::Decimal::from(1_000_000)),
                rpm: Some(100_000_000),
                ..Default::default()
            },
            ..Default::default()
        }))?;
        Some(created.secret)
    } else {
        None
    };
    let key = key.as_deref();
    let gw_listener = gw_rt.block_on(TcpListener::bind("127.0.0.1:0"))?;
    let gw_addr = gw_listener.local_addr()?;
    let (gw_stop, gw_stopped) = oneshot::channel::<()>();
    let gw_task = gw_rt.spawn(gateway.serve(gw_listener, async {
        let _ = gw_stopped.await;
    }));

    // The client.
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let direct_url = format!("{mock_base}/chat/completions");
    let gateway_url = format!("http://{gw_addr}/v1/chat/completions");
    let direct_body = serde_json::to_vec(&request_body(&mini_model))?;
    let gateway_body = serde_json::to_vec(&request_body("auto"))?;
    let prompt_tokens = tierwise_core::tokens::count_messages(
        request_body("auto")["messages"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default(),
    );
    let total = (2 * (n + warmup)) as u64;
    let done = std::sync::atomic::AtomicU64::new(0);
    let inc = |k: u64| {
        let now = done.fetch_add(k, std::sync::atomic::Ordering::Relaxed) + k;
        progress(now, total);
    };
    let c = args.concurrency;
    let (direct, via, errors, dwall, gwall) = client_rt.block_on(async {
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(c.max(16))
            .build()?;
        // Warm up both paths (connections, tokenizer tables, SQLite pages).
        let (_, e1) = block(&client, &direct_url, &direct_body, warmup, c, None).await;
        inc(warmup as u64);
        let (_, e2) = block(&client, &gateway_url, &gateway_body, warmup, c, key).await;
        inc(warmup as u64);
        if e1 + e2 > 0 {
            anyhow::bail!("{} warm-up requests failed", e1 + e2);
        }
        let (mut direct, mut via) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut errors, mut dwall, mut gwall) = (0, Duration::ZERO, Duration::ZERO);
        let mut done = 0;
        while done < n {
            let k = (BLOCK * c).min(n - done);
            let t = Instant::now();
            let (lat, e) = block(&client, &direct_url, &direct_body, k, c, None).await;
            dwall += t.elapsed();
            direct.extend(lat);
            errors += e;
            inc(k as u64);
            let t = Instant::now();
            let (lat, e) = block(&client, &gateway_url, &gateway_body, k, c, key).await;
            gwall += t.elapsed();
            via.extend(lat);
            errors += e;
            inc(k as u64);
            done += k;
        }
        Ok((direct, via, errors, dwall, gwall))
    })?;

    // Stop the gateway (drains the log), then the mock.
    let _ = gw_stop.send(());
    let report = gw_rt
        .block_on(gw_task)
        .context("gateway task failed")?
        .context("gateway failed")?;
    let _ = mock_stop.send(());
    let _ = mock_rt.block_on(mock_task);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }

    let d = stats(direct, dwall);
    let g = stats(via, gwall);
    let report = Report {
        requests: n,
        concurrency: c,
        warmup,
        prompt_tokens,
        direct: d,
        gateway: g,
        added: Added {
            p50_ms: g.p50_ms - d.p50_ms,
            p90_ms: g.p90_ms - d.p90_ms,
            p99_ms: g.p99_ms - d.p99_ms,
            p999_ms: g.p999_ms - d.p999_ms,
            mean_ms: g.mean_ms - d.mean_ms,
        },
        errors,
        log_rows_written: report.log.written,
    };
    Ok(report)
}

/// The report as a table.
pub fn table(r: &Report) -> String {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "mean ms", "max ms", "req/s",
    ]);
    let row = |name: &str, s: &Stats| {
        vec![
            Cell::new(name),
            Cell::new(format!("{:.3}", s.p50_ms)),
            Cell::new(format!("{:.3}", s.p90_ms)),
            Cell::new(format!("{:.3}", s.p99_ms)),
            Cell::new(format!("{:.3}", s.p999_ms)),
            Cell::new(format!("{:.3}", s.mean_ms)),
            Cell::new(format!("{:.3}", s.max_ms)),
            Cell::new(format!("{:.0}", s.requests_per_sec)),
        ]
    };
    t.add_row(row("mock directly", &r.direct));
    t.add_row(row("through tierwise", &r.gateway));
    t.add_row(vec![
        Cell::new("added by tierwise"),
        Cell::new(format!("{:.3}", r.added.p50_ms)),
        Cell::new(format!("{:.3}", r.added.p90_ms)),
        Cell::new(format!("{:.3}", r.added.p99_ms)),
        Cell::new(format!("{:.3}", r.added.p999_ms)),
        Cell::new(format!("{:.3}", r.added.mean_ms)),
        Cell::new(""),
        Cell::new(""),
    ]);
    format!(
        "{t}\n{} requests per side (+{} warm-up), concurrency {}, prompt {} tokens, {} errors, \
         {} log rows written",
        r.requests, r.warmup, r.concurrency, r.prompt_tokens, r.errors, r.log_rows_written
    )
}
