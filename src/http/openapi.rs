//! The OpenAPI document: `GET /api/openapi.json`.
//!
//! Paths come from the `#[utoipa::path]` attribute on each handler and are
//! collected by the same `OpenApiRouter` that routes requests (see
//! `http::router`), so a route cannot exist without its documentation; a
//! test checks every routed path against the document.

use crate::wire;
use axum::Json;
use std::sync::Arc;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "layercake",
        description = "Render cache and layered image compositor. The Layers, Fast Compositor, Jobs, Files, Configurations, Webhooks and Assets services follow the Threekit platform's contract; POST /api/jobs (batch renders), POST /api/jobs/{id}/cancel and GET /api/webhooks/{id}/deliveries are layercake's extensions. Errors are {\"error\": {\"code\", \"message\", \"requestId\"?}}: 400 malformed, 401 no or unknown token, 403 not allowed, 404 unknown id, 409 conflict, 413 too large, 415 a body that is not application/json (multipart/form-data only on POST /api/files and POST /api/configurations), 422 invalid, 429 over capacity, 500 internal, 502 renderer failed, 503 not ready or render still running past the wait budget (Retry-After); a 5xx message is a fixed sentence with the request id, its cause is in the server log (and a render's in its job run). Tokens: Authorization: Bearer <token> or ?bearer_token=. A private token may do everything its org may. A public token may only GET, only with an Origin (else Referer) it lists, and only what a storefront shows: images, carousels, the listing page, layers, assets, one saved configuration by id or shortId, and the bytes of files that are layer images; every other route answers it 403. Without any token the server is in development mode: every request acts for the default org, and only with a loopback Host and Origin. Webhook addresses must be public (loopback, private, link-local, multicast and reserved addresses are refused when saved and when delivered); deliveries are POSTs of {id, topic, orgId, webhookId, createdAt, data} signed with X-Layercake-Signature: sha256=<hex HMAC-SHA256 of the body with the webhook's secret>; topics job.stopped and layer.created."
    ),
    tags(
        (name = "fast-compositor", description = "Images of configurations"),
        (name = "layers", description = "Rendered and registered layer images"),
        (name = "files", description = "Uploaded and rendered files"),
        (name = "configurations", description = "Saved configurations"),
        (name = "assets", description = "Asset definitions and versions"),
        (name = "jobs", description = "The render queue: jobs, tasks (one per layer key), runs (attempts)"),
        (name = "webhooks", description = "Signed event deliveries with retries"),
        (name = "demo", description = "The product-listing demo page"),
        (name = "meta", description = "This document"),
        (name = "ops", description = "Metrics, liveness and readiness"),
    ),
    components(schemas(wire::ErrorBody, wire::ErrorDetail))
)]
pub struct ApiDoc;

/// This document (its own path is added by `http::router`, the declared
/// constraints by `http::constraints`).
pub async fn document(doc: Arc<serde_json::Value>) -> Json<serde_json::Value> {
    Json((*doc).clone())
}
