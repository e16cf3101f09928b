//! The job, task and run objects, as the API answers them and as
//! `job.stopped` events carry them. Field names follow the contract;
//! layercake's additions are marked (`jobs::records` fills them from its
//! typed records). Also a batch's plan (`parameters` of a batch job, and
//! the answer to a dry run).

use super::FileJson;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobJson {
    pub id: String,
    pub org_id: String,
    pub title: String,
    /// `render` (a fast-compositor miss) or `batch` (`POST /api/jobs`).
    #[serde(rename = "type")]
    pub kind: String,
    /// `pending`, `running` or `stopped`.
    pub status: String,
    /// `scheduled`, `finished` or `cancelled`.
    pub scheduler_state: String,
    #[schema(value_type = Object)]
    pub parameters: Value,
    pub priority: i64,
    /// Who created it; `null` for a job layercake made itself (a miss).
    pub created_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub task_count: i64,
    pub task_status_pending: i64,
    pub task_status_running: i64,
    pub task_status_stopped: i64,
    pub task_result_successes: i64,
    pub task_result_failures: i64,
    /// Stopped tasks in percent of all tasks (100 for a job without tasks).
    pub task_progress: f64,
    /// The runs of the job's tasks (absent only in `job.stopped` events:
    /// fetch the job for them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runs: Option<Vec<RunJson>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskJson {
    pub id: String,
    pub org_id: String,
    /// The job that created the task (jobs that joined it list it too).
    pub job_id: String,
    /// Always `""`: a task renders layer keys, which hold the branch.
    pub branch: String,
    /// Always the nil UUID: tasks are made by layercake, for every job
    /// that wants the layer.
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// The render request, as a JSON string.
    pub parameters: String,
    pub title: String,
    /// `pending`, `running` or `stopped`.
    pub status: String,
    /// Same as `status`.
    pub run_status: String,
    /// Absent until stopped, then `Success`, `Failed` or `Cancelled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_result: Option<String>,
    pub report_progress: bool,
    pub runs: Vec<RunJson>,
    /// layercake: the layer key the task renders.
    pub layer_key: String,
    /// layercake: attempts made and allowed.
    pub attempts: i64,
    pub max_attempts: i64,
    /// layercake: the last failure, if any.
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunJson {
    pub id: String,
    pub org_id: String,
    pub job_id: String,
    pub task_id: String,
    pub created_at: String,
    pub updated_at: String,
    pub started_at: String,
    /// Absent while running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<String>,
    /// Milliseconds from start to stop (so far, while running).
    pub wall_clock_time: i64,
    pub results: RunResults,
    /// `Success` or `Failed`; absent while running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_code: Option<String>,
    /// Absent while running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_message: Option<String>,
    /// Why it failed; `""` when it did not.
    pub error: String,
    pub report_progress: bool,
    /// Percent: 0 while running, 100 once stopped.
    pub progress: f64,
    /// layercake: which worker ran it (`host/pid/slot`) and which attempt it was.
    pub worker: String,
    pub attempt: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunResults {
    pub files: Vec<FileJson>,
}
/// A batch's plan in numbers: a batch job's `parameters`, and what a dry
/// run answers. Fields in alphabetical order: the JSON (a `json!` object
/// before) keeps the byte order clients and tests saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchPlanJson {
    #[schema(format = Uuid)]
    pub asset_id: String,
    pub asset_version: u32,
    /// Distinct layers already stored.
    pub cached: usize,
    /// Distinct configurations planned.
    pub configurations: usize,
    /// Distinct layer keys.
    pub layers: usize,
    /// Layers to render (`layers - cached`).
    pub tasks: usize,
    /// The views' names, in plan order.
    pub views: Vec<String>,
}

impl BatchPlanJson {
    /// As a JSON value (what a job's `parameters` keep).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The answer to `POST /api/jobs` with `dryRun: true`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DryRunJson {
    /// Always `true`.
    pub dry_run: bool,
    pub parameters: BatchPlanJson,
}

/// What `POST /api/jobs` answers (200 either way): the queued job, or
/// with `dryRun: true` the plan alone.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum JobCreated {
    Job(JobJson),
    DryRun(DryRunJson),
}

#[cfg(test)]
mod tests {
    use super::{BatchPlanJson, DryRunJson};

    fn plan() -> BatchPlanJson {
        BatchPlanJson {
            asset_id: "03a29397-2265-40cd-8c45-41a1c4e12574".into(),
            asset_version: 2,
            cached: 3,
            configurations: 4,
            layers: 10,
            tasks: 7,
            views: vec!["Front".into(), "Side".into()],
        }
    }

    /// The bytes the `json!` objects made before the plan was typed.
    #[test]
    fn a_plan_serialises_as_the_json_object_did() {
        let p = plan();
        let before = serde_json::json!({
            "assetId": p.asset_id, "assetVersion": 2, "configurations": 4,
            "views": ["Front", "Side"], "layers": 10, "cached": 3, "tasks": 7,
        });
        assert_eq!(serde_json::to_string(&p).unwrap(), before.to_string());
        assert_eq!(p.to_value(), before);
        let dry = DryRunJson {
            dry_run: true,
            parameters: p,
        };
        let before = serde_json::json!({"dryRun": true, "parameters": before});
        assert_eq!(serde_json::to_string(&dry).unwrap(), before.to_string());
        let back: BatchPlanJson = serde_json::from_value(before["parameters"].clone()).unwrap();
        assert_eq!(back, plan());
    }
}
