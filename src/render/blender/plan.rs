//! What one Blender render shows: the layer's objects seen, the others of
//! the composition cut out, casting shadows, or gone; the materials the
//! configuration colours; the camera. Pure: from the asset and the request
//! to the JSON the script (`render/blender/layercake.py`) applies.
//!
//! The rules, for the layer at index `i` and the values it knows (its
//! `dependsOn` values, and any attribute its `visibleWhen` pins to one
//! value):
//! - a name an attribute's `scene.show` switches is shown only when that
//!   attribute is known and has the option naming it; unknown, it is gone
//!   (the layer's image cannot depend on what it does not know);
//! - another layer whose `visibleWhen` the known values satisfy is part of
//!   the picture: drawn below this one (earlier in the composition) it is
//!   a holdout, so what stands in front of this layer cuts it out; drawn
//!   above, it is unseen by the camera but casts shadows and bounces light,
//!   and its own layer covers the spot in the composite (a holdout there
//!   would leave a dark fringe where the two antialiased edges meet);
//! - another layer the known values rule out, or cannot decide, is gone;
//! - the shadow layer (`shadow: true`) shows the floor as a shadow catcher
//!   under every part of the picture, all unseen by the camera;
//! - the floor is never seen otherwise.
//!
//! A full render (every attribute known, every visible layer drawn, the
//! floor catching shadows) is the reference the layering is measured
//! against (`layercake render --full`).

use crate::catalog::{Asset, AttrKind, Value};
use crate::render::RenderError;
use serde_json::{Map, Value as J, json};
use std::collections::BTreeSet;

/// What to render: one layer with the values it knows, or the whole
/// configured scene (one value per attribute, in attribute order).
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    Layer {
        layer: usize,
        values: &'a [(usize, Value)],
    },
    Full {
        config: &'a [Value],
    },
}

/// A name in the scene: `(true, name)` a collection, `(false, name)` an object.
type Name = (bool, String);

#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub draw: BTreeSet<Name>,
    pub holdout: BTreeSet<Name>,
    pub cast: BTreeSet<Name>,
    pub hide: BTreeSet<Name>,
    pub shadow: bool,
    pub materials: Map<String, J>,
}

impl Target<'_> {
    /// The value of attribute `a`, if this target knows it.
    fn known<'v>(&'v self, asset: &'v Asset, a: usize) -> Option<&'v Value> {
        match self {
            Target::Full { config } => config.get(a),
            Target::Layer { layer, values } => values
                .iter()
                .find(|(i, _)| *i == a)
                .map(|(_, v)| v)
                .or_else(|| {
                    // visibleWhen pinning one value: the layer is only ever
                    // drawn with it.
                    asset.layers[*layer]
                        .visible_when
                        .iter()
                        .find(|(i, allowed)| *i == a && allowed.len() == 1)
                        .map(|(_, allowed)| &allowed[0])
                }),
        }
    }
}

fn names(collections: &[String], objects: &[String]) -> BTreeSet<Name> {
    collections
        .iter()
        .map(|c| (true, c.clone()))
        .chain(objects.iter().map(|o| (false, o.clone())))
        .collect()
}

/// Decides what the render shows.
///
/// # Errors
/// [`RenderError::Rejected`] when the asset is not a 3D asset.
pub fn plan(asset: &Asset, target: Target<'_>) -> Result<Plan, RenderError> {
    asset.scene.as_ref().ok_or_else(|| not_3d(asset))?;
    let (shown, switched) = switches(asset, target);
    let mut p = Plan::default();
    let universe = place_layers(asset, target, &shown, &switched, &mut p)?;
    // What the layer draws wins over what it cuts out over what only casts.
    p.holdout.retain(|n| !p.draw.contains(n));
    p.cast
        .retain(|n| !p.draw.contains(n) && !p.holdout.contains(n));
    p.hide = universe
        .into_iter()
        .filter(|n| !p.draw.contains(n) && !p.holdout.contains(n) && !p.cast.contains(n))
        .collect();
    p.materials = materials(asset, target);
    Ok(p)
}

fn not_3d(asset: &Asset) -> RenderError {
    RenderError::Rejected(format!("{} has no 3D scene", asset.name))
}

/// The names attributes switch (`scene.show`): those shown under what
/// the target knows, and all of them.
fn switches(asset: &Asset, target: Target<'_>) -> (BTreeSet<Name>, BTreeSet<Name>) {
    let (mut shown, mut switched) = (BTreeSet::new(), BTreeSet::new());
    for (a, attr) in asset.attributes.iter().enumerate() {
        let Some(scene) = &attr.scene else { continue };
        let value = target.known(asset, a).map(ToString::to_string);
        for (option, n) in &scene.show {
            let set = names(&n.collections, &n.objects);
            if value.as_deref() == Some(option.as_str()) {
                shown.extend(set.iter().cloned());
            }
            switched.extend(set);
        }
    }
    (shown, switched)
}

/// Sorts the layers' names into what `p` draws, cuts out and casts;
/// returns every name the render decides on (the rest of it is hidden).
fn place_layers(
    asset: &Asset,
    target: Target<'_>,
    shown: &BTreeSet<Name>,
    switched: &BTreeSet<Name>,
    p: &mut Plan,
) -> Result<BTreeSet<Name>, RenderError> {
    let usable = |set: BTreeSet<Name>| -> BTreeSet<Name> {
        set.into_iter()
            .filter(|n| !switched.contains(n) || shown.contains(n))
            .collect()
    };
    let layer_names = |j: usize| -> Result<(BTreeSet<Name>, bool), RenderError> {
        let b = asset.layers[j]
            .recipe
            .blender
            .as_ref()
            .ok_or_else(|| not_3d(asset))?;
        Ok((names(&b.collections, &b.objects), b.shadow))
    };
    // Whether layer j is in the picture: Some(true) drawn, Some(false)
    // ruled out, None undecided.
    let in_picture = |j: usize| -> Option<bool> {
        let mut decided = true;
        for (a, allowed) in &asset.layers[j].visible_when {
            match target.known(asset, *a) {
                Some(v) if !allowed.contains(v) => return Some(false),
                Some(_) => {}
                None => decided = false,
            }
        }
        decided.then_some(true)
    };
    let mut universe = switched.clone();
    match target {
        Target::Full { .. } => {
            p.shadow = true;
            for j in 0..asset.layers.len() {
                let (n, _) = layer_names(j)?;
                universe.extend(n.iter().cloned());
                if in_picture(j) == Some(true) {
                    p.draw.extend(usable(n));
                }
            }
        }
        Target::Layer { layer: i, .. } => {
            let (own, shadow) = layer_names(i)?;
            p.shadow = shadow;
            universe.extend(own.iter().cloned());
            p.draw = usable(own);
            for j in (0..asset.layers.len()).filter(|j| *j != i) {
                let (n, _) = layer_names(j)?;
                universe.extend(n.iter().cloned());
                if in_picture(j) != Some(true) {
                    continue;
                }
                let n = usable(n);
                if j < i && !shadow {
                    p.holdout.extend(n);
                } else {
                    p.cast.extend(n);
                }
            }
        }
    }
    Ok(universe)
}

/// The colours the target's known values give the scene's materials.
fn materials(asset: &Asset, target: Target<'_>) -> Map<String, J> {
    let mut materials = Map::new();
    for (a, attr) in asset.attributes.iter().enumerate() {
        let (Some(scene), Some(v)) = (&attr.scene, target.known(asset, a)) else {
            continue;
        };
        let Some(material) = &scene.material else {
            continue;
        };
        let color = match (v, &attr.kind) {
            (Value::Color(c), _) => Some(c.hex()),
            (Value::Str(s), AttrKind::String { options }) => options
                .iter()
                .find(|o| &o.value == s)
                .and_then(|o| o.metadata.get("color").cloned()),
            _ => None,
        };
        if let Some(color) = color {
            materials.insert(material.clone(), json!({ "color": color }));
        }
    }
    materials
}

fn group(set: &BTreeSet<Name>) -> J {
    let pick = |collection: bool| -> Vec<&str> {
        set.iter()
            .filter(|(c, _)| *c == collection)
            .map(|(_, n)| n.as_str())
            .collect()
    };
    json!({ "collections": pick(true), "objects": pick(false) })
}

impl Plan {
    /// The plan's part of the script's request (`draw`, `holdout`, `cast`,
    /// `hide`, `shadow`, `materials`).
    pub fn to_json(&self) -> Map<String, J> {
        let mut m = Map::new();
        m.insert("draw".into(), group(&self.draw));
        m.insert("holdout".into(), group(&self.holdout));
        m.insert("cast".into(), group(&self.cast));
        m.insert("hide".into(), group(&self.hide));
        m.insert("shadow".into(), self.shadow.into());
        m.insert("materials".into(), J::Object(self.materials.clone()));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Limits, load_asset_bundle};
    use std::collections::BTreeMap;

    /// A small 3D asset: shadow, two leg styles, body, optional skirt,
    /// pillows (the demo's shape, in miniature).
    fn asset() -> Asset {
        let doc = json!({
            "id": "6f0c3c8e-3a7d-4f43-9d0b-0d8b1b6f6a01", "name": "T", "version": 1,
            "width": 64, "height": 64, "renderer": "blender",
            "scene": {"file": "t/scene.py", "floor": "Floor"},
            "attributes": [
                {"name": "Body", "type": "string", "default": "Navy",
                 "values": [{"value": "Navy", "metadata": {"color": "#2c3a55"}},
                            {"value": "Rust", "metadata": {"color": "#a2542f"}}],
                 "scene": {"material": "Body Fabric"}},
                {"name": "Legs", "type": "string", "default": "Oak", "values": ["Oak", "Brass"],
                 "scene": {"show": {"Oak": {"collections": ["Legs Oak"]},
                                    "Brass": {"collections": ["Legs Brass"]}}}},
                {"name": "Skirt", "type": "boolean", "default": false,
                 "scene": {"show": {"true": {"collections": ["Skirt"]}}}},
                {"name": "Pillows", "type": "color", "default": "#d9a431",
                 "scene": {"material": "Pillow Fabric"}}
            ],
            "views": [{"name": "front", "stage": {"Camera": 0},
                       "camera": {"azimuth": 0, "elevation": 12, "distance": 4, "target": [0, 0, 0.4]}}],
            "layers": [
                {"id": "10000000-0000-4000-8000-000000000001", "name": "Shadow",
                 "dependsOn": ["Legs", "Skirt"], "render": {"blender": {"shadow": true}}},
                {"id": "10000000-0000-4000-8000-000000000002", "name": "Legs",
                 "dependsOn": ["Legs"], "render": {"blender": {"collections": ["Legs Oak", "Legs Brass"]}}},
                {"id": "10000000-0000-4000-8000-000000000003", "name": "Body",
                 "dependsOn": ["Body"], "render": {"blender": {"collections": ["Body"]}}},
                {"id": "10000000-0000-4000-8000-000000000004", "name": "Skirt",
                 "dependsOn": ["Body"], "visibleWhen": {"Skirt": true},
                 "render": {"blender": {"collections": ["Skirt"]}}},
                {"id": "10000000-0000-4000-8000-000000000005", "name": "Pillows",
                 "dependsOn": ["Pillows"], "render": {"blender": {"objects": ["Pillow L", "Pillow R"]}}}
            ]
        });
        let files = BTreeMap::from([("t/scene.py".to_string(), "import bpy\n".to_string())]);
        load_asset_bundle("t", &doc.to_string(), &files, &Limits::default()).unwrap()
    }

    fn c(n: &str) -> Name {
        (true, n.to_string())
    }

    fn o(n: &str) -> Name {
        (false, n.to_string())
    }

    fn set(items: &[Name]) -> BTreeSet<Name> {
        items.iter().cloned().collect()
    }

    fn s(v: &str) -> Value {
        Value::Str(v.into())
    }

    #[test]
    fn a_layer_draws_its_own_holds_out_below_and_casts_above() {
        let a = asset();
        let values = [(0, s("Rust"))];
        let p = plan(
            &a,
            Target::Layer {
                layer: 2,
                values: &values,
            },
        )
        .unwrap();
        assert_eq!(p.draw, set(&[c("Body")]));
        // The legs layer (below) has no visibleWhen but its collections are
        // switched by Legs, which the body does not know: gone.
        assert_eq!(p.holdout, set(&[]));
        assert_eq!(p.cast, set(&[o("Pillow L"), o("Pillow R")]));
        assert_eq!(p.hide, set(&[c("Legs Brass"), c("Legs Oak"), c("Skirt")]));
        assert!(!p.shadow);
        assert_eq!(
            p.materials,
            json!({"Body Fabric": {"color": "#a2542f"}})
                .as_object()
                .unwrap()
                .clone()
        );
    }

    #[test]
    fn what_stands_below_in_the_stack_is_cut_out() {
        let a = asset();
        let values = [(3, Value::Color(crate::catalog::Rgb { r: 1, g: 2, b: 3 }))];
        let p = plan(
            &a,
            Target::Layer {
                layer: 4,
                values: &values,
            },
        )
        .unwrap();
        assert_eq!(p.draw, set(&[o("Pillow L"), o("Pillow R")]));
        assert_eq!(
            p.holdout,
            set(&[c("Body")]),
            "the body (and its arms) stands in front of the pillows"
        );
        assert!(p.cast.is_empty());
        assert_eq!(p.materials["Pillow Fabric"]["color"], "#010203");
        assert!(
            !p.materials.contains_key("Body Fabric"),
            "the body's colour is not known here"
        );
    }

    #[test]
    fn a_switched_collection_follows_its_option() {
        let a = asset();
        let values = [(1, s("Brass"))];
        let p = plan(
            &a,
            Target::Layer {
                layer: 1,
                values: &values,
            },
        )
        .unwrap();
        assert_eq!(p.draw, set(&[c("Legs Brass")]));
        assert!(p.hide.contains(&c("Legs Oak")));
    }

    #[test]
    fn visible_when_pins_what_the_layer_knows() {
        let a = asset();
        // The skirt layer knows Skirt = true from its visibleWhen.
        let values = [(0, s("Navy"))];
        let p = plan(
            &a,
            Target::Layer {
                layer: 3,
                values: &values,
            },
        )
        .unwrap();
        assert_eq!(p.draw, set(&[c("Skirt")]));
        assert_eq!(p.holdout, set(&[c("Body")]));
    }

    #[test]
    fn the_shadow_layer_catches_every_part_it_knows() {
        let a = asset();
        let values = [(1, s("Oak")), (2, Value::Bool(true))];
        let p = plan(
            &a,
            Target::Layer {
                layer: 0,
                values: &values,
            },
        )
        .unwrap();
        assert!(p.shadow);
        assert!(p.draw.is_empty() && p.holdout.is_empty());
        assert_eq!(
            p.cast,
            set(&[
                c("Body"),
                c("Legs Oak"),
                c("Skirt"),
                o("Pillow L"),
                o("Pillow R")
            ])
        );
        assert_eq!(p.hide, set(&[c("Legs Brass")]));
    }

    #[test]
    fn a_full_render_draws_the_whole_configuration() {
        let a = asset();
        let config = [
            s("Navy"),
            s("Brass"),
            Value::Bool(false),
            Value::Color(crate::catalog::Rgb { r: 0, g: 0, b: 0 }),
        ];
        let p = plan(&a, Target::Full { config: &config }).unwrap();
        assert!(p.shadow);
        assert_eq!(
            p.draw,
            set(&[c("Body"), c("Legs Brass"), o("Pillow L"), o("Pillow R")])
        );
        assert_eq!(p.hide, set(&[c("Legs Oak"), c("Skirt")]));
        assert_eq!(p.materials.len(), 2);
    }
}
