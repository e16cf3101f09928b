//! The hit path's I/O. A composite served from memory asks nothing of the
//! metadata store or the blob store, whether the request carries a private
//! token, a public token from an allowed origin, a signature, or a saved
//! configuration's id (counted per request by `telemetry::tally_io`, so
//! background work does not blur the count). Made-up bearer tokens cost at
//! most one read of the token set per second, not one query each.

mod common;

use axum::body::Body;
use common::*;

use layercake::meta::DEFAULT_ORG;
use layercake::service::NewConfiguration;
use layercake::telemetry::{IoCounts, tally_io};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;
use tower::Service;

struct Answer {
    status: u16,
    cache: String,
    io: IoCounts,
}

/// One request through the real router, in this task, with its I/O counted.
async fn call(router: &axum::Router, uri: &str, origin: Option<&str>) -> Answer {
    let mut req = axum::http::Request::get(uri);
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    let req = req.body(Body::empty()).unwrap();
    let mut router = router.clone();
    let ((status, cache), io) = tally_io(async move {
        let res = router.call(req).await.unwrap();
        let status = res.status().as_u16();
        let cache = res
            .headers()
            .get("x-layercake-cache")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        axum::body::to_bytes(res.into_body(), 64 << 20)
            .await
            .unwrap();
        (status, cache)
    })
    .await;
    Answer { status, cache, io }
}

#[tokio::test]
async fn a_memory_hit_asks_nothing_of_the_stores() {
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut s = settings_in(dir.path());
        s.signing.keys = vec!["k".repeat(32)];
        s
    };
    let server = Server::start(config(), Arc::new(Counting::new())).await;
    let app = Arc::clone(&server.app);
    let router = layercake::http::router(Arc::clone(&app));
    let (private, _) = app.tokens().create(None, "ci", false, &[]).await.unwrap();
    let shop = "https://shop.example";
    let (public, _) = app
        .tokens()
        .create(None, "shop", true, &[shop.into()])
        .await
        .unwrap();
    let saved = app
        .configurations()
        .save(
            DEFAULT_ORG,
            NewConfiguration {
                product_id: Some(SOFA.into()),
                variant: Some(json!({"Body": "Rust"})),
                ..NewConfiguration::default()
            },
        )
        .await
        .unwrap();
    let navy = image_url(&json!({"Body": "Navy"}), "&width=120");
    let signed = app.signer().signed_url(
        "/api/fast-compositor",
        image_url(&json!({"Body": "Navy"}), "&width=140")
            .split_once('?')
            .unwrap()
            .1,
    );
    let cases: [(&str, String, Option<&str>); 4] = [
        (
            "private token",
            format!("{navy}&bearer_token={private}"),
            None,
        ),
        (
            "public token",
            format!(
                "{}&bearer_token={public}",
                image_url(&json!({"Body": "Navy"}), "&width=128")
            ),
            Some(shop),
        ),
        ("signed URL", signed, None),
        (
            "configurationId",
            format!(
                "/api/fast-compositor?configurationId={}&width=100&bearer_token={private}",
                saved.short_id
            ),
            None,
        ),
    ];
    for (what, uri, origin) in &cases {
        let first = call(&router, uri, *origin).await;
        assert_eq!(first.status, 200, "{what}: first request");
        for n in 0..3 {
            let hit = call(&router, uri, *origin).await;
            assert_eq!(
                (hit.status, hit.cache.as_str()),
                (200, "hit-memory"),
                "{what}: request {n} after the first"
            );
            assert_eq!(
                hit.io,
                IoCounts::default(),
                "{what}: a memory hit asked the stores (metadata, blob)"
            );
        }
        eprintln!("{what}: first request {:?}, memory hits 0 and 0", first.io);
    }

    // Made-up tokens: unknown to the set in memory. The set is read again
    // at most once a second (telemetry counts each read as one connection).
    let started = Instant::now();
    let mut reads = 0;
    for _ in 0..200 {
        let uri = format!("{navy}&bearer_token={}", uuid::Uuid::new_v4());
        let a = call(&router, &uri, None).await;
        assert_eq!(a.status, 401);
        assert_eq!(a.io.store, 0);
        reads += a.io.meta;
    }
    let seconds = started.elapsed().as_secs();
    eprintln!(
        "200 made-up tokens in {:?}: {reads} reads of the token set",
        started.elapsed()
    );
    assert!(
        reads <= 1 + seconds,
        "{reads} token reads for 200 made-up tokens in {seconds} s"
    );
    // A token created meanwhile works on this node at once.
    let (late, _) = app.tokens().create(None, "late", false, &[]).await.unwrap();
    let a = call(&router, &format!("{navy}&bearer_token={late}"), None).await;
    assert_eq!((a.status, a.io), (200, IoCounts::default()));
    server.app.compositor().flush().await;
    server.stop().await;

    // The count is not blind: after a restart (memory empty), the same
    // requests read the blob store, and the saved configuration and the
    // token set are read from the metadata store once.
    let server = Server::start(config(), Arc::new(Counting::new())).await;
    let router = layercake::http::router(Arc::clone(&server.app));
    let mut colds = Vec::new();
    for (what, uri, origin) in &cases {
        let cold = call(&router, uri, *origin).await;
        colds.push(cold.io);
        assert_eq!(
            (cold.status, cold.cache.as_str()),
            (200, "hit-store"),
            "{what}"
        );
        assert!(
            cold.io.store >= 1,
            "{what}: a store hit counted {:?}",
            cold.io
        );
        let warm = call(&router, uri, *origin).await;
        assert_eq!(
            (warm.cache.as_str(), warm.io),
            ("hit-memory", IoCounts::default()),
            "{what}"
        );
    }
    eprintln!("after a restart, first requests: {colds:?}");
    assert!(colds[0].meta >= 1, "the token set was read: {:?}", colds[0]);
    assert!(
        colds[3].meta >= 1,
        "the saved configuration was read: {:?}",
        colds[3]
    );
    server.stop().await;
}
