//! The edge as an attacker tries it (issue "least privilege and safe
//! networking at the edge"): each test sends the attack to the real server
//! (the router behind `http::serve`, on loopback) and checks the answer,
//! and that an ordinary hit still answers during and after it.
//!
//! - a public token reads only what a storefront shows;
//! - webhooks reach no internal address (end to end only with loopback
//!   addresses; the private, link-local and public ranges are covered by
//!   the classifier's unit tests, with resolution stubbed), are capped per
//!   org, and share delivery slots fairly;
//! - slow and idle clients are timed out, and connections past the cap are
//!   refused at once;
//! - development mode takes no `text/plain` body, no foreign `Host` and no
//!   foreign `Origin`;
//! - 5xx bodies say a fixed sentence and the request id; `/readyz` shows
//!   details only to a private token or on the ops address.

mod common;

use common::{
    Counting, SOFA, Server, get_json, image_url, settings, solid_png, status_and_body, upload,
};
use layercake::config::{BackendSettings, Settings};
use layercake::meta::{WebhookRow, Window};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn hit(client: &reqwest::Client, server: &Server, token: Option<&str>) -> u16 {
    let mut r = client.get(server.url(&image_url(&json!({}), "&width=40")));
    if let Some(t) = token {
        r = r.bearer_auth(t).header("origin", "https://shop.example");
    }
    r.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn a_public_token_reads_only_what_a_storefront_shows() {
    let server = Server::start(settings(), Arc::new(Counting::new())).await;
    let client = reqwest::Client::new();
    // Development mode: render a configuration (its layers get files) and
    // save one with an attachment.
    assert_eq!(hit(&client, &server, None).await, 200);
    let form = reqwest::multipart::Form::new()
        .text("productId", SOFA)
        .text("variant", json!({"Pillows": "Teal"}).to_string())
        .text("customerId", "customer-42")
        .part(
            "invoice.png",
            reqwest::multipart::Part::bytes(solid_png(4, 4, [1, 2, 3, 255]))
                .file_name("invoice.png"),
        );
    let (status, saved) = status_and_body(
        client
            .post(server.url("/api/configurations"))
            .multipart(form),
    )
    .await;
    assert_eq!(status, 200, "{saved}");
    let attachment = saved["attachments"]["invoice.png"]
        .as_str()
        .unwrap()
        .to_string();
    let (id, short) = (
        saved["id"].as_str().unwrap().to_string(),
        saved["shortId"].as_str().unwrap().to_string(),
    );

    let tokens = &server.app.tokens();
    let (private, _) = tokens.create(None, "ci", false, &[]).await.unwrap();
    let (public, _) = tokens
        .create(None, "shop", true, &["https://shop.example".into()])
        .await
        .unwrap();
    // The public token with its own origin, as any client can forge it.
    let public_get = |path: &str| {
        client
            .get(server.url(path))
            .bearer_auth(&public)
            .header("origin", "https://shop.example")
    };
    for path in [
        "/api/configurations".to_string(),
        format!("/api/files/{attachment}"),
        format!("/api/files/{attachment}/content"),
        "/api/jobs".to_string(),
        "/api/jobs/runs".to_string(),
        "/api/jobs/tasks".to_string(),
        "/api/webhooks".to_string(),
    ] {
        let (status, e) = status_and_body(public_get(&path)).await;
        assert_eq!(status, 403, "{path}: {e}");
        assert_eq!(e["error"]["code"], "forbidden", "{path}");
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .contains("private token"),
            "{path}: {e}"
        );
    }
    // What a storefront shows.
    for path in [
        format!("/api/configurations/{id}"),
        format!("/api/configurations/{short}"),
        "/api/layers".to_string(),
        "/api/assets".to_string(),
        format!("/api/carousel?assetId={SOFA}"),
    ] {
        let (status, body) = status_and_body(public_get(&path)).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let layers = public_get("/api/layers")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let layer_file = layers["layers"][0]["fileId"].as_str().unwrap();
    let r = public_get(&format!("/api/files/{layer_file}/content"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "a layer's image is a storefront's");
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(hit(&client, &server, Some(&public)).await, 200);
    // The private token still lists them.
    let r = client
        .get(server.url("/api/configurations"))
        .bearer_auth(&private)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let listed: Value = r.json().await.unwrap();
    assert_eq!(listed["configurations"][0]["customerId"], "customer-42");
    server.stop().await;
}

/// A receiver on 127.0.0.1 that counts deliveries; with `gate`, each waits
/// for a permit before it answers.
struct Receiver {
    url: String,
    got: Arc<AtomicUsize>,
    gate: Option<Arc<tokio::sync::Semaphore>>,
}

async fn receiver(gated: bool) -> Receiver {
    let got = Arc::new(AtomicUsize::new(0));
    let gate = gated.then(|| Arc::new(tokio::sync::Semaphore::new(0)));
    let (g, w) = (Arc::clone(&got), gate.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let (g, w) = (Arc::clone(&g), w.clone());
            async move {
                g.fetch_add(1, Ordering::SeqCst);
                if let Some(w) = w {
                    w.acquire().await.unwrap().forget();
                }
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver {
        url: format!("http://{addr}/hook"),
        got,
        gate,
    }
}

/// A webhook row written straight to the store: what a row saved before
/// this policy (or under another setting) looks like to the dispatcher.
async fn stored_hook(server: &Server, org: uuid::Uuid, address: &str) -> uuid::Uuid {
    let now = server.app.meta().now();
    let row = WebhookRow {
        id: uuid::Uuid::new_v4(),
        org_id: org,
        topic: "*".into(),
        address: address.into(),
        filter: "{}".into(),
        secret: "0123456789abcdef0123".into(),
        created_at: now,
        updated_at: now,
        deleted_at: None,
    };
    server.app.meta().insert_webhook(&row).await.unwrap();
    row.id
}

const WINDOW: Window = Window {
    offset: 0,
    limit: 100,
    descending: false,
};

#[tokio::test]
async fn webhooks_to_loopback_are_refused_when_saved_and_when_delivered() {
    let server = Server::start(settings(), Arc::new(Counting::new())).await;
    let client = reqwest::Client::new();
    let rx = receiver(false).await;
    let port = rx
        .url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    for address in [
        rx.url.clone(),
        format!("http://127.9.8.7:{port}/hook"),
        format!("http://[::1]:{port}/hook"),
        format!("http://localhost:{port}/hook"),
        format!("http://api.localhost:{port}/hook"),
        format!("http://2130706433:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
    ] {
        let (status, e) = status_and_body(
            client
                .post(server.url("/api/webhooks"))
                .json(&json!({"topic": "*", "address": address})),
        )
        .await;
        assert_eq!(status, 422, "{address}: {e}");
        let msg = e["error"]["message"].as_str().unwrap();
        assert!(
            msg.starts_with("address: ") && msg.contains("loopback"),
            "{address}: {msg}"
        );
    }
    let listed = get_json(&client, &server.url("/api/webhooks"), 200).await;
    assert_eq!(listed["count"], 0, "nothing was stored");

    // Rows that got in before: the literal address and a name that
    // resolves to loopback are both refused at delivery, with no retry.
    let org = layercake::meta::DEFAULT_ORG;
    let literal = stored_hook(&server, org, &rx.url).await;
    let named = stored_hook(&server, org, &format!("http://localhost:{port}/hook")).await;
    server
        .app
        .webhooks()
        .emit(org, "job.stopped", json!({"id": "x"}))
        .await;
    let mut guard = common::Guard::new();
    for hook in [literal, named] {
        loop {
            let (_, ds) = server.app.meta().deliveries(hook, WINDOW).await.unwrap();
            if ds.len() == 1 && ds[0].status == layercake::meta::DeliveryStatus::Failed {
                assert_eq!(ds[0].attempts, 1, "a refusal is not retried");
                let attempts = server.app.meta().attempts(ds[0].id).await.unwrap();
                let error = attempts[0].error.clone().unwrap_or_default();
                assert!(
                    error.starts_with("refused: ") && error.contains("loopback"),
                    "{error}"
                );
                break;
            }
            guard
                .wait(&format!("the refusal of hook {hook}: {ds:?}"))
                .await;
        }
    }
    assert_eq!(
        rx.got.load(Ordering::SeqCst),
        0,
        "the receiver was never reached"
    );
    assert_eq!(hit(&client, &server, None).await, 200);
    server.stop().await;

    // The operator's setting lets loopback through, saved and delivered.
    let mut s = settings();
    s.webhooks.allow_private_addresses = true;
    let server = Server::start(s, Arc::new(Counting::new())).await;
    let (status, e) = status_and_body(
        client
            .post(server.url("/api/webhooks"))
            .json(&json!({"topic": "*", "address": format!("http://localhost:{port}/hook")})),
    )
    .await;
    assert_eq!(status, 200, "{e}");
    server
        .app
        .webhooks()
        .emit(org, "job.stopped", json!({"id": "y"}))
        .await;
    common::eventually("delivered with the setting", || async {
        rx.got.load(Ordering::SeqCst) >= 1
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn webhooks_are_capped_per_org() {
    let mut s = settings();
    s.webhooks.max_per_org = 3;
    let server = Server::start(s, Arc::new(Counting::new())).await;
    let client = reqwest::Client::new();
    let create = || {
        client
            .post(server.url("/api/webhooks"))
            .json(&json!({"topic": "*", "address": "https://hooks.example/x"}))
    };
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (status, h) = status_and_body(create()).await;
        assert_eq!(status, 200, "{h}");
        ids.push(h["webhook"]["id"].as_str().unwrap().to_string());
    }
    let (status, e) = status_and_body(create()).await;
    assert_eq!(status, 422, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("webhooks.max_per_org (3)"),
        "{e}"
    );
    let r = client
        .delete(server.url(&format!("/api/webhooks/{}", ids[0])))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(status_and_body(create()).await.0, 200, "room again");
    let (status, e) =
        status_and_body(client.post(server.url(&format!("/api/webhooks/{}/restore", ids[0]))))
            .await;
    assert_eq!(status, 422, "a restore counts like a new one: {e}");
    server.stop().await;
}

#[tokio::test]
async fn one_orgs_slow_receivers_do_not_hold_up_another_orgs_deliveries() {
    let mut s = settings();
    s.webhooks.allow_private_addresses = true;
    s.webhooks.concurrency = 4;
    s.webhooks.per_org_concurrency = 2;
    s.webhooks.timeout_secs = 120;
    let server = Server::start(s, Arc::new(Counting::new())).await;
    let (slow_org, quick_org) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let slow = receiver(true).await;
    let quick = receiver(false).await;
    stored_hook(&server, slow_org, &slow.url).await;
    stored_hook(&server, quick_org, &quick.url).await;
    for i in 0..12 {
        server
            .app
            .webhooks()
            .emit(slow_org, "job.stopped", json!({"n": i}))
            .await;
    }
    // The slow org's deliveries are due first and hang in its receiver.
    common::eventually("the slow receiver called twice", || async {
        slow.got.load(Ordering::SeqCst) >= 2
    })
    .await;
    server
        .app
        .webhooks()
        .emit(quick_org, "job.stopped", json!({"n": 0}))
        .await;
    // The slow org's receiver holds its deliveries until released below:
    // one that waited behind them would never come.
    common::eventually(
        "the other org's delivery (waiting behind the slow org's?)",
        || async { quick.got.load(Ordering::SeqCst) >= 1 },
    )
    .await;
    assert_eq!(
        slow.got.load(Ordering::SeqCst),
        2,
        "the slow org holds no more than its share of the slots"
    );
    // Released, the slow org's deliveries all go through, two at a time.
    slow.gate.as_ref().unwrap().add_permits(12);
    common::eventually("all 12 of the slow org's deliveries", || async {
        slow.got.load(Ordering::SeqCst) >= 12
    })
    .await;
    server.stop().await;
}

/// Reads `socket` until the server closes it (EOF or reset).
async fn until_closed(socket: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    while let Ok(n) = socket.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}

#[tokio::test]
async fn slow_and_idle_clients_are_timed_out_and_excess_connections_refused() {
    let mut s = settings();
    s.http.header_read_timeout_secs = 2;
    s.http.max_connections = 40;
    let server = Server::start(s, Arc::new(Counting::new())).await;
    let addr = server.base.trim_start_matches("http://").to_string();
    let client = reqwest::Client::new();
    assert_eq!(hit(&client, &server, None).await, 200);

    // 30 connections that dribble their headers a byte at a time, each
    // byte after a wait of at least 300 ms for an answer: the request would
    // take them half a minute, and never ends.
    const REQUEST: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    let mut dribblers = Vec::new();
    for _ in 0..30 {
        let addr = addr.clone();
        // How many bytes got through before the server closed the
        // connection; None if it never did.
        dribblers.push(tokio::spawn(async move {
            let mut socket = TcpStream::connect(&addr).await.unwrap();
            for (sent, b) in REQUEST.iter().enumerate() {
                if socket.write_all(&[*b]).await.is_err() {
                    return Some(sent);
                }
                let mut buf = [0u8; 256];
                let read = tokio::time::timeout(Duration::from_millis(300), socket.read(&mut buf));
                if let Ok(Ok(0) | Err(_)) = read.await {
                    return Some(sent + 1);
                }
            }
            None
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        hit(&client, &server, None).await,
        200,
        "a hit during the attack"
    );
    // Closed by the header timeout (2 s), not at the end of the request:
    // at 300 ms or more a byte, no more than a third of it (10 s' worth)
    // got through, however slow the machine.
    for d in dribblers {
        let sent = d.await.unwrap();
        assert!(
            sent.is_some_and(|n| n < REQUEST.len() / 3),
            "a dribbling connection outlived the header timeout: {sent:?} of {} bytes sent",
            REQUEST.len()
        );
    }

    // An idle keep-alive connection is closed by the same clock.
    let mut socket = TcpStream::connect(&addr).await.unwrap();
    socket
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = socket.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    // Nothing else closes an idle connection: kept open, it would hang.
    common::finishes(
        "the idle keep-alive connection closed",
        until_closed(&mut socket),
    )
    .await;

    // At the cap, one more connection is answered 503 at once, while the
    // client already connected goes on being served.
    let pooled = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    assert_eq!(hit(&pooled, &server, None).await, 200);
    let mut idle = Vec::new();
    for _ in 0..39 {
        idle.push(TcpStream::connect(&addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Refused without a request: the server answers and closes (the read
    // reaches its end), it does not hold the connection for a slot.
    let mut extra = TcpStream::connect(&addr).await.unwrap();
    let mut answer = Vec::new();
    common::finishes(
        "the refused connection's end",
        extra.read_to_end(&mut answer),
    )
    .await
    .unwrap();
    let answer = String::from_utf8_lossy(&answer).to_string();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    let e: Value = serde_json::from_str(body).unwrap();
    assert_eq!(e["error"]["code"], "unavailable");
    assert_eq!(
        hit(&pooled, &server, None).await,
        200,
        "the served connection goes on"
    );
    drop(idle);
    // The idle ones time out (or were dropped): new connections are served.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hit(&reqwest::Client::new(), &server, None).await, 200);
    server.stop().await;
}

#[tokio::test]
async fn development_mode_is_not_reachable_from_a_browser() {
    let server = Server::start(settings(), Arc::new(Counting::new())).await;
    let client = reqwest::Client::new();
    let hook = json!({"topic": "*", "address": "https://hooks.example/x"}).to_string();
    // A cross-site form or fetch can send text/plain without a preflight.
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut r = client.post(server.url("/api/webhooks")).body(hook.clone());
        if let Some(c) = content_type {
            r = r.header("content-type", c);
        }
        let (status, e) = status_and_body(r).await;
        assert_eq!(status, 415, "{content_type:?}: {e}");
        assert_eq!(e["error"]["code"], "unsupported-media-type");
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .contains("application/json"),
            "{e}"
        );
    }
    assert_eq!(
        get_json(&client, &server.url("/api/webhooks"), 200).await["count"],
        0,
        "nothing was created"
    );
    // DNS rebinding: the page's own name in Host.
    for host in [
        "evil.example",
        "evil.example:8080",
        "localhost.evil.example",
        "10.0.0.1",
    ] {
        let (status, e) =
            status_and_body(client.get(server.url("/api/assets")).header("host", host)).await;
        assert_eq!(status, 403, "{host}: {e}");
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("Host: "),
            "{e}"
        );
    }
    for host in ["localhost", "localhost:8080", "127.0.0.1", "[::1]:8080"] {
        let r = client
            .get(server.url("/api/assets"))
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{host}");
    }
    // Another site's page posting a form (multipart needs no preflight).
    let form = || {
        reqwest::multipart::Form::new().part(
            "files",
            reqwest::multipart::Part::bytes(b"x".to_vec()).file_name("a.txt"),
        )
    };
    let (status, e) = status_and_body(
        client
            .post(server.url("/api/files"))
            .header("origin", "https://evil.example")
            .multipart(form()),
    )
    .await;
    assert_eq!(status, 403, "{e}");
    let r = client
        .post(server.url("/api/files"))
        .header("origin", "http://localhost:3000")
        .multipart(form())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "a page on loopback may");
    assert_eq!(hit(&client, &server, None).await, 200);

    // With a token, Host is the operator's business (a CDN, any name).
    let (private, _) = server
        .app
        .tokens()
        .create(None, "ci", false, &[])
        .await
        .unwrap();
    let r = client
        .get(server.url("/api/assets"))
        .header("host", "images.shop.example")
        .bearer_auth(&private)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // ...but bodies are still JSON only.
    let (status, _) = status_and_body(
        client
            .post(server.url("/api/webhooks"))
            .bearer_auth(&private)
            .header("content-type", "text/plain")
            .body(hook),
    )
    .await;
    assert_eq!(status, 415);
    server.stop().await;
}

/// Settings whose renderer fails with a secret on stderr; the folder of its
/// script lives as long as the returned guard.
fn failing_backend() -> (Settings, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("render.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\ncat > /dev/null\necho 'SECRET-STDERR cannot open /opt/render/private.blend' >&2\nexit 3\n",
    )
    .unwrap();
    let mut s = settings();
    s.jobs.max_attempts = 1;
    s.render.backends.insert(
        "script".into(),
        BackendSettings {
            kind: "command".into(),
            command: vec!["sh".into(), script.display().to_string()],
            url: String::new(),
            timeout_secs: Some(20),
            retries: 0,
            pass_env: Vec::new(),
            ..Default::default()
        },
    );
    s.render.backend = "script".into();
    (s, dir)
}

#[tokio::test]
async fn error_bodies_leak_nothing_and_readiness_details_need_a_private_token() {
    let (settings, _script) = failing_backend();
    let server = Server::start(settings, Arc::new(Counting::new())).await;
    let client = reqwest::Client::new();
    let r = client
        .get(server.url(&image_url(&json!({"Body": "Navy"}), "&width=100")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let text = r.text().await.unwrap();
    assert!(
        !text.contains("SECRET") && !text.contains("/opt/render"),
        "{text}"
    );
    assert!(!text.contains("render.sh"), "{text}");
    let e: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(e["error"]["code"], "render-failed");
    assert_eq!(e["error"]["requestId"], id.as_str());
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("the render failed")
    );
    // The cause is on the job's runs, for a private caller.
    let runs = get_json(&client, &server.url("/api/jobs/runs"), 200).await;
    assert!(runs.to_string().contains("SECRET-STDERR"), "{runs}");

    // Errors made outside the handlers get the same shape.
    let (status, e) = status_and_body(client.delete(server.url("/api/layers"))).await;
    assert_eq!(status, 405);
    assert_eq!(e["error"]["code"], "method-not-allowed");
    // ...also with a form to a form route (the media-type guard leaves it).
    let form = reqwest::multipart::Form::new().part(
        "files",
        reqwest::multipart::Part::bytes(b"x".to_vec()).file_name("a.txt"),
    );
    let (status, e) = status_and_body(client.put(server.url("/api/files")).multipart(form)).await;
    assert_eq!(status, 405, "{e}");
    assert_eq!(e["error"]["code"], "method-not-allowed");
    let (status, e) = status_and_body(client.get(server.url("/no/such/route"))).await;
    assert_eq!(status, 404);
    assert_eq!(e["error"]["code"], "not-found");

    let (private, _) = server
        .app
        .tokens()
        .create(None, "ci", false, &[])
        .await
        .unwrap();
    let (status, ready) = status_and_body(client.get(server.url("/readyz"))).await;
    assert_eq!(status, 200);
    assert_eq!(ready, json!({"status": "ready"}), "no details for anyone");
    let (status, ready) =
        status_and_body(client.get(server.url("/readyz")).bearer_auth(&private)).await;
    assert_eq!(status, 200);
    assert!(ready["store"]["url"].is_string(), "{ready}");
    let (status, e) = status_and_body(client.get(server.url("/metrics"))).await;
    assert_eq!(status, 403, "metrics need a private token here: {e}");
    let metrics = client
        .get(server.url("/metrics"))
        .bearer_auth(&private)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("layercake_http_requests_total"));
    assert!(!metrics.contains("file://") && !metrics.contains("SECRET"));

    // The ops address shows details to whoever can reach it.
    let ops = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ops_url = format!("http://{}", ops.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(layercake::http::serve_ops(
        ops,
        Arc::clone(&server.app),
        async move {
            let _ = rx.await;
        },
    ));
    let ready = get_json(&client, &format!("{ops_url}/readyz"), 200).await;
    assert!(ready["store"]["url"].is_string(), "{ready}");
    let r = client
        .get(format!("{ops_url}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the ops address answers anyone");
    let (status, _) = status_and_body(client.get(format!("{ops_url}/api/layers"))).await;
    assert_eq!(status, 404, "the ops address serves only ops routes");
    let _ = tx.send(());
    task.await.unwrap().unwrap();
    server.stop().await;
}

#[tokio::test]
async fn a_served_upload_is_read_by_its_private_owner() {
    // The counterpart of the public rule: nothing changed for private callers.
    let server = Server::start(settings(), Arc::new(Counting::new())).await;
    let client = reqwest::Client::new();
    let f = upload(&client, &server.base, "notes.txt", b"hello".to_vec()).await;
    let (private, _) = server
        .app
        .tokens()
        .create(None, "ci", false, &[])
        .await
        .unwrap();
    let r = client
        .get(server.url(&format!("/api/files/{}/content", f["id"].as_str().unwrap())))
        .bearer_auth(&private)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"hello");
    server.stop().await;
}
