//! Unit tests of the loader: the demo catalogue, errors naming their
//! field, fingerprints, and the caps on catalogue files.

use super::*;
use crate::catalog::Value;

#[test]
fn a_bundle_rebuilds_the_same_asset_without_the_catalogue_files() {
    let cat = demo().unwrap();
    for a in cat.assets() {
        let (spec, files) = a.bundle();
        assert!(!files.is_empty(), "the demo reads template files");
        let b = load_asset_bundle("remote", &spec.to_string(), &files, &Limits::default()).unwrap();
        assert_eq!(
            (b.id, b.version, b.fingerprint),
            (a.id, a.version, a.fingerprint)
        );
        for (x, y) in a.layers.iter().zip(&b.layers) {
            assert_eq!(x.recipe.fingerprint, y.recipe.fingerprint);
        }
        // A file that did not travel is named.
        let mut missing = files.clone();
        let gone = missing.keys().next().unwrap().clone();
        missing.remove(&gone);
        let e = load_asset_bundle("remote", &spec.to_string(), &missing, &Limits::default())
            .unwrap_err();
        assert!(e.message.contains(&gone), "{e}");
    }
}

pub(super) fn minimal() -> serde_json::Value {
    serde_json::json!({
        "id": "6f1c7d2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f",
        "name": "Mug", "version": 1, "width": 64, "height": 64,
        "attributes": [
            {"name": "Color", "type": "string", "default": "Red",
             "values": [{"value": "Red", "metadata": {"hex": "#c00"}}, {"value": "Blue", "metadata": {"hex": "#00c"}}]},
            {"name": "Handle", "type": "boolean"}
        ],
        "views": [{"name": "front", "stage": {"Camera": 0}}],
        "layers": [
            {"id": "0e7b3c1a-2d4f-4a6b-8c9d-1e2f3a4b5c6d", "name": "Body", "dependsOn": ["Color"],
             "render": {"template": "<svg xmlns='http://www.w3.org/2000/svg' width='64' height='64'><rect width='10' height='10' fill='{{Color.hex}}'/></svg>"}}
        ]
    })
}

fn load(v: &serde_json::Value) -> Result<Asset, CatalogError> {
    load_asset_str("mug", &v.to_string(), &Limits::default())
}

#[test]
fn demo_catalogue_loads() {
    let c = Catalog::demo().unwrap();
    let sofa = c.get(&Uuid::parse_str(DEMO_ASSET_ID).unwrap()).unwrap();
    assert_eq!(sofa.views.len(), 4);
    assert_eq!(sofa.attributes.len(), 4);
}

#[test]
fn minimal_asset_loads() {
    let a = load(&minimal()).unwrap();
    assert_eq!(a.layers[0].depends_on, vec![0]);
    assert_eq!(a.attributes[1].default, Value::Bool(false));
}

#[test]
fn errors_name_the_field() {
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        (
            "/layers/0/dependsOn/0",
            serde_json::json!("Colour"),
            "layers[0].dependsOn[0]",
        ),
        ("/id", serde_json::json!("not-a-uuid"), "id"),
        (
            "/attributes/0/default",
            serde_json::json!("Green"),
            "attributes[0].default",
        ),
        (
            "/views/0/name",
            serde_json::json!("Front View"),
            "views[0].name",
        ),
        (
            "/layers/0/visibleWhen",
            serde_json::json!({"Handle": "yes"}),
            "layers[0].visibleWhen.Handle",
        ),
        (
            "/layers/0/render/template",
            serde_json::json!("{{Handle}}"),
            "layers[0].render",
        ),
        ("/width", serde_json::json!(0), "width"),
        (
            "/attributes/1/min",
            serde_json::json!(1),
            "attributes[1].min",
        ),
    ];
    for (ptr, value, field) in cases {
        let mut doc = minimal();
        let (parent, key) = ptr.rsplit_once('/').unwrap();
        match doc.pointer_mut(parent).unwrap() {
            serde_json::Value::Array(xs) => xs[key.parse::<usize>().unwrap()] = value,
            serde_json::Value::Object(m) => drop(m.insert(key.to_string(), value)),
            _ => unreachable!("{ptr}"),
        }
        let e = load(&doc).unwrap_err();
        assert_eq!(e.field, field, "{ptr}: {e}");
        assert_eq!(e.file, "mug.json");
    }
}

#[test]
fn unknown_fields_are_named() {
    let mut doc = minimal();
    doc["layers"][0]["dependOn"] = serde_json::json!(["Color"]);
    let e = load(&doc).unwrap_err();
    assert_eq!(e.field, "layers[0].dependOn");
    assert!(e.message.contains("dependOn"), "{e}");
}

#[test]
fn template_must_stay_within_depends_on() {
    let mut doc = minimal();
    doc["layers"][0]["dependsOn"] = serde_json::json!([]);
    let e = load(&doc).unwrap_err();
    assert!(e.message.contains("not in dependsOn"), "{e}");
}

#[test]
fn editing_a_template_changes_fingerprints() {
    let a = load(&minimal()).unwrap();
    let mut doc = minimal();
    doc["layers"][0]["render"]["template"] =
        serde_json::json!("<svg xmlns='http://www.w3.org/2000/svg'/>");
    doc["layers"][0]["dependsOn"] = serde_json::json!([]);
    let b = load(&doc).unwrap();
    assert_ne!(a.fingerprint, b.fingerprint);
    assert_ne!(
        a.layers[0].recipe.fingerprint,
        b.layers[0].recipe.fingerprint
    );
    // The version alone is not content.
    let mut doc = minimal();
    doc["version"] = serde_json::json!(7);
    assert_eq!(load(&doc).unwrap().fingerprint, a.fingerprint);
}

#[test]
fn editing_what_a_template_reads_changes_its_fingerprint() {
    // Option metadata read by {{Color.hex}}: the layer must re-render.
    let a = load(&minimal()).unwrap();
    let mut doc = minimal();
    doc["attributes"][0]["values"][1]["metadata"]["hex"] = serde_json::json!("#00f");
    let b = load(&doc).unwrap();
    assert_ne!(
        a.layers[0].recipe.fingerprint,
        b.layers[0].recipe.fingerprint
    );
    // A view label (readable as {{view.label}}) as well.
    let mut doc = minimal();
    doc["views"][0]["label"] = serde_json::json!("Straight on");
    let c = load(&doc).unwrap();
    assert_ne!(
        a.layers[0].recipe.fingerprint,
        c.layers[0].recipe.fingerprint
    );
    // An attribute the layer does not depend on leaves it alone.
    let mut doc = minimal();
    doc["attributes"][1]["label"] = serde_json::json!("Has a handle");
    let d = load(&doc).unwrap();
    assert_eq!(
        a.layers[0].recipe.fingerprint,
        d.layers[0].recipe.fingerprint
    );
}

#[test]
fn template_files_cannot_escape_the_catalogue() {
    let src = Source::Dir(Path::new("/tmp"));
    assert!(src.read("../etc/passwd", 1024).is_err());
    assert!(src.read("/etc/passwd", 1024).is_err());
}

#[test]
fn catalogue_template_files_are_held_to_the_caps() {
    let dir = tempfile::tempdir().unwrap();
    let mut doc = minimal();
    doc["layers"][0]["render"] = serde_json::json!({"svg": "t/{view}.svg"});
    std::fs::write(dir.path().join("mug.json"), doc.to_string()).unwrap();
    std::fs::create_dir(dir.path().join("t")).unwrap();
    let write = |text: &str| std::fs::write(dir.path().join("t/front.svg"), text).unwrap();
    write(
        "<svg xmlns='http://www.w3.org/2000/svg' width='64' height='64'><image href='/etc/hostname'/></svg>",
    );
    let e = Catalog::from_dir(dir.path(), &Limits::default()).unwrap_err();
    assert!(
        e.to_string()
            .contains("t/front.svg: <image> href=\"/etc/hostname\""),
        "{e}"
    );
    write(&format!("<svg>{}</svg>", " ".repeat(2048)));
    let small = Limits {
        template_bytes: 1024,
        ..Limits::default()
    };
    let e = Catalog::from_dir(dir.path(), &small).unwrap_err();
    assert!(
        e.to_string()
            .contains("over catalog.max_template_bytes (1024)"),
        "{e}"
    );
}
