//! Shadow-test results: one row per sampled call of the gateway's shadow runner (the same
//! request sent to a cheaper candidate tier after the client's answer was complete, then
//! compared or judged). `tierwise quality` reads them back.
//!
//! The table (`shadow_results`, SQLite migration 5) lives in the request log's database. Shadow rows
//! are rare (a sampled share of calls), so [`ShadowLog`] writes each with its own statement on
//! a connection of its own, from a blocking thread of the caller's choosing; the request
//! log's writer thread is not involved.

use std::path::Path;
use std::str::FromStr;
use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags, Row, params};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::reader::TimeRange;
use crate::{StoreError, schema};

/// SQLite migration 5: the shadow-results table.
pub(crate) const MIGRATION: &str = "CREATE TABLE shadow_results (
        id                TEXT PRIMARY KEY NOT NULL,   -- UUID v7 of the shadow test
        request_id        TEXT NOT NULL,               -- the served request (requests.id)
        ts_ms             INTEGER NOT NULL,
        time              TEXT NOT NULL,
        category          TEXT NOT NULL,
        served_tier       TEXT NOT NULL,
        served_model      TEXT NOT NULL,
        candidate_tier    TEXT NOT NULL,
        candidate_model   TEXT NOT NULL,
        method            TEXT,                        -- check | judge; NULL when not compared
        detail            TEXT,                        -- check kind (label, number, json, tool_calls)
        verdict           TEXT NOT NULL,               -- see ShadowVerdict
        shadow_cost_usd   TEXT,                        -- exact decimal text
        judge_cost_usd    TEXT,
        error             TEXT,
        prompt            TEXT                         -- only with log.store_bodies
    ) STRICT;
    CREATE INDEX shadow_results_ts ON shadow_results (ts_ms);";

/// What one shadow test concluded. The candidate is compared against the served answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShadowVerdict {
    /// Judge: the candidate's answer is better (in both orders, or better in one and tied in
    /// the other).
    Win,
    /// Judge: neither is better (or the two orders disagree).
    Tie,
    /// Judge: the served answer is better.
    Loss,
    /// Check: the checkable answers are the same (label, number, JSON fields, tool calls).
    Agree,
    /// Check: they differ.
    Disagree,
    /// The judge's answer could not be read (never counted as a win).
    Unjudged,
    /// The shadow call failed (not counted toward n).
    Failed,
    /// Sampled, but the daily cap was reached: not sent.
    Capped,
}

impl ShadowVerdict {
    pub const ALL: [ShadowVerdict; 8] = [
        ShadowVerdict::Win,
        ShadowVerdict::Tie,
        ShadowVerdict::Loss,
        ShadowVerdict::Agree,
        ShadowVerdict::Disagree,
        ShadowVerdict::Unjudged,
        ShadowVerdict::Failed,
        ShadowVerdict::Capped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ShadowVerdict::Win => "win",
            ShadowVerdict::Tie => "tie",
            ShadowVerdict::Loss => "loss",
            ShadowVerdict::Agree => "agree",
            ShadowVerdict::Disagree => "disagree",
            ShadowVerdict::Unjudged => "unjudged",
            ShadowVerdict::Failed => "failed",
            ShadowVerdict::Capped => "capped",
        }
    }

    pub fn parse(s: &str) -> Option<ShadowVerdict> {
        ShadowVerdict::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// How a shadow answer was compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShadowMethod {
    /// Checkable answers compared without a judge.
    Check,
    /// Pairwise LLM-as-judge, both orders.
    Judge,
}

impl ShadowMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            ShadowMethod::Check => "check",
            ShadowMethod::Judge => "judge",
        }
    }

    pub fn parse(s: &str) -> Option<ShadowMethod> {
        match s {
            "check" => Some(ShadowMethod::Check),
            "judge" => Some(ShadowMethod::Judge),
            _ => None,
        }
    }
}

/// One shadow test, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShadowRow {
    /// UUID v7 of the test.
    pub id: Uuid,
    /// The served request's id (`requests.id`, `x-tierwise-request-id`).
    pub request_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub category: String,
    pub served_tier: String,
    pub served_model: String,
    pub candidate_tier: String,
    pub candidate_model: String,
    /// `None` when nothing was compared (failed, capped).
    pub method: Option<ShadowMethod>,
    /// The check's kind (`label`, `number`, `json`, `tool_calls`), or what the judge said.
    pub detail: Option<String>,
    pub verdict: ShadowVerdict,
    /// The candidate call's cost; `None` when unpriced (never guessed as 0).
    pub shadow_cost_usd: Option<Decimal>,
    /// Both judge calls' cost; zero for checks.
    pub judge_cost_usd: Option<Decimal>,
    pub error: Option<String>,
    /// The user's prompt text, only with `log.store_bodies = true` (training data).
    pub prompt: Option<String>,
}

const COLUMNS: &str = "id, request_id, ts_ms, time, category, served_tier, served_model, \
    candidate_tier, candidate_model, method, detail, verdict, shadow_cost_usd, judge_cost_usd, \
    error, prompt";

fn ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos().div_euclid(1_000_000)).unwrap_or(0)
}

/// The shadow-results table of one database: written by the gateway, read by reports.
#[derive(Debug)]
pub struct ShadowLog {
    conn: Mutex<Connection>,
}

impl ShadowLog {
    /// Opens the database at `path` for writing shadow rows (creating it and the schema when
    /// needed, as [`crate::RequestLog::open`] does).
    pub fn open(path: &Path) -> Result<ShadowLog, StoreError> {
        let shown = path.display().to_string();
        let open_err = |source| StoreError::Open {
            path: shown.clone(),
            source,
        };
        let mut conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_err)?;
        schema::migrate(&mut conn, &shown)?;
        Ok(ShadowLog {
            conn: Mutex::new(conn),
        })
    }

    /// Opens an existing database read-only (reports). A log older than migration 5 reads as
    /// no shadow rows.
    pub fn open_read(path: &Path) -> Result<ShadowLog, StoreError> {
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
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version == 0 {
            return Err(StoreError::Open {
                path: shown,
                source: rusqlite::Error::InvalidQuery,
            });
        }
        if version > schema::latest() {
            return Err(StoreError::NewerSchema {
                path: shown,
                found: version,
                known: schema::latest(),
            });
        }
        Ok(ShadowLog {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Inserts one row (blocking: call it from a blocking thread on a server).
    pub fn insert(&self, r: &ShadowRow) -> Result<(), StoreError> {
        let time = r.time.format(&Rfc3339).map_err(|e| StoreError::BadValue {
            column: "time",
            message: e.to_string(),
        })?;
        self.lock().execute(
            &format!(
                "INSERT INTO shadow_results ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, \
                 ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
            ),
            params![
                r.id.to_string(),
                r.request_id.to_string(),
                ms(r.time),
                time,
                r.category,
                r.served_tier,
                r.served_model,
                r.candidate_tier,
                r.candidate_model,
                r.method.map(ShadowMethod::as_str),
                r.detail,
                r.verdict.as_str(),
                r.shadow_cost_usd.map(|d| d.to_string()),
                r.judge_cost_usd.map(|d| d.to_string()),
                r.error,
                r.prompt,
            ],
        )?;
        Ok(())
    }

    /// Shadow + judge spend of the rows in `range` (unpriced costs count as zero).
    pub fn spend(&self, range: &TimeRange) -> Result<Decimal, StoreError> {
        let mut total = Decimal::ZERO;
        for r in self.rows(range)? {
            total += r.shadow_cost_usd.unwrap_or_default() + r.judge_cost_usd.unwrap_or_default();
        }
        Ok(total)
    }

    /// Rows in the window, in time order.
    pub fn rows(&self, range: &TimeRange) -> Result<Vec<ShadowRow>, StoreError> {
        let conn = self.lock();
        let exists: i64 = conn.query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'shadow_results'",
            [],
            |r| r.get(0),
        )?;
        if exists == 0 {
            return Ok(Vec::new());
        }
        let (since, until) = (
            range.since.map(ms).unwrap_or(i64::MIN),
            range.until.map(ms).unwrap_or(i64::MAX),
        );
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM shadow_results WHERE ts_ms >= ?1 AND ts_ms < ?2 \
             ORDER BY ts_ms, id"
        ))?;
        let mut rows = stmt.query([since, until])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(decode(row)?);
        }
        Ok(out)
    }
}

fn bad(column: &'static str, message: impl ToString) -> StoreError {
    StoreError::BadValue {
        column,
        message: message.to_string(),
    }
}

fn uuid(row: &Row<'_>, i: usize, column: &'static str) -> Result<Uuid, StoreError> {
    let s: String = row.get(i)?;
    Uuid::parse_str(&s).map_err(|e| bad(column, e))
}

fn money(row: &Row<'_>, i: usize, column: &'static str) -> Result<Option<Decimal>, StoreError> {
    let s: Option<String> = row.get(i)?;
    s.map(|s| Decimal::from_str(&s).map_err(|e| bad(column, e)))
        .transpose()
}

fn decode(row: &Row<'_>) -> Result<ShadowRow, StoreError> {
    let time: String = row.get(3)?;
    let method: Option<String> = row.get(9)?;
    let verdict: String = row.get(11)?;
    Ok(ShadowRow {
        id: uuid(row, 0, "id")?,
        request_id: uuid(row, 1, "request_id")?,
        time: OffsetDateTime::parse(&time, &Rfc3339).map_err(|e| bad("time", e))?,
        category: row.get(4)?,
        served_tier: row.get(5)?,
        served_model: row.get(6)?,
        candidate_tier: row.get(7)?,
        candidate_model: row.get(8)?,
        method: method
            .map(|m| ShadowMethod::parse(&m).ok_or_else(|| bad("method", m)))
            .transpose()?,
        detail: row.get(10)?,
        verdict: ShadowVerdict::parse(&verdict).ok_or_else(|| bad("verdict", verdict))?,
        shadow_cost_usd: money(row, 12, "shadow_cost_usd")?,
        judge_cost_usd: money(row, 13, "judge_cost_usd")?,
        error: row.get(14)?,
        prompt: row.get(15)?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;
    use crate::{RequestLog, WriterOptions};

    fn row(verdict: ShadowVerdict, cost: Option<Decimal>) -> ShadowRow {
        ShadowRow {
            id: Uuid::now_v7(),
            request_id: Uuid::now_v7(),
            time: OffsetDateTime::now_utc(),
            category: "coding".into(),
            served_tier: "standard".into(),
            served_model: "gpt-5.4".into(),
            candidate_tier: "mini".into(),
            candidate_model: "gpt-5.4-mini".into(),
            method: Some(ShadowMethod::Judge),
            detail: None,
            verdict,
            shadow_cost_usd: cost,
            judge_cost_usd: Some(dec!(0.001)),
            error: None,
            prompt: Some("hi".into()),
        }
    }

    #[test]
    fn rows_round_trip_beside_the_request_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let log = RequestLog::open(&path, WriterOptions::default()).unwrap();
        let shadow = ShadowLog::open(&path).unwrap();
        let a = row(ShadowVerdict::Win, Some(dec!(0.0123)));
        let b = row(ShadowVerdict::Failed, None);
        shadow.insert(&a).unwrap();
        shadow.insert(&b).unwrap();
        log.close().unwrap();
        let read = ShadowLog::open_read(&path).unwrap();
        let rows = read.rows(&TimeRange::all()).unwrap();
        assert_eq!(rows.len(), 2);
        // RFC 3339 keeps nanoseconds: the rows come back equal
        assert_eq!(rows[0], a);
        assert_eq!(rows[1], b);
        assert_eq!(read.spend(&TimeRange::all()).unwrap(), dec!(0.0143));
    }

    #[test]
    fn verdict_names_round_trip() {
        for v in ShadowVerdict::ALL {
            assert_eq!(ShadowVerdict::parse(v.as_str()), Some(v));
        }
        assert_eq!(ShadowVerdict::parse("won"), None);
    }
}
