//! Storage tiers: bounded memory caches over an object store.
//!
//! - [`MemoryTiers`]: two moka caches weighed in bytes, one for encoded
//!   composites (what a hit serves) and one for decoded layers (what a miss
//!   composes from; one layer serves thousands of configurations).
//! - [`BlobStore`]: layers, composites and uploads by path in an object
//!   store (`file://` under the data dir by default, `s3://` in
//!   production, `memory://` for tests), behind:
//!   - integrity: every object is sealed with the blake3 of its bytes
//!     ([`envelope`]); a read that does not verify is deleted, counted and
//!     reported as absent, so the caller fetches or renders it again;
//!   - an optional local [`DiskTier`] (bounded LRU, survives restarts);
//!   - fault handling: timeouts and bounded retries on every request; after
//!     a request fails for good the store is taken as down for a cooldown
//!     (reads fail at once, 503), and writes wait in the [`Outbox`] until
//!     the flusher can write them.
//! - [`Ledger`]: what the composite tier reports (writes, reads) to
//!   whoever keeps its byte budget.
//!
//! Only this module imports `object_store`; its errors are translated into
//! [`StoreError`] here. Deciding what to render or compose is `pipeline`'s.

mod breaker;
mod disk;
pub mod envelope;
mod flusher;
mod ledger;
mod listing;
mod memory;
mod outbox;
mod paths;
mod remote;
#[cfg(test)]
mod tests;

pub use disk::DiskTier;
pub use ledger::Ledger;
pub use memory::{Budgets, Encoded, MemoryTiers};
pub use outbox::Outbox;
pub use paths::{composite_generation, composite_path, layer_generation, layer_path};
pub use remote::{S3Options, Timeouts};

use crate::telemetry;
use breaker::Breaker;
use bytes::Bytes;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, path::Path as ObjectPath};
use paths::{content_addressed, kind_of};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("bad storage url \"{0}\": {1}")]
    BadUrl(String, String),
    #[error("{0}")]
    Backend(String),
    #[error("unreachable, retrying in the background ({0})")]
    Down(String),
    #[error("{0}")]
    Full(String),
}

impl StoreError {
    /// Whether a retry might succeed (I/O trouble rather than a bad setting).
    pub fn is_transient(&self) -> bool {
        !matches!(self, StoreError::BadUrl(..))
    }
}

fn backend(e: &object_store::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// How to open a [`BlobStore`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub url: String,
    pub s3: S3Options,
    pub timeouts: Timeouts,
    /// How long the store is taken as down after a request failed for good.
    pub down_cooldown: Duration,
    /// Where writes wait while the store is down (`None`: they fail).
    pub outbox: Option<(PathBuf, u64)>,
    /// The local disk tier's folder and byte budget (`None`: no tier).
    pub disk: Option<(PathBuf, u64)>,
}

impl StoreOptions {
    /// Just a URL: no outbox, no disk tier, default timeouts.
    pub fn url(url: &str) -> StoreOptions {
        StoreOptions {
            url: url.to_string(),
            s3: S3Options::default(),
            timeouts: Timeouts::default(),
            down_cooldown: Duration::from_secs(2),
            outbox: None,
            disk: None,
        }
    }
}

/// What `/readyz` and the metrics report about the store.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoreStatus {
    pub url: String,
    pub up: bool,
    pub outbox_objects: usize,
    pub outbox_bytes: u64,
    pub disk_bytes: Option<u64>,
}

/// What [`BlobStore::calls`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreCalls {
    pub calls: u64,
    pub requests: u64,
}

/// The object store with its integrity checks, disk tier and outbox.
/// Cheap to clone.
#[derive(Clone)]
pub struct BlobStore {
    inner: Arc<Shared>,
}

struct Shared {
    remote: Arc<dyn ObjectStore>,
    url: String,
    disk: Option<DiskTier>,
    outbox: Option<Outbox>,
    breaker: Breaker,
    /// Calls of this store's reads and writes (whichever tier answers).
    calls: AtomicU64,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlobStore({})", self.inner.url)
    }
}

impl BlobStore {
    /// Opens the store, its disk tier and its outbox.
    ///
    /// # Errors
    /// [`StoreError::BadUrl`] for a bad URL or a local folder that cannot be
    /// created.
    pub fn open(o: &StoreOptions) -> Result<BlobStore, StoreError> {
        let remote = remote::open(&o.url, &o.s3, o.timeouts)?;
        let local = |what: &str, dir: &std::path::Path, e: std::io::Error| {
            StoreError::BadUrl(o.url.clone(), format!("{what} {}: {e}", dir.display()))
        };
        // A folder another process of this data dir owns: run without it.
        let shared = |what: &str, e: &std::io::Error| {
            tracing::warn!(error = %e, "{what}: another process owns it; this one runs without");
        };
        let disk = match &o.disk {
            Some((dir, bytes)) if *bytes > 0 => match DiskTier::open(dir, *bytes) {
                Ok(d) => Some(d),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    shared("disk tier", &e);
                    None
                }
                Err(e) => return Err(local("disk tier", dir, e)),
            },
            _ => None,
        };
        let outbox = match &o.outbox {
            Some((dir, bytes)) if *bytes > 0 => match Outbox::open(dir, *bytes) {
                Ok(d) => Some(d),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    shared("outbox", &e);
                    None
                }
                Err(e) => return Err(local("outbox", dir, e)),
            },
            _ => None,
        };
        metrics::gauge!(telemetry::STORE_UP).set(1.0);
        Ok(BlobStore {
            inner: Arc::new(Shared {
                remote,
                url: o.url.clone(),
                disk,
                outbox,
                breaker: Breaker::new(&o.url, o.down_cooldown),
                calls: AtomicU64::new(0),
            }),
        })
    }

    /// Opens a store with nothing but a URL (tests, tools).
    ///
    /// # Errors
    /// As [`BlobStore::open`].
    pub fn open_url(url: &str) -> Result<BlobStore, StoreError> {
        BlobStore::open(&StoreOptions::url(url))
    }

    pub fn url(&self) -> &str {
        &self.inner.url
    }

    pub fn is_up(&self) -> bool {
        self.inner.breaker.is_up()
    }

    /// How often this store was called (reads, writes, checks, lists,
    /// whichever tier answered) and how many requests reached the object
    /// store: what a test of the hit path or of the breaker counts.
    pub fn calls(&self) -> StoreCalls {
        StoreCalls {
            calls: self.inner.calls.load(Ordering::Relaxed),
            requests: self.inner.breaker.requests(),
        }
    }

    fn count(&self) {
        self.inner.calls.fetch_add(1, Ordering::Relaxed);
        telemetry::note_store_io();
    }

    /// Whether a write made now would be kept: the store is up, or the
    /// outbox has room (under 90% of its budget).
    pub fn can_defer(&self) -> bool {
        self.is_up() || self.inner.outbox.as_ref().is_some_and(Outbox::has_room)
    }

    /// Whether the store answered its last request.
    /// Drops this node's disk-tier copy of `path` (the object itself is
    /// untouched): another node replaced it.
    pub async fn forget_cached(&self, path: &str) {
        if let Some(disk) = &self.inner.disk {
            disk.remove(path).await;
        }
    }

    /// The body stored at `path`, verified; `None` when absent (or corrupt,
    /// in which case it has been deleted).
    ///
    /// # Errors
    /// [`StoreError::Down`] or [`StoreError::Backend`] when the store cannot
    /// say.
    pub async fn get(&self, path: &str) -> Result<Option<Bytes>, StoreError> {
        self.count();
        if let Some(ob) = &self.inner.outbox
            && let Some(body) = ob.get(path).await
        {
            return Ok(Some(body));
        }
        if let Some(disk) = &self.inner.disk {
            let hit = disk.get(path).await;
            telemetry::cache_lookup(kind_of(path), "disk", hit.is_some());
            if hit.is_some() {
                return Ok(hit);
            }
        }
        self.inner.breaker.admit()?;
        let location = ObjectPath::from(path);
        let read = match self.inner.remote.get(&location).await {
            Ok(r) => r.bytes().await,
            Err(e) => Err(e),
        };
        let sealed = match read {
            Ok(b) => b,
            Err(object_store::Error::NotFound { .. }) => {
                self.inner.breaker.succeeded();
                return Ok(None);
            }
            Err(e) => return Err(self.inner.breaker.failed("get", path, &e)),
        };
        self.inner.breaker.succeeded();
        match envelope::open(sealed.clone()) {
            Ok(body) => {
                // Awaited, not spawned: a copy landing after a newer write
                // of the same path would outlive it on disk.
                if let Some(disk) = &self.inner.disk {
                    disk.put(path, sealed).await;
                }
                Ok(Some(body))
            }
            // An upload stored before objects were sealed: its path is its
            // content address, which verifies it just as well.
            Err(envelope::Corrupt::NoHeader | envelope::Corrupt::Short(_))
                if content_addressed(path, &sealed) =>
            {
                Ok(Some(sealed))
            }
            Err(e) => {
                tracing::warn!(path, error = %e, "corrupt object in the object store; deleting it so that it is made again");
                metrics::counter!(telemetry::STORE_CORRUPT, "tier" => "store").increment(1);
                if let Err(e) = self.inner.remote.delete(&location).await {
                    tracing::warn!(path, error = %e, "cannot delete the corrupt object");
                }
                Ok(None)
            }
        }
    }

    /// Stores `body` at `path`, replacing what is there.
    ///
    /// # Errors
    /// When the store failed and the outbox cannot keep the write.
    pub async fn put(&self, path: &str, body: Bytes) -> Result<(), StoreError> {
        self.write(path, envelope::seal(&body), false)
            .await
            .map(|_| ())
    }

    /// Stores `body` at `path` if the store is up; while it is down the
    /// write is dropped rather than kept in the outbox (for objects that
    /// are cheap to make again, such as composites).
    ///
    /// # Errors
    /// When the store is down or fails.
    pub async fn put_cached(&self, path: &str, body: Bytes) -> Result<(), StoreError> {
        self.count();
        self.inner.breaker.admit()?;
        let sealed = envelope::seal(&body);
        match self.send(path, sealed.clone(), false).await {
            Ok(_) => {
                self.inner.breaker.succeeded();
                if let Some(disk) = &self.inner.disk {
                    disk.put(path, sealed).await;
                }
                Ok(())
            }
            Err(e) => Err(self.inner.breaker.failed("put", path, &e)),
        }
    }

    /// Stores `body` only if nothing is at `path` yet; `false` when
    /// something was. While the store is down the write waits in the outbox
    /// (and is dropped there if, once written, something was already there).
    ///
    /// # Errors
    /// When the store failed and the outbox cannot keep the write.
    pub async fn put_new(&self, path: &str, body: Bytes) -> Result<bool, StoreError> {
        self.write(path, envelope::seal(&body), true).await
    }

    async fn write(&self, path: &str, sealed: Bytes, create: bool) -> Result<bool, StoreError> {
        self.count();
        // A write of a path that already waits in the outbox queues behind
        // it (replacing it), so the store never ends up with the older one.
        if let Some(ob) = &self.inner.outbox
            && ob.contains(path)
        {
            if create {
                return Ok(false);
            }
            ob.put(path, &sealed, create).await?;
            self.inner.breaker.wake.notify_one();
            return Ok(true);
        }
        let error = match self.inner.breaker.admit() {
            Ok(()) => match self.send(path, sealed.clone(), create).await {
                Ok(created) => {
                    self.inner.breaker.succeeded();
                    if created && let Some(disk) = &self.inner.disk {
                        disk.put(path, sealed).await;
                    }
                    return Ok(created);
                }
                Err(e) => self.inner.breaker.failed("put", path, &e),
            },
            Err(e) => e,
        };
        let Some(ob) = &self.inner.outbox else {
            return Err(error);
        };
        if !matches!(error, StoreError::Down(_)) && self.is_up() {
            // Refused (not unreachable): waiting would not help.
            return Err(error);
        }
        ob.put(path, &sealed, create).await?;
        tracing::warn!(path, error = %error, "object store write deferred to the outbox");
        Ok(true)
    }

    /// One write to the object store; `Ok(false)` when `create` found an
    /// object already there.
    async fn send(
        &self,
        path: &str,
        sealed: Bytes,
        create: bool,
    ) -> Result<bool, object_store::Error> {
        let mode = if create {
            object_store::PutMode::Create
        } else {
            object_store::PutMode::Overwrite
        };
        let opts = object_store::PutOptions {
            mode,
            ..Default::default()
        };
        match self
            .inner
            .remote
            .put_opts(
                &ObjectPath::from(path),
                PutPayload::from_bytes(sealed),
                opts,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether an object is at `path`, without reading it.
    ///
    /// # Errors
    /// [`StoreError::Down`] or [`StoreError::Backend`] when the store cannot
    /// say.
    pub async fn exists(&self, path: &str) -> Result<bool, StoreError> {
        self.count();
        if self.inner.outbox.as_ref().is_some_and(|o| o.contains(path)) {
            return Ok(true);
        }
        self.inner.breaker.admit()?;
        match self.inner.remote.head(&ObjectPath::from(path)).await {
            Ok(_) => {
                self.inner.breaker.succeeded();
                Ok(true)
            }
            Err(object_store::Error::NotFound { .. }) => {
                self.inner.breaker.succeeded();
                Ok(false)
            }
            Err(e) => Err(self.inner.breaker.failed("head", path, &e)),
        }
    }

    /// Deletes `path` everywhere (store, disk tier, outbox); absent is fine.
    ///
    /// # Errors
    /// When the store refuses.
    pub async fn delete(&self, path: &str) -> Result<(), StoreError> {
        self.count();
        if let Some(ob) = &self.inner.outbox {
            ob.forget(path);
        }
        if let Some(disk) = &self.inner.disk {
            disk.remove(path).await;
        }
        self.inner.breaker.admit()?;
        match self.inner.remote.delete(&ObjectPath::from(path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                self.inner.breaker.succeeded();
                Ok(())
            }
            Err(e) => Err(self.inner.breaker.failed("delete", path, &e)),
        }
    }
}
