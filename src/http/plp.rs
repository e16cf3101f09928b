//! `GET /`: a product-listing page of the catalogue, rendered on the
//! server as plain HTML: one `<img>` per configuration, each pointing at the
//! fast compositor, the way a storefront's listing would.
//!
//! Per asset, the first enumerable attributes span a grid of up to
//! [`TILES_PER_ASSET`] tiles and the others cycle through their options,
//! so every option appears somewhere on the page.

use super::auth::Caller;
use crate::app::App;
use crate::catalog::{Asset, AttrKind, Value};
use crate::keys;
use axum::extract::State;
use axum::response::Html;
use std::fmt::Write;
use std::sync::Arc;

pub const TILES_PER_ASSET: usize = 36;
const TILE_WIDTH: u32 = 400;

/// The demo product-listing page.
#[utoipa::path(get, path = "/", tag = "demo", responses((status = 200, description = "HTML", content_type = "text/html")))]
pub async fn page(State(app): State<Arc<App>>, caller: Caller) -> Html<String> {
    let mut tiles = String::new();
    let catalog = app.catalog().snapshot();
    for asset in catalog.assets().filter(|a| a.org == caller.org) {
        for (values, caption) in sample(asset, TILES_PER_ASSET) {
            let config = configuration_json(asset, &values);
            let src = format!(
                "/api/fast-compositor?assetId={}&configuration={}&width={TILE_WIDTH}&format=webp",
                asset.id,
                form_urlencoded::byte_serialize(config.as_bytes()).collect::<String>()
            );
            let _ = writeln!(
                tiles,
                "<figure><img src=\"{}\" width=\"{TILE_WIDTH}\" height=\"{h}\" loading=\"lazy\" alt=\"{}\"><figcaption><b>{}</b><span>{}</span></figcaption></figure>",
                escape(&src),
                escape(&format!("{}: {caption}", asset.name)),
                escape(&asset.name),
                escape(&caption),
                h = TILE_WIDTH * asset.height / asset.width.max(1),
            );
        }
    }
    Html(format!(
        "{HEAD}<main class=\"grid\">\n{tiles}</main>\n{FOOT}"
    ))
}

/// Up to `n` configurations of `asset` with a caption each.
fn sample(asset: &Asset, n: usize) -> Vec<(Vec<Value>, String)> {
    let choices: Vec<Vec<Value>> = asset
        .attributes
        .iter()
        .map(|a| match &a.kind {
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
                .map(|(a, v)| match v {
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

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const HEAD: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>layercake · demo catalogue</title>
<style>
body{margin:0;font:15px/1.4 system-ui,sans-serif;color:#222;background:#faf9f7}
header{padding:24px 32px 8px}h1{margin:0;font-size:22px}header p{margin:4px 0 0;color:#666}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:20px;padding:16px 32px 40px}
figure{margin:0;background:#fff;border-radius:10px;overflow:hidden;box-shadow:0 1px 3px rgba(0,0,0,.08)}
img{display:block;width:100%;height:auto;background:#efece7}
figcaption{padding:10px 12px 12px;font-size:13px;color:#555}figcaption b{display:block;color:#222;font-size:14px}
</style></head><body>
<header><h1>Sofas</h1><p>Every picture is composed on request by layercake's fast compositor from cached layers.</p></header>
"#;

const FOOT: &str = "</body></html>\n";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, DEMO_ASSET_ID};

    #[test]
    fn demo_sample_covers_every_option() {
        let c = Catalog::demo().unwrap();
        let sofa = c.get(&DEMO_ASSET_ID.parse().unwrap()).unwrap();
        let tiles = sample(sofa, TILES_PER_ASSET);
        assert_eq!(tiles.len(), 36);
        for (i, a) in sofa.attributes.iter().enumerate() {
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
    }
}
