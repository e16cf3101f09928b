//! The HTTP edge: axum routes, one file per resource.
//!
//! - `compositor`: `/api/fast-compositor` (the image path); `urls`:
//!   `POST /api/urls` (signed image URLs). Both call `app::image`, which
//!   parses and resolves the image request.
//! - `layers`, `files`, `configurations`, `assets`: the record services.
//! - `jobs`: jobs, tasks, runs; batch renders and cancellation.
//! - `worker`: the worker protocol of remote render nodes (worker tokens).
//! - `webhooks`: subscriptions and their delivery log.
//! - `plp`: `/`, the demo product-listing page.
//! - `openapi`: `/api/openapi.json`, collected from the routes themselves;
//!   `constraints`: the parameter schemas and error statuses it declares.
//! - `ops`: `/metrics`, `/healthz`, `/readyz`, and request metrics.
//! - `auth`: the caller (token → org) every route goes through; `Caller`
//!   for private routes, `Reader` where a public token may read too,
//!   `WorkerCaller` for the worker protocol (worker tokens only).
//! - `guard`: body media types, and loopback `Host`/`Origin` in development mode.
//! - `server`: connections (hyper-util: header-read timeout, connection cap).
//! - `page`, `body`: pagination and JSON body parsing (query parameters:
//!   `app::params`).
//! - `origin`: the public base URL of absolute links (`http.public_url`,
//!   or `Host` and forwarded headers from trusted proxies).
//! - `wire`: the JSON shapes clients see.
//! - `error`: the only place where errors become status codes, and the
//!   boundary every answer leaves through (fixed 5xx sentences, request id).
//!
//! [`serve`] takes its listener and its shutdown signal as arguments: the
//! binary binds the configured address and passes SIGTERM/Ctrl-C, tests
//! bind port 0 and pass whatever they like. Shutdown order: stop accepting,
//! let in-flight requests finish (hyper-util's graceful shutdown), then wait for
//! background writes of composites (`Compositor::flush`).

mod assets;
mod auth;
mod body;
mod carousel;
mod compositor;
mod conditional;
mod configurations;
mod constraints;
mod error;
mod files;
mod guard;
mod jobs;
mod layers;
mod openapi;
mod ops;
mod origin;
mod page;
mod plp;
mod server;
mod urls;
mod webhooks;
mod worker;

pub use error::ApiError;

use crate::app::App;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::HeaderName;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// The request id header: kept from the client when given, else a UUID;
/// on every response and in every log line of the request.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

fn openapi_operation() -> utoipa::openapi::path::Operation {
    utoipa::openapi::path::OperationBuilder::new()
        .summary(Some("This OpenAPI document"))
        .tag("meta")
        .response(
            "200",
            utoipa::openapi::ResponseBuilder::new()
                .description("OpenAPI 3.1 JSON")
                .build(),
        )
        .build()
}

/// Every route, with the OpenAPI document collected from them.
pub fn routes(app: &Arc<App>) -> (Router<Arc<App>>, utoipa::openapi::OpenApi) {
    let _ = app;
    let mut api = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(plp::page))
        .routes(routes!(compositor::image));
    for (alias, _) in compositor::IMAGE_ALIASES {
        api = api.route(alias, get(compositor::image));
    }
    api.routes(routes!(ops::compositor_health))
        .routes(routes!(urls::create))
        .routes(routes!(carousel::api))
        .routes(routes!(carousel::embed))
        .routes(routes!(carousel::spin))
        .routes(routes!(layers::list, layers::create))
        .routes(routes!(layers::latest))
        .routes(routes!(layers::get))
        .routes(routes!(ops::layers_health))
        .routes(routes!(files::upload))
        .routes(routes!(files::get))
        .routes(routes!(files::content))
        .routes(routes!(ops::files_health))
        .routes(routes!(configurations::create, configurations::list))
        .routes(routes!(configurations::get))
        .routes(routes!(ops::configurations_health))
        .routes(routes!(assets::list))
        .routes(routes!(assets::schema))
        .routes(routes!(assets::get, assets::put))
        .routes(routes!(ops::assets_health))
        .routes(routes!(jobs::list, jobs::create))
        .routes(routes!(jobs::get))
        .routes(routes!(jobs::cancel))
        .routes(routes!(jobs::tasks))
        .routes(routes!(jobs::task))
        .routes(routes!(jobs::runs))
        .routes(routes!(jobs::run))
        .routes(routes!(ops::jobs_health))
        .routes(routes!(worker::claim))
        .routes(routes!(worker::heartbeat))
        .routes(routes!(worker::result))
        .routes(routes!(worker::failure))
        .routes(routes!(webhooks::create, webhooks::list))
        .routes(routes!(webhooks::get, webhooks::update, webhooks::delete))
        .routes(routes!(webhooks::restore))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(ops::webhooks_health))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .split_for_parts()
}

/// Every route of the service, ready to serve.
pub fn router(app: Arc<App>) -> Router {
    let timeout = Duration::from_secs(app.settings().http.request_timeout_secs);
    let (api, mut doc) = routes(&app);
    let spec_route =
        utoipa::openapi::path::PathItem::new(utoipa::openapi::HttpMethod::Get, openapi_operation());
    doc.paths
        .paths
        .insert("/api/openapi.json".into(), spec_route);
    let doc = Arc::new(constraints::refine(
        serde_json::to_value(&doc).unwrap_or_default(),
        &app.settings(),
    ));
    api.route(
        "/api/openapi.json",
        get(move || openapi::document(Arc::clone(&doc))),
    )
    .route_layer(axum::middleware::from_fn(ops::track))
    .fallback(not_found)
    .layer(axum::middleware::from_fn_with_state(
        Arc::clone(&app),
        guard::guard,
    ))
    .layer(DefaultBodyLimit::max(app.settings().http.max_upload_bytes))
    .layer(axum::middleware::from_fn(
        move |req: Request, next: Next| deadline(timeout, req, next),
    ))
    // A panic answers the fixed 500 (through the boundary) instead of a
    // dropped connection.
    .layer(tower_http::catch_panic::CatchPanicLayer::new())
    .layer(axum::middleware::from_fn(error::boundary))
    // Every log line of a request carries its id; the response echoes it.
    // Failures are logged once, by the error boundary, at the level their
    // kind deserves (an expected 503 is a warning, not an error).
    .layer(
        TraceLayer::new_for_http()
            .make_span_with(|req: &Request| {
                let id = req
                    .headers()
                    .get(REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                tracing::info_span!("request", method = %req.method(), uri = %req.uri().path(), request_id = %id)
            })
            .on_failure(()),
    )
    .layer(PropagateRequestIdLayer::new(REQUEST_ID))
    .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
    .with_state(app)
}

/// The whole-request deadline, answered like every other error: JSON body,
/// `Retry-After`, `no-store`. (The miss-wait budget is shorter, so a slow
/// render normally answers its own 503 before this fires.)
async fn deadline(limit: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => ApiError(crate::error::Error::unavailable(format!(
            "the request took longer than {limit:?}"
        )))
        .into_response(),
    }
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError(crate::error::Error::NotFound(format!(
        "no route for {}",
        uri.path()
    )))
}

/// The routes of `http.ops_listen`: `/metrics`, `/healthz` and `/readyz`,
/// with details for anyone who can reach the address.
pub fn ops_router(app: Arc<App>) -> Router {
    Router::new()
        .route("/metrics", get(ops::metrics))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .fallback(not_found)
        .layer(axum::Extension(ops::OpsListener))
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(axum::middleware::from_fn(error::boundary))
        .with_state(app)
}

/// Serves a worker process's `/metrics` (its render counters and the
/// queue depth) and `/healthz` on `listener` until `shutdown` resolves.
///
/// # Errors
/// I/O errors of the listener.
pub async fn serve_worker_ops(
    listener: tokio::net::TcpListener,
    jobs: Option<Arc<crate::jobs::Jobs>>,
    handle: metrics_exporter_prometheus::PrometheusHandle,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = Router::new()
        .route(
            "/metrics",
            get(move || {
                let (jobs, handle) = (jobs.clone(), handle.clone());
                async move {
                    if let Some(jobs) = &jobs {
                        jobs.record_queue_depth().await;
                    }
                    (
                        [(axum::http::header::CONTENT_TYPE, ops::PROMETHEUS_TEXT)],
                        handle.render(),
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }));
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serves [`ops_router`] on `listener` until `shutdown` resolves.
///
/// # Errors
/// I/O errors of the listener.
pub async fn serve_ops(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let edge = server::run(
        listener,
        ops_router(Arc::clone(&app)),
        &app.settings().http,
        1,
        shutdown,
    )
    .await?;
    edge.close().await;
    Ok(())
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains
/// (see [`server`] for the connection limits).
///
/// # Errors
/// I/O errors of the listener.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = router(Arc::clone(&app));
    let threads = app.settings().http.serving_threads();
    let edge = server::run(listener, router, &app.settings().http, threads, shutdown).await?;
    app.shutdown().await;
    edge.close().await;
    Ok(())
}
