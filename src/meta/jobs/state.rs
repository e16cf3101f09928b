//! State changes of a running queue: claims, leases, runs finishing,
//! abandoned tasks, cancels.

use super::{
    Claimed, Finished, JOB_COLUMNS, JobRow, Outcome, RUN_COLUMNS, RunRow, TASK_COLUMNS, TaskRow,
    job_row, lock_linked_jobs, stop_finished_jobs, task_row,
};
use crate::meta::layers::existing_layer;
use crate::meta::{Meta, MetaError, RunResult, Status, TaskResult, translate};
use uuid::Uuid;

impl Meta {
    /// Claims the most urgent claimable task for `worker` until `lease_until`:
    /// a pending task whose backoff is over, or a running one whose lease
    /// expired (its open run is closed as failed). Opens a run for it, and
    /// looks, in the same transaction, for a record of its key (left by an
    /// earlier run of the task that could not report, or by a render that
    /// finished after this task was created): the worker then finishes the
    /// run with that layer rather than render it again.
    ///
    /// With `assets`, only a task of one of those assets (a remote
    /// worker asks for the assets it has backends for; tasks queued
    /// without an asset id, by a server older than that column, are left
    /// to database workers).
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn claim_task(
        &self,
        worker: &str,
        lease_until: i64,
        assets: Option<&[Uuid]>,
    ) -> Result<Option<Claimed>, MetaError> {
        let now = self.now();
        let run_id = Uuid::new_v4();
        // Only tasks of these assets (a remote worker's backends); ids are
        // UUIDs, so spelling them into the statement is safe.
        let only = match assets {
            None => String::new(),
            Some([]) => return Ok(None),
            Some(ids) => format!(
                " AND asset_id IN ({})",
                ids.iter()
                    .map(|a| format!("'{a}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let mut tx = self.pool.begin().await.map_err(translate)?;
        let claimable = format!(
            "((status = 'pending' AND not_before <= $4) \
             OR (status = 'running' AND lease_expires < $4 AND attempts < max_attempts)){only}"
        );
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
        let run = start_run(&mut tx, &task, run_id, worker, now).await?;
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
        let (status, result, error, not_before) = task_outcome(outcome, wanted);
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
        .bind(status.as_str())
        .bind(result.map(TaskResult::as_str))
        .bind(error.clone())
        .bind(not_before)
        .bind(now)
        .bind(reused)
        .execute(&mut *tx)
        .await
        .map_err(translate)?
        .rows_affected()
            == 1;
        close_run(&mut tx, run, outcome, error, now).await?;
        let stopped_jobs = if owned && status == Status::Stopped {
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
        self.cancel(org, id, false).await
    }

    /// [`Meta::cancel_job`], or with `only_scheduling` only while the job
    /// is still being created (the reaper's cancel of a stale creation,
    /// which must not cancel a job its creator finished meanwhile).
    pub(super) async fn cancel(
        &self,
        org: Uuid,
        id: Uuid,
        only_scheduling: bool,
    ) -> Result<Option<JobRow>, MetaError> {
        let now = self.now();
        let mut tx = self.pool.begin().await.map_err(translate)?;
        let r = sqlx::query(&format!(
            "UPDATE jobs SET status = 'stopped', scheduler_state = 'cancelled', updated_at = $3 \
             WHERE id = $1 AND org_id = $2 AND status <> 'stopped'{} RETURNING {JOB_COLUMNS}",
            if only_scheduling {
                " AND scheduler_state = 'scheduling'"
            } else {
                ""
            }
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
}

/// Closes the runs of `task` that lost their lease, and opens run `run_id`
/// of `worker` (in the claiming transaction).
async fn start_run(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    task: &TaskRow,
    run_id: Uuid,
    worker: &str,
    now: i64,
) -> Result<RunRow, MetaError> {
    sqlx::query(
        "UPDATE runs SET stopped_at = $2, result_code = 'Failed', updated_at = $2, \
         error = 'the worker stopped renewing its lease (it crashed, hung or lost the database); the task was handed to another worker' \
         WHERE task_id = $1 AND stopped_at IS NULL",
    )
    .bind(task.id.to_string())
    .bind(now)
    .execute(&mut **tx)
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
    .execute(&mut **tx)
    .await
    .map_err(translate)?;
    Ok(run)
}

/// What a run's outcome makes of its task: status, result, error and the
/// retry time; a retry of a task no live job wants is a cancellation.
fn task_outcome(
    outcome: &Outcome,
    wanted: bool,
) -> (Status, Option<TaskResult>, Option<String>, Option<i64>) {
    match outcome {
        Outcome::Success { .. } | Outcome::Reused(_) => {
            (Status::Stopped, Some(TaskResult::Success), None, None)
        }
        Outcome::Retry { error, not_before } if wanted => (
            Status::Pending,
            None,
            Some(error.clone()),
            Some(*not_before),
        ),
        Outcome::Retry { error, .. } => (
            Status::Stopped,
            Some(TaskResult::Cancelled),
            Some(format!("{error} (not retried: its jobs were cancelled)")),
            None,
        ),
        Outcome::Fail { error } => (
            Status::Stopped,
            Some(TaskResult::Failure),
            Some(error.clone()),
            None,
        ),
    }
}

/// Closes run `run` with `outcome` (its result, error and files).
async fn close_run(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    run: Uuid,
    outcome: &Outcome,
    error: Option<String>,
    now: i64,
) -> Result<(), MetaError> {
    let files = match outcome {
        Outcome::Success { files } => serde_json::to_string(files).unwrap_or_else(|_| "[]".into()),
        Outcome::Reused(e) => serde_json::to_string(&[e.file]).unwrap_or_else(|_| "[]".into()),
        _ => "[]".into(),
    };
    sqlx::query(
        "UPDATE runs SET stopped_at = $2, result_code = $3, error = $4, files = $5, updated_at = $2 \
         WHERE id = $1 AND stopped_at IS NULL",
    )
    .bind(run.to_string())
    .bind(now)
    .bind(
        if matches!(outcome, Outcome::Success { .. } | Outcome::Reused(_)) {
            RunResult::Success
        } else {
            RunResult::Failed
        }
        .as_str(),
    )
    .bind(error)
    .bind(files)
    .execute(&mut **tx)
    .await
    .map_err(translate)?;
    Ok(())
}
