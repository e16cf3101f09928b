//! Assets: `GET /api/assets`, `GET /api/assets/{id}`, `PUT /api/assets/{id}`,
//! and `GET /api/assets/schema.json`, the format's JSON Schema.
//!
//! An asset is answered as its definition (the documented asset file
//! format, as in `catalog/sofa.json`) plus `orgId`, `createdAt`, `updatedAt`.

use super::auth::{Caller, Reader};
use super::body;
use super::error::ApiError;
use super::page::Page;
use crate::app::App;
use crate::app::params::{Params, parse_uuid};
use crate::wire::{AssetList, ErrorBody, asset_json};
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::sync::Arc;

/// List the live assets (the newest version of each).
#[utoipa::path(get, path = "/api/assets", tag = "assets",
    params(
        ("page" = Option<u32>, Query), ("perPage" = Option<u32>, Query, description = "At most 100."),
        ("sort" = Option<String>, Query, description = "+createdAt (default), -createdAt, +name or -name."),
    ),
    responses((status = 200, body = AssetList), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(app): State<Arc<App>>,
    Reader(caller): Reader,
    RawQuery(query): RawQuery,
) -> Result<Json<AssetList>, ApiError> {
    let params = Params::parse(query.as_deref(), app.settings().http.max_query_bytes)?;
    let page = Page::parse(&params, &["createdAt", "name"])?;
    let catalog = app.catalog().snapshot();
    let mut assets: Vec<_> = catalog.assets().filter(|a| a.org == caller.org).collect();
    if page.field == "name" {
        assets.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    } else {
        assets.sort_by_key(|a| (a.created_at, a.id));
    }
    if page.descending {
        assets.reverse();
    }
    let count = assets.len();
    let items = assets
        .into_iter()
        .skip(page.offset())
        .take(page.per_page)
        .map(|a| asset_json(a))
        .collect();
    Ok(Json(AssetList {
        count,
        page: page.page,
        per_page: page.per_page,
        sort: page.sort(),
        assets: items,
    }))
}

/// The JSON Schema (draft 2020-12) of the asset definition format, with
/// this server's caps: for editors (`"$schema"` in a catalogue file) and
/// tools. Needs no token; it says nothing about any asset.
#[utoipa::path(get, path = "/api/assets/schema.json", tag = "assets",
    responses((status = 200, description = "The JSON Schema of an asset definition (docs/assets.md is its prose)", body = Object)))]
pub async fn schema(State(app): State<Arc<App>>) -> Json<Value> {
    Json(crate::catalog::schema::asset_schema(
        &app.settings().catalog.limits(),
    ))
}

/// One asset, as its current definition.
#[utoipa::path(get, path = "/api/assets/{id}", tag = "assets",
    params(("id" = String, Path, description = "Asset id (UUID).")),
    responses((status = 200, description = "The asset definition", body = Object), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn get(
    State(app): State<Arc<App>>,
    Reader(caller): Reader,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_uuid("id", &id)?;
    Ok(Json(asset_json(&*app.assets().get(caller.org, id)?)))
}

/// Create or replace an asset. The definition is validated like a
/// catalogue file (templates inline, as `render.template`); a changed
/// definition becomes the next version, with new keys, so no stale layer is
/// reused; an unchanged one changes nothing.
#[utoipa::path(put, path = "/api/assets/{id}", tag = "assets",
    params(("id" = String, Path, description = "Asset id (UUID).")),
    request_body(content = Object, description = "An asset definition (docs/assets.md; the schema is GET /api/assets/schema.json), templates inline. A GET answer can be sent back as is: its read-only fields are ignored (orgId must be yours)."),
    responses(
        (status = 200, description = "Replaced (or unchanged)", body = Object),
        (status = 201, description = "Created", body = Object),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 409, description = "The asset is defined by a catalogue file (the message names it): edit the file", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 422, description = "Invalid definition; the message names the field", body = ErrorBody),
    ))]
pub async fn put(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    req: axum::body::Body,
) -> Result<Response, ApiError> {
    let id = parse_uuid("id", &id)?;
    let bytes = body::read(req, app.settings().http.max_body_bytes).await?;
    let (asset, created) = app.assets().put(caller.org, id, &bytes).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(asset_json(&asset))).into_response())
}
