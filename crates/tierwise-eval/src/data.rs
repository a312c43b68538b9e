//! Routing outcome data sets (`../shared/data/FORMAT.md`): `outcomes*.jsonl[.gz]` + `models.json`.
//!
//! A malformed line is counted, kept with its file and line number, and skipped; it never stops
//! the read. Input tokens are counted here once per row (o200k, `tierwise_core::tokens`).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tierwise_core::request::RequestView;
use tierwise_core::signals::{Hints, Signals};
use tierwise_core::tokens;

/// List prices of one model, USD per 1M tokens.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelPrice {
    #[serde(with = "rust_decimal::serde::str")]
    pub input: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub output: Decimal,
}

/// One model's recorded result on one query.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Quality in [0, 1].
    pub score: f64,
    pub output_tokens: u64,
    /// The answer text, where the data set keeps it.
    pub response: Option<String>,
}

/// One query with its outcomes.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: String,
    pub source: Option<String>,
    pub category: Option<String>,
    /// The request the router sees (`model: "auto"` + the row's `messages`).
    pub view: RequestView,
    /// Signals of `view` with no caller hints.
    pub signals: Signals,
    /// o200k prompt tokens of `messages`, as billed.
    pub input_tokens: u64,
    pub outcomes: BTreeMap<String, Outcome>,
    /// Which file the row came from (index into [`Dataset::files`]).
    pub file: usize,
}

/// A line that could not be read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Malformed {
    pub file: String,
    pub line: usize,
    pub error: String,
}

#[derive(Debug, Clone)]
pub struct Dataset {
    /// Folder name (e.g. `mmlu_pro`).
    pub name: String,
    pub dir: PathBuf,
    /// Outcome files read, in order.
    pub files: Vec<PathBuf>,
    pub models: BTreeMap<String, ModelPrice>,
    pub rows: Vec<Row>,
    pub malformed: Vec<Malformed>,
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Models { path: String, message: String },
    #[error("{0}: no outcomes.jsonl[.gz] or outcomes_*.jsonl[.gz] in this folder")]
    NoOutcomes(String),
    #[error("split {split:?}: no file {dir}/outcomes_{split}.jsonl[.gz] or {dir}/{split}")]
    NoSplit { dir: String, split: String },
    #[error("model {model:?} is not in {path}")]
    UnknownModel { model: String, path: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[derive(Deserialize)]
struct RawModels {
    models: BTreeMap<String, RawPrice>,
}

#[derive(Deserialize)]
struct RawPrice {
    input_per_mtok: f64,
    output_per_mtok: f64,
}

#[derive(Deserialize)]
struct RawRow {
    id: String,
    source: Option<String>,
    category: Option<String>,
    messages: Vec<Value>,
    outcomes: BTreeMap<String, RawOutcome>,
}

#[derive(Deserialize)]
struct RawOutcome {
    score: f64,
    output_tokens: u64,
    response: Option<String>,
}

/// Reads `models.json` of a data set folder.
pub fn read_models(dir: &Path) -> Result<BTreeMap<String, ModelPrice>, DataError> {
    let path = dir.join("models.json");
    let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
    let raw: RawModels = serde_json::from_str(&text).map_err(|e| DataError::Models {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let mut out = BTreeMap::new();
    for (name, p) in raw.models {
        let conv = |x: f64, what: &str| {
            if !x.is_finite() || x < 0.0 {
                return Err(DataError::Models {
                    path: path.display().to_string(),
                    message: format!("{name}: {what} must be a non-negative number"),
                });
            }
            // Prices are short decimals in the file; go through their shortest text form.
            x.to_string()
                .parse::<Decimal>()
                .map_err(|e| DataError::Models {
                    path: path.display().to_string(),
                    message: format!("{name}: {what}: {e}"),
                })
        };
        let price = ModelPrice {
            input: conv(p.input_per_mtok, "input_per_mtok")?,
            output: conv(p.output_per_mtok, "output_per_mtok")?,
        };
        out.insert(name, price);
    }
    Ok(out)
}

/// The outcome files of `path`: a file is itself; a folder gives `outcomes.jsonl[.gz]`, or with
/// `split` the file `outcomes_<split>.jsonl[.gz]` (or a file named `split`; several splits may be
/// comma-separated), or without either every `outcomes_*.jsonl[.gz]`, sorted.
pub fn outcome_files(
    path: &Path,
    split: Option<&str>,
) -> Result<(PathBuf, Vec<PathBuf>), DataError> {
    if path.is_file() {
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        return Ok((dir, vec![path.to_path_buf()]));
    }
    let dir = path.to_path_buf();
    if !dir.is_dir() {
        return Err(DataError::Io {
            path: dir.display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
        });
    }
    let first_existing = |names: &[String]| names.iter().map(|n| dir.join(n)).find(|p| p.is_file());
    if let Some(split) = split {
        let mut files = Vec::new();
        for s in split.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let cands = [
                format!("outcomes_{s}.jsonl"),
                format!("outcomes_{s}.jsonl.gz"),
                s.to_string(),
            ];
            let f = first_existing(&cands).ok_or_else(|| DataError::NoSplit {
                dir: dir.display().to_string(),
                split: s.to_string(),
            })?;
            files.push(f);
        }
        return Ok((dir, files));
    }
    if let Some(f) = first_existing(&["outcomes.jsonl".into(), "outcomes.jsonl.gz".into()]) {
        return Ok((dir, vec![f]));
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(io_err(&dir))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("outcomes_") && (n.ends_with(".jsonl") || n.ends_with(".jsonl.gz"))
            })
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(DataError::NoOutcomes(dir.display().to_string()));
    }
    Ok((dir, files))
}

fn open(path: &Path) -> Result<Box<dyn BufRead>, DataError> {
    let f = File::open(path).map_err(io_err(path))?;
    let gz = path.extension().is_some_and(|e| e == "gz");
    let inner: Box<dyn Read> = if gz {
        Box::new(flate2::read::MultiGzDecoder::new(f))
    } else {
        Box::new(f)
    };
    Ok(Box::new(BufReader::with_capacity(1 << 16, inner)))
}

fn parse_row(line: &str) -> Result<(RawRow, RequestView), String> {
    let raw: RawRow = serde_json::from_str(line).map_err(|e| e.to_string())?;
    if raw.id.is_empty() {
        return Err("empty id".into());
    }
    for (m, o) in &raw.outcomes {
        if !o.score.is_finite() || !(0.0..=1.0).contains(&o.score) {
            return Err(format!("outcomes.{m}.score {} is not in [0, 1]", o.score));
        }
    }
    let body = serde_json::json!({"model": "auto", "messages": raw.messages});
    let view = RequestView::chat(&body).map_err(|e| format!("messages: {e}"))?;
    Ok((raw, view))
}

/// Reads a data set: `path` is a folder (see [`outcome_files`]) or one outcome file whose folder
/// holds `models.json`. `progress` is called with the bytes of each line read.
pub fn load(
    path: &Path,
    split: Option<&str>,
    progress: &mut dyn FnMut(usize),
) -> Result<Dataset, DataError> {
    let (dir, files) = outcome_files(path, split)?;
    let models = read_models(&dir)?;
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| dir.display().to_string());
    let mut rows = Vec::new();
    let mut malformed = Vec::new();
    for (fi, file) in files.iter().enumerate() {
        let reader = open(file)?;
        for (ln, line) in reader.lines().enumerate() {
            let line = line.map_err(io_err(file))?;
            progress(line.len() + 1);
            if line.trim().is_empty() {
                continue;
            }
            match parse_row(&line) {
                Ok((raw, view)) => {
                    let signals = Signals::compute(&view, &Hints::default());
                    let input_tokens = tokens::count_messages(&view.messages) as u64;
                    let outcomes = raw
                        .outcomes
                        .into_iter()
                        .map(|(m, o)| {
                            (
                                m,
                                Outcome {
                                    score: o.score,
                                    output_tokens: o.output_tokens,
                                    response: o.response,
                                },
                            )
                        })
                        .collect();
                    rows.push(Row {
                        id: raw.id,
                        source: raw.source,
                        category: raw.category,
                        view,
                        signals,
                        input_tokens,
                        outcomes,
                        file: fi,
                    });
                }
                Err(error) => malformed.push(Malformed {
                    file: file.display().to_string(),
                    line: ln + 1,
                    error,
                }),
            }
        }
    }
    Ok(Dataset {
        name,
        dir,
        files,
        models,
        rows,
        malformed,
    })
}

impl Dataset {
    /// Mean score of `model` over the rows that have it, and that count.
    pub fn mean_score(&self, model: &str) -> (f64, usize) {
        let (mut s, mut n) = (0.0, 0usize);
        for r in &self.rows {
            if let Some(o) = r.outcomes.get(model) {
                s += o.score;
                n += 1;
            }
        }
        (if n > 0 { s / n as f64 } else { 0.0 }, n)
    }

    /// The default ladder: every priced model with at least one outcome, ordered by blended list
    /// price ((input + output) / 2), ties by lower mean score first, then by name.
    pub fn default_ladder(&self) -> Vec<String> {
        let mut ms: Vec<(Decimal, f64, String)> = self
            .models
            .iter()
            .filter_map(|(m, p)| {
                let (q, n) = self.mean_score(m);
                (n > 0).then(|| (p.input + p.output, q, m.clone()))
            })
            .collect();
        ms.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
        ms.into_iter().map(|(_, _, m)| m).collect()
    }

    /// Checks that every ladder model is priced.
    pub fn check_ladder(&self, ladder: &[String]) -> Result<(), DataError> {
        for m in ladder {
            if !self.models.contains_key(m) {
                return Err(DataError::UnknownModel {
                    model: m.clone(),
                    path: self.dir.join("models.json").display().to_string(),
                });
            }
        }
        Ok(())
    }

    /// A fingerprint of the rows read (FNV-1a over ids), to tell whether a router was trained on them.
    pub fn fingerprint(&self) -> String {
        fingerprint(self.rows.iter().map(|r| r.id.as_str()))
    }
}

/// FNV-1a 64 over the ids, in order, as hex.
pub fn fingerprint<'a>(ids: impl Iterator<Item = &'a str>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for id in ids {
        for b in id.bytes().chain(std::iter::once(0u8)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}
