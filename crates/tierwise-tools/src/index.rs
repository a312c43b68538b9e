//! The tool index: BM25 over each tool's name (identifier-split), description and parameter
//! names/descriptions, plus (optionally) one sentence embedding per tool.
//!
//! Building never fails and never panics, whatever the tools look like:
//! - chat-completions tools (`{"type": "function", "function": {…}}`) and Responses tools
//!   (`{"type": "function", "name": …}`) are both read;
//! - a tool that is not a function tool (e.g. Responses' built-in `web_search`) or has no
//!   name is **not indexed**: selection always keeps it, untouched;
//! - a missing description or a `parameters` that is not a JSON-schema object just means
//!   less text to index (the tool is flagged, never dropped for it);
//! - duplicate names are indexed as separate tools (each keeps its own position); naming a
//!   duplicated name (`tool_choice`, a past call, `pinned`) keeps every tool of that name.

use std::collections::HashMap;

use serde_json::Value;

use crate::text;

/// BM25 term-frequency saturation.
const K1: f32 = 1.2;
/// BM25 length normalisation.
const B: f32 = 0.75;
/// Field weights (term frequency multipliers).
const W_NAME: f32 = 3.0;
const W_DESCRIPTION: f32 = 1.0;
const W_PARAM_NAME: f32 = 0.5;
const W_PARAM_DESCRIPTION: f32 = 0.5;
/// How deep nested `properties` are read.
const MAX_SCHEMA_DEPTH: usize = 3;

/// What the index made of one tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolStatus {
    /// A function tool with a name: searchable.
    Indexed,
    /// Not a function tool (built-in tool types, non-objects): always kept as is.
    NotAFunction,
    /// A function tool without a (string) name: always kept as is.
    NoName,
}

/// One tool as the index sees it (same position as in the input).
#[derive(Debug, Clone)]
pub struct ToolEntry {
    pub name: Option<String>,
    pub description: String,
    /// o200k tokens of the tool's compact JSON, as sent upstream.
    pub tokens: usize,
    pub status: ToolStatus,
    /// Another tool of the list has the same name.
    pub duplicate_name: bool,
    /// The description is missing or empty.
    pub missing_description: bool,
    /// `parameters` is present but not a JSON-schema object.
    pub invalid_parameters: bool,
}

impl ToolEntry {
    pub fn is_indexed(&self) -> bool {
        self.status == ToolStatus::Indexed
    }
}

#[derive(Debug, Clone, Copy)]
struct Posting {
    doc: u32,
    tf: f32,
}

/// A searchable set of tools. Build once per tool list; cheap to query.
#[derive(Debug, Clone)]
pub struct ToolIndex {
    entries: Vec<ToolEntry>,
    by_name: HashMap<String, Vec<usize>>,
    vocab: HashMap<String, u32>,
    idf: Vec<f32>,
    postings: Vec<Vec<Posting>>,
    doc_len: Vec<f32>,
    avg_len: f32,
    /// One unit vector per tool (empty for tools that are not indexed), when built with an
    /// embedder.
    vectors: Option<Vec<Vec<f32>>>,
}

/// A text embedder for the hybrid channel. The binary adapts the shared `tierwise_embed`
/// model to it; tests use a fake. The index works without one (lexical only).
pub trait TextEmbedder {
    /// A vector for `text` (any length; compared by cosine).
    fn embed_text(&self, text: &str) -> Vec<f32>;

    /// Vectors of many texts, in order (default: one at a time; a model may batch them).
    fn embed_texts(&self, texts: &[&str]) -> Vec<Vec<f32>> {
        texts.iter().map(|t| self.embed_text(t)).collect()
    }

    /// Names the model for caches of tool vectors; empty (the default): never cached.
    fn model_id(&self) -> String {
        String::new()
    }
}

/// Name, description and parameters of a function tool in either API's shape.
fn function_parts(tool: &Value) -> Option<(&serde_json::Map<String, Value>, ToolStatus)> {
    let obj = tool.as_object()?;
    let kind = obj.get("type").and_then(Value::as_str);
    let f = match (kind, obj.get("function")) {
        (Some("function") | None, Some(Value::Object(f))) => f,
        (Some("function"), _) => obj,
        _ => return None,
    };
    let status = if f
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty())
    {
        ToolStatus::Indexed
    } else {
        ToolStatus::NoName
    };
    Some((f, status))
}

type StemCache = HashMap<String, String>;

fn add_terms(bag: &mut HashMap<String, f32>, cache: &mut StemCache, text: &str, weight: f32) {
    for t in text::terms_cached(text, cache) {
        *bag.entry(t).or_insert(0.0) += weight;
    }
}

/// Parameter names and descriptions, nested `properties` included (bounded depth).
fn add_schema(bag: &mut HashMap<String, f32>, cache: &mut StemCache, schema: &Value, depth: usize) {
    if depth >= MAX_SCHEMA_DEPTH {
        return;
    }
    let Some(obj) = schema.as_object() else {
        return;
    };
    if let Some(Value::Object(props)) = obj.get("properties") {
        for (name, prop) in props {
            add_terms(bag, cache, name, W_PARAM_NAME);
            if let Some(d) = prop.get("description").and_then(Value::as_str) {
                add_terms(bag, cache, d, W_PARAM_DESCRIPTION);
            }
            add_schema(bag, cache, prop, depth + 1);
        }
    }
    if let Some(items) = obj.get("items") {
        add_schema(bag, cache, items, depth + 1);
    }
}

impl ToolIndex {
    /// Indexes `tools` (lexical only).
    pub fn build(tools: &[Value]) -> ToolIndex {
        ToolIndex::build_with(tools, None)
    }

    /// Indexes `tools`, with one embedding per tool when `embedder` is given.
    pub fn build_with(tools: &[Value], embedder: Option<&dyn TextEmbedder>) -> ToolIndex {
        let mut entries = Vec::with_capacity(tools.len());
        let mut bags: Vec<HashMap<String, f32>> = Vec::with_capacity(tools.len());
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
        let mut cache = StemCache::new();
        for (i, tool) in tools.iter().enumerate() {
            let tokens = tierwise_core::tokens::count_tools(std::slice::from_ref(tool));
            let mut bag = HashMap::new();
            let entry = match function_parts(tool) {
                None => ToolEntry {
                    name: None,
                    description: String::new(),
                    tokens,
                    status: ToolStatus::NotAFunction,
                    duplicate_name: false,
                    missing_description: true,
                    invalid_parameters: false,
                },
                Some((f, status)) => {
                    let name = f.get("name").and_then(Value::as_str).map(str::to_string);
                    let description = f
                        .get("description")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    let params = f.get("parameters");
                    let invalid_parameters = params.is_some_and(|p| !p.is_null() && !p.is_object());
                    if status == ToolStatus::Indexed {
                        if let Some(n) = &name {
                            add_terms(&mut bag, &mut cache, n, W_NAME);
                            by_name.entry(n.clone()).or_default().push(i);
                        }
                        add_terms(&mut bag, &mut cache, &description, W_DESCRIPTION);
                        if let Some(p) = params {
                            add_schema(&mut bag, &mut cache, p, 0);
                        }
                    }
                    ToolEntry {
                        name,
                        missing_description: description.trim().is_empty(),
                        description,
                        tokens,
                        status,
                        duplicate_name: false,
                        invalid_parameters,
                    }
                }
            };
            entries.push(entry);
            bags.push(bag);
        }
        for positions in by_name.values() {
            if positions.len() > 1 {
                for &p in positions {
                    if let Some(e) = entries.get_mut(p) {
                        e.duplicate_name = true;
                    }
                }
            }
        }

        let mut vocab: HashMap<String, u32> = HashMap::new();
        let mut postings: Vec<Vec<Posting>> = Vec::new();
        let mut doc_len = Vec::with_capacity(bags.len());
        for (doc, bag) in bags.iter().enumerate() {
            let mut terms: Vec<(&String, &f32)> = bag.iter().collect();
            // Deterministic term ids (HashMap iteration order is not).
            terms.sort_unstable_by(|a, b| a.0.cmp(b.0));
            let mut len = 0.0;
            for (term, &tf) in terms {
                len += tf;
                let next = u32::try_from(postings.len()).unwrap_or(u32::MAX);
                let id = *vocab.entry(term.clone()).or_insert(next);
                if id == next {
                    postings.push(Vec::new());
                }
                if let Some(list) = postings.get_mut(id as usize) {
                    list.push(Posting {
                        doc: u32::try_from(doc).unwrap_or(u32::MAX),
                        tf,
                    });
                }
            }
            doc_len.push(len);
        }
        let indexed = entries.iter().filter(|e| e.is_indexed()).count().max(1) as f32;
        let total: f32 = doc_len.iter().sum();
        let avg_len = if total > 0.0 { total / indexed } else { 1.0 };
        let idf = postings
            .iter()
            .map(|p| {
                let n = p.len() as f32;
                (1.0 + (indexed - n + 0.5) / (n + 0.5)).ln()
            })
            .collect();

        let mut index = ToolIndex {
            entries,
            by_name,
            vocab,
            idf,
            postings,
            doc_len,
            avg_len,
            vectors: None,
        };
        if let Some(e) = embedder {
            let texts = index.embedding_texts();
            let wanted: Vec<&str> = texts.iter().flatten().map(String::as_str).collect();
            let mut got = e.embed_texts(&wanted).into_iter();
            let vectors = texts
                .iter()
                .map(|t| match t {
                    Some(_) => got.next().map(unit).unwrap_or_default(),
                    None => Vec::new(),
                })
                .collect();
            index.vectors = Some(vectors);
        }
        index
    }

    /// The text each tool is embedded from (`None` for tools that are not indexed).
    pub fn embedding_texts(&self) -> Vec<Option<String>> {
        self.entries
            .iter()
            .map(|entry| match (&entry.status, &entry.name) {
                (ToolStatus::Indexed, Some(name)) => Some(embedding_text(name, &entry.description)),
                _ => None,
            })
            .collect()
    }

    /// Attaches tool vectors computed elsewhere (a cache, a background task): one per tool,
    /// empty for tools without one. Refused (false) when the count does not match.
    pub fn set_vectors(&mut self, vectors: Vec<Vec<f32>>) -> bool {
        if vectors.len() != self.entries.len() {
            return false;
        }
        // Already unit-length vectors (a cache of this index's own) are kept bit for bit.
        let normalized = |v: Vec<f32>| {
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            if (norm - 1.0).abs() < 1e-5 {
                v
            } else {
                unit(v)
            }
        };
        self.vectors = Some(vectors.into_iter().map(normalized).collect());
        true
    }

    /// Number of searchable (indexed) tools.
    pub fn indexed_len(&self) -> usize {
        self.entries.iter().filter(|e| e.is_indexed()).count()
    }

    /// The tool vectors, if the index has them.
    pub fn vectors(&self) -> Option<&[Vec<f32>]> {
        self.vectors.as_deref()
    }

    /// A key for caching indexes across requests: equal for equal tool lists (same JSON, same
    /// order), within one process. Building costs ~0.1 ms per tool (o200k counts included), so
    /// the gateway should keep recent indexes by this key rather than rebuild per request.
    pub fn fingerprint(tools: &[Value]) -> u64 {
        use std::hash::{BuildHasher, Hash, Hasher};
        // Keyed per process (std's RandomState): a client cannot craft a second tool list
        // with the same fingerprint and be served the first list's cached index.
        static KEYS: std::sync::OnceLock<std::collections::hash_map::RandomState> =
            std::sync::OnceLock::new();
        let mut h = KEYS
            .get_or_init(std::collections::hash_map::RandomState::new)
            .build_hasher();
        for t in tools {
            serde_json::to_string(t).unwrap_or_default().hash(&mut h);
        }
        tools.len().hash(&mut h);
        h.finish()
    }

    /// Number of tools (indexed or not).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// What the index made of each tool, in input order.
    pub fn entries(&self) -> &[ToolEntry] {
        &self.entries
    }

    /// Positions of the tools named `name` (several when the name is duplicated).
    pub fn positions(&self, name: &str) -> &[usize] {
        self.by_name.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Whether tools carry embeddings (hybrid retrieval possible).
    pub fn has_vectors(&self) -> bool {
        self.vectors.is_some()
    }

    /// Sum of the o200k tokens of the tools at `positions`.
    pub fn tokens_of(&self, positions: impl IntoIterator<Item = usize>) -> usize {
        positions
            .into_iter()
            .filter_map(|i| self.entries.get(i))
            .map(|e| e.tokens)
            .sum()
    }

    /// Known term ids of already-analysed terms with their weights (unknown terms dropped,
    /// repeated terms summed).
    pub(crate) fn lookup(&self, terms: &[(String, f32)]) -> Vec<(u32, f32)> {
        let mut out: Vec<(u32, f32)> = Vec::with_capacity(terms.len());
        for (t, w) in terms {
            if let Some(&id) = self.vocab.get(t) {
                match out.iter_mut().find(|(i, _)| *i == id) {
                    Some(slot) => slot.1 += w,
                    None => out.push((id, *w)),
                }
            }
        }
        out
    }

    /// Whether `term` (analysed) occurs in some tool.
    pub(crate) fn knows(&self, term: &str) -> bool {
        self.vocab.contains_key(term)
    }

    /// Adds the BM25 score of each tool for the weighted `terms` into `scores` (one slot per
    /// tool).
    pub(crate) fn bm25_into(&self, terms: &[(u32, f32)], scores: &mut [f32]) {
        for &(id, qw) in terms {
            let (Some(list), Some(&idf)) =
                (self.postings.get(id as usize), self.idf.get(id as usize))
            else {
                continue;
            };
            for p in list {
                let d = p.doc as usize;
                let len = self.doc_len.get(d).copied().unwrap_or(self.avg_len);
                let norm = p.tf * (K1 + 1.0) / (p.tf + K1 * (1.0 - B + B * len / self.avg_len));
                if let Some(s) = scores.get_mut(d) {
                    *s += qw * idf * norm;
                }
            }
        }
    }

    /// Cosine of `query` (a unit vector) with each tool's vector, into `scores`; false when
    /// the index has no vectors.
    pub(crate) fn cosine_into(&self, query: &[f32], scores: &mut [f32]) -> bool {
        let Some(vectors) = &self.vectors else {
            return false;
        };
        for (s, v) in scores.iter_mut().zip(vectors) {
            *s = if v.len() == query.len() {
                v.iter().zip(query).map(|(a, b)| a * b).sum()
            } else {
                0.0
            };
        }
        true
    }
}

/// The text a tool is embedded from: its name split into words, then its description.
fn embedding_text(name: &str, description: &str) -> String {
    format!("{}. {}", text::words(name).join(" "), description)
}

/// `v` scaled to unit length (empty for a zero vector).
pub(crate) fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm <= f32::EPSILON || !norm.is_finite() {
        return Vec::new();
    }
    for x in &mut v {
        *x /= norm;
    }
    v
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_both_shapes_and_flags_bad_tools() {
        let tools = vec![
            json!({"type": "function", "function": {"name": "get_weather", "description": "Weather now", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}),
            json!({"type": "function", "name": "send_email", "parameters": "oops"}),
            json!({"type": "web_search"}),
            json!({"type": "function", "function": {"description": "nameless"}}),
            json!("not an object"),
            json!({"type": "function", "function": {"name": "get_weather", "description": "dup"}}),
        ];
        let idx = ToolIndex::build(&tools);
        let e = idx.entries();
        assert_eq!(e.len(), 6);
        assert!(e[0].is_indexed() && e[0].duplicate_name && !e[0].missing_description);
        assert!(e[1].is_indexed() && e[1].invalid_parameters && e[1].missing_description);
        assert_eq!(e[2].status, ToolStatus::NotAFunction);
        assert_eq!(e[3].status, ToolStatus::NoName);
        assert_eq!(e[4].status, ToolStatus::NotAFunction);
        assert_eq!(idx.positions("get_weather"), [0, 5]);
        assert!(e.iter().all(|x| x.tokens > 0));
    }

    #[test]
    fn fingerprint_follows_content_and_order() {
        let a = json!({"type": "function", "function": {"name": "a"}});
        let b = json!({"type": "function", "function": {"name": "b"}});
        let ab = ToolIndex::fingerprint(&[a.clone(), b.clone()]);
        assert_eq!(ab, ToolIndex::fingerprint(&[a.clone(), b.clone()]));
        assert_ne!(ab, ToolIndex::fingerprint(&[b, a]));
    }

    #[test]
    fn empty_index_is_fine() {
        let idx = ToolIndex::build(&[]);
        assert!(idx.is_empty());
        let mut s: Vec<f32> = Vec::new();
        idx.bm25_into(&[(0, 1.0)], &mut s);
    }
}
