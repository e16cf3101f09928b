//! `layercake import`: a generated folder of pre-rendered layer images
//! (3 views × 4 layers × a few options, one corrupt file, one of the wrong
//! size) registered with a running server through its API: the good ones
//! serve in composites, the bad ones are named by path without stopping the
//! rest, and a second run registers nothing.

mod common;

use common::{Counting, Server, get_json, settings, solid_png};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

const ASSET: &str = "4e5f6a7b-8c9d-4e0f-9a1b-2c3d4e5f6a7b";

fn definition() -> serde_json::Value {
    let svg = "<svg xmlns='http://www.w3.org/2000/svg' width='32' height='32'><rect width='32' height='32' fill='#ffff00'/></svg>";
    let layer = |id: &str, name: &str, deps: serde_json::Value| json!({"id": id, "name": name, "dependsOn": deps, "render": {"template": svg}});
    json!({
        "name": "Lamp", "width": 32, "height": 32,
        "attributes": [
            {"name": "Colour", "type": "string", "default": "Red", "values": ["Red", "Green", "Blue"]},
            {"name": "Size", "type": "string", "default": "S", "values": ["S", "M"]},
            {"name": "Lit", "type": "boolean"},
        ],
        "views": [
            {"name": "front", "stage": {"Camera": 0}},
            {"name": "back", "stage": {"Camera": 1}},
            {"name": "side", "stage": {"Camera": 2}},
        ],
        "layers": [
            layer("0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d", "Backdrop", json!([])),
            layer("1b2c3d4e-5f6a-4b7c-9d8e-9f0a1b2c3d4e", "Body", json!(["Colour"])),
            layer("2c3d4e5f-6a7b-4c8d-8e9f-0a1b2c3d4e5f", "Handle", json!(["Colour", "Size"])),
            layer("3d4e5f6a-7b8c-4d9e-9f0a-1b2c3d4e5f6a", "Glow", json!(["Lit"])),
        ]
    })
}

/// The folder: per view a backdrop, a body per colour, two handles, both
/// glows (24 files); the side's blue body is corrupt and the back's lit
/// glow is 16×16.
fn folder(root: &Path) -> usize {
    let mut n = 0;
    for (v, view) in ["front", "back", "side"].iter().enumerate() {
        let shade = 40 * v as u8;
        let mut put = |rel: &str, bytes: Vec<u8>| {
            let p = root.join(view).join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
            n += 1;
        };
        put(
            "Backdrop.png",
            solid_png(32, 32, [shade, shade, shade, 255]),
        );
        for c in ["Red", "Green", "Blue"] {
            put(
                &format!("Body/{c}.png"),
                solid_png(32, 32, [200, shade, 0, 255]),
            );
        }
        put("Handle/Red+S.png", solid_png(32, 32, [0, 0, 0, 0]));
        put("Handle/blue+M.png", solid_png(32, 32, [0, 0, 0, 0]));
        put("Glow/true.png", solid_png(32, 32, [255, 255, 255, 255]));
        put(
            "Glow/false.png",
            solid_png(32, 32, [10, 20, 30 + shade, 255]),
        );
    }
    std::fs::write(
        root.join("side/Body/Blue.png"),
        b"\x89PNG\r\n\x1a\nnot really",
    )
    .unwrap();
    std::fs::write(
        root.join("back/Glow/true.png"),
        solid_png(16, 16, [1, 2, 3, 255]),
    )
    .unwrap();
    n
}

/// Runs the real binary (a child process; the server keeps answering).
async fn import(dir: &Path, server: &Server, extra: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_layercake"))
        .args([
            "import",
            dir.to_str().unwrap(),
            "--asset",
            ASSET,
            "--server",
            &server.url(""),
        ])
        .args(extra)
        .env_remove("LAYERCAKE_API_TOKEN")
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn a_folder_of_renders_is_registered_once_and_bad_files_are_named() {
    let server = Server::start(settings(), Arc::new(Counting::new())).await;
    let client = reqwest::Client::new();
    let r = client
        .put(server.url(&format!("/api/assets/{ASSET}")))
        .json(&definition())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let dir = tempfile::tempdir().unwrap();
    let files = folder(dir.path());
    assert_eq!(files, 24);
    let good = files - 2;

    // The dry run registers nothing and says what it would.
    let (ok, text) = import(dir.path(), &server, &["--dry-run"]).await;
    assert!(!ok, "two files are bad: {text}");
    assert!(
        text.contains(&format!("would register {good}, unchanged 0, failed 2")),
        "{text}"
    );
    let layers = |j: serde_json::Value| j["count"].as_u64().unwrap();
    let count = server.url(&format!("/api/layers?assetId={ASSET}"));
    assert_eq!(layers(get_json(&client, &count, 200).await), 0);

    let (ok, text) = import(dir.path(), &server, &[]).await;
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!("registered {good}, unchanged 0, failed 2")),
        "{text}"
    );
    let corrupt = dir.path().join("side/Body/Blue.png");
    let small = dir.path().join("back/Glow/true.png");
    assert!(
        text.contains(&format!("{}: not a readable image", corrupt.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{}: is 16x16; the asset's canvas is 32x32",
            small.display()
        )),
        "{text}"
    );
    // Per view 1 backdrop + 3 bodies + 3×2 handles + 2 glows.
    assert!(text.contains("22 of the 36 layer images"), "{text}");
    assert_eq!(layers(get_json(&client, &count, 200).await), good as u64);

    // The imported images are what composites show: the side view's unlit
    // glow covers the canvas.
    let image = client
        .get(server.url(&format!(
            "/api/fast-compositor?assetId={ASSET}&view=side&format=png"
        )))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let px = image::load_from_memory(&image)
        .unwrap()
        .to_rgba8()
        .get_pixel(5, 5)
        .0;
    assert_eq!(px, [10, 20, 110, 255]);

    // A second run registers nothing; the bad files are still named.
    let (ok, text) = import(dir.path(), &server, &[]).await;
    assert!(!ok);
    assert!(
        text.contains(&format!("registered 0, unchanged {good}, failed 2")),
        "{text}"
    );
    assert_eq!(layers(get_json(&client, &count, 200).await), good as u64);
    server.stop().await;
}
