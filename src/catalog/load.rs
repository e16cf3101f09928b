//! Loading and validating asset files.
//!
//! A catalogue is a folder of asset files (`*.json` or `*.toml`, one asset
//! each); template paths inside a file are relative to that folder. The demo
//! catalogue under `catalog/` in the repository is compiled into the binary
//! with `include_dir`, and goes through exactly the same checks.
//!
//! Every problem is reported as `file: field: message`, the field written as
//! a path into the document (`layers[3].dependsOn[0]`).

use super::spec::{AssetSpec, AttributeType, OptionSpec, RenderSpec};
use super::{
    Asset, AttrKind, AttrOption, Attribute, Catalog, Layer, Limits, Recipe, Scene, Template, Value,
    View,
};
use include_dir::{Dir, include_dir};
use std::collections::{BTreeMap, HashSet};
use std::path::{Component, Path};
use std::sync::Arc;
use uuid::Uuid;

static DEMO: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/catalog");

/// The id of the demo sofa in the built-in catalogue.
pub const DEMO_ASSET_ID: &str = "03a29397-2265-40cd-8c45-41a1c4e12574";

/// Largest canvas side accepted in a definition. Renders of this size are
/// 256 MiB of RGBA; anything larger is a typo, not a product shot.
const MAX_CANVAS_SIDE: u32 = 8192;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}: {field}: {message}")]
pub struct CatalogError {
    pub file: String,
    /// Path of the offending field inside the document; empty for the file itself.
    pub field: String,
    pub message: String,
}

impl CatalogError {
    pub fn new(
        file: impl Into<String>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        CatalogError {
            file: file.into(),
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Where template files come from.
enum Source<'a> {
    Dir(&'a Path),
    Embedded(&'static Dir<'static>),
    /// Template files sent along with the definition (see `Asset::bundle`).
    Map(&'a BTreeMap<String, String>),
    /// Definitions submitted over the API carry their templates inline.
    None,
}

/// Template texts as a definition may have them: read from its source,
/// within its caps.
struct Templates<'a> {
    src: &'a Source<'a>,
    limits: &'a Limits,
}

impl Templates<'_> {
    /// A template file, refused past `catalog.max_template_bytes` or with a
    /// reference to a file or URL.
    fn read(&self, rel: &str) -> Result<String, String> {
        let text = self.src.read(rel, self.limits.template_bytes)?;
        check_template(&text, self.limits).map_err(|m| format!("{rel}: {m}"))?;
        Ok(text)
    }
}

impl Source<'_> {
    /// The file at `rel` (relative to the asset file, inside the
    /// catalogue), as bytes: at most `max` + 1 are read from a folder, so
    /// the caller's size check sees an oversized file without holding it.
    /// `what` names it in errors ("template", "scene file").
    fn read_bytes(&self, what: &str, rel: &str, max: usize) -> Result<Vec<u8>, String> {
        let p = Path::new(rel);
        if p.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(format!(
                "{what} path \"{rel}\" must be relative and stay inside the catalogue"
            ));
        }
        match self {
            Source::Dir(d) => {
                use std::io::Read as _;
                let mut bytes = Vec::new();
                std::fs::File::open(d.join(p))
                    .and_then(|f| f.take(max as u64 + 1).read_to_end(&mut bytes))
                    .map_err(|e| format!("cannot read {what} \"{rel}\": {e}"))?;
                Ok(bytes)
            }
            Source::Embedded(d) => d
                .get_file(p)
                .map(|f| f.contents().to_vec())
                .ok_or_else(|| format!("{what} \"{rel}\" is not in the built-in catalogue")),
            Source::Map(m) => super::scene::from_bundle(m, rel).unwrap_or_else(|| {
                Err(format!("{what} \"{rel}\" was not sent with the definition"))
            }),
            Source::None if what == "template" => Err(format!(
                "template file \"{rel}\" cannot be read here; give the template inline"
            )),
            Source::None => Err(format!(
                "{what} \"{rel}\" cannot be read here: 3D assets come from catalogue files"
            )),
        }
    }

    /// A template's text (its size is checked by the caller).
    fn read(&self, rel: &str, max: usize) -> Result<String, String> {
        String::from_utf8(self.read_bytes("template", rel, max)?)
            .map_err(|_| format!("template \"{rel}\" is not UTF-8 text"))
    }
}

pub(super) fn demo() -> Result<Catalog, CatalogError> {
    let mut assets = Vec::new();
    let mut files: Vec<_> = DEMO.files().collect();
    files.sort_by_key(|f| f.path());
    for f in files {
        let name = f.path().to_string_lossy().into_owned();
        // Asset files sit at the top; folders below hold their templates.
        if !name.contains('/') && is_asset_file(&name) {
            let text = f
                .contents_utf8()
                .ok_or_else(|| CatalogError::new(&name, "", "not UTF-8"))?;
            assets.push(parse(
                &name,
                text,
                &Source::Embedded(&DEMO),
                &Limits::default(),
            )?);
        }
    }
    Catalog::from_assets(assets)
}

pub(super) fn from_dir(dir: &Path, limits: &Limits) -> Result<Catalog, CatalogError> {
    let shown = dir.display().to_string();
    let entries = std::fs::read_dir(dir)
        .map_err(|e| CatalogError::new(&shown, "", format!("cannot read folder: {e}")))?;
    let mut paths = Vec::new();
    for e in entries {
        let e = e.map_err(|e| CatalogError::new(&shown, "", e.to_string()))?;
        let p = e.path();
        if p.is_file() && is_asset_file(&p.to_string_lossy()) {
            paths.push(p);
        }
    }
    paths.sort();
    let mut assets = Vec::new();
    for p in paths {
        let name = p.display().to_string();
        let text =
            std::fs::read_to_string(&p).map_err(|e| CatalogError::new(&name, "", e.to_string()))?;
        let mut asset = parse(&name, &text, &Source::Dir(dir), limits)?;
        asset.source_mtime = std::fs::metadata(&p)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_micros() as i64);
        assets.push(asset);
    }
    let catalog = Catalog::from_assets(assets)?;
    if catalog.is_empty() {
        return Err(CatalogError::new(
            &shown,
            "",
            "no asset files (*.json, *.toml) in this folder",
        ));
    }
    Ok(catalog)
}

/// Parses and validates one asset definition whose templates are inline,
/// within `limits`.
///
/// # Errors
/// [`CatalogError`] naming `label` and the field (or the cap) at fault.
pub fn load_asset_str(label: &str, json: &str, limits: &Limits) -> Result<Asset, CatalogError> {
    parse(&format!("{label}.json"), json, &Source::None, limits)
}

/// Parses and validates one asset definition (JSON) with the template
/// files it names, as [`crate::catalog::Asset::bundle`] gives them.
///
/// # Errors
/// [`CatalogError`] naming `label` and the field at fault.
pub fn load_asset_bundle(
    label: &str,
    json: &str,
    files: &BTreeMap<String, String>,
    limits: &Limits,
) -> Result<Asset, CatalogError> {
    parse(&format!("{label}.json"), json, &Source::Map(files), limits)
}

fn is_asset_file(name: &str) -> bool {
    name.ends_with(".json") || name.ends_with(".toml")
}

fn parse(file: &str, text: &str, src: &Source<'_>, limits: &Limits) -> Result<Asset, CatalogError> {
    let doc: serde_json::Value = if file.ends_with(".toml") {
        let table: toml::Table = toml::from_str(text)
            .map_err(|e| CatalogError::new(file, "", e.message().to_string()))?;
        serde_json::to_value(table).map_err(|e| CatalogError::new(file, "", e.to_string()))?
    } else {
        serde_json::from_str(text).map_err(|e| CatalogError::new(file, "", e.to_string()))?
    };
    let spec: AssetSpec = serde_path_to_error::deserialize(doc).map_err(|e| {
        let field = e.path().to_string();
        CatalogError::new(
            file,
            if field == "." { String::new() } else { field },
            e.into_inner().to_string(),
        )
    })?;
    validate(file, spec, src, limits)
}

/// Every cap that can be checked from the document alone, before anything
/// is expanded (templates are checked as they are read).
fn check_limits(spec: &AssetSpec, limits: &Limits, err: &ErrFn<'_>) -> Result<(), CatalogError> {
    let over = |field: &str, what: &str, n: u64, cap: &str, max: u64| {
        Err(err(
            field.into(),
            format!("{n} {what}, over catalog.{cap} ({max})"),
        ))
    };
    let n = |v: usize| v as u64;
    if spec.views.len() > limits.views {
        return over(
            "views",
            "views",
            n(spec.views.len()),
            "max_views",
            n(limits.views),
        );
    }
    if spec.layers.len() > limits.layers {
        return over(
            "layers",
            "layers",
            n(spec.layers.len()),
            "max_layers",
            n(limits.layers),
        );
    }
    if spec.attributes.len() > limits.attributes {
        return over(
            "attributes",
            "attributes",
            n(spec.attributes.len()),
            "max_attributes",
            n(limits.attributes),
        );
    }
    for (i, a) in spec.attributes.iter().enumerate() {
        let count = a.values.as_ref().map_or(0, Vec::len);
        if count > limits.options {
            return over(
                &format!("attributes[{i}].values"),
                "options",
                n(count),
                "max_options",
                n(limits.options),
            );
        }
    }
    let pixels = u64::from(spec.width) * u64::from(spec.height);
    if pixels > limits.canvas_pixels {
        return over(
            "width",
            &format!("canvas pixels ({}x{})", spec.width, spec.height),
            pixels,
            "max_canvas_pixels",
            limits.canvas_pixels,
        );
    }
    let compose = pixels
        .saturating_mul(4)
        .saturating_mul(n(spec.layers.len()));
    if compose > limits.compose_bytes {
        return over(
            "layers",
            &format!(
                "bytes for one compose ({}x{} x 4 bytes x {} layers)",
                spec.width,
                spec.height,
                spec.layers.len()
            ),
            compose,
            "max_compose_bytes",
            limits.compose_bytes,
        );
    }
    for (i, l) in spec.layers.iter().enumerate() {
        if let Some(t) = &l.render.template {
            check_template(t, limits)
                .map_err(|m| err(format!("layers[{i}].render.template"), m))?;
        }
    }
    Ok(())
}

/// The size and reference checks of one template text.
fn check_template(text: &str, limits: &Limits) -> Result<(), String> {
    if text.len() > limits.template_bytes {
        return Err(format!(
            "{} bytes, over catalog.max_template_bytes ({})",
            text.len(),
            limits.template_bytes
        ));
    }
    super::check_refs(text, limits.data_url_bytes)
}

fn validate(
    file: &str,
    spec: AssetSpec,
    src: &Source<'_>,
    limits: &Limits,
) -> Result<Asset, CatalogError> {
    let err = |field: String, msg: String| CatalogError::new(file, field, msg);
    check_limits(&spec, limits, &err)?;
    let id = Uuid::parse_str(&spec.id)
        .map_err(|_| err("id".into(), format!("\"{}\" is not a UUID", spec.id)))?;
    if spec.name.trim().is_empty() {
        return Err(err("name".into(), "must not be empty".into()));
    }
    if spec.version == 0 {
        return Err(err("version".into(), "must be 1 or more".into()));
    }
    for (field, v) in [("width", spec.width), ("height", spec.height)] {
        if v == 0 || v > MAX_CANVAS_SIDE {
            return Err(err(
                field.into(),
                format!("{v} is outside 1..={MAX_CANVAS_SIDE}"),
            ));
        }
    }
    if let Some(r) = &spec.renderer
        && (r.is_empty()
            || !r
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    {
        return Err(err(
            "renderer".into(),
            format!("\"{r}\" is not a backend name (letters, digits, - and _)"),
        ));
    }
    let scene = match &spec.scene {
        Some(s) => {
            let read = |rel: &str, max: usize| src.read_bytes("scene file", rel, max);
            let scene = Scene::load(s, &read, limits.scene_bytes).map_err(|(f, m)| err(f, m))?;
            if matches!(spec.renderer.as_deref(), None | Some("builtin")) {
                return Err(err(
                    "renderer".into(),
                    "a 3D asset names its render backend (one of kind \"blender\" in [render.backends])".into(),
                ));
            }
            Some(Arc::new(scene))
        }
        None => None,
    };
    let attributes = attributes(&spec, &err)?;
    let views = views(&spec, scene.is_some(), &err)?;
    let layers = layers(
        &spec,
        &attributes,
        &views,
        scene.as_deref(),
        &Templates { src, limits },
        &err,
    )?;

    let mut h = blake3::Hasher::new();
    h.update(b"layercake/asset-definition/2\n");
    let unversioned = AssetSpec {
        version: 0,
        ..spec.clone()
    };
    h.update(
        serde_json::to_string(&unversioned)
            .unwrap_or_default()
            .as_bytes(),
    );
    for l in &layers {
        h.update(&l.recipe.fingerprint);
    }
    Ok(Asset {
        id,
        name: spec.name.clone(),
        version: spec.version,
        description: spec.description.clone(),
        width: spec.width,
        height: spec.height,
        attributes,
        views,
        layers,
        fingerprint: *h.finalize().as_bytes(),
        spec,
        org: Uuid::nil(),
        epoch: 0,
        created_at: 0,
        updated_at: 0,
        source_mtime: None,
        scene,
    })
}

type ErrFn<'a> = dyn Fn(String, String) -> CatalogError + 'a;

fn attributes(spec: &AssetSpec, err: &ErrFn<'_>) -> Result<Vec<Attribute>, CatalogError> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, a) in spec.attributes.iter().enumerate() {
        let at = |f: &str| format!("attributes[{i}]{f}");
        if a.name.trim().is_empty() {
            return Err(err(at(".name"), "must not be empty".into()));
        }
        if !seen.insert(a.name.as_str()) {
            return Err(err(
                at(".name"),
                format!("attribute \"{}\" is defined twice", a.name),
            ));
        }
        let only = |present: bool, field: &str, types: &str| {
            if present {
                Err(err(
                    at(&format!(".{field}")),
                    format!("only {types} attributes take \"{field}\""),
                ))
            } else {
                Ok(())
            }
        };
        let kind = match a.kind {
            AttributeType::String => {
                only(a.min.is_some(), "min", "number")?;
                only(a.max.is_some(), "max", "number")?;
                let values = a.values.as_ref().filter(|v| !v.is_empty()).ok_or_else(|| {
                    err(
                        at(".values"),
                        "a string attribute needs at least one value".into(),
                    )
                })?;
                let mut opts = Vec::new();
                let mut names = HashSet::new();
                for (j, o) in values.iter().enumerate() {
                    if !names.insert(o.value()) {
                        return Err(err(
                            at(&format!(".values[{j}]")),
                            format!("option \"{}\" is listed twice", o.value()),
                        ));
                    }
                    opts.push(match o {
                        OptionSpec::Plain(v) => AttrOption {
                            value: v.clone(),
                            label: None,
                            metadata: Default::default(),
                        },
                        OptionSpec::Detailed(d) => AttrOption {
                            value: d.value.clone(),
                            label: d.label.clone(),
                            metadata: d.metadata.clone(),
                        },
                    });
                }
                AttrKind::String { options: opts }
            }
            AttributeType::Number => {
                only(a.values.is_some(), "values", "string")?;
                let (min, max) = match (a.min, a.max) {
                    (Some(lo), Some(hi)) if lo.is_finite() && hi.is_finite() && lo <= hi => {
                        (lo, hi)
                    }
                    (Some(_), Some(_)) => {
                        return Err(err(
                            at(".max"),
                            "min and max must be finite with min <= max".into(),
                        ));
                    }
                    _ => {
                        return Err(err(
                            at(".min"),
                            "a number attribute needs min and max".into(),
                        ));
                    }
                };
                AttrKind::Number { min, max }
            }
            AttributeType::Boolean => {
                only(a.values.is_some(), "values", "string")?;
                only(a.min.is_some() || a.max.is_some(), "min", "number")?;
                AttrKind::Boolean
            }
            AttributeType::Color => {
                only(a.values.is_some(), "values", "string")?;
                only(a.min.is_some() || a.max.is_some(), "min", "number")?;
                AttrKind::Color
            }
        };
        let mut attr = Attribute {
            name: a.name.clone(),
            label: a.label.clone(),
            kind,
            default: Value::Bool(false),
            scene: None,
        };
        if let Some(s) = &a.scene {
            if spec.scene.is_none() {
                return Err(err(
                    at(".scene"),
                    "only 3D assets (with a \"scene\") say what an attribute changes in it".into(),
                ));
            }
            super::scene::check_attribute(&attr, s, &at("")).map_err(|(f, m)| err(f, m))?;
            attr.scene = Some(s.clone());
        }
        attr.default = match (&a.default, a.kind) {
            (None | Some(serde_json::Value::Null), AttributeType::Boolean) => Value::Bool(false),
            (None | Some(serde_json::Value::Null), _) => {
                return Err(err(at(".default"), "a default value is required".into()));
            }
            (Some(v), _) => attr
                .accept(v)
                .map_err(|e| err(at(".default"), e.to_string()))?,
        };
        out.push(attr);
    }
    Ok(out)
}

fn views(spec: &AssetSpec, is_3d: bool, err: &ErrFn<'_>) -> Result<Vec<View>, CatalogError> {
    if spec.views.is_empty() {
        return Err(err(
            "views".into(),
            "an asset needs at least one view".into(),
        ));
    }
    let mut names = HashSet::new();
    let mut stages = HashSet::new();
    let mut out = Vec::new();
    for (i, v) in spec.views.iter().enumerate() {
        let slug = !v.name.is_empty()
            && v.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !slug {
            return Err(err(
                format!("views[{i}].name"),
                format!("\"{}\" must be lowercase letters, digits and '-'", v.name),
            ));
        }
        if !names.insert(v.name.as_str()) {
            return Err(err(
                format!("views[{i}].name"),
                format!("view \"{}\" is defined twice", v.name),
            ));
        }
        if v.stage.is_empty() {
            return Err(err(
                format!("views[{i}].stage"),
                "must name at least one stage attribute, e.g. {\"Camera\": 0}".into(),
            ));
        }
        let canonical = crate::keys::canonical_json(&serde_json::Value::Object(v.stage.clone()));
        if stages.contains(&canonical) {
            return Err(err(
                format!("views[{i}].stage"),
                format!("another view already has the stage {canonical}"),
            ));
        }
        stages.insert(canonical.clone());
        match (&v.camera, is_3d) {
            (Some(c), true) => {
                super::scene::check_camera(c, &format!("views[{i}]")).map_err(|(f, m)| err(f, m))?
            }
            (None, true) => {
                return Err(err(
                    format!("views[{i}].camera"),
                    "every view of a 3D asset needs a camera".into(),
                ));
            }
            (Some(_), false) => {
                return Err(err(
                    format!("views[{i}].camera"),
                    "only 3D assets (with a \"scene\") take a camera".into(),
                ));
            }
            (None, false) => {}
        }
        out.push(View {
            name: v.name.clone(),
            label: v.label.clone().unwrap_or_else(|| v.name.clone()),
            stage: v.stage.clone(),
            stage_canonical: canonical,
            camera: v.camera.clone(),
            turntable: v.turntable,
        });
    }
    Ok(out)
}

fn layers(
    spec: &AssetSpec,
    attrs: &[Attribute],
    views: &[View],
    scene: Option<&Scene>,
    templates: &Templates<'_>,
    err: &ErrFn<'_>,
) -> Result<Vec<Layer>, CatalogError> {
    if spec.layers.is_empty() {
        return Err(err(
            "layers".into(),
            "an asset needs at least one layer".into(),
        ));
    }
    let index_of = |name: &str| attrs.iter().position(|a| a.name == name);
    let mut ids = HashSet::new();
    let mut out = Vec::new();
    for (i, l) in spec.layers.iter().enumerate() {
        let at = |f: &str| format!("layers[{i}]{f}");
        let id = Uuid::parse_str(&l.id)
            .map_err(|_| err(at(".id"), format!("\"{}\" is not a UUID", l.id)))?;
        if !ids.insert(id) {
            return Err(err(at(".id"), format!("layer id {id} is used twice")));
        }
        if l.name.trim().is_empty() {
            return Err(err(at(".name"), "must not be empty".into()));
        }
        let mut depends_on = Vec::new();
        for (j, d) in l.depends_on.iter().enumerate() {
            let k = index_of(d).ok_or_else(|| {
                err(
                    at(&format!(".dependsOn[{j}]")),
                    format!("unknown attribute \"{d}\""),
                )
            })?;
            if depends_on.contains(&k) {
                return Err(err(
                    at(&format!(".dependsOn[{j}]")),
                    format!("\"{d}\" is listed twice"),
                ));
            }
            depends_on.push(k);
        }
        depends_on.sort_unstable();
        let mut visible_when = Vec::new();
        for (name, want) in l.visible_when.iter().flatten() {
            let field = at(&format!(".visibleWhen.{name}"));
            let k = index_of(name)
                .ok_or_else(|| err(field.clone(), format!("unknown attribute \"{name}\"")))?;
            let wanted: Vec<&serde_json::Value> = match want {
                serde_json::Value::Array(xs) if xs.is_empty() => {
                    return Err(err(field, "needs at least one value".into()));
                }
                serde_json::Value::Array(xs) => xs.iter().collect(),
                v => vec![v],
            };
            let values = wanted
                .into_iter()
                .map(|v| {
                    attrs[k]
                        .accept(v)
                        .map_err(|e| err(field.clone(), e.to_string()))
                })
                .collect::<Result<_, _>>()?;
            visible_when.push((k, values));
        }
        let recipe = match (scene, &l.render.blender) {
            (Some(scene), Some(b)) => {
                if l.render.svg.is_some() || l.render.template.is_some() {
                    return Err(err(
                        at(".render"),
                        "a 3D layer draws the scene: no \"svg\" or \"template\"".into(),
                    ));
                }
                super::scene::check_layer(b, &at(".render"), scene).map_err(|(f, m)| err(f, m))?;
                recipe_3d(l, spec, &depends_on, scene)
            }
            (Some(_), None) => {
                return Err(err(
                    at(".render.blender"),
                    "every layer of a 3D asset says what it draws of the scene".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(err(
                    at(".render.blender"),
                    "only 3D assets (with a \"scene\") have 3D layers".into(),
                ));
            }
            (None, None) => recipe(
                &l.render,
                spec,
                views,
                &depends_on,
                templates,
                &|m| err(at(".render"), m),
                attrs,
            )?,
        };
        out.push(Layer {
            id,
            name: l.name.clone(),
            depends_on,
            visible_when,
            recipe,
        });
    }
    Ok(out)
}

/// `v` as JSON (these are plain data: it cannot fail).
fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// A 3D layer's recipe: what it draws, fingerprinted with everything its
/// pixels can depend on: the scene file's bytes, the floor, this layer
/// and every layer of the composition (what it cuts out or sees cast
/// shadows depends on them), the definitions of its `dependsOn`
/// attributes, what every attribute changes in the scene, and the views
/// with their cameras, and what the asset pins of the render (`scene`:
/// floor, samples, seed). The backend's own settings (its default samples,
/// the device) are not: a GPU node and a CPU node render the same keys.
fn recipe_3d(
    layer: &super::spec::LayerSpec,
    spec: &AssetSpec,
    depends_on: &[usize],
    scene: &Scene,
) -> Recipe {
    let mut h = blake3::Hasher::new();
    h.update(b"layercake/recipe-3d/1\n");
    h.update(&scene.hash);
    h.update(json(&spec.scene).as_bytes());
    h.update(json(&layer.render).as_bytes());
    h.update(b"\n");
    for l in &spec.layers {
        h.update(json(&(&l.render, &l.visible_when)).as_bytes());
        h.update(b"\n");
    }
    for &d in depends_on {
        h.update(json(&spec.attributes[d]).as_bytes());
        h.update(b"\n");
    }
    for a in &spec.attributes {
        h.update(json(&(&a.name, &a.scene)).as_bytes());
        h.update(b"\n");
    }
    for v in &spec.views {
        h.update(json(&(&v.name, &v.label, &v.stage, &v.camera)).as_bytes());
        h.update(b"\n");
    }
    Recipe {
        templates: Vec::new(),
        crop: layer.render.crop,
        blender: layer.render.blender.clone(),
        files: Vec::new(),
        fingerprint: *h.finalize().as_bytes(),
    }
}

/// Parses a layer's templates and fingerprints everything they can read:
/// the template texts, the crop flag, the full definitions of the
/// `dependsOn` attributes (options and their metadata, which `{{Attr.key}}`
/// reads) and the views' names and labels.
fn recipe(
    r: &RenderSpec,
    spec: &AssetSpec,
    views: &[View],
    depends_on: &[usize],
    files: &Templates<'_>,
    err: &dyn Fn(String) -> CatalogError,
    attrs: &[Attribute],
) -> Result<Recipe, CatalogError> {
    let mut h = blake3::Hasher::new();
    h.update(b"layercake/recipe/2\n");
    h.update(if r.crop { b"crop\n" } else { b"full\n" });
    for &d in depends_on {
        h.update(
            serde_json::to_string(&spec.attributes[d])
                .unwrap_or_default()
                .as_bytes(),
        );
        h.update(b"\n");
    }
    for v in views {
        h.update(format!("view {:?} {:?} {:?}\n", v.name, v.label, v.stage_canonical).as_bytes());
    }
    let mut templates = Vec::new();
    let mut read = Vec::new();
    // An inline template is the same text for every view: parsed once.
    let mut inline: Option<Arc<Template>> = None;
    for v in views {
        let (origin, text) = match (&r.svg, &r.template) {
            (Some(path), None) => {
                let rel = path.replace("{view}", &v.name);
                let text = files.read(&rel).map_err(err)?;
                read.push((rel.clone(), Arc::<str>::from(text.as_str())));
                (rel, text)
            }
            (None, Some(t)) => {
                if let Some(shared) = &inline {
                    h.update(&(t.len() as u64).to_le_bytes());
                    h.update(t.as_bytes());
                    templates.push(Arc::clone(shared));
                    continue;
                }
                ("the inline template".to_string(), t.clone())
            }
            _ => {
                return Err(err(
                    "give exactly one of \"svg\" (a file) or \"template\" (inline)".into(),
                ));
            }
        };
        let t = Arc::new(Template::parse(&text, attrs).map_err(|e| err(format!("{origin}: {e}")))?);
        if r.template.is_some() {
            inline = Some(Arc::clone(&t));
        }
        if let Some(k) = t.attributes().find(|k| !depends_on.contains(k)) {
            return Err(err(format!(
                "{origin} reads attribute \"{}\", which is not in dependsOn",
                attrs[k].name
            )));
        }
        h.update(&(text.len() as u64).to_le_bytes());
        h.update(text.as_bytes());
        templates.push(t);
    }
    Ok(Recipe {
        templates,
        crop: r.crop,
        blender: None,
        files: read,
        fingerprint: *h.finalize().as_bytes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_rebuilds_the_same_asset_without_the_catalogue_files() {
        let cat = demo().unwrap();
        for a in cat.assets() {
            let (spec, files) = a.bundle();
            assert!(!files.is_empty(), "the demo reads template files");
            let b =
                load_asset_bundle("remote", &spec.to_string(), &files, &Limits::default()).unwrap();
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
}

/// Arbitrary input to the loader: no panic, and every rejection of a
/// document names the field at fault.
#[cfg(test)]
pub(crate) mod props {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value as J;

    pub(crate) fn arb_json() -> impl Strategy<Value = J> {
        let leaf = prop_oneof![
            Just(J::Null),
            any::<bool>().prop_map(J::Bool),
            any::<i64>().prop_map(|n| serde_json::json!(n)),
            (-1e12f64..1e12).prop_map(|f| serde_json::json!(f)),
            ".{0,12}".prop_map(J::String),
            Just(J::String("{{Color.hex}}".into())),
            Just(J::String("<svg><image href='/etc/passwd'/></svg>".into())),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(J::Array),
                prop::collection::btree_map(".{0,6}", inner, 0..4)
                    .prop_map(|m| J::Object(m.into_iter().collect())),
            ]
        })
    }

    /// JSON pointers of every value inside `v` (not the root).
    fn pointers(v: &J, at: String, out: &mut Vec<String>) {
        match v {
            J::Object(m) => {
                for (k, x) in m {
                    let p = format!("{at}/{k}");
                    out.push(p.clone());
                    pointers(x, p, out);
                }
            }
            J::Array(xs) => {
                for (i, x) in xs.iter().enumerate() {
                    let p = format!("{at}/{i}");
                    out.push(p.clone());
                    pointers(x, p, out);
                }
            }
            _ => {}
        }
    }

    proptest! {
        #[test]
        fn any_text_is_loaded_or_refused_without_panic(text in ".{0,200}") {
            let _ = load_asset_str("fuzz", &text, &Limits::default());
        }

        #[test]
        fn a_broken_field_is_refused_by_name(pick in any::<prop::sample::Index>(), with in arb_json()) {
            let mut doc = super::tests::minimal();
            let mut all = Vec::new();
            pointers(&doc, String::new(), &mut all);
            let at = pick.get(&all).clone();
            *doc.pointer_mut(&at).unwrap() = with;
            if let Err(e) = load_asset_str("fuzz", &doc.to_string(), &Limits::default()) {
                prop_assert!(!e.field.is_empty(), "{} at {}: no field named: {}", doc, at, e);
                prop_assert!(!e.message.is_empty());
            }
        }
    }
}
