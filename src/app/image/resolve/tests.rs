//! Table tests of `resolve` on the demo sofa (1200x1200, four views), with
//! the shipped `[sizes]` (ladder up to 3840, quality step 5, crop step 64,
//! presets `plp-tile` and `thumbnail`) plus a `wide` preset, and
//! `http.max_dimension` 4096.

use super::*;
use crate::app::params::Params;
use crate::catalog::{Catalog, DEMO_ASSET_ID};
use crate::config::{Overrides, PresetSettings, Settings};

const CHROME: &str = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";

struct Fixture {
    settings: Settings,
    sizes: SizePolicy,
    asset: Arc<Asset>,
}

fn fixture() -> Fixture {
    let settings = Settings::load(None, &Overrides::default()).unwrap();
    let mut s = settings.sizes.clone();
    s.presets.insert(
        "wide".into(),
        PresetSettings {
            width: Some(4096),
            height: None,
            fit: None,
            format: None,
            quality: None,
        },
    );
    let sizes = SizePolicy::new(&s, 4096);
    let catalog = Catalog::demo().unwrap();
    let asset = catalog
        .get(&Uuid::parse_str(DEMO_ASSET_ID).unwrap())
        .unwrap()
        .clone();
    Fixture {
        settings,
        sizes,
        asset,
    }
}

impl Fixture {
    fn rules(&self) -> Rules<'_> {
        Rules {
            sizes: &self.sizes,
            max_dimension: 4096,
            compose: &self.settings.compose,
            cache_buster: "",
        }
    }

    fn run(&self, q: &str, exactness: Exactness, accept: Option<&str>) -> Result<Output, Error> {
        let q = ImageQuery::parse(&Params::parse(Some(q), 100_000)?, &[])?;
        let req = resolve(
            &q,
            Arc::clone(&self.asset),
            None,
            &self.rules(),
            exactness,
            accept,
        )?;
        Ok(req.output)
    }

    fn exact(&self, q: &str) -> Result<Output, Error> {
        self.run(q, Exactness::Exact, None)
    }

    fn rounded(&self, q: &str) -> Result<Output, Error> {
        self.run(q, Exactness::Rounded, None)
    }
}

/// The parameter a failed resolve names (all of resolve's faults are 422).
fn param(r: Result<Output, Error>) -> String {
    match r {
        Err(Error::Invalid { param, .. }) => param,
        other => panic!("expected a 422, got {other:?}"),
    }
}

fn rect(x: u32, y: u32, width: u32, height: u32) -> Rect {
    Rect {
        x,
        y,
        width,
        height,
    }
}

#[test]
fn defaults_and_views() {
    let f = fixture();
    let q = ImageQuery::parse(
        &Params::parse(Some("stageConfiguration=%7B%22Camera%22%3A2%7D"), 1000).unwrap(),
        &[],
    )
    .unwrap();
    let req = resolve(
        &q,
        Arc::clone(&f.asset),
        None,
        &f.rules(),
        Exactness::Exact,
        None,
    )
    .unwrap();
    assert_eq!(req.view, 2);
    let o = req.output.clone();
    assert_eq!((o.width, o.height, o.crop), (None, None, None));
    assert_eq!(
        (o.format, o.fit, o.quality),
        (Format::Png, Fit::Contain, None)
    );
    // The key covers the buster.
    let busted = Rules {
        cache_buster: "b1",
        ..f.rules()
    };
    let other = resolve(
        &q,
        Arc::clone(&f.asset),
        None,
        &busted,
        Exactness::Exact,
        None,
    )
    .unwrap();
    assert_ne!(req.key(), other.key());
}

#[test]
fn a_view_by_name_is_the_view_its_stage_selects() {
    let f = fixture();
    let third = f.asset.views[2].name.clone();
    let request = |q: &str| {
        let q = ImageQuery::parse(&Params::parse(Some(q), 1000).unwrap(), &[]).unwrap();
        resolve(
            &q,
            Arc::clone(&f.asset),
            None,
            &f.rules(),
            Exactness::Exact,
            None,
        )
    };
    let by_name = request(&format!("view={third}")).unwrap();
    let by_stage = request("stageConfiguration=%7B%22Camera%22%3A2%7D").unwrap();
    assert_eq!(by_name.view, 2);
    assert_eq!(by_name.key(), by_stage.key());
    match request("view=top") {
        Err(Error::Invalid { param, message }) => {
            assert_eq!(param, "view");
            for v in &f.asset.views {
                assert!(message.contains(&v.name), "{message} lists {}", v.name);
            }
        }
        other => panic!("expected a 422, got {other:?}"),
    }
    match request("stageConfiguration=%7B%22Camera%22%3A9%7D") {
        Err(Error::Invalid { param, message }) => {
            assert_eq!(param, "stageConfiguration");
            assert!(
                message.contains(&format!("{third} {{\"Camera\":2}}")),
                "{message}"
            );
        }
        other => panic!("expected a 422, got {other:?}"),
    }
}

#[test]
fn each_fault_names_its_parameter() {
    let f = fixture();
    let table: &[(&str, &str)] = &[
        ("configuration=%7B%22Nope%22%3A1%7D", "configuration"),
        (
            "configuration=%7B%22Body%22%3A%22Purple%22%7D",
            "configuration",
        ),
        ("configuration=3", "configuration"),
        (
            "stageConfiguration=%7B%22Camera%22%3A9%7D",
            "stageConfiguration",
        ),
        ("stageConfiguration=%5B%5D", "stageConfiguration"),
        ("preset=nope", "preset"),
        ("preset=plp-tile&width=300", "preset"),
        ("preset=plp-tile&format=png", "preset"),
        ("preset=thumbnail&imageFitMode=cover", "preset"),
        ("cropX=1200", "cropX"),
        ("cropY=1200", "cropY"),
        ("cropX=1200&cropY=1200", "cropX"),
        ("cropX=1100&cropWidth=101", "cropWidth"),
        ("cropWidth=0", "cropWidth"),
        ("cropY=1&cropHeight=1200", "cropHeight"),
        ("cropHeight=0", "cropHeight"),
        ("width=0", "width"),
        ("width=4097", "width"),
        ("height=0", "height"),
        ("height=5000", "height"),
        // A derived side over the limit names that side...
        ("cropWidth=100&width=400", "height"),
        ("cropHeight=100&height=400", "width"),
        // ...or the preset when every side given came from it.
        ("preset=wide&cropWidth=1024", "preset"),
        // The first fault in the order a client fixes them.
        ("configuration=3&cropX=5000", "configuration"),
        ("cropX=5000&width=0", "cropX"),
    ];
    for (q, want) in table {
        assert_eq!(param(f.exact(q)), *want, "{q}");
    }
}

#[test]
fn messages_are_the_routes() {
    let f = fixture();
    let msg = |q: &str| f.exact(q).unwrap_err().to_string();
    assert_eq!(msg("width=4097"), "width: 4097 is outside 1..=4096");
    assert_eq!(
        msg("preset=plp-tile&width=300"),
        "preset: sets width: give the preset or width, not both"
    );
    assert_eq!(
        msg("cropX=1200"),
        "cropX: (1200,0) is outside the 1200x1200 canvas"
    );
    assert_eq!(
        msg("cropX=1100&cropWidth=101"),
        "cropWidth: 101 at x=1100 does not fit the canvas width 1200"
    );
    assert_eq!(
        msg("cropWidth=100&width=400"),
        "height: the output would be 400x4800; each side is limited to 4096"
    );
}

#[test]
fn crop_edges() {
    let f = fixture();
    let crop = |q: &str| f.exact(q).unwrap().crop;
    assert_eq!(crop("cropX=1100"), Some(rect(1100, 0, 100, 1200)));
    assert_eq!(crop("cropX=1199&cropY=1199"), Some(rect(1199, 1199, 1, 1)));
    assert_eq!(
        crop("cropWidth=1200&cropHeight=1200"),
        None,
        "the whole canvas is no crop"
    );
    assert_eq!(crop("cropX=0"), None);
    assert_eq!(crop("cropY=10&cropHeight=20"), Some(rect(0, 10, 1200, 20)));
    // Rounded: outwards to the 64-pixel grid, within the canvas.
    let r = f
        .rounded("cropX=70&cropY=10&cropWidth=100&cropHeight=20")
        .unwrap();
    assert_eq!(r.crop, Some(rect(64, 0, 128, 64)));
    let r = f.rounded("cropX=1150").unwrap();
    assert_eq!(r.crop, Some(rect(1088, 0, 112, 1200)));
}

#[test]
fn sizes_round_only_when_rounded() {
    let f = fixture();
    let sides = |o: Output| (o.width, o.height);
    assert_eq!(sides(f.exact("width=300").unwrap()), (Some(300), None));
    assert_eq!(sides(f.rounded("width=300").unwrap()), (Some(320), None));
    assert_eq!(
        sides(f.rounded("height=1100").unwrap()),
        (None, Some(1200)),
        "native before the next rung"
    );
    assert_eq!(
        sides(f.rounded("width=300&height=301").unwrap()),
        (Some(320), Some(320))
    );
    // Quality rounds up to the step; a preset's sizes never round.
    let q = |o: Output| o.quality;
    assert_eq!(q(f.exact("format=jpg&quality=81").unwrap()), Some(81));
    assert_eq!(q(f.rounded("format=jpg&quality=81").unwrap()), Some(85));
    assert_eq!(
        q(f.rounded("format=jpg").unwrap()),
        Some(f.settings.compose.jpeg_quality)
    );
    assert_eq!(
        q(f.rounded("format=png&quality=81").unwrap()),
        None,
        "PNG has no quality"
    );
    assert_eq!(
        sides(f.rounded("preset=thumbnail").unwrap()),
        (Some(160), Some(160))
    );
    // Rounding up would push the derived side past the limit: as asked.
    let o = f.rounded("cropWidth=1000&width=3400").unwrap();
    assert_eq!(o.crop, Some(rect(0, 0, 1024, 1200)));
    assert_eq!(o.width, Some(3400));
}

#[test]
fn presets_stand_for_what_they_set() {
    let f = fixture();
    let tile = f
        .run("preset=plp-tile", Exactness::Exact, Some(CHROME))
        .unwrap();
    assert_eq!(
        (tile.width, tile.height, tile.format),
        (Some(480), None, Format::Avif)
    );
    let thumb = f.exact("preset=thumbnail&format=webp&quality=50").unwrap();
    assert_eq!(
        (thumb.width, thumb.height, thumb.fit),
        (Some(160), Some(160), Fit::Contain)
    );
    assert_eq!((thumb.format, thumb.quality), (Format::Webp, Some(50)));
    // What a preset does not set, the query may give.
    assert_eq!(
        f.exact("preset=plp-tile&height=300").unwrap().height,
        Some(300)
    );
}

#[test]
fn format_auto_comes_from_accept() {
    let f = fixture();
    let table: &[(Option<&str>, Format)] = &[
        (Some(CHROME), Format::Avif),
        (Some("image/webp,*/*"), Format::Webp),
        (Some("*/*"), Format::Png),
        (None, Format::Png),
        (Some("image/jpeg, image/png;q=0.5"), Format::JpegOrPng),
    ];
    for (accept, want) in table {
        let o = f.run("format=auto", Exactness::Exact, *accept).unwrap();
        assert_eq!(o.format, *want, "{accept:?}");
    }
    // A concrete format ignores Accept.
    let o = f.run("format=jpg", Exactness::Exact, Some(CHROME)).unwrap();
    assert_eq!(o.format, Format::Jpeg);
}

#[test]
fn saved_configurations() {
    let f = fixture();
    let other = "11111111-2222-3333-4444-555555555555";
    let saved = |asset: &str, values: &str| Saved {
        id: Uuid::nil(),
        short_id: "abcdefghij",
        asset: Uuid::parse_str(asset).unwrap(),
        values: Box::leak(Box::new(serde_json::from_str(values).unwrap())),
    };
    let sofa = saved(DEMO_ASSET_ID, r#"{"Body":"Navy"}"#);
    let q = |s: &str| ImageQuery::parse(&Params::parse(Some(s), 1000).unwrap(), &[]).unwrap();
    let by_id = q("configurationId=abcdefghij");
    let sofa_id = Uuid::parse_str(DEMO_ASSET_ID).unwrap();
    // Which asset: assetId, else the saved configuration's.
    assert_eq!(asset_id(&by_id, Some(&sofa)), Ok(sofa_id));
    let with_asset = q(&format!(
        "assetId={DEMO_ASSET_ID}&configurationId=abcdefghij"
    ));
    assert_eq!(asset_id(&with_asset, Some(&sofa)), Ok(sofa_id));
    let of_other = saved(other, "{}");
    assert_eq!(
        asset_id(&with_asset, Some(&of_other)),
        Err(Error::invalid(
            "configurationId",
            format!("is a configuration of {other}, not of asset {sofa_id}")
        ))
    );
    assert_eq!(
        asset_id(&q(""), None),
        Err(Error::invalid("assetId", "is required"))
    );
    // Its values.
    let rules = f.rules();
    let run = |query: &ImageQuery, s: &Saved| {
        resolve(
            query,
            Arc::clone(&f.asset),
            Some(s),
            &rules,
            Exactness::Exact,
            None,
        )
    };
    let navy = run(&by_id, &sofa).unwrap();
    let inline = q(&format!(
        "assetId={DEMO_ASSET_ID}&configuration=%7B%22Body%22%3A%22Navy%22%7D"
    ));
    let same = resolve(
        &inline,
        Arc::clone(&f.asset),
        None,
        &rules,
        Exactness::Exact,
        None,
    )
    .unwrap();
    assert_eq!(navy.key(), same.key(), "saved or inline: one image");
    let both = q("configurationId=abcdefghij&configuration=%7B%7D");
    assert_eq!(
        run(&both, &sofa).unwrap_err(),
        Error::invalid(
            "configuration",
            "give configuration or configurationId, not both (abcdefghij)"
        )
    );
}
