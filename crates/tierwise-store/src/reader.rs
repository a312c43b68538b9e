//! The read side of the request log, for `tierwise audit --store` and tests.
//!
//! Rows come back in time order (then id). [`LogReader::for_each`] streams them through a callback
//! so a large log is read in constant memory; [`LogReader::rows`] collects them.

use std::ops::ControlFlow;
use std::path::Path;
use std::str::FromStr;

use rusqlite::{Connection, OpenFlags, Row};
use rust_decimal::Decimal;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::schema;
use crate::{RequestRow, StoreError};

/// A time window: `since` inclusive, `until` exclusive; `None` is open-ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
}

impl TimeRange {
    /// Every row.
    pub fn all() -> TimeRange {
        TimeRange::default()
    }

    fn bounds(&self) -> (i64, i64) {
        let ms = |t: OffsetDateTime| {
            i64::try_from(t.unix_timestamp_nanos().div_euclid(1_000_000)).unwrap_or(i64::MAX)
        };
        (
            self.since.map(ms).unwrap_or(i64::MIN),
            self.until.map(ms).unwrap_or(i64::MAX),
        )
    }
}

/// Read-only access to a request log.
#[derive(Debug)]
pub struct LogReader {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Sqlite {
        conn: Connection,
        /// Schema version of the file (older logs lack the later columns; they read as 0).
        version: i64,
    },
    /// Read through a client of its own on a thread of its own (see [`LogReader::for_each`]).
    Postgres { url: String },
}

impl LogReader {
    /// Opens a log by location: a `postgres://` URL or a SQLite file path.
    pub fn open_location(location: &str) -> Result<LogReader, StoreError> {
        if crate::backend::is_postgres_url(location) {
            let url = location.to_string();
            let probe = url.clone();
            crate::postgres::block(async move {
                crate::postgres::connect_reader(&probe).await.map(drop)
            })?;
            Ok(LogReader {
                inner: Inner::Postgres { url },
            })
        } else {
            LogReader::open(Path::new(location))
        }
    }

    /// Opens an existing log read-only. A missing file or a file that is not a tierwise log is
    /// an error naming the path.
    pub fn open(path: &Path) -> Result<LogReader, StoreError> {
        let shown = path.display().to_string();
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| StoreError::Open {
            path: shown.clone(),
            source,
        })?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|source| StoreError::Open {
                path: shown.clone(),
                source,
            })?;
        if version > schema::latest() {
            return Err(StoreError::NewerSchema {
                path: shown,
                found: version,
                known: schema::latest(),
            });
        }
        if version == 0 {
            return Err(StoreError::Open {
                path: shown,
                source: rusqlite::Error::InvalidQuery,
            });
        }
        Ok(LogReader {
            inner: Inner::Sqlite { conn, version },
        })
    }

    /// Rows in the window, in time order.
    pub fn count(&self, range: &TimeRange) -> Result<u64, StoreError> {
        let (since, until) = range.bounds();
        let n: i64 = match &self.inner {
            Inner::Sqlite { conn, .. } => conn.query_row(
                "SELECT COUNT(*) FROM requests WHERE ts_ms >= ?1 AND ts_ms < ?2",
                [since, until],
                |r| r.get(0),
            )?,
            Inner::Postgres { url } => {
                let url = url.clone();
                crate::postgres::block(async move {
                    let c = crate::postgres::connect_reader(&url).await?;
                    let row = c
                        .query_one(
                            "SELECT COUNT(*) FROM requests WHERE ts_ms >= $1 AND ts_ms < $2",
                            &[&since, &until],
                        )
                        .await
                        .map_err(|e| StoreError::Postgres {
                            target: crate::postgres::redact(&url),
                            message: e.to_string(),
                        })?;
                    Ok(row.get::<_, i64>(0))
                })?
            }
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Calls `f` with each row in the window, in time order, until it returns `Break`.
    /// Returns the number of rows visited.
    pub fn for_each(
        &self,
        range: &TimeRange,
        mut f: impl FnMut(RequestRow) -> ControlFlow<()>,
    ) -> Result<u64, StoreError> {
        let (since, until) = range.bounds();
        let (conn, version) = match &self.inner {
            Inner::Sqlite { conn, version } => (conn, *version),
            Inner::Postgres { url } => return pg_for_each(url, since, until, f),
        };
        let mut stmt = conn.prepare(&format!(
            "SELECT {} FROM requests WHERE ts_ms >= ?1 AND ts_ms < ?2 ORDER BY ts_ms, id",
            schema::select_columns(version)
        ))?;
        let mut rows = stmt.query([since, until])?;
        let mut n = 0;
        while let Some(row) = rows.next()? {
            n += 1;
            if f(decode(row)?).is_break() {
                break;
            }
        }
        Ok(n)
    }

    /// Every row in the window, in time order.
    pub fn rows(&self, range: &TimeRange) -> Result<Vec<RequestRow>, StoreError> {
        let mut out = Vec::new();
        self.for_each(range, |r| {
            out.push(r);
            ControlFlow::Continue(())
        })?;
        Ok(out)
    }
}

/// Streams PostgreSQL rows from a thread of its own (with a one-thread runtime, so this works
/// from async code as well) through a small channel to the caller's callback.
fn pg_for_each(
    url: &str,
    since: i64,
    until: i64,
    mut f: impl FnMut(RequestRow) -> ControlFlow<()>,
) -> Result<u64, StoreError> {
    use futures::StreamExt;
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<RequestRow, StoreError>>(256);
    let url = url.to_string();
    std::thread::scope(|s| {
        let producer = s.spawn(move || {
            let run = async {
                let c = crate::postgres::connect_reader(&url).await?;
                let err = |e: tokio_postgres::Error| StoreError::Postgres {
                    target: crate::postgres::redact(&url),
                    message: e.to_string(),
                };
                let sql = format!(
                    "SELECT {} FROM requests WHERE ts_ms >= $1 AND ts_ms < $2 ORDER BY ts_ms, id",
                    crate::postgres::select_columns()
                );
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&since, &until];
                let stream = c.query_raw(&sql, params).await.map_err(err)?;
                futures::pin_mut!(stream);
                while let Some(row) = stream.next().await {
                    let decoded = row.map_err(err).and_then(|r| crate::postgres::decode(&r));
                    if tx.send(decoded).is_err() {
                        break; // the caller stopped reading
                    }
                }
                Ok::<(), StoreError>(())
            };
            let outcome = crate::postgres::runtime().and_then(|rt| rt.block_on(run));
            if let Err(e) = outcome {
                let _ = tx.send(Err(e));
            }
        });
        let mut n = 0;
        let mut result = Ok(());
        for item in &rx {
            match item {
                Ok(row) => {
                    n += 1;
                    if f(row).is_break() {
                        break;
                    }
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        drop(rx);
        let _ = producer.join();
        result.map(|()| n)
    })
}

fn bad(column: &'static str, message: impl ToString) -> StoreError {
    StoreError::BadValue {
        column,
        message: message.to_string(),
    }
}

fn count(row: &Row<'_>, idx: usize, column: &'static str) -> Result<u64, StoreError> {
    let v: i64 = row.get(idx)?;
    u64::try_from(v).map_err(|_| bad(column, format!("negative: {v}")))
}

fn money(row: &Row<'_>, idx: usize, column: &'static str) -> Result<Option<Decimal>, StoreError> {
    let v: Option<String> = row.get(idx)?;
    v.map(|s| Decimal::from_str(&s).map_err(|e| bad(column, e)))
        .transpose()
}

fn decode(row: &Row<'_>) -> Result<RequestRow, StoreError> {
    let id: String = row.get(0)?;
    let time: String = row.get(2)?;
    let tiers: String = row.get(23)?;
    Ok(RequestRow {
        id: Uuid::parse_str(&id).map_err(|e| bad("id", e))?,
        time: OffsetDateTime::parse(&time, &Rfc3339).map_err(|e| bad("time", e))?,
        endpoint: row.get(3)?,
        requested_model: row.get(4)?,
        tier: row.get(5)?,
        model: row.get(6)?,
        reason: row.get(7)?,
        category: row.get(8)?,
        role: row.get(9)?,
        mode: row.get(10)?,
        service_tier: row.get(11)?,
        input_tokens: count(row, 12, "input_tokens")?,
        cached_tokens: count(row, 13, "cached_tokens")?,
        output_tokens: count(row, 14, "output_tokens")?,
        reasoning_tokens: count(row, 15, "reasoning_tokens")?,
        usage_estimated: row.get(16)?,
        cost_usd: money(row, 17, "cost_usd")?,
        baseline_cost_usd: money(row, 18, "baseline_cost_usd")?,
        latency_ms: row.get(19)?,
        status: row.get(20)?,
        streamed: row.get(21)?,
        attempts: row.get(22)?,
        tiers_tried: if tiers.is_empty() {
            Vec::new()
        } else {
            tiers.split(',').map(str::to_string).collect()
        },
        error: row.get(24)?,
        request_body: row.get(25)?,
        response_body: row.get(26)?,
        tools: crate::ToolCounts {
            offered: count(row, 27, "tools_offered")?,
            sent: count(row, 28, "tools_sent")?,
            tokens_offered: count(row, 29, "tool_tokens_offered")?,
            tokens_sent: count(row, 30, "tool_tokens_sent")?,
        },
        category_source: row.get(31)?,
        key_id: row.get(32)?,
        team: row.get(33)?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;
    use crate::{RequestLog, WriterOptions};
    use rust_decimal_macros::dec;
    use time::Duration;

    fn row(i: u64, t: OffsetDateTime) -> RequestRow {
        RequestRow {
            id: Uuid::now_v7(),
            time: t,
            endpoint: "chat.completions".into(),
            requested_model: "auto".into(),
            tier: "mini".into(),
            model: "gpt-5.4-mini".into(),
            reason: "rule short-plain (≤400 tokens) → mini".into(),
            category: Some("extraction".into()),
            category_source: Some("hint".into()),
            role: None,
            mode: "sync".into(),
            service_tier: "default".into(),
            input_tokens: 100 + i,
            cached_tokens: 64,
            output_tokens: 20,
            reasoning_tokens: 8,
            usage_estimated: false,
            cost_usd: Some(dec!(0.000123456789)),
            baseline_cost_usd: Some(dec!(0.0011)),
            latency_ms: 12.5,
            status: 200,
            streamed: i.is_multiple_of(2),
            attempts: 2,
            tiers_tried: vec!["nano".into(), "mini".into()],
            error: None,
            request_body: None,
            response_body: None,
            tools: crate::ToolCounts {
                offered: i,
                sent: 1,
                tokens_offered: 10 * i,
                tokens_sent: 7,
            },
            key_id: Some("key_0123456789ab".into()),
            team: Some("research".into()),
        }
    }

    #[test]
    fn round_trip_and_time_window() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/log.db");
        let log = RequestLog::open(&path, WriterOptions::default()).unwrap();
        let t0 = OffsetDateTime::now_utc();
        let rows: Vec<_> = (0..10)
            .map(|i| row(i, t0 + Duration::minutes(i as i64)))
            .collect();
        for r in &rows {
            log.record(r.clone()).unwrap();
        }
        log.flush().unwrap();
        let reader = LogReader::open(&path).unwrap();
        assert_eq!(reader.rows(&TimeRange::all()).unwrap(), rows);
        let window = TimeRange {
            since: Some(t0 + Duration::minutes(3)),
            until: Some(t0 + Duration::minutes(5)),
        };
        let got = reader.rows(&window).unwrap();
        assert_eq!(got, rows[3..5].to_vec());
        assert_eq!(reader.count(&window).unwrap(), 2);
        let stats = log.close().unwrap();
        assert_eq!(stats.written, 10);
        assert_eq!(stats.failed, 0);
        assert!(matches!(
            log.record(rows[0].clone()),
            Err(StoreError::Closed)
        ));
    }

    #[test]
    fn close_drains_everything_with_a_tiny_queue() {
        // capacity 2 forces backpressure; nothing may be lost.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.db");
        let log = RequestLog::open(
            &path,
            WriterOptions {
                capacity: 2,
                max_batch: 3,
                ..WriterOptions::default()
            },
        )
        .unwrap();
        let t0 = OffsetDateTime::now_utc();
        for i in 0..500 {
            log.record(row(i, t0)).unwrap();
        }
        let stats = log.close().unwrap();
        assert_eq!(stats.written, 500);
        assert!(stats.batches >= 500 / 3);
        let reader = LogReader::open(&path).unwrap();
        assert_eq!(reader.count(&TimeRange::all()).unwrap(), 500);
    }

    #[test]
    fn reopen_keeps_rows_and_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.db");
        let t0 = OffsetDateTime::now_utc();
        {
            let log = RequestLog::open(&path, WriterOptions::default()).unwrap();
            log.record(row(1, t0)).unwrap();
            // dropped without an explicit close: Drop closes and drains.
        }
        let log = RequestLog::open(&path, WriterOptions::default()).unwrap();
        log.record(row(2, t0)).unwrap();
        log.close().unwrap();
        assert_eq!(
            LogReader::open(&path)
                .unwrap()
                .count(&TimeRange::all())
                .unwrap(),
            2
        );
    }

    #[test]
    fn duplicate_id_loses_only_that_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.db");
        let log = RequestLog::open(&path, WriterOptions::default()).unwrap();
        let t0 = OffsetDateTime::now_utc();
        let a = row(1, t0);
        log.record(a.clone()).unwrap();
        log.flush().unwrap();
        // Same id again (a bug upstream of the log) plus a good row in the same batch.
        log.record(a).unwrap();
        log.record(row(2, t0)).unwrap();
        let stats = log.close().unwrap();
        assert_eq!(stats.written, 2);
        assert_eq!(stats.failed, 1);
    }

    #[test]
    fn version_1_logs_read_with_zero_tool_counts_and_migrate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        let t0 = OffsetDateTime::now_utc();
        RequestLog::open(&path, WriterOptions::default())
            .unwrap()
            .close()
            .unwrap();
        {
            // A log as tierwise wrote it before migration 2.
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(
                "DROP TABLE requests; DROP TABLE keys; DROP TABLE teams; \
                 DROP TABLE budget_windows; DROP TABLE rate_windows; DROP TABLE shadow_results; PRAGMA user_version = 0;",
            )
            .unwrap();
            conn.execute_batch(schema::MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute(
                "INSERT INTO requests (id, ts_ms, time, endpoint, requested_model, tier, model, \
                 reason, mode, service_tier, input_tokens, cached_tokens, output_tokens, \
                 reasoning_tokens, usage_estimated, latency_ms, status, streamed, attempts, \
                 tiers_tried) VALUES (?1, 0, '1970-01-01T00:00:00Z', 'chat.completions', 'auto', \
                 'mini', 'm', 'r', 'sync', 'default', 1, 0, 1, 0, 0, 1.0, 200, 0, 1, 'mini')",
                [Uuid::now_v7().to_string()],
            )
            .unwrap();
        }
        let old = LogReader::open(&path)
            .unwrap()
            .rows(&TimeRange::all())
            .unwrap();
        assert_eq!(old.len(), 1);
        assert_eq!(old[0].tools, crate::ToolCounts::default());
        // Opening it for writing applies migration 2; old and new rows read back.
        let log = RequestLog::open(&path, WriterOptions::default()).unwrap();
        let new = row(3, t0);
        log.record(new.clone()).unwrap();
        log.close().unwrap();
        let rows = LogReader::open(&path)
            .unwrap()
            .rows(&TimeRange::all())
            .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1], new);
        assert_eq!(rows[1].tools.tokens_offered, 30);
    }

    /// A log written before migration 3 reads its categories as hints (they were only hints
    /// then); opening it for writing adds the column, and new rows keep their own source.
    #[test]
    fn version_2_logs_read_categories_as_hints_and_migrate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v2.db");
        let t0 = OffsetDateTime::now_utc();
        {
            let mut conn = rusqlite::Connection::open(&path).unwrap();
            let tx = conn.transaction().unwrap();
            tx.execute_batch(schema::MIGRATIONS[0]).unwrap();
            tx.execute_batch(schema::MIGRATIONS[1]).unwrap();
            tx.pragma_update(None, "user_version", 2).unwrap();
            tx.commit().unwrap();
            for (i, category) in [Some("extraction"), None].into_iter().enumerate() {
                conn.execute(
                    "INSERT INTO requests (id, ts_ms, time, endpoint, requested_model, tier, \
                     model, reason, category, mode, service_tier, input_tokens, cached_tokens, \
                     output_tokens, reasoning_tokens, usage_estimated, latency_ms, status, \
                     streamed, attempts, tiers_tried) VALUES (?1, ?2, '1970-01-01T00:00:00Z', \
                     'chat.completions', 'auto', 'nano', 'm', 'r', ?3, 'sync', 'default', 1, 0, \
                     1, 0, 0, 1.0, 200, 0, 1, 'nano')",
                    rusqlite::params![Uuid::now_v7().to_string(), i as i64, category],
                )
                .unwrap();
            }
        }
        let old = LogReader::open(&path)
            .unwrap()
            .rows(&TimeRange::all())
            .unwrap();
        assert_eq!(old[0].category_source.as_deref(), Some("hint"));
        assert_eq!(old[1].category_source, None);
        let log = RequestLog::open(&path, WriterOptions::default()).unwrap();
        let mut new = row(3, t0);
        new.category_source = Some("categorizer".into());
        log.record(new.clone()).unwrap();
        log.close().unwrap();
        let rows = LogReader::open(&path)
            .unwrap()
            .rows(&TimeRange::all())
            .unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].category_source.as_deref(), Some("hint"));
        assert_eq!(rows[2], new);
    }

    #[test]
    fn not_a_log_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.db");
        assert!(LogReader::open(&missing).is_err());
    }
}
