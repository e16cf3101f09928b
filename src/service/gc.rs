//! Garbage collection: the layers and composites of asset versions that
//! are no longer live, and their records.
//!
//! Objects are stored under `layers/<asset>/v<version>/` and
//! `composites/<asset>/v<version>e<epoch>/` (see `store::layer_path`), so a
//! stale version is a folder: listing `layers/<asset>/` and
//! `composites/<asset>/` finds every version the bucket holds, whichever
//! node wrote it, and everything but the live one is removed. Only assets
//! this metadata store knows are looked at; folders of other assets are
//! left alone (another deployment may share the bucket).
//!
//! File records are shared by identical images, so a live layer may use a
//! file first stored under an old version: such files are first copied to
//! their content address (`FileService::detach`), then the folder goes.
//!
//! A stale version's composites also leave the composite tier's ledger
//! (`CompositeBudget`), so they stop counting against its budget.
//!
//! A node still serving an old version while `gc` runs may write into a
//! stale folder after it was listed; the next `gc` removes that.

use crate::error::Error;
use crate::meta::Meta;
use crate::service::FileService;
use crate::store::{BlobStore, composite_generation, layer_generation};
use futures::StreamExt;
use uuid::Uuid;

/// Deletions in flight at once.
const PARALLEL_DELETES: usize = 16;

/// One stale folder.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StaleFolder {
    pub asset: Uuid,
    /// `layers/<asset>/v3` or `composites/<asset>/v3e0`.
    pub prefix: String,
    pub objects: u64,
    pub bytes: u64,
}

/// What `gc` removed (or, with `dry_run`, would remove).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    pub assets: usize,
    pub folders: Vec<StaleFolder>,
    pub objects: u64,
    pub bytes: u64,
    pub layer_records: u64,
    pub file_records: u64,
}

/// Removes (unless `dry_run`) every stale version's objects and records.
///
/// # Errors
/// The first store or metadata error; what was removed before it stays
/// removed, and a second run finishes the job.
pub async fn collect(
    meta: &Meta,
    store: &BlobStore,
    files: &FileService,
    dry_run: bool,
) -> Result<GcReport, Error> {
    let mut report = GcReport {
        dry_run,
        ..GcReport::default()
    };
    for (asset, version, epoch) in meta.live_generations().await? {
        report.assets += 1;
        if !dry_run {
            // Images a live layer shares with a stale one get their own
            // content-addressed copy before the stale folder goes.
            for path in meta.stale_paths_in_use(asset, version).await? {
                files.detach(&path).await?;
            }
        }
        let keep = [
            ("layers", layer_generation(version)),
            ("composites", composite_generation(version, epoch)),
        ];
        for (kind, live) in keep {
            let root = format!("{kind}/{asset}");
            for folder in store.folders(&root).await? {
                if folder == live {
                    continue;
                }
                let prefix = format!("{root}/{folder}");
                let objects = store.list(&prefix).await?;
                let bytes = objects.iter().map(|(_, b)| b).sum();
                if !dry_run {
                    let deleted: Vec<Result<(), crate::store::StoreError>> =
                        futures::stream::iter(objects.iter().map(|(p, _)| store.delete(p)))
                            .buffer_unordered(PARALLEL_DELETES)
                            .collect()
                            .await;
                    deleted.into_iter().collect::<Result<Vec<()>, _>>()?;
                    if kind == "composites" {
                        meta.forget_composites(&format!("{prefix}/")).await?;
                    }
                }
                tracing::info!(%prefix, objects = objects.len(), bytes, dry_run, "stale version");
                report.objects += objects.len() as u64;
                report.bytes += bytes;
                report.folders.push(StaleFolder {
                    asset,
                    prefix,
                    objects: objects.len() as u64,
                    bytes,
                });
            }
        }
        let (layers, files) = meta.stale_layer_records(asset, version, dry_run).await?;
        report.layer_records += layers;
        report.file_records += files;
    }
    Ok(report)
}
