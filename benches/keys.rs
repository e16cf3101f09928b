//! Key derivation: everything a hit costs before the cache lookup.

use criterion::{Criterion, criterion_group, criterion_main};
use layercake::catalog::{Catalog, DEMO_ASSET_ID};
use layercake::compose::{Fit, Format, Output};
use layercake::keys::{self, Configuration, OutputPart};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let catalog = Catalog::demo().unwrap();
    let sofa = catalog.get(&DEMO_ASSET_ID.parse().unwrap()).unwrap();
    let json: serde_json::Value =
        serde_json::json!({"Skirt": true, "Pillows": "Teal", "Body": "Navy", "Legs": "Brass Cone"});
    let text = json.to_string();
    let cfg = Configuration::parse(sofa, &json).unwrap();
    let mut g = c.benchmark_group("keys");
    g.bench_function("parse_and_check_configuration", |b| {
        b.iter(|| {
            Configuration::parse(sofa, &serde_json::from_str(black_box(&text)).unwrap()).unwrap()
        })
    });
    let output = Output {
        width: Some(400),
        height: None,
        fit: Fit::Contain,
        crop: None,
        format: Format::Webp,
        quality: Some(80),
    };
    let part = OutputPart::Image {
        output: &output,
        buster: "",
    };
    g.bench_function("composite_key", |b| {
        b.iter(|| keys::composite_key(sofa, black_box(&cfg), 1, &part))
    });
    g.bench_function("layer_key", |b| {
        b.iter(|| keys::layer_key(sofa, 7, 1, black_box(&cfg), (1200, 1200)))
    });
    g.bench_function("all_layer_keys_of_a_configuration", |b| {
        b.iter(|| {
            keys::visible_layers(sofa, black_box(&cfg), 1, (1200, 1200))
                .map(|l| l.key)
                .collect::<Vec<_>>()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
