//! A remote render node: `layercake worker --server URL --token T`.
//!
//! It holds no database or object-store credentials: it pulls work from a
//! `serve` process over the worker protocol (`wire::worker`) with a
//! `worker` token, renders with its own configured backends (the same
//! `render::Renderers` as a local worker), and uploads the layer file.
//!
//! Each of `slots` loops: claim (long-poll), rebuild the render request
//! from the task's parameters and the asset bundle that came with it
//! (cached per asset version), check that it gives the task's layer key,
//! then hand the run to the task executor (`execute`, the same as an
//! in-process worker's) through an HTTP lease (`HttpLease`): it renders
//! under the backend's timeout while the heartbeat renews the lease every
//! third of it, validates the output against the canvas and encodes it;
//! the lease uploads it. A heartbeat answered 409 means the task went to
//! another worker: the render is dropped. A renderer that panics is a
//! failed run, and the node goes on. Failures are reported with whether
//! they may pass, and the server decides on retries as for any worker.
//!
//! When the server cannot be reached, a claim backs off exponentially (to
//! `MAX_BACKOFF`, with jitter) and tries again for as long as the node
//! runs; an upload or a failure report is tried `REPORT_ATTEMPTS` times
//! and then given up (the lease expires and the task is rendered again).

use super::execute::{self, Encoded, Failure, Lease, Renewal, Start};
use super::{LayerJob, TaskParams};
use crate::catalog::{Asset, Limits, load_asset_bundle};
use crate::render::Renderers;
use crate::telemetry;
use crate::wire::worker::{ClaimRequest, ClaimedTask, RunAccepted, RunFailure};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

/// Longest wait between two claims while the server is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Tries of an upload or a failure report before it is given up.
const REPORT_ATTEMPTS: u32 = 5;

/// How a node reaches its server and how much it renders at once.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// The server's base URL, e.g. `https://render.example.com`.
    pub server: String,
    pub token: String,
    /// Renders at once.
    pub slots: usize,
    /// How long one claim waits on the server for a task.
    pub claim_wait: Duration,
    /// Only these assets (none: every asset of its backends).
    pub assets: Option<Vec<Uuid>>,
}

/// Why a call to the server did not give an answer to act on.
#[derive(Debug, thiserror::Error)]
enum CallError {
    /// Not reached, or a 5xx/429: worth trying again.
    #[error("{0}")]
    Unreachable(String),
    /// 409: the run no longer holds its task.
    #[error("{0}")]
    Lost(String),
    /// Any other 4xx: trying again gives the same answer.
    #[error("{0}")]
    Refused(String),
}

/// A remote render node.
pub struct Node {
    settings: NodeSettings,
    renderers: Renderers,
    client: reqwest::Client,
    /// Asset versions built from their bundles.
    assets: Mutex<HashMap<(Uuid, u32), Arc<Asset>>>,
    name: String,
}

impl Node {
    /// # Errors
    /// A message when the server URL is not http(s) or the HTTP client
    /// cannot be built.
    pub fn new(settings: NodeSettings, renderers: Renderers) -> Result<Node, String> {
        let server = settings.server.trim_end_matches('/').to_string();
        if !(server.starts_with("https://") || server.starts_with("http://")) {
            return Err(format!(
                "--server {server}: give the server's base URL, https://host[:port]"
            ));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("http client: {e}"))?;
        Ok(Node {
            settings: NodeSettings { server, ..settings },
            renderers,
            client,
            assets: Mutex::new(HashMap::new()),
            name: execute::worker_name(),
        })
    }

    /// Starts the slots on `tracker`; they stop claiming when `stop` fires
    /// and end after their current render and upload.
    pub fn spawn(self: &Arc<Self>, tracker: &TaskTracker, stop: &CancellationToken) {
        let slots = self.settings.slots.max(1);
        let permits = Arc::new(Semaphore::new(slots));
        for slot in 0..slots {
            let (me, stop, permits) = (Arc::clone(self), stop.clone(), Arc::clone(&permits));
            tracker.spawn(async move { me.slot(slot, permits, stop).await });
        }
        metrics::counter!(telemetry::RENDERS_DUPLICATE).increment(0);
        tracing::info!(worker = %self.name, server = %self.settings.server, slots, backends = ?self.renderers.names(), "remote render node started");
    }

    /// One render at a time. As a local worker's, the permit goes with the
    /// render itself, so a render that outlives its timeout still counts
    /// against `slots` until it really ends.
    async fn slot(self: Arc<Self>, slot: usize, permits: Arc<Semaphore>, stop: CancellationToken) {
        let name = format!("{}/{slot}", self.name);
        let mut backoff = Duration::ZERO;
        while !stop.is_cancelled() {
            let permit = tokio::select! {
                () = stop.cancelled() => break,
                p = Arc::clone(&permits).acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let claimed = tokio::select! {
                () = stop.cancelled() => break,
                c = self.claim(&name) => c,
            };
            match claimed {
                Ok(Some(task)) => {
                    backoff = Duration::ZERO;
                    self.run(task, permit).await;
                }
                Ok(None) => backoff = Duration::ZERO,
                Err(e) => {
                    backoff = (backoff * 2).clamp(Duration::from_millis(500), MAX_BACKOFF);
                    let wait = jitter(backoff);
                    tracing::warn!(worker = %name, error = %e, retry_in_ms = wait.as_millis() as u64, "cannot claim from the server");
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    async fn claim(&self, name: &str) -> Result<Option<ClaimedTask>, CallError> {
        let body = ClaimRequest {
            worker: name.to_string(),
            backends: self.renderers.names(),
            assets: self.settings.assets.clone(),
            wait_seconds: Some(self.settings.claim_wait.as_secs()),
        };
        let answer = self
            .call(
                reqwest::Method::POST,
                "/api/jobs/worker/claim",
                "application/json",
                serde_json::to_vec(&body).unwrap_or_default(),
                self.settings.claim_wait + Duration::from_secs(15),
            )
            .await?;
        match answer {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| CallError::Refused(format!("unreadable claim answer: {e}"))),
        }
    }

    /// Carries a claimed task to its end with the task executor.
    async fn run(&self, task: ClaimedTask, permit: OwnedSemaphorePermit) {
        let lease = HttpLease {
            period: Duration::from_secs(task.lease_seconds.max(3)),
            heartbeat: format!("/api/jobs/worker/runs/{}/heartbeat", task.run_id),
            node: self,
            task,
        };
        execute::run(&lease, &self.renderers, Some(permit)).await;
    }

    /// The render request of a claimed task, checked against its key.
    fn job_of(&self, task: &ClaimedTask) -> Result<LayerJob, Failure> {
        let params: TaskParams = serde_json::from_value(task.parameters.clone())
            .map_err(|e| Failure::permanent(format!("unreadable task parameters: {e}")))?;
        let asset = self.asset(&params, task)?;
        let job = params.request(asset).map_err(Failure::permanent)?;
        if job.key.hex() != task.layer_key {
            return Err(Failure::key_mismatch(&job.key, &task.layer_key));
        }
        Ok(job)
    }

    fn asset(&self, params: &TaskParams, task: &ClaimedTask) -> Result<Arc<Asset>, Failure> {
        let at = (params.asset_id, params.asset_version);
        if let Some(a) = self.lock().get(&at) {
            return Ok(Arc::clone(a));
        }
        let mut asset = load_asset_bundle(
            &params.asset_id.to_string(),
            &task.asset.definition.to_string(),
            &task.asset.files,
            &Limits::NONE,
        )
        .map_err(|e| Failure::permanent(format!("the asset that came with the task: {e}")))?;
        asset.version = params.asset_version;
        let asset = Arc::new(asset);
        let mut map = self.lock();
        // Versions are immutable; a few hundred of them is a lot.
        if map.len() > 1024 {
            map.clear();
        }
        map.insert(at, Arc::clone(&asset));
        Ok(asset)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Uuid, u32), Arc<Asset>>> {
        self.assets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Uploads the layer file; the render counter's label, or `None` when
    /// the task went to another worker or the server was not reached.
    async fn upload(&self, task: &ClaimedTask, file: Bytes) -> Option<&'static str> {
        let path = format!("/api/jobs/worker/runs/{}/result", task.run_id);
        match self.report(&path, "image/png", file.into()).await {
            Ok(_) => {
                tracing::info!(task = %task.task_id, layer = %task.title, attempt = task.attempt, "rendered layer; uploaded");
                Some("success")
            }
            Err(CallError::Refused(e)) => {
                tracing::warn!(task = %task.task_id, error = %e, "the server refused the render");
                Some("failure")
            }
            Err(e) => {
                tracing::warn!(task = %task.task_id, error = %e, "render not uploaded; its lease will expire and it renders again");
                None
            }
        }
    }

    /// Reports a failed run; the render counter's label, or `None` when
    /// the server was not reached.
    async fn fail(&self, task: &ClaimedTask, f: &Failure) -> Option<&'static str> {
        tracing::warn!(task = %task.task_id, layer = %task.title, attempt = task.attempt, error = %f.message, "render failed");
        let body = RunFailure {
            error: f.message.clone(),
            transient: f.transient,
        };
        let path = format!("/api/jobs/worker/runs/{}/failure", task.run_id);
        let sent = self
            .report(
                &path,
                "application/json",
                serde_json::to_vec(&body).unwrap_or_default(),
            )
            .await;
        match sent {
            Ok(Some(bytes)) => match serde_json::from_slice::<RunAccepted>(&bytes) {
                Ok(a) if a.result == "retry" => Some("retry"),
                _ => Some("failure"),
            },
            Ok(None) => Some("failure"),
            Err(e) => {
                tracing::warn!(task = %task.task_id, error = %e, "failure not reported; the lease will expire");
                None
            }
        }
    }

    /// A report that must arrive: tried `REPORT_ATTEMPTS` times while the
    /// server cannot be reached.
    async fn report(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Option<bytes::Bytes>, CallError> {
        let mut wait = Duration::from_millis(250);
        let mut attempt = 1;
        loop {
            let method = if path.ends_with("/result") {
                reqwest::Method::PUT
            } else {
                reqwest::Method::POST
            };
            match self
                .call(
                    method,
                    path,
                    content_type,
                    body.clone(),
                    Duration::from_secs(120),
                )
                .await
            {
                Err(CallError::Unreachable(e)) if attempt < REPORT_ATTEMPTS => {
                    tracing::warn!(path, error = %e, attempt, "cannot reach the server; retrying");
                    tokio::time::sleep(jitter(wait)).await;
                    wait *= 2;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.server)
    }

    /// One call: the body of a 200, `None` for a 204.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Option<bytes::Bytes>, CallError> {
        let sent = self
            .client
            .request(method, self.url(path))
            .bearer_auth(&self.settings.token)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .timeout(timeout)
            .body(body)
            .send()
            .await
            .map_err(|e| CallError::Unreachable(format!("{path}: {e}")))?;
        answer(path, sent).await
    }
}

/// Reads an answer of the server into what the node does next.
async fn answer(path: &str, r: reqwest::Response) -> Result<Option<bytes::Bytes>, CallError> {
    let status = r.status();
    let bytes = r
        .bytes()
        .await
        .map_err(|e| CallError::Unreachable(format!("{path}: {e}")))?;
    let message = || {
        serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into())
    };
    match status.as_u16() {
        204 => Ok(None),
        200..=299 => Ok(Some(bytes)),
        409 => Err(CallError::Lost(message())),
        429 | 500..=599 => Err(CallError::Unreachable(format!(
            "{path}: {status}: {}",
            message()
        ))),
        _ => Err(CallError::Refused(format!(
            "{path}: {status}: {}",
            message()
        ))),
    }
}

/// A run of this node, held by the server: renewed with heartbeats,
/// ended by uploading the layer file or reporting the failure.
struct HttpLease<'a> {
    node: &'a Node,
    task: ClaimedTask,
    period: Duration,
    /// The heartbeat's path.
    heartbeat: String,
}

#[async_trait::async_trait]
impl Lease for HttpLease<'_> {
    /// The layer file, uploaded when the run ends.
    type Kept = Bytes;

    fn task_id(&self) -> Uuid {
        self.task.task_id
    }

    fn period(&self) -> Duration {
        self.period
    }

    async fn renew(&self) -> Renewal {
        let node = self.node;
        let answer = node
            .call(
                reqwest::Method::POST,
                &self.heartbeat,
                "application/json",
                Vec::new(),
                self.period / 3,
            )
            .await;
        match answer {
            Ok(Some(bytes)) => Renewal::Kept(
                serde_json::from_slice::<crate::wire::worker::Lease>(&bytes)
                    .ok()
                    .map(|l| Duration::from_secs(l.lease_seconds.max(3))),
            ),
            Ok(None) => Renewal::Kept(None),
            Err(CallError::Lost(_) | CallError::Refused(_)) => Renewal::Lost,
            Err(CallError::Unreachable(e)) => Renewal::Failed(e),
        }
    }

    async fn start(&self) -> Result<Start<Bytes>, Failure> {
        self.node.job_of(&self.task).map(Start::Render)
    }

    async fn keep(&self, _: &LayerJob, layer: Encoded) -> Result<Bytes, Failure> {
        Ok(layer.bytes)
    }

    async fn end(&self, result: Result<Bytes, Failure>) -> Option<&'static str> {
        match result {
            Ok(file) => self.node.upload(&self.task, file).await,
            Err(f) => self.node.fail(&self.task, &f).await,
        }
    }

    /// Nothing to report: the run is no longer the task's.
    async fn dropped(&self, _: Failure) -> Option<&'static str> {
        None
    }
}

/// `d` less up to a quarter, so many nodes do not retry in step.
fn jitter(d: Duration) -> Duration {
    let r = u64::from(Uuid::new_v4().as_u128() as u16);
    d.saturating_sub(d.mul_f64(r as f64 / f64::from(u16::MAX) / 4.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_takes_off_at_most_a_quarter() {
        for _ in 0..100 {
            let j = jitter(Duration::from_secs(4));
            assert!(
                j <= Duration::from_secs(4) && j >= Duration::from_secs(3),
                "{j:?}"
            );
        }
    }
}
