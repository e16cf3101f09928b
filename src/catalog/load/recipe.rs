//! A layer's recipe: what it draws and the fingerprint of everything its
//! pixels can depend on (part of its layer key). A 2D layer's templates
//! are parsed here, once per view (an inline template once in all).

use super::super::spec::{AssetSpec, RenderSpec};
use super::source::Templates;
use crate::catalog::{Attribute, CatalogError, Recipe, Scene, Template, View};
use std::sync::Arc;

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
pub(super) fn recipe_3d(
    layer: &super::super::spec::LayerSpec,
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

const ONE_WAY: &str = "give exactly one of \"svg\" (a file per view), \"template\" (one inline text) or \"templates\" (inline, per view)";

/// Parses a layer's templates and fingerprints everything they can read:
/// the template texts, the crop flag, the full definitions of the
/// `dependsOn` attributes (options and their metadata, which `{{Attr.key}}`
/// reads) and the views' names and labels.
pub(super) fn recipe(
    r: &RenderSpec,
    spec: &AssetSpec,
    views: &[View],
    depends_on: &[usize],
    files: &Templates<'_>,
    err: &dyn Fn(String) -> CatalogError,
    attrs: &[Attribute],
) -> Result<Recipe, CatalogError> {
    let mut h = hash_header(r, spec, views, depends_on);
    if let Some(per_view) = &r.templates
        && let Some(name) = per_view
            .keys()
            .find(|n| !views.iter().any(|v| &v.name == *n))
    {
        return Err(err(format!(
            "templates: \"{name}\" is not a view of this asset"
        )));
    }
    let mut templates = Vec::new();
    let mut read = Vec::new();
    // An inline template is the same text for every view: parsed once.
    let mut inline: Option<Arc<Template>> = None;
    for v in views {
        let (origin, text) = match (&r.svg, &r.template, &r.templates) {
            (None, Some(t), None) if inline.is_some() => {
                h.update(&(t.len() as u64).to_le_bytes());
                h.update(t.as_bytes());
                templates.extend(inline.clone());
                continue;
            }
            (Some(path), None, None) => {
                let rel = path.replace("{view}", &v.name);
                let text = files.read(&rel).map_err(err)?;
                read.push((rel.clone(), Arc::<str>::from(text.as_str())));
                (rel, text)
            }
            (None, Some(t), None) => ("the inline template".to_string(), t.clone()),
            (None, None, Some(per_view)) => (
                format!("templates.{}", v.name),
                per_view.get(&v.name).cloned().ok_or_else(|| {
                    err(format!(
                        "templates: no template for view \"{}\" (every view needs one)",
                        v.name
                    ))
                })?,
            ),
            _ => return Err(err(ONE_WAY.into())),
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

/// The start of a 2D recipe's fingerprint: the format, the crop flag, the
/// `dependsOn` attributes' definitions, and the views' names and labels.
fn hash_header(
    r: &RenderSpec,
    spec: &AssetSpec,
    views: &[View],
    depends_on: &[usize],
) -> blake3::Hasher {
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
    h
}
