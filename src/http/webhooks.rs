//! Webhooks: `POST|GET /api/webhooks`, `GET|PUT|DELETE /api/webhooks/{id}`,
//! `POST /api/webhooks/{id}/restore`, and layercake's
//! `GET /api/webhooks/{id}/deliveries` (every delivery and attempt).
//! Topics, payload and signature are described in `crate::webhooks`.

use super::auth::Caller;
use super::body;
use super::error::ApiError;
use super::page::Page;
use crate::app::App;
use crate::app::params::{Params, parse_uuid};
use crate::error::Error;
use crate::webhooks::WebhookInput;
use crate::wire::ErrorBody;
use crate::wire::webhooks::{
    DeliveryJson, DeliveryList, WebhookJson, WebhookList, WebhookOne, WebhookUpdated,
};
use axum::Json;
use axum::extract::{Path, RawQuery, Request, State};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;
use utoipa::ToSchema;

/// A webhook as created or updated.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookBody {
    /// The caller's org (the published client sends it); must be the
    /// token's org: another is 403.
    #[schema(format = Uuid)]
    pub org_id: Option<String>,
    /// `job.stopped`, `layer.created` or `*`. Required on create.
    pub topic: Option<String>,
    /// Where deliveries are POSTed (http or https). Required on create.
    pub address: Option<String>,
    /// Entries the event's data must match, e.g. `{"assetId": "…"}`;
    /// arrays are any-of; `status`: outcomes (`success`, `failed`).
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Value>,
    /// The HMAC key (at least 16 characters); generated when absent.
    /// Create only.
    #[schema(min_length = 16)]
    pub secret: Option<String>,
}

/// The body's fields as the service takes them; `orgId` must be the caller's.
fn input(caller: &Caller, b: WebhookBody) -> Result<WebhookInput, Error> {
    if let Some(org) = b.org_id.as_deref() {
        let org = parse_uuid("orgId", org)?;
        // Development mode acts for the default org whatever orgId says
        // (as with the query's orgId).
        if caller.kind != super::auth::CallerKind::Development && org != caller.org {
            return Err(Error::Forbidden("orgId is not the org of the token".into()));
        }
    }
    Ok(WebhookInput {
        topic: b.topic,
        address: b.address,
        filter: b.filter,
        secret: b.secret,
    })
}

/// Create a webhook. The answer carries its signing secret (only here).
#[utoipa::path(post, path = "/api/webhooks", tag = "webhooks",
    request_body = WebhookBody,
    responses(
        (status = 200, description = "The webhook with its secret (200 as the platform's creates answer).", body = WebhookOne),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, description = "address or topic missing or invalid", body = ErrorBody),
    ))]
pub async fn create(
    State(app): State<Arc<App>>,
    caller: Caller,
    req: Request,
) -> Result<Json<WebhookOne>, ApiError> {
    let bytes = body::read(req.into_body(), app.settings().http.max_body_bytes).await?;
    let b: WebhookBody = body::parse(&bytes)?;
    let row = app
        .webhooks()
        .create(caller.org, input(&caller, b)?)
        .await?;
    Ok(Json(WebhookOne::new(&row, true)))
}

/// List webhooks (soft-deleted ones with `deleted=true`).
#[utoipa::path(get, path = "/api/webhooks", tag = "webhooks",
    params(
        ("deleted" = Option<bool>, Query, description = "Include soft-deleted webhooks."),
        ("page" = Option<u32>, Query), ("perPage" = Option<u32>, Query), ("sort" = Option<String>, Query),
    ),
    responses((status = 200, body = WebhookList), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> Result<Json<WebhookList>, ApiError> {
    let p = Params::parse(q.as_deref(), app.settings().http.max_query_bytes)?;
    let page = Page::parse(&p, &["createdAt"])?;
    let deleted = deleted_flag(&p)?;
    let (count, rows) = app
        .webhooks()
        .list(caller.org, deleted, page.window())
        .await?;
    Ok(Json(WebhookList {
        count,
        page: page.page,
        per_page: page.per_page,
        sort: page.sort(),
        webhooks: rows.iter().map(|h| WebhookJson::new(h, false)).collect(),
    }))
}

/// `deleted=true|false` (default false).
fn deleted_flag(p: &Params) -> Result<bool, Error> {
    match p.raw("deleted") {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(Error::malformed(
            "deleted",
            format!("\"{other}\" is not true or false"),
        )),
    }
}

/// One webhook; a soft-deleted one is 404 (it is in the listing with
/// `deleted=true`, and `restore` brings it back).
#[utoipa::path(get, path = "/api/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path)),
    responses((status = 200, body = WebhookOne), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn get(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<WebhookOne>, ApiError> {
    let h = app
        .webhooks()
        .read(caller.org, parse_uuid("id", &id)?)
        .await?;
    Ok(Json(WebhookOne::new(&h, false)))
}

/// Change a webhook's topic, address or filter (the fields given).
#[utoipa::path(put, path = "/api/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path)), request_body = WebhookBody,
    responses((status = 200, body = WebhookUpdated), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    req: Request,
) -> Result<Json<WebhookUpdated>, ApiError> {
    let id = parse_uuid("id", &id)?;
    let bytes = body::read(req.into_body(), app.settings().http.max_body_bytes).await?;
    let b: WebhookBody = body::parse(&bytes)?;
    let row = app
        .webhooks()
        .update(caller.org, id, input(&caller, b)?)
        .await?;
    Ok(Json(WebhookUpdated {
        webhook: WebhookJson::new(&row, false),
        webhooks: vec![WebhookJson::new(&row, false)],
    }))
}

/// Soft-delete a webhook: it sets `deletedAt` and stops receiving events.
#[utoipa::path(delete, path = "/api/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path)),
    responses((status = 200, body = WebhookOne), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn delete(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<WebhookOne>, ApiError> {
    set_deleted(&app, &caller, &id, true).await
}

/// Restore a soft-deleted webhook.
#[utoipa::path(post, path = "/api/webhooks/{id}/restore", tag = "webhooks",
    params(("id" = String, Path)),
    responses((status = 200, body = WebhookOne), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn restore(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<WebhookOne>, ApiError> {
    set_deleted(&app, &caller, &id, false).await
}

async fn set_deleted(
    app: &App,
    caller: &Caller,
    id: &str,
    deleted: bool,
) -> Result<Json<WebhookOne>, ApiError> {
    let id = parse_uuid("id", id)?;
    let h = app.webhooks().set_deleted(caller.org, id, deleted).await?;
    Ok(Json(WebhookOne::new(&h, false)))
}

/// Deliveries of a webhook, each with every attempt (status, error, time);
/// a soft-deleted webhook's are 404 until it is restored.
#[utoipa::path(get, path = "/api/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path), ("page" = Option<u32>, Query), ("perPage" = Option<u32>, Query), ("sort" = Option<String>, Query)),
    responses((status = 200, body = DeliveryList), (status = 404, body = ErrorBody)))]
pub async fn deliveries(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<DeliveryList>, ApiError> {
    let p = Params::parse(q.as_deref(), app.settings().http.max_query_bytes)?;
    let page = Page::parse(&p, &["createdAt"])?;
    let (count, rows) = app
        .webhooks()
        .deliveries(caller.org, parse_uuid("id", &id)?, page.window())
        .await?;
    let deliveries = rows
        .iter()
        .map(|(d, attempts)| DeliveryJson::new(d, attempts))
        .collect();
    Ok(Json(DeliveryList {
        count,
        page: page.page,
        per_page: page.per_page,
        sort: page.sort(),
        deliveries,
    }))
}
