//! Batch submission, the one way a batch of renders is planned and queued:
//! `POST /api/jobs` and `layercake prefetch` (on a data dir) both call
//! [`submit`]. It expands the request (configurations × views, within
//! [`BatchLimits`]), plans the distinct layer keys on the compose threads,
//! asks the stores which layers are missing, and, unless it is a dry run,
//! queues one batch job for them. The plan comes back as a typed
//! [`Summary`], which `wire` serialises (`BatchPlanJson`).

use super::App;
use crate::catalog::Asset;
use crate::config::JobsSettings;
use crate::error::Error;
use crate::jobs::batch;
use crate::jobs::plan;
use std::sync::Arc;
use uuid::Uuid;

pub use crate::jobs::batch::Summary;
pub use crate::jobs::plan::BatchRequest;

/// How big a batch may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Configurations listed (or combinations of `all`).
    pub configurations: usize,
    /// Layer keys to hash while planning (configurations × views × layers).
    pub keys: u64,
}

impl BatchLimits {
    /// No bound: the operator's own tool (`prefetch` on a data dir).
    pub const NONE: BatchLimits = BatchLimits {
        configurations: usize::MAX,
        keys: u64::MAX,
    };

    /// The API's bounds: `jobs.max_batch_configurations` and
    /// `jobs.max_plan_keys`.
    pub fn of(settings: &JobsSettings) -> BatchLimits {
        BatchLimits {
            configurations: settings.max_batch_configurations,
            keys: settings.max_plan_keys,
        }
    }
}

/// What to do once the plan is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Plan only: nothing queued.
    DryRun,
    /// Queue the job, even with nothing to render (the API answers a job).
    Queue,
    /// Queue a job only when some layer is missing (prefetch: no empty job).
    QueueMissing,
}

impl Mode {
    /// [`Mode::DryRun`] or [`Mode::Queue`]: what a request's `dryRun` asks.
    pub fn dry_run(dry_run: bool) -> Mode {
        if dry_run { Mode::DryRun } else { Mode::Queue }
    }
}

/// What a batch came to.
#[derive(Debug, Clone)]
pub struct BatchOutcome {
    /// The live asset it planned.
    pub asset: Arc<Asset>,
    pub summary: Summary,
    /// The job queued; none for a dry run (or nothing missing, with
    /// [`Mode::QueueMissing`]).
    pub job: Option<Uuid>,
}

/// Plans and (unless `mode` says not to) queues the batch `request` of
/// `org`.
///
/// # Errors
/// 422 naming the field of an invalid request (see
/// [`BatchRequest::expand`]) or one over `limits`; 404 for an asset `org`
/// does not have; the stores' and the queue's (503 while the object store
/// is down, 429 when the queue is full).
pub async fn submit(
    app: &App,
    org: Uuid,
    request: BatchRequest,
    limits: BatchLimits,
    mode: Mode,
) -> Result<BatchOutcome, Error> {
    let id = Uuid::parse_str(&request.asset_id).map_err(|_| {
        Error::invalid("assetId", format!("\"{}\" is not a UUID", request.asset_id))
    })?;
    let asset = app.assets().get(org, id)?;
    let planned = {
        let asset = Arc::clone(&asset);
        app.compositor()
            .cpu(move || {
                let (configs, views) =
                    request.expand(&asset, limits.configurations, limits.keys)?;
                Ok::<_, Error>(plan::plan(&asset, &configs, &views))
            })
            .await??
    };
    let missing = app.jobs().missing(app.store(), &planned).await?;
    let summary = batch::summary(&asset, &planned, missing.layers.len());
    let queue = match mode {
        Mode::DryRun => false,
        Mode::Queue => true,
        Mode::QueueMissing => !missing.layers.is_empty(),
    };
    if !queue {
        return Ok(BatchOutcome {
            asset,
            summary,
            job: None,
        });
    }
    let spec = batch::spec(org, &asset, &planned, &missing);
    let job = app.jobs().submit(spec, &missing.layers, false).await?.job;
    tracing::info!(job = %job.id, asset = %asset.id, configurations = planned.configurations, layers = planned.layers.len(), tasks = missing.layers.len(), "batch job queued");
    Ok(BatchOutcome {
        asset,
        summary,
        job: Some(job.id),
    })
}

/// Where a batch job is: its tasks, those that succeeded and failed, and
/// whether it has stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub total: u64,
    pub successes: u64,
    pub failures: u64,
    pub stopped: bool,
}

/// How far `org`'s job `job` is (two queries, however big the job).
///
/// # Errors
/// 404 when `org` has no such job; metadata failures.
pub async fn progress(app: &App, org: Uuid, job: Uuid) -> Result<Progress, Error> {
    let row = app.meta().job(org, job).await?;
    let c = app.meta().job_counts(job).await?;
    let n = |x: i64| u64::try_from(x).unwrap_or(0);
    Ok(Progress {
        total: n(c.total),
        successes: n(c.successes),
        failures: n(c.failures),
        stopped: row.status == crate::jobs::records::Status::Stopped,
    })
}

#[cfg(test)]
mod tests;
