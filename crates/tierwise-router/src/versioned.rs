//! The header every weights file of this crate carries (`format`, `format_version`), checked
//! the same way for the learned router and the cascade scorer.

use serde_json::Value;

/// Why a file's header does not fit the code.
#[derive(Debug)]
pub(crate) enum Mismatch {
    /// Not JSON at all.
    Json(String),
    /// Another `format` (found).
    Format(String),
    /// Another `format_version` (found; 0 when absent).
    Version(u64),
}

/// Parses `text` and checks its `format` and `format_version` against the code's.
pub(crate) fn parse(text: &str, format: &str, version: u32) -> Result<Value, Mismatch> {
    let v: Value = serde_json::from_str(text).map_err(|e| Mismatch::Json(e.to_string()))?;
    let found = v.get("format").and_then(Value::as_str).unwrap_or("");
    if found != format {
        return Err(Mismatch::Format(found.to_string()));
    }
    let found = v.get("format_version").and_then(Value::as_u64).unwrap_or(0);
    if found != u64::from(version) {
        return Err(Mismatch::Version(found));
    }
    Ok(v)
}
