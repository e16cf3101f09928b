//! The S3 tier against a real S3 server (SeaweedFS on 127.0.0.1): round
//! trips, a fresh node sharing the bucket, integrity, garbage collection.
//! Outages are in `s3_faults.rs`.

mod common;

use common::seaweed::{S3, shared};
use common::{Counting, SOFA, Server, image_url, settings_in};
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, path::Path as ObjectPath};
use serde_json::json;
use std::sync::Arc;

fn node(s3: &S3, prefix: &str, dir: &std::path::Path) -> layercake::config::Settings {
    let mut s = settings_in(dir);
    s3.configure(&mut s, prefix);
    s
}

/// Every object under `prefix/<under>`, with its bytes.
async fn objects(s3: &S3, prefix: &str, under: &str) -> Vec<(String, bytes::Bytes)> {
    let client = s3.client();
    let root = ObjectPath::from(format!("{prefix}/{under}"));
    let metas: Vec<_> = client.list(Some(&root)).try_collect().await.unwrap();
    let mut out = Vec::new();
    for m in metas {
        let b = client
            .get(&m.location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        out.push((m.location.to_string(), b));
    }
    out.sort();
    out
}

fn verifies(sealed: &bytes::Bytes) -> bool {
    layercake::store::envelope::open(sealed.clone()).is_ok()
}

#[tokio::test]
async fn a_fresh_node_on_the_same_bucket_renders_nothing() {
    let (s3, _server) = shared();
    let prefix = format!("t-{}", uuid::Uuid::new_v4().simple());
    let client = reqwest::Client::new();
    let config = json!({"Body": "Navy", "Pillows": "Teal", "Legs": "Walnut Block"});
    let url = image_url(&config, "&width=400&format=png");

    let (dir_a, renders_a) = (tempfile::tempdir().unwrap(), Counting::new());
    let a = Server::start(
        node(&s3, &prefix, dir_a.path()),
        Arc::new(renders_a.clone()),
    )
    .await;
    let first = client.get(a.url(&url)).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let first = first.bytes().await.unwrap();
    assert!(renders_a.total() > 0);
    a.stop().await;

    // Layers and the composite are in the bucket, each sealed with its blake3.
    let layers = objects(&s3, &prefix, &format!("layers/{SOFA}/v1")).await;
    let composites = objects(&s3, &prefix, &format!("composites/{SOFA}")).await;
    assert_eq!(layers.len(), renders_a.total(), "{layers:?}");
    assert_eq!(composites.len(), 1);
    assert!(layers.iter().chain(&composites).all(|(_, b)| verifies(b)));
    let stored = layercake::store::envelope::open(composites[0].1.clone()).unwrap();
    assert_eq!(
        stored, first,
        "the composite in the bucket is what was served"
    );

    // A new node: empty data dir (its own metadata), same bucket.
    let (dir_b, renders_b) = (tempfile::tempdir().unwrap(), Counting::new());
    let b = Server::start(
        node(&s3, &prefix, dir_b.path()),
        Arc::new(renders_b.clone()),
    )
    .await;
    let again = client.get(b.url(&url)).send().await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["x-layercake-cache"], "hit-store");
    assert_eq!(again.bytes().await.unwrap(), first);
    // Another size: composed from the bucket's layers, still no render.
    let other = client
        .get(b.url(&image_url(&config, "&width=300&format=webp")))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    assert_eq!(renders_b.total(), 0, "keys are content addresses");
    b.stop().await;
}

#[tokio::test]
async fn a_corrupt_object_in_the_bucket_is_deleted_and_made_again() {
    let (s3, _server) = shared();
    let prefix = format!("t-{}", uuid::Uuid::new_v4().simple());
    let client = reqwest::Client::new();
    let bucket = s3.client();
    let config = json!({"Body": "Rust", "Pillows": "Ivory"});
    let url = image_url(&config, "&width=500&format=png");

    let dir = tempfile::tempdir().unwrap();
    let first_renders = Counting::new();
    let a = Server::start(
        node(&s3, &prefix, dir.path()),
        Arc::new(first_renders.clone()),
    )
    .await;
    let first = client
        .get(a.url(&url))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    a.stop().await;
    let layers = objects(&s3, &prefix, &format!("layers/{SOFA}/v1")).await;
    let composites = objects(&s3, &prefix, &format!("composites/{SOFA}")).await;
    assert_eq!(composites.len(), 1);

    // One layer truncated, one bit flipped in the composite.
    let (layer_path, layer) = &layers[0];
    let cut = layer.slice(..layer.len() - 10);
    bucket
        .put(
            &ObjectPath::from(layer_path.as_str()),
            PutPayload::from(cut),
        )
        .await
        .unwrap();
    let (composite_path, composite) = &composites[0];
    let mut flipped = composite.to_vec();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    bucket
        .put(
            &ObjectPath::from(composite_path.as_str()),
            PutPayload::from(flipped),
        )
        .await
        .unwrap();

    // A restarted node (nothing in memory) never serves either.
    let renders = Counting::new();
    let b = Server::start(node(&s3, &prefix, dir.path()), Arc::new(renders.clone())).await;
    let r = client.get(b.url(&url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_ne!(
        r.headers()["x-layercake-cache"],
        "hit-store",
        "the damaged composite is not served"
    );
    assert_eq!(
        r.bytes().await.unwrap(),
        first,
        "composed again, from sound layers"
    );
    assert_eq!(
        renders.total(),
        1,
        "exactly the damaged layer is rendered again"
    );
    let metrics = client
        .get(b.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let corrupt = metrics
        .lines()
        .find(|l| l.starts_with("layercake_store_corrupt_total{tier=\"store\"}"))
        .unwrap_or_else(|| panic!("no corrupt counter:\n{metrics}"));
    let n: f64 = corrupt.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 2.0, "{corrupt}");
    b.stop().await;
    // Give the background composite write a moment to land, then check
    // that the bucket holds sound replacements of both.
    let mut guard = common::Guard::new();
    loop {
        let layers = objects(&s3, &prefix, &format!("layers/{SOFA}/v1")).await;
        let composites = objects(&s3, &prefix, &format!("composites/{SOFA}")).await;
        let sound = layers.iter().chain(&composites).all(|(_, b)| verifies(b));
        if sound && composites.len() == 1 && layers.len() == first_renders.total() {
            break;
        }
        guard
            .wait(&format!("sound replacements in the bucket: {layers:?}"))
            .await;
    }
}

fn mug(fill: &str) -> String {
    let svg = |body: &str| {
        format!("<svg xmlns='http://www.w3.org/2000/svg' width='32' height='32'>{body}</svg>")
    };
    json!({
        "id": MUG, "name": "Mug", "version": 1, "width": 32, "height": 32,
        "attributes": [{"name": "Size", "type": "number", "min": 1, "max": 3, "default": 2}],
        "views": [{"name": "front", "stage": {"Camera": 0}}],
        "layers": [
            {"id": "0e7b3c1a-2d4f-4a6b-8c9d-1e2f3a4b5c6d", "name": "Background",
             "render": {"template": svg(&format!("<rect width='32' height='32' fill='{fill}'/>"))}},
            {"id": "1e7b3c1a-2d4f-4a6b-8c9d-1e2f3a4b5c6d", "name": "Size", "dependsOn": ["Size"],
             "render": {"template": svg("<circle cx='16' cy='16' r='{{Size}}' fill='#fff'/>")}}
        ]
    })
    .to_string()
}

const MUG: &str = "7a1c7d2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f";

fn gc(dir: &std::path::Path, s3: &S3, prefix: &str, extra: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_layercake"))
        .arg("gc")
        .arg("--json")
        .args(extra)
        .arg("--data-dir")
        .arg(dir)
        .env(
            "LAYERCAKE_STORAGE__URL",
            format!("s3://{}/{prefix}", s3.bucket),
        )
        .env("LAYERCAKE_STORAGE__S3_ENDPOINT", &s3.endpoint)
        .env("LAYERCAKE_STORAGE__S3_ALLOW_HTTP", "true")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", &s3.key)
        .env("AWS_SECRET_ACCESS_KEY", &s3.secret)
        .output()
        .expect("run layercake gc");
    assert!(
        out.status.success(),
        "gc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("gc --json prints JSON")
}

#[tokio::test]
async fn gc_after_an_asset_update_removes_exactly_the_stale_version() {
    let (s3, _server) = shared();
    let prefix = format!("t-{}", uuid::Uuid::new_v4().simple());
    let client = reqwest::Client::new();
    let dir = tempfile::tempdir().unwrap();
    let renders = Counting::new();
    let server = Server::start(node(&s3, &prefix, dir.path()), Arc::new(renders.clone())).await;
    let at = server.url(&format!("/api/assets/{MUG}"));
    let image = |size: u32, width: u32| {
        server.url(&format!(
            "/api/fast-compositor?assetId={MUG}&configuration=%7B%22Size%22%3A{size}%7D&width={width}&format=png"
        ))
    };
    let put = |body: String| {
        client
            .put(&at)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    assert!(put(mug("#ff0000")).await.unwrap().status().is_success());
    for (size, width) in [(1, 32), (2, 32), (2, 16)] {
        assert_eq!(
            client
                .get(image(size, width))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    // The sofa (another asset, untouched) must survive too.
    let sofa = server.url(&image_url(&json!({}), "&width=200&format=png"));
    assert_eq!(client.get(&sofa).send().await.unwrap().status(), 200);
    server.app.compositor().flush().await;
    let v1_layers = objects(&s3, &prefix, &format!("layers/{MUG}/v1")).await;
    let v1_composites = objects(&s3, &prefix, &format!("composites/{MUG}/v1e0")).await;
    assert_eq!(v1_layers.len(), 3, "background + two sizes");
    assert_eq!(v1_composites.len(), 3);

    let r = put(mug("#00ff00")).await.unwrap();
    assert!(r.status().is_success());
    for (size, width) in [(2, 32), (3, 32)] {
        assert_eq!(
            client
                .get(image(size, width))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    server.app.compositor().flush().await;
    let kept_before: Vec<String> = objects(&s3, &prefix, "")
        .await
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| !p.contains(&format!("/{MUG}/v1/")) && !p.contains(&format!("/{MUG}/v1e0/")))
        .collect();
    assert!(
        kept_before
            .iter()
            .any(|p| p.contains(&format!("layers/{MUG}/v2/")))
    );
    assert!(
        kept_before
            .iter()
            .any(|p| p.contains(&format!("layers/{SOFA}/v1/")))
    );

    let stale: Vec<_> = v1_layers.iter().chain(&v1_composites).collect();
    let stale_bytes: u64 = stale.iter().map(|(_, b)| b.len() as u64).sum();
    let dry = gc(dir.path(), &s3, &prefix, &["--dry-run"]);
    assert_eq!(dry["objects"], stale.len() as u64, "{dry}");
    assert_eq!(dry["bytes"], stale_bytes, "{dry}");
    assert_eq!(dry["layer_records"], 3, "{dry}");
    assert_eq!(
        objects(&s3, &prefix, "").await.len(),
        kept_before.len() + stale.len(),
        "a dry run removes nothing"
    );

    let done = gc(dir.path(), &s3, &prefix, &[]);
    assert_eq!(done["objects"], stale.len() as u64, "{done}");
    assert_eq!(done["bytes"], stale_bytes, "{done}");
    assert_eq!(done["layer_records"], 3, "{done}");
    // The v1 and v2 images of Size=2 are the same bytes, so they share a
    // file record first stored under v1: it is moved, not deleted.
    assert_eq!(done["file_records"], 2, "{done}");
    let (copies, kept_after): (Vec<String>, Vec<String>) = objects(&s3, &prefix, "")
        .await
        .into_iter()
        .map(|(p, _)| p)
        .partition(|p| p.starts_with(&format!("{prefix}/files/")));
    assert_eq!(
        kept_after, kept_before,
        "exactly the stale version's objects are gone"
    );
    assert_eq!(
        copies.len(),
        1,
        "the shared image, at its content address: {copies:?}"
    );
    let layers = common::get_json(
        &client,
        &server.url(&format!("/api/layers?assetId={MUG}")),
        200,
    )
    .await;
    let versions: Vec<i64> = layers["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            l["assetVersion"]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(-1)
        })
        .collect();
    assert!(
        !versions.is_empty() && versions.iter().all(|v| *v == 2),
        "{layers}"
    );
    for l in layers["layers"].as_array().unwrap() {
        let content = server.url(&format!(
            "/api/files/{}/content",
            l["fileId"].as_str().unwrap()
        ));
        let r = client.get(&content).send().await.unwrap();
        assert_eq!(r.status(), 200, "{l}");
        assert!(image::load_from_memory(&r.bytes().await.unwrap()).is_ok());
    }

    // The live version still serves without rendering; a second gc finds nothing.
    let before = renders.total();
    assert_eq!(client.get(image(3, 32)).send().await.unwrap().status(), 200);
    assert_eq!(renders.total(), before);
    assert_eq!(gc(dir.path(), &s3, &prefix, &[])["objects"], 0);
    server.stop().await;
}
