//! The asset format is written down three times: the spec types the loader
//! reads, the JSON Schema derived from them (`GET /api/assets/schema.json`),
//! and `docs/assets.md`. This holds them together: every complete example
//! in the docs (the blocks fenced `json asset`) and every shipped catalogue
//! file loads through the real loader and validates against the schema, and
//! the schema refuses what the loader refuses by shape.

use layercake::catalog::schema::asset_schema;
use layercake::catalog::{Catalog, Limits, load_asset_str};
use serde_json::{Value, json};
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&asset_schema(&Limits::default())).expect("the schema compiles")
}

/// Every complete asset in the docs: the blocks fenced exactly `json asset`.
fn documented_assets() -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(root().join("docs/assets.md")).expect("docs/assets.md");
    let mut out = Vec::new();
    let mut block: Option<(usize, String)> = None;
    for (n, line) in text.lines().enumerate() {
        match &mut block {
            None if line.trim_end() == "```json asset" => block = Some((n + 1, String::new())),
            None => {}
            Some(_) if line.trim_end() == "```" => out.extend(block.take()),
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    assert!(
        block.is_none(),
        "docs/assets.md: an unterminated `json asset` block"
    );
    out
}

fn errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[test]
fn every_documented_example_loads_and_follows_the_schema() {
    let v = validator();
    let examples = documented_assets();
    assert!(
        examples.len() >= 3,
        "docs/assets.md has {} `json asset` examples",
        examples.len()
    );
    for (line, text) in examples {
        let at = format!("docs/assets.md:{line}");
        let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{at}: {e}"));
        let asset = load_asset_str(&at, &text, &Limits::default())
            .unwrap_or_else(|e| panic!("{at} does not load: {e}"));
        assert!(!asset.layers.is_empty(), "{at}");
        let found = errors(&v, &doc);
        assert!(found.is_empty(), "{at} breaks the schema: {found:?}");
    }
}

#[test]
fn every_shipped_catalogue_file_loads_and_follows_the_schema() {
    let v = validator();
    for folder in ["catalog", "demo/blender"] {
        let dir = root().join(folder);
        let catalog = Catalog::from_dir(&dir, &Limits::default())
            .unwrap_or_else(|e| panic!("{folder} does not load: {e}"));
        assert!(!catalog.is_empty());
        for entry in std::fs::read_dir(&dir).expect("folder") {
            let path = entry.expect("entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let doc: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
            let found = errors(&v, &doc);
            assert!(
                found.is_empty(),
                "{} breaks the schema: {found:?}",
                path.display()
            );
        }
    }
}

/// A minimal valid definition to break one way at a time.
fn minimal() -> Value {
    json!({
        "id": "0d6f0d55-5b0f-4b8e-9a51-3c8f2f7b1f10",
        "name": "Tile",
        "width": 64, "height": 64,
        "attributes": [{"name": "Colour", "type": "color", "default": "#336699"}],
        "views": [{"name": "front", "stage": {"Camera": 0}}],
        "layers": [{
            "id": "5e0b7a53-2a53-4a7e-8d3a-1e2f3a4b5c6d", "name": "tile",
            "dependsOn": ["Colour"],
            "render": {"template": "<svg xmlns='http://www.w3.org/2000/svg' width='64' height='64'><rect width='64' height='64' fill='{{Colour}}'/></svg>"}
        }]
    })
}

#[test]
fn the_schema_refuses_what_the_loader_refuses_by_shape() {
    let v = validator();
    let good = minimal();
    assert!(errors(&v, &good).is_empty(), "{:?}", errors(&v, &good));
    load_asset_str("minimal", &good.to_string(), &Limits::default()).expect("loads");
    let broken: [(&str, fn(&mut Value)); 11] = [
        ("an unknown top-level field", |d| d["colour"] = json!("red")),
        ("a layer without its id", |d| {
            d["layers"][0].as_object_mut().map(|l| l.remove("id"));
        }),
        ("a view name with capitals", |d| {
            d["views"][0]["name"] = json!("Front")
        }),
        ("an empty stage", |d| d["views"][0]["stage"] = json!({})),
        ("an unknown attribute type", |d| {
            d["attributes"][0]["type"] = json!("text")
        }),
        ("a zero width", |d| d["width"] = json!(0)),
        ("no views", |d| d["views"] = json!([])),
        ("a layer without art", |d| {
            d["layers"][0]["render"] = json!({})
        }),
        ("a layer with two kinds of art", |d| {
            d["layers"][0]["render"]["svg"] = json!("tile/{view}.svg")
        }),
        ("a camera on a 2D view", |d| {
            d["views"][0]["camera"] = json!({"azimuth": 0})
        }),
        ("a 3D layer in a 2D asset", |d| {
            d["layers"][0]["render"] = json!({"blender": {"objects": ["Tile"]}})
        }),
    ];
    for (what, breaks) in broken {
        let mut doc = minimal();
        breaks(&mut doc);
        assert!(!errors(&v, &doc).is_empty(), "the schema accepts {what}");
        assert!(
            load_asset_str("broken", &doc.to_string(), &Limits::default()).is_err(),
            "the loader accepts {what}"
        );
    }
}

#[test]
fn what_the_api_answers_follows_the_schema_and_loads_back() {
    // The read-only fields a GET answer carries are part of the schema and
    // ignored by the loader: the same definition, the same fingerprint.
    let v = validator();
    let mut answered = minimal();
    answered["version"] = json!(3);
    answered["orgId"] = json!("00000000-0000-0000-0000-000000000000");
    answered["createdAt"] = json!("2026-12-08T00:00:00Z");
    answered["updatedAt"] = json!("2026-12-08T00:00:00Z");
    answered["$schema"] = json!("http://127.0.0.1:8080/api/assets/schema.json");
    assert!(
        errors(&v, &answered).is_empty(),
        "{:?}",
        errors(&v, &answered)
    );
    let limits = Limits::default();
    let plain = load_asset_str("plain", &minimal().to_string(), &limits).expect("loads");
    let back = load_asset_str("answered", &answered.to_string(), &limits).expect("loads");
    assert_eq!(plain.fingerprint, back.fingerprint);
    assert_eq!(back.spec.org_id, None);
}
