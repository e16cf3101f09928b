//! The built-in renderer: the layer's SVG template with the configuration
//! substituted, rasterised by resvg at the render size.
//!
//! Deterministic (no fonts, no external resources: resvg is built without
//! text and raster-image support), so every node renders the same bytes for
//! the same key. CPU-bound work runs on tokio's blocking pool.
//!
//! Sandboxed: usvg's default resolver reads any `<image href>` path (a
//! FIFO hangs the render, `/dev/zero` eats memory, any SVG on the host
//! could be drawn into a layer). Here a path or URL resolves to nothing,
//! and a `data:` URL only up to [`MAX_DATA_BYTES`] decoded, whatever the
//! template became after substitution (the loader refuses such templates
//! when they are stored; this holds for what it cannot see).

use super::{RenderError, RenderRequest, Renderer};
use crate::catalog::TemplateContext;
use crate::compose::{LayerImage, Rect, Rgba8, unpremultiply};
use resvg::{tiny_skia, usvg};

/// Largest decoded `data:` image a template may embed (the loader's
/// `catalog.max_data_url_bytes` caps the text long before this).
pub const MAX_DATA_BYTES: usize = 4 << 20;

/// usvg options that read no file and no network.
fn sandboxed() -> usvg::Options<'static> {
    let data = usvg::ImageHrefResolver::default_data_resolver();
    usvg::Options {
        resources_dir: None,
        image_href_resolver: usvg::ImageHrefResolver {
            resolve_data: Box::new(move |mime, bytes, opts| {
                if bytes.len() > MAX_DATA_BYTES {
                    return None;
                }
                data(mime, bytes, opts)
            }),
            resolve_string: Box::new(|_, _| None),
        },
        ..usvg::Options::default()
    }
}

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
        let tree = usvg::Tree::from_str(&svg, &sandboxed())
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

#[cfg(test)]
mod sandbox_tests {
    use super::*;
    use crate::catalog::{Catalog, Template};
    use std::sync::Arc;

    /// Renders layer 0 of the demo sofa with its template replaced by `svg`
    /// (what the loader would refuse, as if it came from substitution), on
    /// a thread, failing instead of hanging if the render blocks.
    fn render_with(svg: &str) -> LayerImage {
        let catalog = Catalog::demo().unwrap();
        let mut asset = (**catalog.assets().next().unwrap()).clone();
        let attrs = asset.attributes.clone();
        let t = Arc::new(Template::parse(svg, &attrs).unwrap());
        for slot in &mut asset.layers[0].recipe.templates {
            *slot = Arc::clone(&t);
        }
        asset.layers[0].recipe.crop = false;
        let req = RenderRequest {
            asset: Arc::new(asset),
            layer: 0,
            view: 0,
            values: Vec::new(),
            width: 64,
            height: 64,
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(BuiltinRenderer::new(1 << 20).render_sync(&req));
        });
        rx.recv_timeout(std::time::Duration::from_secs(20))
            .expect("the render blocked on a file")
            .unwrap()
    }

    fn opaque_pixels(img: &LayerImage) -> usize {
        img.image.data.chunks_exact(4).filter(|p| p[3] != 0).count()
    }

    #[test]
    fn templates_read_no_files() {
        let dir = tempfile::tempdir().unwrap();
        // An SVG on the host that would paint the whole layer red.
        let red = dir.path().join("red.svg");
        std::fs::write(
            &red,
            "<svg xmlns='http://www.w3.org/2000/svg' width='64' height='64'><rect width='64' height='64' fill='red'/></svg>",
        )
        .unwrap();
        // A FIFO nobody writes to: reading it blocks for ever.
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.display().to_string()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        for href in [
            red.display().to_string(),
            format!("file://{}", red.display()),
            fifo.display().to_string(),
            "/dev/zero".to_string(),
        ] {
            let svg = format!(
                "<svg xmlns='http://www.w3.org/2000/svg' width='64' height='64'><image href='{href}' width='64' height='64'/></svg>"
            );
            assert_eq!(opaque_pixels(&render_with(&svg)), 0, "{href} was drawn");
        }
        // The same SVG as a data: URL is drawn: the sandbox is not "no images".
        let b64 = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            std::fs::read(&red).unwrap(),
        );
        let svg = format!(
            "<svg xmlns='http://www.w3.org/2000/svg' width='64' height='64'><image href='data:image/svg+xml;base64,{b64}' width='64' height='64'/></svg>"
        );
        assert_eq!(opaque_pixels(&render_with(&svg)), 64 * 64);
    }
}
