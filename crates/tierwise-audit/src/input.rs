//! Opening inputs and telling their format apart.
//!
//! An input is a file or `-` (stdin). gzip is recognised by its magic bytes, whatever the name.
//! After decompression the first bytes decide the format:
//! - `SQLite format 3` → tierwise's request log (read through `tierwise-store`; files only);
//! - a first line that is a whole JSON object with `request` or `response` → a JSONL call log;
//! - a first line that is a whole JSON object with `data` buckets (`"object": "page"`) → usage
//!   export pages, one per line;
//! - otherwise the whole input is read as one JSON value: a usage export page, or an array of
//!   pages (what a script that follows `next_page` usually saves).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::read::MultiGzDecoder;
use serde::Serialize;
use serde_json::Value;
use tierwise_core::cost::Usage;

use crate::error::AuditError;

/// Where calls come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputSpec {
    Path(PathBuf),
    Stdin,
    /// tierwise's request log (`--store`).
    Store(PathBuf),
}

impl InputSpec {
    /// `-` is stdin; anything else a path.
    pub fn parse(s: &Path) -> InputSpec {
        if s.as_os_str() == "-" {
            InputSpec::Stdin
        } else {
            InputSpec::Path(s.to_path_buf())
        }
    }

    pub fn name(&self) -> String {
        match self {
            InputSpec::Path(p) => p.display().to_string(),
            InputSpec::Store(p) => tierwise_store::postgres::redact(&p.to_string_lossy()),
            InputSpec::Stdin => "<stdin>".to_string(),
        }
    }

    /// Bytes on disk (compressed size for .gz), for progress.
    pub fn size(&self) -> Option<u64> {
        match self {
            InputSpec::Path(p) => std::fs::metadata(p).ok().map(|m| m.len()),
            InputSpec::Stdin | InputSpec::Store(_) => None,
        }
    }
}

/// The detected format of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// One call per line: `{"request", "response", "timestamp", "metadata"}`.
    CallLog,
    /// OpenAI organization usage export (`/v1/organization/usage/completions` pages).
    UsageExport,
    /// tierwise's own SQLite request log.
    Store,
}

/// Counts bytes read from the underlying file (compressed bytes for .gz), for progress.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// An opened input, decompressed, with its format.
pub struct Opened {
    pub name: String,
    pub format: Format,
    pub reader: Box<dyn BufRead + Send>,
}

const SQLITE_MAGIC: &[u8] = b"SQLite format 3\0";

/// Opens `spec`, decompresses gzip, and detects the format. `bytes_read` is advanced as the
/// raw input is consumed.
pub fn open(spec: &InputSpec, bytes_read: Arc<AtomicU64>) -> Result<Opened, AuditError> {
    let name = spec.name();
    let raw: Box<dyn Read + Send> = match spec {
        InputSpec::Path(p) => Box::new(File::open(p).map_err(|source| AuditError::Open {
            path: p.clone(),
            source,
        })?),
        InputSpec::Stdin => Box::new(std::io::stdin()),
        InputSpec::Store(_) => {
            return Ok(Opened {
                name,
                format: Format::Store,
                reader: Box::new(std::io::empty()),
            });
        }
    };
    let counted = Counting {
        inner: raw,
        count: bytes_read,
    };
    let mut buffered = BufReader::with_capacity(1 << 16, counted);
    let head = buffered
        .fill_buf()
        .map_err(|source| read_err(&name, 0, source))?
        .to_vec();
    let mut reader: Box<dyn BufRead + Send> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(BufReader::with_capacity(
            1 << 16,
            MultiGzDecoder::new(buffered),
        ))
    } else {
        Box::new(buffered)
    };
    let first = reader
        .fill_buf()
        .map_err(|source| read_err(&name, 0, source))?;
    if first.starts_with(SQLITE_MAGIC) {
        return Ok(Opened {
            name,
            format: Format::Store,
            reader,
        });
    }
    let format = detect(&mut reader, &name)?;
    Ok(Opened {
        name,
        format,
        reader,
    })
}

fn read_err(name: &str, line: u64, source: std::io::Error) -> AuditError {
    AuditError::Read {
        name: name.to_string(),
        line,
        source,
    }
}

/// Peeks at the first line without consuming it (up to the buffer's size).
fn detect(reader: &mut Box<dyn BufRead + Send>, name: &str) -> Result<Format, AuditError> {
    let buf = reader.fill_buf().map_err(|e| read_err(name, 1, e))?;
    let start = buf
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(buf.len());
    let rest = &buf[start..];
    if rest.is_empty() {
        // Empty input: a call log with no calls.
        return Ok(Format::CallLog);
    }
    if rest[0] == b'[' {
        return Ok(Format::UsageExport);
    }
    if rest[0] != b'{' {
        return Err(AuditError::Format {
            name: name.to_string(),
            reason: "the first byte is neither `{` nor `[` (nor gzip or SQLite)".to_string(),
        });
    }
    // Look at the first few whole lines: a call or a page on one line decides.
    let mut lines = rest.split(|&b| b == b'\n');
    let complete = rest.iter().filter(|&&b| b == b'\n').count();
    for line in lines.by_ref().take(complete.min(3)) {
        if let Ok(v) = serde_json::from_slice::<Value>(line) {
            if is_page(&v) {
                return Ok(Format::UsageExport);
            }
            if v.get("request").is_some() || v.get("response").is_some() {
                return Ok(Format::CallLog);
            }
        }
    }
    // A first line longer than the peek buffer is a (large) call; a JSON value spread over
    // several lines is a pretty-printed export page.
    let first_is_whole_object = complete > 0
        && rest
            .split(|&b| b == b'\n')
            .next()
            .is_some_and(|l| serde_json::from_slice::<Value>(l).is_ok());
    if complete == 0 || first_is_whole_object {
        Ok(Format::CallLog)
    } else {
        Ok(Format::UsageExport)
    }
}

fn is_page(v: &Value) -> bool {
    v.get("object").and_then(Value::as_str) == Some("page")
        || (v.get("data").is_some_and(Value::is_array)
            && v.get("request").is_none()
            && v.get("response").is_none())
}

/// One result row of a usage export bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportRow {
    /// Bucket start, unix milliseconds.
    pub start_ms: Option<i64>,
    /// `None` when the export was not grouped by model.
    pub model: Option<String>,
    /// `None` when the export was not grouped by batch.
    pub batch: Option<bool>,
    pub service_tier: Option<String>,
    pub requests: u64,
    pub usage: Usage,
}

/// Reads every bucket result of a usage export (one page, an array of pages, or JSONL pages).
pub fn read_export(reader: &mut dyn BufRead, name: &str) -> Result<Vec<ExportRow>, AuditError> {
    let mut text = Vec::new();
    reader
        .read_to_end(&mut text)
        .map_err(|e| read_err(name, 0, e))?;
    let mut rows = Vec::new();
    let bad = |reason: String| AuditError::Format {
        name: name.to_string(),
        reason,
    };
    match serde_json::from_slice::<Value>(&text) {
        Ok(v) => collect_pages(&v, &mut rows).map_err(bad)?,
        Err(whole_err) => {
            // JSONL pages.
            for (i, line) in text.split(|&b| b == b'\n').enumerate() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let v: Value = serde_json::from_slice(line).map_err(|e| {
                    bad(format!(
                        "line {}: {e} (whole input: {whole_err})",
                        i as u64 + 1
                    ))
                })?;
                collect_pages(&v, &mut rows).map_err(|e| bad(format!("line {}: {e}", i + 1)))?;
            }
        }
    }
    Ok(rows)
}

fn collect_pages(v: &Value, rows: &mut Vec<ExportRow>) -> Result<(), String> {
    match v {
        Value::Array(pages) => {
            for p in pages {
                collect_pages(p, rows)?;
            }
            Ok(())
        }
        Value::Object(o) if o.get("object").and_then(Value::as_str) == Some("bucket") => {
            collect_bucket(v, rows)
        }
        Value::Object(o) => {
            let data = o
                .get("data")
                .and_then(Value::as_array)
                .ok_or("a usage export page needs a `data` array of buckets")?;
            for b in data {
                collect_bucket(b, rows)?;
            }
            Ok(())
        }
        _ => Err("expected a usage export page (an object with `data`)".to_string()),
    }
}

fn collect_bucket(b: &Value, rows: &mut Vec<ExportRow>) -> Result<(), String> {
    let start_ms = b
        .get("start_time")
        .and_then(Value::as_i64)
        .map(|s| s * 1000);
    let results = b
        .get("results")
        .and_then(Value::as_array)
        .ok_or("a bucket needs a `results` array")?;
    for r in results {
        let num = |k: &str| r.get(k).and_then(Value::as_u64);
        let input = num("input_tokens").ok_or("a result needs `input_tokens`")?;
        let cached = num("input_cached_tokens").unwrap_or(0);
        let output = num("output_tokens").ok_or("a result needs `output_tokens`")?;
        rows.push(ExportRow {
            start_ms,
            model: r.get("model").and_then(Value::as_str).map(str::to_string),
            batch: r.get("batch").and_then(Value::as_bool),
            service_tier: r
                .get("service_tier")
                .and_then(Value::as_str)
                .map(str::to_string),
            requests: num("num_model_requests").unwrap_or(0),
            usage: Usage {
                input_tokens: input,
                cached_tokens: cached.min(input),
                output_tokens: output,
                reasoning_tokens: 0,
                cache_write_tokens: 0,
            },
        });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;
    use std::io::Write;

    fn open_bytes(bytes: &[u8]) -> Opened {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, bytes).unwrap();
        let o = open(&InputSpec::Path(p), Arc::new(AtomicU64::new(0))).unwrap();
        drop(dir);
        o
    }

    const PAGE: &str = r#"{"object": "page", "data": [{"object": "bucket", "start_time": 1730419200, "end_time": 1730505600,
        "results": [{"object": "organization.usage.completions.result", "input_tokens": 1000, "output_tokens": 500,
        "input_cached_tokens": 800, "num_model_requests": 5, "model": "gpt-4o-mini-2024-07-18", "batch": false}]}],
        "has_more": false, "next_page": null}"#;

    #[test]
    fn detects_formats() {
        let o = open_bytes(b"{\"request\": {\"model\": \"m\", \"messages\": []}}\n");
        assert_eq!(o.format, Format::CallLog);
        let mut o = open_bytes(PAGE.as_bytes());
        assert_eq!(o.format, Format::UsageExport);
        let rows = read_export(&mut o.reader, "x").unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].usage.cached_tokens, 800);
        assert_eq!(rows[0].requests, 5);
        assert_eq!(rows[0].start_ms, Some(1_730_419_200_000));
        let one_line = PAGE.replace('\n', " ");
        let o = open_bytes(format!("{one_line}\n{one_line}\n").as_bytes());
        assert_eq!(o.format, Format::UsageExport);
        let o = open_bytes(format!("[{PAGE}, {PAGE}]").as_bytes());
        assert_eq!(o.format, Format::UsageExport);
        let o = open_bytes(b"SQLite format 3\0rest");
        assert_eq!(o.format, Format::Store);
    }

    #[test]
    fn gzip_by_magic() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"{\"request\": {}}\n").unwrap();
        let bytes = enc.finish().unwrap();
        let mut o = open_bytes(&bytes);
        assert_eq!(o.format, Format::CallLog);
        let mut s = String::new();
        o.reader.read_to_string(&mut s).unwrap();
        assert_eq!(s, "{\"request\": {}}\n");
    }

    #[test]
    fn missing_file_is_an_error() {
        let r = open(
            &InputSpec::Path("/nonexistent/x.jsonl".into()),
            Arc::new(AtomicU64::new(0)),
        );
        assert!(matches!(r, Err(AuditError::Open { .. })));
    }
}
