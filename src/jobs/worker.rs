//! Workers: claim a task, render it, store and record the layer.
//!
//! A pool of `slots` loops runs in any process that renders (`serve` with
//! `jobs.in_process`, and `layercake worker`). Each loop claims one task at
//! a time under a lease, renews the lease every third of it while the
//! render runs, and finishes the run in one transaction. An idle loop waits
//! for work queued in this process (woken at once) or polls for work queued
//! elsewhere and for leases that expired.
//!
//! A claim that finds its key already recorded (the claim's transaction
//! looks), and a task asked to render a recorded key again (`rerender`),
//! first read the stored layer: if it is there and usable, nothing renders
//! and the run finishes as a success with that layer (waiters are woken as
//! for a render); else it renders as below.
//!
//! What a run does, in order: rebuild the render request from the task's
//! parameters (the asset version they name), check that its layer key is
//! the task's, render with the asset's backend under its timeout, validate
//! the output against the canvas, encode the layer file, store it *only if
//! absent* (a usable layer registered meanwhile, or stored by a worker that
//! lost its lease, wins; an unusable one is replaced), record it (once per
//! key: a unique index), and report. A worker that learns it lost its lease
//! stores nothing.
//! Failures that may pass (renderer errors, timeouts, store outages) are
//! retried with exponential backoff up to `jobs.max_attempts`; the others
//! (an asset version no worker can resolve, a broken template) fail at once.

use super::{Jobs, LayerJob, Origin, Recorder, TaskParams, validate};
use crate::compose::layerfile;
use crate::error::Error;
use crate::meta::{Claimed, Existing, Meta, Outcome, RunRow, TaskRow, backoff};
use crate::render::{RenderError, Renderers};
use crate::store::BlobStore;
use crate::telemetry;
use bytes::Bytes;
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

/// Limits of a worker pool.
#[derive(Debug, Clone, Copy)]
pub struct WorkerLimits {
    /// Renders at once in this process.
    pub slots: usize,
    /// Largest layer accepted (pixels).
    pub max_pixels: u64,
}

/// Why a run failed, and whether another attempt may succeed.
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

/// The render workers of one process.
pub struct Worker {
    pub(super) meta: Arc<Meta>,
    pub(super) store: BlobStore,
    pub(super) jobs: Arc<Jobs>,
    assets: Arc<dyn super::Definitions>,
    pub(super) renderers: Renderers,
    recorder: Arc<dyn Recorder>,
    pub(super) limits: WorkerLimits,
    /// `host/pid`, the prefix of every slot's name.
    name: String,
}

impl Worker {
    pub fn new(
        jobs: Arc<Jobs>,
        store: BlobStore,
        assets: Arc<dyn super::Definitions>,
        renderers: Renderers,
        recorder: Arc<dyn Recorder>,
        limits: WorkerLimits,
    ) -> Worker {
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        Worker {
            meta: Arc::clone(jobs.meta()),
            store,
            jobs,
            assets,
            renderers,
            recorder,
            limits,
            name: format!("{host}/{}", std::process::id()),
        }
    }

    /// Starts the slots and the reaper on `tracker`; they stop claiming
    /// when `stop` fires and end after their current run.
    pub fn spawn(self: &Arc<Self>, tracker: &TaskTracker, stop: &CancellationToken) {
        let slots = self.limits.slots.max(1);
        let permits = Arc::new(Semaphore::new(slots));
        for slot in 0..slots {
            let (me, stop, permits) = (Arc::clone(self), stop.clone(), Arc::clone(&permits));
            tracker.spawn(async move { me.slot(slot, permits, stop).await });
        }
        let (me, stop) = (Arc::clone(self), stop.clone());
        tracker.spawn(async move { me.reaper(stop).await });
        // Shown from the start, at 0, wherever renders run.
        metrics::counter!(telemetry::RENDERS_DUPLICATE).increment(0);
        tracing::info!(worker = %self.name, slots, "render workers started");
    }

    /// One render at a time. The permit goes with the render itself, so a
    /// render that outlives its timeout (a CPU-bound one cannot be stopped)
    /// still counts against `slots` until it really ends.
    async fn slot(self: Arc<Self>, slot: usize, permits: Arc<Semaphore>, stop: CancellationToken) {
        let name = format!("{}/{slot}", self.name);
        let settings = self.jobs.settings().clone();
        let lease = Duration::from_secs(settings.lease_secs);
        let poll = Duration::from_millis(settings.poll_ms);
        while !stop.is_cancelled() {
            let permit = tokio::select! {
                () = stop.cancelled() => break,
                p = Arc::clone(&permits).acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let queued = self.jobs.work_queued();
            tokio::pin!(queued);
            queued.as_mut().enable();
            let until = self.meta.after(lease);
            // While the object store is down and its output could not wait
            // in the outbox, a render would only burn one of the task's
            // attempts: leave the task queued until the store is back.
            let claim = if self.store.is_up() || self.store.can_defer() {
                self.meta.claim_task(&name, until, None).await
            } else {
                Ok(None)
            };
            match claim {
                Ok(Some(Claimed {
                    task,
                    run,
                    existing,
                })) => {
                    self.run(task, run, existing, lease, permit).await;
                    continue;
                }
                Ok(None) => drop(permit),
                Err(e) => {
                    drop(permit);
                    tracing::warn!(worker = %name, error = %e, "cannot claim tasks");
                }
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = &mut queued => {}
                () = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// Every lease period: fails tasks abandoned on their last attempt and
    /// stops jobs left with nothing active (a safety net for lost events).
    async fn reaper(self: Arc<Self>, stop: CancellationToken) {
        let every = Duration::from_secs(self.jobs.settings().lease_secs);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            match self.meta.fail_abandoned().await {
                Ok(done) => {
                    for (task, jobs) in done {
                        tracing::warn!(task = %task.id, title = %task.title, "task abandoned on its last attempt; failed");
                        self.jobs.task_changed(task.id);
                        for j in jobs {
                            self.jobs.job_stopped(&j).await;
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot check for abandoned tasks"),
            }
            let scheduling = Duration::from_secs(self.jobs.settings().scheduling_timeout_secs);
            match self.meta.stop_idle_jobs(scheduling).await {
                Ok(jobs) => {
                    for j in jobs {
                        tracing::warn!(job = %j.id, state = %j.scheduler_state, "job stopped by the reaper: no active task left, or its creation stalled");
                        self.jobs.job_stopped(&j).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot check for idle jobs"),
            }
        }
    }

    async fn run(
        &self,
        task: TaskRow,
        run: RunRow,
        existing: Option<Existing>,
        lease: Duration,
        permit: OwnedSemaphorePermit,
    ) {
        let started = Instant::now();
        let queued_since = task.created_at.max(task.not_before);
        metrics::histogram!(telemetry::QUEUE_WAIT)
            .record((run.started_at - queued_since).max(0) as f64 / 1e6);
        let lost = CancellationToken::new();
        let _heartbeat = AbortOnDrop(tokio::spawn({
            let (meta, task_id, run_id, lost) =
                (Arc::clone(&self.meta), task.id, run.id, lost.clone());
            async move {
                loop {
                    tokio::time::sleep(lease / 3).await;
                    match meta.renew_lease(task_id, run_id, meta.after(lease)).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(task = %task_id, "lease lost; another worker owns the task now");
                            lost.cancel();
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(task = %task_id, error = %e, "cannot renew the lease")
                        }
                    }
                }
            }
        }));
        let result = AssertUnwindSafe(self.execute(&task, &run, existing, &lost, permit))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err(Failure::permanent("the render panicked")));
        drop(_heartbeat);
        if !matches!(result, Ok(Made::Reused(_))) {
            let label = match &result {
                Ok(_) => "success",
                Err(f) if f.transient && task.attempts < task.max_attempts => "retry",
                Err(_) => "failure",
            };
            metrics::counter!(telemetry::RENDERS, "result" => label).increment(1);
            metrics::histogram!(telemetry::RENDER_DURATION).record(started.elapsed().as_secs_f64());
        }
        self.conclude(&task, &run, result, started).await;
    }

    /// Logs how a run ended, records it and tells whoever waits: a
    /// failure that may pass is retried after its backoff while attempts
    /// are left.
    pub(super) async fn conclude(
        &self,
        task: &TaskRow,
        run: &RunRow,
        result: Result<Made, Failure>,
        started: Instant,
    ) {
        let settings = self.jobs.settings();
        let outcome = match &result {
            Ok(Made::Reused(existing)) => {
                metrics::counter!(telemetry::RENDERS_REUSED, "at" => "claim").increment(1);
                tracing::info!(task = %task.id, layer = %task.title, existing = %existing.layer, "layer already stored and recorded; not rendered again");
                Outcome::Reused(*existing)
            }
            Ok(Made::Rendered(files)) => Outcome::Success {
                files: files.clone(),
            },
            Err(f) if f.transient && task.attempts < task.max_attempts => Outcome::Retry {
                error: f.message.clone(),
                not_before: self.meta.after(backoff(
                    task.attempts,
                    settings.backoff_ms,
                    settings.backoff_max_ms,
                )),
            },
            Err(f) => Outcome::Fail {
                error: f.message.clone(),
            },
        };
        match &result {
            Ok(Made::Reused(_)) => {}
            Ok(Made::Rendered(_)) => {
                tracing::info!(task = %task.id, layer = %task.title, worker = %run.worker, attempt = task.attempts, ms = started.elapsed().as_millis() as u64, "rendered layer")
            }
            Err(f) => {
                tracing::warn!(task = %task.id, layer = %task.title, worker = %run.worker, attempt = task.attempts, retry = matches!(outcome, Outcome::Retry { .. }), error = %f.message, "render failed")
            }
        }
        self.report(task, run, &outcome).await;
    }

    /// Records how the run ended and tells whoever waits.
    pub(super) async fn report(&self, task: &TaskRow, run: &RunRow, outcome: &Outcome) {
        let finished = self.finish(task, run, outcome).await;
        self.jobs.task_changed(task.id);
        for j in finished {
            self.jobs.job_stopped(&j).await;
        }
    }

    /// Records the outcome, retrying a briefly unavailable store; if it
    /// stays down, the lease expires and the task is run again.
    async fn finish(
        &self,
        task: &TaskRow,
        run: &RunRow,
        outcome: &Outcome,
    ) -> Vec<crate::meta::JobRow> {
        for attempt in 0..5u32 {
            match self.meta.finish_run(task.id, run.id, outcome).await {
                Ok(f) => {
                    if !f.owned {
                        tracing::warn!(task = %task.id, "run finished after its lease was taken over; left to the new owner");
                    }
                    return f.stopped_jobs;
                }
                Err(e) => {
                    tracing::warn!(task = %task.id, error = %e, "cannot record the run; retrying");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
            }
        }
        Vec::new()
    }

    /// A stored layer at `path` that decodes and fits `job`, if any.
    async fn usable_stored(
        &self,
        job: &LayerJob,
        path: &str,
    ) -> Result<Option<(crate::compose::LayerImage, Bytes)>, Failure> {
        let Some(bytes) = self.store.get(path).await.map_err(Error::from)? else {
            return Ok(None);
        };
        let (b, max) = (bytes.clone(), self.limits.max_pixels);
        let decoded = tokio::task::spawn_blocking(move || layerfile::decode(&b, max))
            .await
            .map_err(|e| Error::Internal(format!("decode task: {e}")))?;
        Ok(match decoded {
            Ok(l) if validate(&job.request, &l).is_ok() => Some((l, bytes)),
            _ => None,
        })
    }

    /// Renders, validates, stores and records; or, when the key is
    /// recorded (`existing`, found by the claim) or asked to render again
    /// and a usable layer is stored, finishes with that one unrendered.
    async fn execute(
        &self,
        task: &TaskRow,
        run: &RunRow,
        existing: Option<Existing>,
        lost: &CancellationToken,
        permit: OwnedSemaphorePermit,
    ) -> Result<Made, Failure> {
        let job = self.job_of(task).await?;
        if let Some(made) = self.reuse_stored(&job, task, run, existing).await? {
            return Ok(made);
        }
        let (renderer, timeout) = self.renderers.for_asset(&job.request.asset)?;
        let req = job.request.clone();
        let render = tokio::spawn(async move {
            let out = renderer.render(&req).await;
            drop(permit);
            out
        });
        let out = match tokio::time::timeout(timeout, render).await {
            Err(_) => return Err(RenderError::Timeout(timeout).into()),
            Ok(Err(join)) => {
                return Err(Failure::permanent(format!("the renderer panicked: {join}")));
            }
            Ok(Ok(out)) => out?,
        };
        self.keep(&job, task, run, out, lost.is_cancelled()).await
    }

    /// The layer a task renders, rebuilt from its parameters and the asset
    /// version they name, checked against the task's layer key.
    pub(super) async fn job_of(&self, task: &TaskRow) -> Result<LayerJob, Failure> {
        let params: TaskParams = serde_json::from_str(&task.parameters)
            .map_err(|e| Failure::permanent(format!("unreadable task parameters: {e}")))?;
        let asset = self
            .assets
            .resolve(params.asset_id, params.asset_version)
            .await
            // A store that blinks is worth a retry; a missing asset or a
            // recorded definition that no longer loads is not.
            .map_err(|e| Failure {
                transient: matches!(e, Error::Unavailable { .. }),
                message: e.to_string(),
            })?;
        let job: LayerJob = params.request(asset).map_err(Failure::permanent)?;
        if job.key.hex() != task.layer_key {
            return Err(Failure::permanent(format!(
                "the task's parameters give layer key {}, not {}: the asset definition changed under its version",
                job.key, task.layer_key
            )));
        }
        Ok(job)
    }

    /// When the key is recorded (`existing`, found by the claim) or the
    /// task renders it again: the stored layer, if it is there and usable,
    /// finishes the run unrendered. `None`: render it.
    pub(super) async fn reuse_stored(
        &self,
        job: &LayerJob,
        task: &TaskRow,
        run: &RunRow,
        existing: Option<Existing>,
    ) -> Result<Option<Made>, Failure> {
        // Recorded does not always mean stored where this worker reads (an
        // object may have been deleted, or still wait in another node's
        // outbox), and a rerender's caller found it missing or unusable:
        // look before rendering, render only if it is not there.
        if existing.is_none() && !task.rerender {
            return Ok(None);
        }
        let path = job.path();
        if let Some((l, bytes)) = self.usable_stored(job, &path).await? {
            let existing = match existing {
                Some(e) => Some(e),
                None => self
                    .meta
                    .recorded_layer(&task.layer_key)
                    .await
                    .map_err(Error::from)?,
            };
            return match existing {
                Some(e) => Ok(Some(Made::Reused(e))),
                // Stored but not recorded: record it, unrendered.
                None => self
                    .record(job, &l, &path, &bytes, origin(task), run)
                    .await
                    .map(|f| Some(Made::Rendered(f))),
            };
        }
        tracing::warn!(key = %job.key, task = %task.id, "the layer is recorded but its stored image is missing or unusable; rendering it again");
        Ok(None)
    }

    /// Validates a render's output against the canvas, encodes, stores
    /// (only if absent) and records it. `lost`: the lease was lost during
    /// the render, so the new owner stores the layer and this one nothing.
    pub(super) async fn keep(
        &self,
        job: &LayerJob,
        task: &TaskRow,
        run: &RunRow,
        out: crate::compose::LayerImage,
        lost: bool,
    ) -> Result<Made, Failure> {
        validate(&job.request, &out)?;
        if lost {
            return Err(Failure::permanent(
                "the lease was lost during the render; the new owner stores the layer",
            ));
        }
        let path = job.path();
        let origin = origin(task);
        let layer = Arc::new(out);
        let encoded = {
            let layer = Arc::clone(&layer);
            tokio::task::spawn_blocking(move || layerfile::encode(&layer))
                .await
                .map_err(|e| Error::Internal(format!("encode task: {e}")))?
                .map_err(|e| Error::Internal(format!("layer encode: {e}")))?
        };
        let encoded = Bytes::from(encoded);
        // Never overwrite a usable layer: one stored meanwhile (registered,
        // or by a worker that lost its lease) wins.
        if self
            .store
            .put_new(&path, encoded.clone())
            .await
            .map_err(Error::from)?
        {
            return self
                .record(job, &layer, &path, &encoded, origin, run)
                .await
                .map(Made::Rendered);
        }
        match self.usable_stored(job, &path).await? {
            // Stored (and recorded, or by a worker that died before
            // recording it) while this one rendered: the stored one wins,
            // and this render was wasted work.
            Some((existing, bytes)) => {
                metrics::counter!(telemetry::RENDERS_DUPLICATE).increment(1);
                tracing::warn!(key = %job.key, task = %task.id, "the layer was stored while rendering it (a duplicate render); keeping the stored one");
                self.record(job, &existing, &path, &bytes, origin, run)
                    .await
                    .map(Made::Rendered)
            }
            // Unusable (corrupt, truncated, wrong canvas): replace it.
            None => {
                tracing::warn!(key = %job.key, "the stored layer is unusable; replacing it with this render");
                self.store
                    .put(&path, encoded.clone())
                    .await
                    .map_err(Error::from)?;
                self.record(job, &layer, &path, &encoded, origin, run)
                    .await
                    .map(Made::Rendered)
            }
        }
    }

    async fn record(
        &self,
        job: &LayerJob,
        layer: &crate::compose::LayerImage,
        path: &str,
        bytes: &[u8],
        origin: Origin,
        run: &RunRow,
    ) -> Result<Vec<Uuid>, Failure> {
        let rec = self
            .recorder
            .rendered(job, layer, path, bytes, origin)
            .await?;
        if !rec.created {
            return Ok(vec![rec.file_id]);
        }
        let asset = &job.request.asset;
        self.jobs
            .webhooks()
            .emit(
                asset.org,
                "layer.created",
                serde_json::json!({
                    "layerId": rec.layer_id,
                    "fileId": rec.file_id,
                    "assetId": asset.id,
                    "assetVersion": asset.version,
                    "layer": asset.layers[job.request.layer].name,
                    "view": asset.views[job.request.view].name,
                    "layerKey": job.key.hex(),
                    "jobId": origin.job,
                    "taskId": origin.task,
                    "runId": run.id,
                }),
            )
            .await;
        Ok(vec![rec.file_id])
    }
}

fn origin(task: &TaskRow) -> Origin {
    Origin {
        job: task.job_id,
        task: task.id,
    }
}

/// What a run made of its task.
pub(super) enum Made {
    /// Rendered (or found stored unrecorded) and recorded: the file ids.
    Rendered(Vec<Uuid>),
    /// Stored and recorded already: not rendered.
    Reused(Existing),
}

/// Aborts a spawned task when dropped (also while unwinding).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
