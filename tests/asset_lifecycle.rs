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

#[tokio::test]
async fn a_get_answer_puts_back_unchanged_and_views_take_their_own_templates() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let id = "5b2d8e3f-9c4a-4d5e-8f6a-7b8c9d0e1f2a";
    let server = Server::start(settings_in(dir.path()), Arc::new(Counting::new())).await;
    let at = server.url(&format!("/api/assets/{id}"));
    let svg = |fill: &str| {
        format!(
            "<svg xmlns='http://www.w3.org/2000/svg' width='16' height='16'><rect width='16' height='16' fill='{fill}'/></svg>"
        )
    };
    let definition = json!({
        "name": "Tile", "width": 16, "height": 16,
        "attributes": [],
        "views": [{"name": "front", "stage": {"Camera": 0}}, {"name": "back", "stage": {"Camera": 1}}],
        "layers": [{"id": "6c3e9f4a-0d5b-4e6f-9a7b-8c9d0e1f2a3b", "name": "Face",
                    "render": {"templates": {"front": svg("#ff0000"), "back": svg("#0000ff")}}}]
    });
    let created = client
        .put(&at)
        .header("content-type", "application/json")
        .body(definition.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    // Each view draws its own template.
    for (view, want) in [("front", [255, 0, 0, 255]), ("back", [0, 0, 255, 255])] {
        let url = server.url(&format!(
            "/api/fast-compositor?assetId={id}&view={view}&format=png"
        ));
        assert_eq!(pixel(&client, &url).await, want, "{view}");
    }
    // GET, then PUT the answer as it is: accepted, nothing changes.
    let answer = get_json(&client, &at, 200).await;
    assert_eq!(answer["version"], 1);
    let again = client
        .put(&at)
        .header("content-type", "application/json")
        .body(answer.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200, "an unchanged definition");
    let after: serde_json::Value = serde_json::from_slice(&again.bytes().await.unwrap()).unwrap();
    assert_eq!(after, answer, "the same version, the same record times");
    // An edit of the GET answer is the next version.
    let mut edited = answer.clone();
    edited["layers"][0]["render"]["templates"]["back"] = json!(svg("#00ff00"));
    assert_eq!(put(&client, &at, edited.to_string()).await["version"], 2);
    let back = server.url(&format!(
        "/api/fast-compositor?assetId={id}&view=back&format=png"
    ));
    assert_eq!(pixel(&client, &back).await, [0, 255, 0, 255]);
    // The read-only orgId must be the caller's.
    let mut foreign = answer.clone();
    foreign["orgId"] = json!("0f0f0f0f-0f0f-4f0f-8f0f-0f0f0f0f0f0f");
    let r = client
        .put(&at)
        .header("content-type", "application/json")
        .body(foreign.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("orgId"));
    // A template for a view the asset does not have is named.
    let mut stray = definition.clone();
    stray["layers"][0]["render"]["templates"]["side"] = json!(svg("#000000"));
    let r = client
        .put(&at)
        .header("content-type", "application/json")
        .body(stray.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert_eq!(
        message,
        "layers[0].render: templates: \"side\" is not a view of this asset"
    );
    server.stop().await;
}
