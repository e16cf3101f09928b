//! The JSON shapes of the API, as the contract spells them: what `http`
//! answers and what webhook events (`jobs`, `webhooks`) carry.
//!
//! These are the only types that serialise to clients; records from `meta`
//! and values from `catalog` are converted here, so a change inside never
//! quietly changes the wire. Types follow the published client's zod
//! schemas (`@threekit/rest-api` 0.2.2, checked by
//! `tests/threekit_client.rs`): where it says string, an empty value is
//! `""`; where it says nullable, `null`; where it says optional, the field
//! is absent; an id it requires as a UUID with nothing to name (a layer
//! registered by upload has no job) is the nil UUID, [`NO_ID`]. The module
//! sits below the domain (it knows records, not services), so the domain
//! can build event payloads without depending on `http`.
//!
//! - `jobs`: the job, task and run objects; a batch's plan.
//! - `webhooks`: webhooks, their deliveries and attempts.
//! - `worker`: the worker protocol's bodies (remote render nodes).

pub mod jobs;
pub mod webhooks;
pub mod worker;

use crate::catalog::Asset;
use crate::meta::{FileRow, LayerRow};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// RFC 3339 UTC with microseconds, from microseconds since the Unix epoch.
pub fn rfc3339(micros: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The nil UUID: "none" where the client's schema requires a UUID.
pub const NO_ID: &str = "00000000-0000-0000-0000-000000000000";

fn json_text(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or(Value::Null)
}

/// `{"error": {"code", "message"}}`, the body of every error.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable kebab-case kind: `malformed`, `invalid`, `forbidden`,
    /// `not-found`, `conflict`, `too-large`, `render-failed`,
    /// `unavailable`, `overloaded`, `unauthorized`, `internal`.
    pub code: String,
    /// What was wrong, naming the parameter or field.
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LayerJson {
    pub id: String,
    pub asset_id: String,
    /// The composition layer's id.
    pub asset_layer: String,
    /// The asset version the layer was rendered from, as a decimal string.
    pub asset_version: String,
    /// The configuration restricted to the layer's `dependsOn`.
    #[schema(value_type = Object)]
    pub asset_layer_configuration: Value,
    /// blake3 (hex) of the canonical `assetLayerConfiguration`.
    pub asset_layer_configuration_hash: String,
    /// A UUID, or `""` when none.
    pub stage_id: String,
    #[schema(value_type = Object)]
    pub stage_configuration: Value,
    /// blake3 (hex) of the canonical `stageConfiguration`.
    pub stage_configuration_hash: String,
    #[schema(value_type = Option<Object>)]
    pub stage_metadata: Option<Value>,
    /// `offsetX`/`offsetY`: where the (cropped) image sits on the canvas.
    #[schema(value_type = Object)]
    pub metadata: Value,
    pub org_id: String,
    /// The job and task that rendered it; the nil UUID for a layer
    /// registered by upload (`POST /api/layers` without them).
    pub job_id: String,
    pub task_id: String,
    pub file_id: String,
    pub branch: String,
    pub format: String,
    /// The full canvas.
    pub width: i64,
    pub height: i64,
    #[schema(value_type = Option<Object>)]
    pub scene_graph_state: Option<Value>,
    pub created_at: String,
    /// Where the image is, absolute (`GET /api/layers/layer` and
    /// `GET /api/layers/{id}`; not in lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The same, as a path on this service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl LayerJson {
    pub fn from_row(l: &LayerRow) -> LayerJson {
        LayerJson {
            id: l.id.to_string(),
            asset_id: l.asset_id.to_string(),
            asset_layer: l.asset_layer.clone(),
            asset_version: l.asset_version.to_string(),
            asset_layer_configuration: json_text(&l.layer_config),
            asset_layer_configuration_hash: l.layer_config_hash.clone(),
            stage_id: l.stage_id.clone().unwrap_or_default(),
            stage_configuration: json_text(&l.stage_config),
            stage_configuration_hash: l.stage_config_hash.clone(),
            stage_metadata: None,
            metadata: json_text(&l.metadata),
            org_id: l.org_id.to_string(),
            job_id: l.job_id.clone().unwrap_or_else(|| NO_ID.into()),
            task_id: l.task_id.clone().unwrap_or_else(|| NO_ID.into()),
            file_id: l.file_id.to_string(),
            branch: l.branch.clone(),
            format: l.format.clone(),
            width: l.width,
            height: l.height,
            scene_graph_state: None,
            created_at: rfc3339(l.created_at),
            url: None,
            path: None,
        }
    }

    /// The layer with where its image is: `base` is the public base URL.
    pub fn with_file(l: &LayerRow, base: &str) -> LayerJson {
        let path = layer_file_path(l);
        LayerJson {
            url: Some(format!("{base}{path}")),
            path: Some(path),
            ..LayerJson::from_row(l)
        }
    }
}

/// Where a layer's image is served: its file's content.
pub fn layer_file_path(l: &LayerRow) -> String {
    format!("/api/files/{}/content", l.file_id)
}

/// `POST /api/layers` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewLayerJson {
    #[schema(format = Uuid)]
    pub asset_id: String,
    /// Layer id or name; optional for single-layer assets.
    pub asset_layer: Option<String>,
    #[schema(value_type = Object)]
    pub asset_layer_configuration: Value,
    /// A UUID, or `""` (or absent): none.
    pub stage_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub stage_configuration: Option<Value>,
    /// `offsetX`/`offsetY` place a cropped image on the canvas (default 0).
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Map<String, Value>>,
    #[schema(format = Uuid)]
    pub file_id: String,
    /// Must be the asset's canvas.
    #[schema(minimum = 1)]
    #[serde(deserialize_with = "crate::catalog::whole::de")]
    pub width: u32,
    #[schema(minimum = 1)]
    #[serde(deserialize_with = "crate::catalog::whole::de")]
    pub height: u32,
    #[schema(format = Uuid)]
    pub job_id: Option<String>,
    #[schema(format = Uuid)]
    pub task_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileJson {
    pub id: String,
    pub org_id: String,
    /// Always `""`: layercake does not record who uploaded a file.
    pub user_id: String,
    pub filename: String,
    pub size: i64,
    /// `{"raw": {"size": "<bytes>"}}`.
    #[schema(value_type = Object)]
    pub encodings: Value,
    /// `blake3-<hex>` of the content.
    pub hash: String,
    pub extension: String,
    pub mime_type: String,
    pub created_at: String,
}

impl FileJson {
    pub fn from_row(f: &FileRow) -> FileJson {
        FileJson {
            id: f.id.to_string(),
            org_id: f.org_id.to_string(),
            user_id: f.user_id.clone().unwrap_or_default(),
            filename: f.filename.clone(),
            size: f.size,
            encodings: serde_json::json!({ "raw": { "size": f.size.to_string() } }),
            hash: f.hash.clone(),
            extension: f.extension.clone(),
            mime_type: f.mime_type.clone(),
            created_at: rfc3339(f.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FilesJson {
    pub files: Vec<FileJson>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationJson {
    pub id: String,
    /// 10 characters of `[A-Za-z0-9_-]`.
    pub short_id: String,
    pub org_id: String,
    pub product_id: String,
    pub product_version: Option<String>,
    /// The configuration.
    #[schema(value_type = Object)]
    pub variant: Value,
    #[schema(value_type = Object)]
    pub metadata: Value,
    /// Attachment name → file id; `{}` when none.
    #[schema(value_type = Object)]
    pub attachments: Value,
    #[schema(value_type = Option<Object>)]
    pub scene_graph_state: Option<Value>,
    pub customer_id: Option<String>,
    pub identifier: Option<String>,
    pub scope: Option<String>,
    pub thumbnail: Option<String>,
    pub session_id: Option<String>,
    pub publish_file_id: Option<String>,
    pub creator: Option<String>,
    pub created_at: String,
}

/// `POST /api/configurations` JSON body (multipart carries the same names).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewConfigurationJson {
    /// The asset id (required: 422 without it).
    #[schema(value_type = String, format = Uuid, required = true)]
    pub product_id: Option<String>,
    pub product_version: Option<String>,
    /// The configuration (required: 422 without it).
    #[schema(value_type = Object, required = true)]
    pub variant: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    pub customer_id: Option<String>,
    pub identifier: Option<String>,
    pub scope: Option<String>,
    pub thumbnail: Option<String>,
    pub session_id: Option<String>,
}

/// An asset: its definition as written, plus record fields.
pub fn asset_json(a: &Asset) -> Value {
    let mut v = serde_json::to_value(&a.spec).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("orgId".into(), a.org.to_string().into());
        m.insert("createdAt".into(), rfc3339(a.created_at).into());
        m.insert("updatedAt".into(), rfc3339(a.updated_at).into());
    }
    v
}

/// A list page: `{count, page, perPage, sort, <resource>: [...]}`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LayerList {
    pub count: usize,
    pub page: usize,
    pub per_page: usize,
    pub sort: String,
    pub layers: Vec<LayerJson>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationList {
    pub count: usize,
    pub page: usize,
    pub per_page: usize,
    pub sort: String,
    pub configurations: Vec<ConfigurationJson>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssetList {
    pub count: usize,
    pub page: usize,
    pub per_page: usize,
    pub sort: String,
    /// Asset definitions (see `config/layercake.toml` and `catalog/sofa.json`).
    #[schema(value_type = Vec<Object>)]
    pub assets: Vec<Value>,
}

/// The JSON answers of `GET /api/layers/layer`: the layer with its `url`
/// (`resultType=json`, the default), or `{url, metadata}` (`resultType=url`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum LatestLayer {
    Layer(LayerJson),
    Url(LayerUrl),
}

/// `resultType=url` answer of `GET /api/layers/layer`. Closed (no other
/// field), so that the layer JSON is not also one of these.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LayerUrl {
    pub url: String,
    #[schema(value_type = Object)]
    pub metadata: Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(1_700_000_000_123_456),
            "2023-11-14T22:13:20.123456Z"
        );
    }
}
