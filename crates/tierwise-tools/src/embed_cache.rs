//! Tool vectors cached on disk, keyed by the embedding model and the catalog's embedding texts
//! (a catalog fingerprint): embedding thousands of tool descriptions with a BERT model takes
//! tens of seconds, reading them back milliseconds.
//!
//! File: `DIR/<model-id>-<key as 16 hex digits>.vec` — magic `TWV1`, u32 tool count, then per
//! tool a u32 length and that many little-endian f32s. A file that does not match (count,
//! truncation) is ignored and rewritten; write errors are ignored (the cache is an
//! optimisation).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::index::{TextEmbedder, ToolIndex};

const MAGIC: &[u8; 4] = b"TWV1";

/// The cache key of a catalog for a model: a hash of the model id and every tool's
/// embedding text (tools that are not indexed count as absent).
pub fn key(model_id: &str, texts: &[Option<String>]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    model_id.hash(&mut h);
    texts.hash(&mut h);
    h.finish()
}

fn file_name(model_id: &str, key: u64) -> String {
    let safe: String = model_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{safe}-{key:016x}.vec")
}

/// Path of the cache file of `index` for `model_id` in `dir`.
pub fn path(dir: &Path, model_id: &str, index: &ToolIndex) -> PathBuf {
    dir.join(file_name(model_id, key(model_id, &index.embedding_texts())))
}

/// Encodes vectors in the file format.
pub fn encode(vectors: &[Vec<f32>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + vectors.iter().map(|v| 4 + 4 * v.len()).sum::<usize>());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(
        &u32::try_from(vectors.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    for v in vectors {
        out.extend_from_slice(&u32::try_from(v.len()).unwrap_or(u32::MAX).to_le_bytes());
        for x in v {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    out
}

/// Decodes the file format; `None` for anything malformed.
pub fn decode(bytes: &[u8]) -> Option<Vec<Vec<f32>>> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let u32_at = |b: &[u8], at: usize| -> Option<usize> {
        let chunk: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(chunk)).ok()
    };
    let n = u32_at(rest, 0)?;
    let mut at = 4;
    let mut out = Vec::with_capacity(n.min(1 << 20));
    for _ in 0..n {
        let len = u32_at(rest, at)?;
        at += 4;
        let raw = rest.get(at..at.checked_add(len.checked_mul(4)?)?)?;
        out.push(
            raw.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        );
        at += 4 * len;
    }
    (at == rest.len()).then_some(out)
}

/// Indexes `tools` with vectors from `embedder`, read from / written to the cache in `dir`
/// when the embedder names its model ([`TextEmbedder::model_id`]).
pub fn build(tools: &[Value], embedder: &dyn TextEmbedder, dir: Option<&Path>) -> ToolIndex {
    let id = embedder.model_id();
    let Some(dir) = dir.filter(|_| !id.is_empty()) else {
        return ToolIndex::build_with(tools, Some(embedder));
    };
    let mut index = ToolIndex::build(tools);
    let file = path(dir, &id, &index);
    if let Some(vectors) = std::fs::read(&file).ok().and_then(|b| decode(&b))
        && index.set_vectors(vectors)
    {
        return index;
    }
    let index = ToolIndex::build_with(tools, Some(embedder));
    if let Some(vectors) = index.vectors() {
        let _ = std::fs::create_dir_all(dir);
        let _ = std::fs::write(&file, encode(vectors));
    }
    index
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting(AtomicUsize);
    impl TextEmbedder for Counting {
        fn embed_text(&self, text: &str) -> Vec<f32> {
            self.0.fetch_add(1, Ordering::Relaxed);
            vec![text.len() as f32, 1.0]
        }
        fn model_id(&self) -> String {
            "fake/model v1".into()
        }
    }

    #[test]
    fn round_trip_and_rejects_garbage() {
        let v = vec![vec![1.0, -2.5], vec![], vec![0.25, 0.5]];
        assert_eq!(decode(&encode(&v)), Some(v.clone()));
        let mut bad = encode(&v);
        bad.pop();
        assert_eq!(decode(&bad), None);
        assert_eq!(decode(b"nope"), None);
    }

    #[test]
    fn second_build_reads_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let tools = vec![
            json!({"type": "function", "function": {"name": "a_b", "description": "one"}}),
            json!({"type": "web_search"}),
            json!({"type": "function", "function": {"name": "c", "description": "three"}}),
        ];
        let e = Counting(AtomicUsize::new(0));
        let first = build(&tools, &e, Some(dir.path()));
        assert_eq!(e.0.load(Ordering::Relaxed), 2);
        let second = build(&tools, &e, Some(dir.path()));
        assert_eq!(e.0.load(Ordering::Relaxed), 2, "read from the cache");
        assert_eq!(first.vectors(), second.vectors());
        assert!(second.vectors().unwrap()[1].is_empty());
        let file = path(dir.path(), "fake/model v1", &second);
        assert!(file.exists());
        assert!(
            file.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("fake_model_v1-")
        );
        // Another catalog: another key.
        let other = build(&tools[..1], &e, Some(dir.path()));
        assert_eq!(e.0.load(Ordering::Relaxed), 3);
        assert_eq!(other.len(), 1);
    }
}
