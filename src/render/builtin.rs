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
    /// Where renders run: `None` on tokio's blocking pool (tests, benches),
    /// or in a child process of this executable that is killed at the
    /// timeout, so a template that is slow to rasterise (stacked blurs over
    /// a large canvas) gives its render slot back when its time is up.
    isolated: Option<Isolated>,
}

#[derive(Debug, Clone)]
struct Isolated {
    exe: std::path::PathBuf,
    timeout: std::time::Duration,
}

/// The hidden subcommand a child render runs (`layercake render-builtin`).
pub const CHILD_COMMAND: &str = "render-builtin";
/// The first bytes of a child's answer.
const MAGIC: &[u8; 4] = b"LCR1";

impl BuiltinRenderer {
    /// `max_pixels` bounds the render size (width × height); renders run
    /// on the blocking pool.
    pub fn new(max_pixels: u64) -> Self {
        BuiltinRenderer {
            max_pixels,
            isolated: None,
        }
    }

    /// Renders in a child process (`exe render-builtin`), killed after `timeout`.
    #[must_use]
    pub fn isolated(mut self, exe: std::path::PathBuf, timeout: std::time::Duration) -> Self {
        self.isolated = Some(Isolated { exe, timeout });
        self
    }

    /// The layer's SVG with its configuration substituted.
    fn svg(req: &RenderRequest) -> Result<String, RenderError> {
        let asset = &req.asset;
        let view = &asset.views[req.view];
        let template = asset.layers[req.layer]
            .recipe
            .templates
            .get(req.view)
            .ok_or_else(|| {
                RenderError::Rejected(format!(
                    "{} is a 3D asset: the built-in renderer draws SVG templates only",
                    asset.name
                ))
            })?;
        Ok(template.render(&TemplateContext {
            attributes: &asset.attributes,
            values: &req.values,
            view_name: &view.name,
            view_label: &view.label,
            width: req.width,
            height: req.height,
        })?)
    }

    /// Renders synchronously on the calling thread.
    ///
    /// # Errors
    /// [`RenderError`] for a size over budget, a template that does not
    /// substitute or an SVG that does not parse.
    pub fn render_sync(&self, req: &RenderRequest) -> Result<LayerImage, RenderError> {
        let svg = Self::svg(req)?;
        let crop = req.asset.layers[req.layer].recipe.crop;
        rasterize(&svg, req.width, req.height, crop, self.max_pixels)
    }

    async fn render_in_child(
        &self,
        how: &Isolated,
        req: &RenderRequest,
    ) -> Result<LayerImage, RenderError> {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let (w, h) = (req.width, req.height);
        check_size(w, h, self.max_pixels)?;
        let svg = Self::svg(req)?;
        let crop = req.asset.layers[req.layer].recipe.crop;
        let mut child = tokio::process::Command::new(&how.exe)
            .arg(CHILD_COMMAND)
            .args([
                w.to_string(),
                h.to_string(),
                u8::from(crop).to_string(),
                self.max_pixels.to_string(),
            ])
            .env_clear()
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| RenderError::Failed(format!("cannot start the render process: {e}")))?;
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(RenderError::Failed(
                "the render process has no pipes".into(),
            ));
        };
        let limit = 32 + 4 * u64::from(w) * u64::from(h);
        let work = async move {
            let write = async move {
                let r = stdin.write_all(svg.as_bytes()).await;
                drop(stdin);
                r
            };
            let mut out = Vec::new();
            let mut err = Vec::new();
            let (mut stdout, mut stderr) = (stdout.take(limit + 1), stderr.take(4096));
            let read = stdout.read_to_end(&mut out);
            let read_err = stderr.read_to_end(&mut err);
            let (wrote, read, _) = tokio::join!(write, read, read_err);
            // A child that exits early closes stdin: its status says why.
            let _ = wrote;
            read.map_err(|e| RenderError::Failed(format!("render process output: {e}")))?;
            let status = child
                .wait()
                .await
                .map_err(|e| RenderError::Failed(format!("render process: {e}")))?;
            if !status.success() {
                return Err(RenderError::Failed(format!(
                    "the render process failed ({status}): {}",
                    String::from_utf8_lossy(&err).trim()
                )));
            }
            decode_answer(&out, w, h)
        };
        // Dropping `work` at the timeout drops the child: killed.
        tokio::time::timeout(how.timeout, work)
            .await
            .map_err(|_| RenderError::Timeout(how.timeout))?
    }
}

/// Rasterises `svg` at `w`×`h` with the sandboxed options, cropped to its
/// visible box when `crop`, straight alpha (as layers are stored).
///
/// # Errors
/// [`RenderError`] for an SVG that does not parse or a size over `max_pixels`.
pub fn rasterize(
    svg: &str,
    w: u32,
    h: u32,
    crop: bool,
    max_pixels: u64,
) -> Result<LayerImage, RenderError> {
    check_size(w, h, max_pixels)?;
    let tree =
        usvg::Tree::from_str(svg, &sandboxed()).map_err(|e| RenderError::Svg(e.to_string()))?;
    let mut pixmap = tiny_skia::Pixmap::new(w, h).ok_or_else(|| too_large(w, h, max_pixels))?;
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
    let (mut image, x, y) = if crop {
        let b = visible_box(&full);
        (self::crop(&full, b), b.x, b.y)
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

fn too_large(w: u32, h: u32, max_pixels: u64) -> RenderError {
    RenderError::TooLarge {
        width: w,
        height: h,
        budget: max_pixels,
    }
}

/// A render size within the pixel budget.
fn check_size(w: u32, h: u32, max_pixels: u64) -> Result<(), RenderError> {
    if w == 0 || h == 0 || u64::from(w) * u64::from(h) > max_pixels {
        return Err(too_large(w, h, max_pixels));
    }
    Ok(())
}

/// A child's answer: magic, then x, y, width, height (u32 LE), then RGBA.
fn encode_answer(l: &LayerImage) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + l.image.data.len());
    out.extend_from_slice(MAGIC);
    for v in [l.x, l.y, l.image.width, l.image.height] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&l.image.data);
    out
}

fn decode_answer(
    bytes: &[u8],
    canvas_width: u32,
    canvas_height: u32,
) -> Result<LayerImage, RenderError> {
    let bad = || RenderError::Failed("the render process answered something unreadable".into());
    if bytes.len() < 20 || &bytes[..4] != MAGIC {
        return Err(bad());
    }
    let word = |i: usize| {
        let mut b = [0u8; 4];
        b.copy_from_slice(&bytes[4 + 4 * i..8 + 4 * i]);
        u32::from_le_bytes(b)
    };
    let (x, y, width, height) = (word(0), word(1), word(2), word(3));
    let fits = u64::from(x) + u64::from(width) <= u64::from(canvas_width)
        && u64::from(y) + u64::from(height) <= u64::from(canvas_height);
    let data = &bytes[20..];
    if !fits || data.len() as u64 != 4 * u64::from(width) * u64::from(height) {
        return Err(bad());
    }
    Ok(LayerImage {
        image: Rgba8 {
            width,
            height,
            data: data.to_vec(),
        },
        x,
        y,
        canvas_width,
        canvas_height,
    })
}

/// The child side (`layercake render-builtin <w> <h> <crop 0|1> <max_pixels>`):
/// an SVG on stdin, the answer on stdout.
///
/// # Errors
/// A message for the parent, which reports it as the render's failure.
pub fn child_main(args: &[String]) -> Result<(), String> {
    use std::io::{Read as _, Write as _};
    let num = |i: usize| -> Result<u64, String> {
        args.get(i)
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("argument {i}: a number is needed"))
    };
    let (w, h, crop, max) = (num(0)?, num(1)?, num(2)? == 1, num(3)?);
    let (w, h) = (
        u32::try_from(w).map_err(|e| e.to_string())?,
        u32::try_from(h).map_err(|e| e.to_string())?,
    );
    let mut svg = String::new();
    std::io::stdin()
        .take(64 << 20)
        .read_to_string(&mut svg)
        .map_err(|e| format!("stdin: {e}"))?;
    let layer = rasterize(&svg, w, h, crop, max).map_err(|e| e.to_string())?;
    std::io::stdout()
        .write_all(&encode_answer(&layer))
        .map_err(|e| format!("stdout: {e}"))
}

#[async_trait::async_trait]
impl Renderer for BuiltinRenderer {
    async fn render(&self, req: &RenderRequest) -> Result<LayerImage, RenderError> {
        if let Some(how) = &self.isolated {
            return self.render_in_child(how, req).await;
        }
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
