//! The Jobs system: `GET /api/jobs[/{id}]`, `GET /api/jobs/tasks[/{id}]`,
//! `GET /api/jobs/runs[/{id}]`, and layercake's extensions `POST /api/jobs`
//! (a batch of renders) and `POST /api/jobs/{id}/cancel`.

use super::auth::Caller;
use super::body;
use super::error::ApiError;
use super::page::Page;
use crate::app::App;
use crate::app::batch::{self, BatchRequest};
use crate::app::params::{Params, parse_uuid};
use crate::error::Error;
use crate::jobs::records::Status;
use crate::wire::ErrorBody;
use crate::wire::jobs::{DryRunJson, JobCreated, JobJson, RunJson, TaskJson};
use axum::Json;
use axum::extract::{Path, RawQuery, Request, State};
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

/// Render a batch: configurations (or every combination of an asset) on
/// some or all views. Plans the distinct layer keys first and queues only
/// the layers not already stored; the job's `parameters` report the plan.
#[utoipa::path(post, path = "/api/jobs", tag = "jobs",
    request_body(content = BatchRequest, description = "Either `configurations` or `all: true` (with an optional `where`); `stageConfigurations` defaults to every view."),
    responses(
        (status = 200, description = "The job, whose `parameters` hold the plan (configurations, views, layers (distinct), cached, tasks); with `dryRun: true`, `{\"dryRun\": true, \"parameters\": <the plan>}` and nothing queued. (200 as the platform's creates answer, e.g. saved configurations.)", body = JobCreated),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "Unknown asset", body = ErrorBody),
        (status = 422, description = "Invalid configuration, view, or too many combinations", body = ErrorBody),
    ))]
pub async fn create(
    State(app): State<Arc<App>>,
    caller: Caller,
    req: Request,
) -> Result<Json<JobCreated>, ApiError> {
    let bytes = body::read(req.into_body(), app.settings().http.max_body_bytes).await?;
    let b: BatchRequest = body::parse(&bytes)?;
    let mode = batch::Mode::dry_run(b.dry_run);
    let limits = batch::BatchLimits::of(&app.settings().jobs);
    let outcome = batch::submit(&app, caller.org, b, limits, mode).await?;
    let Some(job) = outcome.job else {
        return Ok(Json(JobCreated::DryRun(DryRunJson {
            dry_run: true,
            parameters: outcome.summary.json(),
        })));
    };
    let job = app.jobs().job_record(caller.org, job).await?;
    Ok(Json(JobCreated::Job(job.json(app.jobs().now()))))
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
    let jobs = rows.iter().map(|r| r.json(now)).collect();
    Ok(Json(JobList {
        count,
        page: page.page,
        per_page: page.per_page,
        sort: page.sort(),
        jobs,
    }))
}

fn status_param(p: &Params, name: &str) -> Result<Option<Status>, Error> {
    let all: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
    Ok(p.one_of(name, &all)?.and_then(Status::parse))
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
    Ok(Json(r.json(app.jobs().now())))
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
    let r = app
        .jobs()
        .cancel(caller.org, parse_uuid("id", &id)?)
        .await?;
    Ok(Json(r.json(app.jobs().now())))
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
    let tasks = rows.iter().map(|r| r.json(now)).collect();
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
    Ok(Json(r.json(app.jobs().now())))
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
        runs: rows.iter().map(|r| r.json(now)).collect(),
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
    Ok(Json(r.json(app.jobs().now())))
}
