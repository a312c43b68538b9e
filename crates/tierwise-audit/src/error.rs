//! Errors of the audit engine. Each is one line: the CLI prints it and exits 2.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot read {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{name}: read failed at line {line}: {source}")]
    Read {
        name: String,
        line: u64,
        source: std::io::Error,
    },
    #[error("{name}: not a call log, usage export or request log: {reason}")]
    Format { name: String, reason: String },
    #[error("{name}:{line}: malformed line (--strict): {message}")]
    Strict {
        name: String,
        line: u64,
        message: String,
    },
    #[error("--{flag}: not an RFC 3339 time: {value:?}")]
    Time { flag: &'static str, value: String },
    #[error("store {}: {message}", path.display())]
    Store { path: PathBuf, message: String },
    #[error("cost: {0}")]
    Cost(#[from] tierwise_core::cost::CostError),
    #[error("internal: {0}")]
    Internal(String),
}
