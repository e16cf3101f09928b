//! Workers: claim a task, render it, store and record the layer.
//!
//! A pool of `slots` loops runs in any process that renders (`serve` with
//! `jobs.in_process`, and `layercake worker`). Each loop claims one task at
//! a time under a lease and hands it to the task executor (`execute`, the
//! same as a remote node's) through a database lease (`DbLease`): the
//! executor renews the lease every third of it while the render runs, and
//! the lease finishes the run in one transaction. An idle loop waits for
//! work queued in this process (woken at once) or polls for work queued
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
//! the output against the canvas, encode the layer file (all in
//! `execute`), store it *only if absent* (a usable layer registered
//! meanwhile, or stored by a worker that lost its lease, wins; an unusable
//! one is replaced), record it (once per key: a unique index), and report
//! (`keep`). A worker that learns it lost its lease stores nothing.
//! Failures that may pass (renderer errors, timeouts, store outages, a
//! layer key this worker builds otherwise) are retried with exponential
//! backoff up to `jobs.max_attempts`; the others (an asset version no
//! worker can resolve, a broken template, a panic) fail at once.

use super::Jobs;
use super::execute::{self, Encoded, Failure, Lease, Renewal, Start};
use super::keep::Made;
use super::{LayerJob, Recorder};
use crate::meta::{Claimed, Existing, Meta, Outcome, RunRow, TaskRow, backoff};
use crate::render::Renderers;
use crate::store::BlobStore;
use crate::telemetry;
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

/// The render workers of one process.
pub struct Worker {
    pub(super) meta: Arc<Meta>,
    pub(super) store: BlobStore,
    pub(super) jobs: Arc<Jobs>,
    pub(super) assets: Arc<dyn super::Definitions>,
    pub(super) renderers: Renderers,
    pub(super) recorder: Arc<dyn Recorder>,
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
        Worker {
            meta: Arc::clone(jobs.meta()),
            store,
            jobs,
            assets,
            renderers,
            recorder,
            limits,
            name: execute::worker_name(),
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

    /// Carries a claimed run to its end with the task executor.
    async fn run(
        &self,
        task: TaskRow,
        run: RunRow,
        existing: Option<Existing>,
        lease: Duration,
        permit: OwnedSemaphorePermit,
    ) {
        let queued_since = task.created_at.max(task.not_before);
        metrics::histogram!(telemetry::QUEUE_WAIT)
            .record((run.started_at - queued_since).max(0) as f64 / 1e6);
        let held = DbLease {
            worker: self,
            task,
            run,
            existing,
            lease,
            started: Instant::now(),
        };
        execute::run(&held, &self.renderers, Some(permit)).await;
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
}

/// A run of this process's worker, held in the database: renewed with
/// `Meta::renew_lease`, kept by storing and recording the layer, ended by
/// `Meta::finish_run`.
pub(super) struct DbLease<'a> {
    worker: &'a Worker,
    task: TaskRow,
    run: RunRow,
    /// The layer record the claim found for the task's key.
    existing: Option<Existing>,
    lease: Duration,
    started: Instant,
}

#[async_trait::async_trait]
impl Lease for DbLease<'_> {
    type Kept = Made;

    fn task_id(&self) -> Uuid {
        self.task.id
    }

    fn period(&self) -> Duration {
        self.lease
    }

    async fn renew(&self) -> Renewal {
        let meta = &self.worker.meta;
        match meta
            .renew_lease(self.task.id, self.run.id, meta.after(self.lease))
            .await
        {
            Ok(true) => Renewal::Kept(None),
            Ok(false) => Renewal::Lost,
            Err(e) => Renewal::Failed(e.to_string()),
        }
    }

    async fn start(&self) -> Result<Start<Made>, Failure> {
        let (w, task) = (self.worker, &self.task);
        let job = w.job_of(task).await?;
        Ok(
            match w.reuse_stored(&job, task, &self.run, self.existing).await? {
                Some(made) => Start::Kept(made),
                None => Start::Render(job),
            },
        )
    }

    async fn keep(&self, job: &LayerJob, layer: Encoded) -> Result<Made, Failure> {
        self.worker.keep(job, &self.task, &self.run, layer).await
    }

    async fn end(&self, result: Result<Made, Failure>) -> Option<&'static str> {
        let task = &self.task;
        let label = match &result {
            Ok(Made::Reused(_)) => None,
            Ok(_) => Some("success"),
            Err(f) if f.transient && task.attempts < task.max_attempts => Some("retry"),
            Err(_) => Some("failure"),
        };
        self.worker
            .conclude(task, &self.run, result, self.started)
            .await;
        label
    }
}
