//! Output encoders, set for speed on the request path.
//!
//! - PNG: `png` with fdeflate (`Compression::Fast`); opaque images are
//!   written as RGB, a quarter fewer bytes to compress.
//! - JPEG: `jpeg-encoder` (SIMD), 4:2:0; there is no alpha, so the image is
//!   flattened onto white, which on premultiplied pixels is `c + 255 − a`.
//! - WebP: libwebp, lossy, `method` 2 (libwebp's default is 4: about twice
//!   the time for a few percent of bytes, a trade for prefetch, not here).
//! - AVIF: rav1e through `image`/ravif at [`AVIF_SPEED`] (10 is fastest);
//!   still the slowest encoder by far, so the request path gives it a time
//!   budget (see `pipeline`).
//! - JPEG-or-PNG: JPEG for an opaque image, PNG when it has transparency.

use super::{Format, PremulImage};
use fast_image_resize::{MulDiv, PixelType, images::Image};

/// libwebp effort, 0 (fastest) ..= 6.
const WEBP_METHOD: i32 = 2;
/// rav1e speed, 1 ..= 10 (fastest).
pub const AVIF_SPEED: u8 = 8;

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("png: {0}")]
    Png(#[from] png::EncodingError),
    #[error("jpeg: {0}")]
    Jpeg(#[from] jpeg_encoder::EncodingError),
    #[error("webp: {0}")]
    Webp(String),
    #[error("avif: {0}")]
    Avif(String),
    #[error("{0}x{1} is too large for {2}")]
    TooLarge(u32, u32, &'static str),
}

/// Encodes `img` as `format`; `quality` (1..=100) applies to lossy formats.
///
/// # Errors
/// [`EncodeError`] when the encoder fails or the size exceeds the format.
pub fn encode(
    img: PremulImage,
    format: Format,
    quality: Option<u8>,
) -> Result<Vec<u8>, EncodeError> {
    encode_as(img, format, quality).map(|(bytes, _)| bytes)
}

/// Encodes `img` as `format` and says which format the bytes are in (they
/// differ only for [`Format::JpegOrPng`]).
///
/// # Errors
/// As [`encode`].
pub fn encode_as(
    img: PremulImage,
    format: Format,
    quality: Option<u8>,
) -> Result<(Vec<u8>, Format), EncodeError> {
    let q = quality.unwrap_or(85).clamp(1, 100);
    let format = match format {
        Format::JpegOrPng if img.is_opaque() => Format::Jpeg,
        Format::JpegOrPng => Format::Png,
        f => f,
    };
    let bytes = match format {
        Format::Jpeg | Format::JpegOrPng => jpeg(&img, q),
        Format::Png => {
            let opaque = img.is_opaque();
            png(&straight(img, opaque), opaque)
        }
        Format::Webp => {
            let opaque = img.is_opaque();
            webp(&straight(img, opaque), opaque, q)
        }
        Format::Avif => {
            let opaque = img.is_opaque();
            avif(&straight(img, opaque), opaque, q)
        }
    }?;
    Ok((bytes, format))
}

fn avif(img: &PremulImage, opaque: bool, quality: u8) -> Result<Vec<u8>, EncodeError> {
    use image::ImageEncoder;
    let mut out = Vec::new();
    // One thread: a compose slot is one core (rav1e would take them all).
    let enc =
        image::codecs::avif::AvifEncoder::new_with_speed_quality(&mut out, AVIF_SPEED, quality)
            .with_num_threads(Some(1));
    let color = if opaque {
        image::ExtendedColorType::Rgb8
    } else {
        image::ExtendedColorType::Rgba8
    };
    enc.write_image(&img.data, img.width, img.height, color)
        .map_err(|e| EncodeError::Avif(e.to_string()))?;
    Ok(out)
}

/// Straight-alpha pixels: RGB when `opaque`, RGBA otherwise.
pub(super) fn straight(mut img: PremulImage, opaque: bool) -> PremulImage {
    if opaque {
        // Premultiplied and straight agree when alpha is 255.
        let mut rgb = Vec::with_capacity(img.data.len() / 4 * 3);
        for p in img.data.chunks_exact(4) {
            rgb.extend_from_slice(&p[..3]);
        }
        img.data = rgb;
        return img;
    }
    unpremultiply(&mut img.data, img.width, img.height);
    img
}

/// In place, SIMD where the CPU has it.
pub fn unpremultiply(data: &mut [u8], width: u32, height: u32) {
    if let Ok(mut view) = Image::from_slice_u8(width, height, data, PixelType::U8x4) {
        let _ = MulDiv::new().divide_alpha_inplace(&mut view);
    }
}

fn png(img: &PremulImage, opaque: bool) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(img.data.len() / 4);
    let mut enc = png::Encoder::new(&mut out, img.width, img.height);
    enc.set_color(if opaque {
        png::ColorType::Rgb
    } else {
        png::ColorType::Rgba
    });
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Fast);
    let mut w = enc.write_header()?;
    w.write_image_data(&img.data)?;
    w.finish()?;
    Ok(out)
}

fn jpeg(img: &PremulImage, quality: u8) -> Result<Vec<u8>, EncodeError> {
    let (Ok(w), Ok(h)) = (u16::try_from(img.width), u16::try_from(img.height)) else {
        return Err(EncodeError::TooLarge(img.width, img.height, "jpeg"));
    };
    let mut rgb = Vec::with_capacity(img.data.len() / 4 * 3);
    for p in img.data.chunks_exact(4) {
        let white = 255 - p[3];
        rgb.extend_from_slice(&[
            p[0].saturating_add(white),
            p[1].saturating_add(white),
            p[2].saturating_add(white),
        ]);
    }
    let mut out = Vec::with_capacity(rgb.len() / 8);
    jpeg_encoder::Encoder::new(&mut out, quality).encode(
        &rgb,
        w,
        h,
        jpeg_encoder::ColorType::Rgb,
    )?;
    Ok(out)
}

fn webp(img: &PremulImage, opaque: bool, quality: u8) -> Result<Vec<u8>, EncodeError> {
    if img.width > 16383 || img.height > 16383 {
        return Err(EncodeError::TooLarge(img.width, img.height, "webp"));
    }
    let enc = if opaque {
        webp::Encoder::from_rgb(&img.data, img.width, img.height)
    } else {
        webp::Encoder::from_rgba(&img.data, img.width, img.height)
    };
    let mut config = webp::WebPConfig::new()
        .map_err(|()| EncodeError::Webp("cannot initialise libwebp".into()))?;
    config.lossless = 0;
    config.alpha_compression = 1;
    config.quality = f32::from(quality);
    config.method = WEBP_METHOD;
    let mem = enc
        .encode_advanced(&config)
        .map_err(|e| EncodeError::Webp(format!("{e:?}")))?;
    Ok(mem.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_or_png_never_flattens_transparency_and_bytes_say_their_format() {
        let (b, f) = encode_as(gradient(32, 8, true), Format::JpegOrPng, None).unwrap();
        assert_eq!((f, Format::sniff(&b)), (Format::Png, Some(Format::Png)));
        let (b, f) = encode_as(gradient(32, 8, false), Format::JpegOrPng, None).unwrap();
        assert_eq!((f, Format::sniff(&b)), (Format::Jpeg, Some(Format::Jpeg)));
        for format in [Format::Webp, Format::Avif] {
            let (b, f) = encode_as(gradient(32, 8, true), format, Some(60)).unwrap();
            assert_eq!((f, Format::sniff(&b)), (format, Some(format)));
        }
    }

    fn gradient(w: u32, h: u32, alpha: bool) -> PremulImage {
        let mut data = Vec::new();
        for y in 0..h {
            for x in 0..w {
                let a = if alpha {
                    (x * 255 / w.max(1)) as u8
                } else {
                    255
                };
                let c = |v: u32| ((v * 255 / w.max(1)) as u16 * u16::from(a) / 255) as u8;
                data.extend_from_slice(&[c(x), c(y), c(w - x), a]);
            }
        }
        PremulImage {
            width: w,
            height: h,
            data,
        }
    }

    #[test]
    fn every_format_round_trips_through_a_decoder() {
        for (format, alpha) in [
            (Format::Png, true),
            (Format::Png, false),
            (Format::Jpeg, true),
            (Format::Webp, true),
            (Format::Webp, false),
        ] {
            let bytes = encode(gradient(64, 32, alpha), format, Some(90)).unwrap();
            let img = image::load_from_memory(&bytes).unwrap_or_else(|e| panic!("{format:?}: {e}"));
            assert_eq!((img.width(), img.height()), (64, 32), "{format:?}");
            let has_alpha = img.color().has_alpha();
            assert_eq!(
                has_alpha,
                alpha && format != Format::Jpeg,
                "{format:?} alpha={alpha}"
            );
        }
    }

    #[test]
    fn png_is_lossless_for_straight_alpha() {
        let src = gradient(40, 10, true);
        let mut want = src.data.clone();
        unpremultiply(&mut want, 40, 10);
        let img = image::load_from_memory(&encode(src, Format::Png, None).unwrap())
            .unwrap()
            .to_rgba8();
        assert_eq!(img.into_raw(), want);
    }

    #[test]
    fn jpeg_flattens_onto_white() {
        let img = PremulImage {
            width: 16,
            height: 16,
            data: vec![0; 16 * 16 * 4],
        };
        let dec = image::load_from_memory(&encode(img, Format::Jpeg, Some(90)).unwrap())
            .unwrap()
            .to_rgb8();
        assert!(dec.pixels().all(|p| p.0.iter().all(|&c| c >= 254)));
    }
}
