//! Key derivation: everything a hit costs before the cache lookup.

use criterion::{Criterion, criterion_group, criterion_main};
use layercake::catalog::{Catalog, DEMO_ASSET_ID};
use layercake::keys::{self, Configuration};
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
    g.bench_function("composite_key", |b| {
        b.iter(|| keys::composite_key(sofa, black_box(&cfg), 1, "fmt=webp;q=80;w=400"))
    });
    g.bench_function("layer_key", |b| {
        b.iter(|| keys::layer_key(sofa, 7, 1, black_box(&cfg), (1200, 1200)))
    });
    g.bench_function("all_layer_keys_of_a_configuration", |b| {
        b.iter(|| {
            (0..sofa.layers.len())
                .filter(|&i| sofa.layers[i].is_visible(cfg.values()))
                .map(|i| keys::layer_key(sofa, i, 1, black_box(&cfg), (1200, 1200)))
                .collect::<Vec<_>>()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
