use super::*;
use serde_json::json;

fn spec() -> AssetSpec {
    serde_json::from_value(json!({
        "id": "0d6f0d55-5b0f-4b8e-9a51-3c8f2f7b1f10", "name": "Lamp", "width": 8, "height": 8,
        "attributes": [
            {"name": "Shade", "type": "string", "default": "Linen", "values": ["Linen", "Oak"]},
            {"name": "Lit", "type": "boolean"},
            {"name": "Tint", "type": "color", "default": "#ffffff"},
        ],
        "views": [{"name": "front", "stage": {"Camera": 0}}, {"name": "side", "stage": {"Camera": 1}}],
        "layers": [
            {"id": "5e0b7a53-2a53-4a7e-8d3a-1e2f3a4b5c6d", "name": "Backdrop", "render": {"template": "<svg/>"}},
            {"id": "6c3e9f4a-0d5b-4e6f-9a7b-8c9d0e1f2a3b", "name": "Lamp Shade", "dependsOn": ["Shade", "Lit"], "render": {"template": "<svg/>"}},
            {"id": "7d4f0a5b-1e6c-4f7a-8b8c-9d0e1f2a3b4c", "name": "Glow", "dependsOn": ["Tint"], "render": {"template": "<svg/>"}},
        ]
    }))
    .unwrap()
}

fn touch(root: &Path, rel: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, b"x").unwrap();
}

#[test]
fn the_layout_names_layer_view_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for rel in [
        "front/Backdrop.png",
        "front/lamp-shade/Oak+true.png",
        "side/LAMP SHADE/linen+FALSE.webp",
        "side/Glow/FF8800.png",
        "side/.DS_Store",
    ] {
        touch(root, rel);
    }
    let p = plan(root, &spec()).unwrap();
    assert!(p.problems.is_empty(), "{:?}", p.problems);
    let got: Vec<(usize, usize, Value)> = p
        .entries
        .iter()
        .map(|e| (e.view, e.layer, Value::Object(e.values.clone())))
        .collect();
    assert_eq!(
        got,
        [
            (0, 0, json!({})),
            (0, 1, json!({"Shade": "Oak", "Lit": true})),
            (1, 2, json!({"Tint": "#ff8800"})),
            (1, 1, json!({"Shade": "Linen", "Lit": false})),
        ]
    );
}

#[test]
fn every_mistake_is_named_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // (the file made, the path reported: a folder that is not a view or a
    // layer is reported once, not file by file, the reason)
    let cases = [
        (
            "top/Backdrop.png",
            "top",
            "not a view folder (views: front, side)",
        ),
        ("stray.png", "stray.png", "not a view folder"),
        (
            "front/Legs/Oak.png",
            "front/Legs",
            "not a layer of the asset (layers: Backdrop, Lamp Shade, Glow)",
        ),
        (
            "front/Lamp Shade/Walnut+true.png",
            "",
            "\"Walnut\" is not an option of Shade (Linen, Oak)",
        ),
        (
            "front/Lamp Shade/Oak.png",
            "",
            "1 value(s) in the name; layer \"Lamp Shade\" depends on 2 (Shade, Lit)",
        ),
        (
            "front/Lamp Shade/Oak+maybe.png",
            "",
            "\"maybe\": Lit is true or false",
        ),
        ("front/Lamp Shade/Oak+true.txt", "", "not an image file"),
        (
            "front/Glow.png",
            "",
            "layer \"Glow\" depends on Tint: its images go in Glow/<value>.png",
        ),
        ("side/Glow/red.png", "", "\"red\": Tint is a colour, rrggbb"),
        ("side/Backdrop/x.png", "side/Backdrop", "depends on nothing"),
    ];
    for (made, _, _) in cases {
        touch(root, made);
    }
    let p = plan(root, &spec()).unwrap();
    assert!(p.entries.is_empty(), "{:?}", p.entries);
    assert_eq!(p.problems.len(), cases.len(), "{:?}", p.problems);
    for (made, reported, reason) in cases {
        let at = root.join(if reported.is_empty() { made } else { reported });
        let hit = p.problems.iter().find(|x| x.path == at);
        let hit = hit
            .unwrap_or_else(|| panic!("{made} is reported at {}: {:?}", at.display(), p.problems));
        assert!(hit.reason.contains(reason), "{made}: {}", hit.reason);
    }
}
