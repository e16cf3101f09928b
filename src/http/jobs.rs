//! The Jobs system: `GET /api/jobs[/{id}]`, `GET /api/jobs/tasks[/{id}]`,
//! `GET /api/jobs/runs[/{id}]`, and layercake's extensions `POST /api/jobs`
//! (a batch of renders) and `POST /api/jobs/{id}/cancel`.

use super::auth::Caller;
use super::body;
use super::error::ApiError;
use super::page::Page;
use super::params::{Params, parse_uuid};
use crate::app::App;
use crate::error::Error;
use crate::jobs::batch;
use crate::jobs::plan::{self, BatchRequest};
use crate::jobs::records::{JobRecord, RunRecord, TaskRecord};
use crate::wire::jobs::{JobJson, RunJson, TaskJson};
use crate::wire::{ErrorBody, FileJson};
use axum::Json;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::StatusCode;
use serde::Serialize;
use std::sync::Arc;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobList {
    pub count: usize,
    pub page: usize,
    pub per_page: usize,
    pub sort: String,
    pub jobs: Vec<JobJson>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskList {
    pub count: usize,
    pub page: usize,
    pub per_page: usize,
    pub sort: String,
    pub tasks: Vec<TaskJson>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunList {
    pub count: usize,
    pub page: usize,
    pub per_page: usize,
    pub sort: String,
    pub runs: Vec<RunJson>,
}

fn job_json(r: &JobRecord, now: i64) -> JobJson {
    let runs = r
        .runs
        .as_ref()
        .map(|runs| runs.iter().map(|x| run_json(x, now)).collect());
    JobJson::new(&r.job, &r.counts, runs)
}

fn run_json(r: &RunRecord, now: i64) -> RunJson {
    RunJson::new(
        &r.run,
        r.files.iter().map(FileJson::from_row).collect(),
        now,
    )
}

fn task_json(r: &TaskRecord, now: i64) -> TaskJson {
    TaskJson::new(&r.task, r.runs.iter().map(|x| run_json(x, now)).collect())
}

/// Render a batch: configurations (or every combination of an asset) on
/// some or all views. Plans the distinct layer keys first and queues only
/// the layers not already stored; the job's `parameters` report the plan.
#[utoipa::path(post, path = "/api/jobs", tag = "jobs",
    request_body(content = BatchRequest, description = "Either `configurations` or `all: true` (with an optional `where`); `stageConfigurations` defaults to every view."),
    responses(
        (status = 201, description = "The job; `parameters` holds the plan: configurations, views, layers (distinct), cached, tasks.", body = JobJson),
        (status = 200, description = "With `dryRun: true`: `{\"dryRun\": true, \"parameters\": <the plan>}`, nothing queued."),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "Unknown asset", body = ErrorBody),
        (status = 422, description = "Invalid configuration, view, or too many combinations", body = ErrorBody),
    ))]
pub async fn create(
    State(app): State<Arc<App>>,
    caller: Caller,
    req: Request,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let bytes = body::read(req.into_body(), app.settings().http.max_body_bytes).await?;
    let b: BatchRequest = body::parse(&bytes)?;
    let dry_run = b.dry_run;
    let asset = app
        .assets()
        .get(caller.org, parse_uuid("assetId", &b.asset_id)?)?;
    let max = app.settings().jobs.max_batch_configurations;
    let max_keys = app.settings().jobs.max_plan_keys;
    let planned = {
        let asset = Arc::clone(&asset);
        app.compositor()
            .cpu(move || {
                let (configs, views) = b.expand(&asset, max, max_keys)?;
                Ok::<_, Error>(plan::plan(&asset, &configs, &views))
            })
            .await??
    };
    let missing = app.jobs().missing(&app.store(), &planned).await?;
    if dry_run {
        return Ok((
            StatusCode::OK,
            Json(serde_json::json!({
                "dryRun": true,
                "parameters": batch::summary(&asset, &planned, missing.layers.len()),
            })),
        ));
    }
    let spec = batch::spec(caller.org, &asset, &planned, &missing);
    let job = app.jobs().submit(spec, &missing.layers, false).await?.job;
    tracing::info!(job = %job.id, asset = %asset.id, configurations = planned.configurations, layers = planned.layers.len(), tasks = missing.layers.len(), "batch job queued");
    let job = serde_json::to_value(job_json(
        &app.jobs().job_record(caller.org, job.id).await?,
        app.jobs().now(),
    ))
    .map_err(|e| Error::Internal(format!("job JSON: {e}")))?;
    Ok((StatusCode::CREATED, Json(job)))
}

/// List jobs.
#[utoipa::path(get, path = "/api/jobs", tag = "jobs",
    params(
        ("status" = Option<String>, Query, description = "pending, running or stopped"),
        ("page" = Option<u32>, Query), ("perPage" = Option<u32>, Query, description = "At most 100."),
        ("sort" = Option<String>, Query, description = "+createdAt or -createdAt."),
    ),
    responses((status = 200, body = JobList), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> Result<Json<JobList>, ApiError> {
    let p = Params::parse(q.as_deref(), app.settings().http.max_query_bytes)?;
    let page = Page::parse(&p, &["createdAt"])?;
    let status = status_param(&p, "status")?;
    let (count, rows) = app
        .jobs()
        .job_records(caller.org, status, page.window())
        .await?;
    let now = app.jobs().now();
    let jobs = rows.iter().map(|r| job_json(r, now)).collect();
    Ok(Json(JobList {
        count,
        page: page.page,
        per_page: page.per_page,
        sort: page.sort(),
        jobs,
    }))
}

fn status_param<'a>(p: &'a Params, name: &str) -> Result<Option<&'a str>, Error> {
    p.one_of(name, &["pending", "running", "stopped"])
}

/// One job, with the runs of its tasks.
#[utoipa::path(get, path = "/api/jobs/{id}", tag = "jobs",
    params(("id" = String, Path)),
    responses((status = 200, body = JobJson), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn get(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<JobJson>, ApiError> {
    let r = app
        .jobs()
        .job_record(caller.org, parse_uuid("id", &id)?)
        .await?;
    Ok(Json(job_json(&r, app.jobs().now())))
}

/// Cancel a job: its pending tasks that no other job wants stop; running
/// renders finish. The job stops at once (`schedulerState: cancelled`).
#[utoipa::path(post, path = "/api/jobs/{id}/cancel", tag = "jobs",
    params(("id" = String, Path)),
    responses((status = 200, body = JobJson), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn cancel(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<JobJson>, ApiError> {
    let job = app.jobs().cancel(caller.org, parse_uuid("id", &id)?).await?;
    Ok(Json(job_json(
        &app.jobs().job_record(caller.org, job.id).await?,
        app.jobs().now(),
    )))
}

/// List tasks.
#[utoipa::path(get, path = "/api/jobs/tasks", tag = "jobs",
    params(
        ("jobId" = Option<String>, Query, description = "Tasks of this job (created or joined by it)."),
        ("runStatus" = Option<String>, Query, description = "pending, running or stopped"),
        ("page" = Option<u32>, Query), ("perPage" = Option<u32>, Query), ("sort" = Option<String>, Query),
    ),
    responses((status = 200, body = TaskList), (status = 422, body = ErrorBody)))]
pub async fn tasks(
    State(app): State<Arc<App>>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> Result<Json<TaskList>, ApiError> {
    let p = Params::parse(q.as_deref(), app.settings().http.max_query_bytes)?;
    let page = Page::parse(&p, &["createdAt"])?;
    let job = p.uuid("jobId")?;
    let status = status_param(&p, "runStatus")?;
    let (count, rows) = app
        .jobs()
        .task_records(caller.org, job, status, page.window())
        .await?;
    let now = app.jobs().now();
    let tasks = rows.iter().map(|r| task_json(r, now)).collect();
    Ok(Json(TaskList {
        count,
        page: page.page,
        per_page: page.per_page,
        sort: page.sort(),
        tasks,
    }))
}

/// One task, with its runs.
#[utoipa::path(get, path = "/api/jobs/tasks/{id}", tag = "jobs",
    params(("id" = String, Path)),
    responses((status = 200, body = TaskJson), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn task(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<TaskJson>, ApiError> {
    let r = app
        .jobs()
        .task_record(caller.org, parse_uuid("id", &id)?)
        .await?;
    Ok(Json(task_json(&r, app.jobs().now())))
}

/// List runs of a job's tasks or of one task.
#[utoipa::path(get, path = "/api/jobs/runs", tag = "jobs",
    params(
        ("jobId" = Option<String>, Query), ("taskId" = Option<String>, Query),
        ("page" = Option<u32>, Query), ("perPage" = Option<u32>, Query), ("sort" = Option<String>, Query),
    ),
    responses((status = 200, body = RunList), (status = 422, body = ErrorBody)))]
pub async fn runs(
    State(app): State<Arc<App>>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> Result<Json<RunList>, ApiError> {
    let p = Params::parse(q.as_deref(), app.settings().http.max_query_bytes)?;
    let page = Page::parse(&p, &["createdAt"])?;
    let (job, task): (Option<Uuid>, Option<Uuid>) = (p.uuid("jobId")?, p.uuid("taskId")?);
    let (count, rows) = app
        .jobs()
        .run_records(caller.org, job, task, page.window())
        .await?;
    let now = app.jobs().now();
    Ok(Json(RunList {
        count,
        page: page.page,
        per_page: page.per_page,
        sort: page.sort(),
        runs: rows.iter().map(|r| run_json(r, now)).collect(),
    }))
}

/// One run.
#[utoipa::path(get, path = "/api/jobs/runs/{id}", tag = "jobs",
    params(("id" = String, Path)),
    responses((status = 200, body = RunJson), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn run(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<RunJson>, ApiError> {
    let r = app
        .jobs()
        .run_record(caller.org, parse_uuid("id", &id)?)
        .await?;
    Ok(Json(run_json(&r, app.jobs().now())))
}
