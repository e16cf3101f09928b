//! The one path everything serves: a checked image request in, encoded
//! bytes out.
//!
//! ```text
//! composite key ─► memory ─► object store ─► plan layers ─► each layer: memory ─► object store
//!                                                            missing ones: one job (jobs::Jobs), wait
//!               ◄─ fill memory, write store ◄─ encode ◄─ fit/resize ◄─ compose ◄─┘
//! ```
//!
//! Every step that does work is a single flight per key ([`Flights`]),
//! spawned so that the first requester's disconnect cancels nothing. CPU
//! work here (compose, resize, encode, stored-layer decode) runs on the
//! threads of the CPU pool (`pool.rs`), never the ones serving
//! connections, behind one semaphore (`compose.concurrency`), so a burst of
//! misses cannot starve the hits;
//! renders are bounded by the workers' slots (`render.concurrency`),
//! wherever the workers run. A new size or format of an image already
//! made resizes its flattened stack (`MemoryTiers::flattened`) instead of
//! stacking the layers again.
//!
//! This module decides *what* happens on a miss; it does not know HTTP
//! (see `http`), pixels (see `compose`) or how renders are scheduled (see
//! `jobs`).

mod admission;
mod avif;
mod cpu;
mod flight;
mod layers;
mod pool;
mod produce;

pub use cpu::{compose_fitted, fit_flattened, flatten, render_composite, transform_layer};
pub use flight::Flights;

use crate::catalog::Asset;
use crate::compose::{Format, LayerImage, Output};
use crate::error::Error;
use crate::jobs::Jobs;
use crate::keys::{self, Configuration, Key, OutputPart};
use crate::store::{BlobStore, Encoded, Ledger, MemoryTiers, composite_path};
use crate::telemetry;
use admission::Admit;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

/// A fully checked request for one composite image, with its composite
/// key computed once (the handler needs it for the `ETag`, the tiers for
/// the lookup).
#[derive(Debug, Clone)]
pub struct ImageRequest {
    pub asset: Arc<Asset>,
    pub config: Configuration,
    pub view: usize,
    /// Normalised (see `Output::normalize`).
    pub output: Output,
    key: Key,
    /// The request's cache buster (empty: none), part of every key.
    buster: String,
    /// Wait for an AVIF encode however long it takes (batch callers such
    /// as `layercake prefetch`), instead of answering a WebP stand-in.
    pub patient: bool,
}

impl ImageRequest {
    pub fn new(
        asset: Arc<Asset>,
        config: Configuration,
        view: usize,
        output: Output,
        buster: &str,
    ) -> ImageRequest {
        let part = OutputPart::Image {
            output: &output,
            buster,
        };
        let key = keys::composite_key(&asset, &config, view, &part);
        ImageRequest {
            asset,
            config,
            view,
            output,
            key,
            buster: buster.to_owned(),
            patient: false,
        }
    }

    pub fn key(&self) -> Key {
        self.key
    }

    /// The key of this image's layers stacked at canvas resolution (the
    /// crop, if any, applied; no size, fit or format): every size and
    /// format of one image shares it.
    pub fn flattened_key(&self) -> Key {
        let part = OutputPart::Flattened {
            crop: self.output.crop,
            buster: &self.buster,
        };
        keys::composite_key(&self.asset, &self.config, self.view, &part)
    }
}

/// Bytes held by the memory tiers (what `layercake_cache_bytes` reports).
#[derive(Debug, Clone, Copy)]
pub struct CacheBytes {
    pub composites: u64,
    pub layers: u64,
    pub stand_ins: u64,
    pub flattened: u64,
}

/// Where the bytes of a response came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The in-memory composite cache.
    Memory,
    /// The object store (another request or node made it earlier).
    Store,
    /// Composed for this request (layers possibly rendered).
    Composed,
    /// Composed for this request, but the AVIF encode ran past its time
    /// budget: WebP now (not cached), the AVIF lands in the cache later.
    Fallback,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Memory => "hit-memory",
            Source::Store => "hit-store",
            Source::Composed => "miss",
            Source::Fallback => "miss-fallback",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Image {
    pub key: Key,
    pub bytes: Bytes,
    pub format: Format,
    pub source: Source,
}

/// Limits of the compositor.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Compose/encode jobs running at once.
    pub compose_concurrency: usize,
    /// How long a request waits for a miss before answering 503.
    pub miss_wait: Duration,
    /// Largest stored layer accepted when decoding (pixels).
    pub max_layer_pixels: u64,
    /// Compose/encode jobs allowed to wait for a slot; beyond: 429.
    pub compose_max_waiting: usize,
    /// Longest a request waits for an AVIF encode before taking WebP.
    pub avif_budget: Duration,
    /// AVIF encodes running at once, apart from the compose slots.
    pub avif_concurrency: usize,
    /// Nice value of the threads CPU work runs on (0: normal priority).
    pub cpu_nice: i32,
}

/// The compositor service. Cheap to clone.
#[derive(Clone)]
pub struct Compositor {
    inner: Arc<Inner>,
}

/// A test's fault point on the miss path (see
/// [`Compositor::hold_before_queueing`]).
pub type MissHook =
    Arc<dyn Fn() -> futures::future::BoxFuture<'static, ()> + Send + Sync + 'static>;

struct Inner {
    tiers: MemoryTiers,
    store: BlobStore,
    jobs: Arc<Jobs>,
    composites: Arc<Flights<Key, (Encoded, Source)>>,
    /// Reading a layer from the store; `None`: not there (a render is needed).
    layers: Arc<Flights<Key, Option<Arc<LayerImage>>>>,
    /// Waiting for a layer's task, then reading it back. Separate from
    /// `layers`, so a read never joins (and waits for) a render, and a
    /// render waiter never takes a read's `None` for its result.
    renders: Arc<Flights<Key, Arc<LayerImage>>>,
    cpu: Arc<Semaphore>,
    /// The threads CPU work runs on (at `compose.nice`), one per compose
    /// and AVIF slot.
    pool: pool::CpuPool,
    /// AVIF encodes at once (`compose.avif_concurrency`).
    avif: Arc<Semaphore>,
    limits: Limits,
    /// Background writes of composites, awaited at shutdown.
    writes: TaskTracker,
    /// Compose/encode jobs waiting for a slot of `cpu`.
    waiting: std::sync::atomic::AtomicUsize,
    /// Awaited between a miss in the store and the job for it (tests only).
    before_queueing: std::sync::OnceLock<MissHook>,
    /// Told of composites written to and read from the store (the
    /// composite tier's budget); none: nobody counts.
    ledger: std::sync::OnceLock<Arc<dyn Ledger>>,
}

impl Compositor {
    /// # Errors
    /// When the CPU pool's threads cannot be started.
    pub fn new(
        tiers: MemoryTiers,
        store: BlobStore,
        jobs: Arc<Jobs>,
        limits: Limits,
    ) -> std::io::Result<Compositor> {
        let threads = limits.compose_concurrency.max(1) + limits.avif_concurrency.max(1);
        let pool = pool::CpuPool::new(threads, limits.cpu_nice)?;
        Ok(Compositor {
            inner: Arc::new(Inner {
                pool,
                tiers,
                store,
                jobs,
                composites: Arc::default(),
                layers: Arc::default(),
                renders: Arc::default(),
                cpu: Arc::new(Semaphore::new(limits.compose_concurrency.max(1))),
                avif: Arc::new(Semaphore::new(limits.avif_concurrency.max(1))),
                limits,
                writes: TaskTracker::new(),
                waiting: std::sync::atomic::AtomicUsize::new(0),
                before_queueing: std::sync::OnceLock::new(),
                ledger: std::sync::OnceLock::new(),
            }),
        })
    }

    /// Reports every composite written to the object store, and every one
    /// read back from it, to `ledger` (set once, at start).
    pub fn report_to(&self, ledger: Arc<dyn Ledger>) -> bool {
        self.inner.ledger.set(ledger).is_ok()
    }

    /// A fault point for tests: every request that found layers missing
    /// in the store awaits `hook` before it queues their renders, so a test
    /// can hold one there while the same layers are rendered for another
    /// (the window in which a miss once rendered a layer twice). Set once;
    /// never set outside tests.
    #[doc(hidden)]
    pub fn hold_before_queueing(&self, hook: MissHook) -> bool {
        self.inner.before_queueing.set(hook).is_ok()
    }

    /// Whether the image is cached (in memory or in the object store)
    /// without making it: a prefetch plan's count, and `Cache-Control:
    /// only-if-cached`.
    ///
    /// # Errors
    /// The store's, when it cannot say.
    pub async fn is_cached(&self, req: &ImageRequest) -> Result<bool, Error> {
        if self.inner.tiers.composites.contains_key(&req.key()) {
            return Ok(true);
        }
        let a = &req.asset;
        let path = composite_path(a.id, a.version, a.epoch, &req.key(), req.output.format);
        let stored = self.inner.store.exists(&path).await?;
        // Asked for (a prefetch confirming it): as good as a read.
        if stored && let Some(l) = self.inner.ledger.get() {
            l.read(&path);
        }
        Ok(stored)
    }

    /// Serves one composite: from memory, the object store, or by composing.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the miss takes longer than the wait budget
    /// (the work goes on; a later request finds it done), [`Error::RenderFailed`]
    /// when a layer cannot be rendered, and store or internal failures.
    pub async fn image(&self, req: ImageRequest) -> Result<Image, Error> {
        let key = req.key();
        let hit = self.inner.tiers.composites.get(&key);
        telemetry::cache_lookup("composite", "memory", hit.is_some());
        if let Some(e) = hit {
            return Ok(Image {
                key,
                bytes: e.bytes,
                format: e.format,
                source: Source::Memory,
            });
        }
        let inner = Arc::clone(&self.inner);
        let tiers = self.inner.tiers.clone();
        let flight = self.inner.composites.run(
            key,
            || tiers.composites.get(&key).map(|e| (e, Source::Memory)),
            move || async move { Inner::produce(inner, key, req).await },
        );
        let (encoded, source) = tokio::time::timeout(self.inner.limits.miss_wait, flight)
            .await
            .map_err(|_| {
                Error::unavailable(format!(
                    "the image is still being rendered after {:?}; retry shortly",
                    self.inner.limits.miss_wait
                ))
            })??;
        Ok(Image {
            key,
            bytes: encoded.bytes,
            format: encoded.format,
            source,
        })
    }

    /// Runs CPU-bound `f` on the CPU pool behind the compose semaphore.
    ///
    /// # Errors
    /// [`Error::Overloaded`] when `compose.max_waiting` jobs already wait,
    /// [`Error::Unavailable`] when shutting down; a panic in `f` is internal.
    pub async fn cpu<R, F>(&self, f: F) -> Result<R, Error>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        // The slot goes with the job: a caller that gives up (a client
        // gone, a deadline) frees it only when the job has finished or been
        // skipped, so the pool never runs more jobs than there are slots.
        let permit = self.inner.cpu_slot(Admit::OrReject).await?;
        self.inner
            .pool
            .run(move || {
                let _slot = permit;
                f()
            })
            .await
    }

    /// Replaces the image of layer `key`: waits for any fetch or render of
    /// that key under way, then runs `write` (which stores the new object)
    /// as the key's flight, and puts the result in the memory tier. Nothing
    /// read or rendered before can land after it.
    ///
    /// # Errors
    /// What `write` returned.
    pub async fn replace_layer<F, Fut>(&self, key: Key, write: F) -> Result<Arc<LayerImage>, Error>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Arc<LayerImage>, Error>> + Send + 'static,
    {
        let tiers = self.inner.tiers.clone();
        let layers = Arc::clone(&self.inner.layers);
        let fut = write();
        // Waits for a render waiter of the key (bounded by the miss wait)
        // and for a read, so neither can put an older image in memory after.
        self.inner
            .renders
            .exclusive(key, move || async move {
                layers
                    .exclusive(key, move || async move {
                        let layer = fut.await?;
                        tiers.layers.insert(key, Arc::clone(&layer));
                        Ok(Some(layer))
                    })
                    .await?
                    .ok_or_else(|| Error::Internal(format!("layer {key}: replaced by nothing")))
            })
            .await
    }

    /// Bytes held by each memory tier.
    pub fn cache_bytes(&self) -> CacheBytes {
        let t = &self.inner.tiers;
        t.composites.run_pending_tasks();
        t.layers.run_pending_tasks();
        t.stand_ins.run_pending_tasks();
        t.flattened.run_pending_tasks();
        CacheBytes {
            composites: t.composites.weighted_size(),
            layers: t.layers.weighted_size(),
            stand_ins: t.stand_ins.weighted_size(),
            flattened: t.flattened.weighted_size(),
        }
    }

    /// Waits for background writes to finish (for graceful shutdown).
    pub async fn flush(&self) {
        self.inner.writes.close();
        self.inner.writes.wait().await;
        self.inner.writes.reopen();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, DEMO_ASSET_ID};
    use crate::compose::{Fit, Rect};

    /// Pinned (stored objects are addressed by these keys): a request's
    /// composite and flattened keys, with and without crop and buster.
    #[test]
    fn request_keys_are_pinned() {
        let catalog = Catalog::demo().unwrap();
        let sofa = Arc::clone(catalog.get(&DEMO_ASSET_ID.parse().unwrap()).unwrap());
        let cfg = Configuration::defaults(&sofa);
        let output = |crop| Output {
            width: Some(400),
            height: Some(300),
            fit: Fit::Cover,
            crop,
            format: Format::Webp,
            quality: Some(80),
        };
        let crop = Some(Rect {
            x: 10,
            y: 20,
            width: 300,
            height: 200,
        });
        let cases = [
            (
                None,
                "",
                "423b3776abfd361eb9f12b6eec5fe2577fa65ed3b9ce3baa374e14dc602efefe",
                "a923531498bfda7ed734c6489bb37ae65370bc1dad5c5e4fb95c0101eb11fcec",
            ),
            (
                None,
                "b7",
                "db9ef2b51795ff3c9d8c90a191d9ae7a73c6b0abf7a4959dc220c952603272f2",
                "b193778322e36ad6ed7a53842d150fad5ce6f76fc4f5ba8d5bbfea35ef70fd29",
            ),
            (
                crop,
                "",
                "5bb034fa26f7ba11ac52af8f07367287fff92f935a175b76d22ecdc845d08d4f",
                "1cf2b9aff6a6ad9e52d2a708dc7ef2a7ef81e385026db1d6daad0e0e8ddf8372",
            ),
            (
                crop,
                "b7",
                "a6a51b28d15679b907320453277b4e53cbb3457ce5a6a8f8ab5f9abae592f4c0",
                "d2b2d750737cc6054fe49bb80799802358ca41ce22b67d76424ce14a2553ab45",
            ),
        ];
        let request = |crop, buster| {
            ImageRequest::new(Arc::clone(&sofa), cfg.clone(), 1, output(crop), buster)
        };
        let got: Vec<String> = cases
            .iter()
            .map(|&(crop, buster, ..)| {
                let req = request(crop, buster);
                format!(
                    "{crop:?} {buster:?}: {} {}",
                    req.key().hex(),
                    req.flattened_key().hex()
                )
            })
            .collect();
        for (crop, buster, key, flattened) in cases {
            let req = request(crop, buster);
            assert_eq!(req.key().hex(), key, "{crop:?} {buster:?}; all: {got:#?}");
            assert_eq!(
                req.flattened_key().hex(),
                flattened,
                "{crop:?} {buster:?}; all: {got:#?}"
            );
        }
    }
}
