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

mod disk;
pub mod envelope;
mod ledger;
mod memory;
mod outbox;
mod remote;

pub use disk::DiskTier;
pub use ledger::Ledger;
pub use memory::{Budgets, Encoded, MemoryTiers};
pub use outbox::Outbox;
pub use remote::{S3Options, Timeouts};

use crate::compose::Format;
use crate::keys::Key;
use crate::telemetry;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, path::Path as ObjectPath};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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
    cooldown: Duration,
    /// Milliseconds since `epoch` until which the store is taken as down;
    /// 0 while it is up.
    down_until: AtomicU64,
    epoch: Instant,
    wake: tokio::sync::Notify,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlobStore({})", self.inner.url)
    }
}

/// Whether `path` is `files/<aa>/blake3-<hex of body>` (an upload's
/// content address) and `body` hashes to it.
fn content_addressed(path: &str, body: &[u8]) -> bool {
    path.starts_with("files/")
        && path
            .rsplit('/')
            .next()
            .and_then(|name| name.strip_prefix("blake3-"))
            .is_some_and(|hex| hex == blake3::hash(body).to_hex().as_str())
}

/// `layers`, `composites` or `files`: the first segment, for metrics.
fn kind_of(path: &str) -> &'static str {
    match path.split('/').next() {
        Some("layers") => "layer",
        Some("composites") => "composite",
        _ => "file",
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
                cooldown: o.down_cooldown,
                down_until: AtomicU64::new(0),
                epoch: Instant::now(),
                wake: tokio::sync::Notify::new(),
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

    fn now_ms(&self) -> u64 {
        u64::try_from(self.inner.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }

    /// Whether a request may go to the store now: yes while it is up; while
    /// it is down, only one probe per cooldown.
    fn admit(&self) -> Result<(), StoreError> {
        let until = self.inner.down_until.load(Ordering::Acquire);
        if until == 0 {
            return Ok(());
        }
        let now = self.now_ms();
        let next = now + u64::try_from(self.inner.cooldown.as_millis()).unwrap_or(u64::MAX / 2);
        if now >= until
            && self
                .inner
                .down_until
                .compare_exchange(until, next, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            return Ok(());
        }
        Err(StoreError::Down(format!(
            "the object store {} did not answer",
            self.inner.url
        )))
    }

    fn succeeded(&self) {
        if self.inner.down_until.swap(0, Ordering::AcqRel) != 0 {
            tracing::info!(store = %self.inner.url, "the object store answers again");
            metrics::gauge!(telemetry::STORE_UP).set(1.0);
            self.inner.wake.notify_one();
        }
    }

    fn failed(&self, op: &'static str, path: &str, e: &object_store::Error) -> StoreError {
        metrics::counter!(telemetry::STORE_ERRORS, "op" => op).increment(1);
        // Only what says "the store is not answering" (connection errors,
        // timeouts, 5xx, 429: object_store's `Generic` after its retries)
        // takes it down; a refusal about one request (permissions, a
        // precondition, an unsupported operation) is that request's error.
        if !matches!(e, object_store::Error::Generic { .. }) {
            tracing::warn!(store = %self.inner.url, op, path, error = %e, "object store request refused");
            return backend(e);
        }
        let next = self.now_ms() + u64::try_from(self.inner.cooldown.as_millis()).unwrap_or(0);
        if self.inner.down_until.swap(next, Ordering::AcqRel) == 0 {
            tracing::error!(store = %self.inner.url, op, path, error = %e, "the object store failed; taking it as down");
            metrics::gauge!(telemetry::STORE_UP).set(0.0);
        }
        backend(e)
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

    pub fn is_up(&self) -> bool {
        self.inner.down_until.load(Ordering::Acquire) == 0
    }

    /// The body stored at `path`, verified; `None` when absent (or corrupt,
    /// in which case it has been deleted).
    ///
    /// # Errors
    /// [`StoreError::Down`] or [`StoreError::Backend`] when the store cannot
    /// say.
    pub async fn get(&self, path: &str) -> Result<Option<Bytes>, StoreError> {
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
        self.admit()?;
        let location = ObjectPath::from(path);
        let read = match self.inner.remote.get(&location).await {
            Ok(r) => r.bytes().await,
            Err(e) => Err(e),
        };
        let sealed = match read {
            Ok(b) => b,
            Err(object_store::Error::NotFound { .. }) => {
                self.succeeded();
                return Ok(None);
            }
            Err(e) => return Err(self.failed("get", path, &e)),
        };
        self.succeeded();
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
        self.admit()?;
        let sealed = envelope::seal(&body);
        match self.send(path, sealed.clone(), false).await {
            Ok(_) => {
                self.succeeded();
                if let Some(disk) = &self.inner.disk {
                    disk.put(path, sealed).await;
                }
                Ok(())
            }
            Err(e) => Err(self.failed("put", path, &e)),
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
        // A write of a path that already waits in the outbox queues behind
        // it (replacing it), so the store never ends up with the older one.
        if let Some(ob) = &self.inner.outbox
            && ob.contains(path)
        {
            if create {
                return Ok(false);
            }
            ob.put(path, &sealed, create).await?;
            self.inner.wake.notify_one();
            return Ok(true);
        }
        let error = match self.admit() {
            Ok(()) => match self.send(path, sealed.clone(), create).await {
                Ok(created) => {
                    self.succeeded();
                    if created && let Some(disk) = &self.inner.disk {
                        disk.put(path, sealed).await;
                    }
                    return Ok(created);
                }
                Err(e) => self.failed("put", path, &e),
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
        if self.inner.outbox.as_ref().is_some_and(|o| o.contains(path)) {
            return Ok(true);
        }
        self.admit()?;
        match self.inner.remote.head(&ObjectPath::from(path)).await {
            Ok(_) => {
                self.succeeded();
                Ok(true)
            }
            Err(object_store::Error::NotFound { .. }) => {
                self.succeeded();
                Ok(false)
            }
            Err(e) => Err(self.failed("head", path, &e)),
        }
    }

    /// Deletes `path` everywhere (store, disk tier, outbox); absent is fine.
    ///
    /// # Errors
    /// When the store refuses.
    pub async fn delete(&self, path: &str) -> Result<(), StoreError> {
        if let Some(ob) = &self.inner.outbox {
            ob.forget(path);
        }
        if let Some(disk) = &self.inner.disk {
            disk.remove(path).await;
        }
        self.admit()?;
        match self.inner.remote.delete(&ObjectPath::from(path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                self.succeeded();
                Ok(())
            }
            Err(e) => Err(self.failed("delete", path, &e)),
        }
    }

    /// Every object under `prefix`: `(path, bytes)`, sizes as stored.
    ///
    /// # Errors
    /// When the store cannot list.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, StoreError> {
        self.admit()?;
        let prefix = ObjectPath::from(prefix);
        match self
            .inner
            .remote
            .list(Some(&prefix))
            .map_ok(|m| (m.location.to_string(), m.size))
            .try_collect()
            .await
        {
            Ok(v) => {
                self.succeeded();
                Ok(v)
            }
            Err(e) => Err(self.failed("list", prefix.as_ref(), &e)),
        }
    }

    /// The names of the "folders" directly under `prefix`.
    ///
    /// # Errors
    /// When the store cannot list.
    pub async fn folders(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.admit()?;
        let prefix = ObjectPath::from(prefix);
        match self.inner.remote.list_with_delimiter(Some(&prefix)).await {
            Ok(l) => {
                self.succeeded();
                Ok(l.common_prefixes
                    .iter()
                    .filter_map(|p| p.filename().map(str::to_string))
                    .collect())
            }
            Err(e) => Err(self.failed("list", prefix.as_ref(), &e)),
        }
    }

    /// Checks that the store answers (a HEAD of an absent object).
    ///
    /// # Errors
    /// When it does not.
    pub async fn probe(&self) -> Result<(), StoreError> {
        self.admit()?;
        match self
            .inner
            .remote
            .head(&ObjectPath::from("readyz/probe"))
            .await
        {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {
                self.succeeded();
                Ok(())
            }
            Err(e) => Err(self.failed("head", "readyz/probe", &e)),
        }
    }

    /// Whether writes wait in the outbox (without counting the disk tier,
    /// as `status` does).
    fn outbox_waiting(&self) -> bool {
        self.inner.outbox.as_ref().is_some_and(|o| o.totals().0 > 0)
    }

    pub fn status(&self) -> StoreStatus {
        let (outbox_objects, outbox_bytes) =
            self.inner.outbox.as_ref().map_or((0, 0), Outbox::totals);
        StoreStatus {
            url: self.inner.url.clone(),
            up: self.is_up(),
            outbox_objects,
            outbox_bytes,
            disk_bytes: self.inner.disk.as_ref().map(DiskTier::bytes),
        }
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
            self.admit()?;
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
                    self.succeeded();
                    ob.done(&path, generation);
                    if created && let Some(disk) = &self.inner.disk {
                        disk.put(&path, p.sealed).await;
                    }
                    written += 1;
                }
                Err(e @ object_store::Error::Generic { .. }) => {
                    return Err(self.failed("put", &path, &e));
                }
                // Refused for this object only: the rest goes on; it stays
                // (and is logged) for an operator to look at.
                Err(e) => {
                    let _ = self.failed("put", &path, &e);
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
                    () = store.inner.wake.notified() => {}
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

/// The folder of an asset version's layers: `v<version>`.
pub fn layer_generation(version: u32) -> String {
    format!("v{version}")
}

/// The folder of an asset version's composites: `v<version>e<epoch>` (a
/// registered layer bumps the epoch, making older composites stale).
pub fn composite_generation(version: u32, epoch: u64) -> String {
    format!("v{version}e{epoch}")
}

/// `layers/<asset>/v<version>/ab/abcd….png`: the asset and version let
/// `gc` drop a stale version by listing its folder; two hex digits of
/// fan-out keep directories small and spread S3 key prefixes.
pub fn layer_path(asset: uuid::Uuid, version: u32, key: &Key) -> String {
    let h = key.hex();
    format!(
        "layers/{asset}/{}/{}/{h}.png",
        layer_generation(version),
        &h[..2]
    )
}

/// `composites/<asset>/v<version>e<epoch>/ab/abcd….<format>`.
pub fn composite_path(
    asset: uuid::Uuid,
    version: u32,
    epoch: u64,
    key: &Key,
    format: Format,
) -> String {
    let h = key.hex();
    format!(
        "composites/{asset}/{}/{}/{h}.{}",
        composite_generation(version, epoch),
        &h[..2],
        format.name()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_new_never_overwrites() {
        for url in [
            "memory://".to_string(),
            format!("file://{}", tempfile::tempdir().unwrap().keep().display()),
        ] {
            let s = BlobStore::open_url(&url).unwrap();
            assert!(!s.exists("a/b").await.unwrap());
            assert!(
                s.put_new("a/b", Bytes::from_static(b"one")).await.unwrap(),
                "{url}"
            );
            assert!(
                !s.put_new("a/b", Bytes::from_static(b"two")).await.unwrap(),
                "{url}"
            );
            assert_eq!(
                s.get("a/b").await.unwrap().unwrap(),
                Bytes::from_static(b"one")
            );
            assert!(s.exists("a/b").await.unwrap());
            s.put("a/b", Bytes::from_static(b"three")).await.unwrap();
            assert_eq!(
                s.get("a/b").await.unwrap().unwrap(),
                Bytes::from_static(b"three")
            );
        }
    }

    #[tokio::test]
    async fn while_the_store_is_unreachable_writes_wait_in_the_outbox() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = StoreOptions::url("s3://bucket/prefix");
        // Nothing listens on the discard port of loopback.
        o.s3 = S3Options {
            endpoint: "http://127.0.0.1:9".into(),
            region: "us-east-1".into(),
            access_key_id: "key".into(),
            secret_access_key: "secret".into(),
            allow_http: true,
        };
        o.timeouts = Timeouts {
            connect: Duration::from_millis(200),
            request: Duration::from_millis(500),
            max_retries: 0,
            retry_budget: Duration::from_millis(200),
        };
        o.down_cooldown = Duration::from_secs(600);
        o.outbox = Some((dir.path().join("outbox"), 1 << 20));
        let s = BlobStore::open(&o).unwrap();
        assert!(s.is_up());
        let body = Bytes::from_static(b"a rendered layer");
        assert!(
            s.put_new("layers/a", body.clone()).await.unwrap(),
            "kept, not lost"
        );
        assert!(!s.is_up(), "the failure takes the store down");
        assert_eq!(s.get("layers/a").await.unwrap(), Some(body.clone()));
        assert!(s.exists("layers/a").await.unwrap());
        // Within the cooldown, nothing else is even tried.
        assert!(matches!(s.get("layers/b").await, Err(StoreError::Down(_))));
        assert!(matches!(
            s.exists("layers/b").await,
            Err(StoreError::Down(_))
        ));
        assert!(matches!(
            s.put_cached("composites/c", body.clone()).await,
            Err(StoreError::Down(_))
        ));
        assert!(matches!(s.flush_outbox().await, Err(StoreError::Down(_))));
        assert_eq!(s.status().outbox_objects, 1);
        // A restart finds the waiting write.
        drop(s);
        let s = BlobStore::open(&o).unwrap();
        assert_eq!(s.status().outbox_objects, 1);
        assert_eq!(s.get("layers/a").await.unwrap(), Some(body));
    }
}
