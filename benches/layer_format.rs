//! What a stored layer costs to decode, by format: the measurement behind
//! the choice of the decoded-layer format for a fresh process's miss
//! (layers read from the object store and decoded before the compose).
//!
//! - `layer_decode/png_*`: the format stored today (`layerfile::decode`:
//!   PNG, `Compression::Balanced`, placement in a text chunk).
//! - `layer_decode/qoi_*`: QOI (lossless, one pass, no entropy coder).
//! - `layer_decode/lz4_*`, `zstd1_*`: the raw RGBA bytes through LZ4 (lz4_flex)
//!   and zstd level 1.
//!
//! On two layers: `demo`, the demo sofa's body layer as the built-in
//! renderer draws it (flat colours, smooth edges: what configurators
//! render), and `synthetic`, a 1200² layer of bands and gradients (the
//! compose bench's). Each format's size is printed once before the runs.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use layercake::catalog::{Catalog, DEMO_ASSET_ID};
use layercake::compose::{LayerImage, Rgba8, layerfile};
use layercake::keys::Configuration;
use layercake::render::{BuiltinRenderer, RenderRequest};
use std::hint::black_box;
use std::sync::Arc;

const SIDE: u32 = 1200;

fn synthetic() -> LayerImage {
    let mut data = Vec::with_capacity((SIDE * SIDE * 4) as usize);
    for y in 0..SIDE {
        for x in 0..SIDE {
            let band = (x + y * 3) % 600;
            let a = match band {
                0..200 => 0,
                200..400 => 255,
                b => (b - 400) as u8,
            };
            data.extend_from_slice(&[x as u8, (y * 2) as u8, 40, a]);
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

/// The largest visible layer of the demo sofa (its body), view 1.
fn demo() -> LayerImage {
    let catalog = Catalog::demo().unwrap();
    let asset = Arc::clone(catalog.get(&DEMO_ASSET_ID.parse().unwrap()).unwrap());
    let cfg = Configuration::parse(&asset, &serde_json::json!({"Body": "Navy"})).unwrap();
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
        .max_by_key(|l| l.image.data.len())
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("layer_decode");
    g.sample_size(20);
    for (name, layer) in [("demo", demo()), ("synthetic", synthetic())] {
        let img = &layer.image;
        let raw = &img.data;
        let png = layerfile::encode(&layer).unwrap();
        let qoi = qoi::encode_to_vec(raw, img.width, img.height).unwrap();
        let lz4 = lz4_flex::compress_prepend_size(raw);
        let zstd1 = zstd::bulk::compress(raw, 1).unwrap();
        eprintln!(
            "layer {name}: {}x{} raw {} B; png {} B, qoi {} B, lz4 {} B, zstd1 {} B",
            img.width,
            img.height,
            raw.len(),
            png.len(),
            qoi.len(),
            lz4.len(),
            zstd1.len()
        );
        g.throughput(Throughput::Bytes(raw.len() as u64));
        g.bench_function(format!("png_{name}"), |b| {
            b.iter(|| layerfile::decode(black_box(&png), u64::MAX).unwrap())
        });
        g.bench_function(format!("qoi_{name}"), |b| {
            b.iter(|| qoi::decode_to_vec(black_box(&qoi)).unwrap())
        });
        g.bench_function(format!("lz4_{name}"), |b| {
            b.iter(|| lz4_flex::decompress_size_prepended(black_box(&lz4)).unwrap())
        });
        g.bench_function(format!("zstd1_{name}"), |b| {
            b.iter(|| zstd::bulk::decompress(black_box(&zstd1), raw.len()).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
