//! `[catalog]`, `[signing]` and `[sizes]`: what assets may hold, how URLs
//! are signed, and which sizes and presets a URL may ask for; their
//! checks, pure, each naming the key it refuses.

use super::{SettingsError, invalid};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CatalogSettings {
    pub dir: String,
    pub refresh_ms: u64,
    pub max_views: usize,
    pub max_layers: usize,
    pub max_attributes: usize,
    pub max_options: usize,
    pub max_template_bytes: usize,
    pub max_data_url_bytes: usize,
    pub max_scene_bytes: usize,
    pub max_canvas_pixels: u64,
    pub max_compose_bytes: u64,
}

impl CatalogSettings {
    /// The caps the asset loader applies.
    pub fn limits(&self) -> crate::catalog::Limits {
        crate::catalog::Limits {
            views: self.max_views,
            layers: self.max_layers,
            attributes: self.max_attributes,
            options: self.max_options,
            template_bytes: self.max_template_bytes,
            data_url_bytes: self.max_data_url_bytes,
            scene_bytes: self.max_scene_bytes,
            canvas_pixels: self.max_canvas_pixels,
            compose_bytes: self.max_compose_bytes,
        }
    }

    /// Checks the section's values: every `max_*` cap is at least 1.
    ///
    /// # Errors
    /// [`SettingsError::Invalid`] naming `catalog.max_views`.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if [
            self.max_views,
            self.max_layers,
            self.max_attributes,
            self.max_options,
            self.max_template_bytes,
            self.max_data_url_bytes,
            self.max_scene_bytes,
        ]
        .contains(&0)
            || self.max_canvas_pixels == 0
            || self.max_compose_bytes == 0
        {
            return invalid(
                "catalog.max_views",
                "every catalog.max_* cap must be at least 1",
            );
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SigningSettings {
    pub keys: Vec<String>,
    pub required: bool,
}

impl SigningSettings {
    /// Checks the keys (as the signer accepts them) and `required`.
    ///
    /// # Errors
    /// [`SettingsError::Invalid`] naming `signing.keys[i]` or `signing.required`.
    pub fn validate(&self) -> Result<(), SettingsError> {
        crate::signing::Signer::new(&self.keys).map_err(SettingsError::named("signing.keys"))?;
        if self.required && self.keys.is_empty() {
            return invalid("signing.required", "needs at least one key in signing.keys");
        }
        Ok(())
    }
}

/// `[sizes]`: what sizes URLs anyone can change may ask for (see
/// `http::sizes`), and the named presets.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SizesSettings {
    pub ladder: Vec<u32>,
    pub quality_step: u8,
    pub crop_step: u32,
    pub presets: std::collections::BTreeMap<String, PresetSettings>,
}

/// One `[sizes.presets.<name>]`: the parameters it stands for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PresetSettings {
    #[serde(default)]
    pub width: Option<u32>,
    #[serde(default)]
    pub height: Option<u32>,
    #[serde(default)]
    pub fit: Option<String>,
    #[serde(default)]
    pub format: Option<String>,
    #[serde(default)]
    pub quality: Option<u8>,
}

impl SizesSettings {
    /// Checks the ladder, steps and presets; `max` is `http.max_dimension`.
    ///
    /// # Errors
    /// [`SettingsError::Invalid`] naming the first bad key.
    pub fn validate(&self, max: u32) -> Result<(), SettingsError> {
        if let Some(w) = self.ladder.iter().find(|w| **w == 0 || **w > max) {
            return invalid(
                "sizes.ladder",
                format!("{w} is outside 1..=http.max_dimension ({max})"),
            );
        }
        if !(1..=100).contains(&self.quality_step) {
            return invalid("sizes.quality_step", "must be 1..=100");
        }
        if self.crop_step == 0 {
            return invalid("sizes.crop_step", "must be at least 1 (1: any crop)");
        }
        for (name, p) in &self.presets {
            p.validate(name, max)?;
        }
        Ok(())
    }
}

impl PresetSettings {
    /// Checks preset `name`; `max` is `http.max_dimension`.
    ///
    /// # Errors
    /// [`SettingsError::Invalid`] naming `sizes.presets.<name>[.<field>]`.
    pub fn validate(&self, name: &str, max: u32) -> Result<(), SettingsError> {
        let key = format!("sizes.presets.{name}");
        let well_named = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !well_named {
            return invalid(&key, "a preset name is 1 to 64 letters, digits, '-' or '_'");
        }
        for (side, v) in [("width", self.width), ("height", self.height)] {
            if let Some(v) = v
                && (v == 0 || v > max)
            {
                return invalid(
                    &format!("{key}.{side}"),
                    format!("{v} is outside 1..=http.max_dimension ({max})"),
                );
            }
        }
        if let Some(f) = &self.fit
            && crate::compose::Fit::parse(f).is_none()
        {
            return invalid(
                &format!("{key}.fit"),
                format!("\"{f}\": use cover, contain, fitWidth or fitHeight"),
            );
        }
        if let Some(f) = &self.format
            && f != "auto"
            && crate::compose::Format::parse(f).is_none()
        {
            return invalid(
                &format!("{key}.format"),
                format!("\"{f}\": use png, jpg, webp, avif or auto"),
            );
        }
        if let Some(q) = self.quality
            && !(1..=100).contains(&q)
        {
            return invalid(&format!("{key}.quality"), format!("{q} is outside 1..=100"));
        }
        Ok(())
    }
}
