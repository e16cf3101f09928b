//! "Over", bottom to top, into 16-bit premultiplied accumulators.
//!
//! Layers arrive with straight alpha (as stored). Each source pixel is
//! premultiplied exactly (`c × a`, which at 255× scale is at most 65025
//! and fits a u16), and the destination is attenuated by
//! `dst × (255 − a) / 255`, computed as a 16-bit multiply-high by
//! `(255 − a) × 257` (`pmulhuw`, in SSE2 itself), whose error is at most
//! 2/255 of an 8-bit step. Six stacked semi-transparent layers therefore
//! land within ±1 of a floating-point reference (`tests/reference.rs`);
//! the only 8-bit rounding is the final one.
//!
//! Layers are mostly transparent outside their subject, so rows are walked
//! in blocks of [`BLOCK`] pixels and a fully transparent block is skipped;
//! every other block runs the SIMD blend.

use super::{LayerImage, PremulImage, Rect};

/// Pixels per block: 32 bytes of source.
const BLOCK: usize = 8;

/// Stacks `layers` (background first) over a transparent image covering
/// `region` of the canvas. Parts of layers outside the region are ignored,
/// so a crop costs less than a full composite.
///
/// Works a row at a time through every layer, so the accumulator (8
/// bytes a pixel) is one row that stays in cache; memory traffic is the
/// layers read once and the output written once.
pub fn compose(region: Rect, layers: &[&LayerImage]) -> PremulImage {
    let row_len = region.width as usize * 4;
    let mut out = vec![0u8; row_len * region.height as usize];
    let mut acc = vec![0u16; row_len];
    for y in region.y..region.y + region.height {
        acc.fill(0);
        for layer in layers {
            let img = &layer.image;
            if y < layer.y || y >= layer.y + img.height {
                continue;
            }
            // Intersection of the layer's row with the region, in canvas pixels.
            let x0 = layer.x.max(region.x);
            let x1 = (layer.x + img.width).min(region.x + region.width);
            if x0 >= x1 {
                continue;
            }
            let n = (x1 - x0) as usize * 4;
            let s = ((y - layer.y) as usize * img.width as usize + (x0 - layer.x) as usize) * 4;
            let d = (x0 - region.x) as usize * 4;
            over_row(&mut acc[d..d + n], &img.data[s..s + n]);
        }
        let o = (y - region.y) as usize * row_len;
        for (dst, &v) in out[o..o + row_len].iter_mut().zip(&acc) {
            *dst = div255(v) as u8;
        }
    }
    PremulImage {
        width: region.width,
        height: region.height,
        data: out,
    }
}

/// `acc = src over acc` for one row; `src` is straight RGBA8, `acc` is
/// premultiplied at 255× scale.
pub fn over_row(acc: &mut [u16], src: &[u8]) {
    let n = acc.len().min(src.len());
    let (acc, src) = (&mut acc[..n], &src[..n]);
    let mut dchunks = acc.chunks_exact_mut(BLOCK * 4);
    let mut schunks = src.chunks_exact(BLOCK * 4);
    for (d, s) in (&mut dchunks).zip(&mut schunks) {
        let mut all_clear = true;
        for p in 0..BLOCK {
            all_clear &= s[p * 4 + 3] == 0;
        }
        if all_clear {
            continue;
        }
        // Opaque blocks go through the blend too: with SIMD it is as fast
        // as a widening copy (measured), and one path is one thing to test.
        if let (Ok(d), Ok(s)) = (
            <&mut [u16; BLOCK * 4]>::try_from(d),
            <&[u8; BLOCK * 4]>::try_from(s),
        ) {
            blend_block(d, s);
        }
    }
    let (d, s) = (dchunks.into_remainder(), schunks.remainder());
    for (d, s) in d.chunks_exact_mut(4).zip(s.chunks_exact(4)) {
        let a = u16::from(s[3]);
        for c in 0..4 {
            let sv = if c == 3 { 255 } else { u16::from(s[c]) };
            d[c] = sv * a + attenuate(d[c], a);
        }
    }
}

/// One block of mixed alpha. On x86-64 this is SSE2 (part of the baseline,
/// so always present): the compiler does not find the per-pixel alpha
/// broadcast by itself, and the scalar loop measured ~8× slower
/// (`benches/compose.rs`, `over/6x1200`).
#[inline(always)]
fn blend_block(d: &mut [u16; BLOCK * 4], s: &[u8; BLOCK * 4]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE2 is part of the x86-64 baseline; the pointers cover
    // exactly the two fixed-size arrays (32 u16 and 32 u8).
    unsafe {
        blend_block_sse2(d, s)
    }
    #[cfg(not(target_arch = "x86_64"))]
    blend_block_scalar(d, s)
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn blend_block_sse2(d: &mut [u16; BLOCK * 4], s: &[u8; BLOCK * 4]) {
    use std::arch::x86_64::*;
    // SAFETY (whole body): unaligned loads/stores within the arrays, 16
    // bytes at a time: 4 × 8 source bytes, 4 × 8 accumulator lanes.
    unsafe {
        let zero = _mm_setzero_si128();
        let c255 = _mm_set1_epi16(255);
        let c257 = _mm_set1_epi16(257);
        // Lanes 3 and 7 (the two alphas) set, the colour lanes clear.
        let alpha_lanes = _mm_set_epi16(-1, 0, 0, 0, -1, 0, 0, 0);
        for k in 0..BLOCK / 2 {
            // Two pixels: 8 bytes of source widened to 8 × u16.
            let src = _mm_unpacklo_epi8(_mm_loadl_epi64(s.as_ptr().add(k * 8).cast()), zero);
            // Broadcast each pixel's alpha to its four lanes.
            let a = _mm_shufflehi_epi16::<0xFF>(_mm_shufflelo_epi16::<0xFF>(src));
            // The alpha channel composes like a colour whose value is 255.
            let colour = _mm_or_si128(
                _mm_andnot_si128(alpha_lanes, src),
                _mm_and_si128(alpha_lanes, c255),
            );
            let inv = _mm_mullo_epi16(_mm_sub_epi16(c255, a), c257);
            let dp = d.as_mut_ptr().add(k * 8).cast::<__m128i>();
            let old = _mm_loadu_si128(dp);
            // Transparent pixels keep the accumulator exactly (see `attenuate`).
            let clear = _mm_cmpeq_epi16(a, zero);
            let kept = _mm_or_si128(
                _mm_and_si128(clear, old),
                _mm_andnot_si128(clear, _mm_mulhi_epu16(old, inv)),
            );
            _mm_storeu_si128(dp, _mm_add_epi16(_mm_mullo_epi16(colour, a), kept));
        }
    }
}

/// The portable block blend; also the reference the SIMD one is tested against.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn blend_block_scalar(d: &mut [u16; BLOCK * 4], s: &[u8; BLOCK * 4]) {
    let mut alpha = [0u16; BLOCK * 4];
    let mut colour = [0u16; BLOCK * 4];
    for i in 0..BLOCK * 4 {
        alpha[i] = u16::from(s[i | 3]);
        // The alpha channel composes like a colour whose value is 255.
        colour[i] = if i & 3 == 3 { 255 } else { u16::from(s[i]) };
    }
    for i in 0..BLOCK * 4 {
        d[i] = colour[i] * alpha[i] + attenuate(d[i], alpha[i]);
    }
}

/// `d × (255 − a) / 255` as `mulhi(d, (255 − a) × 257)`, except that a
/// transparent source (`a = 0`) keeps `d` exactly (the multiply-high alone
/// would give `d − 1`). Never more than the exact value, so the sum with
/// `c × a` stays within 65025.
#[inline(always)]
fn attenuate(d: u16, a: u16) -> u16 {
    if a == 0 {
        d
    } else {
        ((u32::from(d) * u32::from((255 - a) * 257)) >> 16) as u16
    }
}

/// `round(x / 255)` with shifts and adds, exact for `x <= 65025`.
#[inline(always)]
fn div255(x: u16) -> u16 {
    let x = x + 128;
    (x + (x >> 8)) >> 8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::Rgba8;

    #[test]
    fn div255_is_exact_on_the_accumulator_range() {
        for x in 0..=65025u16 {
            assert_eq!(f64::from(div255(x)), (f64::from(x) / 255.0).round(), "{x}");
        }
    }

    #[test]
    fn simd_block_equals_scalar_block() {
        let mut seed = 0x9e3779b9u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        for _ in 0..2000 {
            let s: [u8; BLOCK * 4] = std::array::from_fn(|_| next() as u8);
            // A valid accumulator: premultiplied at 255× scale.
            let d0: [u16; BLOCK * 4] = std::array::from_fn(|i| {
                let a = (next() % 256) as u16;
                if i % 4 == 3 {
                    a * 255
                } else {
                    (next() % 256) as u16 * a
                }
            });
            let (mut a, mut b) = (d0, d0);
            blend_block(&mut a, &s);
            blend_block_scalar(&mut b, &s);
            assert_eq!(a, b);
        }
    }

    #[test]
    fn attenuate_is_close_and_never_overflows() {
        for a in 0..=255u16 {
            for d in (0..=65025u16).step_by(13) {
                let exact = f64::from(d) * f64::from(255 - a) / 255.0;
                let got = f64::from(attenuate(d, a));
                assert!(
                    got <= exact && exact - got < 2.0,
                    "d={d} a={a}: {got} vs {exact}"
                );
                if a == 0 || a == 255 {
                    assert_eq!(got, exact, "exact at the ends");
                }
                assert!(u32::from(255 * a) + u32::from(attenuate(d, a)) <= 65025);
            }
        }
    }

    /// Straight-alpha "over" in floating point, premultiplied result.
    fn reference(layers: &[[u8; 4]]) -> [f64; 4] {
        let mut d = [0.0f64; 4];
        for s in layers {
            let a = f64::from(s[3]) / 255.0;
            for c in 0..3 {
                d[c] = f64::from(s[c]) * a + d[c] * (1.0 - a);
            }
            d[3] = f64::from(s[3]) + d[3] * (1.0 - a);
        }
        d
    }

    fn layer(px: Vec<[u8; 4]>) -> LayerImage {
        let w = px.len() as u32;
        LayerImage {
            image: Rgba8 {
                width: w,
                height: 1,
                data: px.concat(),
            },
            x: 0,
            y: 0,
            canvas_width: w,
            canvas_height: 1,
        }
    }

    #[test]
    fn stacks_of_translucent_layers_stay_within_half_a_step_and_a_bit() {
        // 8 transparent, 8 opaque, 8 mixed and 3 remainder pixels per layer,
        // six layers of varying alpha over each other.
        let mut layers = Vec::new();
        for k in 0u8..6 {
            let mut px = Vec::new();
            px.extend(std::iter::repeat_n([0, 0, 0, 0], 8));
            px.extend(std::iter::repeat_n([10 + k, 20, 30, 255], 8));
            px.extend((0..8u8).map(|i| [i * 30, 255 - i * 7 - k, k * 40, 1 + i * 31 + k]));
            px.extend([
                [200, 100, 50, 3],
                [5, 5, 5, 128],
                [255, 255, 255, if k % 2 == 0 { 255 } else { 0 }],
            ]);
            layers.push(layer(px));
        }
        let refs: Vec<&LayerImage> = layers.iter().collect();
        let out = compose(
            Rect {
                x: 0,
                y: 0,
                width: 27,
                height: 1,
            },
            &refs,
        );
        for i in 0..27 {
            let want = reference(
                &layers
                    .iter()
                    .map(|l| l.image.data[i * 4..i * 4 + 4].try_into().unwrap())
                    .collect::<Vec<_>>(),
            );
            for (c, want_c) in want.iter().enumerate() {
                let got = f64::from(out.data[i * 4 + c]);
                // Final rounding, plus at most 2/255 of a step per layer.
                assert!(
                    (got - want_c).abs() <= 0.5 + 12.0 / 255.0,
                    "pixel {i} channel {c}: {got} vs {want_c}"
                );
            }
        }
    }

    #[test]
    fn a_crop_equals_the_same_region_of_the_whole() {
        // Translucent pixels next to transparent ones, block boundaries
        // falling differently in the crop and in the whole.
        let (w, h) = (37u32, 5u32);
        let px = |x: u32, y: u32, k: u32| -> [u8; 4] {
            let a = if (x + y + k).is_multiple_of(3) {
                0
            } else {
                ((x * 7 + y * 11 + k * 50) % 256) as u8
            };
            [(x * 5) as u8, (y * 40) as u8, (k * 60) as u8, a]
        };
        let layers: Vec<LayerImage> = (0..4)
            .map(|k| LayerImage {
                image: Rgba8 {
                    width: w,
                    height: h,
                    data: (0..w * h).flat_map(|i| px(i % w, i / w, k)).collect(),
                },
                x: 0,
                y: 0,
                canvas_width: w,
                canvas_height: h,
            })
            .collect();
        let refs: Vec<&LayerImage> = layers.iter().collect();
        let whole = compose(
            Rect {
                x: 0,
                y: 0,
                width: w,
                height: h,
            },
            &refs,
        );
        let r = Rect {
            x: 3,
            y: 1,
            width: 29,
            height: 3,
        };
        let part = compose(r, &refs);
        for y in 0..r.height {
            for x in 0..r.width {
                let a = ((y * r.width + x) * 4) as usize;
                let b = (((y + r.y) * w + x + r.x) * 4) as usize;
                assert_eq!(&part.data[a..a + 4], &whole.data[b..b + 4], "({x},{y})");
            }
        }
    }

    #[test]
    fn layers_are_placed_at_offsets_and_clipped_to_the_region() {
        let solid = |w: u32, h: u32, p: [u8; 4]| Rgba8 {
            width: w,
            height: h,
            data: p.repeat((w * h) as usize),
        };
        let bg = LayerImage {
            image: solid(4, 4, [255; 4]),
            x: 0,
            y: 0,
            canvas_width: 4,
            canvas_height: 4,
        };
        let clear = LayerImage {
            image: solid(2, 1, [0, 0, 0, 0]),
            x: 2,
            y: 3,
            canvas_width: 4,
            canvas_height: 4,
        };
        let out = compose(
            Rect {
                x: 0,
                y: 0,
                width: 4,
                height: 4,
            },
            &[&bg, &clear],
        );
        assert!(
            out.data.iter().all(|&v| v == 255),
            "a transparent layer changes nothing"
        );
        let ink = LayerImage {
            image: solid(2, 1, [0, 0, 0, 255]),
            ..clear
        };
        let out = compose(
            Rect {
                x: 1,
                y: 2,
                width: 3,
                height: 2,
            },
            &[&bg, &ink],
        );
        assert_eq!((out.width, out.height), (3, 2));
        let at = |x: usize, y: usize| &out.data[(y * 3 + x) * 4..(y * 3 + x) * 4 + 4];
        assert_eq!(at(0, 1), &[255, 255, 255, 255]);
        assert_eq!(at(1, 1), &[0, 0, 0, 255]);
        assert_eq!(at(2, 1), &[0, 0, 0, 255]);
        assert_eq!(at(1, 0), &[255, 255, 255, 255]);
    }
}
