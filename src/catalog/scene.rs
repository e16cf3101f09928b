//! 3D assets: the scene file, and the checks of what a definition says of
//! its scene (attribute changes, cameras, what each layer draws).
//!
//! Names inside the scene (collections, objects, materials, cameras) can
//! only be checked by Blender, at render time, where a missing one fails
//! the render for good naming it; everything else is checked here, at
//! load, naming the field.

use super::spec::{AttributeScene, BlenderLayer, CameraSpec, SceneSpec};
use super::{AttrKind, Attribute};
use base64::Engine as _;
use std::sync::Arc;

/// Suffix of a bundle entry carrying a binary scene file as base64.
const BASE64_SUFFIX: &str = "#base64";

/// A 3D asset's scene file, read once and shared by its layers.
#[derive(Clone, PartialEq)]
pub struct Scene {
    /// As the definition names it, relative to the asset file.
    pub file: String,
    pub bytes: Arc<[u8]>,
    /// blake3 of `bytes`: part of every layer key of the asset.
    pub hash: [u8; 32],
    pub floor: Option<String>,
    /// Pinned by the asset (so in its keys), over the backend's defaults.
    pub samples: Option<u32>,
    pub seed: Option<u32>,
}

impl std::fmt::Debug for Scene {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scene({}, {} bytes)", self.file, self.bytes.len())
    }
}

impl Scene {
    pub fn hash_hex(&self) -> String {
        self.hash.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// `blend` or `py`.
    pub fn extension(&self) -> &'static str {
        if self.file.ends_with(".blend") {
            "blend"
        } else {
            "py"
        }
    }

    /// The bundle entry that carries this file (`Asset::bundle`): the text
    /// of a script, a `.blend` as base64 under `<file>#base64`.
    pub fn bundled(&self) -> (String, String) {
        match std::str::from_utf8(&self.bytes) {
            Ok(text) if self.extension() == "py" => (self.file.clone(), text.to_string()),
            _ => (
                format!("{}{BASE64_SUFFIX}", self.file),
                base64::engine::general_purpose::STANDARD.encode(&self.bytes),
            ),
        }
    }

    /// The scene file `spec` names, from `read` (bytes of a path relative
    /// to the asset file, within `max` bytes; `Err` a message).
    ///
    /// # Errors
    /// A `(field, message)` naming what is wrong.
    pub(super) fn load(
        spec: &SceneSpec,
        read: &dyn Fn(&str, usize) -> Result<Vec<u8>, String>,
        max: usize,
    ) -> Result<Scene, (String, String)> {
        if !(spec.file.ends_with(".blend") || spec.file.ends_with(".py")) {
            return Err((
                "scene.file".into(),
                format!("\"{}\": a .blend file or a .py script", spec.file),
            ));
        }
        if spec.floor.as_deref().is_some_and(|f| f.trim().is_empty()) {
            return Err(("scene.floor".into(), "must not be empty".into()));
        }
        if spec.samples.is_some_and(|n| !(1..=65_536).contains(&n)) {
            return Err(("scene.samples".into(), "1 to 65536".into()));
        }
        if spec.seed.is_some_and(|n| i32::try_from(n).is_err()) {
            return Err((
                "scene.seed".into(),
                format!(
                    "at most {} (Cycles' seed is a signed 32-bit integer)",
                    i32::MAX
                ),
            ));
        }
        let bytes = read(&spec.file, max).map_err(|m| ("scene.file".to_string(), m))?;
        if bytes.len() > max {
            return Err((
                "scene.file".into(),
                format!("over catalog.max_scene_bytes ({max})"),
            ));
        }
        Ok(Scene {
            file: spec.file.clone(),
            hash: *blake3::hash(&bytes).as_bytes(),
            bytes: bytes.into(),
            floor: spec.floor.clone(),
            samples: spec.samples,
            seed: spec.seed,
        })
    }
}

/// A bundle's scene file: the text under `file`, or base64 under
/// `file#base64`.
pub(super) fn from_bundle(
    files: &std::collections::BTreeMap<String, String>,
    file: &str,
) -> Option<Result<Vec<u8>, String>> {
    if let Some(text) = files.get(file) {
        return Some(Ok(text.as_bytes().to_vec()));
    }
    files.get(&format!("{file}{BASE64_SUFFIX}")).map(|b64| {
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| format!("\"{file}\" in the bundle is not base64: {e}"))
    })
}

fn names_ok(list: &[String], field: &str) -> Result<(), (String, String)> {
    match list.iter().position(|n| n.trim().is_empty()) {
        Some(i) => Err((format!("{field}[{i}]"), "must not be empty".into())),
        None => Ok(()),
    }
}

/// Checks what attribute `attr` changes in the scene; `at` is its field path.
///
/// # Errors
/// `(field, message)`.
pub(super) fn check_attribute(
    attr: &Attribute,
    scene: &AttributeScene,
    at: &str,
) -> Result<(), (String, String)> {
    if let Some(m) = &scene.material {
        if m.trim().is_empty() {
            return Err((format!("{at}.scene.material"), "must not be empty".into()));
        }
        match &attr.kind {
            AttrKind::Color => {}
            AttrKind::String { options } => {
                if let Some(o) = options.iter().find(|o| !o.metadata.contains_key("color")) {
                    return Err((
                        format!("{at}.scene.material"),
                        format!(
                            "option \"{}\" has no metadata.color for material \"{m}\"",
                            o.value
                        ),
                    ));
                }
                if let Some(o) = options.iter().find(|o| {
                    super::Rgb::parse_hex(o.metadata.get("color").map_or("", String::as_str))
                        .is_none()
                }) {
                    return Err((
                        format!("{at}.scene.material"),
                        format!("option \"{}\": metadata.color is not #rrggbb", o.value),
                    ));
                }
            }
            _ => {
                return Err((
                    format!("{at}.scene.material"),
                    "only string (with metadata.color) and color attributes set a material".into(),
                ));
            }
        }
    }
    for (option, names) in &scene.show {
        let field = format!("{at}.scene.show.{option}");
        let known = match &attr.kind {
            AttrKind::String { options } => options.iter().any(|o| &o.value == option),
            AttrKind::Boolean => option == "true" || option == "false",
            _ => {
                return Err((
                    field,
                    "only string and boolean attributes show collections".into(),
                ));
            }
        };
        if !known {
            return Err((
                field,
                format!("\"{option}\" is not an option of \"{}\"", attr.name),
            ));
        }
        names_ok(&names.collections, &format!("{field}.collections"))?;
        names_ok(&names.objects, &format!("{field}.objects"))?;
    }
    Ok(())
}

/// Checks a view's camera; `at` is the view's field path.
///
/// # Errors
/// `(field, message)`.
pub(super) fn check_camera(c: &CameraSpec, at: &str) -> Result<(), (String, String)> {
    let field = |f: &str| format!("{at}.camera.{f}");
    let orbit = [c.azimuth, c.elevation, c.distance];
    match (
        &c.object,
        orbit.iter().all(Option::is_some),
        orbit.iter().any(Option::is_some),
    ) {
        (Some(o), _, false) if c.target.is_none() && c.lens.is_none() => {
            if o.trim().is_empty() {
                return Err((field("object"), "must not be empty".into()));
            }
            return Ok(());
        }
        (Some(_), _, _) => {
            return Err((
                field("object"),
                "a camera object, or an orbit (azimuth, elevation, distance, target, lens): not both".into(),
            ));
        }
        (None, true, _) => {}
        (None, false, _) => {
            return Err((
                format!("{at}.camera"),
                "give \"object\" (a camera of the scene), or \"azimuth\", \"elevation\" and \"distance\"".into(),
            ));
        }
    }
    let check = |f: &str, v: Option<f64>, lo: f64, hi: f64| match v {
        Some(x) if !(x.is_finite() && (lo..=hi).contains(&x)) => {
            Err((field(f), format!("{x} is outside {lo}..={hi}")))
        }
        _ => Ok(()),
    };
    check("azimuth", c.azimuth, -360.0, 360.0)?;
    check("elevation", c.elevation, -89.0, 89.0)?;
    check("distance", c.distance, 0.01, 100_000.0)?;
    check("lens", c.lens, 1.0, 5000.0)?;
    if let Some(t) = c.target
        && t.iter().any(|x| !x.is_finite() || x.abs() > 100_000.0)
    {
        return Err((
            field("target"),
            "three finite coordinates, in metres".into(),
        ));
    }
    Ok(())
}

/// Checks what a 3D layer draws; `at` is its `render` field path.
///
/// # Errors
/// `(field, message)`.
pub(super) fn check_layer(
    b: &BlenderLayer,
    at: &str,
    scene: &Scene,
) -> Result<(), (String, String)> {
    if b.shadow && scene.floor.is_none() {
        return Err((
            format!("{at}.blender.shadow"),
            "a shadow layer needs the scene's floor (\"scene\": {\"floor\": \"<object>\"})".into(),
        ));
    }
    names_ok(&b.collections, &format!("{at}.blender.collections"))?;
    names_ok(&b.objects, &format!("{at}.blender.objects"))?;
    if !b.shadow && b.collections.is_empty() && b.objects.is_empty() {
        return Err((
            format!("{at}.blender"),
            "name the collections or objects it draws, or make it the shadow layer (\"shadow\": true)".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::catalog::{Catalog, CatalogError, Limits, load_asset_bundle, load_asset_str};
    use serde_json::{Value, json};
    use std::collections::BTreeMap;
    use std::path::Path;

    fn demo_dir() -> &'static Path {
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/demo/blender"))
    }

    /// The 3D demo's definition and its scene script.
    fn demo() -> (Value, BTreeMap<String, String>) {
        let doc: Value =
            serde_json::from_str(&std::fs::read_to_string(demo_dir().join("sofa.json")).unwrap())
                .unwrap();
        let scene = std::fs::read_to_string(demo_dir().join("sofa/scene.py")).unwrap();
        (doc, BTreeMap::from([("sofa/scene.py".to_string(), scene)]))
    }

    fn load(
        doc: &Value,
        files: &BTreeMap<String, String>,
    ) -> Result<crate::catalog::Asset, CatalogError> {
        load_asset_bundle("t", &doc.to_string(), files, &Limits::default())
    }

    #[test]
    fn the_3d_demo_loads_with_its_turntable() {
        let c = Catalog::from_dir(demo_dir(), &Limits::default()).unwrap();
        let a = c.assets().next().unwrap();
        assert_eq!(a.views.len(), 28);
        assert_eq!(a.turntable().len(), 24);
        assert_eq!(a.stills(), [0, 1, 2, 3]);
        let scene = a.scene.as_ref().unwrap();
        assert_eq!(
            (scene.extension(), scene.floor.as_deref()),
            ("py", Some("Floor"))
        );
        // What a remote node gets rebuilds the same keys.
        let (definition, files) = a.bundle();
        let b = load_asset_bundle(
            "remote",
            &definition.to_string(),
            &files,
            &Limits::default(),
        )
        .unwrap();
        for (x, y) in a.layers.iter().zip(&b.layers) {
            assert_eq!(x.recipe.fingerprint, y.recipe.fingerprint);
        }
    }

    #[test]
    fn the_scene_file_is_in_every_layer_key_and_unrelated_edits_are_not() {
        let (doc, files) = demo();
        let a = load(&doc, &files).unwrap();
        let mut edited = files.clone();
        edited
            .get_mut("sofa/scene.py")
            .unwrap()
            .push_str("\n# a new chair leg\n");
        let b = load(&doc, &edited).unwrap();
        for (x, y) in a.layers.iter().zip(&b.layers) {
            assert_ne!(x.recipe.fingerprint, y.recipe.fingerprint, "{}", x.name);
        }
        // Another pillow colour: the body's layer keeps its key, the pillows' changes.
        let mut doc2 = doc.clone();
        doc2["attributes"][1]["values"][0]["metadata"]["color"] = json!("#ffffff");
        let c = load(&doc2, &files).unwrap();
        let by_name = |asset: &crate::catalog::Asset, n: &str| {
            asset
                .layers
                .iter()
                .find(|l| l.name == n)
                .unwrap()
                .recipe
                .fingerprint
        };
        assert_eq!(by_name(&a, "Body"), by_name(&c, "Body"));
        assert_ne!(by_name(&a, "Pillows"), by_name(&c, "Pillows"));
    }

    #[test]
    fn a_binary_scene_travels_as_base64() {
        let (mut doc, _) = demo();
        doc["scene"]["file"] = json!("sofa/scene.blend");
        let bytes: Vec<u8> = (0u8..=255).cycle().take(3000).collect();
        let scene = super::Scene {
            file: "sofa/scene.blend".into(),
            hash: *blake3::hash(&bytes).as_bytes(),
            bytes: bytes.clone().into(),
            floor: None,
            samples: None,
            seed: None,
        };
        let (key, text) = scene.bundled();
        assert_eq!(key, "sofa/scene.blend#base64");
        let a = load(&doc, &BTreeMap::from([(key, text)])).unwrap();
        assert_eq!(&a.scene.unwrap().bytes[..], &bytes[..]);
    }

    #[test]
    fn mistakes_are_refused_naming_the_field() {
        let (doc, files) = demo();
        let cases: Vec<(&str, Value, &str, &str)> = vec![
            (
                "/views/2/camera",
                Value::Null,
                "views[2].camera",
                "needs a camera",
            ),
            (
                "/views/0/camera/elevation",
                json!(95),
                "views[0].camera.elevation",
                "outside",
            ),
            (
                "/views/0/camera/object",
                json!("Cam"),
                "views[0].camera.object",
                "not both",
            ),
            (
                "/attributes/2/scene",
                json!({"show": {"Gold": {"collections": ["Legs Gold"]}}}),
                "attributes[2].scene.show.Gold",
                "not an option",
            ),
            (
                "/attributes/2/scene",
                json!({"material": "Wood"}),
                "attributes[2].scene.material",
                "no metadata.color",
            ),
            (
                "/attributes/3/scene",
                json!({"material": "Skirt"}),
                "attributes[3].scene.material",
                "only string",
            ),
            (
                "/layers/7/render",
                json!({"blender": {}}),
                "layers[7].render.blender",
                "name the collections",
            ),
            (
                "/layers/7/render",
                json!({"svg": "x.svg"}),
                "layers[7].render.blender",
                "every layer",
            ),
            (
                "/layers/7/render/blender/collections/0",
                json!(" "),
                "layers[7].render.blender.collections[0]",
                "empty",
            ),
            (
                "/scene/floor",
                Value::Null,
                "layers[0].render.blender.shadow",
                "needs the scene's floor",
            ),
            ("/scene/samples", json!(0), "scene.samples", "1 to 65536"),
            (
                "/scene/seed",
                json!(3_000_000_000u64),
                "scene.seed",
                "signed 32-bit",
            ),
            (
                "/scene/file",
                json!("../scene.py"),
                "scene.file",
                "inside the catalogue",
            ),
            (
                "/scene/file",
                json!("sofa/scene.obj"),
                "scene.file",
                ".blend file or a .py",
            ),
            (
                "/scene/file",
                json!("sofa/missing.py"),
                "scene.file",
                "was not sent",
            ),
            (
                "/renderer",
                json!("builtin"),
                "renderer",
                "names its render backend",
            ),
        ];
        for (pointer, value, field, message) in cases {
            let mut d = doc.clone();
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            match d.pointer_mut(parent).unwrap() {
                Value::Array(items) => items[key.parse::<usize>().unwrap()] = value,
                Value::Object(map) => {
                    map.insert(key.to_string(), value);
                }
                other => panic!("{parent} is {other}"),
            }
            let e = load(&d, &files).unwrap_err();
            assert_eq!(e.field, field, "{pointer}: {e}");
            assert!(e.message.contains(message), "{pointer}: {e}");
        }
        // A 2D asset cannot carry 3D parts.
        let minimal = || {
            json!({
                "id": "6f1c7d2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f", "name": "Mug", "version": 1,
                "width": 64, "height": 64, "attributes": [],
                "views": [{"name": "front", "stage": {"Camera": 0}}],
                "layers": [{"id": "0e7b3c1a-2d4f-4a6b-8c9d-1e2f3a4b5c6d", "name": "Body",
                            "render": {"template": "<svg xmlns='http://www.w3.org/2000/svg'/>"}}]
            })
        };
        let mut flat = minimal();
        flat["views"][0]["camera"] = json!({"object": "Cam"});
        let e = load_asset_str("t", &flat.to_string(), &Limits::default()).unwrap_err();
        assert_eq!(e.field, "views[0].camera");
        let mut flat = minimal();
        flat["scene"] = json!({"file": "s.py"});
        let e = load_asset_str("t", &flat.to_string(), &Limits::default()).unwrap_err();
        assert!(e.message.contains("come from catalogue files"), "{e}");
        // Over the scene cap.
        let small = Limits {
            scene_bytes: 100,
            ..Limits::default()
        };
        let e = load_asset_bundle("t", &doc.to_string(), &files, &small).unwrap_err();
        assert!(e.message.contains("max_scene_bytes"), "{e}");
    }
}
