//! Keeping a run's layer, for the in-process workers and the uploads of
//! remote nodes alike: the task's render request rebuilt and checked
//! against its key (`job_of`), a recorded key's stored layer reused instead
//! of rendering (`reuse_stored`), and a new layer stored *only if absent*
//! and recorded once per key (`keep`), with its `layer.created` event.

use super::execute::{Encoded, Failure};
use super::{LayerJob, Origin, TaskParams, Worker, validate};
use crate::compose::layerfile;
use crate::error::Error;
use crate::meta::{Existing, RunRow, TaskRow};
use crate::telemetry;
use bytes::Bytes;
use uuid::Uuid;

impl Worker {
    /// A stored layer at `path` that decodes and fits `job`, if any.
    async fn usable_stored(
        &self,
        job: &LayerJob,
        path: &str,
    ) -> Result<Option<(crate::compose::LayerImage, Bytes)>, Failure> {
        let Some(bytes) = self.store.get(path).await.map_err(Error::from)? else {
            return Ok(None);
        };
        let (b, max) = (bytes.clone(), self.limits.max_pixels);
        let decoded = tokio::task::spawn_blocking(move || layerfile::decode(&b, max))
            .await
            .map_err(|e| Error::Internal(format!("decode task: {e}")))?;
        Ok(match decoded {
            Ok(l) if validate(&job.request, &l).is_ok() => Some((l, bytes)),
            _ => None,
        })
    }

    /// The layer a task renders, rebuilt from its parameters and the asset
    /// version they name, checked against the task's layer key.
    pub(super) async fn job_of(&self, task: &TaskRow) -> Result<LayerJob, Failure> {
        let params: TaskParams = serde_json::from_str(&task.parameters)
            .map_err(|e| Failure::permanent(format!("unreadable task parameters: {e}")))?;
        let asset = self
            .assets
            .resolve(params.asset_id, params.asset_version)
            .await
            // A store that blinks is worth a retry; a missing asset or a
            // recorded definition that no longer loads is not.
            .map_err(|e| Failure {
                transient: matches!(e, Error::Unavailable { .. }),
                message: e.to_string(),
            })?;
        let job: LayerJob = params.request(asset).map_err(Failure::permanent)?;
        if job.key.hex() != task.layer_key {
            return Err(Failure::key_mismatch(&job.key, &task.layer_key));
        }
        Ok(job)
    }

    /// When the key is recorded (`existing`, found by the claim) or the
    /// task renders it again: the stored layer, if it is there and usable,
    /// finishes the run unrendered. `None`: render it.
    pub(super) async fn reuse_stored(
        &self,
        job: &LayerJob,
        task: &TaskRow,
        run: &RunRow,
        existing: Option<Existing>,
    ) -> Result<Option<Made>, Failure> {
        // Recorded does not always mean stored where this worker reads (an
        // object may have been deleted, or still wait in another node's
        // outbox), and a rerender's caller found it missing or unusable:
        // look before rendering, render only if it is not there.
        if existing.is_none() && !task.rerender {
            return Ok(None);
        }
        let path = job.path();
        if let Some((l, bytes)) = self.usable_stored(job, &path).await? {
            let existing = match existing {
                Some(e) => Some(e),
                None => self
                    .meta
                    .recorded_layer(&task.layer_key)
                    .await
                    .map_err(Error::from)?,
            };
            return match existing {
                Some(e) => Ok(Some(Made::Reused(e))),
                // Stored but not recorded: record it, unrendered.
                None => self
                    .record(job, &l, &path, &bytes, origin(task), run)
                    .await
                    .map(|f| Some(Made::Rendered(f))),
            };
        }
        tracing::warn!(key = %job.key, task = %task.id, "the layer is recorded but its stored image is missing or unusable; rendering it again");
        Ok(None)
    }

    /// Stores an encoded layer (only if absent) and records it: a usable
    /// layer stored meanwhile (registered, or by a worker that lost its
    /// lease) wins; an unusable one is replaced.
    pub(super) async fn keep(
        &self,
        job: &LayerJob,
        task: &TaskRow,
        run: &RunRow,
        encoded: Encoded,
    ) -> Result<Made, Failure> {
        let path = job.path();
        let origin = origin(task);
        let Encoded {
            layer,
            bytes: encoded,
        } = encoded;
        // Never overwrite a usable layer: one stored meanwhile (registered,
        // or by a worker that lost its lease) wins.
        if self
            .store
            .put_new(&path, encoded.clone())
            .await
            .map_err(Error::from)?
        {
            return self
                .record(job, &layer, &path, &encoded, origin, run)
                .await
                .map(Made::Rendered);
        }
        match self.usable_stored(job, &path).await? {
            // Stored (and recorded, or by a worker that died before
            // recording it) while this one rendered: the stored one wins,
            // and this render was wasted work.
            Some((existing, bytes)) => {
                metrics::counter!(telemetry::RENDERS_DUPLICATE).increment(1);
                tracing::warn!(key = %job.key, task = %task.id, "the layer was stored while rendering it (a duplicate render); keeping the stored one");
                self.record(job, &existing, &path, &bytes, origin, run)
                    .await
                    .map(Made::Rendered)
            }
            // Unusable (corrupt, truncated, wrong canvas): replace it.
            None => {
                tracing::warn!(key = %job.key, "the stored layer is unusable; replacing it with this render");
                self.store
                    .put(&path, encoded.clone())
                    .await
                    .map_err(Error::from)?;
                self.record(job, &layer, &path, &encoded, origin, run)
                    .await
                    .map(Made::Rendered)
            }
        }
    }

    async fn record(
        &self,
        job: &LayerJob,
        layer: &crate::compose::LayerImage,
        path: &str,
        bytes: &[u8],
        origin: Origin,
        run: &RunRow,
    ) -> Result<Vec<Uuid>, Failure> {
        let rec = self
            .recorder
            .rendered(job, layer, path, bytes, origin)
            .await?;
        if !rec.created {
            return Ok(vec![rec.file_id]);
        }
        let asset = &job.request.asset;
        self.jobs
            .webhooks()
            .emit(
                asset.org,
                "layer.created",
                serde_json::json!({
                    "layerId": rec.layer_id,
                    "fileId": rec.file_id,
                    "assetId": asset.id,
                    "assetVersion": asset.version,
                    "layer": asset.layers[job.request.layer].name,
                    "view": asset.views[job.request.view].name,
                    "layerKey": job.key.hex(),
                    "jobId": origin.job,
                    "taskId": origin.task,
                    "runId": run.id,
                }),
            )
            .await;
        Ok(vec![rec.file_id])
    }
}

fn origin(task: &TaskRow) -> Origin {
    Origin {
        job: task.job_id,
        task: task.id,
    }
}

/// What a run made of its task.
pub(super) enum Made {
    /// Rendered (or found stored unrecorded) and recorded: the file ids.
    Rendered(Vec<Uuid>),
    /// Stored and recorded already: not rendered.
    Reused(Existing),
}
