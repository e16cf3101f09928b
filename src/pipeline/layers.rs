//! Layers of a miss: from memory, else the object store (one read per
//! key at a time), else one job for the missing ones and a wait for each
//! task; and the reload of layers another process replaced.

use super::admission::Admit;
use super::{Compositor, ImageRequest, Inner};
use crate::compose::{LayerImage, layerfile};
use crate::error::Error;
use crate::jobs::{Ended, JobSpec, LayerJob, PRIORITY_INTERACTIVE};
use crate::keys::Key;
use crate::telemetry;
use bytes::Bytes;
use std::sync::Arc;

impl Inner {
    /// Every visible layer of the request, bottom to top: those in memory
    /// or in the object store first (concurrently), then one job for the
    /// missing ones, waited for.
    pub(super) async fn layers_for(
        this: &Arc<Inner>,
        req: &ImageRequest,
    ) -> Result<Vec<Arc<LayerImage>>, Error> {
        let asset = &req.asset;
        let planned: Vec<LayerJob> = LayerJob::visible(asset, &req.config, req.view).collect();
        let found = futures::future::try_join_all(
            planned
                .iter()
                .map(|job| Inner::cached_layer(Arc::clone(this), job.clone())),
        )
        .await?;
        let missing: Vec<LayerJob> = planned
            .iter()
            .zip(&found)
            .filter(|(_, f)| f.is_none())
            .map(|(j, _)| j.clone())
            .collect();
        if missing.is_empty() {
            return Ok(found.into_iter().flatten().collect());
        }
        let spec = JobSpec {
            org: asset.org,
            title: format!(
                "render {} / {} ({} layers)",
                asset.name,
                asset.views[req.view].name,
                missing.len()
            ),
            kind: "render".into(),
            parameters: serde_json::json!({
                "assetId": asset.id,
                "assetVersion": asset.version,
                "configuration": serde_json::from_str::<serde_json::Value>(&req.config.canonical(asset)).unwrap_or_default(),
                "view": asset.views[req.view].name,
            }),
            priority: PRIORITY_INTERACTIVE,
            rerender: Default::default(),
        };
        if let Some(hook) = this.before_queueing.get() {
            hook().await;
        }
        let submitted = this.jobs.submit(spec, &missing, true).await?;
        let rendered = futures::future::try_join_all(
            missing
                .into_iter()
                .zip(submitted.tasks.into_iter().zip(submitted.reused))
                .map(|(job, (task, reused))| {
                    Inner::rendered_layer(Arc::clone(this), job, task, reused)
                }),
        )
        .await?;
        let mut rendered = rendered.into_iter();
        found
            .into_iter()
            .map(|f| match f {
                Some(l) => Ok(l),
                None => rendered
                    .next()
                    .ok_or_else(|| Error::Internal("a rendered layer went missing".into())),
            })
            .collect()
    }

    /// One layer from memory or the object store, if it is there.
    async fn cached_layer(
        this: Arc<Inner>,
        job: LayerJob,
    ) -> Result<Option<Arc<LayerImage>>, Error> {
        let key = job.key;
        let hit = this.tiers.layers.get(&key);
        telemetry::cache_lookup("layer", "memory", hit.is_some());
        if let Some(l) = hit {
            return Ok(Some(l));
        }
        let tiers = this.tiers.clone();
        let flights = Arc::clone(&this.layers);
        flights
            .run(
                key,
                || tiers.layers.get(&key).map(Some),
                move || async move {
                    let layer = Inner::stored_layer(&this, &job).await?;
                    telemetry::cache_lookup("layer", "store", layer.is_some());
                    if let Some(l) = &layer {
                        this.tiers.layers.insert(key, Arc::clone(l));
                    }
                    Ok(layer)
                },
            )
            .await
    }

    /// One layer once its task has succeeded, read back from the store
    /// (at once when the submission found it `reused`: already recorded).
    async fn rendered_layer(
        this: Arc<Inner>,
        job: LayerJob,
        task: uuid::Uuid,
        reused: bool,
    ) -> Result<Arc<LayerImage>, Error> {
        let key = job.key;
        let tiers = this.tiers.clone();
        let flights = Arc::clone(&this.renders);
        flights
            .run(
                key,
                || tiers.layers.get(&key),
                move || async move {
                    let deadline = tokio::time::Instant::now() + this.limits.miss_wait;
                    let (mut task, mut reused) = (task, reused);
                    for again in 0.. {
                        if !reused {
                            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                            reused = this.jobs.wait(task, left).await? == Ended::Reused;
                        }
                        if let Some(layer) = Inner::stored_layer(&this, &job).await? {
                            this.tiers.layers.insert(key, Arc::clone(&layer));
                            return Ok(layer);
                        }
                        if !reused || again == 2 {
                            break;
                        }
                        // Recorded, so not rendered, but its stored object
                        // is gone or unusable (deleted, or failed its seal
                        // or decode): render it again.
                        tracing::warn!(key = %key, "layer recorded but its stored image is missing or unusable; rendering it again");
                        (task, reused) = Inner::queue_rerender(&this, &job).await?;
                    }
                    Err(Error::unavailable(format!(
                        "layer {key} was rendered but is not readable from the object store yet; retry"
                    )))
                },
            )
            .await
    }

    /// Queues a render of `job` whatever its record says; its task, and
    /// whether that reuses the record after all (never, as submitted).
    async fn queue_rerender(
        this: &Arc<Inner>,
        job: &LayerJob,
    ) -> Result<(uuid::Uuid, bool), Error> {
        let asset = &job.request.asset;
        let spec = JobSpec {
            org: asset.org,
            title: format!("render again {}", job.request.describe()),
            kind: "render".into(),
            parameters: serde_json::json!({
                "assetId": asset.id,
                "assetVersion": asset.version,
                "view": asset.views[job.request.view].name,
                "layerKey": job.key.hex(),
            }),
            priority: PRIORITY_INTERACTIVE,
            rerender: std::iter::once(job.key).collect(),
        };
        let s = this
            .jobs
            .submit(spec, std::slice::from_ref(job), true)
            .await?;
        s.tasks
            .into_iter()
            .zip(s.reused)
            .next()
            .ok_or_else(|| Error::Internal("a queued render has no task".into()))
    }

    /// Decodes a stored layer object. Decoding serves every request that
    /// needs the layer (it runs as the key's flight), so it waits for a
    /// compose slot rather than failing one of them.
    async fn decode_layer(
        this: &Arc<Inner>,
        bytes: Bytes,
    ) -> Result<Result<LayerImage, layerfile::LayerFileError>, Error> {
        let max = this.limits.max_layer_pixels;
        let _permit = this.cpu_slot(Admit::Wait).await?;
        this.pool.run(move || layerfile::decode(&bytes, max)).await
    }

    /// A stored layer, if there is a usable one. A stored object that does
    /// not decode or does not fit the canvas is treated as missing (and so
    /// rendered again) rather than served.
    async fn stored_layer(
        this: &Arc<Inner>,
        job: &LayerJob,
    ) -> Result<Option<Arc<LayerImage>>, Error> {
        let Some(bytes) = this.store.get(&job.path()).await? else {
            return Ok(None);
        };
        let want = (job.request.width, job.request.height);
        match Inner::decode_layer(this, bytes).await? {
            Ok(l) if (l.canvas_width, l.canvas_height) == want => Ok(Some(Arc::new(l))),
            Ok(l) => {
                tracing::warn!(key = %job.key, canvas = ?(l.canvas_width, l.canvas_height), "stored layer has the wrong canvas; rendering again");
                Ok(None)
            }
            Err(e) => {
                tracing::warn!(key = %job.key, error = %e, "stored layer does not decode; rendering again");
                Ok(None)
            }
        }
    }
}

/// Layer images another process replaced by registration (its epoch bump
/// reached this one through the catalogue refresh): this node's memory and
/// disk copies go, and the object store's image is read afresh.
impl Compositor {
    /// Layer images another process replaced: drops this node's copies of
    /// `keys` (hex layer keys) of `asset` `version` and reads them afresh.
    pub async fn forget_layers(&self, asset: uuid::Uuid, version: u32, keys: &[String]) {
        for key in keys.iter().filter_map(|h| Key::from_hex(h)) {
            let this = Arc::clone(&self.inner);
            let path = crate::store::layer_path(asset, version, &key);
            // Under the key's exclusive flight: a read under way finishes
            // first, and readers that come meanwhile get the new image.
            let fresh = self
                .inner
                .layers
                .exclusive(key, move || async move {
                    this.tiers.layers.invalidate(&key);
                    this.store.forget_cached(&path).await;
                    let Some(bytes) = this.store.get(&path).await? else {
                        return Ok(None);
                    };
                    let layer = Inner::decode_layer(&this, bytes)
                        .await?
                        .map_err(|e| Error::Internal(format!("layer {key}: {e}")))?;
                    let layer = Arc::new(layer);
                    this.tiers.layers.insert(key, Arc::clone(&layer));
                    Ok(Some(layer))
                })
                .await;
            if let Err(e) = fresh {
                // The memory copy is gone either way; the next read fetches it.
                tracing::warn!(%key, error = %e, "replaced layer not reloaded");
            }
        }
    }
}
