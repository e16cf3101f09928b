//! A new size or format of an image already made: resized from the
//! flattened stack the compositor kept (`cache.flattened_bytes`), not
//! stacked from its layers again, to exactly the pixels stacking again
//! gives; a different crop or configuration is a stack of its own.
//!
//! One test in this file: the metrics recorder is the process's, so the
//! counters read here move only with this test's requests.

mod common;

use common::{Counting, Server, image_url, metric, settings};
use serde_json::json;
use std::sync::Arc;

const HIT: &str =
    "layercake_cache_requests_total{cache=\"flattened\",tier=\"memory\",result=\"hit\"}";
const MISS: &str =
    "layercake_cache_requests_total{cache=\"flattened\",tier=\"memory\",result=\"miss\"}";

async fn fetch(client: &reqwest::Client, url: &str) -> (String, Vec<u8>) {
    let r = client.get(url).send().await.expect("request");
    assert_eq!(r.status(), 200, "{url}");
    let cache = r.headers()["x-layercake-cache"]
        .to_str()
        .unwrap()
        .to_owned();
    (cache, r.bytes().await.unwrap().to_vec())
}

async fn counts(client: &reqwest::Client, server: &Server) -> (f64, f64) {
    let text = client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    (metric(&text, HIT), metric(&text, MISS))
}

#[tokio::test]
async fn a_new_size_is_resized_from_the_kept_stack_to_the_same_pixels() {
    let cfg = json!({"Body": "Navy", "Skirt": true});
    let client = reqwest::Client::new();
    let kept = Server::start(settings(), Arc::new(Counting::new())).await;

    let (_, first) = fetch(
        &client,
        &kept.url(&image_url(&cfg, "&width=300&format=png")),
    )
    .await;
    let (hits, misses) = counts(&client, &kept).await;
    assert_eq!(
        (hits, misses),
        (0.0, 1.0),
        "the first size stacks the layers"
    );

    let (cache, small) = fetch(
        &client,
        &kept.url(&image_url(&cfg, "&width=200&format=png")),
    )
    .await;
    assert_eq!(cache, "miss", "a new size is still a miss of the composite");
    let (cache, _) = fetch(
        &client,
        &kept.url(&image_url(&cfg, "&width=200&format=webp")),
    )
    .await;
    assert_eq!(cache, "miss");
    assert_eq!(
        counts(&client, &kept).await,
        (2.0, 1.0),
        "another size and another format: both from the kept stack"
    );

    let crop = "&format=png&cropX=150&cropY=420&cropWidth=733&cropHeight=301";
    let (_, cropped) = fetch(&client, &kept.url(&image_url(&cfg, crop))).await;
    fetch(
        &client,
        &kept.url(&image_url(&json!({"Body": "Rust"}), "&width=200")),
    )
    .await;
    assert_eq!(
        counts(&client, &kept).await,
        (2.0, 3.0),
        "a crop and another configuration are stacks of their own"
    );
    kept.stop().await;

    // The same images from a compositor that keeps no stack: the layers
    // stacked for each request give the very same PNG bytes.
    let mut s = settings();
    s.cache.flattened_bytes = 0;
    let fresh = Server::start(s, Arc::new(Counting::new())).await;
    for (extra, bytes) in [
        ("&width=200&format=png", &small),
        (crop, &cropped),
        ("&width=300&format=png", &first),
    ] {
        let (_, again) = fetch(&client, &fresh.url(&image_url(&cfg, extra))).await;
        assert!(
            again == *bytes,
            "{extra}: pixels differ from the kept stack's"
        );
    }
    fresh.stop().await;
}
