//! The same behaviour from both backends: each test body runs once on SQLite (`sqlite_*`)
//! and once on PostgreSQL (`pg_*`, in a schema of its own; they need
//! `TIERWISE_TEST_DATABASE_URL` and fail without it — `scripts/test` leaves them out, by name,
//! when no server is reachable).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::sync::Arc;

use common::{Db, row};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use tierwise_store::budget::{Limit, Period, Reserved, Scope};
use tierwise_store::keys::{self, KeyUpdate, Limits, NewKey, TeamUpdate};
use tierwise_store::{LogReader, Store, StoreError, TimeRange};
use time::OffsetDateTime;

async fn keys_lifecycle(store: Arc<dyn Store>) {
    let team = store
        .create_team(
            "research",
            TeamUpdate {
                budget_usd_day: Some(Some(dec!(5))),
                budget_usd_month: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(team.budget_usd_day, Some(dec!(5)));
    let created = store
        .create_key(NewKey {
            name: "app".into(),
            team: Some("research".into()),
            limits: Limits {
                budget_usd_day: Some(dec!(1.25)),
                rpm: Some(10),
                ..Limits::default()
            },
            tiers: Some(vec!["nano".into(), "mini".into()]),
            max_tier: Some("mini".into()),
            expires: None,
        })
        .await
        .unwrap();
    assert!(keys::well_formed(&created.secret));
    let found = store
        .key_by_hash(&keys::hash(&created.secret))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, created.record);
    assert_eq!(found.limits.budget_usd_day, Some(dec!(1.25)));
    assert_eq!(
        found.tiers.as_deref(),
        Some(&["nano".into(), "mini".into()][..])
    );
    assert!(
        store
            .key_by_hash(&keys::hash("tw-nope"))
            .await
            .unwrap()
            .is_none()
    );

    let updated = store
        .update_key(
            &found.id,
            KeyUpdate {
                max_tier: Some(None),
                tpm: Some(Some(1000)),
                ..KeyUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.max_tier, None);
    assert_eq!(updated.limits.tpm, Some(1000));
    assert_eq!(store.key(&found.id).await.unwrap().unwrap(), updated);

    let now = OffsetDateTime::now_utc();
    let revoked = store.revoke_key(&found.id, now).await.unwrap();
    assert_eq!(revoked.refusal(now), Some("revoked"));
    assert_eq!(store.keys().await.unwrap(), vec![revoked]);

    // Bad input.
    let unknown_team = store
        .create_key(NewKey {
            name: "x".into(),
            team: Some("nobody".into()),
            ..NewKey::default()
        })
        .await;
    assert!(matches!(unknown_team, Err(StoreError::NotFound("team", _))));
    let negative = store
        .create_key(NewKey {
            name: "x".into(),
            limits: Limits {
                budget_usd_month: Some(dec!(-1)),
                ..Limits::default()
            },
            ..NewKey::default()
        })
        .await;
    assert!(
        matches!(negative, Err(StoreError::Invalid(_))),
        "{negative:?}"
    );
    assert!(matches!(
        store.create_team("research", TeamUpdate::default()).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store
            .update_key("key_000000000000", KeyUpdate::default())
            .await,
        Err(StoreError::NotFound("key", _))
    ));
}

fn limit(scope: Scope, period: Period, usd: Decimal) -> Limit {
    Limit { scope, period, usd }
}

async fn budgets_reserve_and_reconcile(store: Arc<dyn Store>) {
    let now = OffsetDateTime::now_utc();
    let key = Scope::Key("key_a".into());
    let team = Scope::Team("t".into());
    let limits = vec![
        limit(key.clone(), Period::Day, dec!(1.00)),
        limit(team.clone(), Period::Month, dec!(10)),
    ];
    let Reserved::Granted(a) = store.reserve(limits.clone(), dec!(0.4), now).await.unwrap() else {
        panic!("first reservation refused")
    };
    assert_eq!(a.remaining, dec!(0.6));
    let Reserved::Granted(b) = store.reserve(limits.clone(), dec!(0.4), now).await.unwrap() else {
        panic!("second reservation refused")
    };
    // 0.8 held: 0.4 more does not fit under the key's day.
    let refused = store.reserve(limits.clone(), dec!(0.4), now).await.unwrap();
    let Reserved::Exceeded {
        limit: hit,
        reserved,
        resets,
        ..
    } = refused
    else {
        panic!("overspend allowed")
    };
    assert_eq!(hit.scope, key);
    assert_eq!(reserved, dec!(0.8));
    assert_eq!(resets, Period::Day.window(now).resets);
    // The refused reservation left the team's window untouched (all or none).
    let team_spend = store.spend(team.clone()).await.unwrap();
    assert_eq!(team_spend[0].reserved, dec!(0.8));

    // Reconcile with the exact costs: the reservations are released, the spend added.
    store.reconcile(a, dec!(0.1)).await.unwrap();
    store.reconcile(b, dec!(0.25)).await.unwrap();
    let spend = store.spend(key.clone()).await.unwrap();
    assert_eq!(spend.len(), 1);
    assert_eq!(spend[0].spent, dec!(0.35));
    assert_eq!(spend[0].reserved, Decimal::ZERO);
    assert!(spend[0].window.starts_with("day:"));
    // Now 0.6 fits again, 0.66 does not.
    assert!(matches!(
        store
            .reserve(limits.clone(), dec!(0.66), now)
            .await
            .unwrap(),
        Reserved::Exceeded { .. }
    ));
    assert!(matches!(
        store.reserve(limits, dec!(0.65), now).await.unwrap(),
        Reserved::Granted(_)
    ));
}

/// Many reservations at once on one window: exactly as many as fit are granted.
async fn concurrent_reservations_never_overspend(store: Arc<dyn Store>) {
    let now = OffsetDateTime::now_utc();
    let limits = vec![limit(Scope::Key("key_c".into()), Period::Month, dec!(1.0))];
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let store = Arc::clone(&store);
            let limits = limits.clone();
            tokio::spawn(async move { store.reserve(limits, dec!(0.1), now).await.unwrap() })
        })
        .collect();
    let mut granted = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), Reserved::Granted(_)) {
            granted += 1;
        }
    }
    assert_eq!(granted, 10);
    let spend = store.spend(Scope::Key("key_c".into())).await.unwrap();
    assert_eq!(spend[0].reserved, dec!(1.0));
}

async fn rate_windows(store: Arc<dyn Store>) {
    let scope = Scope::Key("key_r".into());
    for i in 1..=3 {
        let c = store
            .rate_take(scope.clone(), 100, 10, Some(3), Some(1000))
            .await
            .unwrap();
        assert!(c.allowed);
        assert_eq!((c.requests, c.tokens), (i, 10 * i));
    }
    let refused = store
        .rate_take(scope.clone(), 100, 10, Some(3), Some(1000))
        .await
        .unwrap();
    assert!(!refused.allowed);
    assert_eq!((refused.requests, refused.tokens), (3, 30));
    // The next minute starts afresh; tokens are limited too.
    assert!(
        store
            .rate_take(scope.clone(), 101, 900, Some(3), Some(1000))
            .await
            .unwrap()
            .allowed
    );
    assert!(
        !store
            .rate_take(scope.clone(), 101, 101, Some(3), Some(1000))
            .await
            .unwrap()
            .allowed
    );
    assert!(
        !store
            .rate_take(scope, 102, 1001, None, Some(1000))
            .await
            .unwrap()
            .allowed
    );
}

async fn log_round_trip(store: Arc<dyn Store>, location: String) {
    let t0 = OffsetDateTime::now_utc();
    let rows: Vec<_> = (0..20)
        .map(|i| row(i, t0 + time::Duration::milliseconds(i as i64)))
        .collect();
    for r in &rows {
        store.log().record(r.clone()).unwrap();
    }
    store.log().flush().unwrap();
    let reader = LogReader::open_location(&location).unwrap();
    assert_eq!(reader.rows(&TimeRange::all()).unwrap(), rows);
    assert_eq!(reader.count(&TimeRange::all()).unwrap(), 20);
    let window = TimeRange {
        since: Some(rows[5].time),
        until: Some(rows[8].time),
    };
    assert_eq!(reader.rows(&window).unwrap(), rows[5..8].to_vec());
}

macro_rules! both {
    ($body:ident) => {
        mod $body {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = Db::sqlite();
                super::$body(db.open()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn pg() {
                let db = Db::postgres().await;
                super::$body(db.open()).await;
                db.drop().await;
            }
        }
    };
}

both!(keys_lifecycle);
both!(budgets_reserve_and_reconcile);
both!(concurrent_reservations_never_overspend);
both!(rate_windows);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_log_round_trip() {
    let db = Db::sqlite();
    log_round_trip(db.open(), db.location()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_log_round_trip() {
    let db = Db::postgres().await;
    log_round_trip(db.open(), db.location()).await;
    db.drop().await;
}

/// The database holds the key's hash, never the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_stores_no_key_in_plain_text() {
    let db = Db::postgres().await;
    let store = db.open();
    let created = store
        .create_key(NewKey {
            name: "secret-test".into(),
            ..NewKey::default()
        })
        .await
        .unwrap();
    let dump = db.dump_text("keys").await;
    assert!(dump.contains(&keys::hash(&created.secret)));
    assert!(!dump.contains(&created.secret[3..]), "{dump}");
    db.drop().await;
}

#[test]
fn sqlite_stores_no_key_in_plain_text() {
    let db = Db::sqlite();
    let store = db.open();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let created = rt
        .block_on(store.create_key(NewKey {
            name: "secret-test".into(),
            ..NewKey::default()
        }))
        .unwrap();
    store.log().close().unwrap();
    drop(store);
    // Every byte of the file (and its WAL), not just the table.
    let mut bytes = std::fs::read(db.path()).unwrap();
    if let Ok(wal) = std::fs::read(db.path().with_extension("db-wal")) {
        bytes.extend(wal);
    }
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains(&keys::hash(&created.secret)));
    assert!(!text.contains(&created.secret[3..]));
}

/// A server that cannot be reached at start is an error naming it, without its password.
#[test]
fn unreachable_postgres_at_start_is_an_error() {
    let err = tierwise_store::open(
        &tierwise_store::Location::Postgres(
            "postgres://tw:hunter2@127.0.0.1:1/none?connect_timeout=2".into(),
        ),
        tierwise_store::WriterOptions::default(),
    )
    .unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    let text = err.to_string();
    assert!(text.contains("127.0.0.1:1"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}
