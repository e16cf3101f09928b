//! How the registry records asset versions: what a catalogue file means at
//! start (reconciled with the live version), a definition's version number
//! (the existing one for the same content, a revert, else the next one,
//! recorded once even when processes race), and a recorded definition
//! loaded back.

use super::{FROM_API, FROM_CATALOG};
use crate::catalog::{Asset, Limits, load_asset_str};
use crate::error::Error;
use crate::keys::Key;
use crate::meta::{AssetVersionRow, DEFAULT_ORG, Meta};

/// What a catalogue file means at start: the file is the asset's one
/// source of truth (the API refuses to change it), so its content is the
/// live version: the recorded version with the same content (unchanged, or
/// a revert), else the next one. A live version recorded through the API
/// (before the file existed, or by a version that allowed it) is replaced,
/// and the log says so.
pub(super) async fn reconcile_file(
    meta: &Meta,
    file: &Asset,
    live: Option<u32>,
) -> Result<Asset, Error> {
    let fp = Key(file.fingerprint).hex();
    let live_row = match live {
        Some(v) => meta.asset_version(file.id, v).await?,
        None => None,
    };
    let origin = file.origin.as_deref().unwrap_or("a catalogue file");
    if let Some(row) = &live_row
        && row.content_fp == fp
    {
        tracing::info!(asset = %file.id, name = %file.name, version = row.version, file = origin, "asset from its catalogue file, unchanged");
        return Ok(versioned(file, row.version));
    }
    let mut a = file.clone();
    let version = record_version(meta, &mut a, FROM_CATALOG).await?;
    meta.set_live_version(a.id, version).await?;
    meta.record_catalog_import(file.id, &fp).await?;
    match &live_row {
        Some(row) if row.source == FROM_API => tracing::warn!(
            asset = %a.id, name = %a.name, version, replaced = row.version, file = origin,
            "asset from its catalogue file; the version recorded through the API is replaced (a catalogue asset is edited in its file)"
        ),
        Some(row) => {
            tracing::info!(asset = %a.id, name = %a.name, version, was = row.version, file = origin, "asset from its catalogue file, changed")
        }
        None => {
            tracing::info!(asset = %a.id, name = %a.name, version, file = origin, "asset from its catalogue file, new")
        }
    }
    Ok(a)
}

/// Gives `asset` its version number: the existing version with the same
/// content if there is one (a revert), else the next one, recorded. The
/// number a document gives is not used: the server numbers versions.
///
/// Processes sharing the metadata store (several `serve` starting at once
/// on one catalogue) may race to record: a version number and a content
/// are each recorded once (unique indexes), so the loser's insert
/// conflicts, and it looks again, finding the winner's version of the same
/// content or taking the next number.
pub(super) async fn record_version(
    meta: &Meta,
    asset: &mut Asset,
    source: &str,
) -> Result<u32, Error> {
    const ATTEMPTS: usize = 5;
    let fp = Key(asset.fingerprint).hex();
    for attempt in 1..=ATTEMPTS {
        let version = match meta.asset_version_by_content(asset.id, &fp).await? {
            Some(existing) => existing.version,
            None => {
                let newest = meta
                    .latest_asset_versions_of(asset.id)
                    .await?
                    .map_or(0, |r| r.version);
                let version = newest + 1;
                asset.version = version;
                asset.spec.version = version;
                match meta
                    .insert_asset_version(&row(asset, source, meta.now()))
                    .await
                {
                    Ok(()) => version,
                    Err(e) if e.is_conflict() && attempt < ATTEMPTS => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        };
        asset.version = version;
        asset.spec.version = version;
        return Ok(version);
    }
    Err(Error::Internal(format!(
        "asset {}: no version recorded after {ATTEMPTS} conflicting attempts",
        asset.id
    )))
}

/// `file` as version `version`.
pub(super) fn versioned(file: &Asset, version: u32) -> Asset {
    let mut a = file.clone();
    a.version = version;
    a.spec.version = version;
    a
}

/// A recorded definition, loaded again (whatever the caps are now).
pub(super) fn load_recorded(r: &AssetVersionRow) -> Result<Asset, Error> {
    // Accepted once: loads whatever the caps are now.
    let mut a =
        load_asset_str(&r.asset_id.to_string(), &r.definition, &Limits::NONE).map_err(|e| {
            Error::Internal(format!(
                "recorded asset {} v{} no longer loads: {e}",
                r.asset_id, r.version
            ))
        })?;
    a.version = r.version;
    a.spec.version = r.version;
    Ok(a)
}

/// The row recording `asset` as a version from `source`.
fn row(a: &Asset, source: &str, now: i64) -> AssetVersionRow {
    AssetVersionRow {
        asset_id: a.id,
        version: a.version,
        org_id: if a.org.is_nil() { DEFAULT_ORG } else { a.org },
        name: a.name.clone(),
        definition: serde_json::to_string(&a.spec).unwrap_or_default(),
        content_fp: Key(a.fingerprint).hex(),
        source: source.to_string(),
        created_at: now,
    }
}
