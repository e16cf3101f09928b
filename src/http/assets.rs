//! `GET /api/assets`, `GET /api/assets/{id}`: the catalogue, read-only.
//!
//! Assets are answered as their definition (`catalog::AssetSpec`, the
//! documented file format). Catalogue assets all exist from start-up, so
//! `createdAt` order is catalogue order (by id).

use super::error::ApiError;
use super::page::Page;
use super::params::{Params, parse_uuid};
use crate::app::App;
use crate::error::Error;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use serde_json::Value;
use std::sync::Arc;

pub async fn list(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> Result<Json<Value>, ApiError> {
    let params = Params::parse(query.as_deref(), app.settings.http.max_query_bytes)?;
    let page = Page::parse(&params, &["createdAt", "name"])?;
    let mut assets: Vec<_> = app.catalog.assets().collect();
    if page.field == "name" {
        assets.sort_by(|a, b| a.name.cmp(&b.name));
    }
    if page.descending {
        assets.reverse();
    }
    let count = assets.len();
    let items = assets.into_iter().skip(page.offset()).take(page.per_page).map(|a| to_json(&a.spec)).collect();
    Ok(Json(page.envelope("assets", count, items)))
}

pub async fn get(State(app): State<Arc<App>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = parse_uuid("id", &id)?;
    let asset = app.catalog.get(&id).ok_or_else(|| Error::NotFound(format!("asset {id} not found")))?;
    Ok(Json(to_json(&asset.spec)))
}

pub async fn healthcheck() -> &'static str {
    "ok"
}

fn to_json(spec: &crate::catalog::AssetSpec) -> Value {
    serde_json::to_value(spec).unwrap_or(Value::Null)
}
