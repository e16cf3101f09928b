//! The one task executor, for the in-process workers (`worker`) and the
//! remote render nodes (`node`): a claimed run is held under a [`Lease`],
//! and [`run`] carries it to its end the same way on both.
//!
//! - [`execute`] renders the run's layer with its asset's backend under the
//!   backend's timeout, validates the output against the canvas and encodes
//!   the layer file. The render runs in a task of its own holding the
//!   slot's permit, so a render that outlives its timeout (a CPU-bound one
//!   cannot be stopped) still counts against the slots until it ends.
//! - [`heartbeat`] renews the lease every third of it while the run goes
//!   on; a lease the queue gave to another worker fires `lost`, and the
//!   render is dropped at once (nothing of it is kept).
//! - One panic boundary: a renderer that panics, or a panic anywhere in the
//!   run, is a failed run (for good), never a dead slot or a dead node, and
//!   never a lease renewed for ever.
//! - The lease says where the outcome goes: the database (`worker`'s lease,
//!   which stores and records the layer) or the server over HTTP (`node`'s,
//!   which uploads it). The server decides on retries from the
//!   [`Failure`]'s `transient`.
//! - A task whose parameters give this process another layer key than the
//!   task's is a version mismatch (this worker builds keys unlike whoever
//!   queued the task): a failure that may pass, so another worker takes the
//!   retry; `jobs.max_attempts` bounds it when no worker can (both sides
//!   say so through [`Failure::key_mismatch`]).

use super::LayerJob;
use crate::compose::{LayerImage, layerfile};
use crate::error::Error;
use crate::render::{RenderError, RenderRequest, Renderers};
use crate::telemetry;
use bytes::Bytes;
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Why a run failed, and whether another attempt may succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Failure {
    pub(super) message: String,
    pub(super) transient: bool,
}

impl Failure {
    pub(super) fn permanent(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            transient: false,
        }
    }

    pub(super) fn transient(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            transient: true,
        }
    }

    /// The lease went to another worker during the render.
    pub(super) fn lease_lost() -> Failure {
        Failure::permanent("the lease was lost during the render; the new owner stores the layer")
    }

    /// The task's parameters give `built` here, not the task's `queued`:
    /// this worker runs another version of layercake's keys (or the asset
    /// definition changed under its version). Another worker may take the
    /// retry; attempts bound it.
    pub(super) fn key_mismatch(built: impl std::fmt::Display, queued: &str) -> Failure {
        Failure::transient(format!(
            "this worker builds layer key {built} for the task, not {queued}: it runs another version of layercake's keys, or the asset definition changed under its version"
        ))
    }
}

impl From<RenderError> for Failure {
    fn from(e: RenderError) -> Failure {
        Failure {
            transient: e.is_transient(),
            message: e.to_string(),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure {
            transient: matches!(e, Error::Unavailable { .. } | Error::Internal(_)),
            message: e.to_string(),
        }
    }
}

/// A layer checked against its request and encoded as a layer file.
pub(super) struct Encoded {
    pub(super) layer: Arc<LayerImage>,
    pub(super) bytes: Bytes,
}

/// What renewing a lease found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Renewal {
    /// Renewed; with the lease's new length when the queue changed it.
    Kept(Option<Duration>),
    /// The run no longer holds its task.
    Lost,
    /// Not renewed this time (the queue could not be reached).
    Failed(String),
}

/// Where a run starts: the layer to render, or what the run kept without
/// rendering (the layer was found stored).
pub(super) enum Start<K> {
    Render(LayerJob),
    Kept(K),
}

/// A claimed run of a task, held under a lease: how the executor renews it
/// and where the run's outcome goes.
#[async_trait::async_trait]
pub(super) trait Lease: Send + Sync {
    /// What keeping a layer gives (the database: the recorded files; a
    /// node: the layer file to upload).
    type Kept: Send;
    /// The task, for logs.
    fn task_id(&self) -> Uuid;
    /// The lease's length when the run was claimed.
    fn period(&self) -> Duration;
    /// Renews the lease.
    async fn renew(&self) -> Renewal;
    /// The layer this run renders, rebuilt from the task and checked
    /// against its key.
    ///
    /// # Errors
    /// A [`Failure`] when the task cannot be rendered here.
    async fn start(&self) -> Result<Start<Self::Kept>, Failure>;
    /// Keeps the rendered, encoded layer.
    ///
    /// # Errors
    /// A [`Failure`] when it cannot be kept.
    async fn keep(&self, job: &LayerJob, layer: Encoded) -> Result<Self::Kept, Failure>;
    /// Ends the run: reports what was kept, or the failure. The render
    /// counter's label, `None` when it is not counted.
    async fn end(&self, result: Result<Self::Kept, Failure>) -> Option<&'static str>;
    /// Ends a run whose lease was lost during the render (by default as
    /// any failure, so the run is closed).
    async fn dropped(&self, failure: Failure) -> Option<&'static str> {
        self.end(Err(failure)).await
    }
}

/// Carries one claimed run to its end: its layer is rendered and encoded
/// ([`execute`]) and kept, while [`heartbeat`] renews the lease; then the
/// lease reports how it went. Any panic on the way is a failed run.
pub(super) async fn run<L: Lease>(
    lease: &L,
    renderers: &Renderers,
    permit: Option<OwnedSemaphorePermit>,
) {
    let started = Instant::now();
    let lost = CancellationToken::new();
    let work = AssertUnwindSafe(work(lease, renderers, permit, &lost)).catch_unwind();
    let result = tokio::select! {
        r = work => r.unwrap_or_else(|_| Err(Failure::permanent("the render panicked"))),
        // Never: the heartbeat goes on as long as the run.
        () = heartbeat(lease, &lost) => Err(Failure::lease_lost()),
    };
    let seconds = started.elapsed().as_secs_f64();
    let label = match result {
        Err(f) if lost.is_cancelled() => {
            tracing::warn!(task = %lease.task_id(), "render dropped: another worker owns the task now");
            lease.dropped(f).await
        }
        result => lease.end(result).await,
    };
    if let Some(label) = label {
        metrics::counter!(telemetry::RENDERS, "result" => label).increment(1);
        metrics::histogram!(telemetry::RENDER_DURATION).record(seconds);
    }
}

/// Start, render, keep: the run's work, inside the panic boundary.
async fn work<L: Lease>(
    lease: &L,
    renderers: &Renderers,
    permit: Option<OwnedSemaphorePermit>,
    lost: &CancellationToken,
) -> Result<L::Kept, Failure> {
    let job = match lease.start().await? {
        Start::Kept(kept) => return Ok(kept),
        Start::Render(job) => job,
    };
    let encoded = execute(&job, renderers, permit, lost).await?;
    if lost.is_cancelled() {
        return Err(Failure::lease_lost());
    }
    lease.keep(&job, encoded).await
}

/// Renders `job` with its asset's backend under the backend's timeout,
/// validates the output and encodes it. The render runs in a task of its
/// own holding `permit` (a panic there is a failed run); waiting for it
/// stops when `lost` fires.
///
/// # Errors
/// A [`Failure`]: the backend's, a timeout (may pass), a panic or output
/// that does not fit the canvas (for good).
pub(super) async fn execute(
    job: &LayerJob,
    renderers: &Renderers,
    permit: Option<OwnedSemaphorePermit>,
    lost: &CancellationToken,
) -> Result<Encoded, Failure> {
    let (renderer, timeout) = renderers.for_asset(&job.request.asset)?;
    let req = job.request.clone();
    let render = tokio::spawn(async move {
        let out = renderer.render(&req).await;
        drop(permit);
        out
    });
    let out = tokio::select! {
        r = tokio::time::timeout(timeout, render) => match r {
            Err(_) => return Err(RenderError::Timeout(timeout).into()),
            Ok(Err(join)) => {
                return Err(Failure::permanent(format!("the renderer panicked: {join}")));
            }
            Ok(Ok(out)) => out?,
        },
        () = lost.cancelled() => return Err(Failure::lease_lost()),
    };
    encode(job, out).await
}

/// Validates a layer against `job`'s request and encodes the layer file.
///
/// # Errors
/// A [`Failure`] for good when the layer does not fit; one that may pass
/// when the encoder fails.
pub(super) async fn encode(job: &LayerJob, out: LayerImage) -> Result<Encoded, Failure> {
    validate(&job.request, &out)?;
    let layer = Arc::new(out);
    let bytes = {
        let layer = Arc::clone(&layer);
        tokio::task::spawn_blocking(move || layerfile::encode(&layer))
            .await
            .map_err(|e| Error::Internal(format!("encode task: {e}")))?
            .map_err(|e| Error::Internal(format!("layer encode: {e}")))?
    };
    Ok(Encoded {
        layer,
        bytes: Bytes::from(bytes),
    })
}

/// Renews `lease` every third of it (of its new length, when a renewal
/// changes it). When the run no longer holds its task, fires `lost` and
/// renews no more. Never returns: the run's end drops it.
async fn heartbeat<L: Lease>(lease: &L, lost: &CancellationToken) {
    let mut every = lease.period() / 3;
    loop {
        tokio::time::sleep(every).await;
        match lease.renew().await {
            Renewal::Kept(Some(period)) => every = period / 3,
            Renewal::Kept(None) => {}
            Renewal::Lost => {
                tracing::warn!(task = %lease.task_id(), "lease lost; another worker owns the task now");
                lost.cancel();
                return std::future::pending().await;
            }
            Renewal::Failed(e) => {
                tracing::warn!(task = %lease.task_id(), error = %e, "cannot renew the lease");
            }
        }
    }
}

/// `host/pid`: the prefix of every slot's name, in runs and logs.
pub(super) fn worker_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}/{}", std::process::id())
}

/// Checks a renderer's output against what was asked for.
///
/// # Errors
/// [`RenderError::Rejected`] naming the mismatch.
pub fn validate(req: &RenderRequest, out: &LayerImage) -> Result<(), RenderError> {
    if (out.canvas_width, out.canvas_height) != (req.width, req.height) {
        return Err(RenderError::Rejected(format!(
            "output canvas is {}x{}, expected {}x{}",
            out.canvas_width, out.canvas_height, req.width, req.height
        )));
    }
    validate_placement(out).map_err(RenderError::Rejected)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{BuiltinRenderer, Renderer};
    use std::sync::Mutex;

    /// A renderer that panics, waits for ever, or draws as the built-in.
    enum Fake {
        Panics,
        Hangs,
        Draws,
    }

    #[async_trait::async_trait]
    impl Renderer for Fake {
        async fn render(&self, req: &RenderRequest) -> Result<LayerImage, RenderError> {
            match self {
                Fake::Panics => panic!("the renderer's own bug"),
                Fake::Hangs => std::future::pending().await,
                Fake::Draws => BuiltinRenderer::new(1 << 26).render(req).await,
            }
        }
    }

    /// A lease that records what the executor told it.
    #[derive(Default)]
    struct Recording {
        /// `start` panics.
        panics: bool,
        /// What each renewal answers, in turn (then `Kept(None)`).
        renewals: Mutex<Vec<Renewal>>,
        renewed: Mutex<u32>,
        kept: Mutex<Option<usize>>,
        ended: Mutex<Option<Result<usize, Failure>>>,
        dropped: Mutex<Option<Failure>>,
    }

    #[async_trait::async_trait]
    impl Lease for Recording {
        type Kept = usize;
        fn task_id(&self) -> Uuid {
            Uuid::nil()
        }
        fn period(&self) -> Duration {
            Duration::from_secs(3)
        }
        async fn renew(&self) -> Renewal {
            *self.renewed.lock().unwrap() += 1;
            let mut r = self.renewals.lock().unwrap();
            if r.is_empty() {
                Renewal::Kept(None)
            } else {
                r.remove(0)
            }
        }
        async fn start(&self) -> Result<Start<usize>, Failure> {
            assert!(!self.panics, "a bug before the render");
            Ok(Start::Render(job()))
        }
        async fn keep(&self, _: &LayerJob, layer: Encoded) -> Result<usize, Failure> {
            *self.kept.lock().unwrap() = Some(layer.bytes.len());
            Ok(layer.bytes.len())
        }
        async fn end(&self, result: Result<usize, Failure>) -> Option<&'static str> {
            let label = if result.is_ok() { "success" } else { "failure" };
            *self.ended.lock().unwrap() = Some(result);
            Some(label)
        }
        async fn dropped(&self, failure: Failure) -> Option<&'static str> {
            *self.dropped.lock().unwrap() = Some(failure);
            None
        }
    }

    fn job() -> LayerJob {
        let cat = crate::catalog::Catalog::demo().unwrap();
        let asset = Arc::clone(cat.assets().next().unwrap());
        let config = crate::keys::Configuration::defaults(&asset);
        let size = (asset.width, asset.height);
        LayerJob {
            key: crate::keys::layer_key(&asset, 0, 0, &config, size),
            request: RenderRequest {
                values: config.subset(&asset.layers[0].depends_on),
                asset,
                layer: 0,
                view: 0,
                width: size.0,
                height: size.1,
            },
        }
    }

    fn renderers(r: Fake) -> Renderers {
        let s = crate::config::Settings::load(None, &crate::config::Overrides::default()).unwrap();
        Renderers::from_settings(&s.render, Some(Arc::new(r))).unwrap()
    }

    fn ended(lease: &Recording) -> Result<usize, Failure> {
        lease.ended.lock().unwrap().clone().expect("the run ended")
    }

    #[tokio::test]
    async fn a_panic_is_a_failed_run_for_good_and_the_caller_goes_on() {
        // In the renderer (its own task), and in the run itself.
        for (renderer, panics, says) in [
            (Fake::Panics, false, "the renderer panicked"),
            (Fake::Draws, true, "the render panicked"),
        ] {
            let lease = Recording {
                panics,
                ..Recording::default()
            };
            run(&lease, &renderers(renderer), None).await;
            let f = ended(&lease).unwrap_err();
            assert!(f.message.contains(says), "{f:?}");
            assert!(!f.transient, "{f:?}");
            assert!(lease.kept.lock().unwrap().is_none());
        }
    }

    #[tokio::test]
    async fn a_render_is_validated_encoded_and_kept() {
        let lease = Recording::default();
        run(&lease, &renderers(Fake::Draws), None).await;
        let kept = lease.kept.lock().unwrap().expect("kept");
        assert!(kept > 0);
        assert_eq!(ended(&lease), Ok(kept));
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_lease_drops_the_render_at_once() {
        let lease = Recording::default();
        lease.renewals.lock().unwrap().extend([
            Renewal::Failed("the queue blinked".into()),
            Renewal::Kept(Some(Duration::from_secs(30))),
            Renewal::Lost,
        ]);
        run(&lease, &renderers(Fake::Hangs), None).await;
        assert_eq!(
            *lease.renewed.lock().unwrap(),
            3,
            "renewed until lost, then no more"
        );
        assert_eq!(*lease.dropped.lock().unwrap(), Some(Failure::lease_lost()));
        assert!(lease.ended.lock().unwrap().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn the_permit_stays_with_a_render_that_outlives_its_timeout() {
        let permits = Arc::new(tokio::sync::Semaphore::new(1));
        let permit = Arc::clone(&permits).acquire_owned().await.unwrap();
        let lease = Recording::default();
        run(&lease, &renderers(Fake::Hangs), Some(permit)).await;
        let f = ended(&lease).unwrap_err();
        assert!(f.transient && f.message.contains("longer than"), "{f:?}");
        assert_eq!(permits.available_permits(), 0, "the render still runs");
    }

    #[test]
    fn failures_say_whether_they_may_pass() {
        let table = [
            (
                Failure::from(RenderError::Timeout(Duration::from_secs(1))),
                true,
            ),
            (Failure::from(RenderError::Failed("farm down".into())), true),
            (Failure::from(RenderError::Rejected("400".into())), false),
            (Failure::from(Error::unavailable("store down")), true),
            (Failure::from(Error::Internal("encode".into())), true),
            (Failure::from(Error::invalid("body", "bad")), false),
            (Failure::key_mismatch("abc", "def"), true),
            (Failure::lease_lost(), false),
        ];
        for (f, transient) in table {
            assert_eq!(f.transient, transient, "{f:?}");
        }
        assert!(
            Failure::key_mismatch("abc", "def")
                .message
                .contains("layer key abc for the task, not def")
        );
    }
}
