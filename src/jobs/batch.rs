//! Batches: which of a plan's layers are missing from the object store, and
//! the job that renders them (`POST /api/jobs` and `layercake prefetch`).

use super::plan::Plan;
use super::{JobSpec, LayerJob, PRIORITY_BATCH};
use crate::catalog::Asset;
use crate::error::Error;
use crate::keys::Key;
use crate::meta::Meta;
use crate::store::BlobStore;
use futures::StreamExt;
use std::collections::HashSet;
use uuid::Uuid;

/// Object-store existence checks in flight while planning a batch.
const PARALLEL_CHECKS: usize = 32;

/// The plan's layers that are not stored yet.
#[derive(Debug, Default)]
pub struct Missing {
    /// In plan order.
    pub layers: Vec<LayerJob>,
    /// Those recorded before the store was asked: their object was there
    /// once (a layer is stored before it is recorded) and has gone since,
    /// so they must render again. A layer recorded only after the store
    /// was asked was rendered meanwhile, and its task reuses the record.
    pub lost: HashSet<Key>,
}

/// The plan's layers that are not stored yet (records first, then the
/// store: see [`Missing::lost`]).
///
/// # Errors
/// The stores', when they cannot say (503 while one is down).
pub async fn missing(store: &BlobStore, meta: &Meta, plan: &Plan) -> Result<Missing, Error> {
    let keys: Vec<String> = plan.layers.iter().map(|l| l.key.hex()).collect();
    let recorded = meta.recorded_among(&keys).await?;
    let checks = futures::stream::iter(plan.layers.iter().cloned())
        .map(|job| {
            let store = store.clone();
            async move {
                let exists = store.exists(&job.path()).await?;
                Ok::<_, Error>((!exists).then_some(job))
            }
        })
        .buffered(PARALLEL_CHECKS)
        .collect::<Vec<_>>()
        .await;
    let mut out = Missing::default();
    for c in checks {
        out.layers.extend(c?);
    }
    out.lost = out
        .layers
        .iter()
        .filter(|l| recorded.contains(&l.key.hex()))
        .map(|l| l.key)
        .collect();
    if !out.lost.is_empty() {
        tracing::warn!(
            lost = out.lost.len(),
            "recorded layers are missing from the object store; rendering them again"
        );
    }
    Ok(out)
}

/// The plan in numbers, as a batch job's `parameters` report it.
pub fn summary(asset: &Asset, plan: &Plan, missing: usize) -> serde_json::Value {
    let views: Vec<&str> = plan
        .views
        .iter()
        .map(|v| asset.views[*v].name.as_str())
        .collect();
    serde_json::json!({
        "assetId": asset.id,
        "assetVersion": asset.version,
        "configurations": plan.configurations,
        "views": views,
        "layers": plan.layers.len(),
        "cached": plan.layers.len() - missing,
        "tasks": missing,
    })
}

/// The batch job rendering the `missing` layers of `plan`.
pub fn spec(org: Uuid, asset: &Asset, plan: &Plan, missing: &Missing) -> JobSpec {
    JobSpec {
        org,
        title: format!(
            "render {}: {} configurations × {} views",
            asset.name,
            plan.configurations,
            plan.views.len()
        ),
        kind: "batch".into(),
        parameters: summary(asset, plan, missing.layers.len()),
        priority: PRIORITY_BATCH,
        rerender: missing.lost.clone(),
    }
}
