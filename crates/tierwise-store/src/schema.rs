//! The schema, as ordered migrations in code. `PRAGMA user_version` records how many have run;
//! opening a log applies the missing ones in one transaction. Never edit a released migration:
//! append a new one.

use rusqlite::Connection;

use crate::StoreError;

/// Migration `i` brings the schema from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: the request log.
    "CREATE TABLE requests (
        id                 TEXT PRIMARY KEY NOT NULL,   -- UUID v7
        ts_ms              INTEGER NOT NULL,            -- unix time, milliseconds (filters, order)
        time               TEXT NOT NULL,               -- RFC 3339, UTC (for people)
        endpoint           TEXT NOT NULL,
        requested_model    TEXT NOT NULL,
        tier               TEXT NOT NULL,
        model              TEXT NOT NULL,
        reason             TEXT NOT NULL,
        category           TEXT,
        role               TEXT,
        mode               TEXT NOT NULL,
        service_tier       TEXT NOT NULL,
        input_tokens       INTEGER NOT NULL,
        cached_tokens      INTEGER NOT NULL,
        output_tokens      INTEGER NOT NULL,
        reasoning_tokens   INTEGER NOT NULL,
        usage_estimated    INTEGER NOT NULL,
        cost_usd           TEXT,                        -- exact decimal text
        baseline_cost_usd  TEXT,
        latency_ms         REAL NOT NULL,
        status             INTEGER NOT NULL,
        streamed           INTEGER NOT NULL,
        attempts           INTEGER NOT NULL,
        tiers_tried        TEXT NOT NULL,               -- comma-separated tier names
        error              TEXT,
        request_body       TEXT,
        response_body      TEXT
    ) STRICT;
    CREATE INDEX requests_ts ON requests (ts_ms);",
    // 2: tools offered vs sent (tool search) and their schema tokens.
    "ALTER TABLE requests ADD COLUMN tools_offered INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE requests ADD COLUMN tools_sent INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE requests ADD COLUMN tool_tokens_offered INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE requests ADD COLUMN tool_tokens_sent INTEGER NOT NULL DEFAULT 0;",
    // 3: where the category came from (`hint` or `categorizer`); before, only hints were logged.
    "ALTER TABLE requests ADD COLUMN category_source TEXT;
    UPDATE requests SET category_source = 'hint' WHERE category IS NOT NULL;",
    // 4: who called (virtual key, team); keys, teams, budget and rate windows.
    "ALTER TABLE requests ADD COLUMN key_id TEXT;
    ALTER TABLE requests ADD COLUMN team TEXT;
    CREATE TABLE teams (
        name              TEXT PRIMARY KEY NOT NULL,
        budget_usd_day    TEXT,                        -- exact decimal text
        budget_usd_month  TEXT,
        created_ms        INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE keys (
        id                TEXT PRIMARY KEY NOT NULL,   -- key_ + 12 hex digits
        hash              TEXT NOT NULL UNIQUE,        -- SHA-256 of the key, hex; never the key
        prefix            TEXT NOT NULL,               -- tw- + 6 characters, for people
        name              TEXT NOT NULL,
        team              TEXT REFERENCES teams (name),
        budget_usd_day    TEXT,
        budget_usd_month  TEXT,
        rpm               INTEGER,
        tpm               INTEGER,
        tiers             TEXT,                        -- comma-separated tier names
        max_tier          TEXT,
        expires_ms        INTEGER,
        revoked_ms        INTEGER,
        created_ms        INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE budget_windows (
        scope             TEXT NOT NULL,               -- key:ID or team:NAME
        win               TEXT NOT NULL,               -- day:YYYY-MM-DD or month:YYYY-MM (UTC)
        spent             TEXT NOT NULL,               -- exact decimal text
        reserved          TEXT NOT NULL,
        PRIMARY KEY (scope, win)
    ) STRICT;
    CREATE TABLE rate_windows (
        scope             TEXT NOT NULL,
        minute            INTEGER NOT NULL,            -- unix minutes
        requests          INTEGER NOT NULL,
        tokens            INTEGER NOT NULL,
        PRIMARY KEY (scope, minute)
    ) STRICT;",
    // 5: shadow-test results (`crate::shadow`).
    crate::shadow::MIGRATION,
];

/// Current schema version (the number of migrations).
pub fn latest() -> i64 {
    MIGRATIONS.len() as i64
}

/// Applies missing migrations. Refuses a log written by a newer tierwise.
pub fn migrate(conn: &mut Connection, path: &str) -> Result<(), StoreError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = latest();
    if found > known {
        return Err(StoreError::NewerSchema {
            path: path.to_string(),
            found,
            known,
        });
    }
    if found == known {
        return Ok(());
    }
    let tx = conn.transaction()?;
    for sql in &MIGRATIONS[found as usize..] {
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", known)?;
    tx.commit()?;
    Ok(())
}

/// What to select from a log of schema `version`: [`COLUMNS`], with what the columns added
/// after it mean for older rows: zero tool counts (migration 2); a logged category was a hint
/// (migration 3); no key or team (migration 4).
pub(crate) fn select_columns(version: i64) -> String {
    let mut cols = COLUMNS.to_string();
    if version < 2 {
        cols = cols.replace(
            "tools_offered, tools_sent, tool_tokens_offered, tool_tokens_sent",
            "0, 0, 0, 0",
        );
    }
    if version < 4 {
        cols = cols.replace("key_id, team", "NULL, NULL");
    }
    if version < 3 {
        cols = cols.replace(
            "category_source",
            "CASE WHEN category IS NULL THEN NULL ELSE 'hint' END",
        );
    }
    cols
}

/// Column list in insert/select order.
pub(crate) const COLUMNS: &str = "id, ts_ms, time, endpoint, requested_model, tier, model, reason, \
    category, role, mode, service_tier, input_tokens, cached_tokens, output_tokens, \
    reasoning_tokens, usage_estimated, cost_usd, baseline_cost_usd, latency_ms, status, streamed, \
    attempts, tiers_tried, error, request_body, response_body, tools_offered, tools_sent, \
    tool_tokens_offered, tool_tokens_sent, category_source, key_id, team";
