//! The protocol of external render backends (`command` and `http`).
//!
//! Request: one JSON object (on stdin, or as the POST body):
//!
//! ```json
//! {"assetId": "…", "assetName": "Sofa", "assetVersion": 3,
//!  "layerId": "…", "layer": "body", "view": "front",
//!  "stageConfiguration": {"Camera": 0},
//!  "configuration": {"Body": "Red"},
//!  "width": 1200, "height": 1200}
//! ```
//!
//! `configuration` holds only the attributes the layer depends on.
//!
//! Response: a PNG (on stdout, or as the response body). Either the full
//! `width`×`height` canvas, or a crop carrying layercake's placement chunk
//! (see `compose::layerfile`). Anything else fails the run: bytes that do
//! not decode, more bytes than `render.max_output_bytes`, dimensions over
//! the pixel budget (read from the header, before decoding) or a canvas
//! that is not the one asked for.

use super::{RenderError, RenderRequest};
use crate::compose::{LayerImage, layerfile};
use serde_json::{Map, Value, json};

/// The request as external backends receive it.
pub fn request_json(req: &RenderRequest) -> Value {
    let asset = &req.asset;
    let layer = &asset.layers[req.layer];
    let view = &asset.views[req.view];
    // The canonical spelling is valid JSON, and the same one the keys use.
    let configuration: Value = serde_json::from_str(&crate::keys::Configuration::canonical_pairs(
        asset,
        &req.values,
    ))
    .unwrap_or_else(|_| Value::Object(Map::new()));
    json!({
        "assetId": asset.id,
        "assetName": asset.name,
        "assetVersion": asset.version,
        "layerId": layer.id,
        "layer": layer.name,
        "view": view.name,
        "stageConfiguration": Value::Object(view.stage.clone()),
        "configuration": configuration,
        "width": req.width,
        "height": req.height,
    })
}

/// Decodes a backend's PNG, refusing it before decoding when its header
/// says it is over `max_pixels`.
///
/// # Errors
/// [`RenderError::Failed`] naming what is wrong with the output.
pub fn decode_output(
    backend: &str,
    bytes: &[u8],
    max_pixels: u64,
) -> Result<LayerImage, RenderError> {
    if bytes.is_empty() {
        return Err(RenderError::Failed(format!("{backend} returned no image")));
    }
    layerfile::decode(bytes, max_pixels)
        .map_err(|e| RenderError::Failed(format!("{backend} returned an unusable image: {e}")))
}
