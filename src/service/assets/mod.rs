//! The asset registry: which version of each asset is live, and how a new
//! one comes to be.
//!
//! Two sources define assets: catalogue files (read at start) and
//! `PUT /api/assets/{id}`. Every distinct definition is recorded once as a
//! version; which version is live is recorded too (`asset_live`), so a
//! revert to an earlier definition makes that earlier version live again,
//! and its cached layers serve at once.
//!
//! Each asset has one source of truth: an asset defined by a catalogue
//! file is read-only over the API (409 naming the file), so at start the
//! file's content is the live version, and the log says, per asset, where
//! it came from and which version is live. How a version is recorded (its
//! number, a revert, a race between processes) is `record`'s.

use crate::catalog::{Asset, Catalog, Limits, SharedCatalog, load_asset_str};
use crate::error::Error;
use crate::keys::Key;
use crate::meta::{DEFAULT_ORG, Meta};
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

mod record;

use record::{load_recorded, reconcile_file, record_version, versioned};

pub struct AssetRegistry {
    meta: Arc<Meta>,
    catalog: Arc<SharedCatalog>,
    /// The catalogue files as read at start, for [`AssetRegistry::resolve`].
    files: Catalog,
    /// Versions resolved for workers, by (id, version); definitions never
    /// change under a version, so entries never go stale.
    resolved: std::sync::Mutex<HashMap<(Uuid, u32), Arc<Asset>>>,
    /// Serialises updates, so two concurrent PUTs cannot pick one version number.
    writes: tokio::sync::Mutex<()>,
    /// Live versions [`AssetRegistry::refresh`] found it cannot load (warned once).
    unloadable: std::sync::Mutex<std::collections::HashSet<(Uuid, u32)>>,
    /// See [`AssetRegistry::on_replaced_layers`].
    replaced: std::sync::OnceLock<Arc<dyn ReplacedLayers>>,
    /// Caps on definitions given to [`AssetRegistry::put`].
    limits: Limits,
}

/// Drops a process's cached copies (memory, local disk) of layer images
/// that another process replaced by registration.
#[async_trait::async_trait]
pub trait ReplacedLayers: Send + Sync {
    /// `keys` (hex layer keys) of `asset` `version` may have new images.
    async fn forget(&self, asset: Uuid, version: u32, keys: &[String]);
}

/// The compositor is told of layers replaced elsewhere.
#[async_trait::async_trait]
impl ReplacedLayers for crate::pipeline::Compositor {
    async fn forget(&self, asset: Uuid, version: u32, keys: &[String]) {
        self.forget_layers(asset, version, keys).await;
    }
}

/// Workers resolve the definition a task names here.
#[async_trait::async_trait]
impl crate::jobs::Definitions for AssetRegistry {
    async fn resolve(&self, id: Uuid, version: u32) -> Result<Arc<Asset>, Error> {
        AssetRegistry::resolve(self, id, version).await
    }
}

/// Where a recorded version came from (`asset_versions.source`).
const FROM_CATALOG: &str = "catalog";
const FROM_API: &str = "api";

impl AssetRegistry {
    /// Reconciles the catalogue files with the recorded versions and builds
    /// the live catalogue.
    ///
    /// # Errors
    /// Metadata store failures. A recorded API definition that no longer
    /// loads is logged and left out, not fatal.
    pub async fn start(meta: Arc<Meta>, files: Catalog) -> Result<AssetRegistry, Error> {
        let live_rows: HashMap<Uuid, u32> = meta.live_versions().await?.into_iter().collect();
        let mut live: HashMap<Uuid, Asset> = HashMap::new();
        for file in files.assets() {
            let asset = reconcile_file(&meta, file, live_rows.get(&file.id).copied()).await?;
            live.insert(asset.id, asset);
        }
        for (id, version) in &live_rows {
            if live.contains_key(id) {
                continue;
            }
            match meta.asset_version(*id, *version).await? {
                Some(r) if r.source == FROM_API => match load_recorded(&r) {
                    Ok(a) => {
                        tracing::info!(asset = %id, name = %a.name, version, "asset defined through the API");
                        live.insert(*id, a);
                    }
                    Err(e) => {
                        tracing::error!(asset = %id, error = %e, "recorded asset does not load; not served")
                    }
                },
                _ => {
                    tracing::warn!(asset = %id, "asset came from a catalogue file that is gone; not served")
                }
            }
        }
        let mut assets = Vec::new();
        for (id, mut a) in live {
            let row = meta.asset_version(id, a.version).await?;
            a.org = row.as_ref().map_or(DEFAULT_ORG, |r| r.org_id);
            a.epoch = meta.asset_epoch(id).await?;
            a.created_at = meta
                .asset_created_at(id)
                .await
                .unwrap_or_else(|_| meta.now());
            a.updated_at = row.map_or(a.created_at, |r| r.created_at);
            assets.push(Arc::new(a));
        }
        let catalog = Catalog::from_arcs(assets).map_err(|e| Error::Internal(e.to_string()))?;
        Ok(AssetRegistry {
            meta,
            catalog: Arc::new(SharedCatalog::new(catalog)),
            files,
            resolved: std::sync::Mutex::new(HashMap::new()),
            writes: tokio::sync::Mutex::new(()),
            unloadable: std::sync::Mutex::default(),
            replaced: std::sync::OnceLock::new(),
            limits: Limits::default(),
        })
    }

    /// Brings the live catalogue up to what the metadata store says: the
    /// versions other processes sharing it made live (`PUT
    /// /api/assets/{id}` on another node) and the epochs they bumped (a
    /// layer registered there). Returns how many assets changed.
    ///
    /// # Errors
    /// Metadata store failures. A version that does not load here (its
    /// catalogue file differs on this node) is logged and skipped.
    pub async fn refresh(&self) -> Result<usize, Error> {
        // Serialised with this process's own updates, so neither undoes
        // the other.
        let _guard = self.writes.lock().await;
        let mut changed = 0;
        for (id, version, epoch) in self.meta.live_generations().await? {
            if self.adopt(id, version, epoch).await? {
                changed += 1;
            }
        }
        Ok(changed)
    }

    /// [`AssetRegistry::refresh`] for one asset; called under `writes`
    /// before an update decides anything, so that it never decides from a
    /// view older than the store's.
    async fn refresh_one(&self, id: Uuid) -> Result<(), Error> {
        if let Some((version, epoch)) = self.meta.live_generation(id).await? {
            self.adopt(id, version, epoch).await?;
        }
        Ok(())
    }

    /// Makes `version` at `epoch` the live asset `id` of this process if it
    /// is not already; true if it changed. Called under `writes`.
    async fn adopt(&self, id: Uuid, version: u32, epoch: u64) -> Result<bool, Error> {
        let current = self.catalog.get(&id);
        if current
            .as_ref()
            .is_some_and(|a| a.version == version && a.epoch >= epoch)
        {
            return Ok(false);
        }
        let Some(row) = self.meta.asset_version(id, version).await? else {
            return Ok(false);
        };
        // As at start: an asset whose catalogue file is gone is not
        // served; new assets come from the API.
        if current.is_none() && row.source != FROM_API {
            return Ok(false);
        }
        if self
            .unloadable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&(id, version))
        {
            return Ok(false);
        }
        let resolved = match self.resolve(id, version).await {
            Ok(a) => a,
            // The definition itself does not load here: warn once, keep
            // the version this process has.
            Err(e @ Error::Internal(_)) => {
                tracing::warn!(asset = %id, version, error = %e, "live version made elsewhere does not load here; keeping the one this process has");
                self.unloadable
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert((id, version));
                return Ok(false);
            }
            // The store blinked: the next pass tries again.
            Err(e) => return Err(e),
        };
        // A layer registered elsewhere replaced an image under its old key:
        // drop this process's copies of the registered keys before the new
        // epoch lets composites be made (and stored) from them.
        if current
            .as_ref()
            .is_some_and(|a| a.version == version && a.epoch < epoch)
            && let Some(hook) = self.replaced.get()
        {
            let keys = self.meta.registered_layer_keys(id, version).await?;
            hook.forget(id, version, &keys).await;
        }
        let mut next = (*resolved).clone();
        next.org = row.org_id;
        next.epoch = epoch;
        next.created_at = current.as_ref().map_or(row.created_at, |a| a.created_at);
        next.updated_at = row.created_at;
        self.catalog.replace(Arc::new(next));
        tracing::info!(asset = %id, version, epoch, "asset changed by another process");
        Ok(true)
    }

    /// Who drops cached copies of layer images another process replaced
    /// (the compositor); set once, at start.
    pub fn on_replaced_layers(&self, hook: Arc<dyn ReplacedLayers>) {
        let _ = self.replaced.set(hook);
    }

    /// Calls [`AssetRegistry::refresh`] every `every` until `stop`.
    pub fn spawn_refresh(
        self: &Arc<Self>,
        every: std::time::Duration,
        tracker: &tokio_util::task::TaskTracker,
        stop: &tokio_util::sync::CancellationToken,
    ) {
        let (this, stop) = (Arc::clone(self), stop.clone());
        tracker.spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
                if let Err(e) = this.refresh().await {
                    tracing::warn!(error = %e, "catalogue refresh from the metadata store failed");
                }
            }
        });
    }

    /// The caps [`AssetRegistry::put`] holds definitions to.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> AssetRegistry {
        self.limits = limits;
        self
    }

    /// A registry that only reads: no reconciliation, no live catalogue.
    /// What a `layercake worker` process needs to resolve task versions
    /// while a `serve` process owns the catalogue.
    pub fn follower(meta: Arc<Meta>, files: Catalog) -> AssetRegistry {
        AssetRegistry {
            meta,
            catalog: Arc::new(SharedCatalog::default()),
            files,
            resolved: std::sync::Mutex::new(HashMap::new()),
            writes: tokio::sync::Mutex::new(()),
            unloadable: std::sync::Mutex::default(),
            replaced: std::sync::OnceLock::new(),
            limits: Limits::default(),
        }
    }

    /// Version `version` of asset `id`, live or not: the live asset, a
    /// catalogue file with that content, or the recorded definition.
    ///
    /// # Errors
    /// [`Error::NotFound`] for a version never recorded; [`Error::Internal`]
    /// for a recorded definition whose template files are gone.
    pub async fn resolve(&self, id: Uuid, version: u32) -> Result<Arc<Asset>, Error> {
        if let Some(a) = self.catalog.get(&id).filter(|a| a.version == version) {
            return Ok(a);
        }
        let cached = {
            let map = self.resolved.lock().unwrap_or_else(|p| p.into_inner());
            map.get(&(id, version)).cloned()
        };
        if let Some(a) = cached {
            return Ok(a);
        }
        let row = self
            .meta
            .asset_version(id, version)
            .await?
            .ok_or_else(|| Error::NotFound(format!("asset {id} has no version {version}")))?;
        let mut asset = match self.files.get(&id) {
            Some(f) if Key(f.fingerprint).hex() == row.content_fp => versioned(f, version),
            _ => load_recorded(&row)?,
        };
        asset.org = row.org_id;
        asset.epoch = self.meta.asset_epoch(id).await?;
        let asset = Arc::new(asset);
        let mut map = self.resolved.lock().unwrap_or_else(|p| p.into_inner());
        map.insert((id, version), Arc::clone(&asset));
        Ok(asset)
    }

    pub fn catalog(&self) -> &Arc<SharedCatalog> {
        &self.catalog
    }

    /// The live asset `id` if `org` may see it.
    ///
    /// # Errors
    /// [`Error::NotFound`] otherwise.
    pub fn get(&self, org: Uuid, id: Uuid) -> Result<Arc<Asset>, Error> {
        self.catalog
            .get(&id)
            .filter(|a| a.org == org)
            .ok_or_else(|| Error::NotFound(format!("asset {id} not found")))
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
        // The caps first, from the text: built, a 2 MB body can be 100 MB.
        crate::catalog::precheck(body, &self.limits)
            .map_err(|(field, message)| Error::invalid(field, message))?;
        let mut doc: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| Error::malformed("body", format!("is not valid JSON ({e})")))?;
        let obj = doc
            .as_object_mut()
            .ok_or_else(|| Error::invalid("body", "must be a JSON object"))?;
        match obj.get("id").and_then(|v| v.as_str()) {
            None => {
                obj.insert("id".into(), id.to_string().into());
            }
            Some(s) if Uuid::parse_str(s).ok() != Some(id) => {
                return Err(Error::invalid(
                    "id",
                    format!("\"{s}\" does not match the asset id {id} in the path"),
                ));
            }
            Some(_) => {}
        }
        // A GET answer comes back as is: its `orgId` must be the caller's.
        if let Some(o) = obj.get("orgId").filter(|o| !o.is_null())
            && o.as_str().and_then(|s| Uuid::parse_str(s).ok()) != Some(org)
        {
            return Err(Error::invalid(
                "orgId",
                format!("{o} is not your organisation ({org}); leave it out or give your own"),
            ));
        }
        if let Some(file) = self.files.get(&id) {
            return Err(Error::Conflict(format!(
                "asset {id} is defined by the catalogue file {}: edit that file and restart the server (the API cannot change a catalogue asset)",
                file.origin.as_deref().unwrap_or("of this server")
            )));
        }
        let mut asset = load_asset_str(&id.to_string(), &doc.to_string(), &self.limits)?;
        let _guard = self.writes.lock().await;
        // Decide from the store's view, not one up to refresh_ms old.
        self.refresh_one(id).await?;
        let existing = self.catalog.get(&id);
        if let Some(e) = &existing {
            if e.org != org {
                return Err(Error::NotFound(format!("asset {id} not found")));
            }
            if e.fingerprint == asset.fingerprint {
                return Ok((Arc::clone(e), false));
            }
        }
        asset.org = org;
        let version = record_version(&self.meta, &mut asset, FROM_API).await?;
        self.meta.set_live_version(id, version).await?;
        let now = self.meta.now();
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
    /// [`Error::NotFound`] for an unknown asset; [`Error::Conflict`] when the
    /// live version is no longer `expected_version` (an update raced the
    /// registration); store failures.
    pub async fn bump_epoch(&self, id: Uuid, expected_version: u32) -> Result<Arc<Asset>, Error> {
        let _guard = self.writes.lock().await;
        // Decide from the store's view, not one up to refresh_ms old.
        self.refresh_one(id).await?;
        let current = self
            .catalog
            .get(&id)
            .ok_or_else(|| Error::NotFound(format!("asset {id} not found")))?;
        if current.version != expected_version {
            return Err(Error::Conflict(format!(
                "asset {id} changed to version {} during the registration (for version {expected_version}); register again",
                current.version
            )));
        }
        let epoch = self.meta.bump_asset_epoch(id).await?;
        let next = Arc::new(Asset {
            epoch,
            ..(*current).clone()
        });
        self.catalog.replace(Arc::clone(&next));
        Ok(next)
    }
}
