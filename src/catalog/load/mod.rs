//! Loading and validating asset files.
//!
//! A catalogue is a folder of asset files (`*.json` or `*.toml`, one asset
//! each); template paths inside a file are relative to that folder. The demo
//! catalogue under `catalog/` in the repository is compiled into the binary
//! with `include_dir`, and goes through exactly the same checks.
//!
//! Every problem is reported as `file: field: message`, the field written as
//! a path into the document (`layers[3].dependsOn[0]`).

mod attributes;
mod caps;
mod layers;
mod recipe;
mod source;
mod views;

use super::spec::AssetSpec;
use super::{Asset, Catalog, Limits, Scene};
use include_dir::{Dir, include_dir};
use source::{Source, Templates};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use uuid::Uuid;

static DEMO: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/catalog");

/// The id of the demo sofa in the built-in catalogue.
pub const DEMO_ASSET_ID: &str = "03a29397-2265-40cd-8c45-41a1c4e12574";

/// Largest canvas side accepted in a definition. Renders of this size are
/// 256 MiB of RGBA; anything larger is a typo, not a product shot.
const MAX_CANVAS_SIDE: u32 = 8192;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}: {}{message}", if field.is_empty() { String::new() } else { format!("{field}: ") })]
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
            let mut asset = parse(&name, text, &Source::Embedded(&DEMO), &Limits::default())?;
            asset.origin = Some(format!("built-in catalogue: {name}"));
            assets.push(asset);
        }
    }
    Catalog::from_assets(assets)
}

pub(super) fn from_dir(dir: &Path, limits: &Limits) -> Result<Catalog, CatalogError> {
    // Absolute, so an error says which folder a relative path meant.
    let shown = std::path::absolute(dir)
        .unwrap_or_else(|_| dir.to_path_buf())
        .display()
        .to_string();
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
        asset.origin = Some(name);
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

/// Checks a parsed definition in order (caps, header, scene, attributes,
/// views, layers) and builds the asset; the first problem found is the error.
fn validate(
    file: &str,
    mut spec: AssetSpec,
    src: &Source<'_>,
    limits: &Limits,
) -> Result<Asset, CatalogError> {
    spec.definition_only();
    let err = |field: String, msg: String| CatalogError::new(file, field, msg);
    caps::check_limits(&spec, limits, &err)?;
    let id = check_header(&spec, &err)?;
    let scene = scene(&spec, src, limits, &err)?;
    let attributes = attributes::attributes(&spec, &err)?;
    let views = views::views(&spec, scene.is_some(), &err)?;
    let layers = layers::layers(
        &spec,
        &attributes,
        &views,
        scene.as_deref(),
        &Templates { src, limits },
        &err,
    )?;
    let fingerprint = fingerprint(&spec, &layers);
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
        fingerprint,
        spec,
        org: Uuid::nil(),
        epoch: 0,
        created_at: 0,
        updated_at: 0,
        origin: None,
        scene,
    })
}

/// The fields of the document itself: id, name, version, canvas size and
/// the backend's name. Returns the id.
fn check_header(spec: &AssetSpec, err: &ErrFn<'_>) -> Result<Uuid, CatalogError> {
    if spec.id.is_empty() {
        return Err(err(
            "id".into(),
            "is required: the asset's UUID (`uuidgen` makes one)".into(),
        ));
    }
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
    Ok(id)
}

/// A 3D asset's scene file, read and checked; a 3D asset names its backend.
fn scene(
    spec: &AssetSpec,
    src: &Source<'_>,
    limits: &Limits,
    err: &ErrFn<'_>,
) -> Result<Option<Arc<Scene>>, CatalogError> {
    let Some(s) = &spec.scene else {
        return Ok(None);
    };
    let read = |rel: &str, max: usize| src.read_bytes("scene file", rel, max);
    let scene = Scene::load(s, &read, limits.scene_bytes).map_err(|(f, m)| err(f, m))?;
    if matches!(spec.renderer.as_deref(), None | Some("builtin")) {
        return Err(err(
            "renderer".into(),
            "a 3D asset names its render backend (one of kind \"blender\" in [render.backends])"
                .into(),
        ));
    }
    Ok(Some(Arc::new(scene)))
}

/// The asset's fingerprint: the definition without its version, and every
/// layer's recipe fingerprint (template texts included).
fn fingerprint(spec: &AssetSpec, layers: &[super::Layer]) -> [u8; 32] {
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
    for l in layers {
        h.update(&l.recipe.fingerprint);
    }
    *h.finalize().as_bytes()
}

type ErrFn<'a> = dyn Fn(String, String) -> CatalogError + 'a;

#[cfg(test)]
pub(crate) mod props;
#[cfg(test)]
mod tests;
