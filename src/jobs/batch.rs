//! Batches: which of a plan's layers are missing from the object store, and
//! the job that renders them (`POST /api/jobs` and `layercake prefetch`).

use super::plan::Plan;
use super::{JobSpec, LayerJob, PRIORITY_BATCH};
use crate::catalog::Asset;
use crate::error::Error;
use crate::keys::Key;
use crate::meta::Meta;
use crate::store::BlobStore;
use crate::wire::jobs::BatchPlanJson;
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

/// A batch's plan in numbers: what a batch job's `parameters` report (as
/// [`BatchPlanJson`]) and what a dry run answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub asset_id: Uuid,
    pub asset_version: u32,
    /// Distinct configurations planned.
    pub configurations: usize,
    /// The views' names, in plan order.
    pub views: Vec<String>,
    /// Distinct layer keys.
    pub layers: usize,
    /// Of those, already stored.
    pub cached: usize,
    /// Of those, to render (`layers - cached`).
    pub tasks: usize,
}

impl Summary {
    /// Its JSON shape (the contract's, in `wire`).
    pub fn json(&self) -> BatchPlanJson {
        BatchPlanJson {
            asset_id: self.asset_id.to_string(),
            asset_version: self.asset_version,
            cached: self.cached,
            configurations: self.configurations,
            layers: self.layers,
            tasks: self.tasks,
            views: self.views.clone(),
        }
    }
}

/// The plan in numbers, `missing` of its layers not stored.
pub fn summary(asset: &Asset, plan: &Plan, missing: usize) -> Summary {
    Summary {
        asset_id: asset.id,
        asset_version: asset.version,
        configurations: plan.configurations,
        views: plan
            .views
            .iter()
            .map(|v| asset.views[*v].name.clone())
            .collect(),
        layers: plan.layers.len(),
        cached: plan.layers.len().saturating_sub(missing),
        tasks: missing,
    }
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
        parameters: summary(asset, plan, missing.layers.len()).json().to_value(),
        priority: PRIORITY_BATCH,
        rerender: missing.lost.clone(),
    }
}
