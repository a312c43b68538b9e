//! The write side of the request log: a bounded queue drained by one writer thread.
//!
//! The gateway calls [`RequestLog::record`] from its response path; that is a non-blocking push
//! into a bounded channel in the normal case. The writer thread takes everything queued (up to
//! `max_batch` rows) and inserts it in one transaction, so the cost per row is a prepared-statement
//! execute, not an fsync. When the queue is full — the disk cannot keep up with `capacity` rows in
//! flight — `record` blocks the caller until the writer drains a batch: backpressure, not loss.
//! [`RequestLog::flush`] returns once everything queued before it is committed;
//! [`RequestLog::close`] drains the queue and joins the thread.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;

use crate::schema::COLUMNS;
use crate::{RequestRow, StoreError};

/// Tuning of the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterOptions {
    /// Rows that may wait in the channel before `record` applies backpressure. The writer
    /// drains the channel even while its database is down, so it fills only while one insert
    /// is in progress.
    pub capacity: usize,
    /// Most rows inserted per transaction.
    pub max_batch: usize,
    /// Rows kept in memory while the database cannot be written; beyond it the oldest are
    /// dropped (counted in [`LogStats::dropped`]).
    pub max_buffered: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            capacity: 16_384,
            max_batch: 1_024,
            max_buffered: 100_000,
        }
    }
}

/// Counters of the writer, for metrics and for the shutdown report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LogStats {
    /// Rows committed.
    pub written: u64,
    /// Rows that could not be inserted (a bad row, or still unwritten when the writer closed
    /// with its database down); each is also reported with `tracing`.
    pub failed: u64,
    /// Times `record` found the queue full and had to wait.
    pub backpressure: u64,
    /// Transactions committed.
    pub batches: u64,
    /// Rows dropped because more than `max_buffered` waited for a database that was down.
    pub dropped: u64,
    /// Failed attempts to reach the database (each followed by a retry).
    pub retries: u64,
}

#[derive(Debug, Default)]
struct Counters {
    written: AtomicU64,
    failed: AtomicU64,
    backpressure: AtomicU64,
    batches: AtomicU64,
    dropped: AtomicU64,
    retries: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> LogStats {
        LogStats {
            written: self.written.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            backpressure: self.backpressure.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
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
    target: String,
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

/// Why a batch could not be written.
#[derive(Debug)]
pub(crate) enum SinkError {
    /// Something in the rows (e.g. a duplicate id): retried row by row, the bad row is lost.
    Rows(String),
    /// The database cannot be reached: the rows stay buffered and the batch is retried.
    Unavailable(String),
}

/// Where the writer thread puts rows: a SQLite connection or a PostgreSQL client.
pub(crate) trait Sink {
    fn insert(&mut self, rows: &[RequestRow]) -> Result<(), SinkError>;
}

/// SQLite: one connection owned by the writer thread.
struct SqliteSink(Connection);

impl Sink for SqliteSink {
    fn insert(&mut self, rows: &[RequestRow]) -> Result<(), SinkError> {
        insert_all(&mut self.0, rows).map_err(|e| SinkError::Rows(e.to_string()))
    }
}

/// First and longest pause between attempts to reach a database that is down.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How long `close` keeps retrying a database that is down before giving the rows up.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

impl RequestLog {
    /// Opens (creating it and its schema if needed) the SQLite log at `path` and starts the
    /// writer thread. Errors here — unwritable path, newer schema — surface at start, not on
    /// the first request.
    pub fn open(path: &Path, options: WriterOptions) -> Result<RequestLog, StoreError> {
        let conn = crate::sqlite::connect(path)?;
        RequestLog::start(SqliteSink(conn), path.display().to_string(), options)
    }

    /// Starts the writer thread over `sink`.
    pub(crate) fn start(
        sink: impl Sink + Send + 'static,
        target: String,
        options: WriterOptions,
    ) -> Result<RequestLog, StoreError> {
        let (tx, rx) = mpsc::sync_channel(options.capacity.max(1));
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("tierwise-log-writer".into())
            .spawn(move || writer_loop(sink, rx, options, &thread_counters))
            .map_err(|e| StoreError::Writer(e.to_string()))?;
        Ok(RequestLog {
            tx,
            thread: Mutex::new(Some(thread)),
            closed: AtomicBool::new(false),
            counters,
            target,
        })
    }

    /// The file path or database URL (without password) rows go to.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Queues one row. Does not wait for the database; blocks only when `capacity` rows are
    /// already waiting in the channel (backpressure). Fails only after `close`.
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

    /// Blocks until every row queued before this call is committed (while the database is
    /// down, until it is back).
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

    /// Drains the queue, commits, and stops the writer thread. Idempotent. Blocks (at most
    /// ~10 s more when the database is down): call it from a blocking context (e.g.
    /// `tokio::task::spawn_blocking`).
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

/// What the writer thread holds between batches.
struct Pending {
    rows: VecDeque<RequestRow>,
    /// Flushes waiting, each with the number of rows taken before it.
    acks: Vec<(u64, SyncSender<()>)>,
    close: bool,
    max_buffered: usize,
    /// Rows taken from the channel so far.
    taken: u64,
    /// Rows taken and gone from the buffer (written, failed or dropped).
    done: u64,
}

impl Pending {
    fn take(&mut self, msg: Msg, counters: &Counters) {
        match msg {
            Msg::Row(r) => {
                self.taken += 1;
                if self.rows.len() >= self.max_buffered
                    && let Some(old) = self.rows.pop_front()
                {
                    self.done += 1;
                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(id = %old.id, "request log: buffer full while the database is down; oldest row dropped");
                }
                self.rows.push_back(*r);
            }
            Msg::Flush(ack) => self.acks.push((self.taken, ack)),
            Msg::Close => self.close = true,
        }
    }

    /// Answers the flushes whose rows are all gone from the buffer.
    fn answer(&mut self) {
        let done = self.done;
        self.acks.retain(|(before, ack)| {
            if *before <= done {
                let _ = ack.send(());
                false
            } else {
                true
            }
        });
    }
}

fn writer_loop(
    mut sink: impl Sink,
    rx: Receiver<Msg>,
    options: WriterOptions,
    counters: &Counters,
) {
    let max_batch = options.max_batch.max(1);
    let mut p = Pending {
        rows: VecDeque::new(),
        acks: Vec::new(),
        close: false,
        max_buffered: options.max_buffered.max(max_batch),
        taken: 0,
        done: 0,
    };
    let mut backoff = RETRY_MIN;
    let mut give_up_at: Option<Instant> = None;
    loop {
        if p.rows.is_empty() && p.acks.is_empty() && !p.close {
            match rx.recv() {
                Ok(m) => p.take(m, counters),
                // Every sender is gone: nothing more can arrive.
                Err(_) => return,
            }
        }
        // Take what else is queued: up to a batch, or everything on close.
        while p.close || p.rows.len() < max_batch {
            match rx.try_recv() {
                Ok(m) => p.take(m, counters),
                Err(_) => break,
            }
        }
        let mut down = false;
        while !p.rows.is_empty() {
            let n = p.rows.len().min(max_batch);
            match write_batch(&mut sink, &p.rows.make_contiguous()[..n], counters) {
                Ok(()) => {
                    p.rows.drain(..n);
                    p.done += n as u64;
                    p.answer();
                    backoff = RETRY_MIN;
                }
                Err(e) => {
                    counters.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, buffered = p.rows.len(), retry_ms = backoff.as_millis() as u64, "request log: database unavailable; rows kept, retrying");
                    down = true;
                    break;
                }
            }
            if !p.close && p.rows.len() < max_batch {
                break;
            }
        }
        if !down {
            p.answer();
            if p.close && p.rows.is_empty() {
                for (_, ack) in p.acks.drain(..) {
                    let _ = ack.send(());
                }
                return;
            }
            continue;
        }
        if p.close {
            let deadline = *give_up_at.get_or_insert_with(|| Instant::now() + CLOSE_GRACE);
            if Instant::now() >= deadline {
                counters
                    .failed
                    .fetch_add(p.rows.len() as u64, Ordering::Relaxed);
                tracing::error!(
                    rows = p.rows.len(),
                    "request log: closing with the database down; rows lost"
                );
                p.rows.clear();
                for (_, ack) in p.acks.drain(..) {
                    let _ = ack.send(());
                }
                return;
            }
        }
        // Wait before retrying, still draining the channel so `record` never waits on us.
        let until = Instant::now() + backoff;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(m) => p.take(m, counters),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    p.close = true;
                    break;
                }
            }
        }
        backoff = (backoff * 2).min(RETRY_MAX);
    }
}

/// Inserts rows in one transaction; if the rows are at fault, row by row so one bad row loses
/// only itself. `Err` when the database cannot be reached (nothing written, nothing lost).
fn write_batch(
    sink: &mut impl Sink,
    rows: &[RequestRow],
    counters: &Counters,
) -> Result<(), String> {
    match sink.insert(rows) {
        Ok(()) => {
            counters
                .written
                .fetch_add(rows.len() as u64, Ordering::Relaxed);
            counters.batches.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        Err(SinkError::Unavailable(e)) => Err(e),
        Err(SinkError::Rows(batch_err)) => {
            tracing::warn!(error = %batch_err, rows = rows.len(), "request log: batch insert failed; inserting rows one by one");
            for row in rows {
                match sink.insert(std::slice::from_ref(row)) {
                    Ok(()) => {
                        counters.written.fetch_add(1, Ordering::Relaxed);
                        counters.batches.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(SinkError::Unavailable(e)) => return Err(e),
                    Err(SinkError::Rows(e)) => {
                        counters.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(error = %e, id = %row.id, "request log: row lost");
                    }
                }
            }
            Ok(())
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
             ?28, ?29, ?30, ?31, ?32, ?33, ?34)"
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
                r.key_id,
                r.team,
            ])?;
        }
    }
    tx.commit()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A database that is down for its first `down` attempts, then takes everything.
    struct Flaky {
        down: usize,
        attempts: Arc<AtomicUsize>,
        rows: Arc<Mutex<Vec<uuid::Uuid>>>,
    }

    impl Sink for Flaky {
        fn insert(&mut self, rows: &[RequestRow]) -> Result<(), SinkError> {
            let n = self.attempts.fetch_add(1, Ordering::SeqCst);
            if n < self.down {
                return Err(SinkError::Unavailable("connection refused".into()));
            }
            self.rows.lock().unwrap().extend(rows.iter().map(|r| r.id));
            Ok(())
        }
    }

    fn row() -> RequestRow {
        RequestRow {
            id: uuid::Uuid::now_v7(),
            time: time::OffsetDateTime::now_utc(),
            endpoint: "chat.completions".into(),
            requested_model: "auto".into(),
            tier: "nano".into(),
            model: "m".into(),
            reason: "r".into(),
            category: None,
            category_source: None,
            role: None,
            mode: "sync".into(),
            service_tier: "default".into(),
            input_tokens: 1,
            cached_tokens: 0,
            output_tokens: 1,
            reasoning_tokens: 0,
            usage_estimated: false,
            cost_usd: None,
            baseline_cost_usd: None,
            latency_ms: 1.0,
            status: 200,
            streamed: false,
            attempts: 1,
            tiers_tried: vec![],
            error: None,
            request_body: None,
            response_body: None,
            tools: crate::ToolCounts::default(),
            key_id: None,
            team: None,
        }
    }

    /// While the database is down, `record` returns at once and rows wait in memory; when it
    /// comes back every row is written, in order, and `flush` returns.
    #[test]
    fn rows_wait_for_a_database_that_is_down() {
        let attempts = Arc::new(AtomicUsize::new(0));
        let written = Arc::new(Mutex::new(Vec::new()));
        let sink = Flaky {
            down: 3,
            attempts: Arc::clone(&attempts),
            rows: Arc::clone(&written),
        };
        let options = WriterOptions {
            capacity: 4,
            max_batch: 8,
            max_buffered: 1_000,
        };
        let log = RequestLog::start(sink, "flaky".into(), options).unwrap();
        let ids: Vec<_> = (0..100)
            .map(|_| {
                let r = row();
                let id = r.id;
                let t = Instant::now();
                log.record(r).unwrap();
                // Never waits on the database (capacity 4 < 100 rows: the writer drains the
                // channel while it waits to retry).
                assert!(t.elapsed() < Duration::from_millis(50));
                id
            })
            .collect();
        log.flush().unwrap();
        let stats = log.close().unwrap();
        assert_eq!(*written.lock().unwrap(), ids);
        assert_eq!(stats.written, 100);
        assert_eq!(stats.retries, 3);
        assert_eq!(stats.dropped, 0);
    }

    /// Beyond `max_buffered` the oldest rows are dropped and counted; the newest are kept.
    #[test]
    fn the_buffer_is_bounded_while_the_database_is_down() {
        let written = Arc::new(Mutex::new(Vec::new()));
        let sink = Flaky {
            down: 2,
            attempts: Arc::new(AtomicUsize::new(0)),
            rows: Arc::clone(&written),
        };
        let options = WriterOptions {
            capacity: 1_000,
            max_batch: 10,
            max_buffered: 10,
        };
        let log = RequestLog::start(sink, "flaky".into(), options).unwrap();
        let ids: Vec<_> = (0..50)
            .map(|_| {
                let r = row();
                let id = r.id;
                log.record(r).unwrap();
                id
            })
            .collect();
        let stats = log.close().unwrap();
        let got = written.lock().unwrap().clone();
        assert_eq!(stats.written + stats.dropped, 50, "{stats:?}");
        assert!(stats.dropped >= 30, "{stats:?}");
        assert_eq!(got, ids[ids.len() - got.len()..].to_vec());
    }
}
