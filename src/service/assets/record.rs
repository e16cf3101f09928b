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

/// What a catalogue file means at start, given the live version.
pub(super) async fn reconcile_file(
    meta: &Meta,
    file: &Asset,
    live: Option<u32>,
) -> Result<Asset, Error> {
    let fp = Key(file.fingerprint).hex();
    let seen = meta.catalog_import(file.id).await?;
    let live_row = match live {
        Some(v) => meta.asset_version(file.id, v).await?,
        None => None,
    };
    let asset = match &live_row {
        // Unchanged since last read: the live version stands.
        Some(row) if seen.as_deref() == Some(fp.as_str()) => live_asset(file, row),
        // An API update newer than the file's edit stands.
        Some(row)
            if row.source == FROM_API && file.source_mtime.is_some_and(|t| t < row.created_at) =>
        {
            tracing::warn!(asset = %file.id, "catalogue file changed, but an API update is newer; keeping the API version");
            live_asset(file, row)
        }
        _ => {
            let mut a = file.clone();
            let version = record_version(meta, &mut a, FROM_CATALOG).await?;
            meta.set_live_version(a.id, version).await?;
            tracing::info!(asset = %a.id, version, "catalogue file is live");
            Some(a)
        }
    };
    meta.record_catalog_import(file.id, &fp).await?;
    match asset {
        Some(a) => Ok(a),
        // The live API definition no longer loads: fall back to the file.
        None => {
            let mut a = file.clone();
            let version = record_version(meta, &mut a, FROM_CATALOG).await?;
            meta.set_live_version(a.id, version).await?;
            Ok(a)
        }
    }
}

/// The live version as an asset: the file itself when it has that
/// content, otherwise the recorded (API) definition.
fn live_asset(file: &Asset, row: &AssetVersionRow) -> Option<Asset> {
    if row.content_fp == Key(file.fingerprint).hex() {
        return Some(versioned(file, row.version));
    }
    match load_recorded(row) {
        Ok(a) => Some(a),
        Err(e) => {
            tracing::error!(asset = %row.asset_id, version = row.version, error = %e, "recorded definition does not load");
            None
        }
    }
}

/// Gives `asset` its version number: the existing version with the same
/// content if there is one (a revert), else a new one, recorded.
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
    let wanted = asset.version;
    for attempt in 1..=ATTEMPTS {
        let version = match meta.asset_version_by_content(asset.id, &fp).await? {
            Some(existing) => existing.version,
            None => {
                let newest = meta
                    .latest_asset_versions_of(asset.id)
                    .await?
                    .map_or(0, |r| r.version);
                let version = wanted.max(newest + 1);
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
