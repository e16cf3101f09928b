//! The HTTP edge: axum routes, one file per resource.
//!
//! - `compositor`: `/api/fast-compositor` (the image path).
//! - `assets`: `/api/assets` (the catalogue).
//! - `plp`: `/`, the demo product-listing page.
//! - `params`, `page`: query parsing and pagination shared by the routes.
//! - `error`: the only place where errors become status codes.
//!
//! [`serve`] takes its listener and its shutdown signal as arguments: the
//! binary binds the configured address and passes SIGTERM/Ctrl-C, tests
//! bind port 0 and pass whatever they like. Shutdown order: stop accepting,
//! let in-flight requests finish (axum's graceful shutdown), then wait for
//! background writes of composites (`Compositor::flush`).

mod assets;
mod compositor;
mod error;
mod page;
mod params;
mod plp;

pub use compositor::CACHE_HEADER;
pub use error::ApiError;

use crate::app::App;
use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tower_http::trace::TraceLayer;

/// Every route of the service.
pub fn router(app: Arc<App>) -> Router {
    let timeout = Duration::from_secs(app.settings.http.request_timeout_secs);
    Router::new()
        .route("/", get(plp::page))
        .route("/api/fast-compositor", get(compositor::image))
        .route("/api/fast-compositor/", get(compositor::image))
        .route("/api/fast-compositor/healthcheck", get(compositor::healthcheck))
        .route("/api/assets", get(assets::list))
        .route("/api/assets/healthcheck", get(assets::healthcheck))
        .route("/api/assets/{id}", get(assets::get))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(move |req: Request, next: Next| deadline(timeout, req, next)))
        .layer(TraceLayer::new_for_http())
        .with_state(app)
}

/// The whole-request deadline, answered like every other error: JSON body,
/// `Retry-After`, `no-store`. (The miss-wait budget is shorter, so a slow
/// render normally answers its own 503 before this fires.)
async fn deadline(limit: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => ApiError(crate::error::Error::unavailable(format!("the request took longer than {limit:?}"))).into_response(),
    }
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError(crate::error::Error::NotFound(format!("no route for {}", uri.path())))
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains.
///
/// # Errors
/// I/O errors of the listener.
pub async fn serve(listener: tokio::net::TcpListener, app: Arc<App>, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    let router = router(Arc::clone(&app));
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await?;
    app.compositor.flush().await;
    Ok(())
}
