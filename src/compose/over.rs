//! Premultiplied RGBA8 "over", bottom to top.
//!
//! `dst = src + dst × (255 − src_alpha) / 255`, with exact rounding of the
//! division. Layers are mostly fully transparent or fully opaque, so rows
//! are walked in blocks of [`BLOCK`] pixels: a transparent block is skipped,
//! an opaque block is copied, and only mixed blocks run the arithmetic,
//! written without branches so the compiler vectorises it.

use super::{LayerImage, PremulImage, Rect};

/// Pixels per block: 32 bytes, one AVX2 register of u8.
const BLOCK: usize = 8;

/// Stacks `layers` (background first) over a transparent image covering
/// `region` of the canvas. Parts of layers outside the region are ignored,
/// so a crop costs less than a full composite.
pub fn compose(region: Rect, layers: &[&LayerImage]) -> PremulImage {
    let mut out = PremulImage::transparent(region.width, region.height);
    let mut painted = false;
    for layer in layers {
        let img = &layer.image;
        // Intersection of the layer's box with the region, in canvas pixels.
        let x0 = layer.x.max(region.x);
        let y0 = layer.y.max(region.y);
        let x1 = (layer.x + img.width).min(region.x + region.width);
        let y1 = (layer.y + img.height).min(region.y + region.height);
        if x0 >= x1 || y0 >= y1 {
            continue;
        }
        let bytes = (x1 - x0) as usize * 4;
        for y in y0..y1 {
            let s = ((y - layer.y) as usize * img.width as usize + (x0 - layer.x) as usize) * 4;
            let d = ((y - region.y) as usize * region.width as usize + (x0 - region.x) as usize) * 4;
            let src = &img.data[s..s + bytes];
            let dst = &mut out.data[d..d + bytes];
            if painted {
                over_row(dst, src);
            } else {
                // Over a transparent destination is a copy.
                dst.copy_from_slice(src);
            }
        }
        painted = true;
    }
    out
}

/// `dst = src over dst` for one row of premultiplied pixels.
pub fn over_row(dst: &mut [u8], src: &[u8]) {
    let n = dst.len().min(src.len());
    let (dst, src) = (&mut dst[..n], &src[..n]);
    let mut dchunks = dst.chunks_exact_mut(BLOCK * 4);
    let mut schunks = src.chunks_exact(BLOCK * 4);
    for (d, s) in (&mut dchunks).zip(&mut schunks) {
        let (mut all_clear, mut all_solid) = (true, true);
        for p in 0..BLOCK {
            let a = s[p * 4 + 3];
            all_clear &= a == 0;
            all_solid &= a == 255;
        }
        if all_clear {
            continue;
        }
        if all_solid {
            d.copy_from_slice(s);
            continue;
        }
        blend(d, s);
    }
    blend(dchunks.into_remainder(), schunks.remainder());
}

#[inline(always)]
fn blend(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.chunks_exact_mut(4).zip(src.chunks_exact(4)) {
        let inv = 255 - u16::from(s[3]);
        for c in 0..4 {
            let v = u16::from(s[c]) + div255(u16::from(d[c]) * inv);
            // Valid premultiplied input never exceeds 255; clamp anyway.
            d[c] = v.min(255) as u8;
        }
    }
}

/// `round(x / 255)` for `x <= 255 * 255`, exactly.
#[inline(always)]
fn div255(x: u16) -> u16 {
    let x = u32::from(x) + 128;
    ((x + (x >> 8)) >> 8) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn div255_is_exact() {
        for x in 0..=(255u32 * 255) {
            assert_eq!(u32::from(div255(x as u16)), (x as f64 / 255.0).round() as u32, "{x}");
        }
    }

    fn px(r: u8, g: u8, b: u8, a: u8) -> [u8; 4] {
        [r, g, b, a]
    }

    fn reference(d: [u8; 4], s: [u8; 4]) -> [u8; 4] {
        let inv = (255 - s[3]) as f64 / 255.0;
        [0, 1, 2, 3].map(|c| (s[c] as f64 + d[c] as f64 * inv).round().min(255.0) as u8)
    }

    #[test]
    fn over_row_matches_float_reference_on_every_path() {
        // 8 transparent, 8 opaque, 8 mixed, 3 remainder pixels.
        let mut src = Vec::new();
        src.extend(std::iter::repeat_n(px(0, 0, 0, 0), 8));
        src.extend(std::iter::repeat_n(px(10, 20, 30, 255), 8));
        src.extend((0..8).map(|i| px(i * 10, i * 5, 0, i * 20 + 100)));
        src.extend([px(0, 0, 0, 0), px(5, 5, 5, 5), px(255, 255, 255, 255)]);
        let dst0: Vec<[u8; 4]> = (0..src.len() as u8).map(|i| px(i * 3, 200, i, 255 - i)).collect();
        let mut dst: Vec<u8> = dst0.concat();
        over_row(&mut dst, &src.concat());
        for (i, got) in dst.chunks(4).enumerate() {
            assert_eq!(got, reference(dst0[i], src[i]), "pixel {i}");
        }
    }

    #[test]
    fn layers_are_placed_at_offsets_and_clipped_to_the_region() {
        let solid = |w, h, v: u8| PremulImage { width: w, height: h, data: vec![v; (w * h * 4) as usize] };
        let bg = LayerImage { image: solid(4, 4, 255), x: 0, y: 0, canvas_width: 4, canvas_height: 4 };
        let dot = LayerImage { image: solid(2, 1, 0), x: 2, y: 3, canvas_width: 4, canvas_height: 4 };
        // A fully transparent black pixel block leaves the background alone…
        let out = compose(Rect { x: 0, y: 0, width: 4, height: 4 }, &[&bg, &dot]);
        assert!(out.data.iter().all(|&v| v == 255));
        // …an opaque one replaces it, and only inside the region.
        let mut ink = dot.clone();
        for p in ink.image.data.chunks_mut(4) {
            p.copy_from_slice(&[0, 0, 0, 255]);
        }
        let out = compose(Rect { x: 1, y: 2, width: 3, height: 2 }, &[&bg, &ink]);
        assert_eq!((out.width, out.height), (3, 2));
        let at = |x: usize, y: usize| &out.data[(y * 3 + x) * 4..(y * 3 + x) * 4 + 4];
        assert_eq!(at(0, 1), &[255, 255, 255, 255]);
        assert_eq!(at(1, 1), &[0, 0, 0, 255]);
        assert_eq!(at(2, 1), &[0, 0, 0, 255]);
        assert_eq!(at(1, 0), &[255, 255, 255, 255]);
    }
}
