//! Workers: claim a task, render it, store and record the layer.
//!
//! A pool of `slots` loops runs in any process that renders (`serve` with
//! `jobs.in_process`, and `layercake worker`). Each loop claims one task at
//! a time under a lease, renews the lease every third of it while the
//! render runs, and finishes the run in one transaction. An idle loop waits
//! for work queued in this process (woken at once) or polls for work queued
//! elsewhere and for leases that expired.
//!
//! What a run does, in order: rebuild the render request from the task's
//! parameters (the asset version they name), check that its layer key is
//! the task's, render with the asset's backend under the timeout, validate
//! the output against the canvas, encode the layer file, store it *only if
//! absent* (a layer registered meanwhile, or stored by a worker that lost
//! its lease, wins and is not recorded twice), record it, and report.
//! Failures that may pass (renderer errors, timeouts, store outages) are
//! retried with exponential backoff up to `jobs.max_attempts`; the others
//! (an asset version no worker can resolve, a broken template) fail at once.

use super::{Jobs, LayerJob, Origin, Recorder, TaskParams, backoff, validate};
use crate::compose::layerfile;
use crate::error::Error;
use crate::meta::{Meta, Outcome, RunRow, TaskRow};
use crate::render::{RenderError, Renderers};
use crate::service::AssetRegistry;
use crate::store::{BlobStore, layer_path};
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

/// Limits of a worker pool.
#[derive(Debug, Clone, Copy)]
pub struct WorkerLimits {
    /// Renders at once in this process.
    pub slots: usize,
    /// Longest one render may take.
    pub timeout: Duration,
    /// Largest layer accepted (pixels).
    pub max_pixels: u64,
}

/// Why a run failed, and whether another attempt may succeed.
struct Failure {
    message: String,
    transient: bool,
}

impl Failure {
    fn permanent(message: impl Into<String>) -> Failure {
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
    meta: Arc<Meta>,
    store: BlobStore,
    jobs: Arc<Jobs>,
    assets: Arc<AssetRegistry>,
    renderers: Renderers,
    recorder: Arc<dyn Recorder>,
    limits: WorkerLimits,
    /// `host/pid`, the prefix of every slot's name.
    name: String,
}

impl Worker {
    pub fn new(
        jobs: Arc<Jobs>,
        store: BlobStore,
        assets: Arc<AssetRegistry>,
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

    /// Starts the slots on `tracker`; they stop claiming when `stop` fires
    /// and end after their current run.
    pub fn spawn(self: &Arc<Self>, tracker: &TaskTracker, stop: &CancellationToken) {
        for slot in 0..self.limits.slots.max(1) {
            let (me, stop) = (Arc::clone(self), stop.clone());
            tracker.spawn(async move { me.slot(slot, stop).await });
        }
        tracing::info!(worker = %self.name, slots = self.limits.slots.max(1), "render workers started");
    }

    async fn slot(self: Arc<Self>, slot: usize, stop: CancellationToken) {
        let name = format!("{}/{slot}", self.name);
        let settings = self.jobs.settings().clone();
        let lease = Duration::from_secs(settings.lease_secs);
        let poll = Duration::from_millis(settings.poll_ms);
        let mut last_reap = Instant::now();
        while !stop.is_cancelled() {
            let queued = self.jobs.work_queued();
            tokio::pin!(queued);
            queued.as_mut().enable();
            let until = self.meta.now() + micros(lease);
            match self.meta.claim_task(&name, until).await {
                Ok(Some((task, run))) => {
                    self.run(task, run, lease).await;
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(worker = %name, error = %e, "cannot claim tasks"),
            }
            if slot == 0 && last_reap.elapsed() >= lease {
                last_reap = Instant::now();
                self.reap().await;
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = &mut queued => {}
                () = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// Fails tasks abandoned on their last attempt.
    async fn reap(&self) {
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
    }

    async fn run(&self, task: TaskRow, run: RunRow, lease: Duration) {
        let started = Instant::now();
        let heartbeat = {
            let (meta, task_id, run_id) = (Arc::clone(&self.meta), task.id, run.id);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(lease / 3).await;
                    match meta
                        .renew_lease(task_id, run_id, meta.now() + micros(lease))
                        .await
                    {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(task = %task_id, "lease lost; another worker owns the task now");
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(task = %task_id, error = %e, "cannot renew the lease")
                        }
                    }
                }
            })
        };
        let result = self.execute(&task, &run).await;
        heartbeat.abort();
        let settings = self.jobs.settings();
        let outcome = match &result {
            Ok(files) => Outcome::Success {
                files: files.clone(),
            },
            Err(f) if f.transient && task.attempts < task.max_attempts => Outcome::Retry {
                error: f.message.clone(),
                not_before: self.meta.now()
                    + micros(backoff(
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
            Ok(_) => {
                tracing::info!(task = %task.id, layer = %task.title, attempt = task.attempts, ms = started.elapsed().as_millis() as u64, "rendered layer")
            }
            Err(f) => {
                tracing::warn!(task = %task.id, layer = %task.title, attempt = task.attempts, retry = matches!(outcome, Outcome::Retry { .. }), error = %f.message, "render failed")
            }
        }
        let finished = self.finish(&task, &run, &outcome).await;
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
                        tracing::warn!(task = %task.id, "run finished after its lease was taken over; its result stands only in the store");
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

    /// Renders, validates, stores and records; returns the result file ids.
    async fn execute(&self, task: &TaskRow, run: &RunRow) -> Result<Vec<Uuid>, Failure> {
        let params: TaskParams = serde_json::from_str(&task.parameters)
            .map_err(|e| Failure::permanent(format!("unreadable task parameters: {e}")))?;
        let asset = self
            .assets
            .resolve(params.asset_id, params.asset_version)
            .await
            .map_err(|e| Failure::permanent(e.to_string()))?;
        let job: LayerJob = params.request(asset).map_err(Failure::permanent)?;
        if job.key.hex() != task.layer_key {
            return Err(Failure::permanent(format!(
                "the task's parameters give layer key {}, not {}: the asset definition changed under its version",
                job.key, task.layer_key
            )));
        }
        let renderer = Arc::clone(self.renderers.for_asset(&job.request.asset)?);
        let out = tokio::time::timeout(self.limits.timeout, renderer.render(&job.request))
            .await
            .map_err(|_| RenderError::Timeout(self.limits.timeout))??;
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
        let origin = Origin {
            job: task.job_id,
            task: task.id,
        };
        // Never overwrite: an image stored for this key meanwhile wins.
        let created = self
            .store
            .put_new(&path, encoded.clone())
            .await
            .map_err(Error::from)?;
        if !created {
            tracing::info!(key = %job.key, "the layer was stored while rendering it; keeping the stored one");
            if self
                .meta
                .layer_recorded(&task.layer_key)
                .await
                .map_err(Error::from)?
            {
                return Ok(Vec::new());
            }
            // Stored by a worker that died before recording it: record it now.
            let stored = self
                .store
                .get(&path)
                .await
                .map_err(Error::from)?
                .ok_or_else(|| Error::unavailable("the stored layer vanished"))?;
            let max = self.limits.max_pixels;
            let bytes = stored.clone();
            let existing = tokio::task::spawn_blocking(move || layerfile::decode(&bytes, max))
                .await
                .map_err(|e| Error::Internal(format!("decode task: {e}")))?
                .map_err(|e| Failure::permanent(format!("stored layer {}: {e}", job.key)))?;
            return self
                .record(&job, &existing, &path, &stored, origin, run)
                .await;
        }
        self.record(&job, &layer, &path, &encoded, origin, run)
            .await
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
        let (layer_id, file_id) = self
            .recorder
            .rendered(job, layer, path, bytes, origin)
            .await?;
        let asset = &job.request.asset;
        self.jobs
            .webhooks()
            .emit(
                asset.org,
                "layer.created",
                serde_json::json!({
                    "layerId": layer_id,
                    "fileId": file_id,
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
        Ok(vec![file_id])
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}
