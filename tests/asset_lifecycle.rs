//! Asset versions across restarts: API updates survive, reverts reuse the
//! old version, registered layers' epochs persist.

mod common;

use common::{Counting, SOFA, Server, get_json, image_url, settings_in, solid_png, upload};
use serde_json::json;
use std::sync::Arc;

fn mug(fill: &str) -> String {
    let svg = |body: &str| {
        format!("<svg xmlns='http://www.w3.org/2000/svg' width='32' height='32'>{body}</svg>")
    };
    json!({
        "id": "7a1c7d2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f", "name": "Mug", "version": 1, "width": 32, "height": 32,
        "attributes": [{"name": "Size", "type": "number", "min": 1, "max": 3, "default": 2}],
        "views": [{"name": "front", "stage": {"Camera": 0}}],
        "layers": [{"id": "0e7b3c1a-2d4f-4a6b-8c9d-1e2f3a4b5c6d", "name": "Background",
                    "render": {"template": svg(&format!("<rect width='32' height='32' fill='{fill}'/>"))}}]
    })
    .to_string()
}

async fn put(client: &reqwest::Client, url: &str, body: String) -> serde_json::Value {
    let r = client
        .put(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    serde_json::from_slice(&r.bytes().await.unwrap()).unwrap()
}

async fn pixel(client: &reqwest::Client, url: &str) -> [u8; 4] {
    let b = client.get(url).send().await.unwrap().bytes().await.unwrap();
    image::load_from_memory(&b)
        .unwrap()
        .to_rgba8()
        .get_pixel(1, 1)
        .0
}

#[tokio::test]
async fn api_versions_survive_restarts_and_reverts_reuse_versions() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let id = "7a1c7d2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f";

    let r1 = Counting::new();
    let server = Server::start(settings_in(dir.path()), Arc::new(r1.clone())).await;
    let at = server.url(&format!("/api/assets/{id}"));
    let img = server.url(&format!("/api/fast-compositor?assetId={id}&format=png"));
    assert_eq!(put(&client, &at, mug("#ff0000")).await["version"], 1);
    assert_eq!(pixel(&client, &img).await, [255, 0, 0, 255]);
    assert_eq!(put(&client, &at, mug("#00ff00")).await["version"], 2);
    assert_eq!(pixel(&client, &img).await, [0, 255, 0, 255]);
    server.stop().await;

    // Restart: the API definition (templates inline) is live again.
    let r2 = Counting::new();
    let server = Server::start(settings_in(dir.path()), Arc::new(r2.clone())).await;
    let at = server.url(&format!("/api/assets/{id}"));
    let img = server.url(&format!("/api/fast-compositor?assetId={id}&format=png"));
    assert_eq!(get_json(&client, &at, 200).await["version"], 2);
    assert_eq!(pixel(&client, &img).await, [0, 255, 0, 255]);
    assert_eq!(r2.total(), 0, "served from the store");

    // Reverting to the first definition makes version 1 live again, with its images.
    assert_eq!(put(&client, &at, mug("#ff0000")).await["version"], 1);
    assert_eq!(pixel(&client, &img).await, [255, 0, 0, 255]);
    assert_eq!(
        r2.total(),
        0,
        "version 1's layer was rendered before: nothing new"
    );
    server.stop().await;

    let server = Server::start(settings_in(dir.path()), Arc::new(Counting::new())).await;
    assert_eq!(
        get_json(&client, &server.url(&format!("/api/assets/{id}")), 200).await["version"],
        1,
        "the revert is what stays live"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_registered_layer_stays_in_effect_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let url_path = image_url(&json!({}), "&format=png");

    let server = Server::start(settings_in(dir.path()), Arc::new(Counting::new())).await;
    let url = server.url(&url_path);
    let before = pixel(&client, &url).await;
    let file = upload(
        &client,
        &server.base,
        "bg.png",
        solid_png(1200, 1200, [1, 2, 3, 255]),
    )
    .await;
    let body = json!({"assetId": SOFA, "assetLayer": "Backdrop", "assetLayerConfiguration": {}, "fileId": file["id"], "width": 1200, "height": 1200});
    let r = client
        .post(server.url("/api/layers"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(pixel(&client, &url).await, [1, 2, 3, 255]);
    server.stop().await;

    // The composite made before the registration is still in the object
    // store under the old epoch; the persisted epoch keeps it unreachable.
    let renderer = Counting::new();
    let server = Server::start(settings_in(dir.path()), Arc::new(renderer.clone())).await;
    let url = server.url(&url_path);
    assert_ne!(before, [1, 2, 3, 255]);
    assert_eq!(pixel(&client, &url).await, [1, 2, 3, 255]);
    assert_eq!(renderer.total(), 0);
    server.stop().await;
}
