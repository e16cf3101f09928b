//! Concurrent misses for one key cost one render per layer, and a requester
//! that goes away cancels nothing.

mod common;

use async_trait::async_trait;
use common::{Counting, Server, image_url, settings};
use layercake::compose::LayerImage;
use layercake::render::{RenderError, RenderRequest, Renderer};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_concurrent_cold_requests_render_each_layer_once() {
    let renderer = Counting::new();
    let server = Server::start(settings(), Arc::new(renderer.clone())).await;
    let client = reqwest::Client::builder().pool_max_idle_per_host(200).build().unwrap();
    let url = server.url(&image_url(&json!({"Body": "Forest", "Pillows": "Teal", "Legs": "Brass Cone"}), "&width=640&format=webp"));

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
    assert!(bodies.iter().all(|b| *b == bodies[0]), "all 100 responses carry identical bytes");
    assert_eq!(renderer.max_per_layer(), 1, "no layer rendered twice: {:?}", renderer.counts.lock().unwrap());
    assert_eq!(renderer.total(), 5, "backdrop, shadow, legs, body, pillows");
    server.stop().await;
}

/// The built-in renderer, slowed down so a client can give up mid-render.
struct Slow(Counting);

#[async_trait]
impl Renderer for Slow {
    async fn render(&self, req: &RenderRequest) -> Result<LayerImage, RenderError> {
        tokio::time::sleep(Duration::from_millis(400)).await;
        self.0.render(req).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requester_that_disconnects_does_not_cancel_the_work() {
    let counting = Counting::new();
    let server = Server::start(settings(), Arc::new(Slow(counting.clone()))).await;
    let url = server.url(&image_url(&json!({"Body": "Rust"}), "&width=300"));

    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(100)).build().unwrap();
    assert!(impatient.get(&url).send().await.is_err(), "the first client gives up");

    let patient = reqwest::Client::new();
    let r = patient.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(counting.total(), 5, "the abandoned computation was joined, not restarted");
    assert_eq!(counting.max_per_layer(), 1);
    server.stop().await;
}
