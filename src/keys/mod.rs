//! Keys: what "the same image" means.
//!
//! A request's configuration is checked against its asset and put in
//! canonical form ([`Configuration`]); from it come two kinds of blake3 key:
//!
//! - the **layer key** ([`layer_key`]): asset id, version, the layer id and
//!   its recipe fingerprint, the configuration *restricted to the layer's
//!   `dependsOn`*, the view's stage configuration and the render size. One
//!   layer image serves every configuration that agrees on those
//!   attributes. [`visible_layers`] lists a configuration's visible layers
//!   on a view with their keys ([`LayerIdentity`]): every place that plans
//!   or renders layers starts from it.
//! - the **composite key** ([`composite_key`]): asset id, version,
//!   definition fingerprint and layer epoch (bumped when a registered layer
//!   replaces an image), the *full* canonical configuration (defaults filled
//!   in), the view, and the output part ([`OutputPart`]): for an encoded
//!   image its canonical output parameters (format, quality, width, height,
//!   fit, crop, as `compose::Output::canonical` spells them) and the cache
//!   buster (`http.cache_buster`, when set); for the flattened stack (the
//!   layers stacked at canvas resolution, shared by every size and format
//!   of one image) the crop and the cache buster.
//!
//! Identity is exactly those fields. Noise never enters a key: attribute
//! order, `1` vs `1.0`, attributes omitted or `null` (they take their
//! defaults), `cacheKey`, auth parameters, the raw `Accept` header.
//!
//! The hashed input is a few `name=value` lines behind a version salt
//! (`layercake/layer/1`, `layercake/composite/2`); see [`layer_key`] and
//! [`composite_key`]. Expected hashes are pinned in the tests (`tests.rs`):
//! a change that moves them invalidates every deployed cache and must bump
//! the salt.
//!
//! This module depends on catalogue types, `compose`'s output parameters
//! and blake3 alone; it does no I/O.

mod canonical;

pub use canonical::canonical_json;

use crate::catalog::{Asset, Value, ValueError};
use crate::compose::{Output, Rect};
use std::fmt;

/// A 256-bit blake3 key, shown as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(pub [u8; 32]);

impl Key {
    pub fn hex(&self) -> String {
        self.to_string()
    }

    /// The key spelled by 64 hex digits, as [`Key::hex`] writes it.
    pub fn from_hex(s: &str) -> Option<Key> {
        if s.len() != 64 {
            return None;
        }
        let mut k = [0u8; 32];
        for (i, b) in k.iter_mut().enumerate() {
            *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Key(k))
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut buf = [0u8; 64];
        for (i, b) in self.0.iter().enumerate() {
            buf[2 * i] = HEX[usize::from(b >> 4)];
            buf[2 * i + 1] = HEX[usize::from(b & 15)];
        }
        // Only ASCII hex digits were written.
        f.write_str(std::str::from_utf8(&buf).unwrap_or_default())
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", &self.hex()[..16])
    }
}

/// Why a configuration or stage configuration is not acceptable for an asset.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("the configuration must be a JSON object")]
    NotAnObject,
    #[error("unknown attribute \"{0}\"")]
    UnknownAttribute(String),
    #[error("attribute \"{attribute}\": {error}")]
    InvalidValue {
        attribute: String,
        error: ValueError,
    },
    #[error("the stage configuration {0} selects no view of this asset (views: {1})")]
    UnknownView(String, String),
    #[error("\"{0}\" is not a view of this asset (views: {1})")]
    UnknownViewName(String, String),
}

/// A full configuration: one checked value per attribute, in attribute order.
#[derive(Debug, Clone, PartialEq)]
pub struct Configuration {
    values: Vec<Value>,
}

impl Configuration {
    /// Every attribute at its default.
    pub fn defaults(asset: &Asset) -> Configuration {
        Configuration {
            values: asset.attributes.iter().map(|a| a.default.clone()).collect(),
        }
    }

    /// Checks `json` (an object, or null for "all defaults") against `asset`.
    /// Missing and `null` attributes take their defaults.
    ///
    /// # Errors
    /// [`ConfigError`] naming the unknown attribute or the bad value.
    pub fn parse(asset: &Asset, json: &serde_json::Value) -> Result<Configuration, ConfigError> {
        let mut cfg = Configuration::defaults(asset);
        let map = match json {
            serde_json::Value::Null => return Ok(cfg),
            serde_json::Value::Object(m) => m,
            _ => return Err(ConfigError::NotAnObject),
        };
        for (name, v) in map {
            let (i, attr) = asset
                .attribute(name)
                .ok_or_else(|| ConfigError::UnknownAttribute(name.clone()))?;
            if !v.is_null() {
                cfg.values[i] = attr.accept(v).map_err(|error| ConfigError::InvalidValue {
                    attribute: name.clone(),
                    error,
                })?;
            }
        }
        Ok(cfg)
    }

    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The canonical JSON of the whole configuration.
    pub fn canonical(&self, asset: &Asset) -> String {
        let mut s = String::new();
        canonical::write_object(
            &mut s,
            asset
                .attributes
                .iter()
                .zip(&self.values)
                .map(|(a, v)| (a.name.as_str(), v)),
        );
        s
    }

    /// The canonical JSON of the attributes at `indices` only.
    pub fn canonical_subset(&self, asset: &Asset, indices: &[usize]) -> String {
        let mut s = String::new();
        canonical::write_object(
            &mut s,
            indices
                .iter()
                .map(|&i| (asset.attributes[i].name.as_str(), &self.values[i])),
        );
        s
    }

    /// The canonical JSON of `(attribute index, value)` pairs, as a layer's
    /// restricted configuration is recorded.
    pub fn canonical_pairs(asset: &Asset, pairs: &[(usize, Value)]) -> String {
        let mut s = String::new();
        canonical::write_object(
            &mut s,
            pairs
                .iter()
                .map(|(i, v)| (asset.attributes[*i].name.as_str(), v)),
        );
        s
    }

    /// `(index, value)` for the attributes at `indices`.
    pub fn subset(&self, indices: &[usize]) -> Vec<(usize, Value)> {
        indices
            .iter()
            .map(|&i| (i, self.values[i].clone()))
            .collect()
    }
}

/// Picks the view a stage configuration selects; null or `{}` is the first view.
///
/// # Errors
/// [`ConfigError::UnknownView`] when no view's stage equals it canonically.
pub fn select_view(asset: &Asset, stage: &serde_json::Value) -> Result<usize, ConfigError> {
    match stage {
        serde_json::Value::Null => return Ok(0),
        serde_json::Value::Object(m) if m.is_empty() => return Ok(0),
        serde_json::Value::Object(_) => {}
        _ => return Err(ConfigError::NotAnObject),
    }
    let want = canonical_json(stage);
    asset
        .views
        .iter()
        .position(|v| v.stage_canonical == want)
        .ok_or_else(|| ConfigError::UnknownView(want, view_list(asset)))
}

/// The view named `name`.
///
/// # Errors
/// [`ConfigError::UnknownViewName`] listing the views.
pub fn view_named(asset: &Asset, name: &str) -> Result<usize, ConfigError> {
    asset
        .views
        .iter()
        .position(|v| v.name == name)
        .ok_or_else(|| ConfigError::UnknownViewName(name.to_string(), view_list(asset)))
}

/// The views by name with their stages: `front {"Camera":0}, side {"Camera":1}`.
fn view_list(asset: &Asset) -> String {
    let all: Vec<String> = asset
        .views
        .iter()
        .map(|v| format!("{} {}", v.name, v.stage_canonical))
        .collect();
    all.join(", ")
}

/// Hashes `name=value` lines behind a salt line, without building the
/// whole input as one string.
struct Lines(blake3::Hasher);

impl Lines {
    fn new(salt: &str) -> Lines {
        let mut h = blake3::Hasher::new();
        h.update(salt.as_bytes());
        h.update(b"\n");
        Lines(h)
    }

    fn line(&mut self, name: &str, value: impl fmt::Display) -> &mut Lines {
        use std::io::Write;
        let _ = writeln!(self.0, "{name}={value}");
        self
    }

    fn key(&self) -> Key {
        Key(*self.0.finalize().as_bytes())
    }
}

/// The key of one layer image.
///
/// Hashed input, one field a line: `layercake/layer/1`, `asset=<uuid>`,
/// `version=<n>`, `layer=<uuid>`, `recipe=<hex>`, `config=<canonical JSON of
/// the dependsOn attributes>`, `view=<canonical stage JSON>`, `size=<w>x<h>`.
pub fn layer_key(
    asset: &Asset,
    layer: usize,
    view: usize,
    config: &Configuration,
    size: (u32, u32),
) -> Key {
    let l = &asset.layers[layer];
    Lines::new("layercake/layer/1")
        .line("asset", asset.id)
        .line("version", asset.version)
        .line("layer", l.id)
        .line("recipe", Key(l.recipe.fingerprint))
        .line("config", config.canonical_subset(asset, &l.depends_on))
        .line("view", &asset.views[view].stage_canonical)
        .line("size", format_args!("{}x{}", size.0, size.1))
        .key()
}

/// One visible layer of a configuration on a view: what a render of it
/// sees, and the key its image is stored under.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerIdentity {
    /// Index into `asset.layers`.
    pub layer: usize,
    /// Index into `asset.views`.
    pub view: usize,
    /// The render size (the canvas, for every layer the compositor stacks).
    pub size: (u32, u32),
    /// The configuration restricted to the layer's `dependsOn`.
    pub values: Vec<(usize, Value)>,
    /// [`layer_key`] of the above.
    pub key: Key,
}

impl LayerIdentity {
    /// Layer `layer` of `config` on `view` at `size`, visible or not (a
    /// registered upload or a queued task names its layer itself).
    pub fn of(
        asset: &Asset,
        layer: usize,
        view: usize,
        config: &Configuration,
        size: (u32, u32),
    ) -> LayerIdentity {
        LayerIdentity {
            layer,
            view,
            size,
            values: config.subset(&asset.layers[layer].depends_on),
            key: layer_key(asset, layer, view, config, size),
        }
    }
}

/// The layers of `config` visible on `view`, bottom to top, each with its
/// key at `size`: the one list the compositor, the batch planner and
/// `layercake render` stack or render.
pub fn visible_layers<'a>(
    asset: &'a Asset,
    config: &'a Configuration,
    view: usize,
    size: (u32, u32),
) -> impl Iterator<Item = LayerIdentity> + 'a {
    asset
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| l.is_visible(config.values()))
        .map(move |(i, _)| LayerIdentity::of(asset, i, view, config, size))
}

/// The output part of a composite key: what is made of the stacked layers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OutputPart<'a> {
    /// An encoded image: its output parameters (normalised, see
    /// `Output::normalize`) and the cache buster (empty: none).
    Image { output: &'a Output, buster: &'a str },
    /// The layers stacked at canvas resolution, `crop` applied (no size,
    /// fit or format: every size and format of one image shares it), and
    /// the cache buster (empty: none).
    Flattened { crop: Option<Rect>, buster: &'a str },
}

impl OutputPart<'_> {
    /// The value of the `output=` line: `<Output::canonical>`, or
    /// `flattened` then `;crop=<x>,<y>,<w>,<h>` when cropped; then
    /// `;buster=<buster>` when there is one.
    fn spelling(&self) -> String {
        use fmt::Write as _;
        let (mut s, buster) = match self {
            OutputPart::Image { output, buster } => (output.canonical(), buster),
            OutputPart::Flattened { crop, buster } => {
                let mut s = String::from("flattened");
                if let Some(c) = crop {
                    let _ = write!(s, ";crop={},{},{},{}", c.x, c.y, c.width, c.height);
                }
                (s, buster)
            }
        };
        if !buster.is_empty() {
            let _ = write!(s, ";buster={buster}");
        }
        s
    }
}

/// The key of one composite image (or of its flattened stack).
///
/// Hashed input: `layercake/composite/2`, `asset=<uuid>`, `version=<n>`,
/// `definition=<hex>`, `epoch=<n>`, `config=<canonical JSON, defaults filled in>`,
/// `view=<canonical stage JSON>`, `output=<the output part>` (see
/// [`OutputPart`]).
pub fn composite_key(
    asset: &Asset,
    config: &Configuration,
    view: usize,
    output: &OutputPart<'_>,
) -> Key {
    Lines::new("layercake/composite/2")
        .line("asset", asset.id)
        .line("version", asset.version)
        .line("definition", Key(asset.fingerprint))
        .line("epoch", asset.epoch)
        .line("config", config.canonical(asset))
        .line("view", &asset.views[view].stage_canonical)
        .line("output", output.spelling())
        .key()
}

#[cfg(test)]
mod tests;
