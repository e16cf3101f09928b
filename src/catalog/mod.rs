//! The catalogue: assets, their attributes, views and layer composition.
//!
//! Owns the validated, in-memory form of an asset ([`Asset`]) and the
//! loading of asset files (`load`). It knows nothing of keys (see `keys`),
//! pixels (see `render`, `compose`) or HTTP. Once built, an [`Asset`] is
//! immutable and shared as `Arc<Asset>`: a changed definition is a new
//! `Asset` with a new version, never an edit in place.

mod load;
mod sandbox;
mod scene;
pub mod schema;
pub mod spec;
pub mod template;
mod value;
pub mod whole;

#[cfg(test)]
pub(crate) use load::props as load_props;
pub use load::{CatalogError, DEMO_ASSET_ID, load_asset_bundle, load_asset_str};
pub use sandbox::{Limits, check_refs, precheck};
pub use scene::Scene;
pub use spec::AssetSpec;
pub use template::{Template, TemplateContext, TemplateError};
pub use value::{Rgb, Value, ValueError};

use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

/// A validated asset definition.
#[derive(Debug, Clone)]
pub struct Asset {
    pub id: Uuid,
    pub name: String,
    pub version: u32,
    pub description: String,
    pub width: u32,
    pub height: u32,
    pub attributes: Vec<Attribute>,
    pub views: Vec<View>,
    pub layers: Vec<Layer>,
    /// blake3 over the whole definition except `version`, template texts
    /// included: part of every composite key, so an edited file can never
    /// serve stale images even if its author forgot to bump `version`, and
    /// the way the registry tells a changed definition from a resubmitted one.
    pub fingerprint: [u8; 32],
    /// The definition as written, for the API.
    pub spec: AssetSpec,
    /// Bookkeeping set by the asset registry (`service::assets`), not by
    /// the definition: owner, layer epoch (bumped when a registered layer
    /// replaces an image; part of the composite key), and record times
    /// (microseconds since the Unix epoch).
    pub org: Uuid,
    pub epoch: u64,
    pub created_at: i64,
    pub updated_at: i64,
    /// Where the definition came from when it is a catalogue file (its
    /// path, or `built-in catalogue: sofa.json`); `None` for definitions
    /// submitted over the API or sent to a render node.
    pub origin: Option<String>,
    /// A 3D asset's scene file (the `blender` backend), shared by its layers.
    pub scene: Option<Arc<Scene>>,
}

impl Asset {
    /// The definition as JSON and every template file it read: what
    /// [`load_asset_bundle`] needs to build this same asset (same
    /// fingerprints, so the same layer keys) on a machine without the
    /// catalogue files.
    pub fn bundle(&self) -> (serde_json::Value, BTreeMap<String, String>) {
        let mut spec = self.spec.clone();
        spec.version = self.version;
        let mut files: BTreeMap<String, String> = self
            .layers
            .iter()
            .flat_map(|l| l.recipe.files.iter())
            .map(|(p, t)| (p.clone(), t.to_string()))
            .collect();
        if let Some(scene) = &self.scene {
            let (key, text) = scene.bundled();
            files.insert(key, text);
        }
        (
            serde_json::to_value(&spec).unwrap_or(serde_json::Value::Null),
            files,
        )
    }
}

#[derive(Debug, Clone)]
pub struct Attribute {
    pub name: String,
    pub label: Option<String>,
    pub kind: AttrKind,
    pub default: Value,
    /// 3D assets: what the attribute changes in the scene (checked: a
    /// material takes colours every option has; `show` names options).
    pub scene: Option<spec::AttributeScene>,
}

#[derive(Debug, Clone)]
pub enum AttrKind {
    String { options: Vec<AttrOption> },
    Number { min: f64, max: f64 },
    Boolean,
    Color,
}

#[derive(Debug, Clone)]
pub struct AttrOption {
    pub value: String,
    pub label: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct View {
    pub name: String,
    pub label: String,
    /// The stage configuration that selects this view.
    pub stage: serde_json::Map<String, serde_json::Value>,
    /// `stage` in canonical JSON (`keys::canonical_json`), computed once.
    pub stage_canonical: String,
    /// 3D assets: the camera (checked: an object, or a whole orbit).
    pub camera: Option<spec::CameraSpec>,
    /// Part of the turntable (the spin embed).
    pub turntable: bool,
}

#[derive(Debug, Clone)]
pub struct Layer {
    pub id: Uuid,
    pub name: String,
    /// Attribute indices, ascending.
    pub depends_on: Vec<usize>,
    /// `(attribute index, accepted values)`: visible when every entry matches.
    pub visible_when: Vec<(usize, Vec<Value>)>,
    pub recipe: Recipe,
}

/// How the built-in renderer draws a layer.
#[derive(Debug, Clone)]
pub struct Recipe {
    /// One template per view, in view order (an inline template is parsed
    /// once and shared by every view).
    pub templates: Vec<std::sync::Arc<Template>>,
    pub crop: bool,
    /// A 3D layer: what it draws of the asset's scene (no templates then).
    pub blender: Option<spec::BlenderLayer>,
    /// The template files this recipe read (path relative to the asset
    /// file, text), so the definition can travel to a remote worker with
    /// exactly the texts its keys were made from (see [`Asset::bundle`]).
    pub files: Vec<(String, std::sync::Arc<str>)>,
    /// blake3 over the template texts, the crop flag and `dependsOn`: part
    /// of the layer key, so editing one layer's template re-renders that
    /// layer only.
    pub fingerprint: [u8; 32],
}

impl Layer {
    /// Whether this layer is drawn for a full configuration (one value per
    /// attribute, in attribute order).
    pub fn is_visible(&self, config: &[Value]) -> bool {
        self.visible_when
            .iter()
            .all(|(i, allowed)| allowed.contains(&config[*i]))
    }
}

impl Asset {
    /// The turntable's views in order (the spin embed); every view when
    /// none is marked `turntable`.
    pub fn turntable(&self) -> Vec<usize> {
        let ring: Vec<usize> = (0..self.views.len())
            .filter(|&i| self.views[i].turntable)
            .collect();
        if ring.is_empty() {
            (0..self.views.len()).collect()
        } else {
            ring
        }
    }

    /// The views a carousel shows: those not on the turntable (every view
    /// when all are).
    pub fn stills(&self) -> Vec<usize> {
        let stills: Vec<usize> = (0..self.views.len())
            .filter(|&i| !self.views[i].turntable)
            .collect();
        if stills.is_empty() {
            (0..self.views.len()).collect()
        } else {
            stills
        }
    }

    pub fn attribute(&self, name: &str) -> Option<(usize, &Attribute)> {
        self.attributes
            .iter()
            .enumerate()
            .find(|(_, a)| a.name == name)
    }
}

/// The live catalogue: a snapshot that is replaced, never edited, when an
/// asset changes. Readers take the current `Arc<Catalog>` and keep a
/// consistent view for the rest of their request.
#[derive(Debug, Default)]
pub struct SharedCatalog {
    current: std::sync::RwLock<Arc<Catalog>>,
}

impl SharedCatalog {
    pub fn new(c: Catalog) -> SharedCatalog {
        SharedCatalog {
            current: std::sync::RwLock::new(Arc::new(c)),
        }
    }

    pub fn snapshot(&self) -> Arc<Catalog> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn get(&self, id: &Uuid) -> Option<Arc<Asset>> {
        self.snapshot().get(id).cloned()
    }

    /// Puts `asset` in place of the asset with its id (or adds it).
    pub fn replace(&self, asset: Arc<Asset>) {
        let mut cur = self.current.write().unwrap_or_else(|p| p.into_inner());
        let mut next = (**cur).clone();
        next.assets.insert(asset.id, asset);
        *cur = Arc::new(next);
    }
}

/// Every asset the server knows, by id.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    assets: BTreeMap<Uuid, Arc<Asset>>,
}

impl Catalog {
    /// # Errors
    /// [`CatalogError`] naming the file (and field) of the first problem.
    pub fn from_dir(dir: &std::path::Path, limits: &Limits) -> Result<Catalog, CatalogError> {
        load::from_dir(dir, limits)
    }

    /// The demo catalogue compiled into the binary.
    ///
    /// # Errors
    /// Only if the shipped demo is broken, which a unit test rules out.
    pub fn demo() -> Result<Catalog, CatalogError> {
        load::demo()
    }

    /// # Errors
    /// [`CatalogError`] when two assets share an id.
    pub fn from_assets(assets: Vec<Asset>) -> Result<Catalog, CatalogError> {
        Catalog::from_arcs(assets.into_iter().map(Arc::new).collect())
    }

    /// # Errors
    /// [`CatalogError`] when two assets share an id.
    pub fn from_arcs(assets: Vec<Arc<Asset>>) -> Result<Catalog, CatalogError> {
        let mut map = BTreeMap::new();
        for a in assets {
            let id = a.id;
            if map.insert(id, a).is_some() {
                return Err(CatalogError::new(
                    "catalog",
                    "id",
                    format!("asset {id} is defined twice"),
                ));
            }
        }
        Ok(Catalog { assets: map })
    }

    pub fn get(&self, id: &Uuid) -> Option<&Arc<Asset>> {
        self.assets.get(id)
    }

    /// Assets ordered by id.
    pub fn assets(&self) -> impl ExactSizeIterator<Item = &Arc<Asset>> {
        self.assets.values()
    }

    pub fn len(&self) -> usize {
        self.assets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.assets.is_empty()
    }
}
