//! The process's health, for the ops routes (`/readyz`, `/metrics`): the
//! readiness checks (the metadata store answers, the object store answers
//! or the node is only degraded, a tiny image encodes) and the gauges read
//! at scrape time (queue depth, bytes held by each cache). The handlers
//! call these instead of the stores.

use super::App;
use crate::compose::{Format, PremulImage};
use crate::error::Error;
use crate::telemetry;

/// What `/readyz` found (when it found the node ready at all).
#[derive(Debug, Clone)]
pub struct Readiness {
    /// Why the object store did not answer: the node is degraded, not
    /// unready (its memory and disk tiers still serve hits).
    pub store_error: Option<String>,
    /// The object store's state (URL, up, outbox, disk tier) and
    /// `store_error`, as the ops address shows them.
    pub store: serde_json::Value,
}

impl Readiness {
    /// `ready`, or `degraded` while the object store does not answer.
    pub fn status(&self) -> &'static str {
        if self.store_error.is_some() {
            "degraded"
        } else {
            "ready"
        }
    }
}

/// The readiness checks.
///
/// # Errors
/// 503 when the metadata store does not answer or the image encoder
/// fails (the message names which); 500 when the probe task dies.
pub async fn readiness(app: &App) -> Result<Readiness, Error> {
    app.meta()
        .ping()
        .await
        .map_err(|e| Error::unavailable(format!("metadata store: {e}")))?;
    // An unreachable object store degrades the node rather than taking it
    // out of rotation: its memory and disk tiers still serve hits, and
    // every node shares the store, so all would go unready at once.
    let store_error = app.store().probe().await.err().map(|e| e.to_string());
    let probe = PremulImage {
        width: 1,
        height: 1,
        data: vec![0, 0, 0, 255],
    };
    // Not through the compose slots: a busy node is still a ready one.
    tokio::task::spawn_blocking(move || crate::compose::encode(probe, Format::Png, None))
        .await
        .map_err(|e| Error::Internal(format!("probe task: {e}")))?
        .map_err(|e| Error::unavailable(format!("the image encoder fails: {e}")))?;
    let mut store = serde_json::to_value(app.store().status()).unwrap_or_default();
    if let Some(e) = &store_error {
        store["error"] = e.clone().into();
    }
    Ok(Readiness { store_error, store })
}

/// Sets the gauges read at scrape time: what is queued, what the caches
/// hold (memory tiers and the disk tier).
pub async fn record_gauges(app: &App) {
    app.jobs().record_queue_depth().await;
    let held = app.compositor().cache_bytes();
    for (cache, bytes) in [
        ("stand-ins", held.stand_ins),
        ("composites", held.composites),
        ("layers", held.layers),
        ("flattened", held.flattened),
    ] {
        metrics::gauge!(telemetry::CACHE_BYTES, "cache" => cache).set(bytes as f64);
    }
    if let Some(disk) = app.store().status().disk_bytes {
        metrics::gauge!(telemetry::CACHE_BYTES, "cache" => "disk").set(disk as f64);
    }
}
