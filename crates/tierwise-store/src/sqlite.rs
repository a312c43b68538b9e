//! The embedded backend: one SQLite file (WAL) holds the request log, keys, teams and budget
//! and rate windows. The log's writer thread has its own connection; keys and budgets go
//! through a second one under a mutex, in `BEGIN IMMEDIATE` transactions, so a reservation is
//! atomic within the process and against other processes sharing the file.

use std::path::Path;
use std::str::FromStr;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use rust_decimal::Decimal;
use time::OffsetDateTime;

use crate::backend::{CreatedKey, Fut, RateCount, Store, check_limits};
use crate::budget::{Limit, Reservation, Reserved, Scope, WindowSpend};
use crate::keys::{self, KeyRecord, KeyUpdate, Limits, NewKey, Team, TeamUpdate};
use crate::{RequestLog, StoreError, WriterOptions, schema};

/// Opens (creating folder, file and schema) a SQLite database for writing.
pub(crate) fn connect(path: &Path) -> Result<Connection, StoreError> {
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
    Ok(conn)
}

/// The SQLite store.
#[derive(Debug)]
pub struct SqliteStore {
    log: RequestLog,
    conn: Mutex<Connection>,
    path: String,
}

fn ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn from_ms(v: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(v) * 1_000_000).map_err(|e| {
        StoreError::BadValue {
            column: "time",
            message: e.to_string(),
        }
    })
}

fn dec(v: Option<String>, column: &'static str) -> Result<Option<Decimal>, StoreError> {
    v.map(|s| {
        Decimal::from_str(&s).map_err(|e| StoreError::BadValue {
            column,
            message: e.to_string(),
        })
    })
    .transpose()
}

fn count(v: Option<i64>) -> Option<u64> {
    v.map(|n| u64::try_from(n).unwrap_or(0))
}

fn int(v: Option<u64>) -> Option<i64> {
    v.map(|n| i64::try_from(n).unwrap_or(i64::MAX))
}

const KEY_COLUMNS: &str = "id, name, prefix, team, budget_usd_day, budget_usd_month, rpm, tpm, \
    tiers, max_tier, expires_ms, revoked_ms, created_ms";

fn key_row(r: &Row<'_>) -> Result<KeyRecord, StoreError> {
    let tiers: Option<String> = r.get(8)?;
    Ok(KeyRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        prefix: r.get(2)?,
        team: r.get(3)?,
        limits: Limits {
            budget_usd_day: dec(r.get(4)?, "budget_usd_day")?,
            budget_usd_month: dec(r.get(5)?, "budget_usd_month")?,
            rpm: count(r.get(6)?),
            tpm: count(r.get(7)?),
        },
        tiers: tiers.map(|t| t.split(',').map(str::to_string).collect()),
        max_tier: r.get(9)?,
        expires: r.get::<_, Option<i64>>(10)?.map(from_ms).transpose()?,
        revoked: r.get::<_, Option<i64>>(11)?.map(from_ms).transpose()?,
        created: from_ms(r.get(12)?)?,
    })
}

fn team_row(r: &Row<'_>) -> Result<Team, StoreError> {
    Ok(Team {
        name: r.get(0)?,
        budget_usd_day: dec(r.get(1)?, "budget_usd_day")?,
        budget_usd_month: dec(r.get(2)?, "budget_usd_month")?,
        created: from_ms(r.get(3)?)?,
    })
}

impl SqliteStore {
    /// Opens the store at `path` (created on first use) and starts the log writer.
    pub fn open(path: &Path, options: WriterOptions) -> Result<SqliteStore, StoreError> {
        let conn = connect(path)?;
        let log = RequestLog::open(path, options)?;
        Ok(SqliteStore {
            log,
            conn: Mutex::new(conn),
            path: path.display().to_string(),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| StoreError::Writer("store lock poisoned".into()))?;
        f(&mut conn)
    }

    fn get_key(conn: &Connection, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        conn.query_row(
            &format!("SELECT {KEY_COLUMNS} FROM keys WHERE id = ?1"),
            [id],
            |r| Ok(key_row(r)),
        )
        .optional()?
        .transpose()
    }

    fn get_team(conn: &Connection, name: &str) -> Result<Option<Team>, StoreError> {
        conn.query_row(
            "SELECT name, budget_usd_day, budget_usd_month, created_ms FROM teams WHERE name = ?1",
            [name],
            |r| Ok(team_row(r)),
        )
        .optional()?
        .transpose()
    }

    fn write_key(conn: &Connection, k: &KeyRecord) -> Result<(), StoreError> {
        conn.execute(
            "UPDATE keys SET name = ?2, team = ?3, budget_usd_day = ?4, budget_usd_month = ?5, \
             rpm = ?6, tpm = ?7, tiers = ?8, max_tier = ?9, expires_ms = ?10, revoked_ms = ?11 \
             WHERE id = ?1",
            params![
                k.id,
                k.name,
                k.team,
                k.limits.budget_usd_day.map(|d| d.to_string()),
                k.limits.budget_usd_month.map(|d| d.to_string()),
                int(k.limits.rpm),
                int(k.limits.tpm),
                k.tiers.as_ref().map(|t| t.join(",")),
                k.max_tier,
                k.expires.map(ms),
                k.revoked.map(ms),
            ],
        )?;
        Ok(())
    }

    fn reserve_now(
        conn: &mut Connection,
        limits: &[Limit],
        amount: Decimal,
        now: OffsetDateTime,
    ) -> Result<Reserved, StoreError> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut windows = Vec::with_capacity(limits.len());
        let mut remaining: Option<Decimal> = None;
        for limit in limits {
            let scope = limit.scope.column();
            let window = limit.period.window(now);
            tx.execute(
                "INSERT OR IGNORE INTO budget_windows (scope, win, spent, reserved) \
                 VALUES (?1, ?2, '0', '0')",
                params![scope, window.label],
            )?;
            let (spent, reserved): (String, String) = tx.query_row(
                "SELECT spent, reserved FROM budget_windows WHERE scope = ?1 AND win = ?2",
                params![scope, window.label],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let spent = dec(Some(spent), "spent")?.unwrap_or_default();
            let reserved = dec(Some(reserved), "reserved")?.unwrap_or_default();
            if spent + reserved + amount > limit.usd {
                // Dropping the transaction rolls back the windows already reserved on.
                return Ok(Reserved::Exceeded {
                    limit: limit.clone(),
                    spent,
                    reserved,
                    resets: window.resets,
                });
            }
            tx.execute(
                "UPDATE budget_windows SET reserved = ?3 WHERE scope = ?1 AND win = ?2",
                params![scope, window.label, (reserved + amount).to_string()],
            )?;
            let left = limit.usd - spent - reserved - amount;
            remaining = Some(remaining.map_or(left, |r: Decimal| r.min(left)));
            windows.push((scope, window.label));
        }
        tx.commit()?;
        Ok(Reserved::Granted(Reservation {
            windows,
            amount,
            remaining: remaining.unwrap_or_default(),
        }))
    }

    fn reconcile_now(
        conn: &mut Connection,
        reservation: &Reservation,
        exact: Decimal,
    ) -> Result<(), StoreError> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for (scope, win) in &reservation.windows {
            let row: Option<(String, String)> = tx
                .query_row(
                    "SELECT spent, reserved FROM budget_windows WHERE scope = ?1 AND win = ?2",
                    params![scope, win],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let (spent, reserved) = match row {
                Some((s, r)) => (
                    dec(Some(s), "spent")?.unwrap_or_default(),
                    dec(Some(r), "reserved")?.unwrap_or_default(),
                ),
                None => (Decimal::ZERO, reservation.amount),
            };
            tx.execute(
                "INSERT INTO budget_windows (scope, win, spent, reserved) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (scope, win) DO UPDATE SET spent = ?3, reserved = ?4",
                params![
                    scope,
                    win,
                    (spent + exact).to_string(),
                    (reserved - reservation.amount)
                        .max(Decimal::ZERO)
                        .to_string()
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn rate_now(
        conn: &mut Connection,
        scope: &Scope,
        minute: i64,
        tokens: u64,
        rpm: Option<u64>,
        tpm: Option<u64>,
    ) -> Result<RateCount, StoreError> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let scope = scope.column();
        let (requests, used): (i64, i64) = tx
            .query_row(
                "SELECT requests, tokens FROM rate_windows WHERE scope = ?1 AND minute = ?2",
                params![scope, minute],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .unwrap_or((0, 0));
        let requests = u64::try_from(requests).unwrap_or(0);
        let used = u64::try_from(used).unwrap_or(0);
        let fits = rpm.is_none_or(|l| requests < l) && tpm.is_none_or(|l| used + tokens <= l);
        if !fits {
            return Ok(RateCount {
                allowed: false,
                requests,
                tokens: used,
            });
        }
        tx.execute(
            "INSERT INTO rate_windows (scope, minute, requests, tokens) VALUES (?1, ?2, 1, ?3) \
             ON CONFLICT (scope, minute) DO UPDATE SET requests = requests + 1, \
             tokens = tokens + ?3",
            params![scope, minute, i64::try_from(tokens).unwrap_or(i64::MAX)],
        )?;
        // Old minutes are of no use: keep the table small.
        tx.execute(
            "DELETE FROM rate_windows WHERE scope = ?1 AND minute < ?2",
            params![scope, minute - 1],
        )?;
        tx.commit()?;
        Ok(RateCount {
            allowed: true,
            requests: requests + 1,
            tokens: used + tokens,
        })
    }
}

fn ready<'a, T: Send + 'a>(r: Result<T, StoreError>) -> Fut<'a, T> {
    Box::pin(std::future::ready(r))
}

fn check_team_budgets(u: &TeamUpdate) -> Result<(), StoreError> {
    keys::check_budget("budget_usd_day", u.budget_usd_day.flatten())?;
    keys::check_budget("budget_usd_month", u.budget_usd_month.flatten())
}

impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn describe(&self) -> String {
        self.path.clone()
    }

    fn log(&self) -> &RequestLog {
        &self.log
    }

    fn create_team(&self, name: &str, budgets: TeamUpdate) -> Fut<'_, Team> {
        let name = name.to_string();
        ready(self.with(|conn| {
            check_team_budgets(&budgets)?;
            crate::check_name("team", &name)?;
            if Self::get_team(conn, &name)?.is_some() {
                return Err(StoreError::Invalid(format!("team {name} already exists")));
            }
            conn.execute(
                "INSERT INTO teams (name, budget_usd_day, budget_usd_month, created_ms) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    name,
                    budgets.budget_usd_day.flatten().map(|d| d.to_string()),
                    budgets.budget_usd_month.flatten().map(|d| d.to_string()),
                    ms(OffsetDateTime::now_utc()),
                ],
            )?;
            Self::get_team(conn, &name)?.ok_or(StoreError::NotFound("team", name))
        }))
    }

    fn update_team(&self, name: &str, update: TeamUpdate) -> Fut<'_, Team> {
        let name = name.to_string();
        ready(self.with(|conn| {
            check_team_budgets(&update)?;
            let mut team = Self::get_team(conn, &name)?
                .ok_or_else(|| StoreError::NotFound("team", name.clone()))?;
            if let Some(v) = update.budget_usd_day {
                team.budget_usd_day = v;
            }
            if let Some(v) = update.budget_usd_month {
                team.budget_usd_month = v;
            }
            conn.execute(
                "UPDATE teams SET budget_usd_day = ?2, budget_usd_month = ?3 WHERE name = ?1",
                params![
                    name,
                    team.budget_usd_day.map(|d| d.to_string()),
                    team.budget_usd_month.map(|d| d.to_string()),
                ],
            )?;
            Ok(team)
        }))
    }

    fn team(&self, name: &str) -> Fut<'_, Option<Team>> {
        ready(self.with(|conn| Self::get_team(conn, name)))
    }

    fn teams(&self) -> Fut<'_, Vec<Team>> {
        ready(self.with(|conn| {
            let mut stmt = conn.prepare(
                "SELECT name, budget_usd_day, budget_usd_month, created_ms FROM teams ORDER BY name",
            )?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(team_row(r)?);
            }
            Ok(out)
        }))
    }

    fn create_key(&self, new: NewKey) -> Fut<'_, CreatedKey> {
        ready(self.with(|conn| {
            check_limits(&new.limits)?;
            crate::check_name("key", &new.name)?;
            if let Some(team) = &new.team
                && Self::get_team(conn, team)?.is_none()
            {
                return Err(StoreError::NotFound("team", team.clone()));
            }
            let generated = keys::generate();
            let id = keys::new_id();
            let now = OffsetDateTime::now_utc();
            conn.execute(
                &format!(
                    "INSERT INTO keys (hash, {KEY_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, NULL, ?13)"
                ),
                params![
                    generated.hash,
                    id,
                    new.name,
                    generated.prefix,
                    new.team,
                    new.limits.budget_usd_day.map(|d| d.to_string()),
                    new.limits.budget_usd_month.map(|d| d.to_string()),
                    int(new.limits.rpm),
                    int(new.limits.tpm),
                    new.tiers.as_ref().map(|t| t.join(",")),
                    new.max_tier,
                    new.expires.map(ms),
                    ms(now),
                ],
            )?;
            let record =
                Self::get_key(conn, &id)?.ok_or_else(|| StoreError::NotFound("key", id.clone()))?;
            Ok(CreatedKey {
                record,
                secret: generated.secret,
            })
        }))
    }

    fn key_by_hash(&self, hash: &str) -> Fut<'_, Option<KeyRecord>> {
        ready(self.with(|conn| {
            conn.query_row(
                &format!("SELECT {KEY_COLUMNS} FROM keys WHERE hash = ?1"),
                [hash],
                |r| Ok(key_row(r)),
            )
            .optional()?
            .transpose()
        }))
    }

    fn key(&self, id: &str) -> Fut<'_, Option<KeyRecord>> {
        ready(self.with(|conn| Self::get_key(conn, id)))
    }

    fn keys(&self) -> Fut<'_, Vec<KeyRecord>> {
        ready(self.with(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {KEY_COLUMNS} FROM keys ORDER BY created_ms, id"
            ))?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(key_row(r)?);
            }
            Ok(out)
        }))
    }

    fn update_key(&self, id: &str, update: KeyUpdate) -> Fut<'_, KeyRecord> {
        ready(self.with(|conn| {
            let mut key =
                Self::get_key(conn, id)?.ok_or_else(|| StoreError::NotFound("key", id.into()))?;
            update.apply(&mut key);
            check_limits(&key.limits)?;
            if let Some(team) = &key.team
                && Self::get_team(conn, team)?.is_none()
            {
                return Err(StoreError::NotFound("team", team.clone()));
            }
            Self::write_key(conn, &key)?;
            Ok(key)
        }))
    }

    fn revoke_key(&self, id: &str, now: OffsetDateTime) -> Fut<'_, KeyRecord> {
        ready(self.with(|conn| {
            let mut key =
                Self::get_key(conn, id)?.ok_or_else(|| StoreError::NotFound("key", id.into()))?;
            if key.revoked.is_none() {
                key.revoked = Some(from_ms(ms(now))?);
                Self::write_key(conn, &key)?;
            }
            Ok(key)
        }))
    }

    fn reserve(
        &self,
        limits: Vec<Limit>,
        amount: Decimal,
        now: OffsetDateTime,
    ) -> Fut<'_, Reserved> {
        ready(self.with(|conn| Self::reserve_now(conn, &limits, amount, now)))
    }

    fn reconcile(&self, reservation: Reservation, exact: Decimal) -> Fut<'_, ()> {
        ready(self.with(|conn| Self::reconcile_now(conn, &reservation, exact)))
    }

    fn spend(&self, scope: Scope) -> Fut<'_, Vec<WindowSpend>> {
        ready(self.with(|conn| {
            let mut stmt = conn.prepare(
                "SELECT win, spent, reserved FROM budget_windows WHERE scope = ?1 ORDER BY win DESC",
            )?;
            let mut rows = stmt.query([scope.column()])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(WindowSpend {
                    window: r.get(0)?,
                    spent: dec(r.get(1)?, "spent")?.unwrap_or_default(),
                    reserved: dec(r.get(2)?, "reserved")?.unwrap_or_default(),
                });
            }
            Ok(out)
        }))
    }

    fn rate_take(
        &self,
        scope: Scope,
        minute: i64,
        tokens: u64,
        rpm: Option<u64>,
        tpm: Option<u64>,
    ) -> Fut<'_, RateCount> {
        ready(self.with(|conn| Self::rate_now(conn, &scope, minute, tokens, rpm, tpm)))
    }
}
