//! The queue's records in the contract's shapes (`wire::jobs`): what
//! `GET /api/jobs...` answers and what a `job.stopped` event carries. The
//! shapes live in `wire`; filling them from [`Job`], [`Task`] and [`Run`]
//! lives here, beside the records (`wire` is below `jobs`).

use super::{Job, JobCounts, JobRecord, Run, RunRecord, RunResult, Task, TaskRecord, TaskResult};
use crate::wire::jobs::{JobJson, RunJson, RunResults, TaskJson};
use crate::wire::{FileJson, NO_ID, rfc3339};

impl JobRecord {
    /// The job with its counters and runs (`now`: how long a running run has taken).
    pub fn json(&self, now: i64) -> JobJson {
        let runs = self
            .runs
            .as_ref()
            .map(|runs| runs.iter().map(|r| r.json(now)).collect());
        job_json(&self.job, &self.counts, runs)
    }
}

impl TaskRecord {
    pub fn json(&self, now: i64) -> TaskJson {
        task_json(&self.task, self.runs.iter().map(|r| r.json(now)).collect())
    }
}

impl RunRecord {
    pub fn json(&self, now: i64) -> RunJson {
        run_json(
            &self.run,
            self.files.iter().map(FileJson::from_row).collect(),
            now,
        )
    }
}

/// A job with its counters, and its runs (`None` in a `job.stopped` event).
pub fn job_json(j: &Job, c: &JobCounts, runs: Option<Vec<RunJson>>) -> JobJson {
    JobJson {
        id: j.id.to_string(),
        org_id: j.org_id.to_string(),
        title: j.title.clone(),
        kind: j.kind.clone(),
        status: j.status.to_string(),
        scheduler_state: j.scheduler_state.to_string(),
        parameters: j.parameters.clone(),
        priority: j.priority,
        created_by: j.created_by.clone(),
        created_at: rfc3339(j.created_at),
        updated_at: rfc3339(j.updated_at),
        task_count: c.total,
        task_status_pending: c.pending,
        task_status_running: c.running,
        task_status_stopped: c.stopped,
        task_result_successes: c.successes,
        task_result_failures: c.failures,
        task_progress: if c.total == 0 {
            100.0
        } else {
            c.stopped as f64 * 100.0 / c.total as f64
        },
        runs,
    }
}

/// The contract's `runResult` of a stopped task.
fn task_result(r: TaskResult) -> &'static str {
    match r {
        TaskResult::Success => "Success",
        TaskResult::Cancelled => "Cancelled",
        TaskResult::Failure => "Failed",
    }
}

fn task_json(t: &Task, runs: Vec<RunJson>) -> TaskJson {
    TaskJson {
        id: t.id.to_string(),
        org_id: t.org_id.to_string(),
        job_id: t.job_id.to_string(),
        branch: String::new(),
        created_by: NO_ID.into(),
        created_at: rfc3339(t.created_at),
        updated_at: rfc3339(t.updated_at),
        kind: t.kind.clone(),
        parameters: t.parameters.clone(),
        title: t.title.clone(),
        status: t.status.to_string(),
        run_status: t.status.to_string(),
        run_result: t.result.map(|r| task_result(r).to_string()),
        report_progress: false,
        runs,
        layer_key: t.layer_key.clone(),
        attempts: t.attempts,
        max_attempts: t.max_attempts,
        error: t.error.clone(),
    }
}

/// The contract's `resultMessage` of a stopped run.
fn result_message(r: &Run, result: RunResult) -> String {
    match result {
        RunResult::Success => "rendered".to_string(),
        RunResult::Failed => r.error.clone().unwrap_or_else(|| "failed".into()),
    }
}

fn run_json(r: &Run, files: Vec<FileJson>, now: i64) -> RunJson {
    let end = r.stopped_at.unwrap_or(now);
    RunJson {
        id: r.id.to_string(),
        org_id: r.org_id.to_string(),
        job_id: r.job_id.to_string(),
        task_id: r.task_id.to_string(),
        created_at: rfc3339(r.created_at),
        updated_at: rfc3339(r.updated_at),
        started_at: rfc3339(r.started_at),
        stopped_at: r.stopped_at.map(rfc3339),
        wall_clock_time: (end - r.started_at).max(0) / 1000,
        results: RunResults { files },
        result_code: r.result.map(|c| c.to_string()),
        result_message: r.result.map(|c| result_message(r, c)),
        error: r.error.clone().unwrap_or_default(),
        report_progress: false,
        progress: if r.stopped_at.is_some() { 100.0 } else { 0.0 },
        worker: r.worker.clone(),
        attempt: r.attempt,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn run(result: Option<RunResult>, error: Option<&str>, stopped_at: Option<i64>) -> Run {
        Run {
            id: Uuid::nil(),
            org_id: Uuid::nil(),
            job_id: Uuid::nil(),
            task_id: Uuid::nil(),
            worker: "h/1/0".into(),
            attempt: 1,
            started_at: 1_000_000,
            stopped_at,
            result,
            error: error.map(str::to_string),
            created_at: 1_000_000,
            updated_at: 1_000_000,
        }
    }

    #[test]
    fn a_stopped_task_answers_the_contract_spelling() {
        let cases = [
            (TaskResult::Success, "Success"),
            (TaskResult::Failure, "Failed"),
            (TaskResult::Cancelled, "Cancelled"),
        ];
        for (r, want) in cases {
            assert_eq!(task_result(r), want);
        }
    }

    #[test]
    fn a_run_answers_its_code_message_and_time() {
        // (result, error, stopped_at, code, message, wall clock ms, progress)
        let cases = [
            (None, None, None, None, None, 2000, 0.0),
            (
                Some(RunResult::Success),
                None,
                Some(1_500_000),
                Some("Success"),
                Some("rendered"),
                500,
                100.0,
            ),
            (
                Some(RunResult::Failed),
                Some("boom"),
                Some(1_500_000),
                Some("Failed"),
                Some("boom"),
                500,
                100.0,
            ),
            (
                Some(RunResult::Failed),
                None,
                Some(1_500_000),
                Some("Failed"),
                Some("failed"),
                500,
                100.0,
            ),
            (
                Some(RunResult::Failed),
                None,
                Some(900_000),
                Some("Failed"),
                Some("failed"),
                0,
                100.0,
            ),
        ];
        for (result, error, stopped, code, message, ms, progress) in cases {
            let j = run_json(&run(result, error, stopped), Vec::new(), 3_000_000);
            assert_eq!(j.result_code.as_deref(), code, "{result:?}");
            assert_eq!(j.result_message.as_deref(), message, "{result:?}");
            assert_eq!(j.error, error.unwrap_or(""));
            assert_eq!(
                (j.wall_clock_time, j.progress),
                (ms, progress),
                "{result:?}"
            );
        }
    }

    #[test]
    fn task_progress_counts_stopped_tasks() {
        let job = Job {
            id: Uuid::nil(),
            org_id: Uuid::nil(),
            title: "t".into(),
            kind: "batch".into(),
            status: super::super::Status::Running,
            scheduler_state: super::super::SchedulerState::Scheduled,
            parameters: serde_json::json!({"tasks": 4}),
            priority: 0,
            created_by: None,
            created_at: 0,
            updated_at: 0,
        };
        let cases = [((0, 0), 100.0), ((4, 1), 25.0), ((3, 3), 100.0)];
        for ((total, stopped), want) in cases {
            let c = JobCounts {
                total,
                stopped,
                ..JobCounts::default()
            };
            let j = job_json(&job, &c, None);
            assert_eq!(j.task_progress, want);
            assert_eq!(
                (j.status.as_str(), j.scheduler_state.as_str()),
                ("running", "scheduled")
            );
        }
    }
}
