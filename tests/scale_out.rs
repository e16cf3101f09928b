//! Scaled out: two `serve` processes and `layercake worker` processes, each
//! with a data dir of its own, sharing only a real PostgreSQL (metadata and
//! the job queue) and a real S3 (SeaweedFS). The serve processes only queue
//! renders; the workers do them.
//!
//! - Both serve processes start at once on an empty database.
//! - Concurrent misses for one configuration through both make one task per
//!   layer key and one layer record each, and both answer the same bytes.
//! - A worker killed with SIGKILL mid-render: another worker finishes its
//!   task once the lease expires, and the waiting request gets its image.
//! - What one node made, the other serves from S3 without rendering.
//! - A batch queued through one node is followed to its end through the other.
//! - An asset created and then updated through one node is served, in its
//!   new version, by the other within its catalogue refresh; so is a layer
//!   image registered through one node, which the other had in memory.

mod common;

use common::{
    SOFA, enc, get_json, postgres, render_script, scratch_postgres_on, seaweed, solid_png,
    start_binary, start_serve,
};
use serde_json::{Value, json};
use std::collections::HashSet;

fn image(base: &str, config: &Value, width: u32) -> String {
    format!(
        "{base}/api/fast-compositor?assetId={SOFA}&configuration={}&width={width}",
        enc(config)
    )
}

/// Every task of the shared queue, seen through `base`.
async fn tasks(client: &reqwest::Client, base: &str) -> Vec<Value> {
    let t = get_json(client, &format!("{base}/api/jobs/tasks?perPage=100"), 200).await;
    assert!(t["count"].as_i64().unwrap() <= 100, "one page holds them");
    t["tasks"].as_array().unwrap().clone()
}

#[tokio::test]
async fn serve_and_worker_processes_share_postgres_and_s3() {
    let (s3, _s3_guard) = seaweed::shared();
    let (pg, _pg_guard) = postgres::shared();
    let db = scratch_postgres_on(&pg);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    render_script(dir.path(), [120, 80, 40, 200], 0.5);
    let prefix = format!("scale-out-{}", uuid::Uuid::new_v4().simple());
    let config = dir.path().join("layercake.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[meta]
url = "{db}"
max_connections = 4
[storage]
url = "s3://{bucket}/{prefix}"
s3_endpoint = "{endpoint}"
s3_region = "us-east-1"
s3_access_key_id = "{key}"
s3_secret_access_key = "{secret}"
s3_allow_http = true
[http]
request_timeout_secs = 180
[render]
concurrency = 1
miss_wait_secs = 120
backend = "slow"
[render.backends.slow]
kind = "command"
command = ["sh", "{d}/render.sh"]
[jobs]
in_process = false
lease_secs = 2
poll_ms = 100
[catalog]
refresh_ms = 200
"#,
            bucket = s3.bucket,
            endpoint = s3.endpoint,
            key = s3.key,
            secret = s3.secret,
        ),
    )
    .unwrap();
    let data = |name: &str| dir.path().join(name);

    // Two serve processes starting at once on an empty database: both
    // import the catalogue, neither fails.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| start_serve(&config, &data("a")));
        let b = s.spawn(|| start_serve(&config, &data("b")));
        (a.join().unwrap(), b.join().unwrap())
    });
    let ((_a, a), (_b, b)) = (a, b);
    let (mut doomed, _) = start_binary(&["worker"], &config, &data("w1"), "worker running");
    let client = reqwest::Client::new();

    // Concurrent misses through both nodes: one task per layer key.
    let default = json!({});
    let urls = [&a, &b, &a, &b].map(|base| image(base, &default, 100));
    let answers = futures::future::join_all(urls.iter().map(|u| {
        let client = client.clone();
        async move {
            let r = client.get(u).send().await.unwrap();
            assert_eq!(r.status(), 200, "{u}");
            r.bytes().await.unwrap()
        }
    }))
    .await;
    assert!(
        answers.iter().all(|x| *x == answers[0]),
        "the same bytes everywhere"
    );
    let t = tasks(&client, &a).await;
    let keys: HashSet<&str> = t.iter().map(|t| t["layerKey"].as_str().unwrap()).collect();
    assert_eq!((t.len(), keys.len()), (5, 5), "one task per layer key");
    let layers = get_json(&client, &format!("{b}/api/layers?perPage=100"), 200).await;
    assert_eq!(layers["count"], 5, "one layer record per render");

    // A worker dies with SIGKILL mid-render; another finishes its task.
    std::fs::write(data("slow"), "").unwrap();
    let navy = json!({"Body": "Navy"});
    let waiting = tokio::spawn({
        let (c, u) = (client.clone(), image(&b, &navy, 100));
        async move {
            let r = c.get(&u).send().await.unwrap();
            (r.status().as_u16(), r.bytes().await.unwrap())
        }
    });
    let mut guard = common::Guard::new();
    let running = loop {
        let t = get_json(
            &client,
            &format!("{a}/api/jobs/tasks?runStatus=running"),
            200,
        )
        .await;
        if let Some(id) = t["tasks"][0]["id"].as_str() {
            break id.to_string();
        }
        guard.wait("a render started").await;
    };
    doomed.0.kill().unwrap();
    doomed.0.wait().unwrap();
    std::fs::remove_file(data("slow")).unwrap();
    let (_rescuer, _) = start_binary(&["worker"], &config, &data("w2"), "worker running");
    let (status, navy_bytes) = waiting.await.unwrap();
    assert_eq!(status, 200, "the waiting request gets its image");
    let task = get_json(&client, &format!("{b}/api/jobs/tasks/{running}"), 200).await;
    let runs = task["runs"].as_array().unwrap();
    assert_eq!(task["runResult"], "Success", "{task}");
    assert_eq!(runs.len(), 2, "{task}");
    assert!(
        runs[0]["error"].as_str().unwrap().contains("lease"),
        "{task}"
    );
    assert_ne!(runs[0]["worker"], runs[1]["worker"]);

    // What B made, A serves from S3 (once B's background write of the
    // composite has landed), and a new size from S3 layers: no task.
    let mut guard = common::Guard::new();
    while objects(&s3, &format!("{prefix}/composites/")).await < 2 {
        guard.wait("B's composite in S3").await;
    }
    let before = tasks(&client, &a).await.len();
    let r = client.get(image(&a, &navy, 100)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-layercake-cache"], "hit-store");
    assert_eq!(r.bytes().await.unwrap(), navy_bytes);
    let r = client.get(image(&a, &navy, 64)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(tasks(&client, &a).await.len(), before, "nothing rendered");

    // A batch queued through A, followed through B.
    let r = client
        .post(format!("{a}/api/jobs"))
        .json(&json!({"assetId": SOFA, "all": true, "where": {"Body": ["Navy"], "Legs": ["Chrome Sled"]},
                      "stageConfigurations": [{"Camera": 0}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let job: Value = r.json().await.unwrap();
    let id = job["id"].as_str().unwrap();
    let mut guard = common::Guard::new();
    let job = loop {
        let j = get_json(&client, &format!("{b}/api/jobs/{id}"), 200).await;
        if j["status"] == "stopped" {
            break j;
        }
        guard.wait(&format!("the batch stopped: {j}")).await;
    };
    let p = &job["parameters"];
    assert_eq!(p["configurations"], 12, "{job}");
    assert!(p["tasks"].as_i64().unwrap() > 0, "{job}");
    assert_eq!(
        p["tasks"].as_i64().unwrap(),
        p["layers"].as_i64().unwrap() - p["cached"].as_i64().unwrap(),
        "only the missing layers: {job}"
    );
    assert_eq!(job["taskResultSuccesses"], p["tasks"], "{job}");
    assert_eq!(job["taskResultFailures"], 0, "{job}");

    // Over everything: one task and one layer record per layer key.
    let all = tasks(&client, &b).await;
    let keys: HashSet<&str> = all
        .iter()
        .map(|t| t["layerKey"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), all.len(), "no key rendered twice");
    let layers = get_json(&client, &format!("{a}/api/layers?perPage=100"), 200).await;
    assert_eq!(layers["count"].as_u64().unwrap() as usize, keys.len());

    // An asset created through B is served by A after A's refresh; updated
    // through B, A serves its new version.
    let mug = format!("{b}/api/assets/{MUG}");
    let r = client
        .put(&mug)
        .header("content-type", "application/json")
        .body(mug_json("#204080"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    // A's images are another size than B's, so that A composes them itself
    // rather than finding B's in S3.
    let pixel = |base: String| {
        let client = client.clone();
        let width = if base == b { 32 } else { 16 };
        async move {
            let r = client
                .get(format!(
                    "{base}/api/fast-compositor?assetId={MUG}&configuration=%7B%7D&format=png&width={width}"
                ))
                .send()
                .await
                .unwrap();
            if r.status() != 200 {
                return None;
            }
            let img = image::load_from_memory(&r.bytes().await.unwrap())
                .unwrap()
                .to_rgba8();
            Some(img.get_pixel(1, 1).0)
        }
    };
    let mut guard = common::Guard::new();
    while pixel(a.clone()).await != Some([0x20, 0x40, 0x80, 255]) {
        guard.wait("A serving the mug made through B").await;
    }
    let r = client
        .put(&mug)
        .header("content-type", "application/json")
        .body(mug_json("#802040"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let mut guard = common::Guard::new();
    while pixel(a.clone()).await != Some([0x80, 0x20, 0x40, 255]) {
        guard.wait("A serving the mug's new version").await;
    }

    // A layer image registered through B replaces the one A holds in memory.
    let file = common::upload(
        &client,
        &b,
        "green.png",
        solid_png(32, 32, [10, 200, 30, 255]),
    )
    .await;
    let r = client
        .post(format!("{b}/api/layers"))
        .json(&json!({"assetId": MUG, "assetLayer": "Background", "assetLayerConfiguration": {},
                      "stageConfiguration": {"Camera": 0}, "fileId": file["id"], "width": 32, "height": 32}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(pixel(b.clone()).await, Some([10, 200, 30, 255]));
    let mut guard = common::Guard::new();
    while pixel(a.clone()).await != Some([10, 200, 30, 255]) {
        guard
            .wait("A composing from the layer registered through B")
            .await;
    }
}

/// Objects under `under` in the bucket.
async fn objects(s3: &seaweed::S3, under: &str) -> usize {
    use futures::TryStreamExt;
    use object_store::ObjectStore;
    let root = object_store::path::Path::from(under);
    let listed: Vec<_> = s3.client().list(Some(&root)).try_collect().await.unwrap();
    listed.len()
}

const MUG: &str = "7a1c7d2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f";

/// A small asset with one flat layer of `fill`, defined inline.
fn mug_json(fill: &str) -> String {
    let svg = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='32' height='32'><rect width='32' height='32' fill='{fill}'/></svg>"
    );
    json!({
        "id": MUG, "name": "Mug", "version": 1, "width": 32, "height": 32,
        "renderer": "builtin", "attributes": [],
        "views": [{"name": "front", "stage": {"Camera": 0}}],
        "layers": [{"id": "0e7b3c1a-2d4f-4a6b-8c9d-1e2f3a4b5c6d", "name": "Background",
                    "render": {"template": svg}}]
    })
    .to_string()
}
