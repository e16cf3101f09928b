//! `layercake worker`: render workers only; no API, only `/metrics` and
//! `/healthz` when `--metrics-listen` is given.
//!
//! With `--server URL --token T` it is a remote render node
//! (`jobs::node`): it pulls tasks from that server over the worker
//! protocol and needs no store at all, only its `[render]` settings.
//!
//! A worker shares the metadata store and the object store with the
//! `serve` processes (same `meta.url` and `storage.url`, or the same data
//! dir) and the same catalogue files; it claims tasks from the durable
//! queue, so adding render capacity is starting more of these. It also
//! delivers webhooks.

use crate::app::{Background, Core, Role};
use crate::config::Settings;
use crate::jobs::Jobs;
use anyhow::{Context, bail};
use std::sync::Arc;
use std::time::Duration;

/// A remote render node's connection to its server.
#[derive(Debug, Clone, clap::Args)]
pub struct RemoteArgs {
    /// Pull tasks from this serve process over HTTP(S), e.g.
    /// https://render.example.com (a remote render node).
    #[arg(long, requires = "token")]
    pub server: Option<String>,
    /// The node's worker token (`layercake token create --worker`); also
    /// read from LAYERCAKE_WORKER_TOKEN.
    #[arg(long, env = "LAYERCAKE_WORKER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Only tasks of this asset (repeatable); default: every asset drawn
    /// by a backend this node has.
    #[arg(long = "asset", requires = "server")]
    pub assets: Vec<uuid::Uuid>,
}

/// A remote render node, until SIGTERM/Ctrl-C (a render under way gets up
/// to one lease to finish and upload).
pub fn run_remote(
    settings: Settings,
    metrics_listen: Option<&str>,
    remote: RemoteArgs,
) -> anyhow::Result<()> {
    super::serve::init_tracing(&settings);
    let (Some(server), Some(token)) = (remote.server, remote.token) else {
        bail!("a remote worker needs --server URL and --token T");
    };
    let renderers = crate::render::Renderers::from_settings(&settings.render, None)
        .map_err(|e| anyhow::anyhow!("render backends: {e}"))?;
    let node = Arc::new(
        crate::jobs::node::Node::new(
            crate::jobs::node::NodeSettings {
                server,
                token,
                slots: Settings::threads(settings.render.concurrency),
                claim_wait: Duration::from_secs(settings.jobs.remote_claim_wait_secs),
                assets: (!remote.assets.is_empty()).then_some(remote.assets),
            },
            renderers,
        )
        .map_err(|e| anyhow::anyhow!(e))?,
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let background = Background::default();
        if let Some(addr) = metrics_listen {
            serve_metrics(addr, None, &background).await?;
        }
        node.spawn(background.tracker(), background.token());
        super::serve::shutdown_signal().await;
        background
            .stop(Duration::from_secs(settings.jobs.lease_secs))
            .await;
        tracing::info!("stopped");
        Ok(())
    })
}

pub fn run(settings: Settings, metrics_listen: Option<&str>) -> anyhow::Result<()> {
    super::serve::init_tracing(&settings);
    if settings.storage.url == "memory://" || settings.meta.url.contains(":memory:") {
        bail!(
            "a worker shares its stores with serve processes; in-memory stores (storage.url = \"memory://\", meta.url = \"sqlite::memory:\") belong to one process"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let Core {
            meta,
            store,
            jobs,
            background,
            ..
        } = Core::start(&settings, Role::Worker, None).await?;
        if let Some(addr) = metrics_listen {
            serve_metrics(addr, Some(jobs), &background).await?;
        }
        tracing::info!(store = store.url(), "layercake worker running");
        super::serve::shutdown_signal().await;
        background
            .stop(Duration::from_secs(settings.jobs.lease_secs))
            .await;
        meta.close().await;
        tracing::info!("stopped");
        Ok(())
    })
}

/// `/metrics` and `/healthz` of a worker process, until shutdown: the
/// render counters and queue wait are recorded where renders run.
async fn serve_metrics(
    addr: &str,
    jobs: Option<Arc<Jobs>>,
    background: &Background,
) -> anyhow::Result<()> {
    let handle = crate::telemetry::handle()
        .context("another metrics recorder is installed in this process")?;
    crate::telemetry::spawn_upkeep(background.tracker(), background.token());
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("metrics listen address {addr}"))?;
    let bound = listener.local_addr()?;
    tracing::info!(addr = %bound, "worker metrics on http://{bound}/metrics");
    let stop = background.token().clone();
    background.tracker().spawn(async move {
        let served = crate::http::serve_worker_ops(listener, jobs, handle.clone(), async move {
            stop.cancelled().await;
        })
        .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "worker metrics listener stopped");
        }
    });
    Ok(())
}
