//! tierwise's own request log (`--store`, SQLite via `tierwise-store`) as call-log lines.
//!
//! Each row becomes one JSONL line the workers parse like any other:
//! - the usage, served model, service tier and time come from the row's columns;
//! - the role hint and the logged category become the line's `metadata` — the category only
//!   when it was a hint or there is no body to categorize again (a categorizer's category is
//!   computed again from the body by the same function, sure or unsure as the gateway saw it);
//! - with `log.store_bodies = true` the stored request body is the line's `request`, so the
//!   categorizer, the routing what-if, the cache simulation and tool search all apply; without
//!   bodies the line has no request: spend, category (from the hint) and the Batch what-if only.
//!
//! Rows that never reached the provider (rejected before dispatch: no model, no attempt) are
//! skipped and counted.

use serde_json::{Map, Value, json};
use tierwise_store::RequestRow;

/// The JSONL line of a row, or `None` for a row that was never sent upstream.
pub fn row_line(row: &RequestRow) -> Option<Vec<u8>> {
    if row.model.is_empty() || row.attempts == 0 {
        return None;
    }
    let mut meta = Map::new();
    let recomputable =
        row.category_source.as_deref() == Some("categorizer") && row.request_body.is_some();
    if let Some(c) = row.category.as_ref().filter(|_| !recomputable) {
        meta.insert("category".into(), Value::String(c.clone()));
    }
    if let Some(r) = &row.role {
        meta.insert("role".into(), Value::String(r.clone()));
    }
    let response = json!({
        "model": row.model,
        "service_tier": row.service_tier,
        "usage": {
            "prompt_tokens": row.input_tokens,
            "completion_tokens": row.output_tokens,
            "prompt_tokens_details": {"cached_tokens": row.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": row.reasoning_tokens},
        },
    });
    let ts = row
        .time
        .format(&time::format_description::well_known::Rfc3339)
        .ok();
    let mut line = Map::new();
    // The stored body is JSON text; a body that is not JSON makes the line malformed, and it is
    // reported with its row number like any bad line.
    let request = match &row.request_body {
        Some(b) => match serde_json::from_str::<Value>(b) {
            Ok(v) => v,
            Err(_) => Value::String(b.clone()),
        },
        None => Value::Null,
    };
    line.insert("request".into(), request);
    line.insert("response".into(), response);
    if let Some(t) = ts {
        line.insert("timestamp".into(), Value::String(t));
    }
    line.insert("metadata".into(), Value::Object(meta));
    line.insert("usage_estimated".into(), Value::Bool(row.usage_estimated));
    serde_json::to_vec(&Value::Object(line)).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;
    use crate::call::parse_line;
    use tierwise_core::cost::ServiceTier;
    use time::OffsetDateTime;

    fn row(body: Option<&str>) -> RequestRow {
        RequestRow {
            id: uuid_like(),
            time: OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap(),
            endpoint: "chat.completions".into(),
            requested_model: "auto".into(),
            tier: "mini".into(),
            model: "gpt-5.4-mini".into(),
            reason: "rule".into(),
            category: Some("extraction".into()),
            category_source: Some("hint".into()),
            role: None,
            mode: "sync".into(),
            service_tier: "flex".into(),
            input_tokens: 1200,
            cached_tokens: 1024,
            output_tokens: 30,
            reasoning_tokens: 0,
            usage_estimated: false,
            cost_usd: None,
            baseline_cost_usd: None,
            latency_ms: 10.0,
            status: 200,
            streamed: false,
            attempts: 1,
            tiers_tried: vec!["mini".into()],
            error: None,
            request_body: body.map(str::to_string),
            response_body: None,
            tools: Default::default(),
            key_id: None,
            team: None,
        }
    }

    fn uuid_like() -> uuid::Uuid {
        uuid::Uuid::nil()
    }

    #[test]
    fn rows_become_lines() {
        let c = parse_line(&row_line(&row(None)).unwrap()).unwrap();
        assert!(!c.has_content);
        assert_eq!(c.model, "gpt-5.4-mini");
        assert_eq!(c.usage.cached_tokens, 1024);
        assert_eq!(c.service_tier, ServiceTier::Flex);
        assert_eq!(c.ts_ms, Some(1_767_225_600_000));
        assert_eq!(
            c.view.metadata_str("category").as_deref(),
            Some("extraction")
        );
        let body = r#"{"model": "auto", "messages": [{"role": "user", "content": "hi"}]}"#;
        let c = parse_line(&row_line(&row(Some(body))).unwrap()).unwrap();
        assert!(c.has_content);
        assert_eq!(c.view.last_user_text(), "hi");
        let mut r = row(None);
        r.attempts = 0;
        assert!(row_line(&r).is_none());
    }

    /// A categorizer's category is computed again from a stored body (so an unsure one stays
    /// unsure); without a body it is the line's category.
    #[test]
    fn categorizer_categories_are_recomputed_from_bodies() {
        let body = r#"{"model": "auto", "messages": [{"role": "user", "content": "hi"}]}"#;
        let mut r = row(Some(body));
        r.category_source = Some("categorizer".into());
        let c = parse_line(&row_line(&r).unwrap()).unwrap();
        assert_eq!(c.view.metadata_str("category"), None);
        r.request_body = None;
        let c = parse_line(&row_line(&r).unwrap()).unwrap();
        assert_eq!(
            c.view.metadata_str("category").as_deref(),
            Some("extraction")
        );
    }
}
