//! Sentence embeddings from a static (model2vec-style) model on CPU: tokenize, look up one
//! vector per token, weighted mean, L2-normalize. Tens of microseconds per query; nothing is
//! downloaded — the model folder comes from a registry package (`scripts/fetch-embeddings.sh`).
//!
//! # Layout
//! - [`Embedder`]: `Embedder::load(dir)` reads `tokenizer.json`, `model.safetensors` and
//!   (optionally) `config.json`; [`Embedder::embed`] turns a text into a vector.
//! - [`safetensors`](crate::Embedder::load): a minimal reader for the tensors such a model
//!   holds (`embeddings` as F32/F16/I8, optional `mapping` I64/I32 and `weights` F32 for
//!   vocabulary-quantized models).
//! - [`locate`] / [`load_optional`]: the model folder an option, `$TIERWISE_EMBED_DIR` or the
//!   fetch script's [`DEFAULT_DIR`] names.
//! - [`cosine`]: similarity of two embeddings.
//! - [`minilm`]: [`minilm::MiniLm`], a small BERT encoder (all-MiniLM-L6-v2) for when static
//!   embeddings are too coarse (tool search); same safetensors reader.
//!
//! Used by the learned router (features) and by tool search (similarity of query and tools).

pub mod minilm;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Format { path: String, message: String },
    #[error("tokenizer {path}: {message}")]
    Tokenizer { path: String, message: String },
}

/// Where `scripts/fetch-embeddings.sh` puts the static model, relative to the working folder.
pub const DEFAULT_DIR: &str = "router/embed/tokenlearn-static-model-0.1.1";

/// The static model's folder: `arg`, else `$TIERWISE_EMBED_DIR`, else [`DEFAULT_DIR`] when it
/// exists.
pub fn locate(arg: Option<&Path>) -> Option<PathBuf> {
    arg.map(Path::to_path_buf)
        .or_else(|| std::env::var_os("TIERWISE_EMBED_DIR").map(PathBuf::from))
        .or_else(|| Some(PathBuf::from(DEFAULT_DIR)).filter(|p| p.is_dir()))
}

/// Loads the static model when [`locate`] finds a folder. A folder named by `arg` that does
/// not load is an error; one found otherwise that does not load means no embedder (the
/// callers then use their embedding-free models and say so).
pub fn load_optional(arg: Option<&Path>) -> Result<Option<Embedder>, EmbedError> {
    match locate(arg) {
        Some(dir) => match Embedder::load(&dir) {
            Ok(e) => Ok(Some(e)),
            Err(e) if arg.is_some() => Err(e),
            Err(_) => Ok(None),
        },
        None => Ok(None),
    }
}

/// A loaded static embedding model.
pub struct Embedder {
    name: String,
    tokenizer: tokenizers::Tokenizer,
    /// Row-major `rows × dim`.
    table: Vec<f32>,
    dim: usize,
    /// Token id → table row (vocabulary-quantized models), else identity.
    mapping: Option<Vec<u32>>,
    /// Token id → weight (vocabulary-quantized models), else 1.
    weights: Option<Vec<f32>>,
    normalize: bool,
    max_tokens: usize,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("name", &self.name)
            .field("dim", &self.dim)
            .finish()
    }
}

#[derive(Deserialize, Default)]
struct ModelConfig {
    normalize: Option<bool>,
}

#[derive(Deserialize)]
struct TensorInfo {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [usize; 2],
}

struct Tensor {
    dtype: String,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

fn read_safetensors(path: &Path) -> Result<BTreeMap<String, Tensor>, EmbedError> {
    let fmt = |message: String| EmbedError::Format {
        path: path.display().to_string(),
        message,
    };
    let data = std::fs::read(path).map_err(|source| EmbedError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let n = data
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| fmt("too short".into()))? as usize;
    let header = data
        .get(8..8 + n)
        .ok_or_else(|| fmt("header runs past the end".into()))?;
    let map: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|e| fmt(format!("header: {e}")))?;
    let body = &data[8 + n..];
    let mut out = BTreeMap::new();
    for (name, v) in map {
        if name == "__metadata__" {
            continue;
        }
        let info: TensorInfo =
            serde_json::from_value(v).map_err(|e| fmt(format!("{name}: {e}")))?;
        let [a, b] = info.data_offsets;
        let bytes = body
            .get(a..b)
            .ok_or_else(|| fmt(format!("{name}: data out of range")))?
            .to_vec();
        out.insert(
            name,
            Tensor {
                dtype: info.dtype,
                shape: info.shape,
                bytes,
            },
        );
    }
    Ok(out)
}

fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let frac = u32::from(h & 0x3ff);
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // subnormal
            let mut e = 127 - 15 + 1;
            let mut f = f;
            while f & 0x400 == 0 {
                f <<= 1;
                e -= 1;
            }
            sign | (e << 23) | ((f & 0x3ff) << 13)
        }
        (0x1f, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 127 - 15) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

fn as_f32(t: &Tensor, path: &Path, name: &str) -> Result<Vec<f32>, EmbedError> {
    let fmt = |message: String| EmbedError::Format {
        path: path.display().to_string(),
        message,
    };
    Ok(match t.dtype.as_str() {
        "F32" => t
            .bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        "F16" => t
            .bytes
            .chunks_exact(2)
            .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        "I8" => t.bytes.iter().map(|&b| f32::from(b as i8)).collect(),
        d => return Err(fmt(format!("{name}: unsupported dtype {d}"))),
    })
}

fn as_u32(t: &Tensor, path: &Path, name: &str) -> Result<Vec<u32>, EmbedError> {
    let fmt = |message: String| EmbedError::Format {
        path: path.display().to_string(),
        message,
    };
    Ok(match t.dtype.as_str() {
        "I64" => t
            .bytes
            .chunks_exact(8)
            .map(|c| {
                i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]).max(0) as u32
            })
            .collect(),
        "I32" => t
            .bytes
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]).max(0) as u32)
            .collect(),
        d => return Err(fmt(format!("{name}: unsupported dtype {d}"))),
    })
}

impl Embedder {
    /// Loads a model folder: `tokenizer.json`, `model.safetensors` (tensor `embeddings`, or the
    /// only 2-D tensor; optional `mapping` and `weights`), optional `config.json`
    /// (`normalize`, default true). The name is the folder's name.
    pub fn load(dir: &Path) -> Result<Embedder, EmbedError> {
        let tok_path = dir.join("tokenizer.json");
        if !tok_path.is_file() {
            return Err(EmbedError::Io {
                path: tok_path.display().to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "not found (run scripts/fetch-embeddings.sh)",
                ),
            });
        }
        let mut tokenizer =
            tokenizers::Tokenizer::from_file(&tok_path).map_err(|e| EmbedError::Tokenizer {
                path: tok_path.display().to_string(),
                message: e.to_string(),
            })?;
        tokenizer.with_padding(None);
        let _ = tokenizer.with_truncation(None);
        let st_path = dir.join("model.safetensors");
        let tensors = read_safetensors(&st_path)?;
        let fmt = |message: String| EmbedError::Format {
            path: st_path.display().to_string(),
            message,
        };
        let emb_name = if tensors.contains_key("embeddings") {
            "embeddings".to_string()
        } else {
            tensors
                .iter()
                .find(|(_, t)| t.shape.len() == 2)
                .map(|(n, _)| n.clone())
                .ok_or_else(|| fmt("no 2-D embedding tensor".into()))?
        };
        let emb = tensors
            .get(&emb_name)
            .ok_or_else(|| fmt("no embeddings".into()))?;
        let (rows, dim) = match emb.shape.as_slice() {
            [r, d] if *r > 0 && *d > 0 => (*r, *d),
            s => return Err(fmt(format!("{emb_name}: shape {s:?} is not 2-D"))),
        };
        let table = as_f32(emb, &st_path, &emb_name)?;
        if table.len() != rows * dim {
            return Err(fmt(format!(
                "{emb_name}: {} values for shape [{rows}, {dim}]",
                table.len()
            )));
        }
        let mapping = tensors
            .get("mapping")
            .map(|t| as_u32(t, &st_path, "mapping"))
            .transpose()?;
        if let Some(m) = &mapping
            && m.iter().any(|&r| r as usize >= rows)
        {
            return Err(fmt("mapping points past the embedding table".into()));
        }
        let weights = tensors
            .get("weights")
            .map(|t| as_f32(t, &st_path, "weights"))
            .transpose()?;
        let cfg: ModelConfig = match std::fs::read_to_string(dir.join("config.json")) {
            Ok(s) => serde_json::from_str(&s).unwrap_or_default(),
            Err(_) => ModelConfig::default(),
        };
        let name = dir
            .canonicalize()
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "embedder".into());
        Ok(Embedder {
            name,
            tokenizer,
            table,
            dim,
            mapping,
            weights,
            normalize: cfg.normalize.unwrap_or(true),
            max_tokens: 512,
        })
    }

    /// The model's name (its folder name).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The embedding of `text` (zeros for a text with no known token).
    pub fn embed(&self, text: &str) -> Vec<f32> {
        let mut out = vec![0.0f32; self.dim];
        let Ok(enc) = self.tokenizer.encode(text, false) else {
            return out;
        };
        let unk = self
            .tokenizer
            .token_to_id("<unk>")
            .or_else(|| self.tokenizer.token_to_id("[UNK]"));
        let pad = self
            .tokenizer
            .token_to_id("<pad>")
            .or_else(|| self.tokenizer.token_to_id("[PAD]"));
        let mut n = 0usize;
        for &id in enc.get_ids().iter().take(self.max_tokens) {
            if Some(id) == unk || Some(id) == pad {
                continue;
            }
            let idx = id as usize;
            let row = match &self.mapping {
                Some(m) => match m.get(idx) {
                    Some(&r) => r as usize,
                    None => continue,
                },
                None => idx,
            };
            let w = self
                .weights
                .as_ref()
                .and_then(|w| w.get(idx).copied())
                .unwrap_or(1.0);
            let Some(v) = self.table.get(row * self.dim..(row + 1) * self.dim) else {
                continue;
            };
            for (o, x) in out.iter_mut().zip(v) {
                *o += w * x;
            }
            n += 1;
        }
        if n == 0 {
            return out;
        }
        let inv = 1.0 / n as f32;
        out.iter_mut().for_each(|o| *o *= inv);
        if self.normalize {
            let norm = out.iter().map(|x| x * x).sum::<f32>().sqrt();
            if norm > 0.0 {
                out.iter_mut().for_each(|o| *o /= norm);
            }
        }
        out
    }
}

/// Cosine similarity (0 when either vector is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut ab, mut aa, mut bb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        ab / (aa.sqrt() * bb.sqrt())
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests may unwrap"
)]
mod tests {
    use super::*;

    /// A tiny word-level model written on the fly: 4 tokens, 2 dims.
    fn tiny(dir: &Path, quantized: bool) {
        let tok = serde_json::json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
            "normalizer": {"type": "Lowercase"}, "pre_tokenizer": {"type": "Whitespace"},
            "post_processor": null, "decoder": null,
            "model": {"type": "WordLevel", "vocab": {"[UNK]": 0, "cat": 1, "dog": 2, "car": 3}, "unk_token": "[UNK]"}
        });
        std::fs::write(dir.join("tokenizer.json"), tok.to_string()).unwrap();
        let mut tensors: Vec<(&str, &str, Vec<usize>, Vec<u8>)> = Vec::new();
        if quantized {
            // rows: 0 = [1,0], 1 = [0,1]; cat, dog → row 0, car → row 1
            let emb: Vec<u8> = [1i8, 0, 0, 1].iter().map(|&x| x as u8).collect();
            tensors.push(("embeddings", "I8", vec![2, 2], emb));
            let map: Vec<u8> = [0i64, 0, 0, 1]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect();
            tensors.push(("mapping", "I64", vec![4], map));
            let w: Vec<u8> = [1f32, 1.0, 0.5, 1.0]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect();
            tensors.push(("weights", "F32", vec![4], w));
        } else {
            let emb: Vec<u8> = [0f32, 0.0, 1.0, 0.0, 0.9, 0.1, 0.0, 1.0]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect();
            tensors.push(("embeddings", "F32", vec![4, 2], emb));
        }
        let mut header = serde_json::Map::new();
        let mut body = Vec::new();
        for (name, dtype, shape, bytes) in &tensors {
            header.insert(name.to_string(), serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [body.len(), body.len() + bytes.len()]}));
            body.extend_from_slice(bytes);
        }
        let h = serde_json::Value::Object(header).to_string();
        let mut file = (h.len() as u64).to_le_bytes().to_vec();
        file.extend_from_slice(h.as_bytes());
        file.extend_from_slice(&body);
        std::fs::write(dir.join("model.safetensors"), file).unwrap();
    }

    #[test]
    fn embeds_and_compares() {
        let d = tempfile::tempdir().unwrap();
        tiny(d.path(), false);
        let e = Embedder::load(d.path()).unwrap();
        assert_eq!(e.dim(), 2);
        let cat = e.embed("Cat");
        let dog = e.embed("dog");
        let car = e.embed("car");
        assert!((cat.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(cosine(&cat, &dog) > cosine(&cat, &car));
        assert_eq!(e.embed("zebra"), vec![0.0, 0.0]);
    }

    #[test]
    fn quantized_vocabulary() {
        let d = tempfile::tempdir().unwrap();
        tiny(d.path(), true);
        let e = Embedder::load(d.path()).unwrap();
        assert_eq!(e.embed("cat"), vec![1.0, 0.0]);
        let v = e.embed("dog car");
        // (0.5*[1,0] + [0,1]) / 2, normalized
        assert!(v[1] > v[0] && v[0] > 0.0);
    }

    #[test]
    fn missing_files_name_the_path() {
        let d = tempfile::tempdir().unwrap();
        let err = Embedder::load(d.path()).unwrap_err().to_string();
        assert!(err.contains("tokenizer.json"));
    }

    #[test]
    fn f16_conversion() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0), 0.0);
    }
}
