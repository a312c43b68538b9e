//! Test databases: a SQLite file in a temp dir, or a PostgreSQL schema of its own on the
//! server `TIERWISE_TEST_DATABASE_URL` names (tests that ask for one fail without it).
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test harness"
)]

use std::path::PathBuf;
use std::sync::Arc;

use rust_decimal_macros::dec;
use tierwise_store::{Location, RequestRow, Store, WriterOptions};
use time::OffsetDateTime;
use uuid::Uuid;

pub const TEST_DB_ENV: &str = "TIERWISE_TEST_DATABASE_URL";

pub struct Db {
    location: String,
    /// Base URL and schema of a PostgreSQL test schema.
    pg: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

/// `url` with `search_path` set to `schema` (as a connection option).
pub fn with_schema(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{schema}")
}

impl Db {
    pub fn sqlite() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        Db {
            location: path.display().to_string(),
            pg: None,
            _dir: Some(dir),
        }
    }

    /// A fresh schema on the test server. Panics (the test fails, it does not pass unrun)
    /// when `TIERWISE_TEST_DATABASE_URL` is not set.
    pub async fn postgres() -> Db {
        let url = std::env::var(TEST_DB_ENV).unwrap_or_else(|_| {
            panic!("{TEST_DB_ENV} is not set: this test needs PostgreSQL (scripts/test skips it by name without a server)")
        });
        let schema = format!("tw_test_{}", Uuid::now_v7().simple());
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .unwrap();
        Db {
            location: with_schema(&url, &schema),
            pg: Some((url, schema)),
            _dir: None,
        }
    }

    pub fn location(&self) -> String {
        self.location.clone()
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from(&self.location)
    }

    pub fn open(&self) -> Arc<dyn Store> {
        tierwise_store::open(&Location::parse(&self.location), WriterOptions::default()).unwrap()
    }

    /// Every row of `table` as text.
    pub async fn dump_text(&self, table: &str) -> String {
        let (url, schema) = self.pg.as_ref().unwrap();
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let rows = client
            .query(&format!("SELECT t::text FROM {schema}.{table} t"), &[])
            .await
            .unwrap();
        rows.iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Drops the test schema.
    pub async fn drop(&self) {
        if let Some((url, schema)) = &self.pg {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            let _ = client
                .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
                .await;
        }
    }
}

pub fn row(i: u64, t: OffsetDateTime) -> RequestRow {
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
        baseline_cost_usd: if i.is_multiple_of(3) {
            None
        } else {
            Some(dec!(0.0011))
        },
        latency_ms: 12.5,
        status: 200,
        streamed: i.is_multiple_of(2),
        attempts: 2,
        tiers_tried: vec!["nano".into(), "mini".into()],
        error: if i == 1 { Some("boom".into()) } else { None },
        request_body: None,
        response_body: None,
        tools: tierwise_store::ToolCounts {
            offered: i,
            sent: 1,
            tokens_offered: 10 * i,
            tokens_sent: 7,
        },
        key_id: Some(format!("key_{i:012}")),
        team: if i.is_multiple_of(2) {
            Some("research".into())
        } else {
            None
        },
    }
}
