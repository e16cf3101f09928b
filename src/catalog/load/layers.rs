//! A definition's layers: unique ids, the attributes they depend on and
//! are visible for, and what each draws (a 2D recipe from templates, or a
//! part of the 3D scene).

use super::super::spec::{AssetSpec, LayerSpec};
use super::ErrFn;
use super::recipe::{recipe, recipe_3d};
use super::source::Templates;
use crate::catalog::{Attribute, CatalogError, Layer, Scene, Value, View};
use std::collections::HashSet;
use uuid::Uuid;

/// The definition's layers, checked in order.
pub(super) fn layers(
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
        let depends_on = depends_on(l, attrs, &at, err)?;
        let visible_when = visible_when(l, attrs, &at, err)?;
        let recipe = match (scene, &l.render.blender) {
            (Some(scene), Some(b)) => {
                if l.render.svg.is_some()
                    || l.render.template.is_some()
                    || l.render.templates.is_some()
                {
                    return Err(err(
                        at(".render"),
                        "a 3D layer draws the scene: no \"svg\", \"template\" or \"templates\""
                            .into(),
                    ));
                }
                super::super::scene::check_layer(b, &at(".render"), scene)
                    .map_err(|(f, m)| err(f, m))?;
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

/// A field path under the layer being checked (`layers[1].dependsOn[0]`).
type At<'a> = dyn Fn(&str) -> String + 'a;

/// The attributes (indexes, sorted) a layer's pixels depend on: known
/// names, each listed once.
fn depends_on(
    l: &LayerSpec,
    attrs: &[Attribute],
    at: &At<'_>,
    err: &ErrFn<'_>,
) -> Result<Vec<usize>, CatalogError> {
    let mut depends_on = Vec::new();
    for (j, d) in l.depends_on.iter().enumerate() {
        let k = index_of(attrs, d).ok_or_else(|| {
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
    Ok(depends_on)
}

/// The values of known attributes for which a layer is visible (one or a
/// non-empty list each, every one accepted by its attribute).
fn visible_when(
    l: &LayerSpec,
    attrs: &[Attribute],
    at: &At<'_>,
    err: &ErrFn<'_>,
) -> Result<Vec<(usize, Vec<Value>)>, CatalogError> {
    let mut visible_when = Vec::new();
    for (name, want) in l.visible_when.iter().flatten() {
        let field = at(&format!(".visibleWhen.{name}"));
        let k = index_of(attrs, name)
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
    Ok(visible_when)
}

fn index_of(attrs: &[Attribute], name: &str) -> Option<usize> {
    attrs.iter().position(|a| a.name == name)
}
