//! Output geometry and resizing.
//!
//! `imageFitMode`, when both `width` and `height` are given:
//!
//! | mode        | scale                        | then                                  |
//! |-------------|------------------------------|---------------------------------------|
//! | `contain`   | whole image fits in the box  | centred, transparent padding          |
//! | `cover`     | image covers the whole box   | centred, the overflow cropped         |
//! | `fitWidth`  | image width = box width      | centred vertically, cropped or padded |
//! | `fitHeight` | image height = box height    | centred horizontally, cropped or padded |
//!
//! With only one of `width`/`height` the other follows the aspect ratio; with
//! neither the image keeps its size. Resampling is Lanczos3 on premultiplied
//! pixels (fast_image_resize, SIMD).

use super::PremulImage;
use fast_image_resize::{PixelType, ResizeAlg, ResizeOptions, Resizer, images::Image};
use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fit {
    Cover,
    Contain,
    FitWidth,
    FitHeight,
}

impl Fit {
    pub fn parse(s: &str) -> Option<Fit> {
        match s {
            "cover" => Some(Fit::Cover),
            "contain" => Some(Fit::Contain),
            "fitWidth" => Some(Fit::FitWidth),
            "fitHeight" => Some(Fit::FitHeight),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Fit::Cover => "cover",
            Fit::Contain => "contain",
            Fit::FitWidth => "fitWidth",
            Fit::FitHeight => "fitHeight",
        }
    }
}

/// Where the resized image goes in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Output size.
    pub width: u32,
    pub height: u32,
    /// Size the source is resampled to.
    pub content_width: u32,
    pub content_height: u32,
    /// Position of the resampled image in the output; negative means cropped.
    pub offset_x: i64,
    pub offset_y: i64,
}

fn scaled(v: u32, s: f64) -> u32 {
    ((f64::from(v) * s).round() as u32).max(1)
}

/// Computes the output geometry for a `src` of the given size.
pub fn geometry(src: (u32, u32), width: Option<u32>, height: Option<u32>, fit: Fit) -> Geometry {
    let (sw, sh) = (f64::from(src.0), f64::from(src.1));
    let (cw, ch, w, h) = match (width, height) {
        (None, None) => (src.0, src.1, src.0, src.1),
        (Some(w), None) => {
            let h = scaled(src.1, f64::from(w) / sw);
            (w, h, w, h)
        }
        (None, Some(h)) => {
            let w = scaled(src.0, f64::from(h) / sh);
            (w, h, w, h)
        }
        (Some(w), Some(h)) => {
            let (sx, sy) = (f64::from(w) / sw, f64::from(h) / sh);
            let s = match fit {
                Fit::Contain => sx.min(sy),
                Fit::Cover => sx.max(sy),
                Fit::FitWidth => sx,
                Fit::FitHeight => sy,
            };
            // The side the scale was taken from matches the box exactly.
            let cw = if s == sx { w } else { scaled(src.0, s) };
            let ch = if s == sy { h } else { scaled(src.1, s) };
            (cw, ch, w, h)
        }
    };
    Geometry {
        width: w,
        height: h,
        content_width: cw,
        content_height: ch,
        offset_x: (i64::from(w) - i64::from(cw)) / 2,
        offset_y: (i64::from(h) - i64::from(ch)) / 2,
    }
}

/// Resamples the visible part of `src` and places it in the output.
///
/// Only what ends up in the output is resampled: for `cover` and the fit
/// modes the source is cropped to the visible region first, so the work and
/// the memory are bounded by the output size, never by the (possibly much
/// larger) scaled content.
pub fn resize_into(src: PremulImage, g: &Geometry) -> PremulImage {
    resize(Cow::Owned(src), g)
}

/// [`resize_into`] leaving `src` as it is (a copy when nothing is resized).
pub fn resize_from(src: &PremulImage, g: &Geometry) -> PremulImage {
    resize(Cow::Borrowed(src), g)
}

fn resize(src: Cow<'_, PremulImage>, g: &Geometry) -> PremulImage {
    let (cw, ch) = (i64::from(g.content_width), i64::from(g.content_height));
    // Visible part of the content, in content pixels.
    let vx0 = (-g.offset_x).max(0);
    let vy0 = (-g.offset_y).max(0);
    let vx1 = cw.min(i64::from(g.width) - g.offset_x);
    let vy1 = ch.min(i64::from(g.height) - g.offset_y);
    if vx0 >= vx1 || vy0 >= vy1 {
        return PremulImage::transparent(g.width, g.height);
    }
    let (vw, vh) = ((vx1 - vx0) as u32, (vy1 - vy0) as u32);
    let visible = if (vx0, vy0, vx1, vy1) == (0, 0, cw, ch) && (src.width, src.height) == (vw, vh) {
        src.into_owned()
    } else {
        // The same region in source pixels.
        let kx = f64::from(src.width) / cw as f64;
        let ky = f64::from(src.height) / ch as f64;
        let crop = [
            vx0 as f64 * kx,
            vy0 as f64 * ky,
            f64::from(vw) * kx,
            f64::from(vh) * ky,
        ];
        resample(&src, crop, vw, vh)
    };
    let (px, py) = (g.offset_x.max(0) as usize, g.offset_y.max(0) as usize);
    if (vw, vh) == (g.width, g.height) {
        return visible;
    }
    let mut out = PremulImage::transparent(g.width, g.height);
    let bytes = vw as usize * 4;
    for y in 0..vh as usize {
        let s = y * bytes;
        let d = ((py + y) * g.width as usize + px) * 4;
        out.data[d..d + bytes].copy_from_slice(&visible.data[s..s + bytes]);
    }
    out
}

/// Resamples the `crop` box (`[left, top, width, height]`, source pixels)
/// of `src` to `width`×`height`.
fn resample(src: &PremulImage, crop: [f64; 4], width: u32, height: u32) -> PremulImage {
    let mut dst = PremulImage::transparent(width, height);
    // Buffers are RGBA8 of exactly the stated size, so both views are valid;
    // if the crate ever disagreed we return the transparent image rather
    // than panic on a request path.
    let Ok(src_view) =
        fast_image_resize::images::ImageRef::new(src.width, src.height, &src.data, PixelType::U8x4)
    else {
        return dst;
    };
    let Ok(mut dst_view) = Image::from_slice_u8(width, height, &mut dst.data, PixelType::U8x4)
    else {
        return dst;
    };
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(
            fast_image_resize::FilterType::Lanczos3,
        ))
        .crop(crop[0], crop[1], crop[2], crop[3])
        // Already premultiplied: no multiply/divide inside the resizer.
        .use_alpha(false);
    let _ = Resizer::new().resize(&src_view, &mut dst_view, &options);
    drop(dst_view);
    // Lanczos lobes can push a colour above its alpha; keep it premultiplied.
    for p in dst.data.chunks_exact_mut(4) {
        let a = p[3];
        p[0] = p[0].min(a);
        p[1] = p[1].min(a);
        p[2] = p[2].min(a);
    }
    dst
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(
        src: (u32, u32),
        w: Option<u32>,
        h: Option<u32>,
        fit: Fit,
    ) -> (u32, u32, u32, u32, i64, i64) {
        let g = geometry(src, w, h, fit);
        (
            g.width,
            g.height,
            g.content_width,
            g.content_height,
            g.offset_x,
            g.offset_y,
        )
    }

    #[test]
    fn fit_modes() {
        let src = (1200, 600);
        assert_eq!(
            g(src, None, None, Fit::Contain),
            (1200, 600, 1200, 600, 0, 0)
        );
        assert_eq!(
            g(src, Some(600), None, Fit::Cover),
            (600, 300, 600, 300, 0, 0)
        );
        assert_eq!(
            g(src, None, Some(100), Fit::Cover),
            (200, 100, 200, 100, 0, 0)
        );
        assert_eq!(
            g(src, Some(400), Some(400), Fit::Contain),
            (400, 400, 400, 200, 0, 100)
        );
        assert_eq!(
            g(src, Some(400), Some(400), Fit::Cover),
            (400, 400, 800, 400, -200, 0)
        );
        assert_eq!(
            g(src, Some(400), Some(100), Fit::FitWidth),
            (400, 100, 400, 200, 0, -50)
        );
        assert_eq!(
            g(src, Some(400), Some(100), Fit::FitHeight),
            (400, 100, 200, 100, 100, 0)
        );
    }

    #[test]
    fn resize_places_and_crops() {
        let src = PremulImage {
            width: 4,
            height: 2,
            data: vec![255; 32],
        };
        let out = resize_into(
            src.clone(),
            &geometry((4, 2), Some(4), Some(4), Fit::Contain),
        );
        assert_eq!((out.width, out.height), (4, 4));
        assert!(out.data[..16].iter().all(|&v| v == 0), "top row padded");
        assert!(out.data[16..48].iter().all(|&v| v == 255));
        let out = resize_into(src, &geometry((4, 2), Some(2), Some(2), Fit::Cover));
        assert_eq!((out.width, out.height), (2, 2));
        assert!(out.data.iter().all(|&v| v == 255));
    }

    #[test]
    fn cover_resamples_only_the_visible_part() {
        // A 1x1200 sliver asked for as 4096x1 cover: content would be
        // 4096 x 4.9 million pixels; the output is 4096 x 1, and so is the work.
        let src = PremulImage {
            width: 1,
            height: 1200,
            data: vec![255; 4800],
        };
        let g = geometry((1, 1200), Some(4096), Some(1), Fit::Cover);
        assert_eq!((g.content_width, g.content_height), (4096, 4_915_200));
        let out = resize_into(src, &g);
        assert_eq!((out.width, out.height), (4096, 1));
        assert!(out.data.iter().all(|&v| v == 255));
    }

    #[test]
    fn cropping_the_source_matches_cropping_the_result() {
        // A horizontal gradient, cover-fitted into a square: the middle of a
        // full resample equals the resample of the middle.
        let (w, h) = (200u32, 100u32);
        let data: Vec<u8> = (0..w * h)
            .flat_map(|i| {
                let x = (i % w) as u8;
                [x, x / 2, 255 - x, 255]
            })
            .collect();
        let src = PremulImage {
            width: w,
            height: h,
            data,
        };
        let g = geometry((w, h), Some(50), Some(50), Fit::Cover);
        let out = resize_into(src.clone(), &g);
        let full = resample(&src, [0.0, 0.0, 200.0, 100.0], 100, 50);
        for y in 0..50usize {
            for x in 0..50usize {
                let a = &out.data[(y * 50 + x) * 4..(y * 50 + x) * 4 + 4];
                let b = &full.data[(y * 100 + x + 25) * 4..(y * 100 + x + 25) * 4 + 4];
                for c in 0..4 {
                    assert!(a[c].abs_diff(b[c]) <= 1, "({x},{y}) {a:?} vs {b:?}");
                }
            }
        }
    }

    #[test]
    fn resampled_pixels_stay_premultiplied() {
        // A hard edge between opaque white and transparent makes Lanczos ring.
        let mut data = vec![0; 64 * 4];
        for p in data.chunks_mut(4).take(32) {
            p.copy_from_slice(&[255, 255, 255, 255]);
        }
        let out = resample(
            &PremulImage {
                width: 64,
                height: 1,
                data,
            },
            [0.0, 0.0, 64.0, 1.0],
            23,
            1,
        );
        assert!(
            out.data
                .chunks(4)
                .all(|p| p[0] <= p[3] && p[1] <= p[3] && p[2] <= p[3])
        );
    }
}
