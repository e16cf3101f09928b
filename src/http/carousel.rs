//! Carousels: every view of one configuration.
//!
//! - `GET /api/carousel?assetId&configuration[&widths][&format]`: the
//!   per-view image URLs of the asset's still views (those not on its
//!   turntable), each with a `srcset` (pinned to the live definition and
//!   signed when keys are configured, so they can be put in a page as
//!   they are).
//! - `GET /embed/carousel?…`: a small self-contained page for an iframe on
//!   a product page: one slide per view, arrows, keyboard and swipe, lazy
//!   images with `srcset`. The carousel data is inlined, so the page makes
//!   no API call of its own.
//! - `GET /embed/spin?…`: the same for the turntable's views (every view
//!   when the asset marks none): a 360° spin turned by dragging, swiping or
//!   the arrow keys, the frame shown and its neighbours loaded first.

use super::auth::{Caller, Reader};
use super::error::ApiError;
use crate::app::App;
use crate::app::image::{pinned_url, query_of};
use crate::app::params::{Params, parse_uuid};
use crate::catalog::Asset;
use crate::error::Error;
use crate::keys::Configuration;
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};
use std::sync::Arc;
use utoipa::ToSchema;

/// `srcset` widths unless `widths` says otherwise (capped at the canvas).
pub const WIDTHS: [u32; 4] = [320, 640, 960, 1280];
/// Most widths one carousel may ask for.
pub(super) const MAX_WIDTHS: usize = 8;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Carousel {
    pub asset_id: String,
    pub name: String,
    /// The configuration with every attribute (defaults filled in).
    #[schema(value_type = Object)]
    pub configuration: Value,
    /// Width / height of the canvas, for the page's aspect ratio.
    pub aspect_ratio: f64,
    pub views: Vec<Slide>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Slide {
    pub name: String,
    pub label: String,
    #[schema(value_type = Object)]
    pub stage_configuration: Value,
    /// The image at the middle width.
    pub url: String,
    /// `<url> <width>w, …` for `<img srcset>`.
    pub srcset: String,
    pub widths: Vec<u32>,
}

/// The token a page carries into its links and image URLs: the query's
/// `bearer_token` when it is a public token (made to be read in pages).
/// Never a private one: with `signing.keys` the page's URLs are signed and
/// need none; without, the page is refused (403) rather than publish it.
///
/// # Errors
/// 403 for a private token without signing keys.
pub fn page_token(
    app: &App,
    caller: &Caller,
    query: Option<&str>,
) -> Result<Option<String>, Error> {
    match caller.kind {
        super::auth::CallerKind::Private if app.signer().can_sign() => Ok(None),
        super::auth::CallerKind::Private => Err(Error::Forbidden(
            "this page was asked for with a private token, which it would copy into every image URL; use a public token (layercake token create --public), or set signing.keys so the page's URLs are signed".into(),
        )),
        _ => Ok(token_param(query)),
    }
}

/// `bearer_token=<t>` of the request's query, to carry into the links and
/// image URLs of a page loaded with one (a signature does not cover it).
pub fn token_param(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == "bearer_token")
        .map(|(_, v)| {
            let mut s = form_urlencoded::Serializer::new(String::new());
            s.append_pair("bearer_token", &v);
            s.finish()
        })
}

/// `url` with `&<token>` appended when there is one.
pub fn with_token(url: String, token: Option<&str>) -> String {
    match token {
        Some(t) => format!("{url}&{t}"),
        None => url,
    }
}

/// The carousel of `configuration` (JSON) of `asset`.
///
/// # Errors
/// 422 naming `configuration` or `widths`.
pub fn carousel(
    app: &App,
    asset: &Asset,
    views: &[usize],
    configuration: &Value,
    widths: &[u32],
    format: &str,
    token: Option<&str>,
) -> Result<Carousel, Error> {
    let config = Configuration::parse(asset, configuration)
        .map_err(|e| Error::invalid("configuration", e.to_string()))?;
    let canonical: Value = serde_json::from_str(&config.canonical(asset))
        .map_err(|e| Error::Internal(format!("canonical configuration: {e}")))?;
    let mut widths: Vec<u32> = widths
        .iter()
        .copied()
        .filter(|w| *w >= 1)
        .map(|w| w.min(asset.width))
        .collect();
    widths.sort_unstable();
    widths.dedup();
    if widths.is_empty() {
        return Err(Error::invalid("widths", "at least one width"));
    }
    let buster = &app.settings().http.cache_buster;
    let views = views
        .iter()
        .map(|&k| {
            let v = &asset.views[k];
            let url = |w: u32| {
                let mut p = Map::new();
                p.insert("assetId".into(), asset.id.to_string().into());
                p.insert("configuration".into(), canonical.clone());
                p.insert("stageConfiguration".into(), Value::Object(v.stage.clone()));
                p.insert("width".into(), w.into());
                p.insert("format".into(), format.into());
                let url = pinned_url(&app.signer(), asset, buster, &query_of(&p)?);
                Ok::<_, Error>(with_token(url, token))
            };
            let srcset = widths
                .iter()
                .map(|w| Ok(format!("{} {w}w", url(*w)?)))
                .collect::<Result<Vec<_>, Error>>()?
                .join(", ");
            Ok(Slide {
                name: v.name.clone(),
                label: v.label.clone(),
                stage_configuration: Value::Object(v.stage.clone()),
                url: url(widths[widths.len() / 2])?,
                srcset,
                widths: widths.clone(),
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(Carousel {
        asset_id: asset.id.to_string(),
        name: asset.name.clone(),
        configuration: canonical,
        aspect_ratio: f64::from(asset.width) / f64::from(asset.height.max(1)),
        views,
    })
}

/// Every parameter the carousel and spin routes take; any other is refused
/// by name (`http.ignored_params` aside).
const PARAMS: [&str; 6] = [
    "assetId",
    "configuration",
    "widths",
    "format",
    "bearer_token",
    "orgId",
];

/// The asset, configuration, widths and format of a carousel query.
fn parse(
    app: &App,
    caller: &Caller,
    query: Option<&str>,
) -> Result<(Arc<Asset>, Value, Vec<u32>, String), Error> {
    let org = caller.org;
    let p = Params::parse(query, app.settings().http.max_query_bytes)?;
    p.only(&PARAMS, &app.settings().http.ignored_params)?;
    p.none_empty(&["format", "widths"])?;
    // A public token (whose page source anyone can read) gets the default
    // widths and format only: its URLs are signed, and a signature is the
    // permission to compose.
    if caller.kind == super::auth::CallerKind::Public {
        for name in ["widths", "format"] {
            if p.str(name).is_some() {
                return Err(Error::Forbidden(format!(
                    "{name}: a public token gets the default widths and format; ask with a private token"
                )));
            }
        }
    }
    let id = parse_uuid(
        "assetId",
        p.str("assetId")
            .ok_or_else(|| Error::invalid("assetId", "is required"))?,
    )?;
    let asset = app.assets().get(org, id)?;
    let configuration = p.json("configuration")?.unwrap_or(Value::Null);
    let widths = match p.str("widths") {
        None => WIDTHS.to_vec(),
        Some(s) => {
            let w = s
                .split(',')
                .map(|x| x.trim().parse::<u32>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| Error::invalid("widths", "comma-separated widths, e.g. 320,640"))?;
            if w.is_empty()
                || w.len() > MAX_WIDTHS
                || w.iter()
                    .any(|x| *x == 0 || *x > app.settings().http.max_dimension)
            {
                return Err(Error::invalid(
                    "widths",
                    format!(
                        "1 to {MAX_WIDTHS} widths, each 1 to {}",
                        app.settings().http.max_dimension
                    ),
                ));
            }
            w
        }
    };
    let format = p.str("format").unwrap_or("auto").to_string();
    if !matches!(
        format.as_str(),
        "auto" | "png" | "jpg" | "jpeg" | "webp" | "avif"
    ) {
        return Err(Error::invalid("format", "auto, png, jpg, webp or avif"));
    }
    Ok((asset, configuration, widths, format))
}

/// Every view's image URLs for one configuration.
#[utoipa::path(get, path = "/api/carousel", tag = "fast-compositor",
    params(
        ("assetId" = String, Query, description = "Asset id (UUID)."),
        ("configuration" = Option<String>, Query, description = "URL-encoded JSON; omitted attributes take their defaults."),
        ("widths" = Option<String>, Query, description = "srcset widths, e.g. 320,640,960 (default 320,640,960,1280, capped at the canvas)."),
        ("format" = Option<String>, Query, description = "auto (default: negotiated from Accept), png, jpg, webp, avif."),
    ),
    responses((status = 200, body = Carousel), (status = 404, description = "Unknown asset"), (status = 422, description = "Invalid parameter, named")))]
pub async fn api(
    State(app): State<Arc<App>>,
    Reader(caller): Reader,
    RawQuery(q): RawQuery,
) -> Result<Json<Carousel>, ApiError> {
    let (asset, config, widths, format) = parse(&app, &caller, q.as_deref())?;
    Ok(Json(carousel(
        &app,
        &asset,
        &asset.stills(),
        &config,
        &widths,
        &format,
        None,
    )?))
}

/// A self-contained carousel page for an iframe.
#[utoipa::path(get, path = "/embed/carousel", tag = "demo",
    params(
        ("assetId" = String, Query, description = "Asset id (UUID)."),
        ("configuration" = Option<String>, Query, description = "URL-encoded JSON."),
        ("widths" = Option<String>, Query, description = "srcset widths."),
        ("format" = Option<String>, Query, description = "auto (default), png, jpg, webp, avif."),
    ),
    responses((status = 200, description = "HTML", content_type = "text/html"), (status = 403, description = "Asked for with a private token and no signing keys (the page would publish the token)"), (status = 422, description = "Invalid parameter, named")))]
pub async fn embed(
    State(app): State<Arc<App>>,
    reader: Result<Reader, ApiError>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    page(&app, reader, &headers, q.as_deref(), Page::Carousel)
}

/// A self-contained 360° spin page for an iframe: the turntable's views.
#[utoipa::path(get, path = "/embed/spin", tag = "demo",
    params(
        ("assetId" = String, Query, description = "Asset id (UUID)."),
        ("configuration" = Option<String>, Query, description = "URL-encoded JSON."),
        ("widths" = Option<String>, Query, description = "srcset widths."),
        ("format" = Option<String>, Query, description = "auto (default), png, jpg, webp, avif."),
    ),
    responses((status = 200, description = "HTML", content_type = "text/html"), (status = 403, description = "Asked for with a private token and no signing keys (the page would publish the token)"), (status = 422, description = "Invalid parameter, named")))]
pub async fn spin(
    State(app): State<Arc<App>>,
    reader: Result<Reader, ApiError>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    page(&app, reader, &headers, q.as_deref(), Page::Spin)
}

#[derive(Clone, Copy)]
enum Page {
    Carousel,
    Spin,
}

/// A carousel or spin page; its errors as a page for a browser.
fn page(
    app: &App,
    reader: Result<Reader, ApiError>,
    headers: &HeaderMap,
    q: Option<&str>,
    kind: Page,
) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    match reader.and_then(|Reader(caller)| page_html(app, &caller, q, kind)) {
        Ok(html) => html.into_response(),
        Err(e) => super::error::for_page(e, accept),
    }
}

fn page_html(
    app: &App,
    caller: &Caller,
    q: Option<&str>,
    kind: Page,
) -> Result<Html<String>, ApiError> {
    let (asset, config, widths, format) = parse(app, caller, q)?;
    let token = page_token(app, caller, q)?;
    let (views, html) = match kind {
        Page::Carousel => (asset.stills(), EMBED),
        Page::Spin => (asset.turntable(), SPIN),
    };
    let c = carousel(
        app,
        &asset,
        &views,
        &config,
        &widths,
        &format,
        token.as_deref(),
    )?;
    // Inlined in a <script> element: no "<", ">" or "&" may appear in it
    // (JSON allows them escaped, and then no markup can end the element).
    let data = serde_json::to_string(&c)
        .map_err(|e| Error::Internal(format!("carousel JSON: {e}")))?
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    // The script, then the data, then the title: a name (in the title)
    // could spell a marker, the data cannot spell "<!--TITLE-->" ("<" is
    // escaped), and the script is ours.
    let page = html
        .replacen("/*PENDING*/", PENDING, 1)
        .replacen("/*DATA*/null", &data, 1)
        .replace("<!--TITLE-->", &super::plp::escape(&asset.name));
    Ok(Html(page))
}

const EMBED: &str = include_str!("carousel.html");
const SPIN: &str = include_str!("spin.html");
/// The placeholder-and-retry script of every page that shows images.
pub(super) const PENDING: &str = include_str!("pending.js");
