//! Tool search in the gateway: the [`ToolShaper`] that prunes a request's `tools`, and the
//! `tool_search` rounds of mode `tool_search`.
//!
//! A request with more tools than `[tools].threshold` keeps the `top_k` most relevant tools
//! plus every tool named by `tool_choice`, already called in the conversation, or pinned in
//! config ([`tierwise_tools::select()`]). Kept tools stay in their original order, so the same
//! tool set always yields the same prompt prefix (provider prompt cache).
//!
//! Bad input: a tool the index cannot read (not a function tool, no name) is **always kept**,
//! untouched; duplicate names and missing descriptions are indexed as they are and never
//! edited (a duplicated name keeps or drops each copy on its own score; `tool_search` may
//! return either copy). With mode `off` the body is not touched at all.
//!
//! Hosted tool search: a client that already defers its tools — a `{"type": "tool_search"}`
//! tool (OpenAI's hosted or client-run tool search in Responses) or any tool marked
//! `defer_loading: true` — gets its tools passed through untouched (no pruning, no
//! `tool_search` function of ours): the provider loads the deferred schemas itself, and a
//! second search on top would hide tools the client's own search must be able to find.
//!
//! Indexes are cached by [`ToolIndex::fingerprint`] of the tool list (agents resend the same
//! list on every call), at most [`CACHE_CAPACITY`] of them, oldest evicted first.
//!
//! # Mode `tool_search` (chat completions)
//! When the request was pruned, [`tierwise_tools::tool_search::schema`] is appended to the kept
//! tools (last, under a name no client tool uses) unless `tool_choice` is `none` or names one
//! function, and the shaper returns a [`ToolSearchSession`] (the tool list's fingerprint, the
//! positions sent), which rides to dispatch in the request's [`RequestCtx`].
//! `search_rounds` then:
//! 1. calls upstream **non-streaming** (the first round walks the decision's ladder; later
//!    rounds stay on the model that answered);
//! 2. if the answer calls only `tool_search`: runs each search over the request's **full**
//!    tool list (tools not sent yet), adds the found tools (the sent set is re-emitted in
//!    original order, `tool_search` last: deterministic), appends the assistant message and
//!    one `tool` message per call (names + short descriptions of the added tools), and calls
//!    again;
//! 3. after `tools.max_search_rounds` answered searches, the next call goes without the
//!    `tool_search` function, so the model must answer or call a real tool — never stuck;
//! 4. an answer that calls `tool_search` **and** client tools: the `tool_search` calls are
//!    removed and the rest goes to the client (only the client can run its tools; the model
//!    can search again next turn). A `tool_search` call the model makes after the function
//!    was withdrawn is removed the same way (`finish_reason` becomes `stop` when no call is
//!    left).
//!
//! The client sees an ordinary completion: its `usage` is the **sum over rounds** (what the
//! provider billed for the request), so the cost headers and the log row price every round;
//! the log row's `attempts` counts every upstream call. A streaming client gets the final
//! answer re-sent as SSE chunks. `x-tierwise-tools-sent` and the tool-schema token counts
//! describe the final round (`sent` counts client tools; the token count includes the
//! `tool_search` schema when it was sent). Responses API calls and cascade calls are pruned
//! only (no `tool_search` function).

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use axum::http::{HeaderValue, header};
use serde_json::{Map, Value, json};
use tierwise_core::config::{ToolMode, Tools};
use tierwise_core::request::{Api, RequestView};
use tierwise_tools::tool_search;
use tierwise_tools::{
    Method, SelectionPolicy, TextEmbedder, ToolIndex, embed_cache, embedders, select_with,
};

use crate::app::AppState;
use crate::ctx::RequestCtx;
use crate::dispatch::{Candidates, Dispatched, Target, walk};
use crate::shape::{ShapedTools, ToolShaper, ToolShaping};
use crate::upstream::{UpstreamError, passback_headers};

/// Tool lists whose index is kept.
pub const CACHE_CAPACITY: usize = 256;

/// A sentence embedder shared by the shaper, its background threads and its sessions.
type SharedEmbedder = Arc<dyn TextEmbedder + Send + Sync>;

/// Prunes `tools` with the `[tools]` policy (see the module docs).
pub struct ToolSearchShaper {
    policy: SelectionPolicy,
    max_search_rounds: u32,
    cache: Arc<Mutex<IndexCache>>,
    /// The sentence embedder of `method = "hybrid"` (MiniLM); `None`: lexical.
    embedder: Option<SharedEmbedder>,
    /// Where tool vectors are cached on disk.
    vector_cache: Option<PathBuf>,
}

/// An index and the tool list it was built from.
#[derive(Debug, Clone)]
pub struct Indexed {
    pub index: Arc<ToolIndex>,
    pub tools: Arc<Vec<Value>>,
}

#[derive(Debug, Default)]
struct IndexCache {
    map: HashMap<u64, Indexed>,
    order: VecDeque<u64>,
    /// Tool lists whose vectors are being computed in the background.
    embedding: HashSet<u64>,
}

impl IndexCache {
    fn get_or_build(&mut self, tools: &[Value]) -> (u64, Indexed) {
        let key = ToolIndex::fingerprint(tools);
        if let Some(found) = self.map.get(&key) {
            return (key, found.clone());
        }
        let built = Indexed {
            index: Arc::new(ToolIndex::build(tools)),
            tools: Arc::new(tools.to_vec()),
        };
        while self.map.len() >= CACHE_CAPACITY {
            match self.order.pop_front() {
                Some(old) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
        self.map.insert(key, built.clone());
        self.order.push_back(key);
        (key, built)
    }
}

impl std::fmt::Debug for ToolSearchShaper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolSearchShaper")
            .field("policy", &self.policy)
            .field("max_search_rounds", &self.max_search_rounds)
            .field("embedder", &self.embedder.as_ref().map(|e| e.model_id()))
            .finish_non_exhaustive()
    }
}

impl ToolSearchShaper {
    pub fn new(policy: SelectionPolicy) -> ToolSearchShaper {
        ToolSearchShaper {
            policy,
            max_search_rounds: 2,
            cache: Arc::new(Mutex::new(IndexCache::default())),
            embedder: None,
            vector_cache: None,
        }
    }

    /// [`ToolSearchShaper::from_config`] for a server starting up: `method = "hybrid"` whose
    /// MiniLM model is missing or does not load is an error naming the file, not a fallback to
    /// lexical ranking (`tierwise serve` uses this).
    pub fn try_from_config(tools: &Tools) -> Result<ToolSearchShaper, embedders::EmbedError> {
        let policy = SelectionPolicy::from_config(tools);
        if policy.method != Method::Hybrid || policy.mode == ToolMode::Off {
            return Ok(ToolSearchShaper::from_config(tools));
        }
        let e = embedders::require_minilm()?;
        let mut shaper = ToolSearchShaper {
            max_search_rounds: tools.max_search_rounds,
            ..ToolSearchShaper::new(policy)
        };
        shaper.vector_cache = Some(e.cache_dir().to_path_buf());
        Ok(shaper.with_embedder(Arc::new(e)))
    }

    /// The shaper of a `[tools]` config section. `method = "hybrid"` loads MiniLM
    /// (`TIERWISE_MINILM_DIR`, else `router/embed/all-minilm-l6-v2`); without it the shaper
    /// ranks lexically and says so once (a warning in the log).
    pub fn from_config(tools: &Tools) -> ToolSearchShaper {
        let mut policy = SelectionPolicy::from_config(tools);
        let mut shaper = ToolSearchShaper {
            max_search_rounds: tools.max_search_rounds,
            ..ToolSearchShaper::new(policy.clone())
        };
        if policy.method == Method::Hybrid && policy.mode != ToolMode::Off {
            match embedders::minilm_dir().map(|d| embedders::MiniLmEmbedder::load(&d)) {
                Some(Ok(e)) => {
                    shaper.vector_cache = Some(e.cache_dir().to_path_buf());
                    shaper = shaper.with_embedder(Arc::new(e));
                }
                found => {
                    let why = match found {
                        Some(Err(e)) => e.to_string(),
                        _ => format!("no model at {}", embedders::MINILM_DIR),
                    };
                    tracing::warn!(
                        "tool search: tools.method = \"hybrid\" but {why} (run scripts/fetch-minilm.sh); ranking lexically"
                    );
                    policy.method = Method::Lexical;
                    shaper.policy = policy;
                }
            }
        }
        shaper
    }

    /// Ranks with `embedder` too (hybrid): tool vectors are computed in the background the
    /// first time a tool list is seen (that request and those until it is done rank
    /// lexically), and cached on disk when [`TextEmbedder::model_id`] names the model.
    pub fn with_embedder(mut self, embedder: SharedEmbedder) -> Self {
        self.policy.method = Method::Hybrid;
        self.embedder = Some(embedder);
        self
    }

    /// Waits (up to `timeout`) until no tool list is being embedded; true if none is.
    pub fn wait_embedded(&self, timeout: std::time::Duration) -> bool {
        let until = std::time::Instant::now() + timeout;
        loop {
            let busy = !self
                .cache
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .embedding
                .is_empty();
            if !busy {
                return true;
            }
            if std::time::Instant::now() > until {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Starts the background embedding of a cached tool list that has no vectors yet.
    fn embed_later(&self, key: u64, indexed: &Indexed) {
        let Some(embedder) = self.embedder.clone() else {
            return;
        };
        if indexed.index.has_vectors() {
            return;
        }
        {
            let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            if !cache.embedding.insert(key) {
                return;
            }
        }
        let cache = Arc::clone(&self.cache);
        let tools = Arc::clone(&indexed.tools);
        let dir = self.vector_cache.clone();
        let spawned = std::thread::Builder::new()
            .name("tool-vectors".into())
            .spawn(move || {
                let started = std::time::Instant::now();
                let index = embed_cache::build(&tools, embedder.as_ref(), dir.as_deref());
                let mut c = cache.lock().unwrap_or_else(PoisonError::into_inner);
                c.embedding.remove(&key);
                if let Some(entry) = c.map.get_mut(&key) {
                    entry.index = Arc::new(index);
                }
                tracing::info!(
                    tools = tools.len(),
                    ms = started.elapsed().as_secs_f64() * 1e3,
                    "tool search: tool vectors ready"
                );
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "tool search: cannot start the embedding thread");
            self.cache
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .embedding
                .remove(&key);
        }
    }

    /// Indexes currently cached.
    pub fn cached(&self) -> usize {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .len()
    }

    /// The cached index of a fingerprint (`None` once evicted).
    pub fn cached_by(&self, fingerprint: u64) -> Option<Indexed> {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .get(&fingerprint)
            .cloned()
    }

    fn index(&self, tools: &[Value]) -> (u64, Indexed) {
        // The lock is held while building: concurrent requests with the same new tool list
        // then build it once. A build of a few hundred tools takes well under a millisecond.
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_build(tools)
    }
}

/// Whether `tool_choice` leaves room for a search (`none` and one named function do not).
fn choice_allows_search(view: &RequestView) -> bool {
    match &view.tool_choice {
        None => true,
        Some(Value::String(s)) => s != "none",
        Some(choice) => tierwise_tools::select::tool_choice_names(choice).is_empty(),
    }
}

/// Whether the client runs its own tool search: a `tool_search` tool, or a tool with
/// `defer_loading: true` (on the tool, or on its `function` in chat's shape).
pub fn uses_hosted_tool_search(tools: &[Value]) -> bool {
    tools.iter().any(|t| {
        t.get("type").and_then(Value::as_str) == Some("tool_search")
            || [t.get("defer_loading"), t.pointer("/function/defer_loading")]
                .into_iter()
                .flatten()
                .any(|d| d.as_bool() == Some(true))
    })
}

/// `embedder` when `index` has vectors for it (hybrid), else `None` (lexical).
fn embedder_for<'a>(
    embedder: Option<&'a SharedEmbedder>,
    index: &ToolIndex,
) -> Option<&'a dyn TextEmbedder> {
    match embedder {
        Some(e) if index.has_vectors() => Some(e.as_ref() as &dyn TextEmbedder),
        _ => None,
    }
}

fn schema_tokens(tool: &Value) -> usize {
    tierwise_core::tokens::count_tools(std::slice::from_ref(tool))
}

impl ToolShaper for ToolSearchShaper {
    fn shape(&self, body: &mut Map<String, Value>, view: &RequestView) -> ShapedTools {
        let Some(Value::Array(tools)) = body.get("tools") else {
            return ShapedTools::default();
        };
        let offered = tools.len();
        if self.policy.mode == ToolMode::Off
            || offered <= self.policy.threshold
            || uses_hosted_tool_search(tools)
        {
            return ShapedTools {
                counts: ToolShaping {
                    offered,
                    sent: offered,
                    ..ToolShaping::default()
                },
                search: None,
            };
        }
        let (fingerprint, indexed) = self.index(tools);
        self.embed_later(fingerprint, &indexed);
        let index = &indexed.index;
        let embedder = embedder_for(self.embedder.as_ref(), index);
        // Embedding the conversation takes milliseconds (MiniLM): let the runtime move other
        // tasks off this worker meanwhile.
        let selection = match (embedder, tokio::runtime::Handle::try_current()) {
            (Some(_), Ok(h))
                if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread =>
            {
                tokio::task::block_in_place(|| select_with(index, view, &self.policy, embedder))
            }
            _ => select_with(index, view, &self.policy, embedder),
        };
        let mut counts = ToolShaping {
            removed: offered.saturating_sub(selection.kept.len()),
            offered,
            sent: selection.kept.len(),
            tokens_offered: selection.tokens_offered,
            tokens_sent: selection.tokens_sent,
        };
        if !selection.pruned {
            return ShapedTools {
                counts,
                search: None,
            };
        }
        let mut kept = selection.apply(tools);
        let search = self.policy.mode == ToolMode::ToolSearch
            && self.max_search_rounds > 0
            && view.api == Api::ChatCompletions
            && choice_allows_search(view);
        let mut session = None;
        if search {
            let name = tool_search::function_name(index);
            let schema = tool_search::schema(&name);
            counts.tokens_sent += schema_tokens(&schema);
            kept.push(schema);
            let mut sent = selection.indices();
            sent.sort_unstable();
            sent.dedup();
            session = Some(ToolSearchSession {
                fingerprint,
                name,
                sent,
                max_rounds: self.max_search_rounds,
                cache: Arc::clone(&self.cache),
                embedder: self.embedder.clone(),
            });
        }
        body.insert("tools".into(), Value::Array(kept));
        ShapedTools {
            counts,
            search: session,
        }
    }
}

/// A request's `tool_search` session: made by [`ToolSearchShaper`] when it added the function,
/// carried to dispatch in [`RequestCtx::tool_search`], answered there (`search_rounds`).
#[derive(Clone)]
pub struct ToolSearchSession {
    /// Fingerprint of the client's tool list. Its index is looked up in the cache again at
    /// dispatch, so vectors computed in the background since shaping are used.
    fingerprint: u64,
    /// The function's name (no client tool uses it).
    name: String,
    /// Positions (in the client's list) of the tools sent, ascending.
    sent: Vec<usize>,
    /// `tools.max_search_rounds`.
    max_rounds: u32,
    /// The shaper's index cache and embedder.
    cache: Arc<Mutex<IndexCache>>,
    embedder: Option<SharedEmbedder>,
}

impl std::fmt::Debug for ToolSearchSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolSearchSession")
            .field("fingerprint", &self.fingerprint)
            .field("name", &self.name)
            .field("sent", &self.sent)
            .field("max_rounds", &self.max_rounds)
            .finish_non_exhaustive()
    }
}

impl ToolSearchSession {
    /// The cached index of the session's tool list (`None` once evicted).
    fn indexed(&self) -> Option<Indexed> {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .get(&self.fingerprint)
            .cloned()
    }

    /// For runners that do not answer searches (the cascade): removes the `tool_search`
    /// function from `body`, leaving plain pruning.
    pub fn withdraw(&self, body: &mut Map<String, Value>) {
        remove_function(body, &self.name);
    }
}

fn function_of(tool: &Value) -> Option<&str> {
    tool.pointer("/function/name").and_then(Value::as_str)
}

fn remove_function(body: &mut Map<String, Value>, name: &str) {
    if let Some(Value::Array(tools)) = body.get_mut("tools") {
        tools.retain(|t| function_of(t) != Some(name));
    }
}

/// Adds the numbers of usage object `add` into `acc` (nested objects too).
fn add_usage(acc: &mut Map<String, Value>, add: &Map<String, Value>) {
    for (k, v) in add {
        match (acc.get_mut(k), v) {
            (Some(Value::Object(a)), Value::Object(b)) => add_usage(a, b),
            (Some(a @ Value::Number(_)), Value::Number(b)) => {
                let sum = match (a.as_u64(), b.as_u64()) {
                    (Some(x), Some(y)) => json!(x.saturating_add(y)),
                    _ => json!(a.as_f64().unwrap_or(0.0) + b.as_f64().unwrap_or(0.0)),
                };
                *a = sum;
            }
            (None, v) => {
                acc.insert(k.clone(), v.clone());
            }
            _ => {}
        }
    }
}

/// What one answer asks for.
#[derive(Debug, PartialEq)]
enum Turn {
    /// No `tool_search` call: the final answer.
    Final,
    /// Only `tool_search` calls: answer them and call again.
    Search(Vec<Value>),
    /// `tool_search` calls next to client tool calls (or after the function was withdrawn):
    /// strip them, final.
    Strip,
}

fn classify(message: &Value, name: &str) -> Turn {
    let calls = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let (search, other): (Vec<&Value>, Vec<&Value>) =
        calls.iter().partition(|c| function_of(c) == Some(name));
    match (search.is_empty(), other.is_empty()) {
        (true, _) => Turn::Final,
        (false, true) => Turn::Search(search.into_iter().cloned().collect()),
        (false, false) => Turn::Strip,
    }
}

/// Removes `name` calls from the first choice; `finish_reason` becomes `stop` when none is left.
fn strip_calls(answer: &mut Value, name: &str) {
    let Some(choice) = answer.pointer_mut("/choices/0") else {
        return;
    };
    let mut now_empty = false;
    if let Some(Value::Array(calls)) = choice.pointer_mut("/message/tool_calls") {
        calls.retain(|c| function_of(c) != Some(name));
        now_empty = calls.is_empty();
    }
    if now_empty {
        if let Some(Value::Object(m)) = choice.get_mut("message") {
            m.remove("tool_calls");
        }
        if let Value::Object(c) = choice {
            c.insert("finish_reason".into(), json!("stop"));
        }
    }
}

/// The tool messages answering `calls`; adds the found tools to `sent` (kept ascending).
/// `embedder`: rank with vectors too (hybrid), else lexically.
fn answer_calls(
    embedder: Option<&dyn TextEmbedder>,
    indexed: &Indexed,
    calls: &[Value],
    sent: &mut Vec<usize>,
) -> (Vec<Value>, Vec<String>) {
    let mut messages = Vec::with_capacity(calls.len());
    let mut queries = Vec::with_capacity(calls.len());
    for call in calls {
        let id = call.get("id").cloned().unwrap_or(Value::Null);
        let args = call
            .pointer("/function/arguments")
            .and_then(Value::as_str)
            .unwrap_or("");
        let content = match tool_search::parse_arguments(args) {
            Ok(c) => {
                let method = if embedder.is_some() {
                    Method::Hybrid
                } else {
                    Method::Lexical
                };
                let found =
                    tool_search::search(&indexed.index, &c.query, c.limit, sent, method, embedder);
                sent.extend(&found);
                sent.sort_unstable();
                sent.dedup();
                queries.push(c.query);
                tool_search::answer(&indexed.index, &found)
            }
            Err(e) => json!({"error": e.to_string()}).to_string(),
        };
        messages.push(json!({"role": "tool", "tool_call_id": id, "content": content}));
    }
    (messages, queries)
}

/// The client's tools at `sent` positions (original order), plus the search function.
fn tools_for(indexed: &Indexed, sent: &[usize], search: Option<&str>) -> Vec<Value> {
    let mut out: Vec<Value> = sent
        .iter()
        .filter_map(|&i| indexed.tools.get(i).cloned())
        .collect();
    if let Some(name) = search {
        out.push(tool_search::schema(name));
    }
    out
}

fn final_shaping(indexed: &Indexed, sent: &[usize], search: Option<&str>) -> ToolShaping {
    let offered = indexed.tools.len();
    ToolShaping {
        removed: offered.saturating_sub(sent.len()),
        offered,
        sent: sent.len(),
        tokens_offered: indexed.index.tokens_of(0..offered),
        tokens_sent: indexed.index.tokens_of(sent.iter().copied())
            + search.map_or(0, |n| schema_tokens(&tool_search::schema(n))),
    }
}

/// Runs the `tool_search` rounds of a session (see the module docs) and returns the final
/// answer as an ordinary response (SSE when the client streams).
pub(crate) async fn search_rounds(
    state: &AppState,
    session: ToolSearchSession,
    candidates: Candidates,
    body: &mut Map<String, Value>,
    target: Target<'_>,
    ctx: &mut RequestCtx,
) -> Result<Dispatched, UpstreamError> {
    let Some(indexed) = session.indexed() else {
        // Evicted between shaping and dispatch: plain pruning.
        session.withdraw(body);
        return walk(state, candidates, body, target, &mut ctx.trail).await;
    };
    let ToolSearchSession {
        name,
        mut sent,
        max_rounds,
        embedder,
        ..
    } = session;
    let client_stream = target.stream;
    body.remove("stream");
    body.remove("stream_options");
    let quiet = Target {
        stream: false,
        ..target
    };
    let mut offered_search = true;
    let mut candidates = candidates;
    let mut rounds = 0u32;
    let mut usage = Map::new();
    loop {
        let d = walk(state, candidates, body, quiet, &mut ctx.trail).await?;
        let candidate = d.candidate.clone();
        candidates = Candidates::single(candidate.clone());
        let status = d.response.status();
        let mut passback = passback_headers(d.response.headers());
        let bytes = d
            .response
            .bytes()
            .await
            .map_err(|e| UpstreamError::from_reqwest(&e))?;
        let Ok(mut answer @ Value::Object(_)) = serde_json::from_slice::<Value>(&bytes) else {
            // Not a completion: hand it on as it is (the caller reports it).
            ctx.tools = final_shaping(&indexed, &sent, offered_search.then_some(&*name));
            return Ok(Dispatched {
                response: synth(status, passback, bytes.to_vec(), "application/json"),
                candidate,
            });
        };
        if let Some(Value::Object(u)) = answer.get("usage") {
            add_usage(&mut usage, u);
        }
        let message = answer
            .pointer("/choices/0/message")
            .cloned()
            .unwrap_or(Value::Null);
        let turn = classify(&message, &name);
        if let Turn::Search(calls) = &turn
            && offered_search
        {
            rounds += 1;
            let (replies, queries) = answer_calls(
                embedder_for(embedder.as_ref(), &indexed.index),
                &indexed,
                calls,
                &mut sent,
            );
            tracing::debug!(round = rounds, ?queries, sent = sent.len(), model = %candidate.model, "tool_search answered");
            offered_search = rounds < max_rounds;
            let mut assistant = json!({"role": "assistant", "content": message.get("content").cloned().unwrap_or(Value::Null), "tool_calls": calls});
            if let Some(r) = message.get("refusal").filter(|r| !r.is_null()) {
                assistant["refusal"] = r.clone();
            }
            if let Some(Value::Array(messages)) = body.get_mut("messages") {
                messages.push(assistant);
                messages.extend(replies);
            }
            body.insert(
                "tools".into(),
                Value::Array(tools_for(&indexed, &sent, offered_search.then_some(&*name))),
            );
            continue;
        }
        if turn != Turn::Final {
            strip_calls(&mut answer, &name);
        }
        if !usage.is_empty() {
            answer["usage"] = Value::Object(usage);
        }
        ctx.tools = final_shaping(&indexed, &sent, offered_search.then_some(&*name));
        let (bytes, content_type) = if client_stream {
            let sse = crate::cascade::sse(&answer, true);
            let b = axum::body::to_bytes(sse.into_body(), usize::MAX)
                .await
                .map_err(|e| UpstreamError::invalid_response(e.to_string()))?;
            (b.to_vec(), "text/event-stream")
        } else {
            (answer.to_string().into_bytes(), "application/json")
        };
        passback.retain(|(k, _)| k != header::CONTENT_LENGTH);
        return Ok(Dispatched {
            response: synth(status, passback, bytes, content_type),
            candidate,
        });
    }
}

/// A response built here, as if it came from upstream.
fn synth(
    status: axum::http::StatusCode,
    headers: Vec<(header::HeaderName, HeaderValue)>,
    body: Vec<u8>,
    content_type: &'static str,
) -> reqwest::Response {
    let mut r = axum::http::Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    for (k, v) in headers {
        h.insert(k, v);
    }
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    reqwest::Response::from(r)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool(name: &str, desc: &str) -> Value {
        json!({"type": "function", "function": {"name": name, "description": desc,
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}})
    }

    fn catalog(n: usize) -> Vec<Value> {
        (0..n)
            .map(|i| tool(&format!("tool_{i}"), &format!("does thing number {i}")))
            .collect()
    }

    fn policy(mode: ToolMode) -> SelectionPolicy {
        SelectionPolicy {
            mode,
            threshold: 16,
            top_k: 3,
            pinned: vec!["tool_7".into()],
            method: tierwise_tools::Method::Lexical,
            keep_share: 0.0,
            adaptive: tierwise_tools::Adaptive::OFF,
        }
    }

    fn body(tools: Vec<Value>, extra: Value) -> (Map<String, Value>, RequestView) {
        let mut v = json!({"model": "auto",
            "messages": [{"role": "user", "content": "get the weather forecast for Paris"}],
            "tools": tools});
        if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
            m.extend(e);
        }
        let view = RequestView::chat(&v).unwrap();
        (v.as_object().unwrap().clone(), view)
    }

    #[test]
    fn prunes_keeps_forced_in_original_order_and_caches() {
        let mut tools = catalog(40);
        tools.insert(
            5,
            tool("get_weather_forecast", "Weather forecast for a city"),
        );
        tools.push(json!({"type": "web_search"}));
        let shaper = ToolSearchShaper::new(policy(ToolMode::Prune));
        let extra = json!({"tool_choice": {"type": "function", "function": {"name": "tool_30"}}});
        let (mut b, view) = body(tools.clone(), extra.clone());
        let s = shaper.shape(&mut b, &view).counts;
        let kept = b["tools"].as_array().unwrap().clone();
        let names: Vec<&str> = kept
            .iter()
            .map(|t| {
                t.pointer("/function/name")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
            })
            .collect();
        assert!(names.contains(&"get_weather_forecast"), "{names:?}");
        assert!(
            names.contains(&"tool_30") && names.contains(&"tool_7"),
            "{names:?}"
        );
        assert!(
            names.contains(&"?"),
            "the unindexable tool is kept: {names:?}"
        );
        assert!(kept.len() <= 3 + 3, "{names:?}");
        // Original order.
        let pos: Vec<usize> = kept
            .iter()
            .map(|k| tools.iter().position(|t| t == k).unwrap())
            .collect();
        assert!(pos.windows(2).all(|w| w[0] < w[1]), "{pos:?}");
        assert_eq!(
            (s.offered, s.sent, s.removed),
            (42, kept.len(), 42 - kept.len())
        );
        assert!(s.tokens_sent < s.tokens_offered && s.tokens_sent > 0);
        // Same list again: the cached index, the same result.
        let (mut b2, view2) = body(tools, extra);
        assert_eq!(shaper.shape(&mut b2, &view2).counts, s);
        assert_eq!(b2["tools"], b["tools"]);
        assert_eq!(shaper.cached(), 1);
    }

    #[test]
    fn off_and_small_lists_are_untouched() {
        let (mut b, view) = body(catalog(40), json!({}));
        let before = b.clone();
        let s = ToolSearchShaper::new(policy(ToolMode::Off))
            .shape(&mut b, &view)
            .counts;
        assert_eq!(b, before);
        assert_eq!((s.offered, s.sent, s.removed), (40, 40, 0));
        let (mut b, view) = body(catalog(16), json!({}));
        let before = b.clone();
        let s = ToolSearchShaper::new(policy(ToolMode::Prune))
            .shape(&mut b, &view)
            .counts;
        assert_eq!(b, before);
        assert_eq!(s.removed, 0);
    }

    #[test]
    fn search_mode_adds_the_function_and_the_session() {
        let mut tools = catalog(40);
        tools.insert(
            5,
            tool("get_weather_forecast", "Weather forecast for a city"),
        );
        let shaper = ToolSearchShaper::new(policy(ToolMode::ToolSearch));
        let (mut b, view) = body(tools.clone(), json!({}));
        let before = b.keys().cloned().collect::<Vec<_>>();
        let ShapedTools { counts: s, search } = shaper.shape(&mut b, &view);
        assert_eq!(
            b.keys().cloned().collect::<Vec<_>>(),
            before,
            "no key added"
        );
        let sent = b["tools"].as_array().unwrap();
        assert_eq!(
            sent.last().unwrap().pointer("/function/name"),
            Some(&json!("tool_search"))
        );
        assert_eq!(s.sent, sent.len() - 1, "sent counts client tools only");
        let session = search.unwrap();
        assert_eq!(session.name, "tool_search");
        assert_eq!(session.sent.len(), s.sent);
        assert!(session.sent.windows(2).all(|w| w[0] < w[1]));
        assert!(shaper.cached_by(session.fingerprint).is_some());
        assert!(session.indexed().is_some());
        // A runner that does not answer searches withdraws the function.
        session.withdraw(&mut b);
        assert_eq!(b["tools"].as_array().unwrap().len(), s.sent);
        // tool_choice none or one named function: no search function.
        for choice in [
            json!("none"),
            json!({"type": "function", "function": {"name": "tool_3"}}),
        ] {
            let (mut b, view) = body(tools.clone(), json!({ "tool_choice": choice }));
            assert!(shaper.shape(&mut b, &view).search.is_none());
            let names: Vec<&str> = b["tools"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(function_of)
                .collect();
            assert!(!names.contains(&"tool_search"), "{names:?}");
        }
    }

    #[test]
    fn answers_are_classified_and_stray_calls_stripped() {
        let call = |n: &str| json!({"id": n, "type": "function", "function": {"name": n, "arguments": "{}"}});
        let msg =
            |calls: Vec<Value>| json!({"role": "assistant", "content": null, "tool_calls": calls});
        assert_eq!(
            classify(&json!({"content": "hi"}), "tool_search"),
            Turn::Final
        );
        assert_eq!(
            classify(&msg(vec![call("tool_search")]), "tool_search"),
            Turn::Search(vec![call("tool_search")])
        );
        assert_eq!(
            classify(&msg(vec![call("tool_search"), call("get")]), "tool_search"),
            Turn::Strip
        );
        let mut a = json!({"choices": [{"message": msg(vec![call("tool_search"), call("get")]), "finish_reason": "tool_calls"}]});
        strip_calls(&mut a, "tool_search");
        assert_eq!(
            a["choices"][0]["message"]["tool_calls"],
            json!([call("get")])
        );
        assert_eq!(a["choices"][0]["finish_reason"], "tool_calls");
        let mut a = json!({"choices": [{"message": msg(vec![call("tool_search")]), "finish_reason": "tool_calls"}]});
        strip_calls(&mut a, "tool_search");
        assert!(a["choices"][0]["message"].get("tool_calls").is_none());
        assert_eq!(a["choices"][0]["finish_reason"], "stop");
    }

    #[test]
    fn usage_adds_up_nested() {
        let mut acc = Map::new();
        let u = json!({"prompt_tokens": 10, "completion_tokens": 2,
            "prompt_tokens_details": {"cached_tokens": 0}});
        add_usage(&mut acc, u.as_object().unwrap());
        let u = json!({"prompt_tokens": 15, "completion_tokens": 3,
            "prompt_tokens_details": {"cached_tokens": 8}, "total_tokens": 18});
        add_usage(&mut acc, u.as_object().unwrap());
        assert_eq!(
            Value::Object(acc),
            json!({"prompt_tokens": 25, "completion_tokens": 5,
                "prompt_tokens_details": {"cached_tokens": 8}, "total_tokens": 18})
        );
    }

    #[test]
    fn searches_add_found_tools_in_original_order() {
        let mut tools = catalog(30);
        tools.insert(20, tool("send_sms", "Send a text message"));
        let indexed = Indexed {
            index: Arc::new(ToolIndex::build(&tools)),
            tools: Arc::new(tools),
        };
        let mut sent = vec![25, 2];
        let calls = [
            json!({"id": "a", "function": {"name": "tool_search", "arguments": "{\"query\": \"text message\"}"}}),
            json!({"id": "b", "function": {"name": "tool_search", "arguments": "oops"}}),
        ];
        let (replies, queries) = answer_calls(None, &indexed, &calls, &mut sent);
        assert_eq!(queries, ["text message"]);
        assert_eq!(sent, [2, 20, 25]);
        assert_eq!(replies[0]["tool_call_id"], "a");
        assert!(replies[1]["content"].as_str().unwrap().contains("error"));
        let out = tools_for(&indexed, &sent, Some("tool_search"));
        let names: Vec<&str> = out.iter().filter_map(function_of).collect();
        assert_eq!(names, ["tool_2", "send_sms", "tool_24", "tool_search"]);
    }

    struct Travel;
    impl TextEmbedder for Travel {
        fn embed_text(&self, text: &str) -> Vec<f32> {
            let t = text.to_lowercase();
            let travel = ["flight", "journey", "trip", "plane"]
                .iter()
                .filter(|w| t.contains(*w))
                .count() as f32;
            vec![travel, 0.1]
        }
    }

    #[test]
    fn hybrid_ranks_with_vectors_computed_in_the_background() {
        let mut tools = catalog(40);
        tools.insert(9, tool("book_seat", "Reserve a seat on a plane"));
        let shaper = ToolSearchShaper::new(policy(ToolMode::Prune)).with_embedder(Arc::new(Travel));
        let ask = || {
            let mut v = json!({"model": "auto",
                "messages": [{"role": "user", "content": "plan my journey to Rome"}],
                "tools": tools.clone()});
            let view = RequestView::chat(&v).unwrap();
            let mut b = v.as_object_mut().unwrap().clone();
            shaper.shape(&mut b, &view);
            b["tools"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(function_of)
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        let _first = ask(); // lexical while the vectors are computed
        assert!(shaper.wait_embedded(std::time::Duration::from_secs(5)));
        let (_, indexed) = shaper.index(&tools);
        assert!(indexed.index.has_vectors());
        let names = ask();
        assert!(names.contains(&"book_seat".to_string()), "{names:?}");
    }

    /// The gateway's runtime is multi-threaded: embedding runs under `block_in_place` there.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hybrid_shaping_inside_the_multi_thread_runtime() {
        let mut tools = catalog(40);
        tools.insert(9, tool("book_seat", "Reserve a seat on a plane"));
        let shaper = ToolSearchShaper::new(policy(ToolMode::Prune)).with_embedder(Arc::new(Travel));
        let (key, indexed) = shaper.index(&tools);
        shaper.embed_later(key, &indexed);
        assert!(shaper.wait_embedded(std::time::Duration::from_secs(5)));
        let v = json!({"model": "auto",
            "messages": [{"role": "user", "content": "plan my journey to Rome"}],
            "tools": tools});
        let view = RequestView::chat(&v).unwrap();
        let mut b = v.as_object().unwrap().clone();
        let s = shaper.shape(&mut b, &view).counts;
        assert!(s.sent < s.offered);
        let names: Vec<&str> = b["tools"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(function_of)
            .collect();
        assert!(names.contains(&"book_seat"), "{names:?}");
    }
}
