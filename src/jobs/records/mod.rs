//! The queue's records as the API shows them: jobs with their task
//! counters (and runs), tasks with their runs, runs with their files. Each
//! page costs a fixed number of queries (the page, then one query each for
//! counters, runs and files), however many rows it holds.
//!
//! [`Job`], [`Task`] and [`Run`] are the domain records: typed states
//! (`Status`, `SchedulerState`, `TaskResult`, `RunResult`, re-exported
//! here), a job's parameters as JSON; no `meta` row leaves this module.
//! `json` turns them into the contract's shapes (`wire::jobs`).

mod json;

pub use json::job_json;

use super::Jobs;
use crate::error::Error;
use crate::meta::{FileRow, JobRow, RunRow, TaskRow, Window};
use std::collections::HashMap;
use uuid::Uuid;

pub use crate::meta::{JobCounts, RunResult, SchedulerState, Status, TaskResult};

/// Runs listed with a job at most (the rest are in `GET /api/jobs/runs`).
pub const MAX_RUNS_WITH_JOB: usize = 1000;
/// ...and with each job of a page of jobs (a page of 100 batch jobs would
/// otherwise carry up to 100,000 runs).
pub const MAX_RUNS_WITH_LISTED_JOB: usize = 20;

/// A job: a compositor miss (`render`) or a batch (`batch`).
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: Uuid,
    pub org_id: Uuid,
    pub title: String,
    pub kind: String,
    pub status: Status,
    pub scheduler_state: SchedulerState,
    /// What its creator recorded (a batch's plan); `null` when unreadable.
    pub parameters: serde_json::Value,
    pub priority: i64,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<JobRow> for Job {
    fn from(j: JobRow) -> Job {
        Job {
            parameters: serde_json::from_str(&j.parameters).unwrap_or(serde_json::Value::Null),
            id: j.id,
            org_id: j.org_id,
            title: j.title,
            kind: j.kind,
            status: j.status,
            scheduler_state: j.scheduler_state,
            priority: j.priority,
            created_by: j.created_by,
            created_at: j.created_at,
            updated_at: j.updated_at,
        }
    }
}

/// A task: one layer key to render, for every job that wants it.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: Uuid,
    pub org_id: Uuid,
    pub job_id: Uuid,
    pub layer_key: String,
    pub kind: String,
    pub title: String,
    /// The render's parameters (`TaskParams`) as stored: the contract
    /// answers them as a JSON string, verbatim.
    pub parameters: String,
    pub status: Status,
    /// Once stopped.
    pub result: Option<TaskResult>,
    pub attempts: i64,
    pub max_attempts: i64,
    /// The last failure, if any.
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<TaskRow> for Task {
    fn from(t: TaskRow) -> Task {
        Task {
            id: t.id,
            org_id: t.org_id,
            job_id: t.job_id,
            layer_key: t.layer_key,
            kind: t.kind,
            title: t.title,
            parameters: t.parameters,
            status: t.status,
            result: t.run_result,
            attempts: t.attempts,
            max_attempts: t.max_attempts,
            error: t.error,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// A run: one attempt of a task.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub id: Uuid,
    pub org_id: Uuid,
    pub job_id: Uuid,
    pub task_id: Uuid,
    /// `host/pid/slot` of the worker that ran it.
    pub worker: String,
    pub attempt: i64,
    pub started_at: i64,
    pub stopped_at: Option<i64>,
    /// Once stopped.
    pub result: Option<RunResult>,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<RunRow> for Run {
    fn from(r: RunRow) -> Run {
        Run {
            id: r.id,
            org_id: r.org_id,
            job_id: r.job_id,
            task_id: r.task_id,
            worker: r.worker,
            attempt: r.attempt,
            started_at: r.started_at,
            stopped_at: r.stopped_at,
            result: r.result_code,
            error: r.error,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunRecord {
    pub run: Run,
    /// The files it made that still exist, in the run's order.
    pub files: Vec<FileRow>,
}

#[derive(Debug, Clone)]
pub struct JobRecord {
    pub job: Job,
    pub counts: JobCounts,
    /// The runs of its tasks (oldest first, at most [`MAX_RUNS_WITH_JOB`],
    /// or [`MAX_RUNS_WITH_LISTED_JOB`] in a list).
    pub runs: Option<Vec<RunRecord>>,
}

#[derive(Debug, Clone)]
pub struct TaskRecord {
    pub task: Task,
    pub runs: Vec<RunRecord>,
}

impl Jobs {
    /// Now, in the store's time (how old a running run is).
    pub fn now(&self) -> i64 {
        self.meta.now()
    }

    /// One job with its counters and runs.
    ///
    /// # Errors
    /// 404 when `org` has no such job.
    pub async fn job_record(&self, org: Uuid, id: Uuid) -> Result<JobRecord, Error> {
        let job = self.meta.job(org, id).await?;
        let counts = self.meta.job_counts(job.id).await?;
        let w = Window {
            offset: 0,
            limit: MAX_RUNS_WITH_JOB,
            descending: false,
        };
        let (_, runs) = self.meta.runs(org, Some(job.id), None, Some(w)).await?;
        Ok(JobRecord {
            job: job.into(),
            counts,
            runs: Some(self.with_files(org, runs).await?),
        })
    }

    /// A page of `org`'s jobs with their counters and first runs.
    ///
    /// # Errors
    /// Metadata failures.
    pub async fn job_records(
        &self,
        org: Uuid,
        status: Option<Status>,
        w: Window,
    ) -> Result<(usize, Vec<JobRecord>), Error> {
        let (count, rows) = self.meta.jobs(org, status, w).await?;
        let ids: Vec<Uuid> = rows.iter().map(|j| j.id).collect();
        let mut counts = self.meta.job_counts_among(&ids).await?;
        let (jobs_of_runs, runs): (Vec<Uuid>, Vec<RunRow>) = self
            .meta
            .runs_of_jobs(org, &ids, MAX_RUNS_WITH_LISTED_JOB)
            .await?
            .into_iter()
            .unzip();
        let mut by_job: HashMap<Uuid, Vec<RunRecord>> = HashMap::new();
        for (job, run) in jobs_of_runs
            .into_iter()
            .zip(self.with_files(org, runs).await?)
        {
            by_job.entry(job).or_default().push(run);
        }
        let records = rows
            .into_iter()
            .map(|job| JobRecord {
                counts: counts.remove(&job.id).unwrap_or_default(),
                runs: Some(by_job.remove(&job.id).unwrap_or_default()),
                job: job.into(),
            })
            .collect();
        Ok((count, records))
    }

    /// One task with its runs.
    ///
    /// # Errors
    /// 404 when `org` has no such task.
    pub async fn task_record(&self, org: Uuid, id: Uuid) -> Result<TaskRecord, Error> {
        let task = self.meta.task(org, id).await?;
        let runs = self.meta.runs_of_tasks(org, &[task.id]).await?;
        Ok(TaskRecord {
            task: task.into(),
            runs: self.with_files(org, runs).await?,
        })
    }

    /// A page of `org`'s tasks (of job `job`, in `status`) with their runs.
    ///
    /// # Errors
    /// Metadata failures.
    pub async fn task_records(
        &self,
        org: Uuid,
        job: Option<Uuid>,
        status: Option<Status>,
        w: Window,
    ) -> Result<(usize, Vec<TaskRecord>), Error> {
        let (count, rows) = self.meta.tasks(org, job, status, Some(w)).await?;
        let ids: Vec<Uuid> = rows.iter().map(|t| t.id).collect();
        let runs = self.meta.runs_of_tasks(org, &ids).await?;
        let mut by_task: HashMap<Uuid, Vec<RunRecord>> = HashMap::new();
        for r in self.with_files(org, runs).await? {
            by_task.entry(r.run.task_id).or_default().push(r);
        }
        let records = rows
            .into_iter()
            .map(|task| TaskRecord {
                runs: by_task.remove(&task.id).unwrap_or_default(),
                task: task.into(),
            })
            .collect();
        Ok((count, records))
    }

    /// One run with its files.
    ///
    /// # Errors
    /// 404 when `org` has no such run.
    pub async fn run_record(&self, org: Uuid, id: Uuid) -> Result<RunRecord, Error> {
        let run = self.meta.run(org, id).await?;
        let mut out = self.with_files(org, vec![run]).await?;
        out.pop()
            .ok_or_else(|| Error::Internal("run vanished".into()))
    }

    /// A page of `org`'s runs (of job `job`'s tasks, or of task `task`).
    ///
    /// # Errors
    /// Metadata failures.
    pub async fn run_records(
        &self,
        org: Uuid,
        job: Option<Uuid>,
        task: Option<Uuid>,
        w: Window,
    ) -> Result<(usize, Vec<RunRecord>), Error> {
        let (count, rows) = self.meta.runs(org, job, task, Some(w)).await?;
        Ok((count, self.with_files(org, rows).await?))
    }

    /// `runs` with their files, read in one query.
    async fn with_files(&self, org: Uuid, runs: Vec<RunRow>) -> Result<Vec<RunRecord>, Error> {
        let ids: Vec<Uuid> = runs.iter().flat_map(|r| r.files.iter().copied()).collect();
        let files: HashMap<Uuid, FileRow> = if ids.is_empty() {
            HashMap::new()
        } else {
            self.meta
                .files_among(org, &ids)
                .await?
                .into_iter()
                .map(|f| (f.id, f))
                .collect()
        };
        Ok(runs
            .into_iter()
            .map(|run| RunRecord {
                files: run
                    .files
                    .iter()
                    .filter_map(|id| files.get(id).cloned())
                    .collect(),
                run: run.into(),
            })
            .collect())
    }
}

impl Jobs {
    /// The layers of `plan` that are not stored yet (see [`super::batch::missing`]).
    ///
    /// # Errors
    /// Metadata or store failures.
    pub async fn missing(
        &self,
        store: &crate::store::BlobStore,
        plan: &super::plan::Plan,
    ) -> Result<super::batch::Missing, Error> {
        super::batch::missing(store, &self.meta, plan).await
    }
}
