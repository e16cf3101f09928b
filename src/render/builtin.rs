//! The built-in renderer: the layer's SVG template with the configuration
//! substituted, rasterised by resvg at the render size.
//!
//! Deterministic (no fonts, no external resources: resvg is built without
//! text and raster-image support), so every node renders the same bytes for
//! the same key. CPU-bound work runs on tokio's blocking pool.

use super::{RenderError, RenderRequest, Renderer};
use crate::catalog::TemplateContext;
use crate::compose::{LayerImage, Rect, Rgba8, unpremultiply};
use resvg::{tiny_skia, usvg};

#[derive(Debug, Clone)]
pub struct BuiltinRenderer {
    max_pixels: u64,
}

impl BuiltinRenderer {
    /// `max_pixels` bounds the render size (width × height).
    pub fn new(max_pixels: u64) -> Self {
        BuiltinRenderer { max_pixels }
    }

    /// Renders synchronously on the calling thread.
    ///
    /// # Errors
    /// [`RenderError`] for a size over budget, a template that does not
    /// substitute or an SVG that does not parse.
    pub fn render_sync(&self, req: &RenderRequest) -> Result<LayerImage, RenderError> {
        let (w, h) = (req.width, req.height);
        if w == 0 || h == 0 || u64::from(w) * u64::from(h) > self.max_pixels {
            return Err(RenderError::TooLarge {
                width: w,
                height: h,
                budget: self.max_pixels,
            });
        }
        let asset = &req.asset;
        let layer = &asset.layers[req.layer];
        let view = &asset.views[req.view];
        let svg = layer.recipe.templates[req.view].render(&TemplateContext {
            attributes: &asset.attributes,
            values: &req.values,
            view_name: &view.name,
            view_label: &view.label,
            width: w,
            height: h,
        })?;
        let tree = usvg::Tree::from_str(&svg, &usvg::Options::default())
            .map_err(|e| RenderError::Svg(e.to_string()))?;
        let mut pixmap = tiny_skia::Pixmap::new(w, h).ok_or(RenderError::TooLarge {
            width: w,
            height: h,
            budget: self.max_pixels,
        })?;
        // Templates are drawn in their own user units; stretch them to the render size.
        let size = tree.size();
        let transform =
            tiny_skia::Transform::from_scale(w as f32 / size.width(), h as f32 / size.height());
        resvg::render(&tree, transform, &mut pixmap.as_mut());
        // tiny-skia pixmaps are premultiplied; crop first (alpha is the same
        // either way), then keep straight alpha, as layers are stored (see `compose`).
        let full = Rgba8 {
            width: w,
            height: h,
            data: pixmap.take(),
        };
        let (mut image, x, y) = if layer.recipe.crop {
            let b = visible_box(&full);
            (crop(&full, b), b.x, b.y)
        } else {
            (full, 0, 0)
        };
        unpremultiply(&mut image.data, image.width, image.height);
        Ok(LayerImage {
            image,
            x,
            y,
            canvas_width: w,
            canvas_height: h,
        })
    }
}

#[async_trait::async_trait]
impl Renderer for BuiltinRenderer {
    async fn render(&self, req: &RenderRequest) -> Result<LayerImage, RenderError> {
        let (this, req) = (self.clone(), req.clone());
        tokio::task::spawn_blocking(move || this.render_sync(&req))
            .await
            .map_err(|e| RenderError::Failed(format!("render task: {e}")))?
    }
}

/// The smallest rectangle holding every pixel with non-zero alpha; a fully
/// transparent image gives a 1×1 box at the origin.
pub fn visible_box(img: &Rgba8) -> Rect {
    let (w, h) = (img.width as usize, img.height as usize);
    let row_alpha = |y: usize| {
        img.data[y * w * 4..(y + 1) * w * 4]
            .chunks_exact(4)
            .map(|p| p[3])
    };
    let Some(top) = (0..h).find(|&y| row_alpha(y).any(|a| a != 0)) else {
        return Rect {
            x: 0,
            y: 0,
            width: 1,
            height: 1,
        };
    };
    let bottom = (0..h)
        .rev()
        .find(|&y| row_alpha(y).any(|a| a != 0))
        .unwrap_or(top);
    let (mut left, mut right) = (w, 0);
    for y in top..=bottom {
        if let Some(l) = row_alpha(y).position(|a| a != 0) {
            left = left.min(l);
            let r = w - 1 - row_alpha(y).rev().position(|a| a != 0).unwrap_or(0);
            right = right.max(r);
        }
    }
    Rect {
        x: left as u32,
        y: top as u32,
        width: (right - left + 1) as u32,
        height: (bottom - top + 1) as u32,
    }
}

fn crop(img: &Rgba8, r: Rect) -> Rgba8 {
    let mut data = Vec::with_capacity(r.width as usize * r.height as usize * 4);
    for y in r.y..r.y + r.height {
        let s = (y as usize * img.width as usize + r.x as usize) * 4;
        data.extend_from_slice(&img.data[s..s + r.width as usize * 4]);
    }
    Rgba8 {
        width: r.width,
        height: r.height,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visible_box_is_tight() {
        let mut img = Rgba8 {
            width: 10,
            height: 8,
            data: vec![0; 320],
        };
        for (x, y) in [(3, 2), (6, 5), (4, 3)] {
            img.data[(y * 10 + x) * 4 + 3] = 1;
        }
        assert_eq!(
            visible_box(&img),
            Rect {
                x: 3,
                y: 2,
                width: 4,
                height: 4
            }
        );
        assert_eq!(
            visible_box(&Rgba8 {
                width: 5,
                height: 5,
                data: vec![0; 100]
            }),
            Rect {
                x: 0,
                y: 0,
                width: 1,
                height: 1
            }
        );
    }
}
