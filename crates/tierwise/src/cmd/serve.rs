//! `tierwise serve [--config FILE] [--listen ADDR:PORT]`: the gateway.

use std::sync::Arc;

use anyhow::Context;
use tierwise_gateway::Gateway;
use tierwise_gateway::telemetry::{Telemetry, TelemetryConfig};
use tierwise_gateway::tools::ToolSearchShaper;
use tokio::net::TcpListener;

use crate::cli::ServeArgs;
use crate::output::Status;

/// Logs to stderr; `RUST_LOG` filters (default `info`).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(crate::output::color())
        .try_init();
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down: finishing in-flight requests, flushing the request log");
}

pub fn run(args: ServeArgs) -> anyhow::Result<Status> {
    init_tracing();
    let mut config = super::load_config(args.config.as_deref())?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    let policy = super::policy(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tierwise")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        tierwise_gateway::app::check_listen(&config, addr)?;
        let upstream = config.upstream.base_url.clone();
        let log = match &config.store.url {
            Some(url) => tierwise_store::postgres::redact(url.expose()),
            None => config.log.path.display().to_string(),
        };
        let tools = Arc::new(
            ToolSearchShaper::try_from_config(&config.tools).context("tool search model")?,
        );
        tierwise_tools::warm_up();
        let telemetry = TelemetryConfig::from_env(&|k| std::env::var(k).ok())
            .context("OpenTelemetry")?
            .map(|t| Telemetry::start(&t, &upstream))
            .transpose()
            .context("OpenTelemetry")?;
        let mut gateway =
            Gateway::with_parts(config, policy, tools).context("cannot start the gateway")?;
        if let Some(t) = telemetry {
            tracing::info!(
                endpoint = t.endpoint(),
                "OpenTelemetry traces exported (OTLP/HTTP)"
            );
            gateway = gateway.with_telemetry(t)?;
        }
        tracing::info!(
            %upstream,
            request_log = %log,
            "tierwise gateway listening on http://{addr}/v1"
        );
        let report = gateway.serve(listener, shutdown_signal()).await?;
        tracing::info!(
            rows_written = report.log.written,
            rows_failed = report.log.failed,
            "stopped; request log flushed"
        );
        Ok(Status::Success)
    })
}
