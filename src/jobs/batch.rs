//! Batches: which of a plan's layers are missing from the object store, and
//! the job that renders them (`POST /api/jobs` and `layercake prefetch`).

use super::plan::Plan;
use super::{JobSpec, LayerJob, PRIORITY_BATCH};
use crate::catalog::Asset;
use crate::error::Error;
use crate::store::BlobStore;
use futures::StreamExt;
use uuid::Uuid;

/// Object-store existence checks in flight while planning a batch.
const PARALLEL_CHECKS: usize = 32;

/// The plan's layers that are not stored yet, in plan order.
///
/// # Errors
/// The store's, when it cannot say (503 while it is down).
pub async fn missing(store: &BlobStore, plan: &Plan) -> Result<Vec<LayerJob>, Error> {
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
    let mut out = Vec::new();
    for c in checks {
        out.extend(c?);
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

/// The batch job rendering `missing` layers of `plan`.
pub fn spec(org: Uuid, asset: &Asset, plan: &Plan, missing: usize) -> JobSpec {
    JobSpec {
        org,
        title: format!(
            "render {}: {} configurations × {} views",
            asset.name,
            plan.configurations,
            plan.views.len()
        ),
        kind: "batch".into(),
        parameters: summary(asset, plan, missing),
        priority: PRIORITY_BATCH,
    }
}
