//! The caps on a definition (`[catalog]` limits) that can be checked from
//! the document alone, before anything is expanded, and the size and
//! reference checks of one template text.

use super::super::spec::AssetSpec;
use super::ErrFn;
use crate::catalog::{CatalogError, Limits};

/// Every cap that can be checked from the document alone, before anything
/// is expanded (templates are checked as they are read).
pub(super) fn check_limits(
    spec: &AssetSpec,
    limits: &Limits,
    err: &ErrFn<'_>,
) -> Result<(), CatalogError> {
    check_counts(spec, limits, err)?;
    check_canvas(spec, limits, err)?;
    for (i, l) in spec.layers.iter().enumerate() {
        if let Some(t) = &l.render.template {
            check_template(t, limits)
                .map_err(|m| err(format!("layers[{i}].render.template"), m))?;
        }
        for (view, t) in l.render.templates.iter().flatten() {
            check_template(t, limits)
                .map_err(|m| err(format!("layers[{i}].render.templates.{view}"), m))?;
        }
    }
    Ok(())
}

/// `n` `what` at `field`, over the cap `catalog.<cap>` (`max`).
fn over(err: &ErrFn<'_>, field: &str, what: &str, n: u64, cap: &str, max: u64) -> CatalogError {
    err(
        field.into(),
        format!("{n} {what}, over catalog.{cap} ({max})"),
    )
}

/// The caps on how many views, layers, attributes and options.
fn check_counts(spec: &AssetSpec, limits: &Limits, err: &ErrFn<'_>) -> Result<(), CatalogError> {
    let n = |v: usize| v as u64;
    let counts = [
        ("views", spec.views.len(), limits.views),
        ("layers", spec.layers.len(), limits.layers),
        ("attributes", spec.attributes.len(), limits.attributes),
    ];
    for (what, count, max) in counts {
        if count > max {
            let cap = format!("max_{what}");
            return Err(over(err, what, what, n(count), &cap, n(max)));
        }
    }
    for (i, a) in spec.attributes.iter().enumerate() {
        let count = a.values.as_ref().map_or(0, Vec::len);
        if count > limits.options {
            return Err(over(
                err,
                &format!("attributes[{i}].values"),
                "options",
                n(count),
                "max_options",
                n(limits.options),
            ));
        }
    }
    Ok(())
}

/// The caps on the canvas's pixels and on the bytes of one compose.
fn check_canvas(spec: &AssetSpec, limits: &Limits, err: &ErrFn<'_>) -> Result<(), CatalogError> {
    let pixels = u64::from(spec.width) * u64::from(spec.height);
    if pixels > limits.canvas_pixels {
        return Err(over(
            err,
            "width",
            &format!("canvas pixels ({}x{})", spec.width, spec.height),
            pixels,
            "max_canvas_pixels",
            limits.canvas_pixels,
        ));
    }
    let compose = pixels
        .saturating_mul(4)
        .saturating_mul(spec.layers.len() as u64);
    if compose > limits.compose_bytes {
        return Err(over(
            err,
            "layers",
            &format!(
                "bytes for one compose ({}x{} x 4 bytes x {} layers)",
                spec.width,
                spec.height,
                spec.layers.len()
            ),
            compose,
            "max_compose_bytes",
            limits.compose_bytes,
        ));
    }
    Ok(())
}

/// The size and reference checks of one template text.
pub(super) fn check_template(text: &str, limits: &Limits) -> Result<(), String> {
    if text.len() > limits.template_bytes {
        return Err(format!(
            "{} bytes, over catalog.max_template_bytes ({})",
            text.len(),
            limits.template_bytes
        ));
    }
    crate::catalog::check_refs(text, limits.data_url_bytes)
}
