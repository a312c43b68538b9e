//! [`Store`]: the one interface the gateway and the CLI use, with two backends —
//! [`crate::sqlite::SqliteStore`] (embedded, the default: one file beside the config) and
//! [`crate::postgres::PgStore`] (`[store] url = "postgres://…"`, shared by replicas).
//!
//! Methods return boxed futures so the trait is object-safe (`Arc<dyn Store>`). The SQLite
//! backend answers at once (its statements take microseconds under one mutex); the PostgreSQL
//! backend awaits its connection pool.
//!
//! # Adding a table
//! 1. Append a migration to **both** lists: `schema::MIGRATIONS` (SQLite) and
//!    `postgres::MIGRATIONS` (never edit a released one).
//! 2. Add the methods to this trait (or to a trait of your own module, implemented for both
//!    backend types) and implement them in `sqlite.rs` and `postgres.rs`.
//! 3. Test them once for both backends: the `for_each_backend` helper of this crate's tests runs
//!    a test body against SQLite and, when `TIERWISE_TEST_DATABASE_URL` is set, PostgreSQL.

use std::future::Future;
use std::pin::Pin;

use rust_decimal::Decimal;
use time::OffsetDateTime;

use crate::budget::{Limit, Reservation, Reserved, Scope, WindowSpend};
use crate::keys::{KeyRecord, KeyUpdate, NewKey, Team, TeamUpdate};
use crate::{RequestLog, StoreError};

/// A boxed future of a store call.
pub type Fut<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A newly created key: the record and the key itself (shown once).
#[derive(Debug, Clone)]
pub struct CreatedKey {
    pub record: KeyRecord,
    pub secret: String,
}

/// The counts of one rate window after a request was counted (or refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateCount {
    /// Whether the request fit and was counted.
    pub allowed: bool,
    /// Requests counted in the window, this one included when allowed.
    pub requests: u64,
    /// Tokens counted in the window.
    pub tokens: u64,
}

/// The store: request log, keys, teams, budget windows and rate windows.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// `sqlite` or `postgres`.
    fn kind(&self) -> &'static str;
    /// The file path, or the URL without its password.
    fn describe(&self) -> String;
    /// The write-behind request log.
    fn log(&self) -> &RequestLog;

    fn create_team(&self, name: &str, budgets: TeamUpdate) -> Fut<'_, Team>;
    fn update_team(&self, name: &str, update: TeamUpdate) -> Fut<'_, Team>;
    fn team(&self, name: &str) -> Fut<'_, Option<Team>>;
    fn teams(&self) -> Fut<'_, Vec<Team>>;

    /// Creates a key; fails with [`StoreError::Invalid`] for an unknown team or a negative budget.
    fn create_key(&self, new: NewKey) -> Fut<'_, CreatedKey>;
    /// The key whose hash is `hash`, revoked and expired ones included.
    fn key_by_hash(&self, hash: &str) -> Fut<'_, Option<KeyRecord>>;
    fn key(&self, id: &str) -> Fut<'_, Option<KeyRecord>>;
    fn keys(&self) -> Fut<'_, Vec<KeyRecord>>;
    fn update_key(&self, id: &str, update: KeyUpdate) -> Fut<'_, KeyRecord>;
    /// Marks the key revoked at `now` (idempotent: the first revocation time stays).
    fn revoke_key(&self, id: &str, now: OffsetDateTime) -> Fut<'_, KeyRecord>;

    /// Reserves `amount` on every limit's current window at `now`, atomically: all or none.
    fn reserve(
        &self,
        limits: Vec<Limit>,
        amount: Decimal,
        now: OffsetDateTime,
    ) -> Fut<'_, Reserved>;
    /// Releases a reservation and adds the exact cost to the same windows.
    fn reconcile(&self, reservation: Reservation, exact: Decimal) -> Fut<'_, ()>;
    /// Spend per window of a scope (newest first).
    fn spend(&self, scope: Scope) -> Fut<'_, Vec<WindowSpend>>;

    /// Counts one request of `tokens` in `scope`'s minute `minute` (unix minutes) if it fits
    /// under `rpm` / `tpm` (`None`: no limit).
    fn rate_take(
        &self,
        scope: Scope,
        minute: i64,
        tokens: u64,
        rpm: Option<u64>,
        tpm: Option<u64>,
    ) -> Fut<'_, RateCount>;
}

/// Where the store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl Location {
    /// A `postgres://` / `postgresql://` URL, else a SQLite file path.
    pub fn parse(s: &str) -> Location {
        if is_postgres_url(s) {
            Location::Postgres(s.to_string())
        } else {
            Location::Sqlite(std::path::PathBuf::from(s))
        }
    }
}

pub fn is_postgres_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// Opens the store at `location`: creates or migrates its schema and starts the log writer.
/// A database that cannot be reached is an error here, at start.
pub fn open(
    location: &Location,
    options: crate::WriterOptions,
) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    Ok(match location {
        Location::Sqlite(path) => {
            std::sync::Arc::new(crate::sqlite::SqliteStore::open(path, options)?)
        }
        Location::Postgres(url) => {
            std::sync::Arc::new(crate::postgres::PgStore::open(url, options)?)
        }
    })
}

/// Checks that the amounts of a key or team are sound.
pub(crate) fn check_limits(new: &crate::keys::Limits) -> Result<(), StoreError> {
    crate::keys::check_budget("budget_usd_day", new.budget_usd_day)?;
    crate::keys::check_budget("budget_usd_month", new.budget_usd_month)
}
