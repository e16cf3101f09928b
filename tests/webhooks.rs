//! Webhooks end to end: a local receiver gets `job.stopped` and
//! `layer.created` deliveries with a valid HMAC signature, a delivery the
//! receiver first answers 500 is retried, every attempt is listed, and the
//! CRUD routes behave as the contract says.

mod common;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use common::{Counting, SOFA, Server, get_json, settings};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
}

impl Receiver {
    /// Serves on 127.0.0.1; answers 500 to the first `fail_first`
    /// `job.stopped` deliveries.
    async fn start(fail_first: usize) -> (Receiver, String) {
        let rx = Receiver::default();
        let r2 = rx.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let rx = r2.clone();
                async move {
                    let mut got = rx.got.lock().unwrap();
                    got.push((headers, body));
                    let stopped = got
                        .iter()
                        .filter(|(h, _)| h["x-layercake-topic"] == "job.stopped")
                        .count();
                    if got.last().unwrap().0["x-layercake-topic"] == "job.stopped"
                        && stopped <= fail_first
                    {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::NO_CONTENT
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (rx, format!("http://{addr}/hook"))
    }

    async fn wait_for(&self, n: usize) -> Vec<(HeaderMap, Bytes)> {
        let mut guard = common::Guard::new();
        loop {
            let got = self.got.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            let topics: Vec<_> = got
                .iter()
                .map(|(h, _)| h["x-layercake-topic"].clone())
                .collect();
            guard
                .wait(&format!("{n} deliveries (got {topics:?})"))
                .await;
        }
    }
}

/// The receivers here listen on 127.0.0.1, which webhooks may reach only
/// with the operator's setting (tests/edge_security.rs checks the refusal).
fn loopback_allowed() -> layercake::config::Settings {
    let mut s = settings();
    s.webhooks.allow_private_addresses = true;
    s
}

fn valid_signature(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let want: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    headers["x-layercake-signature"].to_str().unwrap() == format!("sha256={want}")
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (
        status,
        serde_json::from_slice(&r.bytes().await.unwrap()).unwrap(),
    )
}

#[tokio::test]
async fn job_stopped_is_signed_and_retried_after_a_500() {
    let (receiver, address) = Receiver::start(1).await;
    let mut s = loopback_allowed();
    s.webhooks.backoff_ms = 50;
    let server = Server::start(s, Arc::new(Counting::new())).await;
    let client = reqwest::Client::new();
    let hooks = server.url("/api/webhooks");

    let (status, e) = send(client.post(&hooks).json(&json!({"topic": "job.stopped"}))).await;
    assert_eq!(status, 422);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("address")
    );
    let (status, _) = send(
        client
            .post(&hooks)
            .json(&json!({"topic": "job.nope", "address": address})),
    )
    .await;
    assert_eq!(status, 422);

    let (status, hook) = send(
        client
            .post(&hooks)
            .json(&json!({"topic": "job.stopped", "address": address})),
    )
    .await;
    assert_eq!(status, 200, "{hook}");
    let secret = hook["webhook"]["secret"].as_str().unwrap().to_string();
    assert!(hook["webhook"]["deletedAt"].is_null());
    // Only the body layer's creation, to a second webhook.
    let (_, layer_hook) = send(client.post(&hooks).json(&json!({
        "topic": "layer.created", "address": address, "filter": {"layer": "Body"},
        "secret": "a-secret-of-our-own-choosing"
    })))
    .await;

    let (status, job) = send(client.post(server.url("/api/jobs")).json(&json!({
        "assetId": SOFA, "configurations": [{}], "stageConfigurations": [{"Camera": 0}]
    })))
    .await;
    assert_eq!(status, 200);

    // 1 layer.created + the job.stopped answered 500 + its retry.
    let got = receiver.wait_for(3).await;
    let stopped: Vec<_> = got
        .iter()
        .filter(|(h, _)| h["x-layercake-topic"] == "job.stopped")
        .collect();
    assert_eq!(stopped.len(), 2, "delivered once more after the 500");
    assert_eq!(
        stopped[0].0["x-layercake-delivery"], stopped[1].0["x-layercake-delivery"],
        "a retry is the same delivery"
    );
    for (headers, body) in &stopped {
        assert!(valid_signature(&secret, headers, body));
        assert!(!valid_signature("not-the-secret", headers, body));
        let payload: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(payload["topic"], "job.stopped");
        assert_eq!(payload["data"]["id"], job["id"]);
        assert_eq!(payload["data"]["status"], "stopped");
        assert_eq!(payload["data"]["taskResultSuccesses"], 5);
        assert_eq!(payload["data"]["taskResultFailures"], 0);
    }
    let created: Vec<_> = got
        .iter()
        .filter(|(h, _)| h["x-layercake-topic"] == "layer.created")
        .collect();
    assert_eq!(
        created.len(),
        1,
        "the filter lets only the body layer through"
    );
    let (headers, body) = created[0];
    assert!(valid_signature(
        "a-secret-of-our-own-choosing",
        headers,
        body
    ));
    let payload: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(payload["data"]["layer"], "Body");
    assert_eq!(payload["data"]["jobId"], job["id"]);

    // Every attempt is logged and listable.
    let id = hook["webhook"]["id"].as_str().unwrap();
    let mut guard = common::Guard::new();
    let log = loop {
        let log = get_json(
            &client,
            &server.url(&format!("/api/webhooks/{id}/deliveries")),
            200,
        )
        .await;
        if log["deliveries"][0]["status"] == "delivered" {
            break log;
        }
        guard
            .wait(&format!("the delivery logged as delivered: {log}"))
            .await;
    };
    assert_eq!(log["count"], 1);
    let d = &log["deliveries"][0];
    assert_eq!(d["status"], "delivered", "{d}");
    let codes: Vec<i64> = d["attemptLog"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["statusCode"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, [500, 204]);
    assert!(
        d["attemptLog"][0]["error"]
            .as_str()
            .unwrap()
            .contains("500")
    );
    let _ = layer_hook;
    server.stop().await;
}

#[tokio::test]
async fn webhook_records_update_soft_delete_and_restore() {
    let server = Server::start(loopback_allowed(), Arc::new(Counting::new())).await;
    let client = reqwest::Client::new();
    let hooks = server.url("/api/webhooks");
    let (_, hook) = send(
        client
            .post(&hooks)
            .json(&json!({"topic": "*", "address": "http://127.0.0.1:9/a"})),
    )
    .await;
    let id = hook["webhook"]["id"].as_str().unwrap();
    let one = server.url(&format!("/api/webhooks/{id}"));

    let got = get_json(&client, &one, 200).await;
    assert_eq!(got["webhook"]["address"], "http://127.0.0.1:9/a");
    assert!(
        got["webhook"].get("secret").is_none(),
        "the secret is shown only at creation"
    );

    let (status, updated) = send(
        client
            .put(&one)
            .json(&json!({"address": "http://127.0.0.1:9/b"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(updated["webhook"]["address"], "http://127.0.0.1:9/b");
    assert_eq!(updated["webhook"]["topic"], "*");
    // ...and as the one-item list the published client types it as.
    assert_eq!(updated["webhooks"][0], updated["webhook"]);
    let (status, _) = send(client.put(&one).json(&json!({"address": "mailto:x@y"}))).await;
    assert_eq!(status, 422);

    let (status, deleted) = send(client.delete(&one)).await;
    assert_eq!(status, 200);
    assert!(deleted["webhook"]["deletedAt"].is_string());
    assert_eq!(get_json(&client, &hooks, 200).await["count"], 0);
    assert_eq!(
        get_json(&client, &format!("{hooks}?deleted=true"), 200).await["count"],
        1
    );
    // Not a boolean: refused, not read as false.
    get_json(&client, &format!("{hooks}?deleted=maybe"), 400).await;
    // Gone to reads by id (and its deliveries): only the listing with
    // deleted=true shows it, until it is restored.
    get_json(&client, &one, 404).await;
    get_json(&client, &format!("{one}/deliveries"), 404).await;
    let listed = get_json(&client, &format!("{hooks}?deleted=true"), 200).await;
    assert!(listed["webhooks"][0]["deletedAt"].is_string(), "{listed}");
    let (status, restored) = send(client.post(format!("{one}/restore"))).await;
    assert_eq!(status, 200);
    assert!(restored["webhook"]["deletedAt"].is_null());
    assert_eq!(get_json(&client, &hooks, 200).await["count"], 1);
    get_json(&client, &one, 200).await;

    get_json(
        &client,
        &server.url("/api/webhooks/6f1c7d2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f"),
        404,
    )
    .await;
    get_json(&client, &server.url("/api/webhooks/nope"), 422).await;
    let r = client
        .get(server.url("/api/webhooks/healthcheck"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    server.stop().await;
}
