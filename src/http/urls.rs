//! `POST /api/urls`: image URLs for a batch of requests, checked like the
//! image route checks them, pinned to the live asset definition (`v`) and
//! signed when signing keys are configured.

use super::auth::Caller;
use super::body;
use super::error::ApiError;
use crate::app::App;
use crate::app::image::{pinned_url, query_of, request_for};
use crate::error::Error;
use crate::wire::ErrorBody;
use axum::Json;
use axum::extract::{Request, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use utoipa::ToSchema;

/// Most images one call may ask for.
pub(super) const MAX_IMAGES: usize = 10_000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UrlsRequest {
    /// Each an object of the image route's parameters, e.g.
    /// `{"assetId": "…", "configuration": {"Body": "Navy"}, "width": 512, "format": "webp"}`
    /// (JSON-valued parameters as JSON, not strings).
    #[schema(value_type = Vec<Object>)]
    pub images: Vec<serde_json::Map<String, Value>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UrlsResponse {
    /// Path and query of each image, in order; signed when keys are configured.
    pub urls: Vec<String>,
    /// Whether the URLs carry a signature.
    pub signed: bool,
}

/// Signed image URLs for a batch.
#[utoipa::path(post, path = "/api/urls", tag = "fast-compositor",
    request_body = UrlsRequest,
    responses(
        (status = 200, body = UrlsResponse),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "Unknown asset", body = ErrorBody),
        (status = 422, description = "An invalid image request; the message names images[i] and the parameter", body = ErrorBody),
    ))]
pub async fn create(
    State(app): State<Arc<App>>,
    caller: Caller,
    req: Request,
) -> Result<Json<UrlsResponse>, ApiError> {
    let bytes = body::read(req.into_body(), app.settings().http.max_body_bytes).await?;
    let b: UrlsRequest = body::parse(&bytes)?;
    if b.images.len() > MAX_IMAGES {
        return Err(Error::invalid("images", format!("at most {MAX_IMAGES} per call")).into());
    }
    let at = |i: usize, e: Error| match e {
        Error::Invalid { param, message } => {
            Error::invalid(format!("images[{i}].{param}"), message)
        }
        Error::Malformed { param, message } => {
            Error::malformed(format!("images[{i}].{param}"), message)
        }
        Error::NotFound(m) => Error::NotFound(format!("images[{i}]: {m}")),
        e => e,
    };
    let mut urls = Vec::with_capacity(b.images.len());
    for (i, image) in b.images.iter().enumerate() {
        let query = query_of(image).map_err(|e| at(i, e))?;
        let request = request_for(&app, caller.org, &query).map_err(|e| at(i, e))?;
        urls.push(pinned_url(
            &app.signer(),
            &request.asset,
            &app.settings().http.cache_buster,
            &query,
        ));
    }
    Ok(Json(UrlsResponse {
        urls,
        signed: app.signer().can_sign(),
    }))
}
