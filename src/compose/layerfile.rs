//! The stored layer format: a straight-alpha RGBA PNG of the layer's
//! visible box, with its placement in a `tEXt` chunk keyed `layercake`:
//! `{"v":1,"x":..,"y":..,"canvas":[w,h]}`.
//!
//! Keeping the placement inside the object (not only in a database row)
//! makes the object store self-sufficient: a node that shares the bucket
//! can use a layer without asking anyone where it goes. A PNG without the
//! chunk is a full-canvas layer at (0, 0), which is what most renderers
//! write.
//!
//! Decoding reads the header first and refuses images over the pixel budget
//! before a single pixel is inflated (a 20000×20000 PNG is a few KB).

use super::{LayerImage, Rgba8};

const CHUNK_KEY: &str = "layercake";

#[derive(Debug, thiserror::Error)]
pub enum LayerFileError {
    #[error("not a PNG the decoder accepts: {0}")]
    Decode(#[from] png::DecodingError),
    #[error("encoding failed: {0}")]
    Encode(#[from] png::EncodingError),
    #[error("{width}x{height} is over the pixel budget of {budget} pixels")]
    TooLarge {
        width: u32,
        height: u32,
        budget: u64,
    },
    #[error("bad placement chunk: {0}")]
    Placement(String),
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Placement {
    v: u32,
    x: u32,
    y: u32,
    canvas: [u32; 2],
}

/// Encodes a layer for storage.
///
/// # Errors
/// [`LayerFileError::Encode`] if the PNG encoder fails.
pub fn encode(layer: &LayerImage) -> Result<Vec<u8>, LayerFileError> {
    let img = &layer.image;
    let placement = Placement {
        v: 1,
        x: layer.x,
        y: layer.y,
        canvas: [layer.canvas_width, layer.canvas_height],
    };
    let text =
        serde_json::to_string(&placement).map_err(|e| LayerFileError::Placement(e.to_string()))?;
    let mut out = Vec::with_capacity(img.data.len() / 8);
    let mut enc = png::Encoder::new(&mut out, img.width, img.height);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    // Stored once, read many times: worth a denser file than the request path.
    enc.set_compression(png::Compression::Balanced);
    enc.add_text_chunk(CHUNK_KEY.into(), text)?;
    let mut w = enc.write_header()?;
    w.write_image_data(&img.data)?;
    w.finish()?;
    Ok(out)
}

/// Decodes a stored (or uploaded) layer PNG.
///
/// # Errors
/// [`LayerFileError`] when the bytes are not a PNG, exceed `max_pixels`, or
/// carry a placement that does not fit its canvas.
pub fn decode(bytes: &[u8], max_pixels: u64) -> Result<LayerImage, LayerFileError> {
    let mut dec = png::Decoder::new(std::io::Cursor::new(bytes));
    dec.set_transformations(
        png::Transformations::EXPAND | png::Transformations::STRIP_16 | png::Transformations::ALPHA,
    );
    let mut reader = dec.read_info()?;
    let (width, height) = (reader.info().width, reader.info().height);
    let budget_check = |w: u32, h: u32| {
        if u64::from(w) * u64::from(h) > max_pixels {
            Err(LayerFileError::TooLarge {
                width: w,
                height: h,
                budget: max_pixels,
            })
        } else {
            Ok(())
        }
    };
    budget_check(width, height)?;
    let placement = reader
        .info()
        .uncompressed_latin1_text
        .iter()
        .find(|c| c.keyword == CHUNK_KEY)
        .map(|c| {
            serde_json::from_str::<Placement>(&c.text)
                .map_err(|e| LayerFileError::Placement(e.to_string()))
        })
        .transpose()?;
    let size = reader
        .output_buffer_size()
        .ok_or(LayerFileError::TooLarge {
            width,
            height,
            budget: max_pixels,
        })?;
    let mut buf = vec![0; size];
    let info = reader.next_frame(&mut buf)?;
    buf.truncate(info.buffer_size());
    let rgba = to_rgba(buf, info.color_type);
    if rgba.len() != width as usize * height as usize * 4 {
        return Err(LayerFileError::Placement(format!(
            "decoded {} bytes for {width}x{height}",
            rgba.len()
        )));
    }
    let image = Rgba8 {
        width,
        height,
        data: rgba,
    };
    let (x, y, cw, ch) = match placement {
        Some(p) => (p.x, p.y, p.canvas[0], p.canvas[1]),
        None => (0, 0, width, height),
    };
    budget_check(cw, ch)?;
    if u64::from(x) + u64::from(width) > u64::from(cw)
        || u64::from(y) + u64::from(height) > u64::from(ch)
    {
        return Err(LayerFileError::Placement(format!(
            "{width}x{height} at ({x},{y}) overflows the {cw}x{ch} canvas"
        )));
    }
    Ok(LayerImage {
        image,
        x,
        y,
        canvas_width: cw,
        canvas_height: ch,
    })
}

/// After EXPAND | ALPHA the decoder gives RGBA or grey+alpha.
fn to_rgba(buf: Vec<u8>, color: png::ColorType) -> Vec<u8> {
    match color {
        png::ColorType::Rgba => buf,
        png::ColorType::GrayscaleAlpha => buf
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0], p[1]])
            .collect(),
        png::ColorType::Rgb => buf
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        png::ColorType::Grayscale => buf.iter().flat_map(|&g| [g, g, g, 255]).collect(),
        png::ColorType::Indexed => buf,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_pixels_and_placement() {
        let data = [
            [10, 20, 30, 255],
            [0, 0, 0, 0],
            [255, 255, 255, 7],
            [1, 2, 3, 128],
        ]
        .concat();
        let layer = LayerImage {
            image: Rgba8 {
                width: 2,
                height: 2,
                data,
            },
            x: 5,
            y: 7,
            canvas_width: 10,
            canvas_height: 12,
        };
        let back = decode(&encode(&layer).unwrap(), 1 << 20).unwrap();
        assert_eq!(back, layer);
    }

    #[test]
    fn oversized_images_are_refused_from_the_header() {
        let layer = LayerImage {
            image: Rgba8 {
                width: 100,
                height: 100,
                data: vec![0; 40000],
            },
            x: 0,
            y: 0,
            canvas_width: 100,
            canvas_height: 100,
        };
        let bytes = encode(&layer).unwrap();
        assert!(matches!(
            decode(&bytes, 9_999),
            Err(LayerFileError::TooLarge { .. })
        ));
    }

    #[test]
    fn placement_outside_the_canvas_is_refused() {
        let layer = LayerImage {
            image: Rgba8 {
                width: 4,
                height: 4,
                data: vec![0; 64],
            },
            x: 8,
            y: 0,
            canvas_width: 10,
            canvas_height: 10,
        };
        assert!(matches!(
            decode(&encode(&layer).unwrap(), 1 << 20),
            Err(LayerFileError::Placement(_))
        ));
    }

    #[test]
    fn plain_png_is_a_full_canvas_layer() {
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, 3, 1);
        enc.set_color(png::ColorType::Rgb);
        let mut w = enc.write_header().unwrap();
        w.write_image_data(&[1, 2, 3, 4, 5, 6, 7, 8, 9]).unwrap();
        w.finish().unwrap();
        let l = decode(&out, 100).unwrap();
        assert_eq!((l.x, l.y, l.canvas_width, l.canvas_height), (0, 0, 3, 1));
        assert_eq!(l.image.data, vec![1, 2, 3, 255, 4, 5, 6, 255, 7, 8, 9, 255]);
    }
}
