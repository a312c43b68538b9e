//! The shared embedding models (`tierwise-embed`) as tool-search embedders, and where to find
//! them. One embedding code path: the router and tool search load the same models.
//!
//! - [`MiniLmEmbedder`]: all-MiniLM-L6-v2 (BERT, 384 dims), the model hybrid tool search is
//!   measured with; tool vectors batched over the machine's cores and cached on disk
//!   ([`crate::embed_cache`]) under the model folder's `cache/`.
//! - [`StaticEmbedder`]: the router's static model2vec-style model (tens of µs per text; no
//!   measurable recall gain on tool catalogs, kept for comparison).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use tierwise_embed::Embedder;
use tierwise_embed::minilm::MiniLm;

pub use tierwise_embed::EmbedError;

use crate::index::TextEmbedder;

/// Default folder of the MiniLM model (fetched by `scripts/fetch-minilm.sh`), relative to
/// the working directory; `TIERWISE_MINILM_DIR` overrides it.
pub const MINILM_DIR: &str = "router/embed/all-minilm-l6-v2";

/// The MiniLM folder to use: `TIERWISE_MINILM_DIR`, else [`MINILM_DIR`] when it holds a model.
pub fn minilm_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("TIERWISE_MINILM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(MINILM_DIR));
    is_bert_dir(&dir).then_some(dir)
}

/// The MiniLM model a config asked for: the folder of [`minilm_dir`]'s rule, loaded, or an
/// error naming the first missing file (`config.json`, `tokenizer.json`, `model.safetensors`)
/// or the file that does not load. For callers that must not fall back to another method.
pub fn require_minilm() -> Result<MiniLmEmbedder, EmbedError> {
    let dir = std::env::var_os("TIERWISE_MINILM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(MINILM_DIR));
    require_minilm_in(&dir)
}

/// [`require_minilm`] for the folder `dir`.
pub fn require_minilm_in(dir: &Path) -> Result<MiniLmEmbedder, EmbedError> {
    for file in ["config.json", "tokenizer.json", "model.safetensors"] {
        let path = dir.join(file);
        if !path.is_file() {
            return Err(EmbedError::Io {
                path: path.display().to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "not found (run scripts/fetch-minilm.sh)",
                ),
            });
        }
    }
    MiniLmEmbedder::load(dir)
}

/// Whether `dir` holds a BERT model (config `model_type` = `bert`, plus weights and tokenizer).
pub fn is_bert_dir(dir: &Path) -> bool {
    let config = std::fs::read_to_string(dir.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
    config
        .as_ref()
        .and_then(|c| c.get("model_type"))
        .and_then(serde_json::Value::as_str)
        == Some("bert")
        && dir.join("model.safetensors").is_file()
        && dir.join("tokenizer.json").is_file()
}

/// Query vectors remembered (agents resend the same turns on every step of a tool loop).
const MEMO_CAPACITY: usize = 4096;

/// MiniLM as a tool-search embedder.
#[derive(Debug)]
pub struct MiniLmEmbedder {
    model: MiniLm,
    threads: usize,
    cache: PathBuf,
    /// Vectors of recent short batches (query channels) by text; cleared when full.
    memo: Mutex<HashMap<String, Vec<f32>>>,
}

impl MiniLmEmbedder {
    /// Loads the model in `dir`; tool vectors are cached in `dir/cache`.
    pub fn load(dir: &Path) -> Result<MiniLmEmbedder, tierwise_embed::EmbedError> {
        Ok(MiniLmEmbedder {
            model: MiniLm::load(dir)?,
            threads: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            cache: dir.join("cache"),
            memo: Mutex::new(HashMap::new()),
        })
    }

    /// Where tool vectors are cached.
    pub fn cache_dir(&self) -> &Path {
        &self.cache
    }

    pub fn name(&self) -> &str {
        self.model.name()
    }
}

impl TextEmbedder for MiniLmEmbedder {
    fn embed_text(&self, text: &str) -> Vec<f32> {
        self.model.embed(text)
    }

    fn embed_texts(&self, texts: &[&str]) -> Vec<Vec<f32>> {
        if texts.len() > tierwise_embed::minilm::BATCH {
            // A catalog: every core, not memoised.
            return self.model.embed_parallel(texts, self.threads);
        }
        // A conversation's channels: one batch of the texts not seen recently.
        let missing: Vec<&str> = {
            let memo = self.memo.lock().unwrap_or_else(PoisonError::into_inner);
            texts
                .iter()
                .copied()
                .filter(|t| !memo.contains_key(*t))
                .collect()
        };
        let fresh = self.model.embed_parallel(&missing, 1);
        let mut memo = self.memo.lock().unwrap_or_else(PoisonError::into_inner);
        if memo.len() + missing.len() > MEMO_CAPACITY {
            memo.clear();
        }
        for (t, v) in missing.iter().zip(&fresh) {
            memo.insert((*t).to_string(), v.clone());
        }
        texts
            .iter()
            .map(|t| {
                memo.get(*t).cloned().unwrap_or_else(|| {
                    missing
                        .iter()
                        .position(|m| m == t)
                        .and_then(|i| fresh.get(i).cloned())
                        .unwrap_or_default()
                })
            })
            .collect()
    }

    fn model_id(&self) -> String {
        format!("minilm-{}", self.model.name())
    }
}

/// The static model as a tool-search embedder.
#[derive(Debug)]
pub struct StaticEmbedder(pub Embedder);

impl TextEmbedder for StaticEmbedder {
    fn embed_text(&self, text: &str) -> Vec<f32> {
        self.0.embed(text)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;

    #[test]
    fn a_required_model_that_is_missing_or_corrupt_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = require_minilm_in(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("config.json") && err.contains("fetch-minilm"),
            "{err}"
        );
        for f in ["config.json", "tokenizer.json", "model.safetensors"] {
            std::fs::write(dir.path().join(f), "{corrupt").unwrap();
        }
        let err = require_minilm_in(dir.path()).unwrap_err().to_string();
        assert!(err.contains("config.json"), "{err}");
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"model_type": "bert", "hidden_size": 8, "num_attention_heads": 2, "num_hidden_layers": 1, "intermediate_size": 16}"#,
        )
        .unwrap();
        let err = require_minilm_in(dir.path()).unwrap_err().to_string();
        assert!(err.contains("tokenizer.json"), "{err}");
    }
}
