//! The fast compositor over real HTTP: images, cache behaviour, bad input.

mod common;

use common::{Counting, SOFA, Server, enc, image_url, settings};
use serde_json::json;
use std::sync::Arc;

async fn get(client: &reqwest::Client, url: &str) -> reqwest::Response {
    client.get(url).send().await.expect("request")
}

async fn error_of(resp: reqwest::Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    let cc = resp
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_string());
    assert_eq!(
        cc.as_deref(),
        Some("no-store"),
        "errors are never cacheable"
    );
    let body: serde_json::Value =
        serde_json::from_slice(&resp.bytes().await.unwrap()).expect("JSON error body");
    (
        status,
        body["error"]["code"].as_str().unwrap().into(),
        body["error"]["message"].as_str().unwrap().into(),
    )
}

#[tokio::test]
async fn a_miss_renders_and_the_next_request_is_a_memory_hit() {
    let renderer = Counting::new();
    let server = Server::start(settings(), Arc::new(renderer.clone())).await;
    let client = reqwest::Client::new();
    let url = server.url(&image_url(
        &json!({"Body": "Navy", "Skirt": true}),
        "&width=512&format=png",
    ));

    let first = get(&client, &url).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["content-type"], "image/png");
    assert_eq!(first.headers()["x-layercake-cache"], "miss");
    let etag = first.headers()["etag"].to_str().unwrap().to_string();
    assert!(
        etag.starts_with('"') && etag.len() == 66,
        "strong etag: {etag}"
    );
    let bytes = first.bytes().await.unwrap();
    let img = image::load_from_memory(&bytes).unwrap();
    assert_eq!((img.width(), img.height()), (512, 512));
    let rendered = renderer.total();
    assert_eq!(rendered, 6, "backdrop, shadow, legs, body, skirt, pillows");

    let second = get(&client, &url).await;
    assert_eq!(second.headers()["x-layercake-cache"], "hit-memory");
    assert_eq!(second.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(second.bytes().await.unwrap(), bytes);
    assert_eq!(renderer.total(), rendered, "a hit renders nothing");

    // Same configuration spelled differently: same key, same bytes.
    let same = server.url(&format!(
        "/api/fast-compositor/?assetId={SOFA}&configuration={}&width=512&cacheKey=whatever",
        enc(&json!({"Skirt": true, "Pillows": "Mustard", "Body": "Navy", "Legs": null}))
    ));
    let third = get(&client, &same).await;
    assert_eq!(third.headers()["x-layercake-cache"], "hit-memory");
    assert_eq!(third.headers()["etag"].to_str().unwrap(), etag);

    let revalidate = client
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidate.status(), 304);
    assert_eq!(revalidate.headers()["etag"].to_str().unwrap(), etag);
    assert!(revalidate.headers().contains_key("cache-control"));
    server.stop().await;
}

#[tokio::test]
async fn layers_are_shared_between_configurations() {
    let renderer = Counting::new();
    let server = Server::start(settings(), Arc::new(renderer.clone())).await;
    let client = reqwest::Client::new();
    for body in ["Slate", "Rust", "Forest"] {
        let r = get(
            &client,
            &server.url(&image_url(&json!({"Body": body}), "&width=256")),
        )
        .await;
        assert_eq!(r.status(), 200);
    }
    // 5 layers for the first, then only the body layer is new each time.
    assert_eq!(renderer.total(), 5 + 1 + 1);
    assert_eq!(renderer.max_per_layer(), 1);
    server.stop().await;
}

#[tokio::test]
async fn every_format_fit_crop_and_view_decodes_with_the_right_size() {
    let server = Server::start(settings(), Arc::new(Counting::new())).await;
    let client = reqwest::Client::new();
    let cases = [
        ("&format=jpg&quality=70&width=300", "image/jpeg", (300, 300)),
        (
            "&format=webp&width=300&height=200&imageFitMode=cover",
            "image/webp",
            (300, 200),
        ),
        (
            "&format=png&width=300&height=200&imageFitMode=contain",
            "image/png",
            (300, 200),
        ),
        (
            "&format=png&width=300&height=200&imageFitMode=fitWidth",
            "image/png",
            (300, 200),
        ),
        ("&format=png&height=150", "image/png", (150, 150)),
        (
            "&cropX=100&cropY=200&cropWidth=600&cropHeight=300",
            "image/png",
            (600, 300),
        ),
        (
            "&cropX=100&cropY=200&cropWidth=600&cropHeight=300&width=120",
            "image/png",
            (120, 60),
        ),
        (
            "&stageConfiguration=%7B%22Camera%22%3A3%7D&width=200",
            "image/png",
            (200, 200),
        ),
        // A sliver stretched across the widest output: only the output is resampled.
        (
            "&width=4096&height=1&cropWidth=1&imageFitMode=fitWidth",
            "image/png",
            (4096, 1),
        ),
    ];
    let mut etags = std::collections::HashSet::new();
    for (extra, ctype, size) in cases {
        let r = get(&client, &server.url(&image_url(&json!({}), extra))).await;
        assert_eq!(r.status(), 200, "{extra}");
        assert_eq!(r.headers()["content-type"], ctype, "{extra}");
        assert!(
            etags.insert(r.headers()["etag"].to_str().unwrap().to_string()),
            "{extra}: outputs have distinct keys"
        );
        let img = image::load_from_memory(&r.bytes().await.unwrap()).unwrap();
        assert_eq!((img.width(), img.height()), size, "{extra}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_crop_is_exactly_that_region_of_the_full_image() {
    let server = Server::start(settings(), Arc::new(Counting::new())).await;
    let client = reqwest::Client::new();
    let cfg = json!({"Body": "Oatmeal", "Skirt": true});
    let png = |extra: &str| {
        let url = server.url(&image_url(&cfg, &format!("&format=png{extra}")));
        let client = client.clone();
        async move {
            image::load_from_memory(&get(&client, &url).await.bytes().await.unwrap())
                .unwrap()
                .to_rgba8()
        }
    };
    let full = png("").await;
    let part = png("&cropX=150&cropY=420&cropWidth=733&cropHeight=301").await;
    assert_eq!((part.width(), part.height()), (733, 301));
    for y in 0..301 {
        for x in 0..733 {
            assert_eq!(
                part.get_pixel(x, y),
                full.get_pixel(x + 150, y + 420),
                "({x},{y})"
            );
        }
    }
    // A contain-fit into a wider box pads transparently, centred.
    let boxed = png("&width=400&height=200&imageFitMode=contain").await;
    assert_eq!(
        boxed.get_pixel(0, 100).0[3],
        0,
        "left padding is transparent"
    );
    assert_eq!(
        boxed.get_pixel(399, 100).0[3],
        0,
        "right padding is transparent"
    );
    assert_eq!(
        boxed.get_pixel(200, 100).0[3],
        255,
        "the picture is in the middle"
    );
    assert_eq!(boxed.get_pixel(100, 100).0[3], 255, "and 200 px wide");
    assert_eq!(boxed.get_pixel(99, 100).0[3], 0);
    server.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_4xx_naming_the_problem() {
    let server = Server::start(settings(), Arc::new(Counting::new())).await;
    let client = reqwest::Client::new();
    let q = |s: &str| server.url(&format!("/api/fast-compositor?{s}"));
    let cfg = |v: serde_json::Value| format!("assetId={SOFA}&configuration={}", enc(&v));
    let cases: Vec<(String, u16, &str)> = vec![
        (q(""), 422, "assetId"),
        (q("assetId=not-a-uuid"), 422, "assetId"),
        (
            q("assetId=6f1c7d2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f"),
            404,
            "6f1c7d2e",
        ),
        (
            q(&format!("assetId={SOFA}&configuration=%7B%22Body%22")),
            400,
            "configuration",
        ),
        (q(&cfg(json!({"Colour": "Red"}))), 422, "Colour"),
        (q(&cfg(json!({"Body": "Plaid"}))), 422, "Plaid"),
        (q(&cfg(json!({"Skirt": "yes"}))), 422, "Skirt"),
        (q(&cfg(json!([1, 2]))), 422, "object"),
        (
            q(&format!(
                "assetId={SOFA}&stageConfiguration=%7B%22Camera%22%3A9%7D"
            )),
            422,
            "stageConfiguration",
        ),
        (
            q(&format!("assetId={SOFA}&stageConfiguration=nope")),
            400,
            "stageConfiguration",
        ),
        (q(&format!("assetId={SOFA}&width=abc")), 400, "width"),
        (q(&format!("assetId={SOFA}&width=-5")), 400, "width"),
        (q(&format!("assetId={SOFA}&width=0")), 422, "width"),
        (q(&format!("assetId={SOFA}&height=100000")), 422, "height"),
        (q(&format!("assetId={SOFA}&format=gif")), 422, "format"),
        (
            q(&format!("assetId={SOFA}&imageFitMode=stretch")),
            422,
            "imageFitMode",
        ),
        (q(&format!("assetId={SOFA}&quality=101")), 422, "quality"),
        (q(&format!("assetId={SOFA}&cropX=1200")), 422, "cropX"),
        (
            q(&format!("assetId={SOFA}&cropX=100&cropWidth=1150")),
            422,
            "cropWidth",
        ),
        (q(&format!("assetId={SOFA}&stageId=xyz")), 422, "stageId"),
        (
            q(&format!(
                "assetId={SOFA}&configuration={}",
                "x".repeat(20000)
            )),
            413,
            "limit",
        ),
        // The side that is not given must respect the limit too.
        (
            q(&format!("assetId={SOFA}&width=4096&cropWidth=1")),
            422,
            "height",
        ),
        (server.url("/api/nothing-here"), 404, "no route"),
        // A misspelt or unknown parameter is named, with the nearest known
        // one, on the image route, its aliases and the pages.
        (
            q(&format!("assetId={SOFA}&widht=300")),
            422,
            "widht: unknown parameter; did you mean width?",
        ),
        (
            server.url(&format!("/api/fast-compositor/?assetId={SOFA}&size=300")),
            422,
            "size: unknown parameter; this route takes assetId,",
        ),
        (
            server.url(&format!("/api/carousel?assetId={SOFA}&widhts=320")),
            422,
            "did you mean widths?",
        ),
        (
            server.url(&format!("/embed/spin?assetId={SOFA}&view=side")),
            422,
            "view: unknown parameter",
        ),
        (server.url("/?assetid=x"), 422, "assetid: unknown parameter"),
        // Views by name, and every view error lists the names.
        (
            q(&format!("assetId={SOFA}&view=top")),
            422,
            "\"top\" is not a view of this asset (views: front {\"Camera\":0}, ",
        ),
        (
            q(&format!(
                "assetId={SOFA}&stageConfiguration=%7B%22Camera%22%3A9%7D"
            )),
            422,
            "side {\"Camera\":",
        ),
        (
            q(&format!(
                "assetId={SOFA}&view=side&stageConfiguration=%7B%22Camera%22%3A1%7D"
            )),
            422,
            "view: give view or stageConfiguration, not both",
        ),
    ];
    for (url, status, needle) in cases {
        let (got, code, message) = error_of(get(&client, &url).await).await;
        assert_eq!(got, status, "{url}: {message}");
        assert!(
            message.contains(needle),
            "{url}: message {message:?} should name {needle:?}"
        );
        let want = match status {
            400 => "malformed",
            404 => "not-found",
            413 => "too-large",
            _ => "invalid",
        };
        assert_eq!(code, want, "{url}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_view_by_name_and_ignored_parameters() {
    let server = Server::start(settings(), Arc::new(Counting::new())).await;
    let client = reqwest::Client::new();
    let side = get(
        &client,
        &server.url(&image_url(&json!({}), "&view=side&width=64")),
    )
    .await;
    assert_eq!(side.status(), 200);
    let side_etag = side.headers()["etag"].clone();
    let side_bytes = side.bytes().await.unwrap();
    // The same image as the side view's stage selects, and not the front.
    let sofa: serde_json::Value =
        serde_json::from_str(include_str!("../catalog/sofa.json")).unwrap();
    let views = sofa["views"].as_array().unwrap();
    let stage = views.iter().find(|v| v["name"] == "side").unwrap()["stage"].clone();
    assert_ne!(stage, views[0]["stage"], "side is not the first view");
    let staged = get(
        &client,
        &server.url(&image_url(
            &json!({}),
            &format!("&stageConfiguration={}&width=64", enc(&stage)),
        )),
    )
    .await;
    assert_eq!(staged.headers()["etag"], side_etag);
    assert_eq!(staged.bytes().await.unwrap(), side_bytes);
    let front = get(&client, &server.url(&image_url(&json!({}), "&width=64"))).await;
    assert_ne!(front.headers()["etag"], side_etag);
    // What marketing tools add is ignored (http.ignored_params), and does
    // not change the image.
    let decorated = get(
        &client,
        &server.url(&image_url(
            &json!({}),
            "&view=side&width=64&utm_source=mail&fbclid=x",
        )),
    )
    .await;
    assert_eq!(decorated.status(), 200);
    assert_eq!(decorated.headers()["etag"], side_etag);
    // The Threekit client's own parameters stay accepted.
    let client_params = get(
        &client,
        &server.url(&image_url(
            &json!({}),
            "&width=64&skipResolveTags=true&cacheScope=x&cacheMaxAge=60&cacheKey=1&display=image",
        )),
    )
    .await;
    assert_eq!(client_params.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn assets_plp_and_healthchecks() {
    let server = Server::start(settings(), Arc::new(Counting::new())).await;
    let client = reqwest::Client::new();
    for path in [
        "/api/fast-compositor/healthcheck",
        "/api/assets/healthcheck",
    ] {
        assert_eq!(
            get(&client, &server.url(path)).await.status(),
            200,
            "{path}"
        );
    }
    let list: serde_json::Value = serde_json::from_slice(
        &get(&client, &server.url("/api/assets?perPage=500"))
            .await
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(list["count"], 1);
    assert_eq!(list["perPage"], 100);
    assert_eq!(list["assets"][0]["id"], SOFA);
    let one: serde_json::Value = serde_json::from_slice(
        &get(&client, &server.url(&format!("/api/assets/{SOFA}")))
            .await
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(one["name"], "Harbor Sofa");
    assert_eq!(one["views"].as_array().unwrap().len(), 4);
    assert_eq!(
        get(&client, &server.url("/api/assets/zzz")).await.status(),
        422
    );
    assert_eq!(
        get(
            &client,
            &server.url("/api/assets/6f1c7d2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f")
        )
        .await
        .status(),
        404
    );

    let page = get(&client, &server.url("/")).await.text().await.unwrap();
    let srcs: Vec<&str> = page
        .split("<img src=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
        .collect();
    assert!(
        (24..=48).contains(&srcs.len()),
        "a few dozen tiles, got {}",
        srcs.len()
    );
    // Every tile points at a working image, in the format the browser
    // accepts (format=auto).
    let first = srcs[0].replace("&amp;", "&");
    assert!(first.contains("format=auto"), "{first}");
    let r = client
        .get(server.url(&first))
        .header("accept", "image/webp,*/*;q=0.8")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/webp");
    server.stop().await;
}
