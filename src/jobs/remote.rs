//! The server's half of the worker protocol: remote render nodes claim,
//! renew, finish and fail runs over HTTP (`http::worker`), with the same
//! queue rules as the database workers of `worker`.
//!
//! - A claim is `Meta::claim_task` (one active task per layer key, leases,
//!   attempts), for the assets whose backends the node has, long-polled:
//!   it waits for work queued in this process, or on another node when
//!   `LISTEN/NOTIFY` carries it, with `poll_ms` polling as the fallback.
//!   A claimed task whose key is already stored and recorded finishes here
//!   unrendered, as a database worker's would, and the claim goes on.
//! - A node renews its lease with heartbeats; a node that vanishes stops
//!   renewing, its lease expires, and any worker takes the task over.
//! - A result is the layer file (PNG), checked exactly as a local render's
//!   output: bytes (`render.max_output_bytes`, by the route), the pixel
//!   budget from the PNG header before any pixel is inflated, then the
//!   canvas and placement (`execute::encode`, as a local render's). Then it
//!   is stored and recorded by the same code as a local render's
//!   (`Worker::keep`).
//! - Every call names its run; a run that is no longer the task's current
//!   one (its lease expired and another worker took it, or the job was
//!   cancelled) is a conflict, and nothing of it is kept.
//!
//! Renders are counted (`layercake_renders_total`) where they run: by the
//! node, not here.

use super::execute::{Failure, encode};
use super::keep::Made;
use super::{TaskParams, Worker};
use crate::catalog::Asset;
use crate::compose::layerfile;
use crate::error::Error;
use crate::meta::{Claimed, RunRow, TaskRow};
use crate::wire::worker::{AssetBundle, ClaimedTask, Lease, RunAccepted};
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// What a node asks for.
#[derive(Debug, Clone)]
pub struct ClaimFilter {
    /// `None`: any task; else only tasks of these assets.
    pub assets: Option<Vec<Uuid>>,
}

impl ClaimFilter {
    /// The live assets a node with `backends` can draw (further limited
    /// to `only`, when given). No filter at all when that is every live
    /// asset, so tasks of assets no longer live are claimable too.
    pub fn new<'a>(
        worker: &Worker,
        live: impl Iterator<Item = &'a Arc<Asset>>,
        backends: &[String],
        only: Option<&[Uuid]>,
    ) -> ClaimFilter {
        let mut all = true;
        let mut ids = Vec::new();
        for a in live {
            let drawn = backends.iter().any(|b| b == worker.backend_of(a));
            let wanted = only.is_none_or(|o| o.contains(&a.id));
            if drawn && wanted {
                ids.push(a.id);
            } else {
                all = false;
            }
        }
        ClaimFilter {
            assets: (!all || only.is_some()).then_some(ids),
        }
    }
}

impl Worker {
    /// The name of the backend that draws `asset` on this server.
    pub fn backend_of<'a>(&'a self, asset: &'a Asset) -> &'a str {
        self.renderers.name_for(asset)
    }

    /// Claims a task for remote node `node`, waiting up to `wait` for one.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the metadata store cannot be read.
    pub async fn claim_remote(
        &self,
        node: &str,
        filter: &ClaimFilter,
        wait: Duration,
    ) -> Result<Option<ClaimedTask>, Error> {
        let settings = self.jobs.settings().clone();
        let lease = Duration::from_secs(settings.lease_secs);
        let poll = Duration::from_millis(settings.poll_ms);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let queued = self.jobs.work_queued();
            tokio::pin!(queued);
            queued.as_mut().enable();
            let until = self.meta.after(lease);
            // As for a local worker: while the store is down and could not
            // keep the result, a render would only burn an attempt.
            let claimed = if self.store.is_up() || self.store.can_defer() {
                self.meta
                    .claim_task(node, until, filter.assets.as_deref())
                    .await?
            } else {
                None
            };
            if let Some(Claimed {
                task,
                run,
                existing,
            }) = claimed
            {
                let started = Instant::now();
                let ready = match self.job_of(&task).await {
                    Ok(job) => match self.reuse_stored(&job, &task, &run, existing).await {
                        Ok(None) => Ok(job),
                        Ok(Some(made)) => Err(Ok(made)),
                        Err(f) => Err(Err(f)),
                    },
                    Err(f) => Err(Err(f)),
                };
                match ready {
                    Ok(job) => {
                        return Ok(Some(handed_out(
                            &task,
                            &run,
                            &job.request.asset,
                            until,
                            lease,
                        )));
                    }
                    // Stored already, or nothing any node could render:
                    // finished here, and the claim goes on.
                    Err(result) => {
                        self.conclude(&task, &run, result, started).await;
                        continue;
                    }
                }
            }
            tokio::select! {
                () = &mut queued => {}
                () = tokio::time::sleep(poll) => {}
                () = tokio::time::sleep_until(deadline) => return Ok(None),
            }
        }
    }

    /// Renews the lease of remote run `run_id`.
    ///
    /// # Errors
    /// [`Error::Conflict`] when the run no longer holds its task;
    /// [`Error::NotFound`] for an unknown run.
    pub async fn heartbeat_remote(&self, run_id: Uuid) -> Result<Lease, Error> {
        let (task, run) = self.current_run(run_id).await?;
        let lease = Duration::from_secs(self.jobs.settings().lease_secs);
        let until = self.meta.after(lease);
        if !self.meta.renew_lease(task.id, run.id, until).await? {
            return Err(lost(run_id));
        }
        Ok(Lease {
            lease_seconds: lease.as_secs(),
            lease_expires_at: crate::wire::rfc3339(until),
        })
    }

    /// Keeps the layer file a remote node rendered for `run_id`.
    ///
    /// # Errors
    /// [`Error::Conflict`] when the run no longer holds its task;
    /// [`Error::Invalid`] (`body`) for output that is not the layer asked
    /// for, which also ends the run as a local render's would.
    pub async fn complete_remote(&self, run_id: Uuid, body: Bytes) -> Result<RunAccepted, Error> {
        let (task, run) = self.current_run(run_id).await?;
        let started = Instant::now();
        // Held while it is checked and stored, so the task is not handed on.
        let lease = Duration::from_secs(self.jobs.settings().lease_secs);
        if !self
            .meta
            .renew_lease(task.id, run.id, self.meta.after(lease))
            .await?
        {
            return Err(lost(run_id));
        }
        let job = match self.job_of(&task).await {
            Ok(j) => j,
            Err(f) => return Err(self.refuse(&task, &run, f, started).await),
        };
        let max = self.limits.max_pixels;
        let decoded = tokio::task::spawn_blocking(move || layerfile::decode(&body, max))
            .await
            .map_err(|e| Error::Internal(format!("decode task: {e}")))?;
        let layer = match decoded {
            Ok(l) => l,
            // As for a command's output: the next attempt may do better.
            Err(e) => {
                let f = Failure::transient(format!("{}: the uploaded layer: {e}", run.worker));
                return Err(self.refuse(&task, &run, f, started).await);
            }
        };
        let kept = match encode(&job, layer).await {
            Ok(encoded) => self.keep(&job, &task, &run, encoded).await,
            Err(f) => Err(f),
        };
        match kept {
            Ok(made) => {
                let files = match &made {
                    Made::Rendered(f) => f.clone(),
                    Made::Reused(_) => Vec::new(),
                };
                self.conclude(&task, &run, Ok(made), started).await;
                Ok(RunAccepted {
                    result: "success".into(),
                    files,
                })
            }
            Err(f) => Err(self.refuse(&task, &run, f, started).await),
        }
    }

    /// Ends remote run `run_id` as failed: retried after its backoff when
    /// `transient` and attempts are left, else failed for good.
    ///
    /// # Errors
    /// [`Error::Conflict`] when the run no longer holds its task.
    pub async fn fail_remote(
        &self,
        run_id: Uuid,
        error: &str,
        transient: bool,
    ) -> Result<RunAccepted, Error> {
        let (task, run) = self.current_run(run_id).await?;
        let retry = transient && task.attempts < task.max_attempts;
        let f = Failure {
            message: format!("{}: {error}", run.worker),
            transient,
        };
        self.conclude(&task, &run, Err(f), Instant::now()).await;
        Ok(RunAccepted {
            result: if retry { "retry" } else { "failure" }.into(),
            files: Vec::new(),
        })
    }

    /// Ends the run with `f` and answers the node why (a 422 naming the
    /// output), or with the store's failure when that was the cause.
    async fn refuse(&self, task: &TaskRow, run: &RunRow, f: Failure, started: Instant) -> Error {
        let message = f.message.clone();
        self.conclude(task, run, Err(f), started).await;
        Error::invalid("body", message)
    }

    /// Run `run_id` and its task, when the run still holds the task.
    async fn current_run(&self, run_id: Uuid) -> Result<(TaskRow, RunRow), Error> {
        let run = self.meta.run_by_id(run_id).await?;
        let task = self.meta.task_by_id(run.task_id).await?;
        if run.stopped_at.is_some()
            || task.status != crate::meta::Status::Running
            || task.run_id.as_deref() != Some(run_id.to_string().as_str())
        {
            return Err(lost(run_id));
        }
        Ok((task, run))
    }
}

fn lost(run_id: Uuid) -> Error {
    Error::Conflict(format!(
        "run {run_id} no longer holds its task (its lease expired and another worker took it, or its job was cancelled); drop the render"
    ))
}

fn handed_out(
    task: &TaskRow,
    run: &RunRow,
    asset: &Asset,
    until: i64,
    lease: Duration,
) -> ClaimedTask {
    let (definition, files) = asset.bundle();
    ClaimedTask {
        task_id: task.id,
        run_id: run.id,
        job_id: task.job_id,
        layer_key: task.layer_key.clone(),
        title: task.title.clone(),
        attempt: task.attempts,
        max_attempts: task.max_attempts,
        lease_seconds: lease.as_secs(),
        lease_expires_at: crate::wire::rfc3339(until),
        parameters: serde_json::from_str::<TaskParams>(&task.parameters)
            .ok()
            .and_then(|p| serde_json::to_value(p).ok())
            .unwrap_or(serde_json::Value::Null),
        asset: AssetBundle { definition, files },
    }
}
