//! The Layers service: a record for every layer image, rendered or
//! registered ("bring your own renders").
//!
//! A registered layer is validated (its asset, layer, configuration, view,
//! canvas and image) and written to the object store under the layer key
//! the compositor would compute for it, so the compositor finds it like any
//! stored layer and renders nothing. Registering bumps the asset's layer
//! epoch, so a composite made from a replaced image is never served again.

use super::assets::AssetRegistry;
use super::files::FileService;
use crate::catalog::Asset;
use crate::compose::{LayerImage, layerfile};
use crate::error::Error;
use crate::jobs::{LayerJob, Origin, Recorded, Recorder};
use crate::keys::{self, Configuration};
use crate::meta::{LayerFilter, LayerRow, Meta, Window};
use crate::pipeline::Compositor;
use crate::store::{BlobStore, layer_path};
use bytes::Bytes;
use std::sync::Arc;
use uuid::Uuid;

pub const DEFAULT_BRANCH: &str = "main";

/// Most layers a `metadata=` filter will read to match (it is done in
/// memory, not in SQL, to stay portable).
pub const MAX_METADATA_SCAN: usize = 10_000;

/// A layer to register (`POST /api/layers`).
#[derive(Debug, Clone)]
pub struct NewLayer {
    pub asset_id: Uuid,
    /// The composition layer, by id or name; optional when the asset has one layer.
    pub asset_layer: Option<String>,
    pub asset_layer_configuration: serde_json::Value,
    pub stage_id: Option<String>,
    pub stage_configuration: serde_json::Value,
    /// `offsetX`/`offsetY` place a cropped image on the canvas.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub file_id: Uuid,
    pub width: u32,
    pub height: u32,
    pub job_id: Option<Uuid>,
    pub task_id: Option<Uuid>,
    pub branch: String,
}

/// Filters of `GET /api/layers` beyond equality: a metadata subset.
#[derive(Debug, Clone, Default)]
pub struct LayerQuery {
    pub filter: LayerFilter,
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

pub struct LayerService {
    meta: Arc<Meta>,
    store: BlobStore,
    files: FileService,
    assets: Arc<AssetRegistry>,
}

/// Hex blake3 of a canonical JSON text: the API's `...Hash` fields.
pub fn hash_of(canonical: &str) -> String {
    blake3::hash(canonical.as_bytes()).to_hex().to_string()
}

/// The canonical form of a layer configuration given in a request: values
/// of the asset's attributes are checked and spelled as in keys; anything
/// else is spelled as canonical JSON.
///
/// # Errors
/// 422 naming `param` for a value its attribute does not accept.
pub fn canonical_layer_config(
    asset: Option<&Asset>,
    json: &serde_json::Value,
    param: &str,
) -> Result<String, Error> {
    let Some(obj) = json.as_object() else {
        return Err(Error::invalid(param, "must be a JSON object"));
    };
    let Some(asset) = asset else {
        return Ok(keys::canonical_json(json));
    };
    let mut known = Vec::new();
    let mut rest = serde_json::Map::new();
    for (k, v) in obj {
        match asset.attribute(k) {
            Some((i, a)) if !v.is_null() => known.push((
                i,
                a.accept(v)
                    .map_err(|e| Error::invalid(param, format!("attribute \"{k}\": {e}")))?,
            )),
            Some(_) => {}
            None => {
                rest.insert(k.clone(), v.clone());
            }
        }
    }
    if rest.is_empty() {
        Ok(Configuration::canonical_pairs(asset, &known))
    } else {
        Err(Error::invalid(
            param,
            format!(
                "unknown attribute(s): {}",
                rest.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        ))
    }
}

impl LayerService {
    pub fn new(
        meta: Arc<Meta>,
        store: BlobStore,
        files: FileService,
        assets: Arc<AssetRegistry>,
    ) -> LayerService {
        LayerService {
            meta,
            store,
            files,
            assets,
        }
    }

    /// # Errors
    /// [`Error::NotFound`] when `org` has no such layer.
    pub async fn get(&self, org: Uuid, id: Uuid) -> Result<LayerRow, Error> {
        self.meta.layer(org, id).await.map_err(|e| {
            if e.is_not_found() {
                Error::NotFound(format!("layer {id} not found"))
            } else {
                e.into()
            }
        })
    }

    /// One page of matching layers and their count.
    ///
    /// # Errors
    /// Metadata failures.
    pub async fn list(
        &self,
        org: Uuid,
        q: &LayerQuery,
        w: Window,
    ) -> Result<(usize, Vec<LayerRow>), Error> {
        let Some(meta) = &q.metadata else {
            return Ok(self.meta.layers(org, &q.filter, Some(w)).await?);
        };
        // Metadata is JSON text in the store; its subset match is done here,
        // over a bounded candidate set.
        let (candidates, _) = self
            .meta
            .layers(
                org,
                &q.filter,
                Some(Window {
                    offset: 0,
                    limit: 0,
                    descending: false,
                }),
            )
            .await?;
        if candidates > MAX_METADATA_SCAN {
            return Err(Error::invalid(
                "metadata",
                format!(
                    "{candidates} layers to scan; narrow the query (assetId, assetLayer, stageConfiguration...) below {MAX_METADATA_SCAN}"
                ),
            ));
        }
        let (_, all) = self.meta.layers(org, &q.filter, None).await?;
        let mut hits: Vec<LayerRow> = all
            .into_iter()
            .filter(|l| metadata_contains(&l.metadata, meta))
            .collect();
        if w.descending {
            hits.reverse();
        }
        let count = hits.len();
        Ok((
            count,
            hits.into_iter().skip(w.offset).take(w.limit).collect(),
        ))
    }

    /// The most recent matching layer.
    ///
    /// # Errors
    /// [`Error::NotFound`] when none matches.
    pub async fn latest(&self, org: Uuid, q: &LayerQuery) -> Result<LayerRow, Error> {
        let (_, mut rows) = self
            .list(
                org,
                q,
                Window {
                    offset: 0,
                    limit: 1,
                    descending: true,
                },
            )
            .await?;
        rows.pop()
            .ok_or_else(|| Error::NotFound("no layer matches".into()))
    }

    /// The layer's image as stored (PNG of its visible box).
    ///
    /// # Errors
    /// As [`FileService::content`].
    pub async fn image(&self, l: &LayerRow) -> Result<Bytes, Error> {
        Ok(self.files.content(l.org_id, l.file_id).await?.1)
    }

    /// A record of layer `layer` of `asset` in view `view`, owned by the
    /// asset's org, on the default branch, at the full canvas.
    #[allow(clippy::too_many_arguments)]
    fn row(
        &self,
        asset: &Asset,
        layer: usize,
        view: usize,
        layer_config: String,
        file_id: Uuid,
        key: crate::keys::Key,
        source: &str,
    ) -> LayerRow {
        let stage_config = asset.views[view].stage_canonical.clone();
        LayerRow {
            id: Uuid::new_v4(),
            org_id: asset.org,
            asset_id: asset.id,
            asset_version: i64::from(asset.version),
            asset_layer: asset.layers[layer].id.to_string(),
            layer_config_hash: hash_of(&layer_config),
            layer_config,
            stage_id: None,
            stage_config_hash: hash_of(&stage_config),
            stage_config,
            metadata: "{}".into(),
            job_id: None,
            task_id: None,
            file_id,
            branch: DEFAULT_BRANCH.into(),
            format: "png".into(),
            width: i64::from(asset.width),
            height: i64::from(asset.height),
            layer_key: key.hex(),
            source: source.into(),
            created_at: self.meta.now(),
        }
    }

    /// Registers an uploaded image as a layer (see the module doc).
    ///
    /// The image is decoded behind the compositor's CPU limit, refused from
    /// its header if larger than the canvas, and swapped in through
    /// `Compositor::replace_layer`, which waits out any fetch or render of
    /// the same key. File records that pointed at the replaced image get a
    /// content-addressed copy first, so a file id's bytes never change.
    ///
    /// # Errors
    /// 404 for an unknown asset or file; 422 naming the field for a layer,
    /// configuration, view, size or image that does not fit the asset; 409
    /// when the asset was updated during the registration.
    pub async fn register(
        &self,
        org: Uuid,
        n: NewLayer,
        compositor: &Compositor,
    ) -> Result<LayerRow, Error> {
        let asset = self.assets.get(org, n.asset_id)?;
        let layer = layer_of(&asset, n.asset_layer.as_deref())?;
        let config = Configuration::parse(&asset, &n.asset_layer_configuration)
            .map_err(|e| Error::invalid("assetLayerConfiguration", e.to_string()))?;
        let view = keys::select_view(&asset, &n.stage_configuration)
            .map_err(|e| Error::invalid("stageConfiguration", e.to_string()))?;
        if (n.width, n.height) != (asset.width, asset.height) {
            return Err(Error::invalid(
                "width",
                format!(
                    "{}x{} is not the asset's canvas {}x{}",
                    n.width, n.height, asset.width, asset.height
                ),
            ));
        }
        let (ox, oy) = (offset(&n, "offsetX")?, offset(&n, "offsetY")?);
        let (file, bytes) = self
            .files
            .content(org, n.file_id)
            .await
            .map_err(|e| match e {
                Error::NotFound(_) => Error::NotFound(format!("file {} not found", n.file_id)),
                e => e,
            })?;
        let canvas = (asset.width, asset.height);
        let (image, encoded) = decode_upload(compositor, bytes, canvas, (ox, oy)).await?;

        let id = keys::LayerIdentity::of(&asset, layer, view, &config, canvas);
        let key = id.key;
        let path = layer_path(asset.id, asset.version, &key);
        let (store, files) = (self.store.clone(), self.files.clone());
        compositor
            .replace_layer(key, move || async move {
                files.detach(&path).await?;
                store.put(&path, Bytes::from(encoded)).await?;
                Ok(Arc::new(image))
            })
            .await?;
        let bumped = self.assets.bump_epoch(asset.id, asset.version).await?;

        // Indices are the version's the key was computed from.
        let l = &asset.layers[layer];
        let mut metadata = n.metadata.clone();
        metadata.insert("offsetX".into(), ox.into());
        metadata.insert("offsetY".into(), oy.into());
        let mut row = self.row(
            &asset,
            layer,
            view,
            Configuration::canonical_pairs(&asset, &id.values),
            file.id,
            key,
            "upload",
        );
        row.org_id = org;
        row.stage_id = n.stage_id.clone();
        row.metadata = serde_json::Value::Object(metadata).to_string();
        row.job_id = n.job_id.map(|u| u.to_string());
        row.task_id = n.task_id.map(|u| u.to_string());
        row.branch = n.branch.clone();
        self.meta.insert_layer(&row).await?;
        tracing::info!(asset = %asset.id, layer = %l.name, key = %key, epoch = bumped.epoch, "layer registered from an upload");
        Ok(row)
    }
}

/// The layer an upload names (`assetLayer`: its id or name), or the
/// asset's only layer.
fn layer_of(asset: &Asset, named: Option<&str>) -> Result<usize, Error> {
    match named {
        Some(l) => asset
            .layers
            .iter()
            .position(|x| x.id.to_string() == *l || x.name == *l)
            .ok_or_else(|| {
                Error::invalid(
                    "assetLayer",
                    format!("\"{l}\" is not a layer of asset {}", asset.id),
                )
            }),
        None if asset.layers.len() == 1 => Ok(0),
        None => Err(Error::invalid(
            "assetLayer",
            "is required: the asset has several layers",
        )),
    }
}

/// The upload's `metadata.<k>` offset in pixels (0 when absent).
fn offset(n: &NewLayer, k: &str) -> Result<u32, Error> {
    match n.metadata.get(k) {
        None => Ok(0),
        Some(v) => v
            .as_u64()
            .and_then(|x| u32::try_from(x).ok())
            .ok_or_else(|| {
                Error::invalid(format!("metadata.{k}"), "must be a whole number of pixels")
            }),
    }
}

/// The uploaded image decoded behind the compositor's CPU limit (no
/// layer can be larger than its canvas: that is the decode budget), placed
/// at `(ox, oy)` on the canvas, checked, and encoded as a layer file.
async fn decode_upload(
    compositor: &Compositor,
    bytes: Bytes,
    canvas: (u32, u32),
    (ox, oy): (u32, u32),
) -> Result<(LayerImage, Vec<u8>), Error> {
    let budget = u64::from(canvas.0) * u64::from(canvas.1);
    compositor
        .cpu(move || -> Result<(LayerImage, Vec<u8>), Error> {
            let decoded = layerfile::decode(&bytes, budget).map_err(|e| {
                Error::invalid(
                    "fileId",
                    format!("the file is not a usable layer image: {e}"),
                )
            })?;
            let image = LayerImage {
                image: decoded.image,
                x: ox,
                y: oy,
                canvas_width: canvas.0,
                canvas_height: canvas.1,
            };
            crate::jobs::validate_placement(&image).map_err(|e| Error::invalid("metadata", e))?;
            let encoded = layerfile::encode(&image)
                .map_err(|e| Error::Internal(format!("layer encode: {e}")))?;
            Ok((image, encoded))
        })
        .await?
}

#[async_trait::async_trait]
impl Recorder for LayerService {
    async fn rendered(
        &self,
        job: &LayerJob,
        layer: &LayerImage,
        path: &str,
        bytes: &[u8],
        origin: Origin,
    ) -> Result<Recorded, Error> {
        let req = &job.request;
        let asset = &req.asset;
        let l = &asset.layers[req.layer];
        let org = asset.org;
        let file = self
            .files
            .record(
                org,
                Some(&format!("{}-{}.png", l.name, &job.key.hex()[..12])),
                Some("image/png"),
                path,
                bytes,
            )
            .await?;
        let mut row = self.row(
            asset,
            req.layer,
            req.view,
            Configuration::canonical_pairs(asset, &req.values),
            file.id,
            job.key,
            "render",
        );
        row.metadata = serde_json::json!({ "offsetX": layer.x, "offsetY": layer.y }).to_string();
        row.width = i64::from(req.width);
        row.height = i64::from(req.height);
        row.job_id = Some(origin.job.to_string());
        row.task_id = Some(origin.task.to_string());
        match self.meta.insert_layer(&row).await {
            Ok(()) => Ok(Recorded {
                layer_id: row.id,
                file_id: file.id,
                created: true,
            }),
            // Another worker recorded this key first (one render record a key).
            Err(e @ crate::meta::MetaError::Conflict(_)) => {
                let f = LayerFilter {
                    layer_key: Some(job.key.hex()),
                    ..LayerFilter::default()
                };
                let (_, rows) = self.meta.layers(org, &f, None).await?;
                let existing = rows
                    .into_iter()
                    .find(|r| r.source == "render")
                    .ok_or_else(|| Error::from(e))?;
                Ok(Recorded {
                    layer_id: existing.id,
                    file_id: existing.file_id,
                    created: false,
                })
            }
            Err(e) => Err(e.into()),
        }
    }
}

fn metadata_contains(stored: &str, want: &serde_json::Map<String, serde_json::Value>) -> bool {
    let Ok(serde_json::Value::Object(have)) = serde_json::from_str::<serde_json::Value>(stored)
    else {
        return want.is_empty();
    };
    want.iter().all(|(k, v)| have.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_subset_matching() {
        let want = serde_json::json!({"a": 1}).as_object().unwrap().clone();
        assert!(metadata_contains(r#"{"a":1,"b":2}"#, &want));
        assert!(!metadata_contains(r#"{"a":2}"#, &want));
        assert!(!metadata_contains("not json", &want));
    }
}
