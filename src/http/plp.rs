//! `GET /`: a product-listing page of the catalogue, rendered on the
//! server as plain HTML with a few lines of JS, the way a storefront's
//! listing would use layercake:
//!
//! - a grid of product tiles, each an `<img>` with `srcset`/`sizes` (the
//!   browser picks the width) pointing at the fast compositor;
//! - colour swatches under each tile (the first option attribute whose
//!   options carry a `color`) that switch the tile's image;
//! - each tile links to its carousel (`/embed/carousel`), the still
//!   views, and an asset with a turntable to its 360° spin (`/embed/spin`);
//! - an image still rendering shows a placeholder and is asked again.
//!
//! Per asset, the other enumerable attributes span a grid of up to
//! [`TILES_PER_ASSET`] tiles and the rest cycle through their options, so
//! every option appears somewhere on the page. URLs are pinned to the live
//! definition and signed when keys are configured.

use super::auth::{Caller, Reader};
use super::carousel::{page_token, with_token};
use super::error::ApiError;
use crate::app::App;
use crate::app::image::{pinned_url, query_of};
use crate::app::params::Params;
use crate::catalog::{Asset, AttrKind, Value};
use crate::keys;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse, Response};
use std::fmt::Write;
use std::sync::Arc;

pub const TILES_PER_ASSET: usize = 36;
/// The widths each tile offers in its `srcset`.
const TILE_WIDTHS: [u32; 4] = [320, 480, 640, 960];
/// How wide a tile is laid out, for `sizes`.
/// One column up to 523 px, two up to 783 px (the grid's 220 px minimum
/// plus gaps and padding), then tiles of about 280 px.
const TILE_SIZES: &str = "(max-width: 523px) 90vw, (max-width: 783px) 45vw, 280px";

/// The demo product-listing page.
#[utoipa::path(get, path = "/", tag = "demo", responses((status = 200, description = "HTML", content_type = "text/html"), (status = 403, description = "Asked for with a private token and no signing keys (the page would publish the token)"), (status = 422, description = "A parameter the page does not take, named")))]
pub async fn page(
    State(app): State<Arc<App>>,
    reader: Result<Reader, ApiError>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    match reader.and_then(|Reader(caller)| listing(&app, &caller, q.as_deref())) {
        Ok(html) => html.into_response(),
        Err(e) => super::error::for_page(e, accept),
    }
}

fn listing(app: &App, caller: &Caller, q: Option<&str>) -> Result<Html<String>, ApiError> {
    let http = &app.settings().http;
    Params::parse(q, http.max_query_bytes)?
        .only(&["bearer_token", "orgId"], &http.ignored_params)?;
    // A page loaded with a public `bearer_token` carries it into its image
    // URLs and carousel links (outside development mode they need it).
    let token = page_token(app, caller, q)?;
    let token = token.as_deref();
    let mut tiles = String::new();
    let catalog = app.catalog().snapshot();
    let shown: Vec<_> = catalog.assets().filter(|a| a.org == caller.org).collect();
    // The page is titled after what it lists: one product's name, or how many.
    let title = match shown.as_slice() {
        [one] => escape(&one.name),
        many => format!("{} products", many.len()),
    };
    for asset in shown {
        let swatch = swatch_attribute(asset);
        for (values, caption) in sample(asset, TILES_PER_ASSET, swatch) {
            tile(app, asset, swatch, &values, &caption, token, &mut tiles);
        }
    }
    let foot = FOOT.replacen("/*PENDING*/", super::carousel::PENDING, 1);
    Ok(Html(format!(
        "{}<main class=\"grid\">\n{tiles}</main>\n{foot}",
        HEAD.replace("/*TITLE*/", &title)
    )))
}

/// The attribute whose options are shown as colour swatches: the first
/// option attribute whose options all carry a `color`.
fn swatch_attribute(asset: &Asset) -> Option<usize> {
    asset.attributes.iter().position(|a| match &a.kind {
        AttrKind::String { options } => {
            !options.is_empty() && options.iter().all(|o| o.metadata.contains_key("color"))
        }
        _ => false,
    })
}

/// `(src, srcset)` of one configuration's first view.
fn image_urls(app: &App, asset: &Asset, config: &str, token: Option<&str>) -> (String, String) {
    let url = |w: u32| {
        let mut p = serde_json::Map::new();
        p.insert("assetId".into(), asset.id.to_string().into());
        p.insert(
            "configuration".into(),
            serde_json::from_str(config).unwrap_or_default(),
        );
        p.insert("width".into(), w.into());
        p.insert("format".into(), "auto".into());
        let query = query_of(&p).unwrap_or_default();
        with_token(
            pinned_url(
                &app.signer(),
                asset,
                &app.settings().http.cache_buster,
                &query,
            ),
            token,
        )
    };
    let srcset = TILE_WIDTHS
        .iter()
        .map(|w| format!("{} {w}w", url(*w)))
        .collect::<Vec<_>>()
        .join(", ");
    (url(TILE_WIDTHS[1]), srcset)
}

/// The carousel (`page` "carousel") or 360° spin ("spin") of a configuration.
fn embed_href(page: &str, asset: &Asset, config: &str, token: Option<&str>) -> String {
    with_token(
        format!(
            "/embed/{page}?assetId={}&configuration={}",
            asset.id,
            form_urlencoded::byte_serialize(config.as_bytes()).collect::<String>()
        ),
        token,
    )
}

/// One product tile: image, caption, swatches, carousel link.
fn tile(
    app: &App,
    asset: &Asset,
    swatch: Option<usize>,
    values: &[Value],
    caption: &str,
    token: Option<&str>,
    out: &mut String,
) {
    let config = configuration_json(asset, values);
    let (src, srcset) = image_urls(app, asset, &config, token);
    let href = embed_href("carousel", asset, &config, token);
    let h = 480 * asset.height / asset.width.max(1);
    let mut swatches = String::new();
    let mut label = String::new();
    if let Some(k) = swatch
        && let AttrKind::String { options } = &asset.attributes[k].kind
    {
        let attr = &asset.attributes[k];
        for o in options {
            let mut v = values.to_vec();
            v[k] = Value::Str(o.value.clone());
            let c = configuration_json(asset, &v);
            let (s, set) = image_urls(app, asset, &c, token);
            let on = values[k] == v[k];
            if on {
                label = o.label.clone().unwrap_or_else(|| o.value.clone());
            }
            let _ = write!(
                swatches,
                "<button type=\"button\" class=\"swatch\" style=\"background:{}\" aria-label=\"{}: {}\" aria-pressed=\"{on}\" data-label=\"{}\" data-src=\"{}\" data-srcset=\"{}\" data-href=\"{}\" data-spin=\"{}\"></button>",
                // Only a colour may go into the style attribute.
                o.metadata
                    .get("color")
                    .and_then(|c| crate::catalog::Rgb::parse_hex(c))
                    .map_or_else(|| "#ccc".to_string(), |c| c.hex()),
                escape(attr.label.as_deref().unwrap_or(&attr.name)),
                escape(o.label.as_deref().unwrap_or(&o.value)),
                escape(o.label.as_deref().unwrap_or(&o.value)),
                escape(&s),
                escape(&set),
                escape(&embed_href("carousel", asset, &c, token)),
                escape(&embed_href("spin", asset, &c, token)),
            );
        }
    }
    // A turntable: a link to the 360° spin, kept in step with the swatches.
    let spin = if asset.views.iter().any(|v| v.turntable) {
        format!(
            "<a class=\"spin\" href=\"{}\" target=\"_blank\" rel=\"noopener\">360°</a>",
            escape(&embed_href("spin", asset, &config, token))
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "<figure class=\"tile\"><a class=\"ph\" href=\"{}\" target=\"_blank\" rel=\"noopener\"><img src=\"{}\" srcset=\"{}\" sizes=\"{TILE_SIZES}\" width=\"480\" height=\"{h}\" loading=\"lazy\" decoding=\"async\" alt=\"{}\"></a><figcaption>{spin}<b>{}</b><span class=\"opt\">{}</span><span>{}</span><div class=\"swatches\">{swatches}</div></figcaption></figure>",
        escape(&href),
        escape(&src),
        escape(&srcset),
        escape(&format!("{}: {caption}", asset.name)),
        escape(&asset.name),
        escape(&label),
        escape(caption),
    );
}

/// Up to `n` configurations of `asset` with a caption each.
fn sample(asset: &Asset, n: usize, fixed: Option<usize>) -> Vec<(Vec<Value>, String)> {
    let choices: Vec<Vec<Value>> = asset
        .attributes
        .iter()
        .enumerate()
        .map(|(i, a)| match &a.kind {
            _ if Some(i) == fixed => vec![a.default.clone()],
            AttrKind::String { options } => options
                .iter()
                .map(|o| Value::Str(o.value.clone()))
                .collect(),
            AttrKind::Boolean => vec![Value::Bool(false), Value::Bool(true)],
            _ => vec![a.default.clone()],
        })
        .collect();
    // Attributes that together span the grid; the rest cycle with the tile index.
    let mut grid = 0;
    let mut span = 1;
    while grid < choices.len() && span < n {
        span *= choices[grid].len();
        grid += 1;
    }
    (0..span.min(n))
        .map(|i| {
            let mut rest = i;
            let values: Vec<Value> = choices
                .iter()
                .enumerate()
                .map(|(j, c)| {
                    let k = if j < grid {
                        let k = rest % c.len();
                        rest /= c.len();
                        k
                    } else {
                        i % c.len()
                    };
                    c[k].clone()
                })
                .collect();
            let caption = asset
                .attributes
                .iter()
                .zip(&values)
                .enumerate()
                .filter(|(k, _)| Some(*k) != fixed)
                .map(|(_, (a, v))| match v {
                    Value::Bool(true) => a.label.clone().unwrap_or_else(|| a.name.clone()),
                    Value::Bool(false) => format!(
                        "no {}",
                        a.label.as_deref().unwrap_or(&a.name).to_lowercase()
                    ),
                    v => format!("{} {v}", a.label.as_deref().unwrap_or(&a.name)),
                })
                .collect::<Vec<_>>()
                .join(" · ");
            (values, caption)
        })
        .collect()
}

fn configuration_json(asset: &Asset, values: &[Value]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = asset
        .attributes
        .iter()
        .zip(values)
        .map(|(a, v)| {
            let j = match v {
                Value::Str(s) => serde_json::Value::from(s.as_str()),
                Value::Num(n) => serde_json::Value::from(*n),
                Value::Bool(b) => serde_json::Value::from(*b),
                Value::Color(c) => serde_json::Value::from(c.hex()),
            };
            (a.name.clone(), j)
        })
        .collect();
    keys::canonical_json(&serde_json::Value::Object(map))
}

pub(super) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const HEAD: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>layercake · /*TITLE*/</title>
<link rel="icon" href="data:,">
<style>
body{margin:0;font:15px/1.4 system-ui,sans-serif;color:#222;background:#faf9f7}
header{padding:24px 32px 8px}h1{margin:0;font-size:22px}header p{margin:4px 0 0;color:#666}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:20px;padding:16px 32px 40px}
figure{margin:0;background:#fff;border-radius:10px;overflow:hidden;box-shadow:0 1px 3px rgba(0,0,0,.08)}
img{display:block;width:100%;height:auto;background:#efece7}
.ph{display:block;position:relative}
.ph:not(.ready) img{background:linear-gradient(90deg,#efece7 30%,#f7f5f2 50%,#efece7 70%) 0 0/200% 100%;animation:sh 1.6s linear infinite}
@keyframes sh{to{background-position:-200% 0}}
.ph.pending img,.ph.failed img{visibility:hidden}
.ph.pending,.ph.failed{background:#efece7}
.ph.pending::after,.ph.failed::after{position:absolute;left:50%;top:50%;transform:translate(-50%,-50%);padding:6px 12px;border-radius:14px;background:rgba(255,255,255,.9);color:#555;font-size:13px;content:"Rendering…"}
.ph.failed::after{content:"Not available"}
.spin{float:right;font-size:12px;color:#555}
figcaption{padding:10px 12px 12px;font-size:13px;color:#555}figcaption b{display:block;color:#222;font-size:14px}
figcaption .opt{display:block;color:#222}
.swatches{display:flex;flex-wrap:wrap;gap:6px;margin-top:8px}
.swatch{width:20px;height:20px;border-radius:50%;border:2px solid #fff;box-shadow:0 0 0 1px #bbb;padding:0;cursor:pointer}
.swatch[aria-pressed=true]{box-shadow:0 0 0 2px #222}
</style></head><body>
<header><h1>/*TITLE*/</h1><p>Every picture is composed on request by layercake's fast compositor from cached layers.</p></header>
"#;

/// Swatch clicks switch the tile's image, its carousel and spin links and
/// its label; an image that fails (503 while its layers render past the
/// wait budget) shows a placeholder and is tried again (`pending.js`).
const FOOT: &str = r#"<script>
/*PENDING*/
document.querySelectorAll('figure.tile img').forEach(function (img) {
  layercakePending(img, img.closest('.ph'));
});
document.addEventListener('click', function (e) {
  var b = e.target.closest('.swatch');
  if (!b) return;
  var tile = b.closest('.tile'), img = tile.querySelector('img'), a = tile.querySelector('a');
  img.srcset = b.dataset.srcset;
  img.src = b.dataset.src;
  a.href = b.dataset.href;
  var spin = tile.querySelector('.spin');
  if (spin) spin.href = b.dataset.spin;
  tile.querySelector('.opt').textContent = b.dataset.label;
  tile.querySelectorAll('.swatch').forEach(function (s) { s.setAttribute('aria-pressed', String(s === b)); });
});
</script>
</body></html>
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, DEMO_ASSET_ID};

    #[test]
    fn demo_sample_covers_every_option() {
        let c = Catalog::demo().unwrap();
        let sofa = c.get(&DEMO_ASSET_ID.parse().unwrap()).unwrap();
        let swatch = swatch_attribute(sofa);
        assert_eq!(swatch, Some(0), "Body's options carry colours");
        let tiles = sample(sofa, TILES_PER_ASSET, swatch);
        assert_eq!(
            tiles.len(),
            36,
            "6 pillows × 5 legs × the skirt, the first 36"
        );
        for (i, a) in sofa.attributes.iter().enumerate().skip(1) {
            let seen: std::collections::HashSet<String> =
                tiles.iter().map(|(v, _)| v[i].to_string()).collect();
            let want = match &a.kind {
                AttrKind::String { options } => options.len(),
                _ => 2,
            };
            assert_eq!(seen.len(), want, "{}", a.name);
        }
        let distinct: std::collections::HashSet<String> =
            tiles.iter().map(|(v, _)| format!("{v:?}")).collect();
        assert_eq!(distinct.len(), 36);
        assert!(
            tiles
                .iter()
                .all(|(v, _)| v[0] == sofa.attributes[0].default)
        );
    }
}
