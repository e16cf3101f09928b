//! The worker protocol, under the Jobs API: remote render nodes
//! (`layercake worker --server URL --token T`) claim tasks, renew their
//! leases, and upload layers or report failures, with a `worker` token
//! (`layercake token create --worker`). The queue's rules are those of
//! the database workers (see `jobs::remote`).
//!
//! - `POST /api/jobs/worker/claim`: long-poll for a task; 200 with it and
//!   its asset bundle, 204 when none came within the wait.
//! - `POST /api/jobs/worker/runs/{runId}/heartbeat`: renew the lease.
//! - `PUT /api/jobs/worker/runs/{runId}/result`: the layer file
//!   (`image/png`, at most `render.max_output_bytes`).
//! - `POST /api/jobs/worker/runs/{runId}/failure`: `{error, transient}`.
//!
//! A run that no longer holds its task answers 409: drop the render.

use super::auth::WorkerCaller;
use super::body;
use super::error::ApiError;
use crate::app::App;
use crate::app::params::parse_uuid;
use crate::error::Error;
use crate::jobs::remote::ClaimFilter;
use crate::wire::ErrorBody;
use crate::wire::worker::{ClaimRequest, ClaimedTask, Lease, RunAccepted, RunFailure};
use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;

/// Longest worker name kept on a run.
const MAX_NAME: usize = 200;

/// Claim the next task this node can render, waiting for one (long-poll).
#[utoipa::path(post, path = "/api/jobs/worker/claim", tag = "jobs",
    request_body(content = ClaimRequest, description = "The node's name and backends; optionally the only assets it takes and how long to wait."),
    responses(
        (status = 200, description = "A claimed task: render it, renew the lease every third of `leaseSeconds`, then upload the result or report the failure.", body = ClaimedTask),
        (status = 204, description = "No task within the wait: claim again."),
        (status = 403, description = "Not a worker token", body = ErrorBody),
    ))]
pub async fn claim(
    State(app): State<Arc<App>>,
    _node: WorkerCaller,
    req: Request,
) -> Result<Response, ApiError> {
    let bytes = body::read(req.into_body(), app.settings().http.max_body_bytes).await?;
    let c: ClaimRequest = body::parse(&bytes)?;
    // As the document states it: up to MAX_NAME characters (as given), none
    // a control character, not all white space.
    let name = c.worker.trim();
    if name.is_empty()
        || c.worker.chars().count() > MAX_NAME
        || c.worker.chars().any(char::is_control)
    {
        return Err(Error::invalid(
            "worker",
            format!("a name of 1 to {MAX_NAME} printable characters"),
        )
        .into());
    }
    if c.backends.is_empty() {
        return Err(Error::invalid("backends", "name at least one render backend").into());
    }
    let most = app.settings().jobs.remote_claim_wait_secs;
    let wait = c.wait_seconds.unwrap_or(most);
    if wait > most {
        return Err(Error::invalid(
            "waitSeconds",
            format!("at most {most} (jobs.remote_claim_wait_secs)"),
        )
        .into());
    }
    let snapshot = app.catalog().snapshot();
    let filter = ClaimFilter::new(
        &app.worker(),
        snapshot.assets(),
        &c.backends,
        c.assets.as_deref(),
    );
    let claimed = app
        .worker()
        .claim_remote(name, &filter, Duration::from_secs(wait))
        .await?;
    Ok(match claimed {
        Some(task) => {
            tracing::info!(task = %task.task_id, run = %task.run_id, worker = name, layer = %task.title, "task handed to a remote worker");
            Json(task).into_response()
        }
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

/// Renew the lease of a run (every third of `leaseSeconds`).
#[utoipa::path(post, path = "/api/jobs/worker/runs/{runId}/heartbeat", tag = "jobs",
    params(("runId" = String, Path)),
    responses(
        (status = 200, description = "The lease, renewed", body = Lease),
        (status = 403, description = "Not a worker token", body = ErrorBody),
        (status = 409, description = "The run no longer holds its task: drop the render", body = ErrorBody),
    ))]
pub async fn heartbeat(
    State(app): State<Arc<App>>,
    _node: WorkerCaller,
    Path(run): Path<String>,
) -> Result<Json<Lease>, ApiError> {
    Ok(Json(
        app.worker()
            .heartbeat_remote(parse_uuid("runId", &run)?)
            .await?,
    ))
}

/// Upload a run's layer: a PNG of the canvas, or of the layer's box with
/// its placement in a `layercake` tEXt chunk (the stored layer format).
#[utoipa::path(put, path = "/api/jobs/worker/runs/{runId}/result", tag = "jobs",
    params(("runId" = String, Path)),
    request_body(content = Vec<u8>, content_type = "image/png", description = "The layer file, at most render.max_output_bytes."),
    responses(
        (status = 200, description = "Stored and recorded; the task succeeded", body = RunAccepted),
        (status = 403, description = "Not a worker token", body = ErrorBody),
        (status = 409, description = "The run no longer holds its task: nothing was kept", body = ErrorBody),
        (status = 422, description = "Not the layer asked for (undecodable, over the pixel budget, wrong canvas); the run is recorded as failed", body = ErrorBody),
    ))]
pub async fn result(
    State(app): State<Arc<App>>,
    _node: WorkerCaller,
    Path(run): Path<String>,
    req: Request,
) -> Result<Json<RunAccepted>, ApiError> {
    let run = parse_uuid("runId", &run)?;
    let bytes = body::read(req.into_body(), app.settings().render.max_output_bytes).await?;
    Ok(Json(app.worker().complete_remote(run, bytes).await?))
}

/// Report that a run's render failed.
#[utoipa::path(post, path = "/api/jobs/worker/runs/{runId}/failure", tag = "jobs",
    params(("runId" = String, Path)),
    request_body(content = RunFailure),
    responses(
        (status = 200, description = "Recorded: `result` says whether the task is retried", body = RunAccepted),
        (status = 403, description = "Not a worker token", body = ErrorBody),
        (status = 409, description = "The run no longer holds its task", body = ErrorBody),
    ))]
pub async fn failure(
    State(app): State<Arc<App>>,
    _node: WorkerCaller,
    Path(run): Path<String>,
    req: Request,
) -> Result<Json<RunAccepted>, ApiError> {
    let run = parse_uuid("runId", &run)?;
    let bytes = body::read(req.into_body(), app.settings().http.max_body_bytes).await?;
    let f: RunFailure = body::parse(&bytes)?;
    if is_blank(&f.error) || f.error.chars().count() > 4000 {
        return Err(Error::invalid(
            "error",
            "a reason of 1 to 4000 characters, not all white space",
        )
        .into());
    }
    // Kept as sent when trimming Rust's white space would leave nothing
    // (a reason of U+0085 alone is not blank to the document).
    let reason = match f.error.trim() {
        "" => f.error.as_str(),
        trimmed => trimmed,
    };
    Ok(Json(
        app.worker().fail_remote(run, reason, f.transient).await?,
    ))
}

/// All white space as the document's pattern (`\S`, ECMAScript) reads it:
/// Rust's `char::is_whitespace` but for U+0085 (NEL), and U+FEFF besides.
fn is_blank(s: &str) -> bool {
    s.chars()
        .all(|c| (c.is_whitespace() && c != '\u{85}') || c == '\u{feff}')
}

#[cfg(test)]
mod tests {
    #[test]
    fn blank_is_what_the_document_s_pattern_calls_blank() {
        for blank in ["", " ", "\t\n", "\u{a0}\u{3000}", "\u{feff}"] {
            assert!(super::is_blank(blank), "{blank:?}");
        }
        for not in ["x", " x ", "\u{85}"] {
            assert!(!super::is_blank(not), "{not:?}");
        }
    }
}
