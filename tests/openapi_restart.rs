//! The OpenAPI document covers every route, and a restart on the same data
//! dir renders nothing again.

mod common;

use common::{Counting, Server, enc, get_json, image_url, settings, settings_in};
use serde_json::json;
use std::sync::Arc;

/// The routes the contract and layercake's extensions promise.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/"),
    ("get", "/api/openapi.json"),
    ("get", "/api/fast-compositor"),
    ("get", "/api/fast-compositor/"),
    ("get", "/api/fast-compositor/undefined"),
    ("get", "/api/fast-compositor/healthcheck"),
    ("get", "/api/layers"),
    ("post", "/api/layers"),
    ("get", "/api/layers/layer"),
    ("get", "/api/layers/{id}"),
    ("get", "/api/layers/healthcheck"),
    ("post", "/api/files"),
    ("get", "/api/files/{id}"),
    ("get", "/api/files/{id}/content"),
    ("get", "/api/files/healthcheck"),
    ("post", "/api/configurations"),
    ("get", "/api/configurations"),
    ("get", "/api/configurations/{id}"),
    ("get", "/api/configurations/healthcheck"),
    ("get", "/api/assets"),
    ("get", "/api/assets/schema.json"),
    ("get", "/api/assets/{id}"),
    ("put", "/api/assets/{id}"),
    ("get", "/api/assets/healthcheck"),
    ("get", "/api/jobs"),
    ("post", "/api/jobs"),
    ("get", "/api/jobs/{id}"),
    ("post", "/api/jobs/{id}/cancel"),
    ("get", "/api/jobs/tasks"),
    ("get", "/api/jobs/tasks/{id}"),
    ("get", "/api/jobs/runs"),
    ("get", "/api/jobs/runs/{id}"),
    ("get", "/api/jobs/healthcheck"),
    ("post", "/api/jobs/worker/claim"),
    ("post", "/api/jobs/worker/runs/{runId}/heartbeat"),
    ("put", "/api/jobs/worker/runs/{runId}/result"),
    ("post", "/api/jobs/worker/runs/{runId}/failure"),
    ("post", "/api/webhooks"),
    ("get", "/api/webhooks"),
    ("get", "/api/webhooks/{id}"),
    ("put", "/api/webhooks/{id}"),
    ("delete", "/api/webhooks/{id}"),
    ("post", "/api/webhooks/{id}/restore"),
    ("get", "/api/webhooks/{id}/deliveries"),
    ("get", "/api/webhooks/healthcheck"),
    ("post", "/api/urls"),
    ("get", "/api/carousel"),
    ("get", "/embed/carousel"),
    ("get", "/embed/spin"),
    ("get", "/metrics"),
    ("get", "/healthz"),
    ("get", "/readyz"),
];

#[tokio::test]
async fn every_route_is_documented_and_every_documented_route_is_served() {
    let server = Server::start(settings(), Arc::new(Counting::new())).await;
    let client = reqwest::Client::new();
    let doc = get_json(&client, &server.url("/api/openapi.json"), 200).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (method, path) in ROUTES {
        assert!(
            paths.get(*path).and_then(|p| p.get(*method)).is_some(),
            "{method} {path} is documented"
        );
    }
    // Every documented operation reaches a handler (the fallback would say "no route").
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            let url = server.url(&path.replace("{id}", "6f1c7d2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f"));
            let r = match method.as_str() {
                "get" => client.get(&url),
                "post" => client.post(&url),
                "put" => client.put(&url),
                "delete" => client.delete(&url),
                m => panic!("unexpected method {m} at {path}"),
            }
            .send()
            .await
            .unwrap();
            let status = r.status().as_u16();
            let body = r.text().await.unwrap_or_default();
            assert!(
                !(status == 404 && body.contains("no route")),
                "{method} {path} is documented but not routed"
            );
            assert_ne!(status, 405, "{method} {path}");
            assert!(
                status < 500,
                "{method} {path} with no input answers a 4xx, not {status}: {body}"
            );
        }
        assert!(
            ROUTES.iter().any(|(_, p)| p == path),
            "{path} is documented and in the promised list"
        );
    }
    // The fast compositor's parameters and error bodies are described.
    let fc = &paths["/api/fast-compositor"]["get"];
    let names: Vec<&str> = fc["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for p in [
        "assetId",
        "configuration",
        "configurationId",
        "stageConfiguration",
        "view",
        "width",
        "height",
        "imageFitMode",
        "format",
        "quality",
        "cropX",
    ] {
        assert!(names.contains(&p), "parameter {p} documented: {names:?}");
    }
    assert!(fc["responses"].get("422").is_some());
    assert!(doc["components"]["schemas"].get("ErrorBody").is_some());
    server.stop().await;
}

#[tokio::test]
async fn a_restart_on_the_same_data_dir_renders_nothing_again() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let urls: Vec<String> = [
        (json!({"Body": "Forest"}), 0),
        (json!({"Pillows": "Blush", "Skirt": true}), 2),
        (json!({"Legs": "Walnut Block"}), 3),
    ]
    .iter()
    .map(|(cfg, view)| {
        image_url(
            cfg,
            &format!(
                "&width=320&format=jpg&stageConfiguration={}",
                enc(&json!({"Camera": view}))
            ),
        )
    })
    .collect();

    let first = Counting::new();
    let server = Server::start(settings_in(dir.path()), Arc::new(first.clone())).await;
    let mut bodies = Vec::new();
    for u in &urls {
        let r = client.get(server.url(u)).send().await.unwrap();
        assert_eq!(r.headers()["x-layercake-cache"], "miss");
        bodies.push(r.bytes().await.unwrap());
    }
    assert!(first.total() >= 15);
    let layers_before = get_json(&client, &server.url("/api/layers?perPage=100"), 200).await;
    assert_eq!(
        layers_before["count"].as_u64().unwrap() as usize,
        first.total(),
        "one record per render"
    );
    server.stop().await;

    let second = Counting::new();
    let server = Server::start(settings_in(dir.path()), Arc::new(second.clone())).await;
    for (u, before) in urls.iter().zip(&bodies) {
        let r = client.get(server.url(u)).send().await.unwrap();
        assert_eq!(r.headers()["x-layercake-cache"], "hit-store");
        assert_eq!(&r.bytes().await.unwrap(), before);
    }
    // A new size of a known configuration composes from the stored layers.
    let r = client
        .get(server.url(&urls[0].replace("width=320", "width=321")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-layercake-cache"], "miss");
    assert_eq!(
        second.total(),
        0,
        "not a single new render: {:?}",
        second.counts.lock().unwrap()
    );
    let layers_after = get_json(&client, &server.url("/api/layers?perPage=100"), 200).await;
    assert_eq!(layers_after, layers_before, "the same records");
    server.stop().await;
}
