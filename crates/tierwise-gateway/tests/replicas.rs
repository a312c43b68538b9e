//! Two gateway replicas on one PostgreSQL (a schema of its own per test), in front of the mock:
//! budgets, revocations and rate limits hold across them. These tests need
//! `TIERWISE_TEST_DATABASE_URL` and fail without it (`scripts/test` leaves them out by name when
//! no server is reachable; `.ci/run` requires them).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::time::{Duration, Instant};

use common::{Harness, Setup};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tierwise_store::{LogReader, TimeRange};

const ADMIN: &str = "admin-secret-for-tests";

struct Schema {
    url: String,
    base: String,
    name: String,
}

impl Schema {
    async fn new() -> Schema {
        let base = std::env::var("TIERWISE_TEST_DATABASE_URL").unwrap_or_else(|_| {
            panic!("TIERWISE_TEST_DATABASE_URL is not set: this test needs PostgreSQL")
        });
        let name = format!("tw_test_{}", uuid::Uuid::now_v7().simple());
        let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .unwrap();
        let sep = if base.contains('?') { '&' } else { '?' };
        Schema {
            url: format!("{base}{sep}options=-csearch_path%3D{name}"),
            base,
            name,
        }
    }

    async fn drop(self) {
        let (client, conn) = tokio_postgres::connect(&self.base, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let _ = client
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name))
            .await;
    }
}

async fn replica(schema: &Schema, key_cache_ms: u64) -> Harness {
    Harness::with(
        Setup::default()
            .section(&format!(
                "[auth]\nmode = \"keys\"\nkey_cache_ms = {key_cache_ms}\n\n[store]\nurl = \"{}\"",
                schema.url
            ))
            .env("TIERWISE_ADMIN_KEY", ADMIN),
    )
    .await
}

async fn create_key(h: &Harness, body: Value) -> (String, String) {
    let resp = h
        .client
        .post(h.url("/admin/keys"))
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let v: Value = resp.json().await.unwrap();
    (
        v["id"].as_str().unwrap().to_string(),
        v["key"].as_str().unwrap().to_string(),
    )
}

fn call(h: &Harness, key: &str, body: &Value) -> reqwest::RequestBuilder {
    h.client
        .post(h.url("/v1/chat/completions"))
        .bearer_auth(key)
        .header("x-tierwise-tier", "nano")
        .json(body)
}

/// 80 concurrent calls on one key, split across two replicas, stop at its budget: the logged
/// spend never exceeds it (each call sets `max_tokens`, so its exact cost is at most its
/// estimate and the bound is 0), and the windows' spend equals the logged spend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_two_replicas_share_a_budget_under_concurrency() {
    let schema = Schema::new().await;
    let a = replica(&schema, 1000).await;
    let b = replica(&schema, 1000).await;
    let budget = Decimal::new(1, 2); // $0.01
    let (id, key) = create_key(&a, json!({"name": "shared", "budget_usd_day": "0.01"})).await;
    // ~2,000 prompt tokens: ~$0.0004 a call at nano's input price.
    let prompt = "word ".repeat(2000);
    let body = json!({"model": "auto", "max_tokens": 50,
        "messages": [{"role": "user", "content": prompt}]});
    let mut tasks = Vec::new();
    for i in 0..80 {
        let req = call(if i % 2 == 0 { &a } else { &b }, &key, &body);
        tasks.push(tokio::spawn(async move {
            req.send().await.unwrap().status().as_u16()
        }));
    }
    let mut ok = 0;
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            200 => ok += 1,
            429 => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(ok >= 5, "{ok} calls served");
    assert!(refused > 0, "the budget never refused a call");
    // Reconciliations are tasks; shutting the replicas down waits for them.
    let mut a = a;
    let mut b = b;
    a.shutdown().await;
    b.shutdown().await;
    let rows = LogReader::open_location(&schema.url)
        .unwrap()
        .rows(&TimeRange::all())
        .unwrap();
    let served: Vec<_> = rows
        .iter()
        .filter(|r| r.key_id.as_deref() == Some(id.as_str()) && r.status == 200)
        .collect();
    assert_eq!(served.len(), ok);
    let logged: Decimal = served.iter().filter_map(|r| r.cost_usd).sum();
    assert!(logged <= budget, "spent {logged} of {budget}");
    // The windows hold exactly what was logged, and no reservation is left.
    let store = tierwise_store::open(
        &tierwise_store::Location::Postgres(schema.url.clone()),
        tierwise_store::WriterOptions::default(),
    )
    .unwrap();
    let spend = store
        .spend(tierwise_store::budget::Scope::Key(id.clone()))
        .await
        .unwrap();
    assert_eq!(spend[0].spent, logged);
    assert_eq!(spend[0].reserved, Decimal::ZERO);
    store.log().close().unwrap();
    drop(store);
    schema.drop().await;
}

/// A key revoked on one replica is refused by the other within a second (its key cache).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_a_revocation_reaches_the_other_replica_within_a_second() {
    let schema = Schema::new().await;
    let a = replica(&schema, 1000).await;
    let b = replica(&schema, 1000).await;
    let (id, key) = create_key(&a, json!({"name": "soon-gone"})).await;
    let body = common::user("nano", "hi");
    // B has the key in its cache now.
    assert_eq!(call(&b, &key, &body).send().await.unwrap().status(), 200);
    let revoked = a
        .client
        .delete(a.url(&format!("/admin/keys/{id}")))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let t0 = Instant::now();
    loop {
        let status = call(&b, &key, &body).send().await.unwrap().status();
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            t0.elapsed() < Duration::from_millis(1200),
            "still served {:?} after the revocation",
            t0.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(t0.elapsed() <= Duration::from_millis(1200));
    schema.drop().await;
}

/// rpm holds across replicas: the window is one row in PostgreSQL, counted atomically.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_rate_limits_hold_across_replicas() {
    let schema = Schema::new().await;
    let a = replica(&schema, 1000).await;
    let b = replica(&schema, 1000).await;
    let (_, key) = create_key(&a, json!({"name": "limited", "rpm": 10})).await;
    let body = common::user("nano", "hi");
    let minute = || time::OffsetDateTime::now_utc().unix_timestamp() / 60;
    let start = minute();
    let mut tasks = Vec::new();
    for i in 0..30 {
        let req = call(if i % 2 == 0 { &a } else { &b }, &key, &body);
        tasks.push(tokio::spawn(async move { req.send().await.unwrap() }));
    }
    let mut ok = 0;
    for t in tasks {
        let resp = t.await.unwrap();
        match resp.status().as_u16() {
            200 => ok += 1,
            429 => {
                assert!(resp.headers().contains_key("retry-after"));
                let v: Value = resp.json().await.unwrap();
                assert_eq!(v["error"]["code"], "rate_limit_exceeded");
            }
            other => panic!("unexpected status {other}"),
        }
    }
    if minute() == start {
        assert_eq!(ok, 10);
    } else {
        // The calls straddled a minute boundary: two windows.
        assert!((10..=20).contains(&ok), "{ok}");
    }
    schema.drop().await;
}

/// A TCP relay to the PostgreSQL server that a test can cut (every connection dropped, new
/// ones refused) and restore: the database "going down" while the gateway serves.
struct Relay {
    addr: std::net::SocketAddr,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    async fn start(target: &str) -> Relay {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (up2, conns2, target) = (up.clone(), conns.clone(), target.to_string());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns2.lock().unwrap().push(task);
            }
        });
        Relay { addr, up, conns }
    }

    fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for t in self.conns.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The database goes down while serving: a budgeted call fails closed with a 503 (its key is
/// still cached, but its budget cannot be checked); the log keeps the rows and writes them
/// once the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_database_down_while_serving_fails_closed_and_the_log_catches_up() {
    let schema = Schema::new().await;
    let host = schema
        .base
        .split('@')
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap()
        .to_string();
    let relay = Relay::start(&host).await;
    let relayed = Schema {
        url: schema.url.replace(&host, &relay.addr.to_string()),
        base: schema.base.clone(),
        name: schema.name.clone(),
    };
    let h = replica(&relayed, 1000).await;
    let (id, key) = create_key(&h, json!({"name": "budgeted", "budget_usd_day": "5"})).await;
    let body = common::user("nano", "hi");
    assert_eq!(call(&h, &key, &body).send().await.unwrap().status(), 200);
    relay.cut();
    let resp = call(&h, &key, &body).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "store_unavailable");
    // The rows wait in memory; the database comes back; they are written.
    tokio::time::sleep(Duration::from_millis(300)).await;
    relay.restore();
    let state = std::sync::Arc::clone(h.gateway.state());
    tokio::task::spawn_blocking(move || state.store.log().flush())
        .await
        .unwrap()
        .unwrap();
    let rows = LogReader::open_location(&schema.url)
        .unwrap()
        .rows(&TimeRange::all())
        .unwrap();
    let mine: Vec<_> = rows
        .iter()
        .filter(|r| r.key_id.as_deref() == Some(id.as_str()))
        .map(|r| r.status)
        .collect();
    assert_eq!(mine, [200, 503]);
    assert_eq!(h.gateway.state().store.log().stats().dropped, 0);
    drop(relayed);
    schema.drop().await;
}

/// With `[store] fail_open = true` a cached key is served while the database is down (the
/// budget is not checked, and the row still reaches the log when the database is back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_fail_open_serves_while_the_database_is_down() {
    let schema = Schema::new().await;
    let host = schema
        .base
        .split('@')
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap()
        .to_string();
    let relay = Relay::start(&host).await;
    let url = schema.url.replace(&host, &relay.addr.to_string());
    let h = Harness::with(
        Setup::default()
            .section(&format!(
                "[auth]\nmode = \"keys\"\n\n[store]\nurl = \"{url}\"\nfail_open = true"
            ))
            .env("TIERWISE_ADMIN_KEY", ADMIN),
    )
    .await;
    let (_, key) = create_key(
        &h,
        json!({"name": "budgeted", "budget_usd_day": "5", "rpm": 100}),
    )
    .await;
    let body = common::user("nano", "hi");
    assert_eq!(call(&h, &key, &body).send().await.unwrap().status(), 200);
    relay.cut();
    let resp = call(&h, &key, &body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()
            .get("x-tierwise-budget-remaining-usd")
            .is_none()
    );
    relay.restore();
    let mut h = h;
    let report = h.shutdown().await;
    assert_eq!(report.log.failed + report.log.dropped, 0);
    schema.drop().await;
}
