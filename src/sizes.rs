//! Which output sizes an image URL may ask for.
//!
//! Every distinct width, height, quality or crop is one more composite to
//! make and keep, so a URL anyone can change (a public token's, read off a
//! storefront page) must not be able to count them: `width=301`, `302`, ...
//! For such URLs (`Exactness::Rounded`) the [`SizePolicy`] rounds width
//! and height up to the next rung of `sizes.ladder` (or to the region's own
//! size when that comes first), quality up to a multiple of
//! `sizes.quality_step`, and crop boxes outwards to a grid of
//! `sizes.crop_step` canvas pixels. Signed URLs, private tokens and
//! development mode ask for any size (`Exactness::Exact`).
//!
//! Named presets (`preset=plp-tile`, `[sizes.presets]`) are for any
//! caller: a preset stands for the parameters it sets, and a request that
//! names one may not give those parameters too.

use crate::compose::{Fit, Rect};
use crate::config::SizesSettings;
use crate::error::Error;
use std::collections::BTreeMap;

/// Whether a request's size parameters are taken as given or rounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exactness {
    /// Signed URLs, private tokens, development mode, server-made URLs.
    Exact,
    /// A URL anyone can change: sizes round to the policy.
    Rounded,
}

/// One named preset, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Preset {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fit: Option<Fit>,
    /// The `format` parameter's spelling (`auto` included).
    pub format: Option<String>,
    pub quality: Option<u8>,
}

impl Preset {
    /// The query parameters this preset sets.
    pub fn sets(&self) -> impl Iterator<Item = &'static str> + '_ {
        [
            ("width", self.width.is_some()),
            ("height", self.height.is_some()),
            ("imageFitMode", self.fit.is_some()),
            ("format", self.format.is_some()),
            ("quality", self.quality.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
    }
}

/// The size rules of `[sizes]`, checked once at start.
#[derive(Debug, Clone, PartialEq)]
pub struct SizePolicy {
    /// Ascending, distinct, non-zero.
    ladder: Vec<u32>,
    quality_step: u8,
    crop_step: u32,
    /// `http.max_dimension`: no side rounds past it.
    max: u32,
    presets: BTreeMap<String, Preset>,
}

impl SizePolicy {
    /// The policy of settings that `Settings::validate` accepted (it
    /// checks every value; nothing here can fail).
    pub fn new(s: &SizesSettings, max_dimension: u32) -> SizePolicy {
        let mut ladder = s.ladder.clone();
        ladder.sort_unstable();
        ladder.dedup();
        let presets = s
            .presets
            .iter()
            .map(|(name, p)| {
                let preset = Preset {
                    width: p.width,
                    height: p.height,
                    fit: p.fit.as_deref().and_then(Fit::parse),
                    format: p.format.clone(),
                    quality: p.quality,
                };
                (name.clone(), preset)
            })
            .collect();
        SizePolicy {
            ladder,
            quality_step: s.quality_step.max(1),
            crop_step: s.crop_step.max(1),
            max: max_dimension,
            presets,
        }
    }

    /// The preset named `name`.
    ///
    /// # Errors
    /// 422 naming `preset` and the presets there are.
    pub fn preset(&self, name: &str) -> Result<&Preset, Error> {
        self.presets.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.presets.keys().map(String::as_str).collect();
            Error::invalid(
                "preset",
                if known.is_empty() {
                    format!("\"{name}\": this server defines no presets")
                } else {
                    format!("\"{name}\" is not one of {}", known.join(", "))
                },
            )
        })
    }

    /// `side` rounded up to the next rung or to `native` (the region's own
    /// size on that axis), whichever comes first; past both, the larger of
    /// the top rung and `native`; never past `http.max_dimension`. With no
    /// ladder, `side` itself.
    pub fn side(&self, side: u32, native: u32) -> u32 {
        let Some(top) = self.ladder.last().copied() else {
            return side;
        };
        let rung = self.ladder.iter().copied().find(|r| *r >= side);
        let up = match rung {
            Some(r) if side <= native && native < r => native,
            Some(r) => r,
            None if side <= native => native,
            None => top.max(native),
        };
        up.min(self.max)
    }

    /// `q` rounded up to a multiple of the step (at most 100).
    pub fn quality(&self, q: u8) -> u8 {
        let step = u32::from(self.quality_step);
        let up = u32::from(q).div_ceil(step) * step;
        u8::try_from(up.min(100)).unwrap_or(100)
    }

    /// `r` grown outwards to the crop grid, within the canvas.
    pub fn crop(&self, r: Rect, canvas: (u32, u32)) -> Rect {
        let step = self.crop_step;
        let snap = |start: u32, len: u32, limit: u32| {
            let lo = start / step * step;
            let hi = (u64::from(start) + u64::from(len))
                .div_ceil(u64::from(step))
                .saturating_mul(u64::from(step))
                .min(u64::from(limit));
            (lo, u32::try_from(hi).unwrap_or(limit) - lo)
        };
        let (x, width) = snap(r.x, r.width, canvas.0);
        let (y, height) = snap(r.y, r.height, canvas.1);
        Rect {
            x,
            y,
            width,
            height,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PresetSettings;

    fn policy(ladder: &[u32]) -> SizePolicy {
        let s = SizesSettings {
            ladder: ladder.to_vec(),
            quality_step: 5,
            crop_step: 64,
            presets: BTreeMap::from([(
                "tile".to_string(),
                PresetSettings {
                    width: Some(480),
                    height: None,
                    fit: None,
                    format: Some("webp".into()),
                    quality: None,
                },
            )]),
        };
        SizePolicy::new(&s, 4096)
    }

    #[test]
    fn sides_round_up_to_a_rung_or_the_native_size() {
        let p = policy(&[640, 320, 960]);
        assert_eq!(p.side(1, 2000), 320);
        assert_eq!(p.side(320, 2000), 320);
        assert_eq!(p.side(321, 2000), 640);
        assert_eq!(
            p.side(961, 2000),
            2000,
            "past the top rung: the native size"
        );
        assert_eq!(p.side(3000, 2000), 2000, "past both: the larger");
        assert_eq!(p.side(3000, 500), 960, "past both: the larger");
        assert_eq!(p.side(3900, 8000), 4096, "never past http.max_dimension");
        assert_eq!(p.side(700, 800), 800, "the native size comes first");
        assert_eq!(p.side(900, 800), 960, "an upscale takes the rung");
        assert_eq!(policy(&[]).side(301, 2000), 301, "no ladder, no rounding");
        // However many widths are asked, only the rungs come out.
        let outs: std::collections::BTreeSet<u32> = (1..=4096).map(|w| p.side(w, 1000)).collect();
        assert_eq!(
            outs.into_iter().collect::<Vec<_>>(),
            vec![320, 640, 960, 1000]
        );
    }

    #[test]
    fn quality_and_crop_snap() {
        let p = policy(&[320]);
        assert_eq!(p.quality(1), 5);
        assert_eq!(p.quality(80), 80);
        assert_eq!(p.quality(81), 85);
        assert_eq!(p.quality(100), 100);
        let r = p.crop(
            Rect {
                x: 70,
                y: 0,
                width: 100,
                height: 990,
            },
            (1000, 1000),
        );
        assert_eq!(
            r,
            Rect {
                x: 64,
                y: 0,
                width: 128,
                height: 1000
            },
            "outwards, clamped to the canvas"
        );
    }

    #[test]
    fn presets_are_checked_and_named() {
        let p = policy(&[320]);
        assert_eq!(p.preset("tile").unwrap().width, Some(480));
        assert_eq!(
            p.preset("tile").unwrap().sets().collect::<Vec<_>>(),
            vec!["width", "format"]
        );
        let e = p.preset("nope").unwrap_err().to_string();
        assert!(e.contains("preset") && e.contains("tile"), "{e}");
    }
}
