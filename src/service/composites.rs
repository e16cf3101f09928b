//! The composite tier's byte budget (`storage.composite_budget_bytes`).
//!
//! Every distinct size, format or crop of every configuration is a
//! composite, and each is kept in the object store so that the next
//! request (on any node) is a hit. Without a bound anyone could fill the
//! bucket by asking for new ones. Composites are cheap to make again from
//! their layers, so past the budget the least recently used are deleted;
//! layers (the expensive part) never are.
//!
//! The compositor reports each composite it writes and each it reads back
//! from the store ([`Ledger`]); those reports are buffered in memory and
//! written to the metadata store in batches (one transaction a second at
//! most), never on the request path. A sweep (every
//! `storage.composite_sweep_secs`) adds up the ledger and, past the
//! budget, takes the oldest off it and deletes their objects, down to 90%
//! of the budget. A row is taken off only if it was not used since it was
//! listed, so a composite read meanwhile stays; an object the store does
//! not delete goes back on the ledger. Several processes may sweep one
//! ledger: each row is taken off by one of them, and each re-reads the
//! total after every batch of 256, so together they overshoot the 90% by
//! at most a batch each.
//!
//! What the ledger does not see: reads served from memory (a composite hot
//! in memory can lose its stored copy; when memory lets it go too, the
//! next request composes it again), and composites stored before the
//! ledger existed (they stay until `gc` removes their version).

use crate::error::Error;
use crate::meta::Meta;
use crate::store::{BlobStore, Ledger};
use crate::telemetry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Reads buffered at most; past this, reads of other paths are dropped
/// (writes are kept: they are what the budget counts).
const MAX_BUFFERED: usize = 100_000;
/// Reports written per transaction.
const FLUSH_BATCH: usize = 500;
/// Rows taken from the ledger per query while evicting.
const EVICT_BATCH: i64 = 256;
/// Objects deleted per sweep at most (the next sweep goes on).
const MAX_EVICTIONS_PER_SWEEP: u64 = 20_000;

/// What one sweep found and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sweep {
    /// In the ledger before evicting.
    pub objects: i64,
    pub bytes: i64,
    pub evicted: u64,
    pub evicted_bytes: u64,
}

/// Reports not yet in the ledger, with when they happened (`Meta::now`).
#[derive(Default)]
struct Buffer {
    written: HashMap<String, (u64, i64)>,
    read: HashMap<String, i64>,
}

/// Keeps the composites in the object store within a byte budget.
pub struct CompositeBudget {
    meta: Arc<Meta>,
    store: BlobStore,
    budget: u64,
    buffer: Mutex<Buffer>,
}

impl std::fmt::Debug for CompositeBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CompositeBudget({} bytes)", self.budget)
    }
}

impl Ledger for CompositeBudget {
    fn written(&self, path: &str, bytes: u64) {
        let now = self.meta.now();
        let mut b = self
            .buffer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        b.read.remove(path);
        b.written.insert(path.to_string(), (bytes, now));
    }

    fn read(&self, path: &str) {
        let now = self.meta.now();
        let mut b = self
            .buffer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(w) = b.written.get_mut(path) {
            w.1 = now;
        } else if b.read.len() < MAX_BUFFERED || b.read.contains_key(path) {
            b.read.insert(path.to_string(), now);
        }
    }
}

impl CompositeBudget {
    pub fn new(meta: Arc<Meta>, store: BlobStore, budget: u64) -> CompositeBudget {
        CompositeBudget {
            meta,
            store,
            budget,
            buffer: Mutex::default(),
        }
    }

    /// Writes the buffered reports to the ledger.
    ///
    /// # Errors
    /// The metadata store's; the reports stay buffered for the next try.
    pub async fn flush(&self) -> Result<(), Error> {
        let b = std::mem::take(
            &mut *self
                .buffer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        // In path order, so that two processes' transactions lock the
        // same rows in the same order (no deadlock between them).
        let mut written: Vec<(String, u64, i64)> =
            b.written.into_iter().map(|(p, (n, t))| (p, n, t)).collect();
        written.sort_unstable();
        let mut read: Vec<(String, i64)> = b.read.into_iter().collect();
        read.sort_unstable();
        for (i, chunk) in written.chunks(FLUSH_BATCH).enumerate() {
            if let Err(e) = self.meta.note_composites(chunk, &[]).await {
                self.requeue(&written[i * FLUSH_BATCH..]);
                return Err(e.into());
            }
        }
        for chunk in read.chunks(FLUSH_BATCH) {
            // Lost reads only make a composite look older than it is.
            self.meta.note_composites(&[], chunk).await?;
        }
        Ok(())
    }

    /// Puts writes that did not reach the ledger back (newer reports of
    /// the same path win).
    fn requeue(&self, written: &[(String, u64, i64)]) {
        let mut b = self
            .buffer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (p, n, t) in written {
            b.written.entry(p.clone()).or_insert((*n, *t));
        }
    }

    /// Flushes, adds up the ledger and, past the budget, evicts the least
    /// recently used down to 90% of it.
    ///
    /// # Errors
    /// The metadata store's. An object the store does not delete (it is
    /// down, or refuses) goes back on the ledger, and the sweep stops.
    pub async fn sweep(&self) -> Result<Sweep, Error> {
        self.flush().await?;
        let (objects, bytes) = self.meta.composite_totals().await?;
        let mut s = Sweep {
            objects,
            bytes,
            ..Sweep::default()
        };
        let mut total = u64::try_from(bytes).unwrap_or(0);
        let target = self.budget - self.budget / 10;
        if self.budget == 0 || total <= self.budget {
            self.gauges(objects, bytes);
            return Ok(s);
        }
        let mut stopped = false;
        while total > target && s.evicted < MAX_EVICTIONS_PER_SWEEP && !stopped {
            if !self.store.is_up() {
                // Nothing could be deleted: keep the ledger as it is.
                break;
            }
            let oldest = self.meta.oldest_composites(EVICT_BATCH).await?;
            let mut taken = 0;
            for c in oldest {
                if total <= target || s.evicted >= MAX_EVICTIONS_PER_SWEEP {
                    break;
                }
                if !self.meta.evict_composite(&c).await? {
                    continue;
                }
                if let Err(e) = self.store.delete(&c.path).await {
                    tracing::warn!(path = %c.path, error = %e, "composite not evicted: the object store did not delete it; it stays counted");
                    self.meta.restore_composite(&c).await?;
                    stopped = true;
                    break;
                }
                taken += 1;
                let n = u64::try_from(c.bytes).unwrap_or(0);
                total = total.saturating_sub(n);
                s.evicted += 1;
                s.evicted_bytes += n;
            }
            if taken == 0 {
                // Nothing left, or every row listed was used meanwhile.
                break;
            }
            // Other processes may sweep the same ledger at the same time:
            // each goes on only while the total is still over the target,
            // so together they overshoot by at most a batch each.
            total = u64::try_from(self.meta.composite_totals().await?.1).unwrap_or(0);
        }
        metrics::counter!(telemetry::COMPOSITES_EVICTED).increment(s.evicted);
        tracing::info!(
            evicted = s.evicted,
            bytes = s.evicted_bytes,
            left = total,
            budget = self.budget,
            "composites evicted to keep the object store within its budget"
        );
        let (objects, bytes) = self.meta.composite_totals().await?;
        self.gauges(objects, bytes);
        Ok(s)
    }

    fn gauges(&self, objects: i64, bytes: i64) {
        metrics::gauge!(telemetry::STORE_COMPOSITES, "unit" => "objects").set(objects as f64);
        metrics::gauge!(telemetry::STORE_COMPOSITES, "unit" => "bytes").set(bytes as f64);
    }

    /// Flushes every second and sweeps every `sweep` until `stop`; one
    /// last flush then.
    pub fn spawn(
        self: &Arc<Self>,
        sweep: Duration,
        tracker: &tokio_util::task::TaskTracker,
        stop: &tokio_util::sync::CancellationToken,
    ) {
        let this = Arc::clone(self);
        let stop = stop.clone();
        tracker.spawn(async move {
            let flush_every = sweep.min(Duration::from_secs(1));
            let mut next_sweep = tokio::time::Instant::now() + sweep;
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(flush_every) => {}
                }
                let result = if tokio::time::Instant::now() >= next_sweep {
                    next_sweep = tokio::time::Instant::now() + sweep;
                    this.sweep().await.map(|_| ())
                } else {
                    this.flush().await
                };
                if let Err(e) = result {
                    tracing::warn!(error = %e, "composite ledger not updated; trying again");
                }
            }
            if let Err(e) = this.flush().await {
                tracing::warn!(error = %e, "composite ledger not flushed at shutdown");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[tokio::test]
    async fn a_sweep_evicts_the_least_recently_used_down_to_ninety_percent() {
        let meta = Arc::new(Meta::open("sqlite::memory:", 1).await.unwrap());
        let store = BlobStore::open_url("memory://").unwrap();
        let budget = CompositeBudget::new(Arc::clone(&meta), store.clone(), 1000);
        let path = |i: usize| format!("composites/a/v1e0/00/{i}.png");
        for i in 0..10 {
            store
                .put(&path(i), Bytes::from(vec![0u8; 150]))
                .await
                .unwrap();
            budget.written(&path(i), 150);
        }
        // Reads make 0 and 1 the most recent: 0 before the writes reach
        // the ledger, 1 after (through the ledger's UPDATE).
        budget.read(&path(0));
        budget.flush().await.unwrap();
        budget.read(&path(1));
        store
            .put("layers/a/v1/00/k.png", Bytes::from_static(b"layer"))
            .await
            .unwrap();
        let s = budget.sweep().await.unwrap();
        // 1500 bytes, budget 1000: down to 900, so 4 of 150 bytes go.
        assert_eq!((s.objects, s.bytes), (10, 1500));
        assert_eq!((s.evicted, s.evicted_bytes), (4, 600));
        for i in 2..6 {
            assert!(!store.exists(&path(i)).await.unwrap(), "{i} was the oldest");
        }
        for i in [0, 1, 6, 7, 8, 9] {
            assert!(store.exists(&path(i)).await.unwrap(), "{i} stays");
        }
        assert!(
            store.exists("layers/a/v1/00/k.png").await.unwrap(),
            "layers stay"
        );
        assert_eq!(meta.composite_totals().await.unwrap(), (6, 900));
        assert_eq!(
            budget.sweep().await.unwrap().evicted,
            0,
            "within the budget"
        );
    }
}
