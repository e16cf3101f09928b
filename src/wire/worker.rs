//! The worker protocol's bodies (`/api/jobs/worker/...`): what a remote
//! render node sends and gets. The server (`http::worker`) and the client
//! (`jobs::remote`) share these types, so the two cannot drift apart.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::ToSchema;
use uuid::Uuid;

/// `POST /api/jobs/worker/claim`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimRequest {
    /// The worker's name, recorded on the run (e.g. `gpu-7/4112/0`).
    /// Printable characters only, not all white space.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub worker: String,
    /// The render backends this worker has (`builtin`, and the names of
    /// its `[render.backends.*]`): only tasks of assets drawn by one of
    /// them are handed out.
    #[schema(min_items = 1)]
    pub backends: Vec<String>,
    /// Only tasks of these assets (absent: any asset of its backends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assets: Option<Vec<Uuid>>,
    /// How long to wait for a task before answering 204 (long-poll), at
    /// most `jobs.remote_claim_wait_secs` (the document states the
    /// server's value); default that.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::catalog::whole::opt"
    )]
    #[schema(minimum = 0)]
    pub wait_seconds: Option<u64>,
}

/// A claimed task: everything a render node needs to render it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClaimedTask {
    pub task_id: Uuid,
    pub run_id: Uuid,
    pub job_id: Uuid,
    /// The layer key (hex blake3) the render must produce; the worker
    /// checks its own rebuild of the request against it.
    pub layer_key: String,
    pub title: String,
    /// This run's attempt, from 1.
    pub attempt: i64,
    pub max_attempts: i64,
    /// Renew before this many seconds pass (heartbeat); a lease not
    /// renewed expires and the task goes to another worker.
    pub lease_seconds: u64,
    pub lease_expires_at: String,
    /// What to render (the task's `parameters`: asset id and version,
    /// layer, view, configuration, size).
    #[schema(value_type = Object)]
    pub parameters: Value,
    /// The asset version the parameters name, with its template files.
    pub asset: AssetBundle,
}

/// An asset definition that travels: the JSON definition and every
/// template file it names (path relative to the asset file → text).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssetBundle {
    #[schema(value_type = Object)]
    pub definition: Value,
    pub files: BTreeMap<String, String>,
}

/// A renewed lease (`POST /api/jobs/worker/runs/{runId}/heartbeat`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    pub lease_seconds: u64,
    pub lease_expires_at: String,
}

/// A render that failed (`POST /api/jobs/worker/runs/{runId}/failure`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunFailure {
    /// Why, as the run's error (the worker's name is added).
    #[schema(min_length = 1, max_length = 4000, pattern = "\\S")]
    pub error: String,
    /// Whether another attempt may succeed (a timeout, a crash of the
    /// renderer): then the task is retried after its backoff while
    /// attempts are left, else it fails for good.
    #[serde(default)]
    pub transient: bool,
}

/// How a finished run was recorded.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunAccepted {
    /// `success`, `retry` or `failure`.
    pub result: String,
    /// The file ids of the layer (on success).
    pub files: Vec<Uuid>,
}
