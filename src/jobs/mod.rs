//! Jobs: the only way a render starts.
//!
//! A **job** groups **tasks**; a task renders one layer key; a **run** is
//! one attempt of a task. The queue is durable (tables in `meta`, see
//! `meta::jobs` for its invariants), so renders survive crashes and any
//! number of `serve` and `worker` processes can share it:
//!
//! ```text
//! compositor miss ─┐                      ┌─► worker (this process or `layercake worker`)
//! POST /api/jobs ──┴─► Jobs::submit ─► tasks (one active per key) ─► claim (lease) ─► render
//!                                                 ▲                   validate ─► store ─► record
//! Jobs::wait ◄── task stopped (notify in-process, LISTEN/NOTIFY across processes, poll) ◄─┘
//! ```
//!
//! - [`Jobs`] creates jobs (joining active tasks for the same key), waits
//!   for tasks, cancels jobs, and reports stopped jobs to webhooks.
//! - `execute`: the one task executor, for in-process workers and remote
//!   nodes alike: a run under a lease (database or HTTP) rendered with the
//!   asset's backend (`render::Renderers`) under its timeout, validated and
//!   encoded, with one heartbeat loop and one panic boundary.
//! - `worker`: the pool that claims tasks from the database and runs them
//!   with the executor (its lease: `worker::DbLease`); `keep`: how a layer
//!   is stored (never overwriting a usable one) and recorded; the retries
//!   with backoff.
//! - `node` (a remote render node: the executor over the worker protocol)
//!   and `remote` (the server's half of that protocol).
//! - `wakeups`: who waits for what, in this process and across processes.
//! - `plan`: batch planning for `POST /api/jobs`: configurations × views →
//!   the distinct layer keys.

pub mod batch;
mod execute;
mod keep;
pub mod node;
pub mod plan;
pub mod records;
pub mod remote;
mod wakeups;
mod worker;

pub use execute::{validate, validate_placement};
pub use worker::{Worker, WorkerLimits};

use crate::catalog::Asset;
use crate::compose::LayerImage;
use crate::config::JobsSettings;
use crate::error::Error;
use crate::keys::{Configuration, Key};
use crate::meta::{JobRow, Meta, NewTask, SchedulerState, Status, TaskResult};
use crate::render::RenderRequest;
use crate::telemetry;
use crate::webhooks::Webhooks;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use uuid::Uuid;
use wakeups::Watch;

/// One layer to produce.
#[derive(Debug, Clone)]
pub struct LayerJob {
    pub key: Key,
    pub request: RenderRequest,
}

impl LayerJob {
    /// The job for one layer `keys` identified (see `keys::visible_layers`).
    pub fn new(asset: &Arc<Asset>, id: crate::keys::LayerIdentity) -> LayerJob {
        LayerJob {
            key: id.key,
            request: RenderRequest {
                asset: Arc::clone(asset),
                layer: id.layer,
                view: id.view,
                values: id.values,
                width: id.size.0,
                height: id.size.1,
            },
        }
    }

    /// The jobs for the layers of `config` visible on `view`, at the
    /// asset's canvas size, bottom to top.
    pub fn visible<'a>(
        asset: &'a Arc<Asset>,
        config: &'a Configuration,
        view: usize,
    ) -> impl Iterator<Item = LayerJob> + 'a {
        let size = (asset.width, asset.height);
        crate::keys::visible_layers(asset, config, view, size).map(|id| LayerJob::new(asset, id))
    }

    /// Where the layer's image is stored.
    pub fn path(&self) -> String {
        let asset = &self.request.asset;
        crate::store::layer_path(asset.id, asset.version, &self.key)
    }
}

/// Where a render came from, for the layer record.
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    pub job: Uuid,
    pub task: Uuid,
}

/// The record of a render.
#[derive(Debug, Clone, Copy)]
pub struct Recorded {
    pub layer_id: Uuid,
    pub file_id: Uuid,
    /// False when the key already had a render record (kept as it was).
    pub created: bool,
}

/// Sets the queue depth gauges from the shared queue (read at scrape time).
pub async fn record_queue_depth(meta: &Meta) {
    match meta.task_counts().await {
        Ok((pending, running)) => {
            metrics::gauge!(telemetry::QUEUE_DEPTH, "status" => "pending").set(pending as f64);
            metrics::gauge!(telemetry::QUEUE_DEPTH, "status" => "running").set(running as f64);
        }
        Err(e) => tracing::warn!(error = %e, "queue depth unknown"),
    }
}

/// Finds the asset definition a task names, by id and version (the asset
/// registry implements it).
#[async_trait::async_trait]
pub trait Definitions: Send + Sync + 'static {
    /// # Errors
    /// When the version is unknown, no longer loads, or cannot be read now.
    async fn resolve(&self, id: Uuid, version: u32) -> Result<Arc<Asset>, Error>;
}

/// Keeps the record of a finished render (the Layers service implements it).
#[async_trait::async_trait]
pub trait Recorder: Send + Sync + 'static {
    /// Called once the layer is stored at `path` with content `bytes`.
    /// At most one render record exists per layer key.
    ///
    /// # Errors
    /// When the record cannot be written; the render itself is kept.
    async fn rendered(
        &self,
        job: &LayerJob,
        layer: &LayerImage,
        path: &str,
        bytes: &[u8],
        origin: Origin,
    ) -> Result<Recorded, Error>;
}

/// What a task renders, as stored in its `parameters`: enough for any
/// worker to rebuild the render request from the asset version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TaskParams {
    pub asset_id: Uuid,
    pub asset_version: u32,
    pub layer_id: Uuid,
    pub layer: String,
    pub view: String,
    /// The configuration restricted to the layer's `dependsOn`.
    pub configuration: serde_json::Value,
    pub width: u32,
    pub height: u32,
}

impl TaskParams {
    pub fn of(req: &RenderRequest) -> TaskParams {
        let asset = &req.asset;
        TaskParams {
            asset_id: asset.id,
            asset_version: asset.version,
            layer_id: asset.layers[req.layer].id,
            layer: asset.layers[req.layer].name.clone(),
            view: asset.views[req.view].name.clone(),
            configuration: serde_json::from_str(&Configuration::canonical_pairs(
                asset,
                &req.values,
            ))
            .unwrap_or(serde_json::Value::Null),
            width: req.width,
            height: req.height,
        }
    }

    /// The render request these parameters describe, against `asset`
    /// (which must be the version they name), and its layer key.
    ///
    /// # Errors
    /// A sentence naming what no longer matches.
    pub fn request(&self, asset: Arc<Asset>) -> Result<LayerJob, String> {
        let layer = asset
            .layers
            .iter()
            .position(|l| l.id == self.layer_id)
            .ok_or_else(|| format!("asset {} has no layer {}", asset.id, self.layer_id))?;
        let view = asset
            .views
            .iter()
            .position(|v| v.name == self.view)
            .ok_or_else(|| format!("asset {} has no view {}", asset.id, self.view))?;
        let config = Configuration::parse(&asset, &self.configuration)
            .map_err(|e| format!("configuration: {e}"))?;
        let size = (self.width, self.height);
        let id = crate::keys::LayerIdentity::of(&asset, layer, view, &config, size);
        Ok(LayerJob::new(&asset, id))
    }
}

/// A job to create.
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub org: Uuid,
    pub title: String,
    /// `render` (a compositor miss) or `batch` (`POST /api/jobs`).
    pub kind: String,
    pub parameters: serde_json::Value,
    /// Higher runs first; a request waiting for a render outranks a batch.
    pub priority: i64,
    /// Layers to render even though their key is recorded: the caller
    /// found the recorded object missing or unusable. Every other layer
    /// whose key is recorded is not rendered again (its task stops at once
    /// as a success reusing the record).
    pub rerender: HashSet<Key>,
}

/// A created job.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub job: JobRow,
    /// One per layer submitted, in order.
    pub tasks: Vec<Uuid>,
    /// Per layer: its key was already recorded (no render: the layer
    /// should be in the store; if it is not, it went missing since, and
    /// [`JobSpec::rerender`] renders it).
    pub reused: Vec<bool>,
}

/// How a task that was waited for ended well.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// A run of it rendered and stored the layer.
    Rendered,
    /// Its key was found recorded when it was claimed: nothing was
    /// rendered, the layer should be in the store (as for
    /// [`Submitted::reused`]).
    Reused,
}

/// Priority of renders a request is waiting for.
pub const PRIORITY_INTERACTIVE: i64 = 10;
/// Priority of batch renders.
pub const PRIORITY_BATCH: i64 = 0;

/// The Jobs service of this process.
pub struct Jobs {
    meta: Arc<Meta>,
    webhooks: Arc<Webhooks>,
    settings: JobsSettings,
    /// Wakes idle workers of this process when work is queued.
    work: Notify,
    /// Wakes requests of this process waiting for a task.
    done: Mutex<HashMap<Uuid, Arc<Notify>>>,
    /// This process, in the wake-ups it sends to the others (so it skips
    /// its own when they come back).
    origin: Uuid,
}

impl Jobs {
    pub fn new(meta: Arc<Meta>, webhooks: Arc<Webhooks>, settings: JobsSettings) -> Jobs {
        Jobs {
            meta,
            webhooks,
            settings,
            work: Notify::new(),
            done: Mutex::new(HashMap::new()),
            origin: Uuid::new_v4(),
        }
    }

    pub fn meta(&self) -> &Arc<Meta> {
        &self.meta
    }

    pub fn settings(&self) -> &JobsSettings {
        &self.settings
    }

    /// Sets the queue depth gauges (see [`record_queue_depth`]).
    pub async fn record_queue_depth(&self) {
        record_queue_depth(&self.meta).await;
    }

    pub(crate) fn webhooks(&self) -> &Arc<Webhooks> {
        &self.webhooks
    }

    /// Creates a job with one task per layer (joining the active task of a
    /// key that has one). With `respect_failures`, a layer that failed for
    /// good within `failure_ttl_secs` fails the submission at once instead.
    /// Returns the job and the task ids, in the order of `layers`, and
    /// which of those reuse a recorded layer (nothing to wait for: read it).
    ///
    /// # Errors
    /// [`Error::Overloaded`] when `jobs.max_pending` tasks are pending, or
    /// `jobs.max_pending_per_org` of the job's org;
    /// [`Error::RenderFailed`] for a recent failure; store failures.
    pub async fn submit(
        &self,
        spec: JobSpec,
        layers: &[LayerJob],
        respect_failures: bool,
    ) -> Result<Submitted, Error> {
        self.admit(spec.org, layers).await?;
        if respect_failures {
            let ttl = Duration::from_secs(self.settings.failure_ttl_secs);
            let since = self.meta.now().saturating_sub(crate::meta::micros(ttl));
            for l in layers {
                if let Some(e) = self.meta.recent_failure(&l.key.hex(), since).await? {
                    return Err(Error::RenderFailed(format!(
                        "{}: {e}",
                        l.request.describe()
                    )));
                }
            }
        }
        let tasks: Vec<NewTask> = layers
            .iter()
            .map(|l| NewTask {
                layer_key: l.key.hex(),
                title: l.request.describe(),
                parameters: serde_json::to_string(&TaskParams::of(&l.request)).unwrap_or_default(),
                max_attempts: i64::from(self.settings.max_attempts),
                rerender: spec.rerender.contains(&l.key),
                asset_id: Some(l.request.asset.id),
            })
            .collect();
        let row = JobRow {
            id: Uuid::new_v4(),
            org_id: spec.org,
            title: spec.title,
            kind: spec.kind,
            status: Status::Pending,
            scheduler_state: SchedulerState::Scheduling,
            parameters: spec.parameters.to_string(),
            priority: spec.priority,
            created_by: None,
            created_at: 0,
            updated_at: 0,
        };
        let queued = self.meta.create_job(&row, &tasks).await?;
        let reused = queued.reused.iter().filter(|r| **r).count();
        if reused > 0 {
            metrics::counter!(crate::telemetry::RENDERS_REUSED, "at" => "queue")
                .increment(reused as u64);
        }
        if queued.job.status == Status::Stopped {
            self.job_stopped(&queued.job).await;
        } else {
            self.work.notify_waiters();
            self.announce("work".into());
        }
        Ok(Submitted {
            job: queued.job,
            tasks: queued.tasks,
            reused: queued.reused,
        })
    }

    /// Whether the queue takes `layers` for `org`: a queue with room takes
    /// a whole job; a job bigger than the bound is taken only by an empty
    /// queue; layers with an active task only join it (they add nothing).
    ///
    /// # Errors
    /// [`Error::Overloaded`] over `jobs.max_pending`, or over
    /// `jobs.max_pending_per_org` for `org`; store failures.
    async fn admit(&self, org: Uuid, layers: &[LayerJob]) -> Result<(), Error> {
        if layers.is_empty() {
            return Ok(());
        }
        let (pending, _) = self.meta.task_counts().await?;
        let keys: Vec<String> = layers.iter().map(|l| l.key.hex()).collect();
        let joining = if pending > 0 {
            self.meta.active_among(&keys).await?
        } else {
            0
        };
        let adding = i64::try_from(layers.len())
            .unwrap_or(i64::MAX)
            .saturating_sub(joining);
        if pending > 0 && adding > 0 && pending.saturating_add(adding) > self.settings.max_pending {
            metrics::counter!(crate::telemetry::REJECTED, "reason" => "render-queue").increment(1);
            return Err(Error::overloaded(format!(
                "over capacity: {pending} renders are queued; retry shortly"
            )));
        }
        // One org's flood fills its own share, not everyone's queue.
        if pending > 0 && adding > 0 {
            let mine = self.meta.pending_of(org).await?;
            if mine > 0 && mine.saturating_add(adding) > self.settings.max_pending_per_org {
                metrics::counter!(crate::telemetry::REJECTED, "reason" => "org-share").increment(1);
                return Err(Error::overloaded(format!(
                    "over this org's share of the render queue: {mine} of its renders are queued (jobs.max_pending_per_org = {}); retry shortly",
                    self.settings.max_pending_per_org
                )));
            }
        }
        Ok(())
    }

    /// Waits until task `id` stops, for at most `limit`, and says whether
    /// it rendered or reused a recorded layer.
    ///
    /// # Errors
    /// [`Error::RenderFailed`] with the task's last error when it failed;
    /// [`Error::Unavailable`] when it was cancelled, is still going after
    /// `limit`, or the metadata store stays unreachable.
    pub async fn wait(&self, id: Uuid, limit: Duration) -> Result<Ended, Error> {
        let poll = Duration::from_millis(self.settings.poll_ms);
        let deadline = tokio::time::Instant::now() + limit;
        let watch = Watch::new(self, id);
        let mut failures = 0u32;
        let mut waited = false;
        loop {
            let notified = watch.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.meta.task_by_id(id).await {
                Ok(t) if t.status == Status::Stopped => {
                    if waited {
                        // How late this process heard of it: a wake-up's
                        // delay (tens of ms at most with NOTIFY), else up
                        // to poll_ms. Clocks of other machines skew it.
                        metrics::histogram!(telemetry::WAKE_DELAY)
                            .record((self.meta.now() - t.updated_at).max(0) as f64 / 1e6);
                    }
                    return match t.run_result {
                        Some(TaskResult::Success) if t.reused_layer.is_some() => Ok(Ended::Reused),
                        Some(TaskResult::Success) => Ok(Ended::Rendered),
                        Some(TaskResult::Cancelled) => Err(Error::unavailable(format!(
                            "the render of {} was cancelled; retry",
                            t.title
                        ))),
                        _ => Err(Error::RenderFailed(format!(
                            "{}: {}",
                            t.title,
                            t.error.as_deref().unwrap_or("unknown error")
                        ))),
                    };
                }
                Ok(_) => failures = 0,
                // A blip of the store is not the render's failure.
                Err(e) if failures < 5 => {
                    failures += 1;
                    tracing::warn!(task = %id, error = %e, "cannot read the task; retrying");
                }
                Err(e) => return Err(e.into()),
            }
            waited = true;
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep(poll) => {}
                () = tokio::time::sleep_until(deadline) => {
                    return Err(Error::unavailable(format!(
                        "the layers are still being rendered after {limit:?}; retry shortly"
                    )));
                }
            }
        }
    }

    /// Cancels job `id` (see `Meta::cancel_job`) and answers it as it is now.
    ///
    /// # Errors
    /// 404 when the org has no such job.
    pub async fn cancel(&self, org: Uuid, id: Uuid) -> Result<records::JobRecord, Error> {
        if let Some(job) = self.meta.cancel_job(org, id).await? {
            self.job_stopped(&job).await;
        }
        self.job_record(org, id).await
    }

    /// Reports a stopped job (the `job.stopped` event).
    pub(crate) async fn job_stopped(&self, job: &JobRow) {
        let counts = match self.meta.job_counts(job.id).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(job = %job.id, error = %e, "job.stopped not emitted");
                return;
            }
        };
        tracing::info!(
            job = %job.id,
            title = %job.title,
            successes = counts.successes,
            failures = counts.failures,
            "job stopped"
        );
        let data = serde_json::to_value(records::job_json(&job.clone().into(), &counts, None))
            .unwrap_or(serde_json::Value::Null);
        self.webhooks.emit(job.org_id, "job.stopped", data).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_params_round_trip_to_the_same_key() {
        let cat = crate::catalog::Catalog::demo().unwrap();
        let asset = Arc::clone(cat.assets().next().unwrap());
        let config = Configuration::defaults(&asset);
        let size = (asset.width, asset.height);
        for (i, l) in asset.layers.iter().enumerate() {
            let req = RenderRequest {
                asset: Arc::clone(&asset),
                layer: i,
                view: 1,
                values: config.subset(&l.depends_on),
                width: size.0,
                height: size.1,
            };
            let params = TaskParams::of(&req);
            let back: TaskParams =
                serde_json::from_str(&serde_json::to_string(&params).unwrap()).unwrap();
            let job = back.request(Arc::clone(&asset)).unwrap();
            assert_eq!(job.key, crate::keys::layer_key(&asset, i, 1, &config, size));
            assert_eq!(job.request.values, req.values);
        }
    }
}
