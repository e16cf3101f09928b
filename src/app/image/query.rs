//! The image route's query, parsed: [`ImageQuery::parse`] checks every
//! parameter for form and types it, without looking at an asset, a setting
//! or a store (that is [`super::resolve`]).
//!
//! Malformed values (bad JSON, a width that is not a number) are 400, and
//! well-formed but unacceptable ones (a bad UUID, an unknown fit mode or
//! format, quality outside 1..=100, `name=` for a parameter whose value is
//! a word or an id) are 422, each naming its parameter. Parameters are
//! checked in the order a client would fix them (asset, configuration,
//! view, preset, crop, size, format, fit, quality). A new parameter is one
//! field here, one line in `parse`, and one step in `resolve`.

use crate::app::params::{Params, parse_uuid};
use crate::compose::{Fit, Format};
use crate::error::Error;
use serde_json::Value;
use uuid::Uuid;

/// Word-valued or id parameters that may not be given empty.
const NOT_EMPTY: [&str; 7] = [
    "format",
    "imageFitMode",
    "preset",
    "configurationId",
    "orgId",
    "v",
    "view",
];

/// Every parameter the image route takes: its own, then those that are
/// not the image's (the caller's token and org, a signature) and those the
/// Threekit client sends that change nothing here (`cacheKey`, `display`,
/// `skipResolveTags`, `cacheScope`, `cacheMaxAge`). Any other is refused
/// by name (`http.ignored_params` aside).
pub const PARAMS: [&str; 25] = [
    "assetId",
    "configuration",
    "configurationId",
    "view",
    "stageConfiguration",
    "stageId",
    "preset",
    "width",
    "height",
    "imageFitMode",
    "cropX",
    "cropY",
    "cropWidth",
    "cropHeight",
    "format",
    "quality",
    "v",
    "signature",
    "bearer_token",
    "orgId",
    "cacheKey",
    "display",
    "skipResolveTags",
    "cacheScope",
    "cacheMaxAge",
];

/// Where the attribute values come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// `configuration`: JSON of attribute values (`Null` when absent: the
    /// defaults).
    Inline(Value),
    /// `configurationId`: a saved configuration's id or shortId. `inline`:
    /// `configuration` was given too, which is refused once the saved
    /// configuration is known (the error names it).
    Saved { key: String, inline: bool },
}

/// `format`: a concrete format, or `auto` (from the `Accept` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatChoice {
    Auto,
    Fixed(Format),
}

impl FormatChoice {
    /// `auto`, or a format `Format::parse` knows.
    ///
    /// # Errors
    /// 422 naming `format`.
    pub fn parse(s: &str) -> Result<FormatChoice, Error> {
        match s {
            "auto" => Ok(FormatChoice::Auto),
            f => Format::parse(f).map(FormatChoice::Fixed).ok_or_else(|| {
                Error::invalid(
                    "format",
                    format!("\"{f}\": use png, jpg, webp, avif or auto"),
                )
            }),
        }
    }

    /// The concrete format for a client that sent `accept`.
    pub fn negotiate(self, accept: Option<&str>) -> Format {
        match self {
            FormatChoice::Auto => super::accept::negotiate(accept),
            FormatChoice::Fixed(f) => f,
        }
    }
}

/// `cropX`, `cropY`, `cropWidth`, `cropHeight` as given (any subset).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CropParams {
    pub x: Option<u32>,
    pub y: Option<u32>,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

impl CropParams {
    pub fn is_empty(&self) -> bool {
        *self == CropParams::default()
    }
}

/// An image request's parameters, each checked for form and typed.
/// (`cacheKey`, `display`, `bearer_token`, `signature` are not the
/// image's; `orgId` is the caller's, checked by the edge.)
#[derive(Debug, Clone, PartialEq)]
pub struct ImageQuery {
    /// `assetId`; optional with `configurationId`.
    pub asset: Option<Uuid>,
    /// `configuration` or `configurationId`.
    pub values: Values,
    /// `stageId`: checked for form only (layercake has no stage assets).
    pub stage_id: Option<Uuid>,
    /// `stageConfiguration`: selects the view (`Null`: the first).
    pub stage: Value,
    /// `view`: selects the view by name (instead of `stageConfiguration`).
    pub view: Option<String>,
    /// `preset`: a name from `sizes.presets`.
    pub preset: Option<String>,
    pub crop: CropParams,
    /// `width`, `height`: as given, before the range check and rounding.
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub format: Option<FormatChoice>,
    /// `imageFitMode`.
    pub fit: Option<Fit>,
    /// 1..=100.
    pub quality: Option<u8>,
    /// `v`: the `<version>.<epoch>[.<buster>]` a URL was pinned to.
    pub version: Option<String>,
}

impl ImageQuery {
    /// Checks every parameter of `p` for form; a parameter the route does
    /// not take is refused unless `ignored` (`http.ignored_params`) names it.
    ///
    /// # Errors
    /// 400 or 422 naming the first parameter at fault.
    pub fn parse(p: &Params, ignored: &[String]) -> Result<ImageQuery, Error> {
        p.only(&PARAMS, ignored)?;
        p.none_empty(&NOT_EMPTY)?;
        let asset = p
            .str("assetId")
            .map(|a| parse_uuid("assetId", a))
            .transpose()?;
        let values = match p.str("configurationId") {
            Some(key) => Values::Saved {
                key: key.to_string(),
                inline: p.str("configuration").is_some(),
            },
            None => Values::Inline(p.json("configuration")?.unwrap_or(Value::Null)),
        };
        let stage_id = p
            .str("stageId")
            .map(|s| parse_uuid("stageId", s))
            .transpose()?;
        let stage = p.json("stageConfiguration")?.unwrap_or(Value::Null);
        let view = p.str("view").map(str::to_string);
        if view.is_some() && p.raw("stageConfiguration").is_some() {
            return Err(Error::invalid(
                "view",
                "give view or stageConfiguration, not both",
            ));
        }
        let preset = p.str("preset").map(str::to_string);
        let crop = CropParams {
            x: p.u32("cropX")?,
            y: p.u32("cropY")?,
            width: p.u32("cropWidth")?,
            height: p.u32("cropHeight")?,
        };
        let (width, height) = (p.u32("width")?, p.u32("height")?);
        let format = p.str("format").map(FormatChoice::parse).transpose()?;
        let fit = p.str("imageFitMode").map(parse_fit).transpose()?;
        let quality = p.u32("quality")?.map(parse_quality).transpose()?;
        Ok(ImageQuery {
            asset,
            values,
            stage_id,
            stage,
            view,
            preset,
            crop,
            width,
            height,
            format,
            fit,
            quality,
            version: p.str("v").map(str::to_string),
        })
    }

    /// Whether the query gives the parameter `name` (one a preset may set).
    pub fn gives(&self, name: &str) -> bool {
        match name {
            "width" => self.width.is_some(),
            "height" => self.height.is_some(),
            "imageFitMode" => self.fit.is_some(),
            "format" => self.format.is_some(),
            "quality" => self.quality.is_some(),
            _ => false,
        }
    }
}

/// # Errors
/// 422 naming `imageFitMode`.
fn parse_fit(f: &str) -> Result<Fit, Error> {
    Fit::parse(f).ok_or_else(|| {
        Error::invalid(
            "imageFitMode",
            format!("\"{f}\": use cover, contain, fitWidth or fitHeight"),
        )
    })
}

/// # Errors
/// 422 naming `quality` outside 1..=100.
fn parse_quality(q: u32) -> Result<u8, Error> {
    match u8::try_from(q) {
        Ok(q) if (1..=100).contains(&q) => Ok(q),
        _ => Err(Error::invalid("quality", format!("{q} is outside 1..=100"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SOFA: &str = "03a29397-2265-40cd-8c45-41a1c4e12574";

    fn parse(q: &str) -> Result<ImageQuery, Error> {
        ImageQuery::parse(&Params::parse(Some(q), 10_000)?, &[])
    }

    /// `(param, 400?)` of a failed parse.
    fn fault(q: &str) -> (String, bool) {
        match parse(q) {
            Err(Error::Invalid { param, .. }) => (param, false),
            Err(Error::Malformed { param, .. }) => (param, true),
            other => panic!("{q}: {other:?}"),
        }
    }

    #[test]
    fn a_full_query_is_typed() {
        let q = parse(&format!(
            "assetId={SOFA}&configuration=%7B%22Body%22%3A%22Navy%22%7D&stageId={SOFA}\
             &stageConfiguration=%7B%22Camera%22%3A2%7D&preset=tile&cropX=1&cropHeight=9\
             &width=640&height=480&format=webp&imageFitMode=cover&quality=80&v=3.1\
             &cacheKey=x&display=y"
        ))
        .unwrap();
        assert_eq!(q.asset, Uuid::parse_str(SOFA).ok());
        assert_eq!(q.values, Values::Inline(json!({"Body": "Navy"})));
        assert_eq!(q.stage_id, Uuid::parse_str(SOFA).ok());
        assert_eq!(q.stage, json!({"Camera": 2}));
        assert_eq!(q.preset.as_deref(), Some("tile"));
        let crop = CropParams {
            x: Some(1),
            y: None,
            width: None,
            height: Some(9),
        };
        assert_eq!(q.crop, crop);
        assert_eq!((q.width, q.height), (Some(640), Some(480)));
        assert_eq!(q.format, Some(FormatChoice::Fixed(Format::Webp)));
        assert_eq!(q.fit, Some(Fit::Cover));
        assert_eq!(q.quality, Some(80));
        assert_eq!(q.version.as_deref(), Some("3.1"));
        for name in ["width", "height", "imageFitMode", "format", "quality"] {
            assert!(q.gives(name), "{name}");
        }
        assert!(!q.gives("cropX"));
    }

    #[test]
    fn absent_and_empty() {
        let q = parse("").unwrap();
        assert_eq!(q.asset, None);
        assert_eq!(q.values, Values::Inline(Value::Null));
        assert_eq!(q.stage, Value::Null);
        assert!(q.crop.is_empty());
        assert!(!q.gives("width"));
        // An empty assetId or stageId counts as absent, as before.
        let q = parse("assetId=&stageId=").unwrap();
        assert_eq!((q.asset, q.stage_id), (None, None));
        assert_eq!(
            parse("format=auto").unwrap().format,
            Some(FormatChoice::Auto)
        );
        assert_eq!(
            parse("format=jpeg").unwrap().format,
            Some(FormatChoice::Fixed(Format::Jpeg))
        );
    }

    #[test]
    fn a_saved_configuration_is_not_parsed_here() {
        let q = parse("configurationId=abc").unwrap();
        let saved = |inline| Values::Saved {
            key: "abc".into(),
            inline,
        };
        assert_eq!(q.values, saved(false));
        // Beside it, `configuration` is a conflict (refused by resolve,
        // naming the saved configuration), whatever its value.
        assert_eq!(
            parse("configurationId=abc&configuration=%7Bnope")
                .unwrap()
                .values,
            saved(true)
        );
        assert_eq!(
            parse("configurationId=abc&configuration=").unwrap().values,
            saved(false)
        );
    }

    #[test]
    fn each_fault_names_its_parameter() {
        let table: &[(&str, &str, bool)] = &[
            ("format=", "format", false),
            ("imageFitMode=", "imageFitMode", false),
            ("preset=", "preset", false),
            ("configurationId=", "configurationId", false),
            ("orgId=", "orgId", false),
            ("v=", "v", false),
            ("assetId=nope", "assetId", false),
            ("configuration=%7Bnope", "configuration", true),
            ("configuration=", "configuration", true),
            ("stageId=nope", "stageId", false),
            ("stageConfiguration=nope", "stageConfiguration", true),
            ("cropX=-1", "cropX", true),
            ("cropY=a", "cropY", true),
            ("cropWidth=1.5", "cropWidth", true),
            ("cropHeight=", "cropHeight", true),
            ("width=abc", "width", true),
            ("width=", "width", true),
            ("height=-5", "height", true),
            ("format=gif", "format", false),
            ("imageFitMode=stretch", "imageFitMode", false),
            ("quality=x", "quality", true),
            ("quality=0", "quality", false),
            ("quality=101", "quality", false),
            ("quality=300", "quality", false),
            // The first fault in the order a client fixes them.
            ("width=x&assetId=nope", "assetId", false),
            ("format=gif&cropX=x", "cropX", true),
        ];
        for (q, param, malformed) in table {
            assert_eq!(fault(q), (param.to_string(), *malformed), "{q}");
        }
    }

    #[test]
    fn messages_are_the_routes() {
        let msg = |q: &str| parse(q).unwrap_err().to_string();
        assert!(msg("format=gif").contains("\"gif\": use png, jpg, webp, avif or auto"));
        assert!(msg("imageFitMode=x").contains("use cover, contain, fitWidth or fitHeight"));
        assert!(msg("quality=0").contains("0 is outside 1..=100"));
        assert!(msg("width=abc").contains("\"abc\" is not a whole number"));
    }
}
