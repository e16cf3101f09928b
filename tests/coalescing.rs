//! Concurrent misses for one key cost one render per layer, and a requester
//! that goes away cancels nothing.

mod common;

use common::{Counting, Server, image_url, settings};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_concurrent_cold_requests_render_each_layer_once() {
    let renderer = Counting::new();
    let server = Server::start(settings(), Arc::new(renderer.clone())).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(200)
        .build()
        .unwrap();
    let url = server.url(&image_url(
        &json!({"Body": "Forest", "Pillows": "Teal", "Legs": "Brass Cone"}),
        "&width=640&format=webp",
    ));

    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let r = client.get(&url).send().await.expect("request");
            assert_eq!(r.status(), 200);
            r.bytes().await.expect("body")
        }));
    }
    let mut bodies = Vec::new();
    for t in tasks {
        bodies.push(t.await.unwrap());
    }
    assert!(
        bodies.iter().all(|b| *b == bodies[0]),
        "all 100 responses carry identical bytes"
    );
    assert_eq!(
        renderer.max_per_layer(),
        1,
        "no layer rendered twice: {:?}",
        renderer.counts.lock().unwrap()
    );
    assert_eq!(renderer.total(), 5, "backdrop, shadow, legs, body, pillows");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requester_that_disconnects_does_not_cancel_the_work() {
    // Renders are counted as they start, then take 400 ms: a cancelled and
    // restarted computation would count twice.
    let counting = Counting::slow(Duration::from_millis(400));
    let server = Server::start(settings(), Arc::new(counting.clone())).await;
    let url = server.url(&image_url(&json!({"Body": "Rust"}), "&width=300"));

    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    assert!(
        impatient.get(&url).send().await.is_err(),
        "the first client gives up"
    );

    let patient = reqwest::Client::new();
    let r = patient.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        counting.total(),
        5,
        "the abandoned computation was joined, not restarted"
    );
    assert_eq!(counting.max_per_layer(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_past_the_wait_budget_is_a_503_and_the_work_goes_on() {
    let mut s = settings();
    s.render.miss_wait_secs = 1;
    s.render.concurrency = 8;
    let counting = Counting::slow(Duration::from_millis(1500));
    let server = Server::start(s, Arc::new(counting.clone())).await;
    let url = server.url(&image_url(&json!({"Body": "Dove"}), "&width=200"));
    let client = reqwest::Client::new();

    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "2");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "unavailable");

    // The renders finish in the background; later requests are served
    // without rendering anything again.
    let mut status = 0;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        status = client.get(&url).send().await.unwrap().status().as_u16();
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "only 503s until the work is done");
    }
    assert_eq!(status, 200);
    assert_eq!(counting.total(), 5);
    assert_eq!(counting.max_per_layer(), 1);
    server.stop().await;
}

/// The window that once rendered a layer twice: a request misses every
/// layer in the store, and before it queues their renders, another request
/// renders and records the same layers and its tasks stop. The held
/// request must then use those layers, not render them again (one render
/// per layer key), and still answer its image. Runs on SQLite, and on
/// PostgreSQL in `.ci/run`'s second pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_that_queues_after_its_layers_were_rendered_renders_nothing() {
    let counting = Counting::new();
    let server = Server::start(settings(), Arc::new(counting.clone())).await;
    let (reached_tx, reached_rx) = tokio::sync::oneshot::channel::<()>();
    let reached = std::sync::Mutex::new(Some(reached_tx));
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let hold = Arc::clone(&release);
    // Only the first request that gets there is held.
    let set = server
        .app
        .compositor()
        .hold_before_queueing(Arc::new(move || {
            let first = reached.lock().unwrap().take();
            let hold = Arc::clone(&hold);
            Box::pin(async move {
                if let Some(tx) = first {
                    let _ = tx.send(());
                    let _ = hold.acquire().await;
                }
            })
        }));
    assert!(set);
    let config = json!({"Body": "Oatmeal", "Pillows": "Blush", "Legs": "Walnut Block"});
    let client = reqwest::Client::new();
    let held_url = server.url(&image_url(&config, "&width=300"));
    let held = tokio::spawn({
        let (client, url) = (client.clone(), held_url.clone());
        async move {
            let r = client.get(&url).send().await.unwrap();
            (r.status().as_u16(), r.bytes().await.unwrap())
        }
    });
    tokio::time::timeout(Duration::from_secs(30), reached_rx)
        .await
        .expect("the first request reaches the fault point")
        .unwrap();
    assert_eq!(counting.total(), 0, "the held request has rendered nothing");

    // Another size of the same configuration: the same layer keys, another
    // composite. It renders the five layers, records them, and its tasks stop.
    let r = client
        .get(server.url(&image_url(&config, "&width=200")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(counting.total(), 5, "backdrop, shadow, legs, body, pillows");

    // Now the held request queues the layers it saw missing.
    release.add_permits(1);
    let (status, bytes) = held.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        counting.total(),
        5,
        "a layer was rendered twice: {:?}",
        counting.counts.lock().unwrap()
    );
    assert_eq!(counting.max_per_layer(), 1);

    // Its job was linked to the five tasks that rendered the layers: one
    // task and one record per layer key.
    let tasks = common::get_json(&client, &server.url("/api/jobs/tasks?perPage=100"), 200).await;
    let tasks = tasks["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 5, "{tasks:?}");
    assert!(
        tasks.iter().all(|t| t["runResult"] == "Success"),
        "{tasks:?}"
    );
    let jobs = common::get_json(&client, &server.url("/api/jobs?perPage=100"), 200).await;
    let jobs = jobs["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    for j in jobs {
        let id = j["id"].as_str().unwrap();
        let mine = common::get_json(
            &client,
            &server.url(&format!("/api/jobs/tasks?jobId={id}")),
            200,
        )
        .await;
        assert_eq!(mine["count"], 5, "{j}");
        assert_eq!(j["status"], "stopped", "{j}");
    }
    let layers = common::get_json(&client, &server.url("/api/layers?perPage=100"), 200).await;
    assert_eq!(layers["count"], 5, "one record per layer key");

    // A later request for the held URL gets the same bytes, from memory.
    let again = client.get(&held_url).send().await.unwrap();
    assert_eq!(again.headers()["x-layercake-cache"], "hit-memory");
    assert_eq!(again.bytes().await.unwrap(), bytes);
    server.stop().await;
}
