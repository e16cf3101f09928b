//! The asset definition format: what a catalogue file (JSON or TOML) says,
//! exactly as written.
//!
//! These types are a documented file format, so they derive `Serialize` as
//! well: `GET /api/assets/{id}` answers the definition the operator wrote.
//! Nothing here is checked beyond its shape; `load` turns a spec into a
//! validated [`super::Asset`] and names the field when something is wrong.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One asset, one file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AssetSpec {
    /// UUID of the asset; the `assetId` of every request.
    pub id: String,
    pub name: String,
    /// Bumped whenever the definition changes; part of every key.
    pub version: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Canvas size of every view, in pixels.
    pub width: u32,
    pub height: u32,
    pub attributes: Vec<AttributeSpec>,
    /// Camera positions, selected by the request's `stageConfiguration`.
    pub views: Vec<ViewSpec>,
    /// The composition, background first.
    pub layers: Vec<LayerSpec>,
    /// The render backend that draws this asset's layers: `builtin`, or the
    /// name of a backend in the server's `[render.backends]`. Absent: the
    /// server's `render.backend`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renderer: Option<String>,
}

/// An attribute. One flat shape for every type so that a mistake can be
/// reported as `attributes[2].min` rather than "did not match any variant".
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum OptionSpec {
    Plain(String),
    Detailed(DetailedOption),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ViewSpec {
    /// Short name, `[a-z0-9-]`, substituted for `{view}` in template paths.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The stage configuration that selects this view, e.g. `{"Camera": 2}`.
    pub stage: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LayerSpec {
    pub id: String,
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RenderSpec {
    /// Path of the template, relative to the asset file; `{view}` is
    /// replaced by each view's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub svg: Option<String>,
    /// The template itself, for definitions that travel without files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
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
