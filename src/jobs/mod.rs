//! Jobs: the only way a render starts.
//!
//! [`RenderQueue`] is the seam between the compositor and rendering: "make
//! sure the layer with this key exists in the object store, and give it to
//! me". The compositor calls it on a miss and knows nothing of how the work
//! is scheduled. [`InProcess`] is the embedded implementation: renders run
//! in this process with bounded parallelism and a timeout, and the output
//! is validated and written to the object store before anyone sees it. The
//! durable queue (tasks, leases, runs in the metadata store) will be a
//! second implementation of the same trait.
//!
//! Deduplication of concurrent misses for one key is the caller's single
//! flight (`store::Flights`); this module renders whatever it is asked.

use crate::compose::{LayerImage, layerfile};
use crate::error::Error;
use crate::keys::Key;
use crate::render::{RenderError, RenderRequest, Renderer};
use crate::store::{BlobStore, layer_path};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// One layer to produce.
#[derive(Debug, Clone)]
pub struct LayerJob {
    pub key: Key,
    pub request: RenderRequest,
}

/// Keeps the record of a finished render (the Layers service implements it).
#[async_trait::async_trait]
pub trait Recorder: Send + Sync + 'static {
    /// Called once the layer is stored at `path` with content `bytes`.
    ///
    /// # Errors
    /// When the record cannot be written; the render itself is kept.
    async fn rendered(
        &self,
        job: &LayerJob,
        layer: &LayerImage,
        path: &str,
        bytes: &[u8],
    ) -> Result<(), Error>;
}

#[async_trait::async_trait]
pub trait RenderQueue: Send + Sync + 'static {
    /// Renders the layer, stores it under its key, and returns it decoded.
    ///
    /// # Errors
    /// [`Error::RenderFailed`] when the renderer fails or its output is
    /// invalid; [`Error::Unavailable`] when the result cannot be stored.
    async fn ensure(&self, job: LayerJob) -> Result<Arc<LayerImage>, Error>;
}

/// Limits of the in-process queue.
#[derive(Debug, Clone, Copy)]
pub struct InProcessLimits {
    /// Renders running at once.
    pub concurrency: usize,
    /// Longest a single render may take.
    pub timeout: Duration,
    /// Largest stored layer accepted when reading one back (pixels).
    pub max_pixels: u64,
}

/// Renders in this process.
pub struct InProcess {
    renderer: Arc<dyn Renderer>,
    store: BlobStore,
    recorder: Arc<dyn Recorder>,
    permits: Arc<Semaphore>,
    timeout: Duration,
    max_pixels: u64,
}

impl InProcess {
    pub fn new(
        renderer: Arc<dyn Renderer>,
        store: BlobStore,
        recorder: Arc<dyn Recorder>,
        limits: InProcessLimits,
    ) -> InProcess {
        InProcess {
            renderer,
            store,
            recorder,
            permits: Arc::new(Semaphore::new(limits.concurrency.max(1))),
            timeout: limits.timeout,
            max_pixels: limits.max_pixels,
        }
    }

    /// Runs the render in its own task that owns a render slot. On timeout
    /// the caller gets an error at once, but the slot stays taken until the
    /// render really ends: a CPU-bound render cannot be interrupted, and
    /// releasing its slot early would let more renders run than configured.
    async fn render(&self, req: &RenderRequest) -> Result<LayerImage, Error> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| Error::unavailable("the render queue is shut down"))?;
        let (renderer, req) = (Arc::clone(&self.renderer), req.clone());
        let task = tokio::spawn(async move {
            let out = renderer.render(&req).await;
            drop(permit);
            out
        });
        match tokio::time::timeout(self.timeout, task).await {
            Err(_) => Err(RenderError::Timeout(self.timeout).into()),
            Ok(Err(join)) => Err(Error::RenderFailed(format!(
                "the renderer panicked: {join}"
            ))),
            Ok(Ok(out)) => Ok(out?),
        }
    }
}

/// Checks a renderer's output against what was asked for.
///
/// # Errors
/// [`RenderError::Failed`] naming the mismatch.
pub fn validate(req: &RenderRequest, out: &LayerImage) -> Result<(), RenderError> {
    if (out.canvas_width, out.canvas_height) != (req.width, req.height) {
        return Err(RenderError::Failed(format!(
            "output canvas is {}x{}, expected {}x{}",
            out.canvas_width, out.canvas_height, req.width, req.height
        )));
    }
    validate_placement(out).map_err(RenderError::Failed)
}

/// Checks that a layer's box lies inside its canvas and its pixels are all there.
///
/// # Errors
/// A sentence naming the mismatch.
pub fn validate_placement(out: &LayerImage) -> Result<(), String> {
    let img = &out.image;
    let fits = u64::from(out.x) + u64::from(img.width) <= u64::from(out.canvas_width)
        && u64::from(out.y) + u64::from(img.height) <= u64::from(out.canvas_height);
    if !fits || img.data.len() != img.width as usize * img.height as usize * 4 {
        return Err(format!(
            "the {}x{} image at ({},{}) does not fit the {}x{} canvas",
            img.width, img.height, out.x, out.y, out.canvas_width, out.canvas_height
        ));
    }
    Ok(())
}

#[async_trait::async_trait]
impl RenderQueue for InProcess {
    async fn ensure(&self, job: LayerJob) -> Result<Arc<LayerImage>, Error> {
        let started = std::time::Instant::now();
        let out = self.render(&job.request).await?;
        validate(&job.request, &out)?;
        let layer = Arc::new(out);
        let encoded = {
            let layer = Arc::clone(&layer);
            tokio::task::spawn_blocking(move || layerfile::encode(&layer))
                .await
                .map_err(|e| Error::Internal(format!("encode task: {e}")))?
                .map_err(|e| Error::Internal(format!("layer encode: {e}")))?
        };
        let path = layer_path(&job.key);
        let encoded = Bytes::from(encoded);
        // Never overwrite: an image registered for this key while we were
        // rendering wins, and is what we answer with.
        if !self.store.put_new(&path, encoded.clone()).await? {
            let bytes = self
                .store
                .get(&path)
                .await?
                .ok_or_else(|| Error::unavailable("the stored layer vanished; retry"))?;
            let max = self.max_pixels;
            let existing = tokio::task::spawn_blocking(move || layerfile::decode(&bytes, max))
                .await
                .map_err(|e| Error::Internal(format!("decode task: {e}")))?
                .map_err(|e| Error::Internal(format!("stored layer {}: {e}", job.key)))?;
            tracing::info!(key = %job.key, "a layer was stored while rendering it; keeping the stored one");
            return Ok(Arc::new(existing));
        }
        if let Err(e) = self.recorder.rendered(&job, &layer, &path, &encoded).await {
            // The image is stored and usable; only its record is missing.
            tracing::error!(key = %job.key, error = %e, "rendered layer not recorded");
        }
        tracing::info!(
            key = %job.key,
            layer = %job.request.describe(),
            ms = started.elapsed().as_millis() as u64,
            "rendered layer"
        );
        Ok(layer)
    }
}
