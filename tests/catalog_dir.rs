//! A catalogue folder edited between two runs on the same data dir: the
//! edit becomes a new asset version, with new keys (the server numbers
//! versions; the file need not say one); an unchanged file changes
//! nothing; the API cannot change a catalogue asset.

mod common;

use common::{Counting, Server, image_url, settings_in};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[tokio::test]
async fn an_edited_catalogue_file_becomes_a_new_version_with_new_keys() {
    let catalog = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("catalog"),
        catalog.path(),
    );
    let mut s = settings_in(data.path());
    s.catalog.dir = catalog.path().display().to_string();
    let url_path = image_url(&json!({"Body": "Navy"}), "&width=300&format=png");
    let client = reqwest::Client::new();

    let first = Counting::new();
    let server = Server::start(s.clone(), Arc::new(first.clone())).await;
    let before = client
        .get(server.url(&url_path))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(first.total(), 5);
    server.stop().await;

    // Navy becomes a brighter blue; `version` stays 1.
    let file = catalog.path().join("sofa.json");
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let navy = doc["attributes"][0]["values"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|o| o["value"] == "Navy")
        .unwrap();
    navy["metadata"]["color"] = json!("#3355cc");
    std::fs::write(&file, doc.to_string()).unwrap();

    let second = Counting::new();
    let server = Server::start(s.clone(), Arc::new(second.clone())).await;
    let r = client.get(server.url(&url_path)).send().await.unwrap();
    assert_eq!(
        r.headers()["x-layercake-cache"],
        "miss",
        "the composite key moved with the definition"
    );
    let after = r.bytes().await.unwrap();
    assert_ne!(before, after, "the new colour shows");
    assert_eq!(
        second.total(),
        5,
        "version 2 has its own layer keys: nothing stale is reused"
    );
    let asset: serde_json::Value = serde_json::from_slice(
        &client
            .get(server.url(&format!("/api/assets/{}", common::SOFA)))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(asset["version"], 2);
    server.stop().await;

    // Unchanged since: a third run renders nothing and stays at version 2.
    let third = Counting::new();
    let server = Server::start(s.clone(), Arc::new(third.clone())).await;
    let r = client.get(server.url(&url_path)).send().await.unwrap();
    assert_eq!(r.headers()["x-layercake-cache"], "hit-store");
    assert_eq!(third.total(), 0);
    // One source of truth: the API cannot change a catalogue asset; the
    // refusal names the file and says how to change it.
    let at = server.url(&format!("/api/assets/{}", common::SOFA));
    let answer = client.get(&at).send().await.unwrap().text().await.unwrap();
    let r = client
        .put(&at)
        .header("content-type", "application/json")
        .body(answer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let message = r.text().await.unwrap();
    assert!(
        message.contains(&file.display().to_string()) && message.contains("edit that file"),
        "{message}"
    );
    server.stop().await;

    // The file's `version` is the server's business: without it, the same
    // content is the same version.
    doc.as_object_mut().unwrap().remove("version");
    std::fs::write(&file, doc.to_string()).unwrap();
    let fourth = Counting::new();
    let server = Server::start(s, Arc::new(fourth.clone())).await;
    let at = server.url(&format!("/api/assets/{}", common::SOFA));
    let asset: serde_json::Value =
        serde_json::from_str(&client.get(&at).send().await.unwrap().text().await.unwrap()).unwrap();
    assert_eq!(asset["version"], 2);
    let r = client.get(server.url(&url_path)).send().await.unwrap();
    assert_eq!(r.headers()["x-layercake-cache"], "hit-store");
    assert_eq!(fourth.total(), 0);
    server.stop().await;
}
