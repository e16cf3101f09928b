//! Operations: `/metrics` (Prometheus), `/healthz` (alive), `/readyz`
//! (dependencies reachable, the codec works), and the per-request metrics
//! middleware.

use super::auth::Caller;
use super::error::ApiError;
use crate::app::App;
use crate::error::Error;
use crate::telemetry;
use axum::Json;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Instant;

/// The Content-Type of the Prometheus text exposition.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4";

/// Counts and times every routed request by its route template.
pub async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    // Never a label from raw input: unknown methods are "other".
    let method: &'static str = match req.method().as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    };
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    metrics::counter!(telemetry::HTTP_REQUESTS, "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!(telemetry::HTTP_DURATION, "route" => route)
        .record(started.elapsed().as_secs_f64());
    res
}

/// Marks requests that came in on `http.ops_listen`: they see details.
#[derive(Debug, Clone, Copy)]
pub struct OpsListener;

/// Whether the request may see operational details (store URL, error
/// text): it came in on the ops address, or carries a private token (or
/// the server is in development mode, which answers loopback only).
async fn sees_details(app: &App, parts: &Parts) -> bool {
    if parts.extensions.get::<OpsListener>().is_some() {
        return true;
    }
    matches!(Caller::resolve(app, parts).await, Ok(Some(c)) if c.private())
}

/// Prometheus text exposition of every `layercake_` metric (the series
/// carry no URLs and no error text). On the main address only to a private
/// token (or in development mode); on `http.ops_listen` to anyone.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text format (version 0.0.4)", content_type = "text/plain"),
        (status = 403, description = "no private token (scrape the ops address, http.ops_listen, or send a private token)", body = crate::wire::ErrorBody)))]
pub async fn metrics(State(app): State<Arc<App>>, parts: Parts) -> Result<Response, ApiError> {
    if !sees_details(&app, &parts).await {
        return Err(ApiError(Error::Forbidden(
            "metrics need a private token here, or scrape the ops address (http.ops_listen)".into(),
        )));
    }
    let handle = telemetry::handle()
        .ok_or_else(|| Error::Internal("another metrics recorder is installed".into()))?;
    // Gauges read at scrape time: what is queued, what the caches hold.
    crate::app::health::record_gauges(&app).await;
    Ok(([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], handle.render()).into_response())
}

/// Alive: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "ok")))]
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready: the metadata store and the object store answer, and a tiny
/// image encodes. 503 otherwise (the log names the failed check).
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses((status = 200, description = "ready: `{\"status\": \"ready\" | \"degraded\"}`; degraded while the object store does not answer (hits are still served, misses answer 503). On the ops address (`http.ops_listen`) or with a private token it also has `\"store\": {url, up, outbox_objects, outbox_bytes, disk_bytes, error?}`"),
        (status = 503, description = "not ready (metadata store or encoder); the cause is in the log", body = crate::wire::ErrorBody)))]
pub async fn readyz(
    State(app): State<Arc<App>>,
    parts: Parts,
) -> Result<Json<serde_json::Value>, ApiError> {
    let ready = crate::app::health::readiness(&app).await?;
    if !sees_details(&app, &parts).await {
        return Ok(Json(serde_json::json!({"status": ready.status()})));
    }
    Ok(Json(
        serde_json::json!({"status": ready.status(), "store": ready.store}),
    ))
}

/// `GET /api/<service>/healthcheck` of each service of the contract: 200
/// while the process answers. One handler; the macro only gives each path
/// its own OpenAPI operation (utoipa documents one path per function).
macro_rules! healthchecks {
    ($($name:ident => $path:tt, $tag:tt;)*) => {$(
        #[utoipa::path(get, path = $path, tag = $tag, responses((status = 200, description = "ok")))]
        pub async fn $name() -> axum::http::StatusCode {
            healthcheck()
        }
    )*};
}

fn healthcheck() -> axum::http::StatusCode {
    axum::http::StatusCode::OK
}

healthchecks! {
    compositor_health => "/api/fast-compositor/healthcheck", "fast-compositor";
    layers_health => "/api/layers/healthcheck", "layers";
    files_health => "/api/files/healthcheck", "files";
    configurations_health => "/api/configurations/healthcheck", "configurations";
    assets_health => "/api/assets/healthcheck", "assets";
    jobs_health => "/api/jobs/healthcheck", "jobs";
    webhooks_health => "/api/webhooks/healthcheck", "webhooks";
}
