//! The HTTP edge: cache headers and 304, signed URLs (valid, tampered,
//! rotated-out key, unsigned when required), tokens and tenancy, fast 429s
//! beyond capacity while hits keep answering, pixel budgets on uploads,
//! metrics, health, readiness and request ids.

mod common;

use common::{Counting, SOFA, Server, image_url, metric, settings, upload};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const K1: &str = "first-signing-key-0123456789abcdef0123";
const K2: &str = "second-signing-key-0123456789abcdef012";

async fn signed_urls(client: &reqwest::Client, server: &Server, images: Value) -> Vec<String> {
    let r = client
        .post(server.url("/api/urls"))
        .json(&json!({ "images": images }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["urls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn revalidation_gets_304_with_the_caching_headers() {
    let server = Server::start(settings(), Arc::new(Counting::new())).await;
    let client = reqwest::Client::new();
    let url = server.url(&image_url(&json!({"Body": "Navy"}), "&width=64"));
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let cc = r.headers()["cache-control"].to_str().unwrap().to_string();
    assert!(
        cc.starts_with("public, max-age=3600, stale-while-revalidate="),
        "{cc}"
    );
    assert_eq!(r.headers()["vary"], "Accept");
    let again = client
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(again.headers()["cache-control"].to_str().unwrap(), cc);
    assert_eq!(again.headers()["vary"], "Accept");
    // A different cache buster is a different ETag for the same URL.
    let mut s = settings();
    s.http.cache_buster = "encoder-2".into();
    let other = Server::start(s, Arc::new(Counting::new())).await;
    let r = client
        .get(other.url(&image_url(&json!({"Body": "Navy"}), "&width=64")))
        .send()
        .await
        .unwrap();
    assert_ne!(r.headers()["etag"].to_str().unwrap(), etag);
    other.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn signed_urls_valid_tampered_rotated_and_required() {
    let mut s = settings();
    s.signing.keys = vec![K1.into()];
    s.signing.required = true;
    let renders = Counting::new();
    let server = Server::start(s.clone(), Arc::new(renders.clone())).await;
    let client = reqwest::Client::new();
    let urls = signed_urls(
        &client,
        &server,
        json!([{"assetId": SOFA, "configuration": {"Body": "Navy"}, "width": 80, "format": "webp"}]),
    )
    .await;
    let url = server.url(&urls[0]);
    assert!(url.contains("&v=1.0&signature="), "{url}");
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/webp");
    assert_eq!(
        r.headers()["cache-control"],
        "public, max-age=31536000, immutable",
        "a signed URL pinned to the live definition is immutable"
    );
    let rendered = renders.total();

    // Tampered: a larger image under the same signature.
    let tampered = url.replace("width=80", "width=4000");
    let r = client.get(&tampered).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["cache-control"], "no-store");
    // Unsigned, when signatures are required: refused before any work.
    let unsigned = server.url(&image_url(&json!({"Body": "Rust"}), "&width=80"));
    let r = client.get(&unsigned).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("signature")
    );
    assert_eq!(renders.total(), rendered, "a refused URL renders nothing");
    // The token parameter and the trailing-slash route are outside the signature.
    let with_token = format!("{url}&bearer_token=6f1c7d2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f");
    assert_eq!(client.get(&with_token).send().await.unwrap().status(), 200);
    let slash = url.replace("/api/fast-compositor?", "/api/fast-compositor/?");
    assert_eq!(client.get(&slash).send().await.unwrap().status(), 200);
    server.stop().await;

    // Rotation: K2 signs, K1 still verifies; then K1 is dropped.
    let mut rotated = s.clone();
    rotated.signing.keys = vec![K2.into(), K1.into()];
    let server = Server::start(rotated, Arc::new(Counting::new())).await;
    let path = &urls[0];
    assert_eq!(
        client.get(server.url(path)).send().await.unwrap().status(),
        200
    );
    server.stop().await;
    let mut dropped = s.clone();
    dropped.signing.keys = vec![K2.into()];
    let server = Server::start(dropped, Arc::new(Counting::new())).await;
    assert_eq!(
        client.get(server.url(path)).send().await.unwrap().status(),
        403
    );
    // Bad requests in a batch name the image and the parameter.
    let r = client
        .post(server.url("/api/urls"))
        .json(&json!({"images": [{"assetId": SOFA}, {"assetId": SOFA, "width": 0}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let e: Value = r.json().await.unwrap();
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("images[1].width"),
        "{e}"
    );
    server.stop().await;
}

#[tokio::test]
async fn tokens_scope_every_request_to_an_org() {
    let server = Server::start(settings(), Arc::new(Counting::new())).await;
    let client = reqwest::Client::new();
    // Development mode until the first token exists: render something then.
    let r = client
        .get(server.url(&image_url(&json!({}), "&width=50")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let tokens = &server.app.tokens();
    let (private, _) = tokens.create(None, "ci", false, &[]).await.unwrap();
    let (public, _) = tokens
        .create(None, "shop", true, &["https://shop.example".into()])
        .await
        .unwrap();
    let other_org = uuid::Uuid::new_v4();
    let (stranger, _) = tokens
        .create(Some(other_org), "other", false, &[])
        .await
        .unwrap();

    let layers = server.url("/api/layers");
    let r = client.get(&layers).send().await.unwrap();
    assert_eq!(r.status(), 401, "no token");
    let r = client
        .get(&layers)
        .bearer_auth("6f1c7d2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "unknown token");
    let mine: Value = client
        .get(&layers)
        .bearer_auth(&private)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(mine["count"], 5);
    let id = mine["layers"][0]["id"].as_str().unwrap();

    // Another org's token sees none of it: its ids are 404.
    let theirs: Value = client
        .get(&layers)
        .bearer_auth(&stranger)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["count"], 0);
    let r = client
        .get(format!("{layers}/{id}"))
        .bearer_auth(&stranger)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = client
        .get(format!("{layers}?orgId={other_org}"))
        .bearer_auth(&private)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "orgId must be the token's");

    // A public token reads from its origins only, and never writes.
    let image = server.url(&image_url(
        &json!({}),
        &format!("&width=50&bearer_token={public}"),
    ));
    let r = client
        .get(&image)
        .header("origin", "https://shop.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client
        .get(&image)
        .header("referer", "https://shop.example/sofas?page=2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "Referer when there is no Origin");
    let r = client
        .get(&image)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = client.get(&image).send().await.unwrap();
    assert_eq!(r.status(), 403, "no origin at all");
    let r = client
        .post(server.url(&format!("/api/configurations?bearer_token={public}")))
        .header("origin", "https://shop.example")
        .json(&json!({"productId": SOFA, "variant": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a public token cannot write");
    // A bearer_token that is not a token at all is refused, even beside
    // a header token.
    let r = client
        .get(server.url(&image_url(&json!({}), "&width=50&bearer_token=nope")))
        .bearer_auth(&private)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a malformed bearer_token");
    // Images without any token: 401 (a signed URL would do).
    let r = client
        .get(server.url(&image_url(&json!({}), "&width=50")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    server.stop().await;
}

#[tokio::test]
async fn beyond_capacity_misses_get_fast_429s_while_hits_answer() {
    // A slow renderer, one render at a time, and room for one pending task.
    let mut s = settings();
    s.jobs.max_pending = 1;
    s.render.concurrency = 1;
    let renders = Counting::new();
    let server = Server::start(s, Arc::new(renders.clone())).await;
    let client = reqwest::Client::new();
    let hit = server.url(&image_url(&json!({}), "&width=40"));
    assert_eq!(client.get(&hit).send().await.unwrap().status(), 200);
    // From here renders wait until released: whatever answers meanwhile
    // answered without waiting for one.
    renders.hold();
    let before = renders.total();
    // Fill the queue: a new body and legs, one rendering, one pending.
    let first = server.url(&image_url(
        &json!({"Body": "Navy", "Legs": "Brass Cone"}),
        "&width=40",
    ));
    let busy = tokio::spawn({
        let (c, u) = (client.clone(), first.clone());
        async move { c.get(&u).send().await.unwrap().status() }
    });
    // Wait until one of its renders has started (and is held) and the
    // other is pending.
    common::eventually("the first miss queued", || async {
        let t: Value = client
            .get(server.url("/api/jobs/tasks?runStatus=pending"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        t["count"].as_i64().unwrap_or(0) >= 1 && renders.total() > before
    })
    .await;
    let flood: Vec<String> = ["Oatmeal", "Forest", "Rust", "Dove"]
        .iter()
        .map(|b| {
            server.url(&image_url(
                &json!({"Body": b, "Legs": "Chrome Sled"}),
                "&width=40",
            ))
        })
        .collect();
    let started_renders = renders.total();
    let answers = tokio::time::timeout(
        Duration::from_secs(60),
        futures::future::join_all(flood.iter().map(|u| client.get(u).send())),
    )
    .await
    .expect("the 429s waited for a render held back");
    let mut rejected = 0;
    for a in answers {
        let a = a.unwrap();
        if a.status() == 429 {
            rejected += 1;
            assert_eq!(a.headers()["retry-after"], "1");
            assert_eq!(a.headers()["cache-control"], "no-store");
        }
    }
    assert_eq!(rejected, 4, "the queue is full");
    let hit_answer = tokio::time::timeout(Duration::from_secs(60), client.get(&hit).send())
        .await
        .expect("a hit waited for a render held back")
        .unwrap();
    assert_eq!(hit_answer.status(), 200, "a hit still answers");
    assert_eq!(
        (renders.total(), busy.is_finished()),
        (started_renders, false),
        "the 429s and the hit answered while the first miss's render was held"
    );
    renders.release();
    // A miss whose missing layers are all queued already joins their tasks:
    // it adds nothing to the queue, so it is not refused.
    let joining = server.url(&image_url(
        &json!({"Body": "Navy", "Legs": "Brass Cone"}),
        "&width=41",
    ));
    assert_eq!(
        client.get(&joining).send().await.unwrap().status(),
        200,
        "a miss for queued layers joins them"
    );
    assert_eq!(busy.await.unwrap(), 200);
    let metrics = client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("layercake_rejected_total{reason=\"render-queue\"}"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn an_upload_over_the_pixel_budget_is_refused_from_its_header() {
    let server = Server::start(settings(), Arc::new(Counting::new())).await;
    let client = reqwest::Client::new();
    // A real 20000×20000 PNG of one colour: 1.5 GB of pixels in a small file.
    let mut png = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut png, 20_000, 20_000);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_compression(png::Compression::Fast);
        let mut w = enc.write_header().unwrap();
        let mut stream = w.stream_writer().unwrap();
        let row = vec![0u8; 20_001];
        use std::io::Write;
        for _ in 0..20_000 {
            stream.write_all(&row[1..]).unwrap();
        }
        stream.finish().unwrap();
    }
    assert!(png.len() < 2_000_000, "{} bytes", png.len());
    let part = reqwest::multipart::Part::bytes(png).file_name("bomb.png");
    let r = client
        .post(server.url("/api/files"))
        .multipart(reqwest::multipart::Form::new().part("files", part))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let e: Value = r.json().await.unwrap();
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("20000x20000"),
        "{e}"
    );
    // An ordinary image still uploads.
    let f = upload(
        &client,
        &server.base,
        "ok.png",
        common::solid_png(8, 8, [1, 2, 3, 255]),
    )
    .await;
    assert!(f["id"].is_string());
    server.stop().await;
}

#[tokio::test]
async fn metrics_health_readiness_and_request_ids() {
    let renderer = Arc::new(Counting::new());
    let server = Server::start(settings(), renderer.clone()).await;
    let client = reqwest::Client::new();
    let scrape = || async {
        client
            .get(server.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    const HIT: &str =
        "layercake_cache_requests_total{cache=\"composite\",tier=\"memory\",result=\"hit\"}";
    const MISS: &str =
        "layercake_cache_requests_total{cache=\"composite\",tier=\"memory\",result=\"miss\"}";
    const RENDERED: &str = "layercake_renders_total{result=\"success\"}";
    // The recorder is the test process's: other tests move it too, so the
    // counters are checked to move by at least this test's own requests.
    let before = scrape().await;
    let url = server.url(&image_url(&json!({"Pillows": "Teal"}), "&width=30"));
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    let after_miss = scrape().await;
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    let text = scrape().await;
    let rendered = renderer.total() as f64;
    assert!(rendered >= 1.0);
    assert!(metric(&after_miss, MISS) >= metric(&before, MISS) + 1.0);
    assert!(metric(&after_miss, RENDERED) >= metric(&before, RENDERED) + rendered);
    assert!(metric(&text, HIT) >= metric(&after_miss, HIT) + 1.0);
    // Every metric says what it is.
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split_whitespace().nth(2).unwrap();
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} has no # HELP"
        );
    }
    for needle in [
        "layercake_cache_requests_total{cache=\"composite\",tier=\"memory\",result=\"hit\"}",
        "layercake_cache_requests_total{cache=\"composite\",tier=\"memory\",result=\"miss\"}",
        "layercake_cache_requests_total{cache=\"layer\",tier=\"store\",result=\"miss\"}",
        "layercake_renders_total{result=\"success\"}",
        "layercake_http_requests_total{route=\"/api/fast-compositor\",method=\"GET\",status=\"200\"}",
        "layercake_http_request_duration_seconds_bucket",
        "layercake_queue_wait_seconds_bucket",
        "layercake_queue_depth{status=\"pending\"}",
        "layercake_cache_bytes{cache=\"composites\"}",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        assert!(line.starts_with("layercake_"), "{line}");
    }
    let r = client.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = client.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let r = client
        .get(server.url("/api/layers"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-me-42");
    server.stop().await;
}

#[tokio::test]
async fn format_auto_follows_accept_and_varies_on_it() {
    let mut s = settings();
    s.compose.avif_budget_ms = 600_000;
    let server = Server::start(s, Arc::new(Counting::new())).await;
    let client = reqwest::Client::new();
    let url = server.url(&image_url(
        &json!({"Body": "Forest"}),
        "&width=96&format=auto",
    ));
    let cases = [
        (
            "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8",
            "image/avif",
        ),
        (
            "image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5",
            "image/avif",
        ),
        (
            "image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5",
            "image/webp",
        ),
        ("*/*", "image/png"),
        ("image/jpeg,image/png;q=0.5", "image/jpeg"),
    ];
    let mut etags = std::collections::HashSet::new();
    for (accept, want) in cases {
        let r = client
            .get(&url)
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], want, "{accept}");
        assert_eq!(r.headers()["vary"], "Accept");
        let ct = r.headers()["content-type"].clone();
        let etag = r.headers()["etag"].to_str().unwrap().to_string();
        let bytes = r.bytes().await.unwrap();
        assert_eq!(
            layercake::compose::Format::sniff(&bytes).map(|f| f.content_type()),
            Some(ct.to_str().unwrap()),
            "the bytes are what the header says"
        );
        etags.insert(etag);
    }
    assert_eq!(
        etags.len(),
        4,
        "one representation per format (Chrome and Safari share AVIF)"
    );
    server.stop().await;
}

#[tokio::test]
async fn an_avif_over_its_time_budget_answers_webp_then_caches_the_avif() {
    let mut s = settings();
    s.compose.avif_budget_ms = 0;
    let server = Server::start(s, Arc::new(Counting::new())).await;
    let client = reqwest::Client::new();
    let url = server.url(&image_url(
        &json!({"Body": "Dove"}),
        "&width=200&format=avif",
    ));
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-layercake-cache"], "miss-fallback");
    assert_eq!(r.headers()["content-type"], "image/webp");
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(r.headers()["etag"].to_str().unwrap().ends_with("-webp\""));
    let mut guard = common::Guard::new();
    loop {
        let r = client.get(&url).send().await.unwrap();
        if r.headers()["content-type"] == "image/avif" {
            let from = r.headers()["x-layercake-cache"]
                .to_str()
                .unwrap()
                .to_string();
            assert!(from.starts_with("hit-"), "{from}");
            break;
        }
        // Meanwhile the same stand-in, without composing again.
        assert_eq!(r.headers()["x-layercake-cache"], "miss-fallback");
        guard.wait("the AVIF landed").await;
    }
    server.stop().await;
}

#[tokio::test]
async fn composes_beyond_the_waiting_bound_get_429_while_hits_answer() {
    // One compose at a time, none may wait: concurrent misses whose layers
    // are all cached contend only for the compose slot.
    let mut s = settings();
    s.compose.concurrency = 1;
    s.compose.max_waiting = 0;
    let server = Server::start(s, Arc::new(Counting::new())).await;
    let client = reqwest::Client::new();
    let hit = server.url(&image_url(&json!({}), "&width=1200&format=png"));
    assert_eq!(client.get(&hit).send().await.unwrap().status(), 200);
    // Same layers, twelve sizes: twelve composes of a 1200 px canvas.
    let urls: Vec<String> = (0..12)
        .map(|i| {
            server.url(&image_url(
                &json!({}),
                &format!("&width={}&format=webp", 1100 + i),
            ))
        })
        .collect();
    let answers = futures::future::join_all(urls.iter().map(|u| client.get(u).send())).await;
    let statuses: Vec<u16> = answers
        .into_iter()
        .map(|a| a.unwrap().status().as_u16())
        .collect();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    assert!(statuses.contains(&429), "no room to wait: {statuses:?}");
    assert!(
        statuses.contains(&200),
        "one at a time still runs: {statuses:?}"
    );
    let r = client.get(&hit).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-layercake-cache"], "hit-memory");
    server.stop().await;
}

#[tokio::test]
async fn pages_never_publish_a_private_token() {
    let server = Server::start(settings(), Arc::new(Counting::new())).await;
    let client = reqwest::Client::new();
    let tokens = &server.app.tokens();
    let (private, _) = tokens.create(None, "ci", false, &[]).await.unwrap();
    let (public, _) = tokens
        .create(None, "shop", true, &["https://shop.example".into()])
        .await
        .unwrap();
    let page = |server: &Server, path: &str, token: &str| {
        let sep = if path.contains('?') { '&' } else { '?' };
        server.url(&format!("{path}{sep}bearer_token={token}"))
    };
    let spin = format!("/embed/spin?assetId={SOFA}");
    let carousel = format!("/embed/carousel?assetId={SOFA}");
    for path in ["/", spin.as_str(), carousel.as_str()] {
        // A private token: refused, and a browser is told what to do.
        let r = client
            .get(page(&server, path, &private))
            .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let body = r.text().await.unwrap();
        assert!(
            body.contains("public token") && !body.contains(&private),
            "{path}: {body}"
        );
        // A public token is made to be in pages: carried into the URLs.
        let r = client
            .get(page(&server, path, &public))
            .header("origin", "https://shop.example")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let body = r.text().await.unwrap();
        assert!(body.contains(&format!("bearer_token={public}")), "{path}");
    }
    // No token at all: a browser gets a page saying how to open it, any
    // other client the JSON error.
    let r = client
        .get(server.url("/"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("?bearer_token="));
    let r = client.get(server.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    server.stop().await;

    // With signing keys the page signs its URLs instead of copying the token.
    let mut s = settings();
    s.signing.keys = vec!["k".repeat(32)];
    let server = Server::start(s, Arc::new(Counting::new())).await;
    let (private, _) = server
        .app
        .tokens()
        .create(None, "ci", false, &[])
        .await
        .unwrap();
    let r = client
        .get(page(&server, "/", &private))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(
        !body.contains(&private),
        "the private token is not in the page"
    );
    assert!(body.contains("signature="), "the URLs are signed");
    server.stop().await;
}
