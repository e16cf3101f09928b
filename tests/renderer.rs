//! The built-in renderer on the demo catalogue: canvas sizes, tight crop
//! boxes, and how many distinct layer images the catalogue really needs.

use layercake::catalog::{Catalog, DEMO_ASSET_ID};
use layercake::keys::{self, Configuration};
use layercake::render::{BuiltinRenderer, RenderRequest};
use std::collections::HashSet;
use std::sync::Arc;

fn sofa() -> Arc<layercake::catalog::Asset> {
    let c = Catalog::demo().unwrap();
    Arc::clone(c.get(&DEMO_ASSET_ID.parse().unwrap()).unwrap())
}

/// Every configuration of the demo: 6 × 6 × 5 × 2.
fn all_configurations(asset: &layercake::catalog::Asset) -> Vec<Configuration> {
    let mut out = vec![serde_json::Map::new()];
    for a in &asset.attributes {
        let values: Vec<serde_json::Value> = match &a.kind {
            layercake::catalog::AttrKind::String { options } => {
                options.iter().map(|o| o.value.clone().into()).collect()
            }
            layercake::catalog::AttrKind::Boolean => vec![false.into(), true.into()],
            _ => unreachable!("the demo has string and boolean attributes"),
        };
        out = out
            .into_iter()
            .flat_map(|m| {
                values.iter().map(move |v| {
                    let mut m = m.clone();
                    m.insert(a.name.clone(), v.clone());
                    m
                })
            })
            .collect();
    }
    out.into_iter()
        .map(|m| Configuration::parse(asset, &serde_json::Value::Object(m)).unwrap())
        .collect()
}

#[test]
fn the_demo_has_360_configurations_and_25_layer_images_per_view() {
    let asset = sofa();
    let configs = all_configurations(&asset);
    assert_eq!(configs.len(), 360);
    for view in 0..asset.views.len() {
        let mut keys = HashSet::new();
        for cfg in &configs {
            let size = (asset.width, asset.height);
            keys.extend(keys::visible_layers(&asset, cfg, view, size).map(|l| l.key));
        }
        // backdrop 1 + shadow 1 + legs 5 + body 6 + skirt 6 + pillows 6
        assert_eq!(keys.len(), 25, "view {view}");
    }
}

#[test]
fn every_layer_renders_at_the_canvas_size_cropped_to_its_visible_box() {
    let asset = sofa();
    let renderer = BuiltinRenderer::new(1 << 26);
    let defaults = Configuration::parse(&asset, &serde_json::json!({"Skirt": true})).unwrap();
    for view in 0..asset.views.len() {
        for (i, layer) in asset.layers.iter().enumerate() {
            let req = RenderRequest {
                asset: Arc::clone(&asset),
                layer: i,
                view,
                values: defaults.subset(&layer.depends_on),
                width: asset.width,
                height: asset.height,
            };
            let out = renderer.render_sync(&req).unwrap();
            let what = format!("{} in view {}", layer.name, asset.views[view].name);
            assert_eq!(
                (out.canvas_width, out.canvas_height),
                (1200, 1200),
                "{what}"
            );
            let img = &out.image;
            assert!(
                out.x + img.width <= 1200 && out.y + img.height <= 1200,
                "{what}"
            );
            assert_eq!(
                img.data.len(),
                (img.width * img.height * 4) as usize,
                "{what}"
            );
            // Tight: every edge row and column of the box has a visible pixel.
            let alpha = |x: u32, y: u32| img.data[((y * img.width + x) * 4 + 3) as usize];
            assert!(
                (0..img.width).any(|x| alpha(x, 0) > 0),
                "{what}: top row empty"
            );
            assert!(
                (0..img.width).any(|x| alpha(x, img.height - 1) > 0),
                "{what}: bottom row empty"
            );
            assert!(
                (0..img.height).any(|y| alpha(0, y) > 0),
                "{what}: left column empty"
            );
            assert!(
                (0..img.height).any(|y| alpha(img.width - 1, y) > 0),
                "{what}: right column empty"
            );
            if layer.name == "Backdrop" {
                assert_eq!(
                    (img.width, img.height, out.x, out.y),
                    (1200, 1200, 0, 0),
                    "the backdrop fills the canvas"
                );
                assert!(img.data.chunks(4).all(|p| p[3] == 255), "and is opaque");
            } else {
                let area = u64::from(img.width) * u64::from(img.height);
                assert!(
                    area < 1200 * 1200 / 2,
                    "{what}: {}x{} should be cropped well below the canvas",
                    img.width,
                    img.height
                );
            }
        }
    }
}

#[test]
fn renders_depend_only_on_their_dependencies_and_are_deterministic() {
    let asset = sofa();
    let renderer = BuiltinRenderer::new(1 << 26);
    let body = asset.layers.iter().position(|l| l.name == "Body").unwrap();
    let render = |colour: &str| {
        let cfg = Configuration::parse(&asset, &serde_json::json!({"Body": colour})).unwrap();
        let req = RenderRequest {
            asset: Arc::clone(&asset),
            layer: body,
            view: 1,
            values: cfg.subset(&asset.layers[body].depends_on),
            width: 600,
            height: 600,
        };
        renderer.render_sync(&req).unwrap()
    };
    let (a, b, c) = (render("Navy"), render("Navy"), render("Oatmeal"));
    assert_eq!(a, b, "same input, same pixels");
    assert_eq!(
        (a.x, a.y, a.image.width, a.image.height),
        (c.x, c.y, c.image.width, c.image.height),
        "colour does not move the box"
    );
    assert_ne!(a.image.data, c.image.data);
    assert_eq!(a.canvas_width, 600, "the render size is honoured");
}
