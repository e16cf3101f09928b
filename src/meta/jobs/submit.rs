//! Submitting work: a job and its tasks (created, or joined by key), and
//! the reaper's stop of jobs left with nothing active.

use super::{JOB_COLUMNS, JobRow, NewTask, Queued, TASK_COLUMNS, job_row};
use crate::meta::layers::existing_layer;
use crate::meta::{Existing, Meta, MetaError, translate, uuid};
use sqlx::AnyConnection;
use uuid::Uuid;

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
                // Cancels whatever was linked. If the store refuses this too
                // (it is down), the reaper cancels the job once it has been
                // `scheduling` for longer than `jobs.scheduling_timeout_secs`.
                if let Err(cancel) = self.cancel_job(job.org_id, job.id).await {
                    tracing::warn!(job = %job.id, error = %cancel,
                        "job not cancelled after its tasks failed to queue; the reaper will");
                }
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
            // A batch cancelled while it is being created links no more;
            // one still alive shows the reaper it is being created.
            if n > 0 && !self.touch_scheduling(job.id).await? {
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

    /// Marks a job being created as alive now; false if it was stopped.
    async fn touch_scheduling(&self, id: Uuid) -> Result<bool, MetaError> {
        let done =
            sqlx::query("UPDATE jobs SET updated_at = $2 WHERE id = $1 AND status <> 'stopped'")
                .bind(id.to_string())
                .bind(self.now())
                .execute(&self.pool)
                .await
                .map_err(translate)?;
        Ok(done.rows_affected() == 1)
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
    /// safety net, should a stop ever be missed; and cancels jobs still
    /// being created that nobody touched for `scheduling_timeout` (their
    /// creator died, or could not cancel them when linking failed).
    /// Returns them.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn stop_idle_jobs(
        &self,
        scheduling_timeout: std::time::Duration,
    ) -> Result<Vec<JobRow>, MetaError> {
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
        let mut stopped = rows.iter().map(job_row).collect::<Result<Vec<_>, _>>()?;
        let stale = sqlx::query(
            "SELECT id, org_id FROM jobs WHERE status <> 'stopped' \
             AND scheduler_state = 'scheduling' AND updated_at < $1 ORDER BY id",
        )
        .bind(
            self.now()
                .saturating_sub(super::super::micros(scheduling_timeout)),
        )
        .fetch_all(&self.pool)
        .await
        .map_err(translate)?;
        for r in &stale {
            // A creator that finished meanwhile keeps its job.
            if let Some(job) = self
                .cancel(uuid(r, "org_id")?, uuid(r, "id")?, true)
                .await?
            {
                stopped.push(job);
            }
        }
        Ok(stopped)
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
                "INSERT INTO tasks ({TASK_COLUMNS}, asset_id) VALUES ($1, $2, $3, $4, 'render', $5, $6, $7, 'pending', NULL, \
                 0, $8, $9, NULL, NULL, NULL, NULL, $9, $9, NULL, $10, $11) ON CONFLICT DO NOTHING"
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
            .bind(t.asset_id.map(|a| a.to_string()))
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
}
