//! The shared backend: PostgreSQL (`[store] url = "postgres://…"` or `TIERWISE_DATABASE_URL`).
//! Several gateway replicas pointed at one database share keys, teams, budget and rate windows
//! and the request log.
//!
//! - Migrations in code ([`MIGRATIONS`], version in `tierwise_schema`), applied at open under
//!   an advisory lock so replicas starting together migrate once. Tables live in the URL's
//!   `search_path` (tests give each test its own schema with `options=-csearch_path%3D…`).
//! - Keys, budgets and rate windows go through a deadpool connection pool on the caller's
//!   runtime. A reservation is one round trip: `tierwise_reserve` (migration 2) runs one
//!   `INSERT … ON CONFLICT DO UPDATE … WHERE spent + reserved + estimate <= limit` per window
//!   in a sub-transaction (all windows or none), windows locked in a fixed order (no deadlocks
//!   between replicas).
//! - The request log's writer thread has its own connection (and a one-thread runtime): it
//!   reconnects with backoff when the server goes away, keeping rows buffered meanwhile.
//!
//! Money is `NUMERIC`, sent and read as its decimal text (exact both ways).

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use rust_decimal::Decimal;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio_postgres::{Client, NoTls, Row};

use crate::backend::{CreatedKey, Fut, RateCount, Store, check_limits};
use crate::budget::{Limit, Reservation, Reserved, Scope, WindowSpend};
use crate::keys::{self, KeyRecord, KeyUpdate, Limits, NewKey, Team, TeamUpdate};
use crate::writer::{Sink, SinkError};
use crate::{RequestLog, RequestRow, StoreError, WriterOptions};

/// Migration `i` brings the schema from version `i` to `i + 1`. Never edit a released one.
pub const MIGRATIONS: &[&str] = &[
    // 1: the request log (the SQLite columns of schema 4), keys, teams, budget and rate windows.
    "CREATE TABLE requests (
        id                  TEXT PRIMARY KEY,
        ts_ms               BIGINT NOT NULL,
        time                TEXT NOT NULL,
        endpoint            TEXT NOT NULL,
        requested_model     TEXT NOT NULL,
        tier                TEXT NOT NULL,
        model               TEXT NOT NULL,
        reason              TEXT NOT NULL,
        category            TEXT,
        role                TEXT,
        mode                TEXT NOT NULL,
        service_tier        TEXT NOT NULL,
        input_tokens        BIGINT NOT NULL,
        cached_tokens       BIGINT NOT NULL,
        output_tokens       BIGINT NOT NULL,
        reasoning_tokens    BIGINT NOT NULL,
        usage_estimated     BOOLEAN NOT NULL,
        cost_usd            NUMERIC,
        baseline_cost_usd   NUMERIC,
        latency_ms          DOUBLE PRECISION NOT NULL,
        status              INTEGER NOT NULL,
        streamed            BOOLEAN NOT NULL,
        attempts            INTEGER NOT NULL,
        tiers_tried         TEXT NOT NULL,
        error               TEXT,
        request_body        TEXT,
        response_body       TEXT,
        tools_offered       BIGINT NOT NULL,
        tools_sent          BIGINT NOT NULL,
        tool_tokens_offered BIGINT NOT NULL,
        tool_tokens_sent    BIGINT NOT NULL,
        category_source     TEXT,
        key_id              TEXT,
        team                TEXT
    );
    CREATE INDEX requests_ts ON requests (ts_ms);
    CREATE INDEX requests_key ON requests (key_id, ts_ms);
    CREATE TABLE teams (
        name                TEXT PRIMARY KEY,
        budget_usd_day      NUMERIC,
        budget_usd_month    NUMERIC,
        created_ms          BIGINT NOT NULL
    );
    CREATE TABLE keys (
        id                  TEXT PRIMARY KEY,
        hash                TEXT NOT NULL UNIQUE,
        prefix              TEXT NOT NULL,
        name                TEXT NOT NULL,
        team                TEXT REFERENCES teams (name),
        budget_usd_day      NUMERIC,
        budget_usd_month    NUMERIC,
        rpm                 BIGINT,
        tpm                 BIGINT,
        tiers               TEXT,
        max_tier            TEXT,
        expires_ms          BIGINT,
        revoked_ms          BIGINT,
        created_ms          BIGINT NOT NULL
    );
    CREATE TABLE budget_windows (
        scope               TEXT NOT NULL,
        win                 TEXT NOT NULL,
        spent               NUMERIC NOT NULL,
        reserved            NUMERIC NOT NULL,
        PRIMARY KEY (scope, win)
    );
    CREATE TABLE rate_windows (
        scope               TEXT NOT NULL,
        minute              BIGINT NOT NULL,
        requests            BIGINT NOT NULL,
        tokens              BIGINT NOT NULL,
        PRIMARY KEY (scope, minute)
    );",
    // 2: a reservation in one round trip: every window or none (a sub-transaction rolled back
    // at the first window the amount does not fit under, which is reported).
    "CREATE FUNCTION tierwise_reserve(p_scopes TEXT[], p_wins TEXT[], p_limits NUMERIC[],
        p_amount NUMERIC)
    RETURNS TABLE (granted BOOLEAN, idx INTEGER, spent NUMERIC, reserved NUMERIC,
        remaining NUMERIC)
    LANGUAGE plpgsql AS $fn$
    DECLARE
        i INTEGER;
        failed INTEGER := 0;
        r_spent NUMERIC;
        r_reserved NUMERIC;
        least_left NUMERIC := NULL;
    BEGIN
        BEGIN
            FOR i IN 1 .. COALESCE(array_length(p_scopes, 1), 0) LOOP
                INSERT INTO budget_windows AS w (scope, win, spent, reserved)
                    VALUES (p_scopes[i], p_wins[i], 0, p_amount)
                    ON CONFLICT (scope, win) DO UPDATE SET reserved = w.reserved + EXCLUDED.reserved
                    WHERE w.spent + w.reserved + EXCLUDED.reserved <= p_limits[i]
                    RETURNING w.spent, w.reserved INTO r_spent, r_reserved;
                IF NOT FOUND THEN
                    failed := i;
                    RAISE EXCEPTION 'tierwise: budget exceeded';
                END IF;
                least_left := LEAST(COALESCE(least_left, p_limits[i] - r_spent - r_reserved),
                    p_limits[i] - r_spent - r_reserved);
            END LOOP;
        EXCEPTION WHEN raise_exception THEN
            SELECT w.spent, w.reserved INTO r_spent, r_reserved FROM budget_windows w
                WHERE w.scope = p_scopes[failed] AND w.win = p_wins[failed];
            RETURN QUERY SELECT FALSE, failed, r_spent, r_reserved, NULL::NUMERIC;
            RETURN;
        END;
        RETURN QUERY SELECT TRUE, 0, NULL::NUMERIC, NULL::NUMERIC, least_left;
    END
    $fn$;",
];

/// Advisory lock taken while migrating (any constant; "tierwise" in ASCII, truncated).
const MIGRATION_LOCK: i64 = 0x7469_6572_7769_7365;

/// The request log columns in insert/select order (as in SQLite's `schema::COLUMNS`).
const COLUMNS: &str = crate::schema::COLUMNS;

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:*****@{host}"),
        None => url.to_string(),
    }
}

fn parse_config(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    let mut cfg = tokio_postgres::Config::from_str(url)
        .map_err(|e| StoreError::Invalid(format!("database URL {}: {e}", redact(url))))?;
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(Duration::from_secs(5));
    }
    cfg.application_name("tierwise");
    Ok(cfg)
}

/// A one-thread runtime for the blocking entry points (open, the writer thread, the reader).
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, StoreError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StoreError::Writer(format!("async runtime: {e}")))
}

/// Connects one client, its connection driven by a task of the current runtime.
pub(crate) async fn connect(
    cfg: &tokio_postgres::Config,
    target: &str,
) -> Result<Client, StoreError> {
    let (client, connection) = cfg
        .connect(NoTls)
        .await
        .map_err(|e| unavailable(target, &e))?;
    // The connection task ends with its client: nothing to finish at shutdown.
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "database connection closed");
        }
    });
    Ok(client)
}

fn unavailable(target: &str, e: &impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable {
        target: target.to_string(),
        message: e.to_string(),
    }
}

/// A server's answer (SQL error) is `Postgres`; anything else means it could not be reached.
fn pg_err(target: &str, e: &tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => StoreError::Postgres {
            target: target.to_string(),
            message: db.message().to_string(),
        },
        None => unavailable(target, e),
    }
}

async fn migrate(client: &mut Client, target: &str) -> Result<(), StoreError> {
    let err = |e: tokio_postgres::Error| pg_err(target, &e);
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(err)?;
    let result = async {
        client
            .batch_execute("CREATE TABLE IF NOT EXISTS tierwise_schema (version INTEGER NOT NULL)")
            .await
            .map_err(err)?;
        let found: i64 = client
            .query_one(
                "SELECT COALESCE(MAX(version), 0)::BIGINT FROM tierwise_schema",
                &[],
            )
            .await
            .map_err(err)?
            .get(0);
        let known = MIGRATIONS.len() as i64;
        if found > known {
            return Err(StoreError::NewerSchema {
                path: target.to_string(),
                found,
                known,
            });
        }
        if found < known {
            let tx = client.transaction().await.map_err(err)?;
            for sql in &MIGRATIONS[found as usize..] {
                tx.batch_execute(sql).await.map_err(err)?;
            }
            tx.execute("DELETE FROM tierwise_schema", &[])
                .await
                .map_err(err)?;
            tx.execute(
                "INSERT INTO tierwise_schema (version) VALUES ($1)",
                &[&(known as i32)],
            )
            .await
            .map_err(err)?;
            tx.commit().await.map_err(err)?;
        }
        Ok(())
    }
    .await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    result?;
    unlocked.map_err(err)?;
    Ok(())
}

/// Runs `f` on a one-thread runtime on its own thread: callable from async code and from plain
/// threads alike.
pub(crate) fn block<T: Send>(
    f: impl std::future::Future<Output = Result<T, StoreError>> + Send,
) -> Result<T, StoreError> {
    std::thread::scope(|s| {
        s.spawn(|| runtime()?.block_on(f))
            .join()
            .map_err(|_| StoreError::Writer("database thread panicked".into()))?
    })
}

/// The PostgreSQL store.
#[derive(Debug)]
pub struct PgStore {
    pool: Pool,
    log: RequestLog,
    target: String,
}

impl PgStore {
    /// Connects, migrates, builds the pool and starts the log writer. A server that cannot be
    /// reached is [`StoreError::Unavailable`] here.
    pub fn open(url: &str, options: WriterOptions) -> Result<PgStore, StoreError> {
        let target = redact(url);
        let cfg = parse_config(url)?;
        block(async {
            let mut client = connect(&cfg, &target).await?;
            migrate(&mut client, &target).await
        })?;
        // Budget and rate statements commit without waiting for the WAL flush (an fsync per
        // call otherwise: ~8 ms of the gateway's added p50 measured here). A server crash can
        // lose the last ~0.6 s (3 × wal_writer_delay) of window updates; the request log keeps
        // its own durable connection.
        let mut pool_cfg = cfg.clone();
        let pg_options = match cfg.get_options() {
            Some(o) => format!("{o} -c synchronous_commit=off"),
            None => "-c synchronous_commit=off".to_string(),
        };
        pool_cfg.options(&pg_options);
        let manager = Manager::from_config(
            pool_cfg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(16)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .create_timeout(Some(Duration::from_secs(5)))
            .wait_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| StoreError::Invalid(format!("database pool: {e}")))?;
        let sink = PgSink {
            runtime: runtime()?,
            cfg,
            client: None,
            target: target.clone(),
        };
        let log = RequestLog::start(sink, target.clone(), options)?;
        Ok(PgStore { pool, log, target })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| unavailable(&self.target, &e))
    }

    fn err(&self, e: &tokio_postgres::Error) -> StoreError {
        pg_err(&self.target, e)
    }

    async fn get_key(
        &self,
        c: &impl tokio_postgres::GenericClient,
        by: &str,
        value: &str,
    ) -> Result<Option<KeyRecord>, StoreError> {
        let row = c
            .query_opt(
                &format!("SELECT {KEY_SELECT} FROM keys WHERE {by} = $1"),
                &[&value],
            )
            .await
            .map_err(|e| self.err(&e))?;
        row.map(|r| key_row(&r)).transpose()
    }

    async fn get_team(
        &self,
        c: &impl tokio_postgres::GenericClient,
        name: &str,
    ) -> Result<Option<Team>, StoreError> {
        let row = c
            .query_opt(
                &format!("SELECT {TEAM_SELECT} FROM teams WHERE name = $1"),
                &[&name],
            )
            .await
            .map_err(|e| self.err(&e))?;
        row.map(|r| team_row(&r)).transpose()
    }

    async fn write_key(
        &self,
        c: &impl tokio_postgres::GenericClient,
        k: &KeyRecord,
    ) -> Result<(), StoreError> {
        c.execute(
            "UPDATE keys SET name = $2, team = $3, budget_usd_day = $4::text::numeric, \
             budget_usd_month = $5::text::numeric, rpm = $6, tpm = $7, tiers = $8, \
             max_tier = $9, expires_ms = $10, revoked_ms = $11 WHERE id = $1",
            &[
                &k.id,
                &k.name,
                &k.team,
                &k.limits.budget_usd_day.map(|d| d.to_string()),
                &k.limits.budget_usd_month.map(|d| d.to_string()),
                &int(k.limits.rpm),
                &int(k.limits.tpm),
                &k.tiers.as_ref().map(|t| t.join(",")),
                &k.max_tier,
                &k.expires.map(ms),
                &k.revoked.map(ms),
            ],
        )
        .await
        .map_err(|e| self.err(&e))?;
        Ok(())
    }
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

fn int(v: Option<u64>) -> Option<i64> {
    v.map(|n| i64::try_from(n).unwrap_or(i64::MAX))
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

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    r: &'a Row,
    idx: usize,
    column: &'static str,
) -> Result<T, StoreError> {
    r.try_get(idx).map_err(|e| StoreError::BadValue {
        column,
        message: e.to_string(),
    })
}

const KEY_SELECT: &str = "id, name, prefix, team, budget_usd_day::text, budget_usd_month::text, \
    rpm, tpm, tiers, max_tier, expires_ms, revoked_ms, created_ms";

fn key_row(r: &Row) -> Result<KeyRecord, StoreError> {
    let tiers: Option<String> = get(r, 8, "tiers")?;
    let count = |v: Option<i64>| v.map(|n| u64::try_from(n).unwrap_or(0));
    Ok(KeyRecord {
        id: get(r, 0, "id")?,
        name: get(r, 1, "name")?,
        prefix: get(r, 2, "prefix")?,
        team: get(r, 3, "team")?,
        limits: Limits {
            budget_usd_day: dec(get(r, 4, "budget_usd_day")?, "budget_usd_day")?,
            budget_usd_month: dec(get(r, 5, "budget_usd_month")?, "budget_usd_month")?,
            rpm: count(get(r, 6, "rpm")?),
            tpm: count(get(r, 7, "tpm")?),
        },
        tiers: tiers.map(|t| t.split(',').map(str::to_string).collect()),
        max_tier: get(r, 9, "max_tier")?,
        expires: get::<Option<i64>>(r, 10, "expires_ms")?
            .map(from_ms)
            .transpose()?,
        revoked: get::<Option<i64>>(r, 11, "revoked_ms")?
            .map(from_ms)
            .transpose()?,
        created: from_ms(get(r, 12, "created_ms")?)?,
    })
}

const TEAM_SELECT: &str = "name, budget_usd_day::text, budget_usd_month::text, created_ms";

fn team_row(r: &Row) -> Result<Team, StoreError> {
    Ok(Team {
        name: get(r, 0, "name")?,
        budget_usd_day: dec(get(r, 1, "budget_usd_day")?, "budget_usd_day")?,
        budget_usd_month: dec(get(r, 2, "budget_usd_month")?, "budget_usd_month")?,
        created: from_ms(get(r, 3, "created_ms")?)?,
    })
}

fn check_team_budgets(u: &TeamUpdate) -> Result<(), StoreError> {
    keys::check_budget("budget_usd_day", u.budget_usd_day.flatten())?;
    keys::check_budget("budget_usd_month", u.budget_usd_month.flatten())
}

impl Store for PgStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn describe(&self) -> String {
        self.target.clone()
    }

    fn log(&self) -> &RequestLog {
        &self.log
    }

    fn create_team(&self, name: &str, budgets: TeamUpdate) -> Fut<'_, Team> {
        let name = name.to_string();
        Box::pin(async move {
            check_team_budgets(&budgets)?;
            crate::check_name("team", &name)?;
            let c = self.client().await?;
            let n = c
                .execute(
                    "INSERT INTO teams (name, budget_usd_day, budget_usd_month, created_ms) \
                     VALUES ($1, $2::text::numeric, $3::text::numeric, $4) ON CONFLICT DO NOTHING",
                    &[
                        &name,
                        &budgets.budget_usd_day.flatten().map(|d| d.to_string()),
                        &budgets.budget_usd_month.flatten().map(|d| d.to_string()),
                        &ms(OffsetDateTime::now_utc()),
                    ],
                )
                .await
                .map_err(|e| self.err(&e))?;
            if n == 0 {
                return Err(StoreError::Invalid(format!("team {name} already exists")));
            }
            self.get_team(&**c, &name)
                .await?
                .ok_or(StoreError::NotFound("team", name))
        })
    }

    fn update_team(&self, name: &str, update: TeamUpdate) -> Fut<'_, Team> {
        let name = name.to_string();
        Box::pin(async move {
            check_team_budgets(&update)?;
            let c = self.client().await?;
            let mut team = self
                .get_team(&**c, &name)
                .await?
                .ok_or_else(|| StoreError::NotFound("team", name.clone()))?;
            if let Some(v) = update.budget_usd_day {
                team.budget_usd_day = v;
            }
            if let Some(v) = update.budget_usd_month {
                team.budget_usd_month = v;
            }
            c.execute(
                "UPDATE teams SET budget_usd_day = $2::text::numeric, \
                 budget_usd_month = $3::text::numeric WHERE name = $1",
                &[
                    &name,
                    &team.budget_usd_day.map(|d| d.to_string()),
                    &team.budget_usd_month.map(|d| d.to_string()),
                ],
            )
            .await
            .map_err(|e| self.err(&e))?;
            Ok(team)
        })
    }

    fn team(&self, name: &str) -> Fut<'_, Option<Team>> {
        let name = name.to_string();
        Box::pin(async move {
            let c = self.client().await?;
            self.get_team(&**c, &name).await
        })
    }

    fn teams(&self) -> Fut<'_, Vec<Team>> {
        Box::pin(async move {
            let c = self.client().await?;
            c.query(
                &format!("SELECT {TEAM_SELECT} FROM teams ORDER BY name"),
                &[],
            )
            .await
            .map_err(|e| self.err(&e))?
            .iter()
            .map(team_row)
            .collect()
        })
    }

    fn create_key(&self, new: NewKey) -> Fut<'_, CreatedKey> {
        Box::pin(async move {
            check_limits(&new.limits)?;
            crate::check_name("key", &new.name)?;
            let c = self.client().await?;
            if let Some(team) = &new.team
                && self.get_team(&**c, team).await?.is_none()
            {
                return Err(StoreError::NotFound("team", team.clone()));
            }
            let generated = keys::generate();
            let id = keys::new_id();
            c.execute(
                "INSERT INTO keys (hash, id, name, prefix, team, budget_usd_day, \
                 budget_usd_month, rpm, tpm, tiers, max_tier, expires_ms, revoked_ms, created_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6::text::numeric, $7::text::numeric, $8, $9, $10, \
                 $11, $12, NULL, $13)",
                &[
                    &generated.hash,
                    &id,
                    &new.name,
                    &generated.prefix,
                    &new.team,
                    &new.limits.budget_usd_day.map(|d| d.to_string()),
                    &new.limits.budget_usd_month.map(|d| d.to_string()),
                    &int(new.limits.rpm),
                    &int(new.limits.tpm),
                    &new.tiers.as_ref().map(|t| t.join(",")),
                    &new.max_tier,
                    &new.expires.map(ms),
                    &ms(OffsetDateTime::now_utc()),
                ],
            )
            .await
            .map_err(|e| self.err(&e))?;
            let record = self
                .get_key(&**c, "id", &id)
                .await?
                .ok_or_else(|| StoreError::NotFound("key", id.clone()))?;
            Ok(CreatedKey {
                record,
                secret: generated.secret,
            })
        })
    }

    fn key_by_hash(&self, hash: &str) -> Fut<'_, Option<KeyRecord>> {
        let hash = hash.to_string();
        Box::pin(async move {
            let c = self.client().await?;
            self.get_key(&**c, "hash", &hash).await
        })
    }

    fn key(&self, id: &str) -> Fut<'_, Option<KeyRecord>> {
        let id = id.to_string();
        Box::pin(async move {
            let c = self.client().await?;
            self.get_key(&**c, "id", &id).await
        })
    }

    fn keys(&self) -> Fut<'_, Vec<KeyRecord>> {
        Box::pin(async move {
            let c = self.client().await?;
            c.query(
                &format!("SELECT {KEY_SELECT} FROM keys ORDER BY created_ms, id"),
                &[],
            )
            .await
            .map_err(|e| self.err(&e))?
            .iter()
            .map(key_row)
            .collect()
        })
    }

    fn update_key(&self, id: &str, update: KeyUpdate) -> Fut<'_, KeyRecord> {
        let id = id.to_string();
        Box::pin(async move {
            let c = self.client().await?;
            let mut key = self
                .get_key(&**c, "id", &id)
                .await?
                .ok_or_else(|| StoreError::NotFound("key", id.clone()))?;
            update.apply(&mut key);
            check_limits(&key.limits)?;
            if let Some(team) = &key.team
                && self.get_team(&**c, team).await?.is_none()
            {
                return Err(StoreError::NotFound("team", team.clone()));
            }
            self.write_key(&**c, &key).await?;
            Ok(key)
        })
    }

    fn revoke_key(&self, id: &str, now: OffsetDateTime) -> Fut<'_, KeyRecord> {
        let id = id.to_string();
        Box::pin(async move {
            let c = self.client().await?;
            c.execute(
                "UPDATE keys SET revoked_ms = $2 WHERE id = $1 AND revoked_ms IS NULL",
                &[&id, &ms(now)],
            )
            .await
            .map_err(|e| self.err(&e))?;
            self.get_key(&**c, "id", &id)
                .await?
                .ok_or(StoreError::NotFound("key", id))
        })
    }

    fn reserve(
        &self,
        limits: Vec<Limit>,
        amount: Decimal,
        now: OffsetDateTime,
    ) -> Fut<'_, Reserved> {
        Box::pin(async move {
            // A fixed lock order across replicas: no deadlocks.
            let mut rows: Vec<(String, crate::budget::Window, &Limit)> = limits
                .iter()
                .map(|l| (l.scope.column(), l.period.window(now), l))
                .collect();
            rows.sort_by(|a, b| (&a.0, &a.1.label).cmp(&(&b.0, &b.1.label)));
            for (_, window, limit) in &rows {
                if amount > limit.usd {
                    return Ok(Reserved::Exceeded {
                        limit: (*limit).clone(),
                        spent: Decimal::ZERO,
                        reserved: Decimal::ZERO,
                        resets: window.resets,
                    });
                }
            }
            let c = self.client().await?;
            let scopes: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
            let wins: Vec<String> = rows.iter().map(|r| r.1.label.clone()).collect();
            let limits_text: Vec<String> = rows.iter().map(|r| r.2.usd.to_string()).collect();
            let row = c
                .query_one(
                    "SELECT granted, idx, spent::text, reserved::text, remaining::text \
                     FROM tierwise_reserve($1::text[], $2::text[], $3::text[]::numeric[], \
                     $4::text::numeric)",
                    &[&scopes, &wins, &limits_text, &amount.to_string()],
                )
                .await
                .map_err(|e| self.err(&e))?;
            let granted: bool = get(&row, 0, "granted")?;
            if !granted {
                let idx: i32 = get(&row, 1, "idx")?;
                let Some((_, window, limit)) =
                    usize::try_from(idx - 1).ok().and_then(|i| rows.get(i))
                else {
                    return Err(StoreError::BadValue {
                        column: "idx",
                        message: format!("no window {idx}"),
                    });
                };
                return Ok(Reserved::Exceeded {
                    limit: (*limit).clone(),
                    spent: dec(get(&row, 2, "spent")?, "spent")?.unwrap_or_default(),
                    reserved: dec(get(&row, 3, "reserved")?, "reserved")?.unwrap_or_default(),
                    resets: window.resets,
                });
            }
            Ok(Reserved::Granted(Reservation {
                windows: scopes.into_iter().zip(wins).collect(),
                amount,
                remaining: dec(get(&row, 4, "remaining")?, "remaining")?.unwrap_or_default(),
            }))
        })
    }

    fn reconcile(&self, reservation: Reservation, exact: Decimal) -> Fut<'_, ()> {
        Box::pin(async move {
            let mut windows = reservation.windows.clone();
            windows.sort();
            let mut c = self.client().await?;
            let tx = c.transaction().await.map_err(|e| self.err(&e))?;
            let amount = reservation.amount.to_string();
            let exact = exact.to_string();
            for (scope, win) in &windows {
                tx.execute(
                    "INSERT INTO budget_windows AS w (scope, win, spent, reserved) \
                     VALUES ($1, $2, $4::text::numeric, 0) \
                     ON CONFLICT (scope, win) DO UPDATE SET \
                     reserved = GREATEST(w.reserved - $3::text::numeric, 0), \
                     spent = w.spent + $4::text::numeric",
                    &[scope, win, &amount, &exact],
                )
                .await
                .map_err(|e| self.err(&e))?;
            }
            tx.commit().await.map_err(|e| self.err(&e))
        })
    }

    fn spend(&self, scope: Scope) -> Fut<'_, Vec<WindowSpend>> {
        Box::pin(async move {
            let c = self.client().await?;
            c.query(
                "SELECT win, spent::text, reserved::text FROM budget_windows WHERE scope = $1 \
                 ORDER BY win DESC",
                &[&scope.column()],
            )
            .await
            .map_err(|e| self.err(&e))?
            .iter()
            .map(|r| {
                Ok(WindowSpend {
                    window: get(r, 0, "win")?,
                    spent: dec(Some(get(r, 1, "spent")?), "spent")?.unwrap_or_default(),
                    reserved: dec(Some(get(r, 2, "reserved")?), "reserved")?.unwrap_or_default(),
                })
            })
            .collect()
        })
    }

    fn rate_take(
        &self,
        scope: Scope,
        minute: i64,
        tokens: u64,
        rpm: Option<u64>,
        tpm: Option<u64>,
    ) -> Fut<'_, RateCount> {
        Box::pin(async move {
            let scope = scope.column();
            let c = self.client().await?;
            let t = i64::try_from(tokens).unwrap_or(i64::MAX);
            let fits_alone = rpm.is_none_or(|l| l >= 1) && tpm.is_none_or(|l| tokens <= l);
            let counted = if fits_alone {
                c.query_opt(
                    "INSERT INTO rate_windows AS w (scope, minute, requests, tokens) \
                     VALUES ($1, $2, 1, $3) \
                     ON CONFLICT (scope, minute) DO UPDATE SET requests = w.requests + 1, \
                     tokens = w.tokens + EXCLUDED.tokens \
                     WHERE ($4::BIGINT IS NULL OR w.requests < $4) \
                     AND ($5::BIGINT IS NULL OR w.tokens + EXCLUDED.tokens <= $5) \
                     RETURNING requests, tokens",
                    &[&scope, &minute, &t, &int(rpm), &int(tpm)],
                )
                .await
                .map_err(|e| self.err(&e))?
            } else {
                None
            };
            let as_u64 = |v: i64| u64::try_from(v).unwrap_or(0);
            if let Some(row) = counted {
                if rand::random::<u8>() < 4 {
                    // Now and then, forget minutes that can no longer matter.
                    c.execute(
                        "DELETE FROM rate_windows WHERE minute < $1",
                        &[&(minute - 1)],
                    )
                    .await
                    .map_err(|e| self.err(&e))?;
                }
                return Ok(RateCount {
                    allowed: true,
                    requests: as_u64(get(&row, 0, "requests")?),
                    tokens: as_u64(get(&row, 1, "tokens")?),
                });
            }
            let row = c
                .query_opt(
                    "SELECT requests, tokens FROM rate_windows WHERE scope = $1 AND minute = $2",
                    &[&scope, &minute],
                )
                .await
                .map_err(|e| self.err(&e))?;
            let (requests, used) = match row {
                Some(r) => (get::<i64>(&r, 0, "requests")?, get::<i64>(&r, 1, "tokens")?),
                None => (0, 0),
            };
            Ok(RateCount {
                allowed: false,
                requests: as_u64(requests),
                tokens: as_u64(used),
            })
        })
    }
}

/// The log writer's PostgreSQL side: its own client on its own one-thread runtime.
struct PgSink {
    runtime: tokio::runtime::Runtime,
    cfg: tokio_postgres::Config,
    client: Option<Client>,
    target: String,
}

const INSERT: &str = "INSERT INTO requests (id, ts_ms, time, endpoint, requested_model, tier, \
    model, reason, category, role, mode, service_tier, input_tokens, cached_tokens, \
    output_tokens, reasoning_tokens, usage_estimated, cost_usd, baseline_cost_usd, latency_ms, \
    status, streamed, attempts, tiers_tried, error, request_body, response_body, tools_offered, \
    tools_sent, tool_tokens_offered, tool_tokens_sent, category_source, key_id, team) VALUES \
    ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
    $18::text::numeric, $19::text::numeric, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, \
    $30, $31, $32, $33, $34)";

fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Sink for PgSink {
    fn insert(&mut self, rows: &[RequestRow]) -> Result<(), SinkError> {
        let PgSink {
            runtime,
            cfg,
            client,
            target,
        } = self;
        runtime.block_on(async {
            if client.as_ref().is_none_or(Client::is_closed) {
                *client = None;
                let c = connect(cfg, target)
                    .await
                    .map_err(|e| SinkError::Unavailable(e.to_string()))?;
                *client = Some(c);
            }
            let Some(c) = client.as_mut() else {
                return Err(SinkError::Unavailable("no connection".into()));
            };
            let classify = |e: tokio_postgres::Error| {
                if e.as_db_error().is_some() {
                    SinkError::Rows(e.to_string())
                } else {
                    SinkError::Unavailable(e.to_string())
                }
            };
            let tx = c.transaction().await.map_err(classify)?;
            let stmt = tx.prepare(INSERT).await.map_err(classify)?;
            for r in rows {
                let time = r
                    .time
                    .format(&Rfc3339)
                    .map_err(|e| SinkError::Rows(e.to_string()))?;
                let ts_ms = i64::try_from(r.time.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
                tx.execute(
                    &stmt,
                    &[
                        &r.id.to_string(),
                        &ts_ms,
                        &time,
                        &r.endpoint,
                        &r.requested_model,
                        &r.tier,
                        &r.model,
                        &r.reason,
                        &r.category,
                        &r.role,
                        &r.mode,
                        &r.service_tier,
                        &big(r.input_tokens),
                        &big(r.cached_tokens),
                        &big(r.output_tokens),
                        &big(r.reasoning_tokens),
                        &r.usage_estimated,
                        &r.cost_usd.map(|d| d.to_string()),
                        &r.baseline_cost_usd.map(|d| d.to_string()),
                        &r.latency_ms,
                        &i32::from(r.status),
                        &r.streamed,
                        &i32::try_from(r.attempts).unwrap_or(i32::MAX),
                        &r.tiers_tried.join(","),
                        &r.error,
                        &r.request_body,
                        &r.response_body,
                        &big(r.tools.offered),
                        &big(r.tools.sent),
                        &big(r.tools.tokens_offered),
                        &big(r.tools.tokens_sent),
                        &r.category_source,
                        &r.key_id,
                        &r.team,
                    ],
                )
                .await
                .map_err(classify)?;
            }
            tx.commit().await.map_err(classify)
        })
    }
}

/// The select list for reading rows back (money as text).
pub(crate) fn select_columns() -> String {
    COLUMNS.replace(
        "cost_usd, baseline_cost_usd",
        "cost_usd::text, baseline_cost_usd::text",
    )
}

/// Decodes a row selected with [`select_columns`].
pub(crate) fn decode(row: &Row) -> Result<RequestRow, StoreError> {
    let id: String = get(row, 0, "id")?;
    let time: String = get(row, 2, "time")?;
    let tiers: String = get(row, 23, "tiers_tried")?;
    let count = |idx: usize, column: &'static str| -> Result<u64, StoreError> {
        let v: i64 = get(row, idx, column)?;
        u64::try_from(v).map_err(|_| StoreError::BadValue {
            column,
            message: format!("negative: {v}"),
        })
    };
    let bad = |column: &'static str, e: &dyn std::fmt::Display| StoreError::BadValue {
        column,
        message: e.to_string(),
    };
    Ok(RequestRow {
        id: uuid::Uuid::parse_str(&id).map_err(|e| bad("id", &e))?,
        time: OffsetDateTime::parse(&time, &Rfc3339).map_err(|e| bad("time", &e))?,
        endpoint: get(row, 3, "endpoint")?,
        requested_model: get(row, 4, "requested_model")?,
        tier: get(row, 5, "tier")?,
        model: get(row, 6, "model")?,
        reason: get(row, 7, "reason")?,
        category: get(row, 8, "category")?,
        role: get(row, 9, "role")?,
        mode: get(row, 10, "mode")?,
        service_tier: get(row, 11, "service_tier")?,
        input_tokens: count(12, "input_tokens")?,
        cached_tokens: count(13, "cached_tokens")?,
        output_tokens: count(14, "output_tokens")?,
        reasoning_tokens: count(15, "reasoning_tokens")?,
        usage_estimated: get(row, 16, "usage_estimated")?,
        cost_usd: dec(get(row, 17, "cost_usd")?, "cost_usd")?,
        baseline_cost_usd: dec(get(row, 18, "baseline_cost_usd")?, "baseline_cost_usd")?,
        latency_ms: get(row, 19, "latency_ms")?,
        status: u16::try_from(get::<i32>(row, 20, "status")?).unwrap_or(0),
        streamed: get(row, 21, "streamed")?,
        attempts: u32::try_from(get::<i32>(row, 22, "attempts")?).unwrap_or(0),
        tiers_tried: if tiers.is_empty() {
            Vec::new()
        } else {
            tiers.split(',').map(str::to_string).collect()
        },
        error: get(row, 24, "error")?,
        request_body: get(row, 25, "request_body")?,
        response_body: get(row, 26, "response_body")?,
        tools: crate::ToolCounts {
            offered: count(27, "tools_offered")?,
            sent: count(28, "tools_sent")?,
            tokens_offered: count(29, "tool_tokens_offered")?,
            tokens_sent: count(30, "tool_tokens_sent")?,
        },
        category_source: get(row, 31, "category_source")?,
        key_id: get(row, 32, "key_id")?,
        team: get(row, 33, "team")?,
    })
}

/// Opens a client for reading (the reader's), after checking the schema is known.
pub(crate) async fn connect_reader(url: &str) -> Result<Client, StoreError> {
    let target = redact(url);
    let cfg = parse_config(url)?;
    let client = connect(&cfg, &target).await?;
    let row = client
        .query_opt("SELECT MAX(version)::BIGINT FROM tierwise_schema", &[])
        .await
        .map_err(|e| match e.as_db_error() {
            Some(_) => StoreError::Invalid(format!("{target}: not a tierwise database ({e})")),
            None => unavailable(&target, &e),
        })?;
    let found: Option<i64> = row.and_then(|r| r.get(0));
    match found {
        Some(v) if v > MIGRATIONS.len() as i64 => Err(StoreError::NewerSchema {
            path: target,
            found: v,
            known: MIGRATIONS.len() as i64,
        }),
        Some(_) => Ok(client),
        None => Err(StoreError::Invalid(format!(
            "{target}: not a tierwise database"
        ))),
    }
}
