//! An [`ImageQuery`] made into the compositor's [`ImageRequest`] for one
//! asset: pure, no I/O. The attribute values and the view are checked
//! against the asset; a preset stands for what it sets; the crop box must
//! fit the canvas; both output sides, given or derived, must be within
//! `http.max_dimension`; on a URL anyone can change (`Exactness::Rounded`)
//! sizes, quality and crop round to the size policy (`crate::sizes`);
//! `format=auto` becomes a concrete format from `Accept`, which enters the
//! key (the header never does).

use super::query::{CropParams, FormatChoice, ImageQuery, Values};
use crate::catalog::Asset;
use crate::compose::{self, Fit, Format, Output, Rect};
use crate::config::ComposeSettings;
use crate::error::Error;
use crate::keys::{self, Configuration};
use crate::pipeline::ImageRequest;
use crate::sizes::{Exactness, Preset, SizePolicy};
use std::sync::Arc;
use uuid::Uuid;

/// What a server's settings say about every image request.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// `[sizes]`: the ladder and the presets.
    pub sizes: &'a SizePolicy,
    /// `http.max_dimension`.
    pub max_dimension: u32,
    /// `compose.default_format` and the default qualities.
    pub compose: &'a ComposeSettings,
    /// `http.cache_buster`, part of every composite key.
    pub cache_buster: &'a str,
}

/// A saved configuration, as the image request reads it.
#[derive(Debug, Clone, Copy)]
pub struct Saved<'a> {
    pub id: Uuid,
    pub short_id: &'a str,
    /// The asset it configures (`product_id`).
    pub asset: Uuid,
    /// Its attribute values.
    pub values: &'a serde_json::Value,
}

/// The asset a query names: `assetId`, else its saved configuration's.
///
/// # Errors
/// 422 naming `assetId` when neither is there, or `configurationId` when
/// the saved configuration is of another asset.
pub fn asset_id(q: &ImageQuery, saved: Option<&Saved>) -> Result<Uuid, Error> {
    match (q.asset, saved) {
        (Some(id), None) => Ok(id),
        (None, Some(c)) => Ok(c.asset),
        (Some(id), Some(c)) if id != c.asset => Err(Error::invalid(
            "configurationId",
            format!("is a configuration of {}, not of asset {id}", c.asset),
        )),
        (Some(id), Some(_)) => Ok(id),
        (None, None) => Err(Error::invalid("assetId", "is required")),
    }
}

/// The request `q` makes of `asset` (the one [`asset_id`] named).
///
/// # Errors
/// 422 naming the parameter at fault (500 for a saved configuration whose
/// stored JSON does not read).
pub fn resolve(
    q: &ImageQuery,
    asset: Arc<Asset>,
    saved: Option<&Saved>,
    rules: &Rules,
    exactness: Exactness,
    accept: Option<&str>,
) -> Result<ImageRequest, Error> {
    let config = Configuration::parse(&asset, &values(q, saved)?)
        .map_err(|e| Error::invalid("configuration", e.to_string()))?;
    let view = match &q.view {
        Some(name) => {
            keys::view_named(&asset, name).map_err(|e| Error::invalid("view", e.to_string()))?
        }
        None => keys::select_view(&asset, &q.stage)
            .map_err(|e| Error::invalid("stageConfiguration", e.to_string()))?,
    };
    let preset = q
        .preset
        .as_deref()
        .map(|n| rules.sizes.preset(n))
        .transpose()?;
    if let Some(both) = preset.and_then(|pr| pr.sets().find(|name| q.gives(name))) {
        return Err(Error::invalid(
            "preset",
            format!("sets {both}: give the preset or {both}, not both"),
        ));
    }
    let output = output(q, &asset, preset, rules, exactness, accept)?;
    Ok(ImageRequest::new(
        asset,
        config,
        view,
        output,
        rules.cache_buster,
    ))
}

/// The attribute values: the query's JSON, or the saved configuration's.
fn values(q: &ImageQuery, saved: Option<&Saved>) -> Result<serde_json::Value, Error> {
    match (&q.values, saved) {
        (Values::Inline(v), _) => Ok(v.clone()),
        (Values::Saved { inline: true, .. }, Some(c)) => Err(Error::invalid(
            "configuration",
            format!(
                "give configuration or configurationId, not both ({})",
                c.short_id
            ),
        )),
        (Values::Saved { .. }, Some(c)) => Ok(c.values.clone()),
        (Values::Saved { key, .. }, None) => Err(Error::Internal(format!(
            "configurationId {key}: resolved without its saved configuration"
        ))),
    }
}

/// The output: crop, sides (as asked, then as served), format, fit and
/// quality, normalised and within `http.max_dimension`.
fn output(
    q: &ImageQuery,
    asset: &Asset,
    preset: Option<&Preset>,
    rules: &Rules,
    exactness: Exactness,
    accept: Option<&str>,
) -> Result<Output, Error> {
    let (canvas, max) = ((asset.width, asset.height), rules.max_dimension);
    let rounded = exactness == Exactness::Rounded;
    let mut crop = crop(q.crop, canvas)?;
    if rounded {
        crop = crop.map(|c| rules.sizes.crop(c, canvas));
    }
    let region = crop.map_or(canvas, |c| (c.width, c.height));
    let dimension = |name: &str, v: Option<u32>| match v {
        Some(v) if v == 0 || v > max => {
            Err(Error::invalid(name, format!("{v} is outside 1..={max}")))
        }
        v => Ok(v),
    };
    // As asked (or as the preset says), then as served.
    let exact = (
        match preset.and_then(|pr| pr.width) {
            Some(w) => Some(w),
            None => dimension("width", q.width)?,
        },
        match preset.and_then(|pr| pr.height) {
            Some(h) => Some(h),
            None => dimension("height", q.height)?,
        },
    );
    let round = |v: Option<u32>, given: bool, native: u32| match v {
        Some(v) if rounded && given => Some(rules.sizes.side(v, native)),
        v => v,
    };
    let (width, height) = (
        round(exact.0, q.width.is_some(), region.0),
        round(exact.1, q.height.is_some(), region.1),
    );
    let format = format(q, preset, rules, accept)?;
    let fit = preset
        .and_then(|pr| pr.fit)
        .or(q.fit)
        .unwrap_or(Fit::Contain);
    let quality = match (preset.and_then(|pr| pr.quality), q.quality) {
        (Some(p), _) => Some(p),
        (None, Some(q)) if rounded => Some(rules.sizes.quality(q)),
        (None, q) => q,
    };
    let output = |width, height| {
        Output {
            width,
            height,
            fit,
            crop,
            format,
            quality,
        }
        .normalize(canvas, rules.compose.default_quality(format))
    };
    let mut out = output(width, height);
    if (width, height) != exact && check_output_size(region, &out, max, None).is_err() {
        // Rounding up pushed the derived side past http.max_dimension: the
        // size asked for, as is (a narrow band below the limit).
        out = output(exact.0, exact.1);
    }
    // Name the preset only when every side given came from it.
    let from_preset = preset.is_some_and(|pr| pr.width.is_some() || pr.height.is_some())
        && q.width.is_none()
        && q.height.is_none();
    check_output_size(region, &out, max, from_preset.then_some("preset"))?;
    Ok(out)
}

/// The preset's format, else the query's, else `compose.default_format`;
/// `auto` negotiated from `accept`.
fn format(
    q: &ImageQuery,
    preset: Option<&Preset>,
    rules: &Rules,
    accept: Option<&str>,
) -> Result<Format, Error> {
    let choice = match (preset.and_then(|pr| pr.format.as_deref()), q.format) {
        (Some(f), _) => FormatChoice::parse(f)?,
        (None, Some(c)) => c,
        (None, None) => FormatChoice::parse(&rules.compose.default_format)?,
    };
    Ok(choice.negotiate(accept))
}

/// Both output sides, given or derived from the aspect ratio of `region`,
/// are within `max`: the side that was not given must respect the same
/// limit as the one that was. The error names `param`, or else the side.
///
/// # Errors
/// 422 when a side is over the limit.
pub fn check_output_size(
    region: (u32, u32),
    out: &Output,
    max: u32,
    param: Option<&str>,
) -> Result<(), Error> {
    let g = compose::geometry(region, out.width, out.height, out.fit);
    for (side, v) in [("width", g.width), ("height", g.height)] {
        if v > max {
            return Err(Error::invalid(
                param.unwrap_or(side),
                format!(
                    "the output would be {}x{}; each side is limited to {max}",
                    g.width, g.height
                ),
            ));
        }
    }
    Ok(())
}

/// The crop box in canvas pixels; any subset of its parameters may be
/// given (the box then extends to the canvas edge).
///
/// # Errors
/// 422 naming the parameter that puts the box outside the canvas.
fn crop(c: CropParams, canvas: (u32, u32)) -> Result<Option<Rect>, Error> {
    if c.is_empty() {
        return Ok(None);
    }
    let (x, y) = (c.x.unwrap_or(0), c.y.unwrap_or(0));
    if x >= canvas.0 || y >= canvas.1 {
        return Err(Error::invalid(
            if x >= canvas.0 { "cropX" } else { "cropY" },
            format!("({x},{y}) is outside the {}x{} canvas", canvas.0, canvas.1),
        ));
    }
    let w = c.width.unwrap_or(canvas.0 - x);
    let h = c.height.unwrap_or(canvas.1 - y);
    if w == 0 || u64::from(x) + u64::from(w) > u64::from(canvas.0) {
        return Err(Error::invalid(
            "cropWidth",
            format!("{w} at x={x} does not fit the canvas width {}", canvas.0),
        ));
    }
    if h == 0 || u64::from(y) + u64::from(h) > u64::from(canvas.1) {
        return Err(Error::invalid(
            "cropHeight",
            format!("{h} at y={y} does not fit the canvas height {}", canvas.1),
        ));
    }
    Ok(Some(Rect {
        x,
        y,
        width: w,
        height: h,
    }))
}

#[cfg(test)]
mod tests;
