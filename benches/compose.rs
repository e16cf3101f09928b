//! The compose kernel and the CPU part of a miss.
//!
//! - `over/6x1200`: six full-canvas 1200×1200 layers (a third transparent,
//!   a third opaque, a third antialiased/translucent each), stacked.
//! - `over/6x1200_tiny_skia`: the same stack drawn with tiny-skia's
//!   `draw_pixmap` (SourceOver, premultiplied u8): the crate reference our
//!   hand-written kernel has to beat to exist.
//! - `over/demo`: the demo sofa's real (cropped) layers for one view.
//! - `miss_cpu/*`: compose + resize to 1024 + encode, per format (AVIF at the request path's speed).
//! - `miss_512/*`: the referee's miss (../shared/bench/peers: six 1200×1200
//!   layers to 512 px WebP q80) stage by stage: `compose` (the stack at
//!   canvas size), `resize` (1200 → 512), `encode` (WebP q80 at 512) and
//!   `whole` (all three: a miss whose layers are decoded, the first size of
//!   a configuration) and `from_flattened` (resize + encode from the kept
//!   stack: a new size of a configuration already made).

mod common;

use common::{SIDE, demo_layers, synthetic};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use layercake::compose::{self, Fit, Format, LayerImage, Output, Rect};
use layercake::pipeline::{fit_flattened, flatten, render_composite};
use resvg::tiny_skia;
use std::hint::black_box;
use std::sync::Arc;

fn bench(c: &mut Criterion) {
    let full = Rect {
        x: 0,
        y: 0,
        width: SIDE,
        height: SIDE,
    };
    let layers: Vec<LayerImage> = (0..6).map(synthetic).collect();
    let refs: Vec<&LayerImage> = layers.iter().collect();
    let mut g = c.benchmark_group("over");
    g.throughput(Throughput::Elements(u64::from(SIDE * SIDE) * 6));
    g.bench_function("6x1200", |b| {
        b.iter(|| compose::compose(black_box(full), black_box(&refs)))
    });
    let pixmaps: Vec<tiny_skia::Pixmap> = layers
        .iter()
        .map(|l| {
            let mut p = tiny_skia::Pixmap::new(SIDE, SIDE).unwrap();
            for (dst, src) in p.pixels_mut().iter_mut().zip(l.image.data.chunks_exact(4)) {
                *dst = tiny_skia::ColorU8::from_rgba(src[0], src[1], src[2], src[3]).premultiply();
            }
            p
        })
        .collect();
    g.bench_function("6x1200_tiny_skia", |b| {
        b.iter(|| {
            let mut canvas = tiny_skia::Pixmap::new(SIDE, SIDE).unwrap();
            for p in &pixmaps {
                canvas.draw_pixmap(
                    0,
                    0,
                    black_box(p.as_ref()),
                    &tiny_skia::PixmapPaint::default(),
                    tiny_skia::Transform::identity(),
                    None,
                );
            }
            canvas
        })
    });
    let demo: Vec<Arc<LayerImage>> = demo_layers(serde_json::json!({"Skirt": true}))
        .into_iter()
        .map(Arc::new)
        .collect();
    let demo_refs: Vec<&LayerImage> = demo.iter().map(AsRef::as_ref).collect();
    g.throughput(Throughput::Elements(u64::from(SIDE * SIDE)));
    g.bench_function("demo", |b| {
        b.iter(|| compose::compose(black_box(full), black_box(&demo_refs)))
    });
    g.finish();

    let mut g = c.benchmark_group("miss_cpu");
    g.sample_size(20);
    for format in [Format::Png, Format::Jpeg, Format::Webp, Format::Avif] {
        let out = Output {
            width: Some(1024),
            height: None,
            fit: Fit::Contain,
            crop: None,
            format,
            quality: None,
        }
        .normalize((SIDE, SIDE), 85);
        g.bench_function(format!("1024_{}", format.name()), |b| {
            b.iter(|| render_composite(black_box(&demo), (SIDE, SIDE), &out).unwrap())
        });
    }
    g.finish();

    let six: Vec<Arc<LayerImage>> = layers.into_iter().map(Arc::new).collect();
    let out = Output {
        width: Some(512),
        height: None,
        fit: Fit::Contain,
        crop: None,
        format: Format::Webp,
        quality: Some(80),
    }
    .normalize((SIDE, SIDE), 80);
    let geometry = compose::geometry((SIDE, SIDE), out.width, out.height, out.fit);
    let composed = compose::compose(full, &refs_of(&six));
    let fitted = compose::resize_into(composed.clone(), &geometry);
    let mut g = c.benchmark_group("miss_512");
    g.sample_size(20);
    g.bench_function("compose", |b| {
        b.iter(|| compose::compose(black_box(full), &refs_of(&six)))
    });
    g.bench_function("resize", |b| {
        b.iter(|| compose::resize_into(black_box(composed.clone()), &geometry))
    });
    g.bench_function("encode", |b| {
        b.iter(|| compose::encode(black_box(fitted.clone()), Format::Webp, Some(80)).unwrap())
    });
    g.bench_function("whole", |b| {
        b.iter(|| render_composite(black_box(&six), (SIDE, SIDE), &out).unwrap())
    });
    let flat = flatten(&six, (SIDE, SIDE), &out);
    g.bench_function("from_flattened", |b| {
        b.iter(|| {
            let fitted = fit_flattened(black_box(&flat), &out);
            compose::encode(fitted, Format::Webp, Some(80)).unwrap()
        })
    });
    g.finish();
}

fn refs_of(layers: &[Arc<LayerImage>]) -> Vec<&LayerImage> {
    layers.iter().map(AsRef::as_ref).collect()
}

criterion_group!(benches, bench);
criterion_main!(benches);
