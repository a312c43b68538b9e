//! The shared embedding models (`tierwise-embed`) as tool-search embedders, and where to find
//! them. One embedding code path: the router and tool search load the same models.
//!
//! - [`MiniLmEmbedder`]: all-MiniLM-L6-v2 (BERT, 384 dims), the model hybrid tool search is
//!   measured with; tool vectors batched over the machine's cores and cached on disk
//!   ([`crate::embed_cache`]) under the model folder's `cache/`.
//! - [`StaticEmbedder`]: the router's static model2vec-style model (tens of µs per text; no
//!   measurable recall gain on tool catalogs, kept for comparison).

use std::path::{Path, PathBuf};

use tierwise_embed::Embedder;
use tierwise_embed::minilm::MiniLm;

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

/// MiniLM as a tool-search embedder.
#[derive(Debug)]
pub struct MiniLmEmbedder {
    model: MiniLm,
    threads: usize,
    cache: PathBuf,
}

impl MiniLmEmbedder {
    /// Loads the model in `dir`; tool vectors are cached in `dir/cache`.
    pub fn load(dir: &Path) -> Result<MiniLmEmbedder, tierwise_embed::EmbedError> {
        Ok(MiniLmEmbedder {
            model: MiniLm::load(dir)?,
            threads: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            cache: dir.join("cache"),
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
        // A handful of query texts: one batch here; a catalog: every core.
        let threads = if texts.len() <= tierwise_embed::minilm::BATCH {
            1
        } else {
            self.threads
        };
        self.model.embed_parallel(texts, threads)
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
