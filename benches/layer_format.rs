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

mod common;

use common::{demo_layers, synthetic};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use layercake::compose::{LayerImage, layerfile};
use std::hint::black_box;

/// The largest visible layer of the demo sofa (its body), view 1.
fn demo() -> LayerImage {
    demo_layers(serde_json::json!({"Body": "Navy"}))
        .into_iter()
        .max_by_key(|l| l.image.data.len())
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("layer_decode");
    g.sample_size(20);
    for (name, layer) in [("demo", demo()), ("synthetic", synthetic(0))] {
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
