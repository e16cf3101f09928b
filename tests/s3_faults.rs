//! S3 outages, against a SeaweedFS process each test owns and kills:
//! hits keep being served, misses answer 503 quickly, renders finished
//! meanwhile are kept and written once S3 is back, and a restarted node
//! serves its hot set from the local disk tier.

mod common;

use async_trait::async_trait;
use common::seaweed::Seaweed;
use common::{Counting, SOFA, Server, image_url, settings_in};
use futures::TryStreamExt;
use layercake::compose::LayerImage;
use layercake::render::{RenderError, RenderRequest, Renderer};
use object_store::{ObjectStore, ObjectStoreExt, path::Path as ObjectPath};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Counting renders, slowed down on demand.
#[derive(Clone)]
struct Slowable {
    inner: Counting,
    delay_ms: Arc<AtomicU64>,
}

#[async_trait]
impl Renderer for Slowable {
    async fn render(&self, req: &RenderRequest) -> Result<LayerImage, RenderError> {
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        self.inner.render(req).await
    }
}

async fn ready(client: &reqwest::Client, server: &Server) -> (u16, serde_json::Value) {
    let r = client.get(server.url("/readyz")).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

#[tokio::test]
async fn an_outage_keeps_hits_serving_answers_misses_503_and_loses_no_render() {
    let mut weed = Seaweed::start();
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings_in(dir.path());
    weed.s3.configure(&mut s, "faults");
    let renderer = Slowable {
        inner: Counting::new(),
        delay_ms: Arc::default(),
    };
    let server = Server::start(s, Arc::new(renderer.clone())).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();

    // Warm three configurations: their composites are memory hits from now on.
    let hits: Vec<String> = ["Slate", "Oatmeal", "Navy"]
        .iter()
        .map(|b| server.url(&image_url(&json!({"Body": b}), "&width=300&format=png")))
        .collect();
    for h in &hits {
        assert_eq!(client.get(h).send().await.unwrap().status(), 200);
    }

    // A miss whose renders are under way when S3 goes away.
    renderer.delay_ms.store(2000, Ordering::SeqCst);
    let before = renderer.inner.total();
    let pending_url = server.url(&image_url(
        &json!({"Body": "Forest", "Pillows": "Blush", "Legs": "Chrome Sled"}),
        "&width=300&format=png",
    ));
    let pending = tokio::spawn({
        let (client, url) = (client.clone(), pending_url.clone());
        async move { client.get(&url).send().await.unwrap().status().as_u16() }
    });
    let mut guard = common::Guard::new();
    while renderer.inner.total() == before {
        guard.wait("the renders started").await;
    }
    weed.kill();

    // Load while it is down: hits, and misses that need the store.
    let (mut hit_statuses, mut miss_statuses) = (Vec::new(), Vec::new());
    let misses: Vec<String> = ["Rust", "Dove"]
        .iter()
        .flat_map(|b| (0..4).map(move |w| (b, w)))
        .map(|(b, w)| {
            server.url(&image_url(
                &json!({"Body": b}),
                &format!("&width={}&format=png", 200 + w),
            ))
        })
        .collect();
    let cooldown = Duration::from_millis(server.app.settings().storage.down_cooldown_ms);
    let requests_before = server.app.store().calls().requests;
    let load_started = Instant::now();
    let until = load_started + Duration::from_secs(3);
    let mut i = 0;
    while Instant::now() < until {
        for h in &hits {
            hit_statuses.push(client.get(h).send().await.unwrap().status().as_u16());
        }
        let r = client.get(&misses[i % misses.len()]).send().await.unwrap();
        if r.status() == 503 {
            assert!(
                r.headers().contains_key("retry-after"),
                "503 without Retry-After"
            );
            assert_eq!(r.headers()["cache-control"], "no-store");
        }
        miss_statuses.push(r.status().as_u16());
        i += 1;
    }
    let (requests, took) = (
        server.app.store().calls().requests - requests_before,
        load_started.elapsed(),
    );
    eprintln!(
        "while S3 was down: {} hits, {} misses, {requests} requests to S3 in {took:?}",
        hit_statuses.len(),
        miss_statuses.len()
    );
    assert!(
        hit_statuses.iter().all(|s| *s == 200),
        "hits while S3 is down: {hit_statuses:?}"
    );
    assert!(
        miss_statuses.iter().all(|s| *s == 503),
        "misses while S3 is down: {miss_statuses:?}"
    );
    // The breaker, not the timeouts, answers the misses: at most one probe
    // per cooldown reaches S3 (plus the requests under way when it fell,
    // the two held renders' and this loop's first miss), however many misses.
    let probes = took.as_millis() / cooldown.as_millis() + 1;
    assert!(
        u128::from(requests) <= probes + 3,
        "{requests} requests reached S3 for {} misses in {took:?}",
        miss_statuses.len()
    );
    assert!(
        miss_statuses.len() as u64 > requests,
        "most misses never reached S3"
    );
    // The render that finished meanwhile was kept (the outbox) and served.
    assert_eq!(pending.await.unwrap(), 200);
    let (status, body) = ready(&client, &server).await;
    assert_eq!(status, 200, "degraded, still in rotation: {body}");
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["store"]["up"], false, "{body}");
    assert!(
        body["store"]["outbox_objects"].as_u64().unwrap() >= 1,
        "{body}"
    );
    let rendered = renderer.inner.total();

    // S3 comes back: readiness and the outbox recover by themselves.
    renderer.delay_ms.store(0, Ordering::SeqCst);
    weed.restart();
    let mut guard = common::Guard::new();
    loop {
        let (status, body) = ready(&client, &server).await;
        if status == 200 && body["store"]["outbox_objects"] == 0 {
            break;
        }
        guard.wait(&format!("recovery: {status} {body}")).await;
    }
    // Every render is in the bucket, whole: nothing lost, nothing half-written.
    let bucket = weed.s3.client();
    let root = ObjectPath::from(format!("faults/layers/{SOFA}/v1"));
    let layers: Vec<_> = bucket.list(Some(&root)).try_collect().await.unwrap();
    assert_eq!(layers.len(), rendered, "one object per render");
    for m in &layers {
        let b = bucket
            .get(&m.location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert!(
            layercake::store::envelope::open(b).is_ok(),
            "{}",
            m.location
        );
    }
    // Misses work again; hits never stopped.
    for m in misses.iter().take(2) {
        assert_eq!(client.get(m).send().await.unwrap().status(), 200);
    }
    assert_eq!(client.get(&hits[0]).send().await.unwrap().status(), 200);

    // A server that accepts and never answers: the first miss waits out
    // the timeouts (2 s a request, one retry; the client would give up
    // after 20 s), the next ones are answered by the breaker, at most one
    // probe per cooldown reaching S3.
    weed.signal("STOP");
    let requests_before = server.app.store().calls().requests;
    let frozen_started = Instant::now();
    let frozen = |body: &str| {
        server.url(&image_url(
            &json!({"Body": "Slate", "Pillows": body}),
            "&width=310&format=png",
        ))
    };
    let pillows = ["Charcoal", "Terracotta"];
    for (i, p) in pillows.iter().enumerate() {
        let started = Instant::now();
        let r = client.get(frozen(p)).send().await.unwrap();
        eprintln!(
            "miss {i} against a frozen S3: {} in {:?}",
            r.status(),
            started.elapsed()
        );
        assert_eq!(r.status(), 503);
        assert_eq!(client.get(&hits[1]).send().await.unwrap().status(), 200);
    }
    let (requests, took) = (
        server.app.store().calls().requests - requests_before,
        frozen_started.elapsed(),
    );
    let probes = took.as_millis() / cooldown.as_millis() + 1;
    eprintln!(
        "a frozen S3: {requests} requests for {} misses in {took:?}",
        pillows.len()
    );
    assert!(
        u128::from(requests) <= probes + 1,
        "{requests} requests in {took:?}"
    );
    weed.signal("CONT");
    server.stop().await;
}

#[tokio::test]
async fn a_restarted_node_serves_its_hot_set_from_the_disk_tier_while_s3_is_down() {
    let mut weed = Seaweed::start();
    let dir = tempfile::tempdir().unwrap();
    let s3 = weed.s3.clone();
    let settings = || {
        let mut s = settings_in(dir.path());
        s3.configure(&mut s, "disk");
        s.storage.disk_cache_bytes = 64 << 20;
        s
    };
    let client = reqwest::Client::new();
    let config = json!({"Body": "Dove", "Legs": "Brass Cone"});
    let url = image_url(&config, "&width=400&format=webp");

    let a = Server::start(settings(), Arc::new(Counting::new())).await;
    let first = client
        .get(a.url(&url))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    a.app.compositor().flush().await;
    a.stop().await;

    weed.kill();
    let renders = Counting::new();
    let b = Server::start(settings(), Arc::new(renders.clone())).await;
    let r = client.get(b.url(&url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.bytes().await.unwrap(),
        first,
        "the same composite, from local disk"
    );
    // Another size: composed from the layers on local disk.
    let other = image_url(&config, "&width=250&format=png");
    assert_eq!(
        client.get(b.url(&other)).send().await.unwrap().status(),
        200
    );
    assert_eq!(renders.total(), 0);
    // Something never seen needs the store: a 503, and the store is taken
    // as down (the next requests are answered by the breaker).
    let r = client
        .get(b.url(&image_url(
            &json!({"Body": "Rust"}),
            "&width=250&format=png",
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(!b.app.store().is_up());
    let metrics = client
        .get(b.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("layercake_cache_requests_total")
                && l.contains("cache=\"composite\"")
                && l.contains("tier=\"disk\"")
                && l.contains("result=\"hit\"")),
        "{metrics}"
    );
    assert!(metrics.contains("layercake_cache_bytes{cache=\"disk\"}"));
    b.stop().await;
}
