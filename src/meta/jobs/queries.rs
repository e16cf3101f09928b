//! Reads of the queue: records, pages, counts.

use super::{
    JOB_COLUMNS, JobCounts, JobRow, RUN_COLUMNS, RunRow, TASK_COLUMNS, TaskRow, job_row, run_row,
    task_row,
};
use crate::meta::states::opt_state;
use crate::meta::{
    Meta, MetaError, Status, TaskResult, Where, Window, int, opt_text, placeholders, translate,
    uuid,
};
use uuid::Uuid;

impl Meta {
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
            Some(r) if opt_state(&r, "run_result")? == Some(TaskResult::Failure) => Ok(Some(
                opt_text(&r, "error")?.unwrap_or_else(|| "unknown error".into()),
            )),
            _ => Ok(None),
        }
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
        status: Option<Status>,
        w: Window,
    ) -> Result<(usize, Vec<JobRow>), MetaError> {
        let mut f = Where::default();
        f.eq("org_id", Some(org))
            .eq("status", status.map(Status::as_str));
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
        status: Option<Status>,
        w: Option<Window>,
    ) -> Result<(usize, Vec<TaskRow>), MetaError> {
        let mut f = Where::default();
        f.eq("org_id", Some(org))
            .sub(
                "id IN (SELECT task_id FROM job_tasks WHERE job_id = {})",
                job,
            )
            .eq("status", status.map(Status::as_str));
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

    /// Run `id` of any org (the worker protocol names runs by id alone).
    ///
    /// # Errors
    /// [`MetaError::NotFound`] when there is no such run.
    pub async fn run_by_id(&self, id: Uuid) -> Result<RunRow, MetaError> {
        let r = sqlx::query(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"))
            .bind(id.to_string())
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
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for k in chunk {
                q = q.bind(k.clone());
            }
            n += int(&q.fetch_one(&self.pool).await.map_err(translate)?, "n")?;
        }
        Ok(n)
    }

    /// [`Meta::job_counts`] of each of `ids`, in one query per 500 jobs
    /// (a job with no task counts zeros).
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn job_counts_among(
        &self,
        ids: &[Uuid],
    ) -> Result<std::collections::HashMap<Uuid, JobCounts>, MetaError> {
        let mut out: std::collections::HashMap<Uuid, JobCounts> =
            ids.iter().map(|id| (*id, JobCounts::default())).collect();
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT jt.job_id AS job_id, COUNT(*) AS total, \
                 COALESCE(SUM(CASE WHEN t.status = 'pending' THEN 1 ELSE 0 END), 0) AS pending, \
                 COALESCE(SUM(CASE WHEN t.status = 'running' THEN 1 ELSE 0 END), 0) AS running, \
                 COALESCE(SUM(CASE WHEN t.status = 'stopped' THEN 1 ELSE 0 END), 0) AS stopped, \
                 COALESCE(SUM(CASE WHEN t.run_result = 'success' THEN 1 ELSE 0 END), 0) AS successes, \
                 COALESCE(SUM(CASE WHEN t.run_result = 'failure' THEN 1 ELSE 0 END), 0) AS failures \
                 FROM job_tasks jt JOIN tasks t ON t.id = jt.task_id WHERE jt.job_id IN ({}) GROUP BY jt.job_id",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id.to_string());
            }
            for r in q.fetch_all(&self.pool).await.map_err(translate)? {
                out.insert(
                    uuid(&r, "job_id")?,
                    JobCounts {
                        total: int(&r, "total")?,
                        pending: int(&r, "pending")?,
                        running: int(&r, "running")?,
                        stopped: int(&r, "stopped")?,
                        successes: int(&r, "successes")?,
                        failures: int(&r, "failures")?,
                    },
                );
            }
        }
        Ok(out)
    }

    /// The runs of `org`'s tasks among `tasks`, oldest first, in one query
    /// per 500 tasks.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn runs_of_tasks(&self, org: Uuid, tasks: &[Uuid]) -> Result<Vec<RunRow>, MetaError> {
        let mut out = Vec::new();
        for chunk in tasks.chunks(500) {
            let sql = format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE org_id = $1 AND task_id IN ({}) \
                 ORDER BY created_at ASC, id ASC",
                placeholders(2, chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(org.to_string());
            for id in chunk {
                q = q.bind(id.to_string());
            }
            for r in q.fetch_all(&self.pool).await.map_err(translate)? {
                out.push(run_row(&r)?);
            }
        }
        Ok(out)
    }

    /// The runs of the tasks of each job in `jobs` (at most `per_job` each,
    /// oldest first), as `(job, run)`: one query for a page of jobs.
    ///
    /// # Errors
    /// Metadata failures.
    pub async fn runs_of_jobs(
        &self,
        org: Uuid,
        jobs: &[Uuid],
        per_job: usize,
    ) -> Result<Vec<(Uuid, RunRow)>, MetaError> {
        let mut out = Vec::new();
        for chunk in jobs.chunks(500) {
            let sql = format!(
                "SELECT {RUN_COLUMNS}, list_job FROM (\
                   SELECT runs.*, jt.job_id AS list_job, ROW_NUMBER() OVER \
                     (PARTITION BY jt.job_id ORDER BY runs.created_at ASC, runs.id ASC) AS n \
                   FROM runs JOIN job_tasks jt ON jt.task_id = runs.task_id \
                   WHERE runs.org_id = $1 AND jt.job_id IN ({})) AS x \
                 WHERE n <= {} ORDER BY created_at ASC, id ASC",
                placeholders(2, chunk.len()),
                per_job
            );
            let mut q = sqlx::query(&sql).bind(org.to_string());
            for id in chunk {
                q = q.bind(id.to_string());
            }
            for r in q.fetch_all(&self.pool).await.map_err(translate)? {
                out.push((uuid(&r, "list_job")?, run_row(&r)?));
            }
        }
        Ok(out)
    }
}
