//! `tierwise audit --store … --group-by key|team`: spend of tierwise's own request log broken
//! down by virtual key or team (rows written in open mode, or before keys existed, group
//! under `none`). Read straight from the store, in time order, in constant memory per group.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use rust_decimal::Decimal;
use serde::Serialize;
use tierwise_store::{LogReader, TimeRange};

use crate::error::AuditError;

/// What to group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    Key,
    Team,
}

impl GroupBy {
    pub fn parse(s: &str) -> Option<GroupBy> {
        match s {
            "key" => Some(GroupBy::Key),
            "team" => Some(GroupBy::Team),
            _ => None,
        }
    }
}

/// One group's totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Group {
    /// The key id or team name; `none` for rows without one.
    pub name: String,
    pub requests: u64,
    /// Requests that failed (status ≥ 400), budget and rate refusals included.
    pub errors: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Exact spend (rows of unpriced models add nothing and are counted in `unpriced`).
    pub cost_usd: Decimal,
    pub baseline_cost_usd: Decimal,
    pub unpriced: u64,
}

/// The breakdown, largest spend first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Groups {
    pub by: GroupBy,
    pub groups: Vec<Group>,
}

/// Reads the store at `location` (a SQLite file or a postgres:// URL) and groups its rows.
pub fn group(location: &str, range: &TimeRange, by: GroupBy) -> Result<Groups, AuditError> {
    let err = |e: tierwise_store::StoreError| AuditError::Store {
        path: location.into(),
        message: e.to_string(),
    };
    let reader = LogReader::open_location(location).map_err(err)?;
    let mut acc: BTreeMap<String, Group> = BTreeMap::new();
    reader
        .for_each(range, |row| {
            let name = match by {
                GroupBy::Key => row.key_id,
                GroupBy::Team => row.team,
            }
            .unwrap_or_else(|| "none".into());
            let g = acc.entry(name.clone()).or_insert_with(|| Group {
                name,
                ..Group::default()
            });
            g.requests += 1;
            g.errors += u64::from(row.status >= 400);
            g.input_tokens += row.input_tokens;
            g.output_tokens += row.output_tokens;
            match row.cost_usd {
                Some(c) => g.cost_usd += c,
                None => g.unpriced += 1,
            }
            g.baseline_cost_usd += row.baseline_cost_usd.unwrap_or_default();
            ControlFlow::Continue(())
        })
        .map_err(err)?;
    let mut groups: Vec<Group> = acc.into_values().collect();
    groups.sort_by(|a, b| b.cost_usd.cmp(&a.cost_usd).then(a.name.cmp(&b.name)));
    Ok(Groups { by, groups })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;
    use tierwise_store::{RequestLog, RequestRow, WriterOptions};

    fn row(
        key: Option<&str>,
        team: Option<&str>,
        cost: Option<Decimal>,
        status: u16,
    ) -> RequestRow {
        RequestRow {
            id: uuid::Uuid::now_v7(),
            time: time::OffsetDateTime::now_utc(),
            endpoint: "chat.completions".into(),
            requested_model: "auto".into(),
            tier: "mini".into(),
            model: "gpt-5.4-mini".into(),
            reason: "r".into(),
            category: None,
            category_source: None,
            role: None,
            mode: "sync".into(),
            service_tier: "default".into(),
            input_tokens: 10,
            cached_tokens: 0,
            output_tokens: 5,
            reasoning_tokens: 0,
            usage_estimated: false,
            cost_usd: cost,
            baseline_cost_usd: cost.map(|c| c * dec!(2)),
            latency_ms: 1.0,
            status,
            streamed: false,
            attempts: 1,
            tiers_tried: vec![],
            error: None,
            request_body: None,
            response_body: None,
            tools: Default::default(),
            key_id: key.map(str::to_string),
            team: team.map(str::to_string),
        }
    }

    #[test]
    fn spend_is_grouped_by_key_and_team() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("log.db");
        let log = RequestLog::open(&db, WriterOptions::default()).unwrap();
        log.record(row(Some("key_a"), Some("t1"), Some(dec!(0.5)), 200))
            .unwrap();
        log.record(row(Some("key_a"), Some("t1"), Some(dec!(0.25)), 200))
            .unwrap();
        log.record(row(Some("key_b"), Some("t1"), Some(dec!(1)), 200))
            .unwrap();
        log.record(row(Some("key_b"), Some("t1"), Some(Decimal::ZERO), 429))
            .unwrap();
        log.record(row(None, None, None, 200)).unwrap();
        log.close().unwrap();
        let loc = db.display().to_string();
        let by_key = group(&loc, &TimeRange::all(), GroupBy::Key).unwrap();
        let names: Vec<_> = by_key.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["key_b", "key_a", "none"]);
        assert_eq!(by_key.groups[0].cost_usd, dec!(1));
        assert_eq!(by_key.groups[0].errors, 1);
        assert_eq!(by_key.groups[1].cost_usd, dec!(0.75));
        assert_eq!(by_key.groups[1].baseline_cost_usd, dec!(1.5));
        assert_eq!(by_key.groups[2].unpriced, 1);
        let by_team = group(&loc, &TimeRange::all(), GroupBy::Team).unwrap();
        assert_eq!(by_team.groups[0].name, "t1");
        assert_eq!(by_team.groups[0].requests, 4);
        assert_eq!(by_team.groups[0].cost_usd, dec!(1.75));
    }
}
