//! Saved configurations: `POST /api/configurations` (JSON or multipart),
//! `GET /api/configurations`, `GET /api/configurations/{id or shortId}`.

use super::auth::{Caller, Reader};
use super::body;
use super::error::ApiError;
use super::files::multipart_error;
use super::page::Page;
use crate::app::App;
use crate::app::params::Params;
use crate::error::Error;
use crate::service::NewConfiguration;
use crate::wire::{ConfigurationJson, ConfigurationList, ErrorBody, NewConfigurationJson};
use axum::Json;
use axum::extract::{FromRequest, Multipart, Path, RawQuery, Request, State};
use axum::http::header;
use std::sync::Arc;

/// Save a configuration.
#[utoipa::path(post, path = "/api/configurations", tag = "configurations",
    request_body(content = NewConfigurationJson, description = "JSON, or a multipart form with the same field names (variant and metadata as JSON text); file parts become attachments.",
        content_type = "application/json"),
    responses(
        (status = 200, body = ConfigurationJson),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 404, description = "Unknown product (asset)", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 422, description = "productId or variant missing or invalid", body = ErrorBody),
    ))]
pub async fn create(
    State(app): State<Arc<App>>,
    caller: Caller,
    req: Request,
) -> Result<Json<ConfigurationJson>, ApiError> {
    let is_multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let n = if is_multipart {
        let form = Multipart::from_request(req, &app)
            .await
            .map_err(|e| Error::malformed("body", e.body_text()))?;
        from_form(&app, caller.org, form).await?
    } else {
        let bytes = body::read(req.into_body(), app.settings().http.max_body_bytes).await?;
        let b: NewConfigurationJson = body::parse(&bytes)?;
        NewConfiguration {
            product_id: b.product_id,
            product_version: b.product_version,
            variant: b.variant,
            metadata: b.metadata,
            customer_id: b.customer_id,
            identifier: b.identifier,
            scope: b.scope,
            thumbnail: b.thumbnail,
            session_id: b.session_id,
            ..NewConfiguration::default()
        }
    };
    Ok(Json(app.configurations().save(caller.org, n).await?.json()))
}

async fn from_form(
    app: &App,
    org: uuid::Uuid,
    mut form: Multipart,
) -> Result<NewConfiguration, Error> {
    let mut n = NewConfiguration::default();
    while let Some(field) = form.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_string();
        if let Some(filename) = field.file_name().map(str::to_string) {
            let declared = field.content_type().map(str::to_string);
            let bytes = field.bytes().await.map_err(multipart_error)?;
            let f = app
                .files()
                .upload(org, Some(&filename), declared.as_deref(), bytes)
                .await?;
            n.attachments
                .insert(if name.is_empty() { filename } else { name }, f.id);
            continue;
        }
        let text = field.text().await.map_err(multipart_error)?;
        let json = |param: &str| {
            serde_json::from_str::<serde_json::Value>(&text)
                .map_err(|e| Error::malformed(param, format!("is not valid JSON ({e})")))
        };
        match name.as_str() {
            "productId" => n.product_id = Some(text),
            "productVersion" => n.product_version = Some(text),
            "variant" => n.variant = Some(json("variant")?),
            "metadata" => n.metadata = Some(json("metadata")?),
            "customerId" => n.customer_id = Some(text),
            "identifier" => n.identifier = Some(text),
            "scope" => n.scope = Some(text),
            "thumbnail" => n.thumbnail = Some(text),
            "sessionId" => n.session_id = Some(text),
            other => {
                return Err(Error::invalid(
                    other,
                    "is not a field of a saved configuration",
                ));
            }
        }
    }
    Ok(n)
}

/// List saved configurations.
#[utoipa::path(get, path = "/api/configurations", tag = "configurations",
    params(
        ("page" = Option<u32>, Query), ("perPage" = Option<u32>, Query, description = "At most 100."),
        ("sort" = Option<String>, Query, description = "+createdAt or -createdAt."),
    ),
    responses((status = 200, body = ConfigurationList), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> Result<Json<ConfigurationList>, ApiError> {
    let p = Params::parse(q.as_deref(), app.settings().http.max_query_bytes)?;
    let page = Page::parse(&p, &["createdAt"])?;
    let (count, rows) = app.configurations().list(caller.org, page.window()).await?;
    Ok(Json(ConfigurationList {
        count,
        page: page.page,
        per_page: page.per_page,
        sort: page.sort(),
        configurations: rows.iter().map(|c| c.json()).collect(),
    }))
}

/// One saved configuration, by id or short id.
#[utoipa::path(get, path = "/api/configurations/{id}", tag = "configurations",
    params(("id" = String, Path, description = "The id (UUID) or the shortId.")),
    responses((status = 200, body = ConfigurationJson), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(app): State<Arc<App>>,
    Reader(caller): Reader,
    Path(id): Path<String>,
) -> Result<Json<ConfigurationJson>, ApiError> {
    Ok(Json(
        app.configurations().get(caller.org, &id).await?.json(),
    ))
}
