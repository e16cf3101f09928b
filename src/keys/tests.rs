use super::*;
use crate::catalog::{self, Catalog, DEMO_ASSET_ID};
use crate::compose::{Fit, Format, Output, Rect};
use proptest::prelude::*;
use serde_json::json;

const OPTIONS: [&str; 4] = ["Red", "Green", "Blue", "Ünïcode \"☃\""];

fn asset() -> Asset {
    let svg = |body: &str| {
        format!("<svg xmlns='http://www.w3.org/2000/svg' width='8' height='8'>{body}</svg>")
    };
    let doc = json!({
        "id": "6f1c7d2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f", "name": "Mug", "version": 3, "width": 8, "height": 8,
        "attributes": [
            {"name": "Color", "type": "string", "default": "Red", "values": OPTIONS},
            {"name": "Size", "type": "number", "min": -50, "max": 100, "default": 10},
            {"name": "Engraved", "type": "boolean"},
            {"name": "Tint", "type": "color", "default": {"r": 128, "g": 128, "b": 128}}
        ],
        "views": [{"name": "front", "stage": {"Camera": 0}}, {"name": "side", "stage": {"Camera": 1}}],
        "layers": [
            {"id": "0e7b3c1a-2d4f-4a6b-8c9d-1e2f3a4b5c6d", "name": "Body", "dependsOn": ["Color"], "render": {"template": svg("<!--{{Color}}-->")}},
            {"id": "1e7b3c1a-2d4f-4a6b-8c9d-1e2f3a4b5c6d", "name": "Print", "dependsOn": ["Size", "Tint"], "render": {"template": svg("")}},
            {"id": "2e7b3c1a-2d4f-4a6b-8c9d-1e2f3a4b5c6d", "name": "Shadow", "render": {"template": svg("")}}
        ]
    });
    catalog::load_asset_str("mug", &doc.to_string(), &catalog::Limits::default()).unwrap()
}

/// A configuration as attribute → JSON value, every attribute present.
fn arb_config() -> impl Strategy<Value = Vec<(&'static str, serde_json::Value)>> {
    (
        0..OPTIONS.len(),
        -50i32..=100,
        any::<bool>(),
        any::<(u8, u8, u8)>(),
    )
        .prop_map(|(c, s, e, (r, g, b))| {
            vec![
                ("Color", json!(OPTIONS[c])),
                ("Size", json!(s)),
                ("Engraved", json!(e)),
                ("Tint", json!({"r": r, "g": g, "b": b})),
            ]
        })
}

/// Writes the same configuration differently: in the given order, integral
/// numbers as floats, colours as hex, and attributes equal to their
/// default either omitted or null.
fn respell(asset: &Asset, cfg: &[(&str, serde_json::Value)], order: &[usize], style: u8) -> String {
    let mut parts = Vec::new();
    for &i in order {
        let (name, v) = &cfg[i % cfg.len()];
        let (_, attr) = asset.attribute(name).unwrap();
        let is_default = attr.accept(v).unwrap() == attr.default;
        if is_default && style % 3 == 1 {
            continue;
        }
        let spelled = if is_default && style % 3 == 2 {
            "null".to_string()
        } else {
            match v {
                serde_json::Value::Number(n) if style & 4 != 0 => {
                    format!("{:.1}", n.as_f64().unwrap())
                }
                serde_json::Value::Object(m) if style & 8 != 0 => {
                    let c = |k: &str| m[k].as_u64().unwrap();
                    format!("\"#{:02X}{:02x}{:02X}\"", c("r"), c("g"), c("b"))
                }
                v => v.to_string(),
            }
        };
        parts.push(format!(
            "{}: {spelled}",
            serde_json::to_string(name).unwrap()
        ));
    }
    format!("{{ {} }}", parts.join(" , "))
}

/// A PNG `w` pixels wide.
fn wide(w: u32) -> Output {
    Output {
        width: Some(w),
        ..wide_png()
    }
}

/// A PNG at the canvas size (canonically `fmt=png`).
fn wide_png() -> Output {
    Output {
        width: None,
        height: None,
        fit: Fit::Contain,
        crop: None,
        format: Format::Png,
        quality: None,
    }
}

/// `output` as an image's output part, without a cache buster.
fn image(output: &Output) -> OutputPart<'_> {
    OutputPart::Image { output, buster: "" }
}

fn composite(asset: &Asset, text: &str) -> Key {
    let cfg = Configuration::parse(asset, &serde_json::from_str(text).unwrap()).unwrap();
    composite_key(asset, &cfg, 0, &image(&wide(512)))
}

proptest! {
    #[test]
    fn equivalent_configurations_have_equal_keys(
        cfg in arb_config(),
        order in Just(vec![0usize, 1, 2, 3]).prop_shuffle(),
        style in 0u8..16,
    ) {
        let a = asset();
        let plain = respell(&a, &cfg, &[0, 1, 2, 3], 0);
        let other = respell(&a, &cfg, &order, style);
        prop_assert_eq!(composite(&a, &plain), composite(&a, &other), "{} vs {}", plain, other);
    }

    #[test]
    fn different_configurations_have_different_keys(x in arb_config(), y in arb_config()) {
        let a = asset();
        let px = Configuration::parse(&a, &serde_json::from_str(&respell(&a, &x, &[0, 1, 2, 3], 0)).unwrap()).unwrap();
        let py = Configuration::parse(&a, &serde_json::from_str(&respell(&a, &y, &[0, 1, 2, 3], 0)).unwrap()).unwrap();
        let (kx, ky) = (composite_key(&a, &px, 0, &image(&wide(512))), composite_key(&a, &py, 0, &image(&wide(512))));
        prop_assert_eq!(px == py, kx == ky);
    }

    #[test]
    fn layer_keys_see_only_their_dependencies(x in arb_config(), y in arb_config()) {
        let a = asset();
        let px = Configuration::parse(&a, &serde_json::from_str(&respell(&a, &x, &[0, 1, 2, 3], 0)).unwrap()).unwrap();
        let py = Configuration::parse(&a, &serde_json::from_str(&respell(&a, &y, &[0, 1, 2, 3], 0)).unwrap()).unwrap();
        for (li, layer) in a.layers.iter().enumerate() {
            let same_deps = layer.depends_on.iter().all(|&i| px.values()[i] == py.values()[i]);
            let kx = layer_key(&a, li, 0, &px, (8, 8));
            let ky = layer_key(&a, li, 0, &py, (8, 8));
            prop_assert_eq!(same_deps, kx == ky, "layer {}", layer.name);
        }
    }
}

#[test]
fn output_view_size_version_and_layer_enter_the_keys() {
    let a = asset();
    let cfg = Configuration::defaults(&a);
    let base = composite_key(&a, &cfg, 0, &image(&wide(512)));
    assert_ne!(base, composite_key(&a, &cfg, 1, &image(&wide(512))));
    assert_ne!(base, composite_key(&a, &cfg, 0, &image(&wide(513))));
    let l = layer_key(&a, 0, 0, &cfg, (8, 8));
    assert_ne!(l, layer_key(&a, 0, 1, &cfg, (8, 8)));
    assert_ne!(l, layer_key(&a, 0, 0, &cfg, (8, 9)));
    assert_ne!(l, layer_key(&a, 1, 0, &cfg, (8, 8)));
    let mut doc = serde_json::to_value(&a.spec).unwrap();
    doc["version"] = json!(4);
    let b = catalog::load_asset_str("mug", &doc.to_string(), &catalog::Limits::default()).unwrap();
    assert_ne!(base, composite_key(&b, &cfg, 0, &image(&wide(512))));
    assert_ne!(l, layer_key(&b, 0, 0, &cfg, (8, 8)));
}

#[test]
fn bad_configurations_are_named() {
    let a = asset();
    let e = |v: serde_json::Value| Configuration::parse(&a, &v).unwrap_err();
    assert_eq!(
        e(json!({"Colour": "Red"})),
        ConfigError::UnknownAttribute("Colour".into())
    );
    assert!(
        matches!(e(json!({"Color": "Purple"})), ConfigError::InvalidValue { attribute, .. } if attribute == "Color")
    );
    assert!(matches!(
        e(json!({"Size": 101})),
        ConfigError::InvalidValue { .. }
    ));
    assert_eq!(e(json!([1])), ConfigError::NotAnObject);
}

#[test]
fn views_are_selected_canonically() {
    let a = asset();
    assert_eq!(select_view(&a, &json!(null)), Ok(0));
    assert_eq!(select_view(&a, &json!({})), Ok(0));
    assert_eq!(select_view(&a, &json!({"Camera": 1.0})), Ok(1));
    assert!(matches!(
        select_view(&a, &json!({"Camera": 7})),
        Err(ConfigError::UnknownView(..))
    ));
}

/// Pinned: if these move, every deployed cache is invalidated. Bump the salt
/// in `layer_key`/`composite_key` on purpose, then update the values.
#[test]
fn demo_keys_are_pinned() {
    let catalog = Catalog::demo().unwrap();
    let sofa = catalog.get(&DEMO_ASSET_ID.parse().unwrap()).unwrap();
    let cfg = Configuration::defaults(sofa);
    let input = format!(
        "layercake/composite/2\nasset={}\nversion={}\ndefinition={}\nepoch=0\nconfig={}\nview={}\noutput=fmt=png\n",
        sofa.id,
        sofa.version,
        Key(sofa.fingerprint).hex(),
        cfg.canonical(sofa),
        r#"{"Camera":0}"#
    );
    assert_eq!(
        composite_key(sofa, &cfg, 0, &image(&wide_png())),
        Key(*blake3::hash(input.as_bytes()).as_bytes())
    );
    let a = asset();
    let cfg = Configuration::parse(&a, &json!({"Size": 2.5, "Tint": "#102030"})).unwrap();
    assert_eq!(
        cfg.canonical(&a),
        r#"{"Color":"Red","Engraved":false,"Size":2.5,"Tint":{"b":48,"g":32,"r":16}}"#
    );
    assert_eq!(
        composite_key(&a, &cfg, 1, &image(&wide_png())).hex(),
        PINNED_COMPOSITE
    );
    assert_eq!(layer_key(&a, 1, 1, &cfg, (8, 8)).hex(), PINNED_LAYER);
}

const PINNED_COMPOSITE: &str = "6a73de9dc4f13aef6dca2aca031f4e14558c9f454ea040f26ea077c528878e98";
const PINNED_LAYER: &str = "9ff218303a05f13097ebde8f803242ee12914fed5289cd3dc74bc66b6275a501";

proptest! {
    /// Any JSON as a configuration: parsed or refused, never a panic, and a
    /// refusal names the attribute it is about (one the input names).
    #[test]
    fn any_json_configuration_is_parsed_or_refused_by_name(
        v in crate::catalog::load_props::arb_json(),
        extra in prop::collection::btree_map(prop_oneof![Just("Color".to_string()), Just("Size".to_string()), Just("Engraved".to_string()), Just("Tint".to_string()), ".{0,6}"], crate::catalog::load_props::arb_json(), 0..4),
    ) {
        let a = asset();
        for input in [v.clone(), serde_json::Value::Object(extra.clone().into_iter().collect())] {
            match Configuration::parse(&a, &input) {
                Ok(_) => {}
                Err(ConfigError::NotAnObject) => prop_assert!(!input.is_object() && !input.is_null()),
                Err(ConfigError::UnknownAttribute(n) | ConfigError::InvalidValue { attribute: n, .. }) => {
                    prop_assert!(input.get(&n).is_some(), "{} names {}", input, n);
                }
                Err(e) => prop_assert!(false, "{}: {}", input, e),
            }
        }
    }
}

/// An encoded image's key, with cache buster `buster` (empty: none).
fn image_key(a: &Asset, cfg: &Configuration, view: usize, output: &Output, buster: &str) -> Key {
    composite_key(a, cfg, view, &OutputPart::Image { output, buster })
}

/// The flattened stack's key, cropped to `crop`, with cache buster `buster`.
fn flattened_key(
    a: &Asset,
    cfg: &Configuration,
    view: usize,
    crop: Option<Rect>,
    buster: &str,
) -> Key {
    composite_key(a, cfg, view, &OutputPart::Flattened { crop, buster })
}

/// Pinned: the output part of the composite key (an encoded image, with
/// and without the cache buster; the flattened stack, with and without a
/// crop and a buster). Computed by the code that concatenated these parts
/// in `pipeline`; stored objects are addressed by them.
#[test]
fn output_parts_are_pinned() {
    let a = asset();
    let cfg = Configuration::parse(&a, &json!({"Size": 2.5, "Tint": "#102030"})).unwrap();
    let crop = Rect {
        x: 1,
        y: 2,
        width: 3,
        height: 4,
    };
    let output = Output {
        width: Some(512),
        height: Some(256),
        fit: Fit::Cover,
        crop: Some(crop),
        format: Format::Webp,
        quality: Some(80),
    };
    assert_eq!(
        output.canonical(),
        "fmt=webp;q=80;w=512;h=256;fit=cover;crop=1,2,3,4"
    );
    let png = Output {
        width: None,
        height: None,
        fit: Fit::Contain,
        crop: None,
        format: Format::Png,
        quality: None,
    };
    let cases: [(&str, Key, &str); 8] = [
        (
            "image",
            image_key(&a, &cfg, 1, &output, ""),
            "bbca3a99d515466533843054a102bd1b9a9a74057e6a3c781d3afbd01c7403eb",
        ),
        (
            "image + buster",
            image_key(&a, &cfg, 1, &output, "b7"),
            "984d331ddcc22569964b0b47433fc6e5c072c9994cda5cad50e7f9fd533f76fd",
        ),
        ("png", image_key(&a, &cfg, 1, &png, ""), PINNED_COMPOSITE),
        (
            "png + buster",
            image_key(&a, &cfg, 1, &png, "v2.x_y-z"),
            "b25a945b5449675aa1141e075ccdebc8e15aa396c4290ccbd1abdb330f45e8c8",
        ),
        (
            "flattened",
            flattened_key(&a, &cfg, 1, None, ""),
            "400188f29ba59697be17daa7ac1ff9c657201e379ae8e396db9050b1964633c1",
        ),
        (
            "flattened + crop",
            flattened_key(&a, &cfg, 1, Some(crop), ""),
            "0d352d3f724cfd1504a6447cd956d1d022c94b2209480b24101a553605225f0c",
        ),
        (
            "flattened + buster",
            flattened_key(&a, &cfg, 1, None, "b7"),
            "d6187da9970c8c652dc707410b69a4c7d575bbb180fe4c9334a1dc830305d03c",
        ),
        (
            "flattened + crop + buster",
            flattened_key(&a, &cfg, 1, Some(crop), "b7"),
            "0761f82f50fbe11d93293c1ef408da4ebbe48ff0eebf1572a9d8b920abcae982",
        ),
    ];
    let got: Vec<String> = cases
        .iter()
        .map(|(what, key, _)| format!("{what}: {}", key.hex()))
        .collect();
    let mut seen = std::collections::HashSet::new();
    for (what, key, want) in cases {
        assert_eq!(key.hex(), want, "{what}; all: {got:#?}");
        assert!(seen.insert(key), "{what}: a key of its own");
    }
}

/// The demo sofa's visible layers: legs by `Legs`, the skirt by `Skirt`;
/// each with the key and the `dependsOn` values a render of it sees.
#[test]
fn visible_layers_are_listed_bottom_to_top_with_their_keys() {
    let catalog = Catalog::demo().unwrap();
    let sofa = catalog.get(&DEMO_ASSET_ID.parse().unwrap()).unwrap();
    let cases = [
        (
            json!({}),
            vec!["Backdrop", "Shadow", "Legs: Tapered Oak", "Body", "Pillows"],
        ),
        (
            json!({"Legs": "Chrome Sled", "Skirt": true}),
            vec![
                "Backdrop",
                "Shadow",
                "Legs: Chrome Sled",
                "Body",
                "Skirt",
                "Pillows",
            ],
        ),
    ];
    let size = (sofa.width, sofa.height);
    for (json, want) in cases {
        let cfg = Configuration::parse(sofa, &json).unwrap();
        for view in 0..sofa.views.len() {
            let listed: Vec<LayerIdentity> = visible_layers(sofa, &cfg, view, size).collect();
            let names: Vec<&str> = listed
                .iter()
                .map(|l| sofa.layers[l.layer].name.as_str())
                .collect();
            assert_eq!(names, want, "{json}");
            for l in &listed {
                assert_eq!((l.view, l.size), (view, size));
                assert_eq!(l.key, layer_key(sofa, l.layer, view, &cfg, size));
                assert_eq!(l.values, cfg.subset(&sofa.layers[l.layer].depends_on));
                assert_eq!(*l, LayerIdentity::of(sofa, l.layer, view, &cfg, size));
            }
        }
    }
}
