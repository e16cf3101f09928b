//! `GET /api/fast-compositor`: one configuration's image.
//!
//! The parameters are checked in the order a client would fix them (asset,
//! configuration, view, size, crop, format), each failure naming its
//! parameter. The composite key, and so the `ETag`, is known before any
//! work: a revalidation (`If-None-Match`) is answered 304 without looking
//! at a cache, let alone rendering.

use super::auth::{CallerKind, ImageCaller};
use super::error::ApiError;
use super::params::Params;
use crate::app::App;
use crate::compose::{self, Fit, Format, Output, Rect};
use crate::error::Error;
use crate::keys::{self, Configuration};
use crate::pipeline::ImageRequest;
use crate::service::SavedConfiguration;
use crate::signing::Verdict;
use crate::sizes::Exactness;
use crate::wire::ErrorBody;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use uuid::Uuid;

/// Response header telling where the bytes came from: `hit-memory`,
/// `hit-store` or `miss`.
pub const CACHE_HEADER: &str = "x-layercake-cache";

/// The path image URLs are signed for (with or without a trailing slash).
pub const PATH: &str = "/api/fast-compositor";

/// What a response may vary on: `format=auto` picks the format from `Accept`.
const VARY: &str = "Accept";

/// The image URL (path and query) of `query`, pinned (`v`) to `asset`'s
/// definition and the pipeline, and signed when keys are configured: what
/// `layercake url` and `POST /api/urls` hand out.
pub fn pinned_url(
    signer: &crate::signing::Signer,
    asset: &crate::catalog::Asset,
    buster: &str,
    query: &str,
) -> String {
    signer.signed_url(PATH, &format!("{query}&v={}", version_pin(asset, buster)))
}

/// The `v` parameter of URLs pinned to an asset definition and pipeline:
/// `<version>.<layer epoch>`, then `.<http.cache_buster>` when set.
pub fn version_pin(asset: &crate::catalog::Asset, buster: &str) -> String {
    if buster.is_empty() {
        format!("{}.{}", asset.version, asset.epoch)
    } else {
        format!("{}.{}.{buster}", asset.version, asset.epoch)
    }
}

/// The image of one configuration: layers found or rendered, stacked,
/// fitted and encoded; then served from memory.
#[utoipa::path(get, path = "/api/fast-compositor", tag = "fast-compositor",
    params(
        ("assetId" = String, Query, description = "Asset id (UUID). Optional with configurationId."),
        ("configuration" = Option<String>, Query, description = "URL-encoded JSON of attribute values; omitted attributes take their defaults."),
        ("configurationId" = Option<String>, Query, description = "A saved configuration's id or shortId, instead of configuration (layercake extension)."),
        ("stageId" = Option<String>, Query, description = "Checked for form (UUID) only."),
        ("stageConfiguration" = Option<String>, Query, description = "URL-encoded JSON selecting the view, e.g. {\"Camera\":2}; default: the first view."),
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
        (status = 422, description = "Malformed UUID, unknown attribute or option, value or size out of range", body = ErrorBody),
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
    // Before any work: a bad signature costs one HMAC.
    let verdict = app.signer().verify(PATH, query.as_deref());
    match verdict {
        Verdict::Invalid => {
            return Err(Error::Forbidden(
                "signature: does not match this URL (changed after signing, or signed with a key this server does not have)".into(),
            )
            .into());
        }
        Verdict::Unsigned if app.settings().signing.required => {
            return Err(Error::Forbidden(
                "signature: this server serves signed image URLs only (see `layercake url` and POST /api/urls)".into(),
            )
            .into());
        }
        _ => {}
    }
    let params = Params::parse(query.as_deref(), app.settings().http.max_query_bytes)?;
    let org = match &caller {
        Some(c) => c.org,
        // No token: a signed URL speaks for the asset's owner.
        None if verdict == Verdict::Valid => params
            .str("assetId")
            .and_then(|a| Uuid::parse_str(a).ok())
            .and_then(|id| app.catalog().get(&id))
            .map(|a| a.org)
            .ok_or_else(|| {
                Error::invalid(
                    "assetId",
                    "a signed URL without a token must name its asset",
                )
            })?,
        None => {
            return Err(Error::Unauthorized(
                "a token or a signed URL is needed: Authorization: Bearer <token>, bearer_token=<token>, or signature=".into(),
            )
            .into());
        }
    };
    let saved = match params.str("configurationId") {
        Some(key) => Some(app.configurations().get(org, key).await?),
        None => None,
    };
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // A public token's URL is in every shopper's browser, where anyone can
    // change it: its sizes round to the ladder (crate::sizes).
    let exactness = match caller.as_ref().map(|c| c.kind) {
        Some(CallerKind::Public) if verdict != Verdict::Valid => Exactness::Rounded,
        _ => Exactness::Exact,
    };
    let req = image_request(
        &app,
        org,
        &params,
        saved.as_ref(),
        accept.as_deref(),
        exactness,
    )?;
    let etag = format!("\"{}\"", req.key().hex());
    // A signed URL pinned to the live definition names one image forever.
    let http = &app.settings().http;
    let pinned = verdict == Verdict::Valid
        && params.str("v") == Some(version_pin(&req.asset, &http.cache_buster).as_str());
    // Who may a shared cache hand this answer to? Anyone, for a signed URL
    // or in development mode; nobody else, for a private token's answer;
    // the same origin, for a public token's.
    let (scope, vary) = match caller.as_ref().map(|c| c.kind) {
        _ if verdict == Verdict::Valid => ("public", VARY),
        None | Some(CallerKind::Development) => ("public", VARY),
        Some(CallerKind::Private) => ("private", VARY),
        Some(CallerKind::Public) => ("public", "Accept, Origin"),
    };
    let cache_control = if pinned {
        "public, max-age=31536000, immutable".to_string()
    } else {
        format!(
            "{scope}, max-age={}, stale-while-revalidate={}",
            http.max_age_secs, http.stale_while_revalidate_secs
        )
    };
    if super::conditional::none_match(&headers, &etag) {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [
                (header::ETAG, etag),
                (header::CACHE_CONTROL, cache_control),
                (header::VARY, vary.to_string()),
            ],
        )
            .into_response());
    }
    // RFC 9111 `only-if-cached`: answer from the caches or 504, never
    // compose (how `layercake prefetch` counts what is already done).
    let only_if_cached = headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| d.trim().eq_ignore_ascii_case("only-if-cached"));
    if only_if_cached && !app.compositor().is_cached(&req).await? {
        // Not a failure (prefetch asks this in bulk): not logged.
        return Err(Error::NotCached("not cached (Cache-Control: only-if-cached)".into()).into());
    }
    let img = app.compositor().image(req).await?;
    let (etag, cache_control) = if img.source == crate::pipeline::Source::Fallback {
        // A stand-in, not the representation the key names: its own ETag,
        // and no cache keeps it (the next request gets the AVIF).
        (
            format!("\"{}-{}\"", img.key.hex(), img.format.name()),
            "no-store".to_string(),
        )
    } else {
        (etag, cache_control)
    };
    tracing::debug!(key = %img.key, source = img.source.name(), bytes = img.bytes.len(), "composite served");
    let mut res = (
        [
            (header::CONTENT_TYPE, img.format.content_type().to_string()),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache_control),
            (header::VARY, vary.to_string()),
        ],
        img.bytes,
    )
        .into_response();
    res.headers_mut()
        .insert(CACHE_HEADER, HeaderValue::from_static(img.source.name()));
    Ok(res)
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

/// The request of an image URL's query (without a saved configuration or
/// an `Accept` header), as `POST /api/urls` and `layercake prefetch` build it.
///
/// # Errors
/// 400/404/422 naming the parameter at fault.
pub fn image_request_for(app: &App, org: Uuid, query: &str) -> Result<ImageRequest, Error> {
    let params = Params::parse(Some(query), app.settings().http.max_query_bytes)?;
    if params.str("configurationId").is_some() {
        return Err(Error::invalid(
            "configurationId",
            "give the configuration itself",
        ));
    }
    image_request(app, org, &params, None, None, Exactness::Exact)
}

/// Checks every parameter and builds the request.
///
/// # Errors
/// 400/404/422 naming the parameter at fault.
pub fn image_request(
    app: &App,
    org: Uuid,
    p: &Params,
    saved: Option<&SavedConfiguration>,
    accept: Option<&str>,
    exactness: Exactness,
) -> Result<ImageRequest, Error> {
    p.none_empty(&[
        "format",
        "imageFitMode",
        "preset",
        "configurationId",
        "orgId",
        "v",
    ])?;
    let id = match (p.str("assetId"), saved) {
        (Some(a), None) => super::params::parse_uuid("assetId", a)?,
        (None, Some(c)) => c.product_id,
        (Some(a), Some(c)) => {
            let id = super::params::parse_uuid("assetId", a)?;
            if id != c.product_id {
                return Err(Error::invalid(
                    "configurationId",
                    format!("is a configuration of {}, not of asset {id}", c.product_id),
                ));
            }
            id
        }
        (None, None) => return Err(Error::invalid("assetId", "is required")),
    };
    let asset = app.assets().get(org, id)?;
    let config_json = match saved {
        Some(c) if p.str("configuration").is_some() => {
            return Err(Error::invalid(
                "configuration",
                format!(
                    "give configuration or configurationId, not both ({})",
                    c.short_id
                ),
            ));
        }
        Some(c) => c.variant.clone(),
        None => p.json("configuration")?.unwrap_or(serde_json::Value::Null),
    };
    let config = Configuration::parse(&asset, &config_json)
        .map_err(|e| Error::invalid("configuration", e.to_string()))?;
    // layercake has no separate stage assets: a stageId is checked for form
    // only, and the view comes from stageConfiguration.
    if let Some(s) = p.str("stageId") {
        super::params::parse_uuid("stageId", s)?;
    }
    let stage = p
        .json("stageConfiguration")?
        .unwrap_or(serde_json::Value::Null);
    let view = keys::select_view(&asset, &stage)
        .map_err(|e| Error::invalid("stageConfiguration", e.to_string()))?;

    let max = app.settings().http.max_dimension;
    let preset = p.str("preset").map(|n| app.sizes().preset(n)).transpose()?;
    if let Some(pr) = preset
        && let Some(both) = pr.sets().find(|name| p.str(name).is_some())
    {
        return Err(Error::invalid(
            "preset",
            format!("sets {both}: give the preset or {both}, not both"),
        ));
    }
    let rounded = exactness == Exactness::Rounded;
    let mut crop = crop(p, (asset.width, asset.height))?;
    if rounded {
        crop = crop.map(|c| app.sizes().crop(c, (asset.width, asset.height)));
    }
    let region = crop.map_or((asset.width, asset.height), |c| (c.width, c.height));
    let dimension = |name: &str| -> Result<Option<u32>, Error> {
        match p.u32(name)? {
            Some(v) if v == 0 || v > max => {
                Err(Error::invalid(name, format!("{v} is outside 1..={max}")))
            }
            v => Ok(v),
        }
    };
    // As asked (or as the preset says), then as served.
    let exact = (
        preset
            .and_then(|pr| pr.width)
            .map_or_else(|| dimension("width"), |w| Ok(Some(w)))?,
        preset
            .and_then(|pr| pr.height)
            .map_or_else(|| dimension("height"), |h| Ok(Some(h)))?,
    );
    let round = |v: Option<u32>, given: bool, native: u32| match v {
        Some(v) if rounded && given => Some(app.sizes().side(v, native)),
        v => v,
    };
    let (width, height) = (
        round(exact.0, p.str("width").is_some(), region.0),
        round(exact.1, p.str("height").is_some(), region.1),
    );
    let format_param = preset
        .and_then(|pr| pr.format.as_deref())
        .or_else(|| p.str("format"));
    let format = match format_param.unwrap_or(&app.settings().compose.default_format) {
        "auto" => super::accept::negotiate(accept),
        f => Format::parse(f).ok_or_else(|| {
            Error::invalid(
                "format",
                format!("\"{f}\": use png, jpg, webp, avif or auto"),
            )
        })?,
    };
    let fit = match (preset.and_then(|pr| pr.fit), p.str("imageFitMode")) {
        (Some(f), _) => f,
        (None, None) => Fit::Contain,
        (None, Some(f)) => Fit::parse(f).ok_or_else(|| {
            Error::invalid(
                "imageFitMode",
                format!("\"{f}\": use cover, contain, fitWidth or fitHeight"),
            )
        })?,
    };
    let quality = match (preset.and_then(|pr| pr.quality), p.u32("quality")?) {
        (Some(q), _) => Some(q),
        (None, Some(q)) if !(1..=100).contains(&q) => {
            return Err(Error::invalid("quality", format!("{q} is outside 1..=100")));
        }
        (None, Some(q)) if rounded => Some(app.sizes().quality(q as u8)),
        (None, q) => q.map(|q| q as u8),
    };
    let output = |width, height| {
        Output {
            width,
            height,
            fit,
            crop,
            format,
            quality,
        }
        .normalize(
            (asset.width, asset.height),
            app.settings().compose.default_quality(format),
        )
    };
    let mut out = output(width, height);
    if (width, height) != exact && check_output_size(region, &out, max, None).is_err() {
        // Rounding up pushed the derived side past http.max_dimension: the
        // size asked for, as is (a narrow band below the limit).
        out = output(exact.0, exact.1);
    }
    let output = out;
    // Name the preset only when every side given came from it.
    let from_preset = preset.is_some_and(|pr| pr.width.is_some() || pr.height.is_some())
        && p.str("width").is_none()
        && p.str("height").is_none();
    check_output_size(region, &output, max, from_preset.then_some("preset"))?;
    Ok(ImageRequest::new(
        asset,
        config,
        view,
        output,
        &app.settings().http.cache_buster,
    ))
}

/// Both output sides, given or derived from the aspect ratio of `region`,
/// are within `max`: the side that was not given must respect the same
/// limit as the one that was. The error names `param`, or else the side.
///
/// # Errors
/// 422 when a side is over the limit.
pub fn check_output_size(
    region: (u32, u32),
    out: &Output,
    max: u32,
    param: Option<&str>,
) -> Result<(), Error> {
    let g = compose::geometry(region, out.width, out.height, out.fit);
    for (side, v) in [("width", g.width), ("height", g.height)] {
        if v > max {
            return Err(Error::invalid(
                param.unwrap_or(side),
                format!(
                    "the output would be {}x{}; each side is limited to {max}",
                    g.width, g.height
                ),
            ));
        }
    }
    Ok(())
}

/// `cropX`, `cropY`, `cropWidth`, `cropHeight` in canvas pixels; any subset
/// may be given (the box then extends to the canvas edge).
fn crop(p: &Params, canvas: (u32, u32)) -> Result<Option<Rect>, Error> {
    let (x, y, w, h) = (
        p.u32("cropX")?,
        p.u32("cropY")?,
        p.u32("cropWidth")?,
        p.u32("cropHeight")?,
    );
    if x.is_none() && y.is_none() && w.is_none() && h.is_none() {
        return Ok(None);
    }
    let (x, y) = (x.unwrap_or(0), y.unwrap_or(0));
    if x >= canvas.0 || y >= canvas.1 {
        return Err(Error::invalid(
            if x >= canvas.0 { "cropX" } else { "cropY" },
            format!("({x},{y}) is outside the {}x{} canvas", canvas.0, canvas.1),
        ));
    }
    let w = w.unwrap_or(canvas.0 - x);
    let h = h.unwrap_or(canvas.1 - y);
    if w == 0 || u64::from(x) + u64::from(w) > u64::from(canvas.0) {
        return Err(Error::invalid(
            "cropWidth",
            format!("{w} at x={x} does not fit the canvas width {}", canvas.0),
        ));
    }
    if h == 0 || u64::from(y) + u64::from(h) > u64::from(canvas.1) {
        return Err(Error::invalid(
            "cropHeight",
            format!("{h} at y={y} does not fit the canvas height {}", canvas.1),
        ));
    }
    Ok(Some(Rect {
        x,
        y,
        width: w,
        height: h,
    }))
}
