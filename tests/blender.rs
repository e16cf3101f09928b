//! Real 3D layers: the demo sofa's Blender scene (`demo/blender`) rendered
//! by the `blender` backend through the real binary, at a small canvas and
//! few samples so that it fits in CI. Needs Blender 3.4+ (`.ci/run`
//! installs Debian's `blender`).
//!
//! - The layering holds up: for 2 configurations × 2 views, the image
//!   layercake composes from the layers it rendered (shadow, legs, body,
//!   skirt, pillows; each with the rest of the picture as holdouts or
//!   shadow casters) against one Blender render of the whole configured
//!   scene (`layercake render --full`). Both are flattened on white, the
//!   way a page shows them, and compared by PSNR and by the share of
//!   pixels off by more than 48 of 255 (computed here, and the PSNR again by
//!   ImageMagick's `compare`). Each layer key is rendered once, and the same
//!   full render twice gives the same bytes. The images land in
//!   `target/blender/`.
//! - The pages: with a wait budget shorter than a render, the listing and
//!   the carousel show placeholders (never a broken image) until their
//!   layers are done; the 360° spin embed (its turntable prefetched with
//!   `layercake prefetch --views turntable`) turns by drag and arrow keys
//!   and every frame loads, in headless Chromium
//!   (`tests/browser/three_d.mjs`; screenshots in `target/browser/3d/`).
//! - A `.blend` scene (the demo's script saved by Blender) renders the same
//!   pixels as the script (identical here; asserted above 45 dB).

mod common;

use common::{enc, metric, start_serve};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

const ASSET: &str = "9c1f4e2a-7d3b-4a8e-b5c6-2e0f1a3d4b5c";

fn blender() -> String {
    let b = std::env::var("BLENDER").unwrap_or_else(|_| "blender".into());
    let ok = Command::new(&b)
        .args(["-b", "--factory-startup", "-noaudio", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok, "{b} is missing: apt-get install blender (.ci/run does)");
    b
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A catalogue in `dir` with the 3D demo at a `canvas`-pixel square, and a
/// configuration rendering it with `samples`.
fn setup(dir: &Path, canvas: u32, samples: u32, extra: &str) -> PathBuf {
    let cat = dir.join("catalog");
    std::fs::create_dir_all(cat.join("sofa")).unwrap();
    let mut doc: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("demo/blender/sofa.json")).unwrap(),
    )
    .unwrap();
    doc["width"] = json!(canvas);
    doc["height"] = json!(canvas);
    std::fs::write(cat.join("sofa.json"), doc.to_string()).unwrap();
    std::fs::copy(
        root().join("demo/blender/sofa/scene.py"),
        cat.join("sofa/scene.py"),
    )
    .unwrap();
    let config = dir.join("layercake.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[catalog]
dir = "{cat}"
[render]
concurrency = 2
timeout_secs = 300
{extra}
[render.backends.blender]
kind = "blender"
command = ["{blender}"]
samples = {samples}
threads = 1
"#,
            cat = cat.display(),
            blender = blender(),
        ),
    )
    .unwrap();
    config
}

/// Straight RGBA flattened on white, RGB.
fn on_white(png: &[u8]) -> image::RgbImage {
    let img = image::load_from_memory(png).unwrap().to_rgba8();
    image::RgbImage::from_fn(img.width(), img.height(), |x, y| {
        let p = img.get_pixel(x, y).0;
        let a = f32::from(p[3]) / 255.0;
        let mix = |c: u8| (f32::from(c) * a + 255.0 * (1.0 - a)).round() as u8;
        image::Rgb([mix(p[0]), mix(p[1]), mix(p[2])])
    })
}

/// PSNR (dB), max difference and the share of pixels with a channel off
/// by more than 48.
fn compare(a: &image::RgbImage, b: &image::RgbImage) -> (f64, u8, f64) {
    assert_eq!(a.dimensions(), b.dimensions());
    let (mut se, mut max, mut off) = (0f64, 0u8, 0usize);
    for (p, q) in a.pixels().zip(b.pixels()) {
        let mut worst = 0;
        for c in 0..3 {
            let d = p.0[c].abs_diff(q.0[c]);
            se += f64::from(d) * f64::from(d);
            worst = worst.max(d);
        }
        max = max.max(worst);
        off += usize::from(worst > 48);
    }
    let n = f64::from(a.width() * a.height());
    let mse = se / (n * 3.0);
    (10.0 * (255.0f64 * 255.0 / mse).log10(), max, off as f64 / n)
}

/// ImageMagick's PSNR of two files.
fn imagemagick_psnr(a: &Path, b: &Path) -> f64 {
    let out = Command::new("/usr/bin/compare")
        .args(["-metric", "PSNR"])
        .arg(a)
        .arg(b)
        .arg("null:")
        .output()
        .expect("ImageMagick's compare (apt-get install imagemagick)");
    let text = String::from_utf8_lossy(&out.stderr);
    text.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("compare printed {text:?}"))
}

/// `layercake render [--full]` of one view to `out`, in a process of its own.
fn render(full: bool, config: &Path, data: &Path, configuration: &Value, view: &str, out: &Path) {
    let run = Command::new(env!("CARGO_BIN_EXE_layercake"))
        .arg("render")
        .args(full.then_some("--full"))
        .args(["--asset", ASSET, "--view", view, "--configuration"])
        .arg(configuration.to_string())
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .arg("--output")
        .arg(out)
        .output()
        .expect("layercake render");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composited_layers_match_one_full_render_of_the_scene() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(
        dir.path(),
        128,
        32,
        "miss_wait_secs = 280\n[http]\nrequest_timeout_secs = 300",
    );
    let (_serve, base) = start_serve(&config, &dir.path().join("data"));
    let out = root().join("target/blender");
    std::fs::create_dir_all(&out).unwrap();
    let client = reqwest::Client::new();
    let configs = [
        json!({"Body": "Navy", "Pillows": "Mustard", "Legs": "Brass Cone", "Skirt": false}),
        json!({"Body": "Rust", "Pillows": "Teal", "Legs": "Walnut Block", "Skirt": true}),
    ];
    let views = [("left", 1), ("side", 3)];
    let mut worst_psnr = f64::INFINITY;
    let mut served = Vec::new();
    let mut figures = Vec::new();
    for (c, configuration) in configs.iter().enumerate() {
        for (view, camera) in views {
            let url = format!(
                "{base}/api/fast-compositor?assetId={ASSET}&configuration={}&stageConfiguration={}&format=png",
                enc(configuration),
                enc(&json!({"Camera": camera}))
            );
            let r = client.get(&url).send().await.unwrap();
            assert_eq!(r.status(), 200, "{url}");
            let bytes = r.bytes().await.unwrap();
            served.push(bytes.clone());
            let composite = on_white(&bytes);
            let full_png = dir.path().join(format!("full-{c}-{view}.png"));
            render(
                true,
                &config,
                &dir.path().join("cli"),
                configuration,
                view,
                &full_png,
            );
            let full = on_white(&std::fs::read(&full_png).unwrap());
            let (psnr, max, off) = compare(&composite, &full);
            let name = |what: &str| out.join(format!("config{c}-{view}-{what}.png"));
            composite.save(name("composite")).unwrap();
            full.save(name("full")).unwrap();
            let diff = image::RgbImage::from_fn(full.width(), full.height(), |x, y| {
                let (p, q) = (composite.get_pixel(x, y).0, full.get_pixel(x, y).0);
                image::Rgb([0, 1, 2].map(|k| 255 - p[k].abs_diff(q[k]).saturating_mul(4)))
            });
            diff.save(name("diff")).unwrap();
            let im = imagemagick_psnr(&name("composite"), &name("full"));
            eprintln!(
                "layering, config {c} {view}: PSNR {psnr:.2} dB (ImageMagick {im:.2} dB), max difference {max}, {:.2}% of pixels off by more than 48",
                off * 100.0
            );
            assert!(
                (psnr - im).abs() < 0.1,
                "our PSNR {psnr} and ImageMagick's {im}"
            );
            // Set from measurement: 36.6 to 41.3 dB and at most 0.24% of
            // pixels off by more than 48 on this machine (the layers miss
            // the light bounced between them, antialiased holdout edges
            // meet, and each render has its own noise); a few dB of room
            // for other CPUs' Cycles kernels.
            assert!(psnr > 33.0, "config {c} {view}: PSNR {psnr:.2} dB");
            assert!(
                off < 0.01,
                "config {c} {view}: {:.2}% of pixels off",
                off * 100.0
            );
            worst_psnr = worst_psnr.min(psnr);
            figures.push((psnr, max, off));
        }
    }
    // Each distinct layer rendered once: per view, the shadow, legs, body
    // and pillows of each configuration, the skirt of the second.
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let renders = metric(&metrics, "layercake_renders_total{result=\"success\"}");
    assert_eq!(renders, 2.0 * (4.0 + 5.0), "{renders} renders");
    // The same request gives the same pixels, in another Blender process.
    let again = dir.path().join("again.png");
    render(
        true,
        &config,
        &dir.path().join("cli"),
        &configs[0],
        "left",
        &again,
    );
    assert_eq!(
        std::fs::read(&again).unwrap(),
        std::fs::read(dir.path().join("full-0-left.png")).unwrap(),
        "a full render twice gives the same bytes"
    );
    // The server's Blender processes rendered 18 layers one after another;
    // the same layers rendered fresh, in a new process, stack to the same
    // pixels: nothing one request did leaked into the next.
    let fresh = dir.path().join("fresh.png");
    render(
        false,
        &config,
        &dir.path().join("cli"),
        &configs[0],
        "left",
        &fresh,
    );
    let pixels = |png: &[u8]| image::load_from_memory(png).unwrap().to_rgba8().into_raw();
    assert!(
        pixels(&std::fs::read(&fresh).unwrap()) == pixels(&served[0]),
        "the layers of a fresh process stack to the served pixels"
    );
    eprintln!(
        "layering: worst PSNR {worst_psnr:.2} dB over {} images; images in {}",
        figures.len(),
        out.display()
    );
}

#[test]
fn listing_carousel_and_spin_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    // A wait budget shorter than most renders: pages meet 503s and must
    // show placeholders and try again.
    let config = setup(dir.path(), 96, 8, "miss_wait_secs = 1");
    let data = dir.path().join("data");
    // The turntable, warmed as a shop would before a launch.
    let warm = Command::new(env!("CARGO_BIN_EXE_layercake"))
        .args([
            "prefetch",
            "--asset",
            ASSET,
            "--all",
            "--views",
            "turntable",
        ])
        // The default configuration only (the one the spin link opens).
        .args(["--where", "Body=Slate", "--where", "Pillows=Mustard"])
        .args([
            "--where",
            "Legs=Tapered Oak",
            "--where",
            "Skirt=false",
            "--config",
        ])
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .expect("run layercake prefetch");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&warm.stdout),
        String::from_utf8_lossy(&warm.stderr)
    );
    assert!(warm.status.success(), "prefetch: {log}");
    assert!(
        log.contains("1 configurations × 24 views"),
        "the turntable is 24 views: {log}"
    );
    let (_serve, base) = start_serve(&config, &data);
    let out = root().join("target/browser/3d");
    let report = common::browser_check("three_d.mjs", &[&base, &out.display().to_string(), ASSET]);
    assert!(report["plp"]["tiles"].as_u64().unwrap() >= 6, "{report}");
    assert!(
        report["plp"]["placeholders"].as_u64().unwrap() >= 1,
        "a cold tile showed its placeholder: {report}"
    );
    assert_eq!(report["carousel"]["views"], 4, "{report}");
    assert_eq!(report["spin"]["frames"], 24, "{report}");
    assert_eq!(report["spin"]["loaded"], 24, "{report}");
    for shot in ["plp.png", "carousel.png", "spin.png"] {
        assert!(
            std::fs::metadata(out.join(shot)).is_ok_and(|m| m.len() > 1000),
            "{shot} written"
        );
    }
}

/// The same scene as a `.blend` (the script's result saved by Blender)
/// renders as the script does: a scene file of either kind is loaded
/// fresh for each request, and a `.blend` travels (base64) like a script.
#[test]
fn a_blend_scene_renders_like_the_script_that_made_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), 96, 8, "");
    let cat = dir.path().join("catalog");
    let blend = cat.join("sofa/scene.blend");
    let save = Command::new(blender())
        .args(["-b", "--factory-startup", "-noaudio", "--python-expr"])
        .arg("import bpy; bpy.ops.wm.read_factory_settings(use_empty=True)")
        .arg("--python")
        .arg(cat.join("sofa/scene.py"))
        .arg("--python-expr")
        .arg(format!(
            "import bpy; bpy.ops.wm.save_as_mainfile(filepath={:?})",
            blend.display().to_string()
        ))
        .output()
        .expect("blender");
    assert!(
        save.status.success() && blend.exists(),
        "{}",
        String::from_utf8_lossy(&save.stderr)
    );
    let configuration = json!({"Body": "Forest", "Skirt": true});
    let from_script = dir.path().join("script.png");
    render(
        false,
        &config,
        &dir.path().join("d"),
        &configuration,
        "left",
        &from_script,
    );
    let file = cat.join("sofa.json");
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    doc["scene"]["file"] = json!("sofa/scene.blend");
    std::fs::write(&file, doc.to_string()).unwrap();
    let from_blend = dir.path().join("blend.png");
    render(
        false,
        &config,
        &dir.path().join("d"),
        &configuration,
        "left",
        &from_blend,
    );
    let (a, b) = (
        on_white(&std::fs::read(&from_script).unwrap()),
        on_white(&std::fs::read(&from_blend).unwrap()),
    );
    let (psnr, max, _) = compare(&a, &b);
    eprintln!("a .blend against its script: PSNR {psnr:.2} dB, max difference {max}");
    assert!(psnr > 45.0, "PSNR {psnr:.2} dB");
}
