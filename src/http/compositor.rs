//! `GET /api/fast-compositor`: one configuration's image, the HTTP side.
//!
//! The request is checked and resolved by the application layer
//! (`app::image::prepare`: signature first, then every parameter, each
//! failure naming it). The composite key, and so the `ETag`, is known
//! before any work: a revalidation (`If-None-Match`) is answered 304
//! without looking at a cache, let alone rendering.

use super::auth::{Caller, CallerKind, ImageCaller};
use super::error::ApiError;
use crate::app::App;
use crate::app::image::{self, Asker, CACHE_HEADER};
use crate::error::Error;
use crate::pipeline::Source;
use crate::wire::ErrorBody;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The image of one configuration: layers found or rendered, stacked,
/// fitted and encoded; then served from memory.
#[utoipa::path(get, path = "/api/fast-compositor", tag = "fast-compositor",
    params(
        ("assetId" = String, Query, description = "Asset id (UUID). Optional with configurationId."),
        ("configuration" = Option<String>, Query, description = "URL-encoded JSON of attribute values; omitted attributes take their defaults."),
        ("configurationId" = Option<String>, Query, description = "A saved configuration's id or shortId, instead of configuration (layercake extension)."),
        ("stageId" = Option<String>, Query, description = "Checked for form (UUID) only."),
        ("view" = Option<String>, Query, description = "The view by name (e.g. side), instead of stageConfiguration; an unknown name is a 422 listing the views. Default: the first view."),
        ("stageConfiguration" = Option<String>, Query, description = "URL-encoded JSON selecting the view, e.g. {\"Camera\":2}; default: the first view. Not with view."),
        ("preset" = Option<String>, Query, description = "A named size from sizes.presets (e.g. plp-tile): stands for the width, height, imageFitMode, format and quality it sets, which the request may then not give."),
        ("width" = Option<u32>, Query, description = "Output width, at most http.max_dimension. On a public token's unsigned URL it rounds up to the next rung of sizes.ladder (or to the image's own width); signed URLs and private tokens get it exactly."),
        ("height" = Option<u32>, Query, description = "Output height, at most http.max_dimension; rounded as width is."),
        ("imageFitMode" = Option<String>, Query, description = "contain (default), cover, fitWidth, fitHeight."),
        ("cropX" = Option<u32>, Query, description = "Crop box in canvas pixels, applied before resizing."),
        ("cropY" = Option<u32>, Query), ("cropWidth" = Option<u32>, Query), ("cropHeight" = Option<u32>, Query),
        ("format" = Option<String>, Query, description = "png (default), jpg, webp, avif, or auto: AVIF or WebP when Accept names them, else PNG (JPEG only when preferred and the image is opaque); responses Vary on Accept."),
        ("quality" = Option<u8>, Query, description = "1-100, for jpg, webp and avif; on a public token's unsigned URL rounded up to a multiple of sizes.quality_step (crop boxes likewise grow to a grid of sizes.crop_step pixels)."),
        ("cacheKey" = Option<String>, Query, description = "Ignored (a cache buster for clients)."),
        ("display" = Option<String>, Query, description = "Ignored."),
        ("skipResolveTags" = Option<String>, Query, description = "Ignored (the Threekit client sends it)."),
        ("cacheScope" = Option<String>, Query, description = "Ignored (the Threekit client sends it)."),
        ("cacheMaxAge" = Option<String>, Query, description = "Ignored (the Threekit client sends it)."),
        ("orgId" = Option<String>, Query, description = "Must be the token's org when given (ignored in development mode)."),
        ("bearer_token" = Option<String>, Query, description = "Token, if not in the Authorization header."),
        ("v" = Option<String>, Query, description = "`<version>.<epoch>` of the asset definition a signed URL was made for: when it is the live one, the answer is cacheable for a year (immutable)."),
        ("signature" = Option<String>, Query, description = "HMAC-SHA256 of the canonical URL (see `layercake url`); required when signing.required."),
        ("If-None-Match" = Option<String>, Header, description = "The ETag of a previous answer: 304 without any work."),
    ),
    responses(
        (status = 200, description = "The image (Content-Type per format; ETag; x-layercake-cache: hit-memory, hit-store or miss)"),
        (status = 304, description = "Not modified"),
        (status = 400, description = "Malformed JSON or number", body = ErrorBody),
        (status = 401, description = "No token and no valid signature", body = ErrorBody),
        (status = 403, description = "Signature invalid, or missing where required; public token from another origin", body = ErrorBody),
        (status = 404, description = "Unknown asset or saved configuration", body = ErrorBody),
        (status = 413, description = "Query string too long", body = ErrorBody),
        (status = 422, description = "A parameter the route does not take (named, with the closest one it does; http.ignored_params lists those it ignores), malformed UUID, unknown attribute, option or view, value or size out of range", body = ErrorBody),
        (status = 429, description = "Over capacity; Retry-After", body = ErrorBody),
        (status = 502, description = "A layer could not be rendered", body = ErrorBody),
        (status = 503, description = "Still rendering past the wait budget; Retry-After", body = ErrorBody),
    ))]
pub async fn image(
    State(app): State<Arc<App>>,
    ImageCaller(caller): ImageCaller,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let (org, asker) = who(caller.as_ref());
    let image::Prepared { request, cache } =
        image::prepare(&app, org, asker, query.as_deref(), accept).await?;
    let etag = format!("\"{}\"", request.key().hex());
    if super::conditional::none_match(&headers, &etag) {
        let headers = [
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache.control),
            (header::VARY, cache.vary.to_string()),
        ];
        return Ok((StatusCode::NOT_MODIFIED, headers).into_response());
    }
    if only_if_cached(&headers) && !app.compositor().is_cached(&request).await? {
        // Not a failure (prefetch asks this in bulk): not logged.
        return Err(Error::NotCached("not cached (Cache-Control: only-if-cached)".into()).into());
    }
    let img = app.compositor().image(request).await?;
    let (etag, cache) = if img.source == Source::Fallback {
        // A stand-in, not the representation the key names: its own ETag,
        // and no cache keeps it (the next request gets the AVIF).
        let etag = format!("\"{}-{}\"", img.key.hex(), img.format.name());
        (etag, cache.stand_in())
    } else {
        (etag, cache)
    };
    tracing::debug!(key = %img.key, source = img.source.name(), bytes = img.bytes.len(), "composite served");
    let headers = [
        (header::CONTENT_TYPE, img.format.content_type().to_string()),
        (header::ETAG, etag),
        (header::CACHE_CONTROL, cache.control),
        (header::VARY, cache.vary.to_string()),
    ];
    let mut res = (headers, img.bytes).into_response();
    res.headers_mut()
        .insert(CACHE_HEADER, HeaderValue::from_static(img.source.name()));
    Ok(res)
}

/// The org and kind of the caller, as the application layer names them.
fn who(caller: Option<&Caller>) -> (Option<uuid::Uuid>, Asker) {
    let Some(c) = caller else {
        return (None, Asker::Anonymous);
    };
    let kind = match c.kind {
        CallerKind::Development => Asker::Development,
        CallerKind::Private => Asker::Private,
        CallerKind::Public => Asker::Public,
    };
    (Some(c.org), kind)
}

/// RFC 9111 `only-if-cached`: answer from the caches or 504, never
/// compose (how `layercake prefetch` counts what is already done).
fn only_if_cached(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| d.trim().eq_ignore_ascii_case("only-if-cached"))
}

/// Other paths of [`image`], with why: the router serves them with the
/// same handler, and `http::constraints` documents each as a copy of the
/// route's operation.
pub const IMAGE_ALIASES: [(&str, &str); 2] = [
    (
        "/api/fast-compositor/",
        "With a trailing slash, as some clients call it.",
    ),
    (
        "/api/fast-compositor/undefined",
        "As the published client's requestUrl builds it: @threekit/rest-api 0.2.2 joins its route prefix with an undefined path, so the URLs it hands out end in /undefined.",
    ),
];
