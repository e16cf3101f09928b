//! What becomes of Blender's output file: read within the size and pixel
//! budgets, and resampled to the canvas when rendered at a lower scale;
//! all of it on the blocking pool.

use crate::compose::{Fit, LayerImage, Rect, Rgba8, geometry, resize_into, unpremultiply};
use crate::render::RenderError;
use crate::render::external::decode_output;
use std::path::Path;

/// `f` on the blocking pool (file I/O, decoding, resampling): never on the
/// runtime's threads, which also serve requests.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RenderError> + Send + 'static,
) -> Result<T, RenderError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RenderError::Failed(format!("the blender backend's task: {e}")))?
}

/// Blender's PNG, within the size and pixel budgets.
pub(super) fn read_output(
    path: &Path,
    max_bytes: usize,
    max_pixels: u64,
) -> Result<LayerImage, RenderError> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(max_bytes as u64 + 1).read_to_end(&mut bytes))
        .map_err(|e| RenderError::Failed(format!("blender's output: {e}")))?;
    if bytes.len() > max_bytes {
        return Err(RenderError::Rejected(format!(
            "blender's output is over render.max_output_bytes ({max_bytes})"
        )));
    }
    decode_output("blender", &bytes, max_pixels)
}

/// A render at `scale` percent resampled to the canvas (premultiplied
/// Lanczos); at 100 it is left as it is (the canvas check, `jobs::validate`,
/// names a mismatch).
pub(super) fn to_canvas(
    image: LayerImage,
    width: u32,
    height: u32,
    scale: u32,
) -> Result<LayerImage, RenderError> {
    if (image.canvas_width == width && image.canvas_height == height) || scale == 100 {
        return Ok(image);
    }
    let region = Rect {
        x: 0,
        y: 0,
        width: image.canvas_width,
        height: image.canvas_height,
    };
    let premul = crate::compose::compose(region, &[&image]);
    let g = geometry(
        (region.width, region.height),
        Some(width),
        Some(height),
        Fit::Contain,
    );
    let mut out = resize_into(premul, &g);
    unpremultiply(&mut out.data, out.width, out.height);
    Ok(LayerImage {
        image: Rgba8 {
            width: out.width,
            height: out.height,
            data: out.data,
        },
        x: 0,
        y: 0,
        canvas_width: width,
        canvas_height: height,
    })
}
