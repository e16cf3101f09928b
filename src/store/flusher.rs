//! The outbox flusher: writes that waited while the object store was down
//! go to it, oldest first, when it answers again.

use super::{BlobStore, StoreError, envelope};
use crate::telemetry;
use std::time::Duration;

impl BlobStore {
    /// Whether writes wait in the outbox (without counting the disk tier,
    /// as `status` does).
    pub(super) fn outbox_waiting(&self) -> bool {
        self.inner.outbox.as_ref().is_some_and(|o| o.totals().0 > 0)
    }

    /// Writes what waits in the outbox, oldest first, until done or the
    /// store fails again. Returns how many were written.
    ///
    /// # Errors
    /// The store's error, when it failed (the rest stays for later).
    pub async fn flush_outbox(&self) -> Result<usize, StoreError> {
        let Some(ob) = &self.inner.outbox else {
            return Ok(0);
        };
        let mut written = 0;
        for (path, generation) in ob.waiting() {
            // Nothing is read while the store is taken as down.
            self.inner.breaker.admit()?;
            let Some(p) = ob.read(&path, generation).await else {
                continue;
            };
            if envelope::open(p.sealed.clone()).is_err() {
                tracing::warn!(path, "corrupt outbox entry; dropping it");
                metrics::counter!(telemetry::STORE_CORRUPT, "tier" => "outbox").increment(1);
                ob.done(&path, generation);
                continue;
            }
            match self.send(&path, p.sealed.clone(), p.create).await {
                Ok(created) => {
                    self.inner.breaker.succeeded();
                    ob.done(&path, generation);
                    if created && let Some(disk) = &self.inner.disk {
                        disk.put(&path, p.sealed).await;
                    }
                    written += 1;
                }
                Err(e @ object_store::Error::Generic { .. }) => {
                    return Err(self.inner.breaker.failed("put", &path, &e));
                }
                // Refused for this object only: the rest goes on; it stays
                // (and is logged) for an operator to look at.
                Err(e) => {
                    let _ = self.inner.breaker.failed("put", &path, &e);
                }
            }
        }
        if written > 0 {
            tracing::info!(written, "outbox flushed to the object store");
        }
        Ok(written)
    }

    /// Flushes the outbox in the background: when the store comes back,
    /// and every second while something waits. On stop, one last flush
    /// (bounded by the store's timeouts); what remains stays on disk for the
    /// next start.
    pub fn spawn_flusher(
        &self,
        tracker: &tokio_util::task::TaskTracker,
        stop: &tokio_util::sync::CancellationToken,
    ) {
        if self.inner.outbox.is_none() {
            return;
        }
        let store = self.clone();
        let stop = stop.clone();
        tracker.spawn(async move {
            loop {
                let waiting = store.outbox_waiting();
                if waiting && let Err(e) = store.flush_outbox().await {
                    tracing::debug!(error = %e, "outbox flush deferred");
                }
                // Recovery is noticed even with nothing waiting (workers
                // claim no task while the store is down).
                if !store.is_up() && store.probe().await.is_ok() {
                    continue;
                }
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = store.inner.breaker.wake.notified() => {}
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
            if store.outbox_waiting() {
                match store.flush_outbox().await {
                    Ok(n) => tracing::info!(written = n, "outbox flushed at shutdown"),
                    Err(e) => tracing::warn!(error = %e, left = store.status().outbox_objects, "outbox kept on disk for the next start"),
                }
            }
        });
    }
}
