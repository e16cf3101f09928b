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
//! blocking pool behind one semaphore (`compose.concurrency`), so a burst of
//! misses cannot starve the hits; renders are bounded by the workers' slots
//! (`render.concurrency`), wherever the workers run.
//!
//! This module decides *what* happens on a miss; it does not know HTTP
//! (see `http`), pixels (see `compose`) or how renders are scheduled (see
//! `jobs`).

use crate::catalog::Asset;
use crate::compose::{self, Format, LayerImage, Output, Rect, layerfile};
use crate::error::Error;
use crate::jobs::{Ended, JobSpec, Jobs, LayerJob, PRIORITY_INTERACTIVE};
use crate::keys::{self, Configuration, Key};
use crate::render::RenderRequest;
mod flight;

pub use flight::Flights;

use crate::store::{BlobStore, Encoded, Ledger, MemoryTiers, composite_path};
use crate::telemetry;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

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
        let mut canonical = output.canonical();
        if !buster.is_empty() {
            canonical.push_str(";buster=");
            canonical.push_str(buster);
        }
        let key = keys::composite_key(&asset, &config, view, &canonical);
        ImageRequest {
            asset,
            config,
            view,
            output,
            key,
            patient: false,
        }
    }

    pub fn key(&self) -> Key {
        self.key
    }
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
    cpu: Semaphore,
    /// AVIF encodes at once (`compose.avif_concurrency`).
    avif: Semaphore,
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
    pub fn new(
        tiers: MemoryTiers,
        store: BlobStore,
        jobs: Arc<Jobs>,
        limits: Limits,
    ) -> Compositor {
        Compositor {
            inner: Arc::new(Inner {
                tiers,
                store,
                jobs,
                composites: Arc::default(),
                layers: Arc::default(),
                renders: Arc::default(),
                cpu: Semaphore::new(limits.compose_concurrency.max(1)),
                avif: Semaphore::new(limits.avif_concurrency.max(1)),
                limits,
                writes: TaskTracker::new(),
                waiting: std::sync::atomic::AtomicUsize::new(0),
                before_queueing: std::sync::OnceLock::new(),
                ledger: std::sync::OnceLock::new(),
            }),
        }
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

    /// Runs CPU-bound `f` on the blocking pool behind the compose semaphore.
    ///
    /// # Errors
    /// [`Error::Overloaded`] when `compose.max_waiting` jobs already wait,
    /// [`Error::Unavailable`] when shutting down; a panic in `f` is internal.
    pub async fn cpu<R, F>(&self, f: F) -> Result<R, Error>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let _permit = self.inner.cpu_slot(Admit::OrReject).await?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| Error::Internal(format!("cpu task: {e}")))
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

    /// Bytes held by the memory tiers: composites, layers, stand-ins.
    pub fn cache_bytes(&self) -> (u64, u64, u64) {
        let t = &self.inner.tiers;
        t.composites.run_pending_tasks();
        t.layers.run_pending_tasks();
        t.stand_ins.run_pending_tasks();
        (
            t.composites.weighted_size(),
            t.layers.weighted_size(),
            t.stand_ins.weighted_size(),
        )
    }

    /// Waits for background writes to finish (for graceful shutdown).
    pub async fn flush(&self) {
        self.inner.writes.close();
        self.inner.writes.wait().await;
        self.inner.writes.reopen();
    }
}

/// An encode's outcome: the bytes and format, or `None` when the AVIF
/// slots were all busy and nothing was encoded.
type EncodeResult = Result<Option<(Vec<u8>, Format)>, Error>;

/// Whether a CPU step may be refused when too many wait for a slot.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Admit {
    /// A new request's first CPU step: refused (429) beyond the bound.
    OrReject,
    /// A step of work already admitted, or shared by several requests.
    Wait,
}

impl Inner {
    /// A compose slot: at once if one is free, after a wait if fewer than
    /// `compose_max_waiting` wait already, else (for [`Admit::OrReject`]) a
    /// fast 429. Work already admitted ([`Admit::Wait`]) waits its turn but
    /// still counts as waiting, so new requests see the load.
    async fn cpu_slot(&self, admit: Admit) -> Result<tokio::sync::SemaphorePermit<'_>, Error> {
        use std::sync::atomic::Ordering;
        if let Ok(p) = self.cpu.try_acquire() {
            return Ok(p);
        }
        let before = self.waiting.fetch_add(1, Ordering::SeqCst);
        let _leave = Decrement(&self.waiting);
        if admit == Admit::OrReject && before >= self.limits.compose_max_waiting {
            metrics::counter!(telemetry::REJECTED, "reason" => "compose").increment(1);
            return Err(Error::overloaded(format!(
                "over capacity: {before} images are waiting to be composed; retry shortly"
            )));
        }
        metrics::gauge!(telemetry::COMPOSE_WAITING).set((before + 1) as f64);
        self.cpu
            .acquire()
            .await
            .map_err(|_| Error::unavailable("shutting down"))
    }

    async fn produce(
        this: Arc<Inner>,
        key: Key,
        req: ImageRequest,
    ) -> Result<(Encoded, Source), Error> {
        let format = req.output.format;
        let asset = &req.asset;
        let path = composite_path(asset.id, asset.version, asset.epoch, &key, format);
        // A store that cannot answer is a miss here: with the layers in
        // memory the composite can still be made (the layers' own reads
        // answer 503 if they need the store).
        let stored = this.store.get(&path).await.unwrap_or_else(|e| {
            tracing::debug!(%key, error = %e, "composite read failed; composing");
            None
        });
        telemetry::cache_lookup("composite", "store", stored.is_some());
        if let Some(bytes) = stored {
            // JPEG-or-PNG is decided per image: the bytes say which.
            let format = Format::sniff(&bytes).unwrap_or(format);
            if let Some(l) = this.ledger.get() {
                l.read(&path);
            }
            let e = Encoded { bytes, format };
            this.tiers.composites.insert(key, e.clone());
            return Ok((e, Source::Store));
        }
        if let Some(e) = this.tiers.stand_ins.get(&key) {
            return Ok((e, Source::Fallback));
        }
        let layers = Inner::layers_for(&this, &req).await?;
        let output = req.output.clone();
        let fitted = {
            let _permit = this.cpu_slot(Admit::OrReject).await?;
            let output = output.clone();
            let canvas = (req.asset.width, req.asset.height);
            tokio::task::spawn_blocking(move || compose_fitted(&layers, canvas, &output))
                .await
                .map_err(|e| Error::Internal(format!("compose task: {e}")))?
        };
        let backup = (format == Format::Avif).then(|| fitted.clone());
        // AVIF encodes take an AVIF slot (`compose.avif_concurrency`), not
        // a compose slot: one that runs past its budget finishes in the
        // background without holding up other requests' composes. With
        // every AVIF slot taken, an impatient request gets its stand-in
        // without queueing another AVIF (so background AVIF work is bounded
        // by the AVIF slots); a later request makes the AVIF.
        let patient = req.patient;
        let encode = {
            let this = Arc::clone(&this);
            tokio::spawn(async move {
                let _permit = if format != Format::Avif {
                    this.cpu_slot(Admit::Wait).await?
                } else if patient {
                    this.avif
                        .acquire()
                        .await
                        .map_err(|_| Error::unavailable("shutting down"))?
                } else {
                    match this.avif.try_acquire() {
                        Ok(p) => p,
                        // Busy: no encode (None), the stand-in answers.
                        Err(_) => return Ok(None),
                    }
                };
                tokio::task::spawn_blocking(move || {
                    compose::encode_as(fitted, output.format, output.quality)
                })
                .await
                .map_err(|e| Error::Internal(format!("encode task: {e}")))?
                .map(Some)
                .map_err(|e| Error::Internal(format!("encode: {e}")))
            })
        };
        let finished = |done: Result<EncodeResult, tokio::task::JoinError>| {
            done.map_err(|e| Error::Internal(format!("encode task: {e}")))?
                .and_then(|o| o.ok_or_else(|| Error::Internal("no encode".into())))
        };
        let encoded = match backup {
            Some(backup) if !patient => {
                let mut encode = encode;
                let inner = Arc::clone(&this);
                match tokio::time::timeout(this.limits.avif_budget, &mut encode).await {
                    Ok(Ok(Ok(None))) => {
                        return Inner::fallback(inner, key, path, None, backup, req).await;
                    }
                    Ok(done) => finished(done)?,
                    Err(_) => {
                        return Inner::fallback(inner, key, path, Some(encode), backup, req).await;
                    }
                }
            }
            _ => finished(encode.await)?,
        };
        let e = Inner::keep(&this, key, path, encoded);
        Ok((e, Source::Composed))
    }

    /// Puts an encoded composite in the memory tier and, in the background,
    /// in the object store.
    fn keep(
        this: &Arc<Inner>,
        key: Key,
        path: String,
        (bytes, format): (Vec<u8>, Format),
    ) -> Encoded {
        let e = Encoded {
            bytes: Bytes::from(bytes),
            format,
        };
        this.tiers.composites.insert(key, e.clone());
        this.tiers.stand_ins.invalidate(&key);
        let (store, bytes) = (this.store.clone(), e.bytes.clone());
        let ledger = this.ledger.get().cloned();
        this.writes.spawn(
            async move {
                let n = bytes.len() as u64;
                match store.put_cached(&path, bytes).await {
                    Ok(()) => {
                        if let Some(l) = ledger {
                            l.written(&path, n);
                        }
                    }
                    Err(err) => {
                        tracing::warn!(%key, error = %err, "composite not written to the object store");
                    }
                }
            }
            .in_current_span(),
        );
        e
    }

    /// The AVIF encode ran past its budget: answer WebP now (not cached
    /// under the AVIF key) and keep the AVIF when it is done.
    async fn fallback(
        this: Arc<Inner>,
        key: Key,
        path: String,
        encode: Option<tokio::task::JoinHandle<EncodeResult>>,
        backup: crate::compose::PremulImage,
        req: ImageRequest,
    ) -> Result<(Encoded, Source), Error> {
        match encode {
            Some(encode) => {
                tracing::info!(%key, budget = ?this.limits.avif_budget, "AVIF encode over budget; answering WebP meanwhile");
                let later = Arc::clone(&this);
                this.writes.spawn(
                    async move {
                        match encode.await {
                            Ok(Ok(Some(encoded))) => {
                                Inner::keep(&later, key, path, encoded);
                            }
                            Ok(Ok(None)) => {}
                            Ok(Err(e)) => tracing::warn!(%key, error = %e, "AVIF encode failed"),
                            Err(e) => tracing::warn!(%key, error = %e, "AVIF encode task failed"),
                        }
                    }
                    .in_current_span(),
                );
            }
            None => {
                tracing::info!(%key, "every AVIF slot is busy; answering WebP, the AVIF is made by a later request");
            }
        }
        // Compose slots are never held by AVIF encodes, so this wait is
        // one of composes and short encodes.
        let permit = this.cpu_slot(Admit::Wait).await?;
        let quality = req.output.quality;
        let (bytes, format) =
            tokio::task::spawn_blocking(move || compose::encode_as(backup, Format::Webp, quality))
                .await
                .map_err(|e| Error::Internal(format!("encode task: {e}")))?
                .map_err(|e| Error::Internal(format!("encode: {e}")))?;
        drop(permit);
        let e = Encoded {
            bytes: Bytes::from(bytes),
            format,
        };
        // Unless the AVIF landed meanwhile.
        if this.tiers.composites.get(&key).is_none() {
            this.tiers.stand_ins.insert(key, e.clone());
        }
        Ok((e, Source::Fallback))
    }

    /// Every visible layer of the request, bottom to top: those in memory
    /// or in the object store first (concurrently), then one job for the
    /// missing ones, waited for.
    async fn layers_for(
        this: &Arc<Inner>,
        req: &ImageRequest,
    ) -> Result<Vec<Arc<LayerImage>>, Error> {
        let asset = &req.asset;
        let size = (asset.width, asset.height);
        let planned: Vec<LayerJob> = asset
            .layers
            .iter()
            .enumerate()
            .filter(|(_, l)| l.is_visible(req.config.values()))
            .map(|(i, l)| LayerJob {
                key: keys::layer_key(asset, i, req.view, &req.config, size),
                request: RenderRequest {
                    asset: Arc::clone(asset),
                    layer: i,
                    view: req.view,
                    values: req.config.subset(&l.depends_on),
                    width: size.0,
                    height: size.1,
                },
            })
            .collect();
        let found = futures::future::try_join_all(
            planned
                .iter()
                .map(|job| Inner::cached_layer(Arc::clone(this), job.clone())),
        )
        .await?;
        let missing: Vec<LayerJob> = planned
            .iter()
            .zip(&found)
            .filter(|(_, f)| f.is_none())
            .map(|(j, _)| j.clone())
            .collect();
        if missing.is_empty() {
            return Ok(found.into_iter().flatten().collect());
        }
        let spec = JobSpec {
            org: asset.org,
            title: format!(
                "render {} / {} ({} layers)",
                asset.name,
                asset.views[req.view].name,
                missing.len()
            ),
            kind: "render".into(),
            parameters: serde_json::json!({
                "assetId": asset.id,
                "assetVersion": asset.version,
                "configuration": serde_json::from_str::<serde_json::Value>(&req.config.canonical(asset)).unwrap_or_default(),
                "view": asset.views[req.view].name,
            }),
            priority: PRIORITY_INTERACTIVE,
            rerender: Default::default(),
        };
        if let Some(hook) = this.before_queueing.get() {
            hook().await;
        }
        let submitted = this.jobs.submit(spec, &missing, true).await?;
        let rendered = futures::future::try_join_all(
            missing
                .into_iter()
                .zip(submitted.tasks.into_iter().zip(submitted.reused))
                .map(|(job, (task, reused))| {
                    Inner::rendered_layer(Arc::clone(this), job, task, reused)
                }),
        )
        .await?;
        let mut rendered = rendered.into_iter();
        found
            .into_iter()
            .map(|f| match f {
                Some(l) => Ok(l),
                None => rendered
                    .next()
                    .ok_or_else(|| Error::Internal("a rendered layer went missing".into())),
            })
            .collect()
    }

    /// One layer from memory or the object store, if it is there.
    async fn cached_layer(
        this: Arc<Inner>,
        job: LayerJob,
    ) -> Result<Option<Arc<LayerImage>>, Error> {
        let key = job.key;
        let hit = this.tiers.layers.get(&key);
        telemetry::cache_lookup("layer", "memory", hit.is_some());
        if let Some(l) = hit {
            return Ok(Some(l));
        }
        let tiers = this.tiers.clone();
        let flights = Arc::clone(&this.layers);
        flights
            .run(
                key,
                || tiers.layers.get(&key).map(Some),
                move || async move {
                    let layer = Inner::stored_layer(&this, &job).await?;
                    telemetry::cache_lookup("layer", "store", layer.is_some());
                    if let Some(l) = &layer {
                        this.tiers.layers.insert(key, Arc::clone(l));
                    }
                    Ok(layer)
                },
            )
            .await
    }

    /// One layer once its task has succeeded, read back from the store
    /// (at once when the submission found it `reused`: already recorded).
    async fn rendered_layer(
        this: Arc<Inner>,
        job: LayerJob,
        task: uuid::Uuid,
        reused: bool,
    ) -> Result<Arc<LayerImage>, Error> {
        let key = job.key;
        let tiers = this.tiers.clone();
        let flights = Arc::clone(&this.renders);
        flights
            .run(
                key,
                || tiers.layers.get(&key),
                move || async move {
                    let deadline = tokio::time::Instant::now() + this.limits.miss_wait;
                    let (mut task, mut reused) = (task, reused);
                    for again in 0.. {
                        if !reused {
                            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                            reused = this.jobs.wait(task, left).await? == Ended::Reused;
                        }
                        if let Some(layer) = Inner::stored_layer(&this, &job).await? {
                            this.tiers.layers.insert(key, Arc::clone(&layer));
                            return Ok(layer);
                        }
                        if !reused || again == 2 {
                            break;
                        }
                        // Recorded, so not rendered, but its stored object
                        // is gone or unusable (deleted, or failed its seal
                        // or decode): render it again.
                        tracing::warn!(key = %key, "layer recorded but its stored image is missing or unusable; rendering it again");
                        (task, reused) = Inner::queue_rerender(&this, &job).await?;
                    }
                    Err(Error::unavailable(format!(
                        "layer {key} was rendered but is not readable from the object store yet; retry"
                    )))
                },
            )
            .await
    }

    /// Queues a render of `job` whatever its record says; its task, and
    /// whether that reuses the record after all (never, as submitted).
    async fn queue_rerender(
        this: &Arc<Inner>,
        job: &LayerJob,
    ) -> Result<(uuid::Uuid, bool), Error> {
        let asset = &job.request.asset;
        let spec = JobSpec {
            org: asset.org,
            title: format!("render again {}", job.request.describe()),
            kind: "render".into(),
            parameters: serde_json::json!({
                "assetId": asset.id,
                "assetVersion": asset.version,
                "view": asset.views[job.request.view].name,
                "layerKey": job.key.hex(),
            }),
            priority: PRIORITY_INTERACTIVE,
            rerender: std::iter::once(job.key).collect(),
        };
        let s = this
            .jobs
            .submit(spec, std::slice::from_ref(job), true)
            .await?;
        s.tasks
            .into_iter()
            .zip(s.reused)
            .next()
            .ok_or_else(|| Error::Internal("a queued render has no task".into()))
    }

    /// Decodes a stored layer object. Decoding serves every request that
    /// needs the layer (it runs as the key's flight), so it waits for a
    /// compose slot rather than failing one of them.
    async fn decode_layer(
        this: &Arc<Inner>,
        bytes: Bytes,
    ) -> Result<Result<LayerImage, layerfile::LayerFileError>, Error> {
        let max = this.limits.max_layer_pixels;
        let _permit = this.cpu_slot(Admit::Wait).await?;
        tokio::task::spawn_blocking(move || layerfile::decode(&bytes, max))
            .await
            .map_err(|e| Error::Internal(format!("decode task: {e}")))
    }

    /// A stored layer, if there is a usable one. A stored object that does
    /// not decode or does not fit the canvas is treated as missing (and so
    /// rendered again) rather than served.
    async fn stored_layer(
        this: &Arc<Inner>,
        job: &LayerJob,
    ) -> Result<Option<Arc<LayerImage>>, Error> {
        let Some(bytes) = this.store.get(&job.path()).await? else {
            return Ok(None);
        };
        let want = (job.request.width, job.request.height);
        match Inner::decode_layer(this, bytes).await? {
            Ok(l) if (l.canvas_width, l.canvas_height) == want => Ok(Some(Arc::new(l))),
            Ok(l) => {
                tracing::warn!(key = %job.key, canvas = ?(l.canvas_width, l.canvas_height), "stored layer has the wrong canvas; rendering again");
                Ok(None)
            }
            Err(e) => {
                tracing::warn!(key = %job.key, error = %e, "stored layer does not decode; rendering again");
                Ok(None)
            }
        }
    }
}

/// Layer images another process replaced by registration (its epoch bump
/// reached this one through the catalogue refresh): this node's memory and
/// disk copies go, and the object store's image is read afresh.
impl Compositor {
    /// Layer images another process replaced: drops this node's copies of
    /// `keys` (hex layer keys) of `asset` `version` and reads them afresh.
    pub async fn forget_layers(&self, asset: uuid::Uuid, version: u32, keys: &[String]) {
        for key in keys.iter().filter_map(|h| Key::from_hex(h)) {
            let this = Arc::clone(&self.inner);
            let path = crate::store::layer_path(asset, version, &key);
            // Under the key's exclusive flight: a read under way finishes
            // first, and readers that come meanwhile get the new image.
            let fresh = self
                .inner
                .layers
                .exclusive(key, move || async move {
                    this.tiers.layers.invalidate(&key);
                    this.store.forget_cached(&path).await;
                    let Some(bytes) = this.store.get(&path).await? else {
                        return Ok(None);
                    };
                    let layer = Inner::decode_layer(&this, bytes)
                        .await?
                        .map_err(|e| Error::Internal(format!("layer {key}: {e}")))?;
                    let layer = Arc::new(layer);
                    this.tiers.layers.insert(key, Arc::clone(&layer));
                    Ok(Some(layer))
                })
                .await;
            if let Err(e) = fresh {
                // The memory copy is gone either way; the next read fetches it.
                tracing::warn!(%key, error = %e, "replaced layer not reloaded");
            }
        }
    }
}

/// Decrements a counter when dropped.
struct Decrement<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Decrement<'_> {
    fn drop(&mut self) {
        let left = self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) - 1;
        metrics::gauge!(telemetry::COMPOSE_WAITING).set(left as f64);
    }
}

/// Compose, crop, fit, resize and encode: the CPU part of a miss.
///
/// # Errors
/// [`Error::Internal`] when the encoder fails.
pub fn render_composite(
    layers: &[Arc<LayerImage>],
    canvas: (u32, u32),
    output: &Output,
) -> Result<Vec<u8>, Error> {
    let fitted = compose_fitted(layers, canvas, output);
    compose::encode(fitted, output.format, output.quality)
        .map_err(|e| Error::Internal(format!("encode: {e}")))
}

/// Compose, crop, fit and resize: the image before encoding.
pub fn compose_fitted(
    layers: &[Arc<LayerImage>],
    canvas: (u32, u32),
    output: &Output,
) -> crate::compose::PremulImage {
    let region = output.crop.unwrap_or(Rect {
        x: 0,
        y: 0,
        width: canvas.0,
        height: canvas.1,
    });
    let refs: Vec<&LayerImage> = layers.iter().map(AsRef::as_ref).collect();
    let composed = compose::compose(region, &refs);
    let g = compose::geometry(
        (region.width, region.height),
        output.width,
        output.height,
        output.fit,
    );
    compose::resize_into(composed, &g)
}

/// A layer image placed on its canvas at `offset` (from its record) and
/// fitted to `output` (`GET /api/layers/layer?optimization=`): one layer,
/// never a composite.
///
/// # Errors
/// 422 when the stored bytes are not a usable layer; 500 when encoding fails.
pub fn transform_layer(
    bytes: &[u8],
    canvas: (u32, u32),
    offset: (u32, u32),
    output: &Output,
    max_pixels: u64,
) -> Result<Vec<u8>, Error> {
    let mut layer = layerfile::decode(bytes, max_pixels)
        .map_err(|e| Error::invalid("layer", format!("the stored image does not decode: {e}")))?;
    (layer.x, layer.y) = offset;
    layer.canvas_width = canvas.0;
    layer.canvas_height = canvas.1;
    crate::jobs::validate_placement(&layer).map_err(|e| Error::invalid("layer", e))?;
    render_composite(&[Arc::new(layer)], canvas, output)
}
