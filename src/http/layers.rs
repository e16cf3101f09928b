//! The Layers service: `GET /api/layers`, `GET /api/layers/layer`,
//! `GET /api/layers/{id}`, `POST /api/layers`.

use super::auth::{Caller, Reader};
use super::body;
use super::error::ApiError;
use super::origin::PublicBase;
use super::page::Page;
use crate::app::App;
use crate::app::image::check_output_size;
use crate::app::params::{Params, parse_uuid};
use crate::compose::{Fit, Format, Output};
use crate::error::Error;
use crate::service::LayerFilter;
use crate::service::layers::{DEFAULT_BRANCH, canonical_layer_config, hash_of};
use crate::service::{LayerQuery, NewLayer};
use crate::wire::{
    ErrorBody, LatestLayer, LayerJson, LayerList, LayerUrl, NewLayerJson, layer_file_path,
};
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The filters shared by the list and the latest-layer routes.
fn query(app: &App, org: uuid::Uuid, p: &Params) -> Result<LayerQuery, Error> {
    let asset_id = p.uuid("assetId")?;
    // Only the caller's own assets inform the filter (and its errors).
    let asset = asset_id.and_then(|id| app.assets().get(org, id).ok());
    let layer_config_hash = match (
        p.str("assetLayerConfigurationHash"),
        p.json("assetLayerConfiguration")?,
    ) {
        (Some(h), _) => Some(h.to_string()),
        (None, Some(c)) => Some(hash_of(&canonical_layer_config(
            asset.as_deref(),
            &c,
            "assetLayerConfiguration",
        )?)),
        (None, None) => None,
    };
    let stage_config_hash = match (
        p.str("stageConfigurationHash"),
        p.json("stageConfiguration")?,
    ) {
        (Some(h), _) => Some(h.to_string()),
        (None, Some(c)) if c.is_object() => Some(hash_of(&crate::keys::canonical_json(&c))),
        (None, Some(_)) => {
            return Err(Error::invalid(
                "stageConfiguration",
                "must be a JSON object",
            ));
        }
        (None, None) => None,
    };
    let metadata = match p.json("metadata")? {
        None => None,
        Some(serde_json::Value::Object(m)) => Some(m),
        Some(_) => return Err(Error::invalid("metadata", "must be a JSON object")),
    };
    let filter = LayerFilter {
        id: p.uuid("id")?,
        asset_id,
        // By id, or by name when the asset is known.
        asset_layer: p.str("assetLayer").map(|l| {
            asset
                .as_ref()
                .and_then(|a| a.layers.iter().find(|x| x.name == l))
                .map_or_else(|| l.to_string(), |x| x.id.to_string())
        }),
        layer_config_hash,
        // A UUID; `""` is "none", as the published client's schema has it.
        stage_id: match p.str("stageId") {
            None => None,
            Some(s) => Some(parse_uuid("stageId", s)?.to_string()),
        },
        stage_config_hash,
        job_id: p.uuid("jobId")?.map(|u| u.to_string()),
        branch: p.str("branch").map(str::to_string),
        layer_key: None,
    };
    Ok(LayerQuery { filter, metadata })
}

/// List layers.
#[utoipa::path(get, path = "/api/layers", tag = "layers",
    params(
        ("id" = Option<String>, Query, description = "Layer id (UUID)."),
        ("assetId" = Option<String>, Query, description = "Asset id (UUID)."),
        ("assetLayer" = Option<String>, Query, description = "Composition layer id."),
        ("assetLayerConfiguration" = Option<String>, Query, description = "URL-encoded JSON; matched by canonical hash."),
        ("assetLayerConfigurationHash" = Option<String>, Query, description = "The canonical hash itself."),
        ("stageId" = Option<String>, Query, description = "Stage id."),
        ("stageConfiguration" = Option<String>, Query, description = "URL-encoded JSON, e.g. {\"Camera\":1}; matched by canonical hash."),
        ("stageConfigurationHash" = Option<String>, Query, description = "The canonical hash itself."),
        ("jobId" = Option<String>, Query, description = "Job id (UUID)."),
        ("branch" = Option<String>, Query, description = "Branch, e.g. main."),
        ("metadata" = Option<String>, Query, description = "URL-encoded JSON object; layers whose metadata contains it."),
        ("page" = Option<u32>, Query, description = "From 1."),
        ("perPage" = Option<u32>, Query, description = "Default 30, at most 100."),
        ("sort" = Option<String>, Query, description = "+createdAt (default) or -createdAt."),
        ("bearer_token" = Option<String>, Query, description = "Token, if not in the Authorization header."),
    ),
    responses(
        (status = 200, body = LayerList),
        (status = 400, description = "Malformed JSON parameter", body = ErrorBody),
        (status = 422, description = "Malformed UUID or invalid value", body = ErrorBody),
    ))]
pub async fn list(
    State(app): State<Arc<App>>,
    Reader(caller): Reader,
    RawQuery(q): RawQuery,
) -> Result<Json<LayerList>, ApiError> {
    let p = Params::parse(q.as_deref(), app.settings().http.max_query_bytes)?;
    let page = Page::parse(&p, &["createdAt"])?;
    let (count, rows) = app
        .layers()
        .list(caller.org, &query(&app, caller.org, &p)?, page.window())
        .await?;
    Ok(Json(LayerList {
        count,
        page: page.page,
        per_page: page.per_page,
        sort: page.sort(),
        layers: rows.iter().map(LayerJson::from_row).collect(),
    }))
}

/// The latest layer matching the filters: its JSON, its URL, or its image.
#[utoipa::path(get, path = "/api/layers/layer", tag = "layers",
    params(
        ("assetId" = Option<String>, Query, description = "Asset id (UUID)."),
        ("assetLayer" = Option<String>, Query, description = "Composition layer id."),
        ("assetLayerConfiguration" = Option<String>, Query, description = "URL-encoded JSON."),
        ("assetLayerConfigurationHash" = Option<String>, Query),
        ("stageConfiguration" = Option<String>, Query, description = "URL-encoded JSON."),
        ("stageConfigurationHash" = Option<String>, Query),
        ("stageId" = Option<String>, Query),
        ("jobId" = Option<String>, Query),
        ("branch" = Option<String>, Query),
        ("metadata" = Option<String>, Query, description = "URL-encoded JSON object."),
        ("resultType" = Option<String>, Query, description = "file: the image bytes; url: {url, metadata}; otherwise the layer JSON plus url."),
        ("optimization" = Option<String>, Query, description = "URL-encoded JSON {width, height, format: png|jpg|webp, quality}: a transformed copy of the layer on its canvas."),
    ),
    responses(
        (status = 200, description = "Layer JSON with url (resultType=json, the default), {url, metadata} (resultType=url), or the image bytes (resultType=file: PNG, or the optimization's format)",
            content((LatestLayer = "application/json"), (Vec<u8> = "image/png"), (Vec<u8> = "image/jpeg"), (Vec<u8> = "image/webp"))),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
    ))]
pub async fn latest(
    State(app): State<Arc<App>>,
    Reader(caller): Reader,
    base: PublicBase,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::parse(q.as_deref(), app.settings().http.max_query_bytes)?;
    p.none_empty(&["resultType"])?;
    let row = app
        .layers()
        .latest(caller.org, &query(&app, caller.org, &p)?)
        .await?;
    // Checked whatever the result type, as the document states it.
    let canvas = (
        u32::try_from(row.width).unwrap_or(0),
        u32::try_from(row.height).unwrap_or(0),
    );
    let optimization = match p.json("optimization")? {
        Some(o) => {
            let limit = app.settings().http.max_dimension;
            let out = optimization_output(&o, limit, canvas, &app.settings().compose)?;
            check_output_size(canvas, &out, limit, Some("optimization"))?;
            Some(out)
        }
        None => None,
    };
    match p.str("resultType") {
        Some("file") => {
            let bytes = app.layers().image(&row).await?;
            let (bytes, content_type) = match optimization {
                None => (bytes, "image/png"),
                Some(out) => {
                    let ct = out.format.content_type();
                    let max = app.settings().render.max_pixels;
                    let meta: serde_json::Value =
                        serde_json::from_str(&row.metadata).unwrap_or_default();
                    let at = |k: &str| {
                        meta.get(k)
                            .and_then(|v| v.as_u64())
                            .and_then(|v| u32::try_from(v).ok())
                            .unwrap_or(0)
                    };
                    let offset = (at("offsetX"), at("offsetY"));
                    let transformed = app
                        .compositor()
                        .cpu(move || {
                            crate::pipeline::transform_layer(&bytes, canvas, offset, &out, max)
                        })
                        .await??;
                    (bytes::Bytes::from(transformed), ct)
                }
            };
            Ok(([(header::CONTENT_TYPE, content_type)], bytes).into_response())
        }
        Some("url") => {
            let metadata = serde_json::from_str(&row.metadata).unwrap_or(serde_json::Value::Null);
            let url = base.url(&layer_file_path(&row));
            Ok(Json(LatestLayer::Url(LayerUrl { url, metadata })).into_response())
        }
        Some(other) if other != "json" => {
            Err(Error::invalid("resultType", format!("\"{other}\": use file, url or json")).into())
        }
        _ => Ok(Json(LatestLayer::Layer(LayerJson::with_file(&row, &base.0))).into_response()),
    }
}

/// `optimization={"width","height","format","quality"}` as an output.
fn optimization_output(
    o: &serde_json::Value,
    max: u32,
    canvas: (u32, u32),
    compose: &crate::config::ComposeSettings,
) -> Result<Output, Error> {
    let m = o
        .as_object()
        .ok_or_else(|| Error::invalid("optimization", "must be a JSON object"))?;
    if let Some(k) = m
        .keys()
        .find(|k| !matches!(k.as_str(), "width" | "height" | "format" | "quality"))
    {
        return Err(Error::invalid(
            "optimization",
            format!("unknown field \"{k}\"; use width, height, format, quality"),
        ));
    }
    let int = |k: &str, lo: u64, hi: u64| -> Result<Option<u32>, Error> {
        match m.get(k) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .filter(|x| (lo..=hi).contains(x))
                .map(|x| Some(x as u32))
                .ok_or_else(|| {
                    Error::invalid(
                        "optimization",
                        format!("{k} must be a whole number in {lo}..={hi}"),
                    )
                }),
        }
    };
    let format = match m.get("format").and_then(|v| v.as_str()) {
        None => Format::Png,
        Some(f) => Format::parse(f).ok_or_else(|| {
            Error::invalid(
                "optimization",
                format!("format \"{f}\": use png, jpg or webp"),
            )
        })?,
    };
    let out = Output {
        width: int("width", 1, u64::from(max))?,
        height: int("height", 1, u64::from(max))?,
        fit: Fit::Contain,
        crop: None,
        format,
        quality: int("quality", 1, 100)?.map(|q| q as u8),
    };
    Ok(out.normalize(canvas, compose.default_quality(format)))
}

/// One layer, with where its image is.
#[utoipa::path(get, path = "/api/layers/{id}", tag = "layers",
    params(("id" = String, Path, description = "Layer id (UUID).")),
    responses((status = 200, body = LayerJson), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn get(
    State(app): State<Arc<App>>,
    Reader(caller): Reader,
    base: PublicBase,
    Path(id): Path<String>,
) -> Result<Json<LayerJson>, ApiError> {
    let id = parse_uuid("id", &id)?;
    Ok(Json(LayerJson::with_file(
        &app.layers().get(caller.org, id).await?,
        &base.0,
    )))
}

/// Register an uploaded image as a layer ("bring your own renders"); the
/// fast compositor then uses it instead of rendering.
#[utoipa::path(post, path = "/api/layers", tag = "layers",
    params(("branch" = Option<String>, Query, description = "Default main.")),
    request_body = NewLayerJson,
    responses(
        (status = 200, body = LayerJson),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 404, description = "Unknown asset or file", body = ErrorBody),
        (status = 409, description = "The asset was updated during the registration", body = ErrorBody),
        (status = 413, description = "Body over http.max_body_bytes", body = ErrorBody),
        (status = 422, description = "Unknown field, bad UUID, or a layer that does not fit the asset", body = ErrorBody),
    ))]
pub async fn create(
    State(app): State<Arc<App>>,
    caller: Caller,
    RawQuery(q): RawQuery,
    req: axum::body::Body,
) -> Result<Json<LayerJson>, ApiError> {
    let p = Params::parse(q.as_deref(), app.settings().http.max_query_bytes)?;
    let bytes = body::read(req, app.settings().http.max_body_bytes).await?;
    let b: NewLayerJson = body::parse(&bytes)?;
    let opt_uuid =
        |name: &str, v: &Option<String>| v.as_deref().map(|s| parse_uuid(name, s)).transpose();
    let n = NewLayer {
        asset_id: parse_uuid("assetId", &b.asset_id)?,
        asset_layer: b.asset_layer,
        asset_layer_configuration: b.asset_layer_configuration,
        // A UUID, or none ("" or absent), as the client's schema has it.
        stage_id: opt_uuid("stageId", &b.stage_id.filter(|s| !s.is_empty()))?
            .map(|u| u.to_string()),
        stage_configuration: b.stage_configuration.unwrap_or(serde_json::Value::Null),
        metadata: b.metadata.unwrap_or_default(),
        file_id: parse_uuid("fileId", &b.file_id)?,
        width: b.width,
        height: b.height,
        job_id: opt_uuid("jobId", &b.job_id)?,
        task_id: opt_uuid("taskId", &b.task_id)?,
        branch: p.str("branch").unwrap_or(DEFAULT_BRANCH).to_string(),
    };
    Ok(Json(LayerJson::from_row(
        &app.layers()
            .register(caller.org, n, &app.compositor())
            .await?,
    )))
}
