//! The pixel kernels: stacking layers, fitting, resizing and encoding.
//!
//! Everything here is a pure function of its inputs: `compose` does no I/O,
//! spawns nothing and knows no HTTP type.
//!
//! Layers are kept as [`Rgba8`] (straight alpha), exactly the pixels of the
//! stored PNG, so a layer fresh from the renderer and the same layer read
//! back from the object store compose to identical bytes on every node.
//! "Over" premultiplies on the fly into 32-bit accumulators (no 8-bit
//! premultiplication rounding), and the result travels as [`PremulImage`]
//! through resampling until the final unpremultiply before encoding.
//!
//! - `over`: the "over" kernel, bottom to top, cropped layers at offsets.
//! - `fit`: output geometry (`imageFitMode`, crop) and resizing.
//! - `encode`: PNG, JPEG and WebP encoders with fast settings.
//! - `layerfile`: the stored layer format (PNG plus its placement).

mod encode;
mod fit;
pub mod layerfile;
mod over;

pub use encode::{EncodeError, encode, encode_as, unpremultiply};
pub use fit::{Fit, Geometry, geometry, resize_from, resize_into};
pub use over::compose;

use std::fmt::Write;

/// An RGBA8 image with straight (not premultiplied) alpha, rows packed.
#[derive(Clone, PartialEq, Eq)]
pub struct Rgba8 {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Rgba8 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Rgba8({}x{})", self.width, self.height)
    }
}

impl Rgba8 {
    pub fn byte_size(&self) -> usize {
        self.data.len()
    }
}

/// An RGBA8 image with premultiplied alpha, rows packed without padding.
#[derive(Clone, PartialEq, Eq)]
pub struct PremulImage {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl std::fmt::Debug for PremulImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PremulImage({}x{})", self.width, self.height)
    }
}

impl PremulImage {
    /// A fully transparent image.
    pub fn transparent(width: u32, height: u32) -> PremulImage {
        PremulImage {
            width,
            height,
            data: vec![0; width as usize * height as usize * 4],
        }
    }

    /// Bytes held, for cache weighing.
    pub fn byte_size(&self) -> usize {
        self.data.len()
    }

    /// Whether every pixel is fully opaque (then PNG/WebP can drop alpha).
    pub fn is_opaque(&self) -> bool {
        self.data.chunks_exact(4).all(|p| p[3] == 255)
    }
}

/// A rectangle in canvas pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// One rendered layer: its visible box and where that box sits on the canvas.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerImage {
    pub image: Rgba8,
    pub x: u32,
    pub y: u32,
    /// The full canvas the layer was rendered for.
    pub canvas_width: u32,
    pub canvas_height: u32,
}

impl LayerImage {
    pub fn byte_size(&self) -> usize {
        self.image.byte_size() + std::mem::size_of::<Self>()
    }
}

/// Output encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Png,
    Jpeg,
    Webp,
    Avif,
    /// JPEG when the image is opaque, else PNG (what `format=auto` gives a
    /// client that prefers JPEG: transparency is never flattened).
    JpegOrPng,
}

impl Format {
    /// Parses the `format` parameter (`jpeg` is accepted for `jpg`).
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "png" => Some(Format::Png),
            "jpg" | "jpeg" => Some(Format::Jpeg),
            "webp" => Some(Format::Webp),
            "avif" => Some(Format::Avif),
            _ => None,
        }
    }

    /// The format of encoded bytes, from their magic numbers.
    pub fn sniff(bytes: &[u8]) -> Option<Format> {
        match bytes {
            [0x89, b'P', b'N', b'G', ..] => Some(Format::Png),
            [0xff, 0xd8, 0xff, ..] => Some(Format::Jpeg),
            [
                b'R',
                b'I',
                b'F',
                b'F',
                _,
                _,
                _,
                _,
                b'W',
                b'E',
                b'B',
                b'P',
                ..,
            ] => Some(Format::Webp),
            [
                _,
                _,
                _,
                _,
                b'f',
                b't',
                b'y',
                b'p',
                b'a',
                b'v',
                b'i',
                b'f',
                ..,
            ] => Some(Format::Avif),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Jpeg => "jpg",
            Format::Webp => "webp",
            Format::Avif => "avif",
            Format::JpegOrPng => "jpg-or-png",
        }
    }

    /// The Content-Type; for [`Format::JpegOrPng`] use the encoded
    /// format instead (see `encode_as`).
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Png => "image/png",
            Format::Jpeg | Format::JpegOrPng => "image/jpeg",
            Format::Webp => "image/webp",
            Format::Avif => "image/avif",
        }
    }

    /// Whether `quality` means anything for this format.
    pub fn is_lossy(self) -> bool {
        !matches!(self, Format::Png)
    }
}

/// Everything about the output image a request can choose.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fit: Fit,
    /// Region of the canvas to keep, before resizing.
    pub crop: Option<Rect>,
    pub format: Format,
    /// 1..=100; `None` for lossless formats once normalised.
    pub quality: Option<u8>,
}

impl Output {
    /// Puts equivalent outputs into one form so that they share a key: a
    /// crop of the whole canvas is no crop, `quality` is dropped for PNG and
    /// filled with `default_quality` otherwise, and the fit mode only counts
    /// when both sides are given.
    pub fn normalize(mut self, canvas: (u32, u32), default_quality: u8) -> Output {
        if self.crop
            == Some(Rect {
                x: 0,
                y: 0,
                width: canvas.0,
                height: canvas.1,
            })
        {
            self.crop = None;
        }
        self.quality = if self.format.is_lossy() {
            Some(self.quality.unwrap_or(default_quality))
        } else {
            None
        };
        if self.width.is_none() || self.height.is_none() {
            self.fit = Fit::Contain;
        }
        self
    }

    /// The canonical spelling that enters the composite key, e.g.
    /// `fmt=webp;q=80;w=512;h=512;fit=cover;crop=0,0,600,600`.
    pub fn canonical(&self) -> String {
        let mut s = format!("fmt={}", self.format.name());
        if let Some(q) = self.quality {
            let _ = write!(s, ";q={q}");
        }
        if let Some(w) = self.width {
            let _ = write!(s, ";w={w}");
        }
        if let Some(h) = self.height {
            let _ = write!(s, ";h={h}");
        }
        if self.width.is_some() && self.height.is_some() {
            let _ = write!(s, ";fit={}", self.fit.name());
        }
        if let Some(c) = self.crop {
            let _ = write!(s, ";crop={},{},{},{}", c.x, c.y, c.width, c.height);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(format: Format) -> Output {
        Output {
            width: None,
            height: None,
            fit: Fit::Contain,
            crop: None,
            format,
            quality: None,
        }
    }

    #[test]
    fn equivalent_outputs_normalise_alike() {
        let a = Output {
            crop: Some(Rect {
                x: 0,
                y: 0,
                width: 100,
                height: 50,
            }),
            quality: Some(50),
            ..out(Format::Png)
        };
        assert_eq!(a.normalize((100, 50), 80).canonical(), "fmt=png");
        let b = Output {
            width: Some(10),
            fit: Fit::Cover,
            ..out(Format::Webp)
        };
        assert_eq!(b.normalize((100, 50), 80).canonical(), "fmt=webp;q=80;w=10");
        let c = Output {
            width: Some(10),
            height: Some(5),
            fit: Fit::Cover,
            crop: Some(Rect {
                x: 1,
                y: 2,
                width: 3,
                height: 4,
            }),
            ..out(Format::Jpeg)
        };
        assert_eq!(
            c.normalize((100, 50), 85).canonical(),
            "fmt=jpg;q=85;w=10;h=5;fit=cover;crop=1,2,3,4"
        );
    }
}
