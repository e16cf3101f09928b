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
