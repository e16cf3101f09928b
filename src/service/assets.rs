//! The asset registry: which version of each asset is live, and how a new
//! one comes to be.
//!
//! Two sources define assets: catalogue files (read at start) and
//! `PUT /api/assets/{id}`. Every distinct definition is recorded as a
//! version in the metadata store; the live catalogue holds the newest.
//!
//! At start, a catalogue file whose content differs from the last version
//! imported *from the catalogue* is an edit: it becomes a new version. A
//! file unchanged since its last import leaves the newest version live,
//! which may be a later `PUT`. So the most recent edit wins, whichever way
//! it was made, and a restart never undoes an API update.

use crate::catalog::{Asset, Catalog, SharedCatalog, load_asset_str};
use crate::error::Error;
use crate::keys::Key;
use crate::meta::{AssetVersionRow, DEFAULT_ORG, Meta};
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

pub struct AssetRegistry {
    meta: Arc<Meta>,
    catalog: Arc<SharedCatalog>,
    /// Serialises updates, so two concurrent PUTs cannot pick one version number.
    writes: tokio::sync::Mutex<()>,
}

const FROM_CATALOG: &str = "catalog";
const FROM_API: &str = "api";

impl AssetRegistry {
    /// Reconciles the catalogue files with the recorded versions and builds
    /// the live catalogue.
    ///
    /// # Errors
    /// Metadata store failures, or a recorded API definition that no longer loads.
    pub async fn start(meta: Arc<Meta>, files: Catalog) -> Result<AssetRegistry, Error> {
        let latest: HashMap<Uuid, AssetVersionRow> = meta.latest_asset_versions().await?.into_iter().map(|r| (r.asset_id, r)).collect();
        let mut live: HashMap<Uuid, Asset> = HashMap::new();
        for file in files.assets() {
            let fp = Key(file.fingerprint).hex();
            let imported = meta.latest_asset_version_from(file.id, FROM_CATALOG).await?;
            let newest = latest.get(&file.id);
            let asset = match (&imported, newest) {
                // Unchanged since the last import: the newest version stands.
                (Some(imp), Some(new)) if imp.content_fp == fp => {
                    if new.source == FROM_API { load_recorded(new)? } else { versioned(file, new.version) }
                }
                // New or edited file: a new version.
                _ => {
                    let version = file.version.max(newest.map_or(1, |n| n.version + 1));
                    let asset = versioned(file, version);
                    meta.insert_asset_version(&row(&asset, FROM_CATALOG, meta.now())).await?;
                    tracing::info!(asset = %asset.id, version, "catalogue file recorded as a new asset version");
                    asset
                }
            };
            live.insert(asset.id, asset);
        }
        for (id, new) in &latest {
            if live.contains_key(id) {
                continue;
            }
            if new.source == FROM_API {
                live.insert(*id, load_recorded(new)?);
            } else {
                tracing::warn!(asset = %id, "asset came from a catalogue file that is gone; not served");
            }
        }
        let mut assets = Vec::new();
        for (id, mut a) in live {
            a.org = latest.get(&id).map_or(DEFAULT_ORG, |r| r.org_id);
            a.epoch = meta.asset_epoch(id).await?;
            a.created_at = meta.asset_created_at(id).await.unwrap_or_else(|_| meta.now());
            a.updated_at = meta.latest_asset_versions_of(id).await?.map_or(a.created_at, |r| r.created_at);
            assets.push(Arc::new(a));
        }
        let catalog = Catalog::from_arcs(assets).map_err(|e| Error::Internal(e.to_string()))?;
        Ok(AssetRegistry { meta, catalog: Arc::new(SharedCatalog::new(catalog)), writes: tokio::sync::Mutex::new(()) })
    }

    pub fn catalog(&self) -> &Arc<SharedCatalog> {
        &self.catalog
    }

    /// The live asset `id` if `org` may see it.
    ///
    /// # Errors
    /// [`Error::NotFound`] otherwise.
    pub fn get(&self, org: Uuid, id: Uuid) -> Result<Arc<Asset>, Error> {
        self.catalog.get(&id).filter(|a| a.org == org).ok_or_else(|| Error::NotFound(format!("asset {id} not found")))
    }

    /// Creates or replaces asset `id` from a JSON definition whose templates
    /// are inline. An unchanged definition changes nothing; a changed one
    /// becomes the next version (new keys: nothing stale is reused).
    /// Returns the live asset and whether it was created.
    ///
    /// # Errors
    /// 400 for malformed JSON, 422 naming the field of an invalid
    /// definition or an id that contradicts the path, 404 for another org's id.
    pub async fn put(&self, org: Uuid, id: Uuid, body: &[u8]) -> Result<(Arc<Asset>, bool), Error> {
        let mut doc: serde_json::Value = serde_json::from_slice(body).map_err(|e| Error::malformed("body", format!("is not valid JSON ({e})")))?;
        let obj = doc.as_object_mut().ok_or_else(|| Error::invalid("body", "must be a JSON object"))?;
        match obj.get("id").and_then(|v| v.as_str()) {
            None => {
                obj.insert("id".into(), id.to_string().into());
            }
            Some(s) if Uuid::parse_str(s).ok() != Some(id) => {
                return Err(Error::invalid("id", format!("\"{s}\" does not match the asset id {id} in the path")));
            }
            Some(_) => {}
        }
        if !obj.contains_key("version") {
            obj.insert("version".into(), 1.into());
        }
        let mut asset = load_asset_str(&id.to_string(), &doc.to_string())?;
        let _guard = self.writes.lock().await;
        let existing = self.catalog.get(&id);
        if let Some(e) = &existing {
            if e.org != org {
                return Err(Error::NotFound(format!("asset {id} not found")));
            }
            if e.fingerprint == asset.fingerprint {
                return Ok((Arc::clone(e), false));
            }
        }
        let newest = self.meta.latest_asset_versions_of(id).await?.map_or(0, |r| r.version);
        let version = asset.version.max(newest + 1);
        asset.version = version;
        asset.spec.version = version;
        let now = self.meta.now();
        self.meta.insert_asset_version(&row(&asset, FROM_API, now)).await?;
        asset.org = org;
        asset.epoch = self.meta.asset_epoch(id).await?;
        asset.created_at = existing.as_ref().map_or(now, |e| e.created_at);
        asset.updated_at = now;
        let asset = Arc::new(asset);
        self.catalog.replace(Arc::clone(&asset));
        tracing::info!(asset = %id, version, "asset updated through the API");
        Ok((asset, existing.is_none()))
    }

    /// Bumps the asset's layer epoch so that no composite made before a
    /// layer image was replaced is served again.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown asset; store failures.
    pub async fn bump_epoch(&self, id: Uuid) -> Result<Arc<Asset>, Error> {
        let _guard = self.writes.lock().await;
        let current = self.catalog.get(&id).ok_or_else(|| Error::NotFound(format!("asset {id} not found")))?;
        let epoch = self.meta.bump_asset_epoch(id).await?;
        let next = Arc::new(Asset { epoch, ..(*current).clone() });
        self.catalog.replace(Arc::clone(&next));
        Ok(next)
    }
}

fn versioned(file: &Asset, version: u32) -> Asset {
    let mut a = file.clone();
    a.version = version;
    a.spec.version = version;
    a
}

fn load_recorded(r: &AssetVersionRow) -> Result<Asset, Error> {
    let mut a = load_asset_str(&r.asset_id.to_string(), &r.definition)
        .map_err(|e| Error::Internal(format!("recorded asset {} v{} no longer loads: {e}", r.asset_id, r.version)))?;
    a.version = r.version;
    a.spec.version = r.version;
    Ok(a)
}

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
