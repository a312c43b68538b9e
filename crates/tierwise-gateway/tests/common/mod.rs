//! A gateway and a mock upstream on 127.0.0.1:0, with a config written for the test.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test harness shared by several test binaries"
)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rust_decimal::Decimal;
use tierwise_core::Config;
use tierwise_core::config::DEFAULT_TOML;
use tierwise_gateway::{Gateway, ShutdownReport};
use tierwise_mock::{Mock, MockServer};
use tierwise_store::{LogReader, RequestRow, TimeRange};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct Setup {
    /// (from, to) replacements applied to the default `tierwise.toml`.
    pub edits: Vec<(String, String)>,
    pub mock: Mock,
    /// `OPENAI_API_KEY` as the gateway sees it.
    pub api_key: Option<String>,
    /// Point the gateway at this base URL instead of the mock.
    pub base_url: Option<String>,
    /// Other environment variables the config sees (e.g. `TIERWISE_ADMIN_KEY`).
    pub env: Vec<(String, String)>,
    /// `OTEL_*` variables as the gateway sees them (empty: telemetry off).
    pub otel_env: Vec<(String, String)>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            edits: Vec::new(),
            mock: Mock::new(),
            api_key: None,
            base_url: None,
            env: Vec::new(),
            otel_env: Vec::new(),
        }
    }
}

impl Setup {
    pub fn edit(mut self, from: &str, to: &str) -> Setup {
        self.edits.push((from.to_string(), to.to_string()));
        self
    }

    /// Sets an environment variable for the config.
    pub fn env(mut self, name: &str, value: &str) -> Setup {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// Adds a TOML section before `[log]` (e.g. `[auth]`).
    pub fn section(self, text: &str) -> Setup {
        self.edit("[log]", &format!("{text}\n\n[log]"))
    }

    /// Replaces a tier's model id (e.g. `gpt-5.4-nano` → `error-429`).
    pub fn tier_model(self, model: &str, replacement: &str) -> Setup {
        self.edit(
            &format!("model = \"{model}\"\n"),
            &format!("model = \"{replacement}\"\n"),
        )
    }
}

pub struct Harness {
    pub mock: MockServer,
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub gateway: Gateway,
    pub db: PathBuf,
    pub config: Config,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<ShutdownReport>>,
    _dir: tempfile::TempDir,
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::with(Setup::default()).await
    }

    pub async fn with(setup: Setup) -> Harness {
        let mock = MockServer::start(setup.mock).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        // Fast retries: the retry tests wait on real time.
        let mut text = DEFAULT_TOML.replace("retry_backoff_ms = 250", "retry_backoff_ms = 1");
        for (from, to) in &setup.edits {
            assert!(
                text.contains(from.as_str()),
                "config edit: {from:?} not found"
            );
            text = text.replace(from.as_str(), to);
        }
        let base = setup.base_url.unwrap_or_else(|| mock.base_url());
        let key = setup.api_key.clone();
        let extra = setup.env.clone();
        let env = move |k: &str| match k {
            "TIERWISE_UPSTREAM_BASE_URL" => Some(base.clone()),
            "OPENAI_API_KEY" => key.clone(),
            _ => extra.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
        };
        // Relative `log.path` resolves against the temp dir.
        let config = Config::from_toml(&text, dir.path(), &env).unwrap();
        let db = config.log.path.clone();
        let mut gateway = Gateway::new(config.clone()).unwrap();
        let otel = setup.otel_env.clone();
        let otel_env = move |k: &str| {
            otel.iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone())
        };
        if let Some(t) = tierwise_gateway::telemetry::TelemetryConfig::from_env(&otel_env).unwrap()
        {
            let telemetry =
                tierwise_gateway::telemetry::Telemetry::start(&t, &config.upstream.base_url)
                    .unwrap();
            gateway = gateway.with_telemetry(telemetry).unwrap();
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = gateway.clone();
        let task = tokio::spawn(async move {
            server
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap()
        });
        Harness {
            mock,
            addr,
            client: reqwest::Client::new(),
            gateway,
            db,
            config,
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The Prometheus text of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn chat(&self, body: &serde_json::Value) -> reqwest::Response {
        self.post("/v1/chat/completions", body).await
    }

    /// Stops the gateway (graceful: in-flight requests finish, the log is drained).
    pub async fn shutdown(&mut self) -> ShutdownReport {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Idle keep-alive connections would hold the graceful shutdown open.
        self.client = reqwest::Client::new();
        self.task.take().unwrap().await.unwrap()
    }

    /// Log rows after a flush (the gateway keeps running).
    pub async fn rows(&self) -> Vec<RequestRow> {
        let state = std::sync::Arc::clone(self.gateway.state());
        tokio::task::spawn_blocking(move || state.store.log().flush())
            .await
            .unwrap()
            .unwrap();
        read_rows(&self.db)
    }
}

pub fn read_rows(db: &Path) -> Vec<RequestRow> {
    LogReader::open(db)
        .unwrap()
        .rows(&TimeRange::all())
        .unwrap()
}

/// A one-message chat body.
pub fn user(model: &str, text: &str) -> serde_json::Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

/// USD per 1M tokens → exact cost, computed independently of tierwise_core::cost.
pub fn expected_cost(
    (input, cached_input, output): (&str, &str, &str),
    usage: &serde_json::Value,
    multiplier: &str,
) -> Decimal {
    let d = |s: &str| s.parse::<Decimal>().unwrap();
    let n = |p: &str| Decimal::from(usage.pointer(p).and_then(|v| v.as_u64()).unwrap_or(0));
    let (prompt, cached, out) = if usage.get("prompt_tokens").is_some() {
        (
            n("/prompt_tokens"),
            n("/prompt_tokens_details/cached_tokens"),
            n("/completion_tokens"),
        )
    } else {
        (
            n("/input_tokens"),
            n("/input_tokens_details/cached_tokens"),
            n("/output_tokens"),
        )
    };
    ((prompt - cached) * d(input) + cached * d(cached_input) + out * d(output)) * d(multiplier)
        / Decimal::from(1_000_000)
}

pub const NANO: (&str, &str, &str) = ("0.20", "0.02", "1.25");
pub const MINI: (&str, &str, &str) = ("0.75", "0.075", "4.50");
pub const STANDARD: (&str, &str, &str) = ("2.50", "0.25", "15.00");
pub const FLAGSHIP: (&str, &str, &str) = ("5.00", "0.50", "30.00");

pub fn header<'a>(resp: &'a reqwest::Response, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .unwrap_or_else(|| panic!("missing header {name}"))
        .to_str()
        .unwrap()
}

pub fn header_decimal(resp: &reqwest::Response, name: &str) -> Decimal {
    header(resp, name).parse().unwrap()
}

/// Runs an official SDK's end-to-end script (`command`, given the gateway's base URL as its
/// last argument) on a blocking thread and checks it passed: exit 0 and its closing line
/// `all checks passed`. `what` names the SDK in failure messages. Returns its stdout.
pub async fn run_sdk_script(mut command: std::process::Command, what: &'static str) -> String {
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("cannot run the {what} end-to-end script: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the {what} run failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
    stdout
}
