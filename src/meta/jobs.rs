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

use super::{Meta, MetaError, Where, Window, int, opt_int, opt_text, text, translate, uuid};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub title: String,
    pub kind: String,
    /// pending | running | stopped
    pub status: String,
    /// scheduled | finished | cancelled
    pub scheduler_state: String,
    /// JSON.
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
    /// JSON.
    pub parameters: String,
    pub priority: i64,
    /// pending | running | stopped
    pub status: String,
    /// success | failure | cancelled, once stopped.
    pub run_result: Option<String>,
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
    /// Success | Failed, once stopped.
    pub result_code: Option<String>,
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
        status: text(r, "status")?,
        scheduler_state: text(r, "scheduler_state")?,
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
        status: text(r, "status")?,
        run_result: opt_text(r, "run_result")?,
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

/// The latest layer record of `layer_key` (a registration after a render
/// replaced its image), if any: what a task for that
/// key finishes with instead of rendering again. Read in the transaction
/// that creates or claims the task; on PostgreSQL (READ COMMITTED) the
/// statement sees every record committed before it, and a worker records
/// its layer before it stops its task, so a task created after another
/// stopped, or claimed after another run of it recorded, sees the record.
async fn existing_layer(
    conn: &mut AnyConnection,
    layer_key: &str,
) -> Result<Option<Existing>, MetaError> {
    let r = sqlx::query(
        "SELECT id, file_id FROM layers WHERE layer_key = $1 ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(layer_key.to_string())
    .fetch_optional(&mut *conn)
    .await
    .map_err(translate)?;
    r.map(|r| {
        Ok(Existing {
            layer: uuid(&r, "id")?,
            file: uuid(&r, "file_id")?,
        })
    })
    .transpose()
}

/// `$1, $2, ..., $n`: the placeholders of an `IN (...)` list.
fn placeholders(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
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
        result_code: opt_text(r, "result_code")?,
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

impl Meta {
    /// Creates `job` and links it to one active task per entry of `tasks`
    /// (creating the task, or joining the active one with the same key and
    /// raising its priority to the job's). A key that has no active task
    /// but is already recorded (and not asked to `rerender`) is not
    /// rendered again, whenever the caller saw it missing: the job is
    /// linked to the finished task that made the layer. Returns the job as
    /// stored (its status follows its tasks: stopped at once when none is
    /// active) and the task ids, in the order of `tasks`.
    ///
    /// Tasks are linked in chunks of their own transactions (a batch of
    /// thousands must not hold the write lock for seconds), in key order
    /// (concurrent batches lock keys in one order); until the last chunk
    /// the job is `scheduling`, which keeps it from being stopped early.
    ///
    /// # Errors
    /// [`MetaError`] from the store; the job is then stopped as cancelled.
    pub async fn create_job(&self, job: &JobRow, tasks: &[NewTask]) -> Result<Queued, MetaError> {
        let now = self.now();
        sqlx::query(&format!(
            "INSERT INTO jobs ({JOB_COLUMNS}) VALUES ($1, $2, $3, $4, 'pending', 'scheduling', $5, $6, $7, $8, $8)"
        ))
        .bind(job.id.to_string())
        .bind(job.org_id.to_string())
        .bind(job.title.clone())
        .bind(job.kind.clone())
        .bind(job.parameters.clone())
        .bind(job.priority)
        .bind(job.created_by.clone())
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(translate)?;
        match self.link_all(job, tasks, now).await {
            Ok((ids, reused)) => {
                let stored = self.schedule(job.org_id, job.id).await?;
                Ok(Queued {
                    job: stored,
                    tasks: ids,
                    reused,
                })
            }
            Err(e) => {
                let _ = sqlx::query(
                    "UPDATE jobs SET status = 'stopped', scheduler_state = 'cancelled' WHERE id = $1",
                )
                .bind(job.id.to_string())
                .execute(&self.pool)
                .await;
                Err(e)
            }
        }
    }

    async fn link_all(
        &self,
        job: &JobRow,
        tasks: &[NewTask],
        now: i64,
    ) -> Result<(Vec<Uuid>, Vec<bool>), MetaError> {
        const CHUNK: usize = 500;
        let mut order: Vec<usize> = (0..tasks.len()).collect();
        order.sort_by(|a, b| tasks[*a].layer_key.cmp(&tasks[*b].layer_key));
        let mut ids = vec![Uuid::nil(); tasks.len()];
        let mut reused = vec![false; tasks.len()];
        for (n, chunk) in order.chunks(CHUNK).enumerate() {
            // A batch cancelled while it is being created links no more.
            if n > 0 && self.job(job.org_id, job.id).await?.status == "stopped" {
                return Err(MetaError::Conflict(format!(
                    "job {} was cancelled while its tasks were being queued",
                    job.id
                )));
            }
            let mut tx = self.pool.begin().await.map_err(translate)?;
            for &i in chunk {
                // Created in plan order (bottom layer first), whatever the
                // locking order: workers claim equal priorities oldest first.
                let created = now + i64::try_from(i).unwrap_or(i64::MAX);
                (ids[i], reused[i]) = self.link_task(&mut tx, job, &tasks[i], created).await?;
            }
            tx.commit().await.map_err(translate)?;
        }
        Ok((ids, reused))
    }

    /// Ends the `scheduling` state of a job whose tasks are all linked: it
    /// is running if a task is, stopped if none is active, else pending.
    async fn schedule(&self, org: Uuid, id: Uuid) -> Result<JobRow, MetaError> {
        let now = self.now();
        // Lock the job row first, then decide in a new statement: a worker
        // stopping one of its tasks holds the row (`lock_linked_jobs`)
        // until it commits, and on PostgreSQL a single statement's
        // subqueries would not see that task stopped after the wait.
        let mut tx = self.pool.begin().await.map_err(translate)?;
        sqlx::query("UPDATE jobs SET updated_at = $2 WHERE id = $1")
            .bind(id.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(translate)?;
        let active = "SELECT 1 FROM job_tasks jt JOIN tasks t ON t.id = jt.task_id \
                      WHERE jt.job_id = jobs.id AND t.status";
        let r = sqlx::query(&format!(
            "UPDATE jobs SET updated_at = $2, \
             status = CASE WHEN EXISTS ({active} = 'running') THEN 'running' \
                           WHEN EXISTS ({active} = 'pending') THEN 'pending' ELSE 'stopped' END, \
             scheduler_state = CASE WHEN EXISTS ({active} <> 'stopped') THEN 'scheduled' ELSE 'finished' END \
             WHERE id = $1 AND scheduler_state = 'scheduling' RETURNING {JOB_COLUMNS}"
        ))
        .bind(id.to_string())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(translate)?;
        tx.commit().await.map_err(translate)?;
        match r {
            Some(r) => job_row(&r),
            // Cancelled while its tasks were being linked: it stays so.
            None => self.job(org, id).await,
        }
    }

    /// Stops jobs (not being created) that have no active task left: a
    /// safety net, should a stop ever be missed. Returns them.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn stop_idle_jobs(&self) -> Result<Vec<JobRow>, MetaError> {
        let rows = sqlx::query(&format!(
            "UPDATE jobs SET status = 'stopped', updated_at = $1, \
             scheduler_state = CASE WHEN scheduler_state = 'cancelled' THEN 'cancelled' ELSE 'finished' END \
             WHERE status <> 'stopped' AND scheduler_state <> 'scheduling' \
             AND NOT EXISTS (SELECT 1 FROM job_tasks jt JOIN tasks t ON t.id = jt.task_id \
                 WHERE jt.job_id = jobs.id AND t.status <> 'stopped') \
             RETURNING {JOB_COLUMNS}"
        ))
        .bind(self.now())
        .fetch_all(&self.pool)
        .await
        .map_err(translate)?;
        rows.iter().map(job_row).collect()
    }

    /// Links `job` to the active task of `t`'s key, creating it if there
    /// is none; or, when the key is recorded, to the finished task that
    /// made it (true: nothing to render).
    async fn link_task(
        &self,
        tx: &mut AnyConnection,
        job: &JobRow,
        t: &NewTask,
        now: i64,
    ) -> Result<(Uuid, bool), MetaError> {
        // A task may stop between the insert that found it and the select
        // (another process finished it): then insert again.
        for _ in 0..3 {
            let fresh = Uuid::new_v4();
            let inserted = sqlx::query(&format!(
                "INSERT INTO tasks ({TASK_COLUMNS}) VALUES ($1, $2, $3, $4, 'render', $5, $6, $7, 'pending', NULL, \
                 0, $8, $9, NULL, NULL, NULL, NULL, $9, $9, NULL, $10) ON CONFLICT DO NOTHING"
            ))
            .bind(fresh.to_string())
            .bind(job.org_id.to_string())
            .bind(job.id.to_string())
            .bind(t.layer_key.clone())
            .bind(t.title.clone())
            .bind(t.parameters.clone())
            .bind(job.priority)
            .bind(t.max_attempts)
            .bind(now)
            .bind(i64::from(t.rerender))
            .execute(&mut *tx)
            .await
            .map_err(translate)?
            .rows_affected()
                == 1;
            let (id, reused) = if inserted {
                // The insert found no active task for the key, so any task
                // that rendered it has stopped, and recorded its layer
                // before that: a request that missed the store just before
                // the layer landed must not render it again.
                let existing = if t.rerender {
                    None
                } else {
                    existing_layer(tx, &t.layer_key).await?
                };
                match existing {
                    None => (fresh, false),
                    Some(e) => (self.link_finished(tx, fresh, &t.layer_key, e).await?, true),
                }
            } else {
                let active = sqlx::query(
                    "SELECT id FROM tasks WHERE layer_key = $1 AND status <> 'stopped'",
                )
                .bind(t.layer_key.clone())
                .fetch_optional(&mut *tx)
                .await
                .map_err(translate)?;
                let Some(active) = active else { continue };
                let id = uuid(&active, "id")?;
                // Locks the task row (and raises its priority, and asks it
                // to render if this caller found the record's object
                // unusable): a task that stopped since the select is not
                // joined; look again.
                let still = sqlx::query(
                    "UPDATE tasks SET priority = CASE WHEN priority < $2 THEN $2 ELSE priority END, \
                     rerender = CASE WHEN $3 = 1 THEN 1 ELSE rerender END \
                     WHERE id = $1 AND status <> 'stopped'",
                )
                .bind(id.to_string())
                .bind(job.priority)
                .bind(i64::from(t.rerender))
                .execute(&mut *tx)
                .await
                .map_err(translate)?;
                if still.rows_affected() == 0 {
                    continue;
                }
                (id, false)
            };
            sqlx::query(
                "INSERT INTO job_tasks (job_id, task_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(job.id.to_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(translate)?;
            return Ok((id, reused));
        }
        Err(MetaError::Backend(format!(
            "the task for layer {} kept changing state; retry",
            t.layer_key
        )))
    }

    /// For a new task `fresh` whose key turns out to be recorded: the
    /// latest task that succeeded for the key replaces it (one task per
    /// key, as far as renders go), else (a registered layer: no task made
    /// it) `fresh` itself stops as a success reusing `existing`.
    async fn link_finished(
        &self,
        tx: &mut AnyConnection,
        fresh: Uuid,
        layer_key: &str,
        existing: Existing,
    ) -> Result<Uuid, MetaError> {
        let done = sqlx::query(
            "SELECT id FROM tasks WHERE layer_key = $1 AND status = 'stopped' AND run_result = 'success' \
             ORDER BY updated_at DESC, id LIMIT 1",
        )
        .bind(layer_key.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(translate)?;
        if let Some(done) = done {
            sqlx::query("DELETE FROM tasks WHERE id = $1")
                .bind(fresh.to_string())
                .execute(&mut *tx)
                .await
                .map_err(translate)?;
            return uuid(&done, "id");
        }
        sqlx::query(
            "UPDATE tasks SET status = 'stopped', run_result = 'success', reused_layer = $2 WHERE id = $1",
        )
        .bind(fresh.to_string())
        .bind(existing.layer.to_string())
        .execute(&mut *tx)
        .await
        .map_err(translate)?;
        Ok(fresh)
    }

    /// The error of the latest failed task for `layer_key` stopped after
    /// `since`, if any (a short negative cache for the compositor).
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn recent_failure(
        &self,
        layer_key: &str,
        since: i64,
    ) -> Result<Option<String>, MetaError> {
        let r = sqlx::query(
            "SELECT error, run_result FROM tasks WHERE layer_key = $1 AND status = 'stopped' \
             AND updated_at > $2 ORDER BY updated_at DESC LIMIT 1",
        )
        .bind(layer_key.to_string())
        .bind(since)
        .fetch_optional(&self.pool)
        .await
        .map_err(translate)?;
        match r {
            Some(r) if opt_text(&r, "run_result")?.as_deref() == Some("failure") => Ok(Some(
                opt_text(&r, "error")?.unwrap_or_else(|| "unknown error".into()),
            )),
            _ => Ok(None),
        }
    }

    /// Claims the most urgent claimable task for `worker` until `lease_until`:
    /// a pending task whose backoff is over, or a running one whose lease
    /// expired (its open run is closed as failed). Opens a run for it, and
    /// looks, in the same transaction, for a record of its key (left by an
    /// earlier run of the task that could not report, or by a render that
    /// finished after this task was created): the worker then finishes the
    /// run with that layer rather than render it again.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn claim_task(
        &self,
        worker: &str,
        lease_until: i64,
    ) -> Result<Option<Claimed>, MetaError> {
        let now = self.now();
        let run_id = Uuid::new_v4();
        let mut tx = self.pool.begin().await.map_err(translate)?;
        let claimable = "((status = 'pending' AND not_before <= $4) \
             OR (status = 'running' AND lease_expires < $4 AND attempts < max_attempts))";
        let sql = format!(
            "UPDATE tasks SET status = 'running', lease_owner = $1, lease_expires = $2, run_id = $3, \
             attempts = attempts + 1, updated_at = $4 \
             WHERE id = (SELECT id FROM tasks WHERE {claimable} ORDER BY priority DESC, created_at ASC LIMIT 1{lock}) \
             AND {claimable} RETURNING {TASK_COLUMNS}",
            lock = self.skip_locked()
        );
        let Some(r) = sqlx::query(&sql)
            .bind(worker.to_string())
            .bind(lease_until)
            .bind(run_id.to_string())
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(translate)?
        else {
            return Ok(None);
        };
        let task = task_row(&r)?;
        sqlx::query(
            "UPDATE runs SET stopped_at = $2, result_code = 'Failed', updated_at = $2, \
             error = 'the worker stopped renewing its lease (it crashed, hung or lost the database); the task was handed to another worker' \
             WHERE task_id = $1 AND stopped_at IS NULL",
        )
        .bind(task.id.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(translate)?;
        let run = RunRow {
            id: run_id,
            org_id: task.org_id,
            job_id: task.job_id,
            task_id: task.id,
            worker: worker.to_string(),
            attempt: task.attempts,
            started_at: now,
            stopped_at: None,
            result_code: None,
            error: None,
            files: Vec::new(),
            created_at: now,
            updated_at: now,
        };
        sqlx::query(&format!(
            "INSERT INTO runs ({RUN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL, NULL, '[]', $7, $7)"
        ))
        .bind(run.id.to_string())
        .bind(run.org_id.to_string())
        .bind(run.job_id.to_string())
        .bind(run.task_id.to_string())
        .bind(run.worker.clone())
        .bind(run.attempt)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(translate)?;
        let existing = if task.rerender {
            None
        } else {
            existing_layer(&mut tx, &task.layer_key).await?
        };
        tx.commit().await.map_err(translate)?;
        // The jobs' status follows, outside the claim: every transaction
        // that changes both locks job rows before task rows (finish_run,
        // fail_abandoned, cancel_job), and the claim has locked its task
        // first, so doing this inside it could deadlock with them on
        // PostgreSQL. A job shown `pending` for an instant is harmless; a
        // job that stopped meanwhile is left alone.
        if let Err(e) = self.mark_jobs_running(task.id, now).await {
            tracing::warn!(task = %task.id, error = %e, "job status not set to running");
        }
        Ok(Some(Claimed {
            task,
            run,
            existing,
        }))
    }

    /// The pending jobs of a task that started running become `running`.
    async fn mark_jobs_running(&self, task: Uuid, now: i64) -> Result<(), MetaError> {
        let mut tx = self.pool.begin().await.map_err(translate)?;
        lock_linked_jobs(&mut tx, self.postgres, task, now).await?;
        sqlx::query(
            "UPDATE jobs SET status = 'running', updated_at = $2 WHERE status = 'pending' \
             AND id IN (SELECT job_id FROM job_tasks WHERE task_id = $1)",
        )
        .bind(task.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(translate)?;
        tx.commit().await.map_err(translate)
    }

    /// Extends the lease of a task this run still holds; false if it lost it.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn renew_lease(
        &self,
        task: Uuid,
        run: Uuid,
        lease_until: i64,
    ) -> Result<bool, MetaError> {
        let done = sqlx::query(
            "UPDATE tasks SET lease_expires = $3 WHERE id = $1 AND run_id = $2 AND status = 'running'",
        )
        .bind(task.to_string())
        .bind(run.to_string())
        .bind(lease_until)
        .execute(&self.pool)
        .await
        .map_err(translate)?;
        Ok(done.rows_affected() == 1)
    }

    /// Records how run `run` of `task` ended, and what follows for the task
    /// and its jobs.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn finish_run(
        &self,
        task: Uuid,
        run: Uuid,
        outcome: &Outcome,
    ) -> Result<Finished, MetaError> {
        let now = self.now();
        let mut tx = self.pool.begin().await.map_err(translate)?;
        lock_linked_jobs(&mut tx, self.postgres, task, now).await?;
        // A failed task that no live job wants any more is not retried.
        let wanted = sqlx::query(
            "SELECT 1 AS one FROM job_tasks jt JOIN jobs j ON j.id = jt.job_id \
             WHERE jt.task_id = $1 AND j.status <> 'stopped' LIMIT 1",
        )
        .bind(task.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(translate)?
        .is_some();
        let (status, result, error, not_before) = match outcome {
            Outcome::Success { .. } | Outcome::Reused(_) => {
                ("stopped", Some("success"), None, None)
            }
            Outcome::Retry { error, not_before } if wanted => {
                ("pending", None, Some(error.clone()), Some(*not_before))
            }
            Outcome::Retry { error, .. } => (
                "stopped",
                Some("cancelled"),
                Some(format!("{error} (not retried: its jobs were cancelled)")),
                None,
            ),
            Outcome::Fail { error } => ("stopped", Some("failure"), Some(error.clone()), None),
        };
        let reused = match outcome {
            Outcome::Reused(e) => Some(e.layer.to_string()),
            _ => None,
        };
        let owned = sqlx::query(
            "UPDATE tasks SET status = $3, run_result = $4, error = $5, not_before = COALESCE($6, not_before), \
             lease_owner = NULL, lease_expires = NULL, updated_at = $7, reused_layer = $8 \
             WHERE id = $1 AND run_id = $2 AND status = 'running'",
        )
        .bind(task.to_string())
        .bind(run.to_string())
        .bind(status)
        .bind(result)
        .bind(error.clone())
        .bind(not_before)
        .bind(now)
        .bind(reused)
        .execute(&mut *tx)
        .await
        .map_err(translate)?
        .rows_affected()
            == 1;
        let files = match outcome {
            Outcome::Success { files } => {
                serde_json::to_string(files).unwrap_or_else(|_| "[]".into())
            }
            Outcome::Reused(e) => serde_json::to_string(&[e.file]).unwrap_or_else(|_| "[]".into()),
            _ => "[]".into(),
        };
        sqlx::query(
            "UPDATE runs SET stopped_at = $2, result_code = $3, error = $4, files = $5, updated_at = $2 \
             WHERE id = $1 AND stopped_at IS NULL",
        )
        .bind(run.to_string())
        .bind(now)
        .bind(if matches!(outcome, Outcome::Success { .. } | Outcome::Reused(_)) {
            "Success"
        } else {
            "Failed"
        })
        .bind(error)
        .bind(files)
        .execute(&mut *tx)
        .await
        .map_err(translate)?;
        let stopped_jobs = if owned && status == "stopped" {
            stop_finished_jobs(&mut tx, task, now).await?
        } else {
            Vec::new()
        };
        tx.commit().await.map_err(translate)?;
        Ok(Finished {
            owned,
            stopped_jobs,
        })
    }

    /// Fails the tasks whose lease expired on their last allowed attempt
    /// (nobody will claim them again). Returns each with the jobs it stopped.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn fail_abandoned(&self) -> Result<Vec<(TaskRow, Vec<JobRow>)>, MetaError> {
        let now = self.now();
        let mut tx = self.pool.begin().await.map_err(translate)?;
        // On PostgreSQL: jobs before tasks, each in a fixed order (id, key),
        // as every other transaction locks them.
        if self.postgres {
            sqlx::query(
                "SELECT id FROM jobs WHERE status <> 'stopped' AND id IN \
                 (SELECT jt.job_id FROM job_tasks jt JOIN tasks t ON t.id = jt.task_id \
                  WHERE t.status = 'running' AND t.lease_expires < $1 AND t.attempts >= t.max_attempts) \
                 ORDER BY id FOR UPDATE",
            )
            .bind(now)
            .fetch_all(&mut *tx)
            .await
            .map_err(translate)?;
            sqlx::query(
                "SELECT id FROM tasks WHERE status = 'running' AND lease_expires < $1 \
                 AND attempts >= max_attempts ORDER BY layer_key FOR UPDATE",
            )
            .bind(now)
            .fetch_all(&mut *tx)
            .await
            .map_err(translate)?;
        }
        sqlx::query(
            "UPDATE jobs SET updated_at = $1 WHERE status <> 'stopped' AND id IN \
             (SELECT jt.job_id FROM job_tasks jt JOIN tasks t ON t.id = jt.task_id \
              WHERE t.status = 'running' AND t.lease_expires < $1 AND t.attempts >= t.max_attempts)",
        )
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(translate)?;
        let rows = sqlx::query(&format!(
            "UPDATE tasks SET status = 'stopped', run_result = 'failure', lease_owner = NULL, lease_expires = NULL, \
             error = 'the worker stopped renewing its lease on the last allowed attempt', updated_at = $1 \
             WHERE status = 'running' AND lease_expires < $1 AND attempts >= max_attempts RETURNING {TASK_COLUMNS}"
        ))
        .bind(now)
        .fetch_all(&mut *tx)
        .await
        .map_err(translate)?;
        let mut out = Vec::new();
        for r in &rows {
            let t = task_row(r)?;
            sqlx::query(
                "UPDATE runs SET stopped_at = $2, result_code = 'Failed', updated_at = $2, \
                 error = 'the worker stopped renewing its lease' WHERE task_id = $1 AND stopped_at IS NULL",
            )
            .bind(t.id.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(translate)?;
            let jobs = stop_finished_jobs(&mut tx, t.id, now).await?;
            out.push((t, jobs));
        }
        tx.commit().await.map_err(translate)?;
        Ok(out)
    }

    /// Cancels job `id`: stops its pending tasks that no other live job
    /// wants, and stops the job. Running tasks finish (a render cannot be
    /// interrupted safely). Returns the job if this call stopped it.
    ///
    /// # Errors
    /// [`MetaError::NotFound`] when the org has no such job.
    pub async fn cancel_job(&self, org: Uuid, id: Uuid) -> Result<Option<JobRow>, MetaError> {
        let now = self.now();
        let mut tx = self.pool.begin().await.map_err(translate)?;
        let r = sqlx::query(&format!(
            "UPDATE jobs SET status = 'stopped', scheduler_state = 'cancelled', updated_at = $3 \
             WHERE id = $1 AND org_id = $2 AND status <> 'stopped' RETURNING {JOB_COLUMNS}"
        ))
        .bind(id.to_string())
        .bind(org.to_string())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(translate)?;
        let Some(r) = r else {
            tx.rollback().await.map_err(translate)?;
            // Either unknown (404) or already stopped (nothing to do).
            self.job(org, id).await?;
            return Ok(None);
        };
        // On PostgreSQL, lock the job's pending tasks first (in key order,
        // as batches link them), then cancel in a new statement: READ
        // COMMITTED gives that statement a snapshot with every job that
        // joined a task before we locked it (a joiner holds the task row
        // until it commits), where one statement's subqueries would miss a
        // join it had waited for. SQLite serialises writers.
        if self.postgres {
            sqlx::query(
                "SELECT id FROM tasks WHERE status = 'pending' \
                 AND id IN (SELECT task_id FROM job_tasks WHERE job_id = $1) \
                 ORDER BY layer_key FOR UPDATE",
            )
            .bind(id.to_string())
            .fetch_all(&mut *tx)
            .await
            .map_err(translate)?;
        }
        sqlx::query(
            "UPDATE tasks SET status = 'stopped', run_result = 'cancelled', error = 'cancelled', updated_at = $2 \
             WHERE status = 'pending' AND id IN (SELECT task_id FROM job_tasks WHERE job_id = $1) \
             AND NOT EXISTS (SELECT 1 FROM job_tasks jt JOIN jobs j ON j.id = jt.job_id \
                 WHERE jt.task_id = tasks.id AND j.id <> $1 AND j.status <> 'stopped')",
        )
        .bind(id.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(translate)?;
        tx.commit().await.map_err(translate)?;
        job_row(&r).map(Some)
    }

    /// # Errors
    /// [`MetaError::NotFound`] when the org has no such job.
    pub async fn job(&self, org: Uuid, id: Uuid) -> Result<JobRow, MetaError> {
        let r = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 AND org_id = $2"
        ))
        .bind(id.to_string())
        .bind(org.to_string())
        .fetch_one(&self.pool)
        .await
        .map_err(translate)?;
        job_row(&r)
    }

    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn jobs(
        &self,
        org: Uuid,
        status: Option<&str>,
        w: Window,
    ) -> Result<(usize, Vec<JobRow>), MetaError> {
        let mut f = Where::default();
        f.eq("org_id", Some(org)).eq("status", status);
        self.page("jobs", JOB_COLUMNS, &f, Some(w), job_row).await
    }

    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn job_counts(&self, id: Uuid) -> Result<JobCounts, MetaError> {
        let r = sqlx::query(
            "SELECT COUNT(*) AS total, \
             COALESCE(SUM(CASE WHEN t.status = 'pending' THEN 1 ELSE 0 END), 0) AS pending, \
             COALESCE(SUM(CASE WHEN t.status = 'running' THEN 1 ELSE 0 END), 0) AS running, \
             COALESCE(SUM(CASE WHEN t.status = 'stopped' THEN 1 ELSE 0 END), 0) AS stopped, \
             COALESCE(SUM(CASE WHEN t.run_result = 'success' THEN 1 ELSE 0 END), 0) AS successes, \
             COALESCE(SUM(CASE WHEN t.run_result = 'failure' THEN 1 ELSE 0 END), 0) AS failures \
             FROM job_tasks jt JOIN tasks t ON t.id = jt.task_id WHERE jt.job_id = $1",
        )
        .bind(id.to_string())
        .fetch_one(&self.pool)
        .await
        .map_err(translate)?;
        Ok(JobCounts {
            total: int(&r, "total")?,
            pending: int(&r, "pending")?,
            running: int(&r, "running")?,
            stopped: int(&r, "stopped")?,
            successes: int(&r, "successes")?,
            failures: int(&r, "failures")?,
        })
    }

    /// A task of any org (workers and waiters).
    ///
    /// # Errors
    /// [`MetaError::NotFound`] when there is no such task.
    pub async fn task_by_id(&self, id: Uuid) -> Result<TaskRow, MetaError> {
        let r = sqlx::query(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1"))
            .bind(id.to_string())
            .fetch_one(&self.pool)
            .await
            .map_err(translate)?;
        task_row(&r)
    }

    /// # Errors
    /// [`MetaError::NotFound`] when the org has no such task.
    pub async fn task(&self, org: Uuid, id: Uuid) -> Result<TaskRow, MetaError> {
        let t = self.task_by_id(id).await?;
        if t.org_id == org {
            Ok(t)
        } else {
            Err(MetaError::NotFound)
        }
    }

    /// Tasks of the org, optionally only those of job `job` (created or
    /// joined) and in `status`.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn tasks(
        &self,
        org: Uuid,
        job: Option<Uuid>,
        status: Option<&str>,
        w: Option<Window>,
    ) -> Result<(usize, Vec<TaskRow>), MetaError> {
        let mut f = Where::default();
        f.eq("org_id", Some(org))
            .sub(
                "id IN (SELECT task_id FROM job_tasks WHERE job_id = {})",
                job,
            )
            .eq("status", status);
        self.page("tasks", TASK_COLUMNS, &f, w, task_row).await
    }

    /// Runs of the org, optionally only those of job `job`'s tasks or of
    /// task `task`.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn runs(
        &self,
        org: Uuid,
        job: Option<Uuid>,
        task: Option<Uuid>,
        w: Option<Window>,
    ) -> Result<(usize, Vec<RunRow>), MetaError> {
        let mut f = Where::default();
        f.eq("org_id", Some(org))
            .sub(
                "task_id IN (SELECT task_id FROM job_tasks WHERE job_id = {})",
                job,
            )
            .eq("task_id", task);
        self.page("runs", RUN_COLUMNS, &f, w, run_row).await
    }

    /// # Errors
    /// [`MetaError::NotFound`] when the org has no such run.
    pub async fn run(&self, org: Uuid, id: Uuid) -> Result<RunRow, MetaError> {
        let r = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE id = $1 AND org_id = $2"
        ))
        .bind(id.to_string())
        .bind(org.to_string())
        .fetch_one(&self.pool)
        .await
        .map_err(translate)?;
        run_row(&r)
    }

    /// Tasks pending and running, over all orgs (the queue depth).
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn task_counts(&self) -> Result<(i64, i64), MetaError> {
        let r = sqlx::query(
            "SELECT COALESCE(SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END), 0) AS pending, \
             COALESCE(SUM(CASE WHEN status = 'running' THEN 1 ELSE 0 END), 0) AS running \
             FROM tasks WHERE status <> 'stopped'",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(translate)?;
        Ok((int(&r, "pending")?, int(&r, "running")?))
    }

    /// Tasks of `org` waiting to be claimed.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn pending_of(&self, org: Uuid) -> Result<i64, MetaError> {
        let r = sqlx::query(
            "SELECT COUNT(*) AS pending FROM tasks WHERE org_id = $1 AND status = 'pending'",
        )
        .bind(org.to_string())
        .fetch_one(&self.pool)
        .await
        .map_err(translate)?;
        int(&r, "pending")
    }

    /// How many of `keys` have an active (pending or running) task: a new
    /// job joins those instead of adding to the queue.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn active_among(&self, keys: &[String]) -> Result<i64, MetaError> {
        let mut n = 0;
        for chunk in keys.chunks(500) {
            let sql = format!(
                "SELECT COUNT(*) AS n FROM tasks WHERE status <> 'stopped' AND layer_key IN ({})",
                placeholders(chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for k in chunk {
                q = q.bind(k.clone());
            }
            n += int(&q.fetch_one(&self.pool).await.map_err(translate)?, "n")?;
        }
        Ok(n)
    }

    /// Which of `keys` have a layer record.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn recorded_among(
        &self,
        keys: &[String],
    ) -> Result<std::collections::HashSet<String>, MetaError> {
        let mut out = std::collections::HashSet::new();
        for chunk in keys.chunks(500) {
            let sql = format!(
                "SELECT DISTINCT layer_key FROM layers WHERE layer_key IN ({})",
                placeholders(chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for k in chunk {
                q = q.bind(k.clone());
            }
            for r in q.fetch_all(&self.pool).await.map_err(translate)? {
                out.insert(text(&r, "layer_key")?);
            }
        }
        Ok(out)
    }

    /// The latest layer record of `layer_key`, if any.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn recorded_layer(&self, layer_key: &str) -> Result<Option<Existing>, MetaError> {
        let mut conn = self.pool.acquire().await.map_err(translate)?;
        existing_layer(&mut conn, layer_key).await
    }
}
