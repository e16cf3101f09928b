//! The CPU part of a miss as plain functions (no I/O, no slots): the
//! compositor runs them on its CPU pool (`pool.rs`); `GET /api/layers/layer`
//! and the compose benchmark call them directly.

use crate::compose::{self, LayerImage, Output, PremulImage, Rect, layerfile};
use crate::error::Error;
use std::sync::Arc;

/// Compose, crop, fit, resize and encode: the CPU part of a miss.
///
/// # Errors
/// [`Error::Internal`] when the encoder fails.
pub fn render_composite(
    layers: &[Arc<LayerImage>],
    canvas: (u32, u32),
    output: &Output,
) -> Result<Vec<u8>, Error> {
    let fitted = compose_fitted(layers, canvas, output);
    compose::encode(fitted, output.format, output.quality)
        .map_err(|e| Error::Internal(format!("encode: {e}")))
}

/// Compose, crop, fit and resize: the image before encoding.
pub fn compose_fitted(
    layers: &[Arc<LayerImage>],
    canvas: (u32, u32),
    output: &Output,
) -> PremulImage {
    let composed = flatten(layers, canvas, output);
    let g = geometry_of((composed.width, composed.height), output);
    compose::resize_into(composed, &g)
}

/// The layers stacked over the region `output` keeps (its crop, else the
/// canvas), at canvas resolution: what every size of that image is
/// resized from.
pub fn flatten(layers: &[Arc<LayerImage>], canvas: (u32, u32), output: &Output) -> PremulImage {
    let refs: Vec<&LayerImage> = layers.iter().map(AsRef::as_ref).collect();
    compose::compose(region_of(canvas, output), &refs)
}

/// `flattened` (from [`flatten`], for the same crop) fitted and resized
/// to `output`, leaving `flattened` as it is.
pub fn fit_flattened(flattened: &PremulImage, output: &Output) -> PremulImage {
    let g = geometry_of((flattened.width, flattened.height), output);
    compose::resize_from(flattened, &g)
}

fn region_of(canvas: (u32, u32), output: &Output) -> Rect {
    output.crop.unwrap_or(Rect {
        x: 0,
        y: 0,
        width: canvas.0,
        height: canvas.1,
    })
}

fn geometry_of(size: (u32, u32), output: &Output) -> compose::Geometry {
    compose::geometry(size, output.width, output.height, output.fit)
}

/// A layer image placed on its canvas at `offset` (from its record) and
/// fitted to `output` (`GET /api/layers/layer?optimization=`): one layer,
/// never a composite.
///
/// # Errors
/// 422 when the stored bytes are not a usable layer; 500 when encoding fails.
pub fn transform_layer(
    bytes: &[u8],
    canvas: (u32, u32),
    offset: (u32, u32),
    output: &Output,
    max_pixels: u64,
) -> Result<Vec<u8>, Error> {
    let mut layer = layerfile::decode(bytes, max_pixels)
        .map_err(|e| Error::invalid("layer", format!("the stored image does not decode: {e}")))?;
    (layer.x, layer.y) = offset;
    layer.canvas_width = canvas.0;
    layer.canvas_height = canvas.1;
    crate::jobs::validate_placement(&layer).map_err(|e| Error::invalid("layer", e))?;
    render_composite(&[Arc::new(layer)], canvas, output)
}
