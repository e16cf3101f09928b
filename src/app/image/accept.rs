//! `format=auto`: the output format from the request's `Accept` header.
//!
//! q-values are honoured (`q=0` refuses a type). AVIF and WebP are chosen
//! only when the client names them (`image/avif`, `image/webp`): a bare
//! `*/*` (curl, scripts) or `image/*` gets PNG. JPEG is chosen only when the
//! client ranks `image/jpeg` above PNG, and then as "JPEG if the image is
//! opaque, else PNG": transparency is never flattened. Ties go to the
//! smaller file: AVIF, WebP, then PNG. The result is a concrete format
//! that enters the composite key; the raw header never does.

use crate::compose::Format;

/// `(media range, q)` pairs of an `Accept` header.
fn ranges(accept: &str) -> Vec<(String, f32)> {
    accept
        .split(',')
        .filter_map(|part| {
            let mut it = part.split(';');
            let range = it.next()?.trim().to_ascii_lowercase();
            if range.is_empty() {
                return None;
            }
            let q = it
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|v| v.trim().parse::<f32>().ok())
                .unwrap_or(1.0)
                .clamp(0.0, 1.0);
            Some((range, q))
        })
        .collect()
}

/// The q of `mime`: its own entry, else `image/*`, else `*/*` (when
/// `wildcards`), else 0.
fn q_of(ranges: &[(String, f32)], mime: &str, wildcards: bool) -> f32 {
    let find = |r: &str| ranges.iter().find(|(m, _)| m == r).map(|(_, q)| *q);
    find(mime)
        .or_else(|| wildcards.then(|| find("image/*")).flatten())
        .or_else(|| wildcards.then(|| find("*/*")).flatten())
        .unwrap_or(0.0)
}

/// The format `format=auto` gives a client that sent `accept`.
pub fn negotiate(accept: Option<&str>) -> Format {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Format::Png;
    };
    let r = ranges(accept);
    let candidates = [
        (Format::Avif, q_of(&r, "image/avif", false)),
        (Format::Webp, q_of(&r, "image/webp", false)),
        (Format::Png, q_of(&r, "image/png", true)),
        (Format::JpegOrPng, q_of(&r, "image/jpeg", true)),
    ];
    // Highest q wins; on a tie, the earlier (smaller-file) format.
    let mut best = (Format::Png, 0.0f32);
    for (f, q) in candidates {
        if q > best.1 {
            best = (f, q);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_and_tools() {
        let chrome = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";
        let safari = "image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5";
        let old_safari = "image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5";
        let firefox_old = "image/webp,*/*";
        assert_eq!(negotiate(Some(chrome)), Format::Avif);
        assert_eq!(negotiate(Some(safari)), Format::Avif);
        assert_eq!(negotiate(Some(old_safari)), Format::Webp);
        assert_eq!(negotiate(Some(firefox_old)), Format::Webp);
        assert_eq!(negotiate(Some("*/*")), Format::Png, "curl");
        assert_eq!(negotiate(None), Format::Png);
        assert_eq!(negotiate(Some("image/*")), Format::Png);
    }

    #[test]
    fn q_values_are_honoured() {
        assert_eq!(
            negotiate(Some("image/avif;q=0.5, image/webp;q=0.9")),
            Format::Webp
        );
        assert_eq!(
            negotiate(Some("image/avif;q=0, image/webp;q=0")),
            Format::Png
        );
        assert_eq!(
            negotiate(Some("image/jpeg, image/png;q=0.5")),
            Format::JpegOrPng
        );
        assert_eq!(
            negotiate(Some("image/png;q=0, image/jpeg;q=0.1")),
            Format::JpegOrPng
        );
        assert_eq!(
            negotiate(Some("text/html")),
            Format::Png,
            "nothing acceptable: PNG"
        );
        assert_eq!(negotiate(Some("IMAGE/WEBP ; q=1")), Format::Webp);
    }
}
