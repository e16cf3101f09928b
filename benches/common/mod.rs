//! Layers the benches share: synthetic ones of a known shape, and the
//! demo sofa's as the built-in renderer draws them.

use layercake::catalog::{Catalog, DEMO_ASSET_ID};
use layercake::compose::{LayerImage, Rgba8};
use layercake::keys::Configuration;
use layercake::render::{BuiltinRenderer, RenderRequest};
use std::sync::Arc;

/// The canvas side of every layer here.
pub const SIDE: u32 = 1200;

/// A 1200² layer of bands: transparent, opaque, then a translucent
/// gradient (`seed` shifts the bands and the colours).
pub fn synthetic(seed: u32) -> LayerImage {
    let mut data = Vec::with_capacity((SIDE * SIDE * 4) as usize);
    for y in 0..SIDE {
        for x in 0..SIDE {
            let band = (x + y * 3 + seed * 97) % 600;
            let a = match band {
                0..200 => 0,
                200..400 => 255,
                b => (b - 400) as u8,
            };
            data.extend_from_slice(&[(x + seed) as u8, (y * 2) as u8, (seed * 40) as u8, a]);
        }
    }
    LayerImage {
        image: Rgba8 {
            width: SIDE,
            height: SIDE,
            data,
        },
        x: 0,
        y: 0,
        canvas_width: SIDE,
        canvas_height: SIDE,
    }
}

/// The demo sofa's visible layers for `config`, view 1, bottom to top.
pub fn demo_layers(config: serde_json::Value) -> Vec<LayerImage> {
    let catalog = Catalog::demo().unwrap();
    let asset = Arc::clone(catalog.get(&DEMO_ASSET_ID.parse().unwrap()).unwrap());
    let cfg = Configuration::parse(&asset, &config).unwrap();
    let r = BuiltinRenderer::new(1 << 26);
    asset
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| l.is_visible(cfg.values()))
        .map(|(i, l)| {
            let req = RenderRequest {
                asset: Arc::clone(&asset),
                layer: i,
                view: 1,
                values: cfg.subset(&l.depends_on),
                width: asset.width,
                height: asset.height,
            };
            r.render_sync(&req).unwrap()
        })
        .collect()
}
