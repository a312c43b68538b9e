//! The write side of the request log: a bounded queue drained by one writer thread.
//!
//! The gateway calls [`RequestLog::record`] from its response path; that is a non-blocking push
//! into a bounded channel in the normal case. The writer thread takes everything queued (up to
//! `max_batch` rows) and inserts it in one transaction, so the cost per row is a prepared-statement
//! execute, not an fsync. When the queue is full — the disk cannot keep up with `capacity` rows in
//! flight — `record` blocks the caller until the writer drains a batch: backpressure, not loss.
//! [`RequestLog::flush`] returns once everything queued before it is committed;
//! [`RequestLog::close`] drains the queue and joins the thread.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rusqlite::{Connection, params};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;

use crate::schema::{self, COLUMNS};
use crate::{RequestRow, StoreError};

/// Tuning of the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterOptions {
    /// Rows that may wait in the queue before `record` applies backpressure.
    pub capacity: usize,
    /// Most rows inserted per transaction.
    pub max_batch: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            capacity: 16_384,
            max_batch: 1_024,
        }
    }
}

/// Counters of the writer, for metrics and for the shutdown report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LogStats {
    /// Rows committed.
    pub written: u64,
    /// Rows that could not be inserted (SQLite error); each is also reported with `tracing`.
    pub failed: u64,
    /// Times `record` found the queue full and had to wait.
    pub backpressure: u64,
    /// Transactions committed.
    pub batches: u64,
}

#[derive(Debug, Default)]
struct Counters {
    written: AtomicU64,
    failed: AtomicU64,
    backpressure: AtomicU64,
    batches: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> LogStats {
        LogStats {
            written: self.written.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            backpressure: self.backpressure.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
        }
    }
}

enum Msg {
    Row(Box<RequestRow>),
    Flush(SyncSender<()>),
    Close,
}

/// The request log's write handle. Cheap to share behind an `Arc`; `record` takes `&self`.
#[derive(Debug)]
pub struct RequestLog {
    tx: SyncSender<Msg>,
    thread: Mutex<Option<JoinHandle<()>>>,
    closed: AtomicBool,
    counters: Arc<Counters>,
    path: PathBuf,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Msg::Row(r) => write!(f, "Row({})", r.id),
            Msg::Flush(_) => f.write_str("Flush"),
            Msg::Close => f.write_str("Close"),
        }
    }
}

impl RequestLog {
    /// Opens (creating it and its schema if needed) the log at `path` and starts the writer thread.
    /// Errors here — unwritable path, newer schema — surface at start, not on the first request.
    pub fn open(path: &Path, options: WriterOptions) -> Result<RequestLog, StoreError> {
        let shown = path.display().to_string();
        let open_err = |source| StoreError::Open {
            path: shown.clone(),
            source,
        };
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
            && !dir.exists()
        {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                path: shown.clone(),
                source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
            })?;
        }
        let mut conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_err)?;
        // WAL: readers (audit) never block the writer; NORMAL sync is durable across process
        // crashes, which is what a log needs.
        let _mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        schema::migrate(&mut conn, &shown)?;

        let (tx, rx) = mpsc::sync_channel(options.capacity.max(1));
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        let max_batch = options.max_batch.max(1);
        let thread = std::thread::Builder::new()
            .name("tierwise-log-writer".into())
            .spawn(move || writer_loop(conn, rx, max_batch, &thread_counters))
            .map_err(|e| StoreError::Writer(e.to_string()))?;
        Ok(RequestLog {
            tx,
            thread: Mutex::new(Some(thread)),
            closed: AtomicBool::new(false),
            counters,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues one row. Does not wait for the disk; blocks only when `capacity` rows are already
    /// waiting (backpressure). Fails only after `close`.
    pub fn record(&self, row: RequestRow) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        match self.tx.try_send(Msg::Row(Box::new(row))) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(msg)) => {
                self.counters.backpressure.fetch_add(1, Ordering::Relaxed);
                self.tx.send(msg).map_err(|_| StoreError::Closed)
            }
            Err(TrySendError::Disconnected(_)) => Err(StoreError::Closed),
        }
    }

    /// Blocks until every row queued before this call is committed.
    pub fn flush(&self) -> Result<(), StoreError> {
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        self.tx
            .send(Msg::Flush(ack_tx))
            .map_err(|_| StoreError::Closed)?;
        ack_rx.recv().map_err(|_| StoreError::Closed)
    }

    /// Whether the writer thread is running.
    pub fn is_alive(&self) -> bool {
        self.thread
            .lock()
            .map(|t| t.as_ref().is_some_and(|h| !h.is_finished()))
            .unwrap_or(false)
    }

    pub fn stats(&self) -> LogStats {
        self.counters.snapshot()
    }

    /// Drains the queue, commits, and stops the writer thread. Idempotent. Blocks: call it from
    /// a blocking context (e.g. `tokio::task::spawn_blocking`).
    pub fn close(&self) -> Result<LogStats, StoreError> {
        self.closed.store(true, Ordering::Release);
        let handle = self
            .thread
            .lock()
            .map_err(|_| StoreError::Writer("lock poisoned".into()))?
            .take();
        if let Some(handle) = handle {
            // The thread may already be gone (it only stops on Close or a panic).
            let _ = self.tx.send(Msg::Close);
            handle
                .join()
                .map_err(|_| StoreError::Writer("the writer thread panicked".into()))?;
        }
        Ok(self.counters.snapshot())
    }
}

impl Drop for RequestLog {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::error!(error = %e, "request log: closing on drop failed");
        }
    }
}

fn writer_loop(mut conn: Connection, rx: Receiver<Msg>, max_batch: usize, counters: &Counters) {
    let mut rows: Vec<RequestRow> = Vec::with_capacity(max_batch);
    let mut acks: Vec<SyncSender<()>> = Vec::new();
    loop {
        let Ok(first) = rx.recv() else {
            // Every sender is gone: nothing more can arrive.
            return;
        };
        let mut close = false;
        let mut msg = Some(first);
        // Take whatever else is already queued; on close, everything.
        while let Some(m) = msg.take() {
            match m {
                Msg::Row(r) => rows.push(*r),
                Msg::Flush(ack) => acks.push(ack),
                Msg::Close => close = true,
            }
            if close || rows.len() < max_batch {
                msg = rx.try_recv().ok();
            }
        }
        if !rows.is_empty() {
            write_batch(&mut conn, &rows, counters);
            rows.clear();
        }
        for ack in acks.drain(..) {
            let _ = ack.send(());
        }
        if close {
            return;
        }
    }
}

/// Inserts rows in one transaction; if that fails, row by row so one bad row loses only itself.
fn write_batch(conn: &mut Connection, rows: &[RequestRow], counters: &Counters) {
    match insert_all(conn, rows) {
        Ok(()) => {
            counters
                .written
                .fetch_add(rows.len() as u64, Ordering::Relaxed);
            counters.batches.fetch_add(1, Ordering::Relaxed);
        }
        Err(batch_err) => {
            tracing::warn!(error = %batch_err, rows = rows.len(), "request log: batch insert failed; inserting rows one by one");
            for row in rows {
                match insert_all(conn, std::slice::from_ref(row)) {
                    Ok(()) => {
                        counters.written.fetch_add(1, Ordering::Relaxed);
                        counters.batches.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        counters.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(error = %e, id = %row.id, "request log: row lost");
                    }
                }
            }
        }
    }
}

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn insert_all(conn: &mut Connection, rows: &[RequestRow]) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction()?;
    {
        let sql = format!(
            "INSERT INTO requests ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, \
             ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, \
             ?28, ?29, ?30, ?31, ?32)"
        );
        let mut stmt = tx.prepare_cached(&sql)?;
        for r in rows {
            let ts_ms = i64::try_from(r.time.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
            let time = r
                .time
                .format(&Rfc3339)
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
            stmt.execute(params![
                r.id.to_string(),
                ts_ms,
                time,
                r.endpoint,
                r.requested_model,
                r.tier,
                r.model,
                r.reason,
                r.category,
                r.role,
                r.mode,
                r.service_tier,
                int(r.input_tokens),
                int(r.cached_tokens),
                int(r.output_tokens),
                int(r.reasoning_tokens),
                r.usage_estimated,
                r.cost_usd.map(|d| d.to_string()),
                r.baseline_cost_usd.map(|d| d.to_string()),
                r.latency_ms,
                r.status,
                r.streamed,
                r.attempts,
                r.tiers_tried.join(","),
                r.error,
                r.request_body,
                r.response_body,
                int(r.tools.offered),
                int(r.tools.sent),
                int(r.tools.tokens_offered),
                int(r.tools.tokens_sent),
                r.category_source,
            ])?;
        }
    }
    tx.commit()
}
