//! `layercake worker`: render workers only; no API, only `/metrics` and
//! `/healthz` when `--metrics-listen` is given.
//!
//! A worker shares the metadata store and the object store with the
//! `serve` processes (same `meta.url` and `storage.url`, or the same data
//! dir) and the same catalogue files; it claims tasks from the durable
//! queue, so adding render capacity is starting more of these. It also
//! delivers webhooks.

use crate::app::{Background, Core, Role};
use crate::config::Settings;
use crate::meta::Meta;
use anyhow::{Context, bail};
use std::sync::Arc;
use std::time::Duration;

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
            background,
            ..
        } = Core::start(&settings, Role::Worker, None).await?;
        if let Some(addr) = metrics_listen {
            serve_metrics(addr, Arc::clone(&meta), &background).await?;
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
async fn serve_metrics(addr: &str, meta: Arc<Meta>, background: &Background) -> anyhow::Result<()> {
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
        let served = crate::http::serve_worker_ops(listener, meta, handle.clone(), async move {
            stop.cancelled().await;
        })
        .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "worker metrics listener stopped");
        }
    });
    Ok(())
}
