//! The asset definition format: what a catalogue file (JSON or TOML) says,
//! exactly as written.
//!
//! These types are a documented file format, so they derive `Serialize` as
//! well: `GET /api/assets/{id}` answers the definition the operator wrote.
//! Nothing here is checked beyond its shape; `load` turns a spec into a
//! validated [`super::Asset`] and names the field when something is wrong.
//! The JSON Schema of the format (`super::schema`) is derived from these
//! same types, their doc comments its descriptions: `docs/assets.md` is the
//! prose, and `tests/asset_format.rs` holds the three together.

use super::whole;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One asset, one file: a configurable product, its attributes, camera
/// views and the layers its pictures are stacked from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "layercake asset definition")]
pub struct AssetSpec {
    /// The JSON Schema this document follows, for editors (e.g.
    /// `http://127.0.0.1:8080/api/assets/schema.json`); ignored.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// UUID of the asset; the `assetId` of every request. Required in a
    /// catalogue file; in a `PUT /api/assets/{id}` body, absent means the
    /// path's id.
    #[serde(default)]
    #[schemars(with = "uuid::Uuid")]
    pub id: String,
    #[schemars(length(min = 1))]
    pub name: String,
    /// Read-only: the server numbers versions (the same content keeps its
    /// version, a changed definition becomes the next one; the version is
    /// part of every image's key). A value given here is ignored.
    #[serde(default = "one", deserialize_with = "whole::de")]
    #[schemars(range(min = 1))]
    pub version: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Canvas width of every view, in pixels.
    #[serde(deserialize_with = "whole::de")]
    #[schemars(range(min = 1, max = 8192))]
    pub width: u32,
    /// Canvas height of every view, in pixels.
    #[serde(deserialize_with = "whole::de")]
    #[schemars(range(min = 1, max = 8192))]
    pub height: u32,
    /// The configurable attributes; a request's `configuration` gives
    /// their values, the defaults fill the rest.
    pub attributes: Vec<AttributeSpec>,
    /// Camera positions, selected by the request's `view` (by name) or
    /// `stageConfiguration`; the first is the default.
    #[schemars(length(min = 1))]
    pub views: Vec<ViewSpec>,
    /// The composition, background first.
    #[schemars(length(min = 1))]
    pub layers: Vec<LayerSpec>,
    /// The render backend that draws this asset's layers: `builtin`, or the
    /// name of a backend in the server's `[render.backends]`. Absent: the
    /// server's `render.backend`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]+$"))]
    pub renderer: Option<String>,
    /// A 3D asset's scene (the `blender` backend): its layers name the
    /// scene's collections and objects, its views carry cameras.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scene: Option<SceneSpec>,
    /// Read-only: the owning organisation, as the API answers it. Accepted
    /// so that a `GET` answer can be `PUT` back as is (it must then be the
    /// caller's org); ignored in catalogue files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<uuid::Uuid>", extend("readOnly" = true))]
    pub org_id: Option<String>,
    /// Read-only: when the asset was first recorded (RFC 3339); ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("readOnly" = true))]
    pub created_at: Option<String>,
    /// Read-only: when the live version was recorded (RFC 3339); ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("readOnly" = true))]
    pub updated_at: Option<String>,
}

impl AssetSpec {
    /// The definition alone: without the read-only and editor fields
    /// (`$schema`, `orgId`, `createdAt`, `updatedAt`) a document may carry.
    pub fn definition_only(&mut self) {
        self.schema = None;
        self.org_id = None;
        self.created_at = None;
        self.updated_at = None;
    }
}

fn one() -> u32 {
    1
}

/// The scene file of a 3D asset.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SceneSpec {
    /// Path relative to the asset file: a `.blend` file (textures packed),
    /// or a `.py` script that builds the scene in an empty file. Its bytes
    /// are part of every layer key: editing the model makes new keys.
    pub file: String,
    /// The object seen only as the shadow catcher of the shadow layer
    /// (`"shadow": true`); never seen otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor: Option<String>,
    /// Cycles samples per pixel for this asset, over the backend's
    /// `samples`; part of every layer key (changing it renders again).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole::opt"
    )]
    pub samples: Option<u32>,
    /// The noise seed for this asset, over the backend's `seed`; part of
    /// every layer key.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole::opt"
    )]
    pub seed: Option<u32>,
}

/// Collections and objects of a 3D scene, by name.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SceneNames {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collections: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<String>,
}

/// What an attribute changes in a 3D scene.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttributeScene {
    /// A material whose base colour follows the attribute: a `color`
    /// attribute's value, or a `string` option's `metadata.color`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub material: Option<String>,
    /// Per option (`"true"`/`"false"` for a boolean): the collections and
    /// objects it shows. A name listed under one option is hidden under
    /// every other.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub show: BTreeMap<String, SceneNames>,
}

/// A 3D view's camera: a camera object of the scene, or an orbit around
/// `target` (metres, Z up; azimuth 0 looks from the front, -Y).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CameraSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Degrees around the vertical axis, counter-clockwise seen from above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azimuth: Option<f64>,
    /// Degrees above the horizon, -89 to 89.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elevation: Option<f64>,
    /// Metres from `target`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distance: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<[f64; 3]>,
    /// Focal length in mm (36 mm sensor), default 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lens: Option<f64>,
}

/// A 3D layer: what it draws of the scene.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlenderLayer {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collections: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<String>,
    /// The shadow layer: the scene's floor as a shadow catcher under every
    /// part the layer's values decide.
    #[serde(default, skip_serializing_if = "is_false")]
    pub shadow: bool,
}

/// An attribute. One flat shape for every type so that a mistake can be
/// reported as `attributes[2].min` rather than "did not match any variant".
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttributeSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: AttributeType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Required for every type but `boolean` (default `false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    /// `string` only: the allowed values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<OptionSpec>>,
    /// `number` only: the inclusive range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// 3D assets: what the attribute changes in the scene.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scene: Option<AttributeScene>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AttributeType {
    String,
    Number,
    Boolean,
    #[serde(alias = "colour")]
    Color,
}

/// A `string` attribute's option: a bare string, or an object carrying
/// metadata that render templates can use (`{{Body.color}}`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(untagged)]
pub enum OptionSpec {
    Plain(String),
    Detailed(DetailedOption),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DetailedOption {
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

impl OptionSpec {
    pub fn value(&self) -> &str {
        match self {
            OptionSpec::Plain(v) => v,
            OptionSpec::Detailed(d) => &d.value,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ViewSpec {
    /// Short name, `[a-z0-9-]`: the image route's `view=<name>`, and
    /// substituted for `{view}` in template paths.
    #[schemars(regex(pattern = r"^[a-z0-9-]+$"))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The stage configuration that selects this view, e.g. `{"Camera": 2}`
    /// (distinct per view).
    #[schemars(extend("minProperties" = 1))]
    pub stage: serde_json::Map<String, serde_json::Value>,
    /// 3D assets: the camera of this view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera: Option<CameraSpec>,
    /// Part of the turntable (the 360° spin embed turns through these
    /// views in order); carousels show the other views.
    #[serde(default, skip_serializing_if = "is_false")]
    pub turntable: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LayerSpec {
    /// UUID of the layer, distinct within the asset (the Layers API's
    /// `assetLayer`).
    #[schemars(with = "uuid::Uuid")]
    pub id: String,
    #[schemars(length(min = 1))]
    pub name: String,
    /// The attributes this layer's image depends on; only these enter its key.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Drawn only when every named attribute has (one of) the given value(s),
    /// e.g. `{"Skirt": true}` or `{"Legs": ["Oak", "Walnut"]}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visible_when: Option<BTreeMap<String, serde_json::Value>>,
    pub render: RenderSpec,
}

/// The render recipe of the built-in renderer: an SVG template.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RenderSpec {
    /// Path of the template, relative to the asset file; `{view}` is
    /// replaced by each view's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub svg: Option<String>,
    /// The template itself, one text for every view (`{{view.name}}` lets
    /// it vary), for definitions that travel without files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// One inline template per view, by view name (every view has one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templates: Option<BTreeMap<String, String>>,
    /// A 3D layer (the asset's `scene`, the `blender` backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blender: Option<BlenderLayer>,
    /// Store the layer cropped to its visible box (default true).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub crop: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_false(b: &bool) -> bool {
    !*b
}
