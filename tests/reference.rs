//! The compose kernel against ImageMagick: the same stored layer files,
//! stacked by `/usr/bin/convert ... -composite` and by layercake, agree
//! within ±1 per 8-bit channel.

use layercake::catalog::{Catalog, DEMO_ASSET_ID};
use layercake::compose::{self, LayerImage, Rect, layerfile};
use layercake::keys::Configuration;
use layercake::render::{BuiltinRenderer, RenderRequest};
use std::process::Command;
use std::sync::Arc;

/// Straight-alpha RGBA of a premultiplied image.
fn straight(img: &compose::PremulImage) -> Vec<u8> {
    img.data
        .chunks_exact(4)
        .flat_map(|p| {
            let a = p[3];
            let un = |c: u8| {
                if a == 0 {
                    0
                } else {
                    ((u32::from(c) * 255 + u32::from(a) / 2) / u32::from(a)).min(255) as u8
                }
            };
            [un(p[0]), un(p[1]), un(p[2]), a]
        })
        .collect()
}

fn check_view(config: serde_json::Value, view: usize, region: Rect) {
    let catalog = Catalog::demo().unwrap();
    let asset = Arc::clone(catalog.get(&DEMO_ASSET_ID.parse().unwrap()).unwrap());
    let cfg = Configuration::parse(&asset, &config).unwrap();
    let renderer = BuiltinRenderer::new(1 << 26);
    let dir = tempfile::tempdir().unwrap();

    // Render and store every visible layer exactly as the service does.
    let mut layers: Vec<LayerImage> = Vec::new();
    let mut convert = Command::new("/usr/bin/convert");
    convert.args([
        "-size",
        &format!("{}x{}", asset.width, asset.height),
        "xc:none",
    ]);
    for (i, l) in asset
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| l.is_visible(cfg.values()))
    {
        let req = RenderRequest {
            asset: Arc::clone(&asset),
            layer: i,
            view,
            values: cfg.subset(&l.depends_on),
            width: asset.width,
            height: asset.height,
        };
        let rendered = renderer.render_sync(&req).unwrap();
        let path = dir.path().join(format!("layer{i}.png"));
        std::fs::write(&path, layerfile::encode(&rendered).unwrap()).unwrap();
        let stored = layerfile::decode(&std::fs::read(&path).unwrap(), 1 << 26).unwrap();
        convert.arg(&path).args([
            "-geometry",
            &format!("+{}+{}", stored.x, stored.y),
            "-composite",
        ]);
        layers.push(stored);
    }
    assert!(layers.len() >= 5);
    let reference = dir.path().join("reference.png");
    convert.args([
        "-crop",
        &format!(
            "{}x{}+{}+{}",
            region.width, region.height, region.x, region.y
        ),
        "+repage",
        "-depth",
        "8",
    ]);
    convert.arg(format!("png32:{}", reference.display()));
    let out = convert
        .output()
        .expect("ImageMagick's /usr/bin/convert is installed (.ci/run installs it)");
    assert!(
        out.status.success(),
        "convert failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let refs: Vec<&LayerImage> = layers.iter().collect();
    let ours = straight(&compose::compose(region, &refs));
    let theirs = image::open(&reference).unwrap().to_rgba8();
    assert_eq!(
        (theirs.width(), theirs.height()),
        (region.width, region.height)
    );
    let theirs = theirs.into_raw();
    let mut worst = (0u8, 0usize);
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        let d = a.abs_diff(*b);
        if d > worst.0 {
            worst = (d, i);
        }
    }
    let px = worst.1 / 4;
    eprintln!("worst channel difference vs ImageMagick: {}", worst.0);
    assert!(
        worst.0 <= 1,
        "max channel difference {} at pixel ({}, {}): ours {:?} vs ImageMagick {:?}",
        worst.0,
        px % region.width as usize,
        px / region.width as usize,
        &ours[px * 4..px * 4 + 4],
        &theirs[px * 4..px * 4 + 4]
    );
}

#[test]
fn composite_matches_imagemagick_front_view() {
    let full = Rect {
        x: 0,
        y: 0,
        width: 1200,
        height: 1200,
    };
    check_view(
        serde_json::json!({"Body": "Rust", "Pillows": "Ivory", "Legs": "Black Hairpin", "Skirt": true}),
        0,
        full,
    );
}

#[test]
fn composite_matches_imagemagick_three_quarter_view_cropped() {
    // A crop composes only the region; it must equal the same crop of the whole.
    let region = Rect {
        x: 150,
        y: 300,
        width: 800,
        height: 600,
    };
    check_view(
        serde_json::json!({"Body": "Dove", "Pillows": "Charcoal", "Legs": "Chrome Sled"}),
        1,
        region,
    );
}
