//! No caller can fill the object store or burn CPU by counting sizes (issue
//! "no request can exhaust or escape the process", item 3).
//!
//! - A public token's unsigned URL, which anyone can change, gets only the
//!   sizes of `sizes.ladder`, qualities in steps of `sizes.quality_step` and
//!   crops on a `sizes.crop_step` grid: counting widths, qualities or crop
//!   offsets makes a handful of composites, not one per request. Signed
//!   URLs and private tokens get the exact size; presets work for anyone.
//! - The composites in the object store stay within
//!   `storage.composite_budget_bytes`: past it the least recently used go
//!   (layers never), and an evicted image is simply composed again.
//!
//! What this does not bound: configurations themselves. A Number or Color
//! attribute takes any value in its range, and each value is a new image
//! (and usually new layers, which are never evicted); the render queue's
//! per-org share bounds how fast they come, not how many there are.
//!
//! One test function, so that the process's peak RSS (`VmHWM`, the server
//! runs in this process) is this attack's alone.

mod common;

use common::{Counting, Server, image_url, peak_rss_kib, settings};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;

/// The width and height of a PNG (its IHDR).
fn png_size(b: &[u8]) -> (u32, u32) {
    assert_eq!(&b[1..4], b"PNG", "a PNG");
    let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    (be(16), be(20))
}

async fn get(client: &reqwest::Client, url: &str, token: Option<&str>) -> reqwest::Response {
    let mut r = client.get(url);
    if let Some(t) = token {
        r = r.bearer_auth(t).header("origin", "https://shop.example");
    }
    r.send().await.unwrap()
}

/// `(objects, bytes)` under `prefix` in the object store.
async fn stored(server: &Server, prefix: &str) -> (usize, u64) {
    let all = server.app.store().list(prefix).await.unwrap();
    (all.len(), all.iter().map(|(_, b)| b).sum())
}

#[tokio::test]
async fn counting_sizes_makes_few_composites_and_the_store_keeps_within_its_budget() {
    const BUDGET: u64 = 150_000;
    let mut s = settings();
    s.signing.keys = vec!["k".repeat(32)];
    s.storage.composite_budget_bytes = BUDGET;
    // Sweeps are driven by the test; none runs on its own meanwhile.
    s.storage.composite_sweep_secs = 3600;
    // No memory tier for composites: every repeat is read from the store
    // (so reads are reported), and an evicted one is composed again.
    s.cache.composite_bytes = 0;
    let server = Server::start(s, Arc::new(Counting::new())).await;
    let app = &server.app;
    let (private, _) = app.tokens().create(None, "ci", false, &[]).await.unwrap();
    let (public, _) = app
        .tokens()
        .create(None, "shop", true, &["https://shop.example".into()])
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let ordinary = server.url(&image_url(&json!({}), "&width=320"));
    let hit = || async {
        let r = get(&client, &ordinary, Some(&public)).await;
        r.status().as_u16()
    };
    let ordinary_etag = get(&client, &ordinary, Some(&public)).await.headers()["etag"]
        .to_str()
        .unwrap()
        .trim_matches('"')
        .to_string();
    assert_eq!(hit().await, 200);
    let rss_before = peak_rss_kib(std::process::id());

    // 1. Counting widths 1..=400 with a public token: the ladder's rungs
    //    up to 480 come out, six images in all.
    let mut etags = BTreeSet::new();
    let mut widths = BTreeSet::new();
    for w in 1..=400 {
        let r = get(
            &client,
            &server.url(&image_url(&json!({}), &format!("&width={w}"))),
            Some(&public),
        )
        .await;
        assert_eq!(r.status(), 200, "width={w}");
        etags.insert(r.headers()["etag"].to_str().unwrap().to_string());
        let (got, _) = png_size(&r.bytes().await.unwrap());
        assert!(got >= w, "width={w} rounds up, got {got}");
        widths.insert(got);
    }
    assert_eq!(
        widths.into_iter().collect::<Vec<_>>(),
        vec![64, 128, 160, 240, 320, 480]
    );
    assert_eq!(etags.len(), 6, "400 widths, 6 composites");
    eprintln!(
        "400 widths (public token): 6 composites (peak RSS {} kB)",
        peak_rss_kib(std::process::id())
    );
    assert_eq!(hit().await, 200, "an ordinary hit meanwhile");

    // 2. Counting qualities 1..=100: steps of 5, twenty images.
    let mut qualities = BTreeSet::new();
    for q in 1..=100 {
        let r = get(
            &client,
            &server.url(&image_url(
                &json!({}),
                &format!("&width=64&format=webp&quality={q}"),
            )),
            Some(&public),
        )
        .await;
        assert_eq!(r.status(), 200, "quality={q}");
        qualities.insert(r.headers()["etag"].to_str().unwrap().to_string());
    }
    assert_eq!(qualities.len(), 20, "100 qualities, 20 composites");

    // 3. Counting crop offsets 0..200 (a 300-pixel box): a 64-pixel grid.
    let mut crops = BTreeSet::new();
    for x in 0..200 {
        let r = get(
            &client,
            &server.url(&image_url(
                &json!({}),
                &format!("&width=64&cropX={x}&cropWidth=300&cropHeight=300"),
            )),
            Some(&public),
        )
        .await;
        assert_eq!(r.status(), 200, "cropX={x}");
        crops.insert(r.headers()["etag"].to_str().unwrap().to_string());
    }
    assert!(crops.len() <= 8, "200 crops, {} composites", crops.len());
    eprintln!(
        "100 qualities: {} composites; 200 crop offsets: {} composites (peak RSS {} kB)",
        qualities.len(),
        crops.len(),
        peak_rss_kib(std::process::id())
    );

    // Rounding never turns a size that fits into a 422: a 128x1024 crop at
    // width 500 is 500x4000; its rung (640) would be 640x5120, past
    // http.max_dimension (4096), so it is served as asked.
    let r = get(
        &client,
        &server.url(&image_url(
            &json!({}),
            "&cropWidth=128&cropHeight=1024&width=500",
        )),
        Some(&public),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(png_size(&r.bytes().await.unwrap()), (500, 4000));
    let r = get(
        &client,
        &server.url(&image_url(
            &json!({}),
            "&preset=plp-tile&cropWidth=64&cropHeight=1024",
        )),
        Some(&public),
    )
    .await;
    assert_eq!(r.status(), 422);
    let e: Value = r.json().await.unwrap();
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("preset") && msg.contains("480x7680"),
        "a preset's size past the limit names the preset: {msg}"
    );

    // 4. Exact sizes for who may ask: a private token, a signed URL.
    let odd = image_url(&json!({}), "&width=301");
    let r = get(&client, &server.url(&odd), None).await;
    assert_eq!(r.status(), 401, "no token, no signature");
    let r = client
        .get(server.url(&odd))
        .bearer_auth(&private)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        png_size(&r.bytes().await.unwrap()).0,
        301,
        "a private token's width is exact"
    );
    let query = odd.split_once('?').unwrap().1;
    let signed = app.signer().signed_url("/api/fast-compositor", query);
    let r = get(&client, &server.url(&signed), None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        png_size(&r.bytes().await.unwrap()).0,
        301,
        "a signed URL's width is exact"
    );

    // 5. Presets: named sizes for anyone; a preset and what it sets, never both.
    let r = get(
        &client,
        &server.url(&image_url(&json!({}), "&preset=thumbnail")),
        Some(&public),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(png_size(&r.bytes().await.unwrap()), (160, 160));
    for (extra, needle) in [
        ("&preset=thumbnail&width=300", "sets width"),
        ("&preset=nope", "\"nope\" is not one of plp-tile, thumbnail"),
    ] {
        let r = get(
            &client,
            &server.url(&image_url(&json!({}), extra)),
            Some(&public),
        )
        .await;
        assert_eq!(r.status(), 422, "{extra}");
        let e: Value = r.json().await.unwrap();
        let msg = e["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("preset") && msg.contains(needle),
            "{extra}: {msg}"
        );
    }

    // 6. The budget. A private token asks 20 exact widths: far more
    //    composite bytes than the budget.
    let layers_before = stored(&server, "layers/").await;
    let mut keys = Vec::new();
    for w in 400..420 {
        let r = client
            .get(server.url(&image_url(&json!({}), &format!("&width={w}"))))
            .bearer_auth(&private)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "width={w}");
        keys.push(
            r.headers()["etag"]
                .to_str()
                .unwrap()
                .trim_matches('"')
                .to_string(),
        );
    }
    app.compositor().flush().await;
    let (objects, bytes) = stored(&server, "composites/").await;
    assert!(bytes > 3 * BUDGET, "the attack stored {bytes} bytes");
    // The ordinary image was read since it was written: it is recent.
    assert_eq!(hit().await, 200);
    let budget = app.composite_budget().expect("a budget is set");
    let sweep = budget.sweep().await.unwrap();
    let (left_objects, left_bytes) = stored(&server, "composites/").await;
    eprintln!(
        "before the sweep: {objects} composites, {bytes} bytes; swept {sweep:?}; after: {left_objects} composites, {left_bytes} bytes (budget {BUDGET})"
    );
    assert!(sweep.evicted > 0);
    assert_eq!(left_objects, objects - sweep.evicted as usize);
    // Sizes as stored carry a 40-byte seal the ledger does not count.
    assert!(
        left_bytes <= BUDGET + 40 * left_objects as u64,
        "{left_bytes} bytes left"
    );
    assert_eq!(
        stored(&server, "layers/").await,
        layers_before,
        "layers stay"
    );
    // The least recently used went first; the newest and the one just
    // read stayed.
    // Whether the composite of key (hex) `k` is in the object store.
    let kept = |k: String| async move {
        let all = app.store().list("composites/").await.unwrap();
        all.iter().any(|(p, _)| p.contains(&k))
    };
    assert!(!kept(keys[0].clone()).await, "the oldest is evicted");
    assert!(kept(keys[19].clone()).await, "the newest stays");
    assert!(
        kept(ordinary_etag.clone()).await,
        "the image just read stays"
    );
    assert_eq!(hit().await, 200, "a hit after the sweep");
    // An evicted image is made again, and stored again.
    let r = client
        .get(server.url(&image_url(&json!({}), "&width=400")))
        .bearer_auth(&private)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-layercake-cache"], "miss");
    app.compositor().flush().await;
    assert!(kept(keys[0].clone()).await, "stored again");
    // The next sweep keeps it (the newest) and the total within budget.
    budget.sweep().await.unwrap();
    assert!(kept(keys[0].clone()).await, "the newest stays");
    let (_, left_bytes) = stored(&server, "composites/").await;
    assert!(left_bytes <= BUDGET + 40 * 20, "{left_bytes} bytes left");
    let (_, ledger_bytes) = app.meta().composite_totals().await.unwrap();
    assert!(
        ledger_bytes as u64 <= BUDGET,
        "the ledger counts {ledger_bytes} bytes"
    );

    let rss_after = peak_rss_kib(std::process::id());
    eprintln!("peak RSS: {rss_before} kB before the attacks, {rss_after} kB after");
    assert!(
        rss_after < rss_before + 200 * 1024,
        "peak RSS grew from {rss_before} to {rss_after} kB"
    );
    server.stop().await;
}
