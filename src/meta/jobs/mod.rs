//! Jobs, tasks and runs: the durable render queue.
//!
//! The queue's invariants live in SQL, so they hold across processes:
//! - at most one active (pending or running) task per layer key (a partial
//!   unique index; a second submission joins the active task);
//! - a task is claimed by one worker at a time, under a lease that the
//!   worker extends while it works; a lease that expires makes the task
//!   claimable again (the abandoned run is closed as failed);
//! - every state change of a task and the jobs it belongs to happens in one
//!   transaction, and a job stops exactly once (`RETURNING` tells the one
//!   caller that stopped it, who emits the event).
//!
//! The claim is an `UPDATE ... WHERE id = (SELECT ...)` that re-checks the
//! claimable condition, so two workers racing for one task cannot both win
//! (on PostgreSQL the loser's re-check fails after the winner commits; on
//! SQLite writers are serialised).

mod queries;
mod state;
mod submit;
#[cfg(test)]
mod tests;

use super::states::{opt_state, state};
use super::{
    MetaError, RunResult, SchedulerState, Status, TaskResult, int, opt_int, opt_text, text,
    translate, uuid,
};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub title: String,
    pub kind: String,
    pub status: Status,
    pub scheduler_state: SchedulerState,
    /// JSON: what the job's creator recorded (a batch's plan, a miss's
    /// request); read as JSON by the jobs' records.
    pub parameters: String,
    pub priority: i64,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Task counters of one job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobCounts {
    pub total: i64,
    pub pending: i64,
    pub running: i64,
    pub stopped: i64,
    pub successes: i64,
    pub failures: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub job_id: Uuid,
    pub layer_key: String,
    pub kind: String,
    pub title: String,
    /// JSON: the render's `jobs::TaskParams`, kept as text (meta is below
    /// the type; `jobs` reads it) and answered verbatim by the API.
    pub parameters: String,
    pub priority: i64,
    pub status: Status,
    /// Once stopped.
    pub run_result: Option<TaskResult>,
    pub attempts: i64,
    pub max_attempts: i64,
    pub not_before: i64,
    pub lease_owner: Option<String>,
    pub lease_expires: Option<i64>,
    pub run_id: Option<String>,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The layer record this task finished with, without rendering: the
    /// key was recorded when the task was created or claimed.
    pub reused_layer: Option<String>,
    /// Render even though the key is recorded (its stored object was found
    /// missing or unusable).
    pub rerender: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub job_id: Uuid,
    pub task_id: Uuid,
    pub worker: String,
    pub attempt: i64,
    pub started_at: i64,
    pub stopped_at: Option<i64>,
    /// Once stopped.
    pub result_code: Option<RunResult>,
    pub error: Option<String>,
    /// File ids of the results.
    pub files: Vec<Uuid>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A task to create (or join, if its key already has an active one).
#[derive(Debug, Clone)]
pub struct NewTask {
    pub layer_key: String,
    pub title: String,
    pub parameters: String,
    pub max_attempts: i64,
    /// Render even if the key is recorded: the caller found its recorded
    /// object missing or unusable. Otherwise a recorded key is not rendered
    /// again (the task stops at once as a success pointing at the record).
    pub rerender: bool,
    /// The asset it renders (what a remote worker's claim filters on).
    pub asset_id: Option<Uuid>,
}

/// A layer record that already holds a task's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Existing {
    pub layer: Uuid,
    pub file: Uuid,
}

/// A claimed task and its new run; with `existing`, the key was found
/// recorded in the claim's transaction, and the run finishes with that
/// layer instead of rendering ([`Outcome::Reused`]).
#[derive(Debug, Clone)]
pub struct Claimed {
    pub task: TaskRow,
    pub run: RunRow,
    pub existing: Option<Existing>,
}

/// A created job and its tasks.
#[derive(Debug, Clone)]
pub struct Queued {
    /// As stored: stopped at once when none of its tasks is active.
    pub job: JobRow,
    /// One per submitted task, in the order submitted.
    pub tasks: Vec<Uuid>,
    /// Per task: its key was already recorded, so the job was linked to
    /// the finished task that made the layer (or, for a layer registered
    /// rather than rendered, to a task created stopped): nothing renders.
    pub reused: Vec<bool>,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Success {
        files: Vec<Uuid>,
    },
    /// Failed; the task goes back to pending until `not_before`.
    Retry {
        error: String,
        not_before: i64,
    },
    /// Failed for good.
    Fail {
        error: String,
    },
    /// Not rendered: the key was already recorded (see [`Claimed`]).
    Reused(Existing),
}

/// What finishing a run changed.
#[derive(Debug, Clone, Default)]
pub struct Finished {
    /// Whether this worker still held the task (else another took it over
    /// after the lease expired, and the task was left alone).
    pub owned: bool,
    /// Jobs that stopped because of this (each reported exactly once).
    pub stopped_jobs: Vec<JobRow>,
}

const JOB_COLUMNS: &str = "id, org_id, title, type, status, scheduler_state, parameters, priority, created_by, created_at, updated_at";
const TASK_COLUMNS: &str = "id, org_id, job_id, layer_key, type, title, parameters, priority, status, run_result, \
    attempts, max_attempts, not_before, lease_owner, lease_expires, run_id, error, created_at, updated_at, reused_layer, rerender";
const RUN_COLUMNS: &str = "id, org_id, job_id, task_id, worker, attempt, started_at, stopped_at, result_code, error, files, created_at, updated_at";

/// Linked jobs of task `$1` whose tasks have all stopped, stopped (at `$2`).
/// Jobs still being created (`scheduling`) are left to their creator.
const STOP_FINISHED_JOBS: &str = "UPDATE jobs SET status = 'stopped', \
    scheduler_state = CASE WHEN scheduler_state = 'cancelled' THEN 'cancelled' ELSE 'finished' END, updated_at = $2 \
    WHERE status <> 'stopped' AND scheduler_state <> 'scheduling' \
    AND id IN (SELECT job_id FROM job_tasks WHERE task_id = $1) \
    AND NOT EXISTS (SELECT 1 FROM job_tasks jt JOIN tasks t ON t.id = jt.task_id \
        WHERE jt.job_id = jobs.id AND t.status <> 'stopped') \
    RETURNING id, org_id, title, type, status, scheduler_state, parameters, priority, created_by, created_at, updated_at";

fn job_row(r: &AnyRow) -> Result<JobRow, MetaError> {
    Ok(JobRow {
        id: uuid(r, "id")?,
        org_id: uuid(r, "org_id")?,
        title: text(r, "title")?,
        kind: text(r, "type")?,
        status: state(r, "status")?,
        scheduler_state: state(r, "scheduler_state")?,
        parameters: text(r, "parameters")?,
        priority: int(r, "priority")?,
        created_by: opt_text(r, "created_by")?,
        created_at: int(r, "created_at")?,
        updated_at: int(r, "updated_at")?,
    })
}

fn task_row(r: &AnyRow) -> Result<TaskRow, MetaError> {
    Ok(TaskRow {
        id: uuid(r, "id")?,
        org_id: uuid(r, "org_id")?,
        job_id: uuid(r, "job_id")?,
        layer_key: text(r, "layer_key")?,
        kind: text(r, "type")?,
        title: text(r, "title")?,
        parameters: text(r, "parameters")?,
        priority: int(r, "priority")?,
        status: state(r, "status")?,
        run_result: opt_state(r, "run_result")?,
        attempts: int(r, "attempts")?,
        max_attempts: int(r, "max_attempts")?,
        not_before: int(r, "not_before")?,
        lease_owner: opt_text(r, "lease_owner")?,
        lease_expires: opt_int(r, "lease_expires")?,
        run_id: opt_text(r, "run_id")?,
        error: opt_text(r, "error")?,
        created_at: int(r, "created_at")?,
        updated_at: int(r, "updated_at")?,
        reused_layer: opt_text(r, "reused_layer")?,
        rerender: int(r, "rerender")? != 0,
    })
}

fn run_row(r: &AnyRow) -> Result<RunRow, MetaError> {
    let files: Vec<Uuid> = serde_json::from_str(&text(r, "files")?)
        .map_err(|e| MetaError::Corrupt(format!("runs.files: {e}")))?;
    Ok(RunRow {
        id: uuid(r, "id")?,
        org_id: uuid(r, "org_id")?,
        job_id: uuid(r, "job_id")?,
        task_id: uuid(r, "task_id")?,
        worker: text(r, "worker")?,
        attempt: int(r, "attempt")?,
        started_at: int(r, "started_at")?,
        stopped_at: opt_int(r, "stopped_at")?,
        result_code: opt_state(r, "result_code")?,
        error: opt_text(r, "error")?,
        files,
        created_at: int(r, "created_at")?,
        updated_at: int(r, "updated_at")?,
    })
}

/// Locks the live jobs linked to `task` before the task changes, so two
/// transactions stopping a job's last two tasks serialise on the job row
/// and the second sees the first's change (PostgreSQL's READ COMMITTED
/// would otherwise let both miss it). On PostgreSQL the rows are locked in
/// id order, as every transaction that locks several jobs does, so two of
/// them cannot each hold a job the other waits for; SQLite serialises
/// writers, and the no-op update takes its write lock.
async fn lock_linked_jobs(
    conn: &mut AnyConnection,
    postgres: bool,
    task: Uuid,
    now: i64,
) -> Result<(), MetaError> {
    if postgres {
        sqlx::query(
            "SELECT id FROM jobs WHERE status <> 'stopped' \
             AND id IN (SELECT job_id FROM job_tasks WHERE task_id = $1) ORDER BY id FOR UPDATE",
        )
        .bind(task.to_string())
        .fetch_all(&mut *conn)
        .await
        .map_err(translate)?;
    }
    sqlx::query(
        "UPDATE jobs SET updated_at = $2 WHERE status <> 'stopped' \
         AND id IN (SELECT job_id FROM job_tasks WHERE task_id = $1)",
    )
    .bind(task.to_string())
    .bind(now)
    .execute(&mut *conn)
    .await
    .map(|_| ())
    .map_err(translate)
}

async fn stop_finished_jobs(
    conn: &mut AnyConnection,
    task: Uuid,
    now: i64,
) -> Result<Vec<JobRow>, MetaError> {
    let rows = sqlx::query(STOP_FINISHED_JOBS)
        .bind(task.to_string())
        .bind(now)
        .fetch_all(&mut *conn)
        .await
        .map_err(translate)?;
    rows.iter().map(job_row).collect()
}
