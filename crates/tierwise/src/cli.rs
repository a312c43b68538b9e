//! Every command-line argument of `tierwise`, in one place (clap derive). Logic lives in the
//! library crates; `cmd/*` wires arguments to them.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "tierwise",
    version,
    about = "Route each LLM call to the cheapest tier that meets its quality bar."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the OpenAI-compatible gateway.
    Serve(ServeArgs),
    /// Explain the routing decision for one prompt or request body.
    Route(RouteArgs),
    /// Audit call logs: spend by category and tier, and what each lever would save.
    Audit(AuditArgs),
    /// Evaluate a router offline on outcome data (cost/quality curve, APGR, CPT, savings).
    Eval(EvalArgs),
    /// Fit the learned router on outcome data.
    Train(TrainArgs),
    /// Calibrate the learned router's thresholds to a target and write them into a config.
    Calibrate(CalibrateArgs),
    /// Tool search: evaluation on tool-selection data.
    #[command(subcommand)]
    Tools(ToolsCommand),
    /// Quality bar on your own traffic: per category × (served → candidate tier), the shadow
    /// tests' verdict at the bar (`plan`: the same statistics offline, on outcome data).
    Quality(QualityArgs),
    /// Virtual keys (`[auth] mode = "keys"`): create, list, show, update, revoke.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Teams: budgets shared by their keys.
    #[command(subcommand)]
    Teams(TeamsCommand),
    /// Configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Prices: what a model costs and where the price comes from; update the price database.
    #[command(subcommand)]
    Prices(PricesCommand),
    /// Benchmarks (gateway overhead against the mock upstream); in builds with `--features bench`.
    #[cfg(feature = "bench")]
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// Where keys and teams live: the config's store (`[store] url`, `TIERWISE_DATABASE_URL`, else
/// the SQLite file `log.path`), or `--store`.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Config file (default: ./tierwise.toml if present, else the embedded default).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The store: a postgres:// URL or a SQLite file (overrides the config's).
    #[arg(long)]
    pub store: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// A key's limits; on `update`, `none` clears one.
#[derive(Debug, Args)]
pub struct KeyLimitArgs {
    /// The key's team (must exist: `tierwise teams create`).
    #[arg(long)]
    pub team: Option<String>,
    /// Budget in USD per UTC day.
    #[arg(long, allow_hyphen_values = true)]
    pub budget_usd_day: Option<String>,
    /// Budget in USD per UTC calendar month.
    #[arg(long, allow_hyphen_values = true)]
    pub budget_usd_month: Option<String>,
    /// Requests per minute.
    #[arg(long)]
    pub rpm: Option<String>,
    /// Tokens per minute (prompt + output cap, counted when a call is admitted).
    #[arg(long)]
    pub tpm: Option<String>,
    /// Tiers the key may use, comma-separated (e.g. nano,mini).
    #[arg(long)]
    pub tiers: Option<String>,
    /// The highest tier the key may use; higher decisions are lowered to it.
    #[arg(long)]
    pub max_tier: Option<String>,
    /// When the key stops working (RFC 3339, e.g. 2027-01-01T00:00:00Z).
    #[arg(long)]
    pub expires: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; prints it once (only its hash is stored).
    Create(KeyCreateArgs),
    /// List keys (never the keys themselves).
    List(StoreArgs),
    /// One key, with its spend per budget window.
    Show(KeyIdArgs),
    /// Change a key's name, team, limits or expiry (`none` clears a limit).
    Update(KeyUpdateArgs),
    /// Revoke a key: refused by every replica within `auth.key_cache_ms` (≤ 1 s).
    Revoke(KeyIdArgs),
}

#[derive(Debug, Args)]
pub struct KeyCreateArgs {
    /// A name for people (the app or person the key is for).
    #[arg(long)]
    pub name: String,
    #[command(flatten)]
    pub limits: KeyLimitArgs,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct KeyIdArgs {
    /// The key's id (`key_…`, from `keys list`).
    pub id: String,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct KeyUpdateArgs {
    /// The key's id (`key_…`).
    pub id: String,
    /// A new name.
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub limits: KeyLimitArgs,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Subcommand)]
pub enum TeamsCommand {
    /// Create a team.
    Create(TeamArgs),
    /// Change a team's budgets (`none` clears one).
    Update(TeamArgs),
    /// List teams.
    List(StoreArgs),
}

#[derive(Debug, Args)]
pub struct TeamArgs {
    /// The team's name.
    pub name: String,
    /// Budget in USD per UTC day, shared by the team's keys.
    #[arg(long, allow_hyphen_values = true)]
    pub budget_usd_day: Option<String>,
    /// Budget in USD per UTC calendar month.
    #[arg(long, allow_hyphen_values = true)]
    pub budget_usd_month: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Config file (default: ./tierwise.toml if present, else the embedded default).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to listen on (overrides `listen` in the config).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Args)]
pub struct RouteArgs {
    /// The prompt (one user message).
    #[arg(required_unless_present = "request")]
    pub prompt: Option<String>,
    /// A chat completions (or Responses) request body as JSON.
    #[arg(long, conflicts_with = "prompt")]
    pub request: Option<PathBuf>,
    /// Config file (default: ./tierwise.toml if present, else the embedded default).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Hint: caller role (e.g. sub-agent).
    #[arg(long)]
    pub role: Option<String>,
    /// Hint: category (classification, extraction, summarization, coding, reasoning, …).
    #[arg(long)]
    pub category: Option<String>,
    /// Force a tier.
    #[arg(long)]
    pub tier: Option<String>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Log files: JSONL call logs, OpenAI usage exports (.json), `-` for stdin; `.gz` accepted.
    pub logs: Vec<PathBuf>,
    /// tierwise's own request log: a SQLite file or a postgres:// URL.
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// With --store: spend broken down by virtual key or team (`key` | `team`).
    #[arg(long, requires = "store")]
    pub group_by: Option<String>,
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Write a self-contained HTML report.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Only calls at or after this time (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Only calls before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// A malformed line is fatal.
    #[arg(long)]
    pub strict: bool,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Also replay the cascade: score the logged answers with the cascade's scorer (a second
    /// pass over the JSONL call logs; JSON key `cascade_replay`).
    #[arg(long)]
    pub cascade: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Data set folder (outcomes.jsonl[.gz] + models.json).
    #[arg(long)]
    pub data: PathBuf,
    /// The ladder, cheapest first (default: all models in the data, ordered by price).
    #[arg(long, value_delimiter = ',')]
    pub models: Option<Vec<String>>,
    /// Router: a name (e.g. `default`, `learned`) or a router file.
    #[arg(long)]
    pub router: Option<String>,
    /// K-fold cross-validation: train on the data set's own folds.
    #[arg(long)]
    pub cv: Option<usize>,
    /// Cross-validation with one fold per value of this row field (`category`):
    /// leave-one-category-out.
    #[arg(long, conflicts_with = "cv")]
    pub cv_by: Option<String>,
    /// Outcome files to read instead of outcomes.jsonl[.gz] (e.g. outcomes_test.jsonl.gz).
    #[arg(long)]
    pub split: Option<String>,
    /// Evaluate the cascade (score cheap answers, escalate).
    #[arg(long)]
    pub cascade: bool,
    /// With --cascade: answer-scorer file (default: the shipped router/cascade.json).
    #[arg(long, requires = "cascade")]
    pub scorer: Option<PathBuf>,
    /// With --cascade: leave-one-category-out check — the scorer of each category's rows is
    /// trained on the other categories, thresholds fitted there are applied to it; reported per
    /// held-out category.
    #[arg(long, requires = "cascade", conflicts_with_all = ["cv", "scorer"])]
    pub leave_category_out: bool,
    /// With --cascade and --cv / --leave-category-out: scorer features held at weight 0
    /// (ablations; names as in router/cascade.json).
    #[arg(long, requires = "cascade", value_delimiter = ',')]
    pub exclude_features: Vec<String>,
    /// Write per-row router scores (JSONL).
    #[arg(long)]
    pub scores: Option<PathBuf>,
    /// Write an HTML chart of the curve.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Write the charts as SVG.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// With --cv: feature groups to train on (signals, lexical, ngrams[=BITS], embed, all).
    #[arg(long)]
    pub features: Option<String>,
    /// With --cv: L2 penalty on the per-model n-gram deviations (with `ngrams` features); 0 = none.
    #[arg(long, default_value_t = tierwise_train::router::DEFAULT_L2_MODEL_NGRAMS)]
    pub l2_ngrams_per_model: f64,
    /// With --cv: L-BFGS iterations per fit, at most.
    #[arg(long, default_value_t = tierwise_train::router::DEFAULT_MAX_ITER)]
    pub max_iter: usize,
    /// Embedding model folder (default: $TIERWISE_EMBED_DIR, else router/embed/tokenlearn-static-model-0.1.1).
    #[arg(long)]
    pub embed_dir: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Data set folders.
    #[arg(long, num_args = 1.., required = true)]
    pub data: Vec<PathBuf>,
    /// Where to write the router file.
    #[arg(long)]
    pub out: PathBuf,
    /// Fit the cascade's answer scorer (from recorded responses) instead of the router.
    #[arg(long)]
    pub cascade: bool,
    /// With --cascade: scorer features held at weight 0 (names as in router/cascade.json).
    #[arg(long, requires = "cascade", value_delimiter = ',')]
    pub exclude_features: Vec<String>,
    /// Feature groups: signals, lexical, ngrams[=BITS], embed, all. With `embed`, an
    /// embedding-free model is trained too and used when the embedding model is missing.
    #[arg(long, default_value = "signals,lexical")]
    pub features: String,
    /// Embedding model folder (default: $TIERWISE_EMBED_DIR, else router/embed/tokenlearn-static-model-0.1.1).
    #[arg(long)]
    pub embed_dir: Option<PathBuf>,
    /// L2 penalty on the hashed n-gram weights.
    #[arg(long, default_value_t = 1e-3)]
    pub l2_ngrams: f64,
    /// L2 penalty on the dense (signal, lexical, embedding) weights.
    #[arg(long, default_value_t = 1e-3)]
    pub l2_dense: f64,
    /// L2 penalty on per-model deviations (what each trained model is unusually good or bad
    /// at; used for ladders of known models); 0 = none.
    #[arg(long, default_value_t = 1e-2)]
    pub l2_per_model: f64,
    /// L2 penalty on per-model deviations over the hashed n-grams (which words and phrases a
    /// trained model is unusually good or bad at; with `ngrams` features); 0 = none.
    #[arg(long, default_value_t = tierwise_train::router::DEFAULT_L2_MODEL_NGRAMS)]
    pub l2_ngrams_per_model: f64,
    /// L-BFGS iterations per fit, at most (fits with n-gram deviations take ~0.3 s per
    /// iteration on 17k rows).
    #[arg(long, default_value_t = tierwise_train::router::DEFAULT_MAX_ITER)]
    pub max_iter: usize,
    /// L2 penalty of the transfer head (the estimate used for ladders with models the router
    /// was not trained on); 0 = no head (positional abilities instead).
    #[arg(long, default_value_t = 0.1)]
    pub l2_transfer: f64,
    /// Data sets (by name, e.g. `mmlu_pro`) the transfer head learns from (default: all).
    #[arg(long, value_delimiter = ',')]
    pub transfer_from: Option<Vec<String>>,
    /// What the estimates mean: `gain` (1 − expected loss vs the top tier) or `quality`
    /// (P(tier answers well)).
    #[arg(long, default_value = "gain")]
    pub estimate: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CalibrateArgs {
    #[arg(long, required_unless_present = "from_log")]
    pub data: Option<PathBuf>,
    /// strong-share=0.3 | budget-usd-per-1k=… | quality=0.95
    #[arg(long, required_unless_present = "from_log")]
    pub target: Option<String>,
    /// Per-category rules from the gateway's shadow tests: a category moves down only where
    /// its verdict is "safe to move down" (see `tierwise quality`).
    #[arg(long, conflicts_with_all = ["data", "target", "cascade"])]
    pub from_log: bool,
    /// With --from-log: the store (default: the config's log.path).
    #[arg(long, requires = "from_log", value_name = "FILE|URL")]
    pub store: Option<String>,
    /// With --from-log: the quality ratio to clear (default: quality.bar).
    #[arg(long, requires = "from_log")]
    pub bar: Option<f64>,
    /// With --from-log: the confidence (default: quality.confidence).
    #[arg(long, requires = "from_log")]
    pub confidence: Option<f64>,
    /// Config file to write thresholds into.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Router: `default` or a router file (default: the config's routing.learned.weights).
    #[arg(long)]
    pub router: Option<String>,
    /// Data models standing in for the config's tiers, cheapest first (quality target).
    #[arg(long, value_delimiter = ',')]
    pub models: Option<Vec<String>>,
    /// Outcome files to read instead of outcomes.jsonl[.gz].
    #[arg(long)]
    pub split: Option<String>,
    /// Embedding model folder (default: $TIERWISE_EMBED_DIR, else router/embed/tokenlearn-static-model-0.1.1).
    #[arg(long)]
    pub embed_dir: Option<PathBuf>,
    /// Print the thresholds without writing the config.
    #[arg(long)]
    pub dry_run: bool,
    /// Fit the cascade's plan (tiers called + per-tier thresholds; target quality=F or
    /// budget=F, F a fraction of the strongest tier's quality / cost) into [routing.cascade].
    #[arg(long)]
    pub cascade: bool,
    /// With --cascade: answer-scorer file (default: the config's, else the shipped one).
    #[arg(long, requires = "cascade")]
    pub scorer: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ToolsCommand {
    /// Recall of gold tools vs tool-schema tokens removed.
    Eval(ToolsEvalArgs),
}

#[derive(Debug, Args)]
pub struct ToolsEvalArgs {
    #[arg(long)]
    pub data: PathBuf,
    /// Tools kept per request (default: the config's tools.top_k).
    #[arg(long)]
    pub k: Option<usize>,
    /// Report the curve over k.
    #[arg(long)]
    pub sweep: bool,
    /// Retrieval method: bm25 (baseline), lexical, hybrid (lexical + MiniLM; needs
    /// scripts/fetch-minilm.sh). Default: the config's tools.method.
    #[arg(long, value_enum)]
    pub method: Option<ToolsMethodArg>,
    /// Prune only requests with more tools than this (default 0: measure the selector alone;
    /// the gateway uses the config's tools.threshold).
    #[arg(long, default_value_t = 0)]
    pub threshold: usize,
    /// Select from the whole catalog even where queries list `candidates`.
    #[arg(long)]
    pub all_tools: bool,
    /// Give each query a catalog of N tools: its gold tools plus a fixed draw of others from
    /// the whole catalog (e.g. 300: "a catalog of a few hundred tools").
    #[arg(long, value_name = "N")]
    pub catalog_size: Option<usize>,
    /// Config file whose tools.top_k is the default k (default: ./tierwise.toml, else embedded).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Embedding model folder for hybrid: a MiniLM (BERT) folder, or a static model folder
    /// (default: $TIERWISE_MINILM_DIR, else router/embed/all-minilm-l6-v2).
    #[arg(long)]
    pub embed_dir: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ToolsMethodArg {
    Bm25,
    Lexical,
    Hybrid,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct QualityArgs {
    #[command(subcommand)]
    pub command: Option<QualityCommand>,
    #[command(flatten)]
    pub report: QualityReportArgs,
}

#[derive(Debug, Args)]
pub struct QualityReportArgs {
    /// The store holding the shadow results: a SQLite file (default: the config's log.path).
    #[arg(long, value_name = "FILE|URL")]
    pub store: Option<String>,
    /// Config file (default: ./tierwise.toml if present, else the embedded default); its
    /// [quality] bar and confidence are the defaults.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Quality ratio of the candidate to clear, in (0, 1] (default: quality.bar).
    #[arg(long)]
    pub bar: Option<f64>,
    /// Confidence in (0, 1) (default: quality.confidence); 1 − C also bounds the expected
    /// share of wrong "safe" verdicts across pairs (Benjamini–Hochberg).
    #[arg(long)]
    pub confidence: Option<f64>,
    /// Only shadow tests at or after this time (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Write a self-contained HTML report.
    #[arg(long)]
    pub html: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum QualityCommand {
    /// Per category of an outcome data set, the cheapest model whose quality ratio against the
    /// strongest clears --bar at --confidence, proven on --samples shadow rows per category.
    Plan(QualityPlanArgs),
}

#[derive(Debug, Args)]
pub struct QualityPlanArgs {
    /// Data set folder (outcomes*.jsonl[.gz] + models.json).
    #[arg(long)]
    pub data: PathBuf,
    /// The ladder, cheapest first; the last is the strongest (default: the data set's ladder).
    #[arg(long, value_delimiter = ',')]
    pub models: Option<Vec<String>>,
    /// Outcome files to read instead of outcomes.jsonl[.gz] (e.g. test).
    #[arg(long)]
    pub split: Option<String>,
    /// Shadow rows drawn per category.
    #[arg(long, default_value_t = 100)]
    pub samples: usize,
    /// Quality ratio against the strongest to clear, in (0, 1].
    #[arg(long, default_value_t = 0.95)]
    pub bar: f64,
    /// Confidence in (0, 1): misses stay at most 1 − C of the categories moved, in expectation.
    #[arg(long, default_value_t = 0.9)]
    pub confidence: f64,
    /// Seed of the draw.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a config file: exit 0 if valid, 1 with a message naming the bad field.
    Check(ConfigCheckArgs),
}

#[derive(Debug, Args)]
pub struct ConfigCheckArgs {
    pub file: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum PricesCommand {
    /// A model's prices (USD per 1M tokens), with their source and check date.
    Show(PricesShowArgs),
    /// Replace the vendored price database with a newer copy of the same file (validated; prints
    /// what changed).
    Update(PricesUpdateArgs),
}

#[derive(Debug, Args)]
pub struct PricesShowArgs {
    /// Model id as a client or a log names it (`gpt-5.4`, `gpt-5.6-luna-2026-09-01`,
    /// `anthropic/claude-sonnet-4-5`, a tier name).
    pub model: String,
    /// Config file (default: ./tierwise.toml if present, else the embedded default).
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PricesUpdateArgs {
    /// A genai-prices v2 `data.json` (the project's `prices/new_data/v2/data.json`).
    pub file: PathBuf,
    /// Folder holding the vendored data (default: `crates/tierwise-core/data/prices` of the
    /// source tree this binary was built from).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Source line to record (default: the file's path).
    #[arg(long)]
    pub source: Option<String>,
    /// The date the prices were checked, YYYY-MM-DD (default: today, UTC).
    #[arg(long)]
    pub checked: Option<String>,
    /// Validate and print the changes; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub json: bool,
}

#[cfg(feature = "bench")]
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Added latency of the gateway vs calling the mock upstream directly.
    Gateway(BenchGatewayArgs),
}

#[cfg(feature = "bench")]
#[derive(Debug, Args)]
pub struct BenchGatewayArgs {
    /// Requests per side.
    #[arg(long, default_value_t = 10_000)]
    pub requests: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Keys mode: every gateway call presents a virtual key with a day budget and an rpm
    /// limit (key lookup, rate count, budget reservation and reconciliation on each call).
    #[arg(long)]
    pub keys: bool,
    /// The store: a postgres:// URL (default: SQLite in a temp file).
    #[arg(long)]
    pub store: Option<String>,
    #[arg(long)]
    pub json: bool,
}
