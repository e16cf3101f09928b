//! Bring-your-own renders, asset updates and saved configurations, over HTTP.

mod common;

use common::{Counting, SOFA, Server, enc, get_json, image_url, settings, solid_png, upload};
use serde_json::json;
use std::sync::Arc;

async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let r = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (
        status,
        serde_json::from_slice(&r.bytes().await.unwrap()).unwrap(),
    )
}

async fn put_json(client: &reqwest::Client, url: &str, body: &str) -> (u16, serde_json::Value) {
    let r = client
        .put(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (
        status,
        serde_json::from_slice(&r.bytes().await.unwrap()).unwrap(),
    )
}

async fn png_at(client: &reqwest::Client, url: &str) -> image::RgbaImage {
    let r = client.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    image::load_from_memory(&r.bytes().await.unwrap())
        .unwrap()
        .to_rgba8()
}

fn close(a: [u8; 4], b: [u8; 4]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 1)
}

#[tokio::test]
async fn uploaded_layers_are_composed_and_nothing_is_rendered() {
    let renderer = Counting::new();
    let server = Server::start(settings(), Arc::new(renderer.clone())).await;
    let client = reqwest::Client::new();
    // The default configuration shows these five layers in view 0.
    let layers = [
        (
            "Backdrop",
            json!({}),
            (1200, 1200),
            (0, 0),
            [200, 210, 220, 255],
        ),
        ("Shadow", json!({}), (100, 50), (100, 1000), [0, 0, 0, 128]),
        (
            "Legs: Tapered Oak",
            json!({}),
            (50, 50),
            (300, 900),
            [255, 0, 0, 255],
        ),
        (
            "Body",
            json!({"Body": "Slate"}),
            (400, 300),
            (400, 400),
            [0, 0, 255, 255],
        ),
        (
            "Pillows",
            json!({"Pillows": "Mustard"}),
            (100, 100),
            (450, 350),
            [255, 255, 0, 128],
        ),
    ];
    for (name, config, (w, h), (x, y), rgba) in layers {
        let file = upload(
            &client,
            &server.base,
            &format!("{name}.png"),
            solid_png(w, h, rgba),
        )
        .await;
        let body = json!({
            "assetId": SOFA, "assetLayer": name, "assetLayerConfiguration": config,
            "stageConfiguration": {"Camera": 0}, "metadata": {"offsetX": x, "offsetY": y},
            "fileId": file["id"], "width": 1200, "height": 1200
        });
        let (status, layer) = post_json(&client, &server.url("/api/layers"), &body).await;
        assert_eq!(status, 200, "{name}: {layer}");
        assert_eq!(layer["metadata"]["offsetX"], x);
    }
    let url = server.url(&image_url(&json!({}), "&format=png"));
    let img = png_at(&client, &url).await;
    assert_eq!(
        renderer.total(),
        0,
        "built from the uploaded layers alone: {:?}",
        renderer.counts.lock().unwrap()
    );
    assert_eq!(img.get_pixel(10, 10).0, [200, 210, 220, 255], "backdrop");
    assert_eq!(img.get_pixel(320, 920).0, [255, 0, 0, 255], "legs");
    assert_eq!(img.get_pixel(700, 650).0, [0, 0, 255, 255], "body");
    assert!(
        close(img.get_pixel(500, 420).0, [128, 128, 127, 255]),
        "pillow half over body: {:?}",
        img.get_pixel(500, 420)
    );
    assert!(
        close(img.get_pixel(150, 1020).0, [100, 105, 110, 255]),
        "shadow half over backdrop: {:?}",
        img.get_pixel(150, 1020)
    );

    // Replacing a registered image: the next composite shows it at once.
    let green = upload(
        &client,
        &server.base,
        "green.png",
        solid_png(400, 300, [0, 255, 0, 255]),
    )
    .await;
    let body = json!({
        "assetId": SOFA, "assetLayer": "Body", "assetLayerConfiguration": {"Body": "Slate"},
        "metadata": {"offsetX": 400, "offsetY": 400}, "fileId": green["id"], "width": 1200, "height": 1200
    });
    assert_eq!(
        post_json(&client, &server.url("/api/layers"), &body)
            .await
            .0,
        200
    );
    let img = png_at(&client, &url).await;
    assert_eq!(
        img.get_pixel(700, 650).0,
        [0, 255, 0, 255],
        "the replaced body, not a cached composite"
    );
    assert_eq!(renderer.total(), 0);
    let listed = get_json(&client, &server.url("/api/layers?perPage=100"), 200).await;
    assert_eq!(listed["count"], 6);

    // An optimised copy of a registered layer sits where it was registered.
    let q = format!(
        "/api/layers/layer?assetId={SOFA}&assetLayer=Body&resultType=file&optimization={}",
        enc(&json!({"width": 120, "format": "png"}))
    );
    let small = png_at(&client, &server.url(&q)).await;
    assert_eq!((small.width(), small.height()), (120, 120));
    assert_eq!(
        small.get_pixel(5, 5).0[3],
        0,
        "transparent outside the layer"
    );
    assert_eq!(
        small.get_pixel(60, 60).0,
        [0, 255, 0, 255],
        "the body at (400,400)-(800,700) of 1200 → (40,40)-(80,70)"
    );
    assert_eq!(small.get_pixel(30, 60).0[3], 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_registered_during_its_render_wins() {
    // Renders take 1.5 s; the registration lands in the middle of one.
    let renderer = Counting::slow(std::time::Duration::from_millis(1500));
    let mut s = settings();
    s.render.concurrency = 8;
    let server = Server::start(s, Arc::new(renderer.clone())).await;
    let client = reqwest::Client::new();
    let url = server.url(&image_url(&json!({"Body": "Rust"}), "&format=png"));
    let cold = {
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move { client.get(url).send().await.unwrap().bytes().await.unwrap() })
    };
    while renderer.total() < 5 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let file = upload(
        &client,
        &server.base,
        "body.png",
        solid_png(1200, 1200, [9, 99, 199, 255]),
    )
    .await;
    let body = json!({
        "assetId": SOFA, "assetLayer": "Body", "assetLayerConfiguration": {"Body": "Rust"},
        "fileId": file["id"], "width": 1200, "height": 1200
    });
    let (status, layer) = post_json(&client, &server.url("/api/layers"), &body).await;
    assert_eq!(status, 200, "{layer}");
    let _ = cold.await.unwrap();
    // After both: every composite shows the registered image, never the render.
    let img = png_at(&client, &url).await;
    assert_eq!(
        img.get_pixel(600, 300).0,
        [9, 99, 199, 255],
        "the registered body covers the canvas"
    );
    let latest = get_json(
        &client,
        &server.url(&format!(
            "/api/layers/layer?assetId={SOFA}&assetLayer=Body&assetLayerConfiguration={}",
            enc(&json!({"Body": "Rust"}))
        )),
        200,
    )
    .await;
    assert_eq!(
        latest["fileId"], file["id"],
        "the registration is the latest record"
    );
    // The render's own file record still serves the render's bytes.
    let both = get_json(
        &client,
        &server.url(&format!(
            "/api/layers?assetId={SOFA}&assetLayer=Body&assetLayerConfiguration={}",
            enc(&json!({"Body": "Rust"}))
        )),
        200,
    )
    .await;
    assert_eq!(both["count"], 2);
    let rendered_file = both["layers"][0]["fileId"].as_str().unwrap();
    let record = get_json(
        &client,
        &server.url(&format!("/api/files/{rendered_file}")),
        200,
    )
    .await;
    let bytes = client
        .get(server.url(&format!("/api/files/{rendered_file}/content")))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        record["hash"],
        format!("blake3-{}", blake3::hash(&bytes).to_hex()),
        "a file id's bytes never change"
    );
    server.stop().await;
}

fn mug(fill: &str, version: u32) -> serde_json::Value {
    let svg = |body: &str| {
        format!("<svg xmlns='http://www.w3.org/2000/svg' width='64' height='64'>{body}</svg>")
    };
    json!({
        "id": "6f1c7d2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f", "name": "Mug", "version": version, "width": 64, "height": 64,
        "attributes": [{"name": "Color", "type": "string", "default": "Red",
            "values": [{"value": "Red", "metadata": {"hex": "#cc0000"}}, {"value": "Blue", "metadata": {"hex": "#0000cc"}}]}],
        "views": [{"name": "front", "stage": {"Camera": 0}}],
        "layers": [
            {"id": "0e7b3c1a-2d4f-4a6b-8c9d-1e2f3a4b5c6d", "name": "Background", "render": {"template": svg(&format!("<rect width='64' height='64' fill='{fill}'/>"))}},
            {"id": "1e7b3c1a-2d4f-4a6b-8c9d-1e2f3a4b5c6d", "name": "Body", "dependsOn": ["Color"],
             "render": {"template": svg("<circle cx='32' cy='32' r='16' fill='{{Color.hex}}'/>")}}
        ]
    })
}

#[tokio::test]
async fn an_updated_asset_is_a_new_version_with_new_images() {
    let renderer = Counting::new();
    let server = Server::start(settings(), Arc::new(renderer.clone())).await;
    let client = reqwest::Client::new();
    let id = "6f1c7d2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f";
    let at = server.url(&format!("/api/assets/{id}"));

    let (status, a) = put_json(&client, &at, &mug("#ffffff", 1).to_string()).await;
    assert_eq!(status, 201, "{a}");
    assert_eq!(a["version"], 1);
    let url = server.url(&format!("/api/fast-compositor?assetId={id}&format=png"));
    let before = png_at(&client, &url).await;
    assert_eq!(before.get_pixel(2, 2).0, [255, 255, 255, 255]);
    assert_eq!(before.get_pixel(32, 32).0, [204, 0, 0, 255]);
    assert_eq!(renderer.total(), 2);

    // Unchanged: same version, nothing to do.
    let (status, a) = put_json(&client, &at, &mug("#ffffff", 1).to_string()).await;
    assert_eq!((status, a["version"].clone()), (200, json!(1)));

    // Changed, even with the same declared version: version 2, new keys.
    let (status, a) = put_json(&client, &at, &mug("#00ff00", 1).to_string()).await;
    assert_eq!((status, a["version"].clone()), (200, json!(2)), "{a}");
    let after = png_at(&client, &url).await;
    assert_eq!(
        after.get_pixel(2, 2).0,
        [0, 255, 0, 255],
        "the next composite reflects the change"
    );
    assert_eq!(
        renderer.total(),
        4,
        "both layers rendered again for version 2"
    );
    assert_eq!(get_json(&client, &at, 200).await["version"], 2);
    let list = get_json(&client, &server.url("/api/assets?sort=+name"), 200).await;
    assert_eq!(list["count"], 2);
    assert_eq!(list["assets"][0]["name"], "Harbor Sofa");
    assert_eq!(list["assets"][1]["name"], "Mug");

    // Bad definitions are 4xx naming the field.
    let mut bad = mug("#fff", 1);
    bad["layers"][1]["dependsOn"] = json!(["Colour"]);
    let (status, e) = put_json(&client, &at, &bad.to_string()).await;
    assert_eq!(status, 422);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("layers[1].dependsOn[0]"),
        "{e}"
    );
    let mut file_template = mug("#fff", 1);
    file_template["layers"][0]["render"] = json!({"svg": "templates/bg.svg"});
    assert_eq!(
        put_json(&client, &at, &file_template.to_string()).await.0,
        422
    );
    let mut unknown = mug("#fff", 1);
    unknown["colour"] = json!("x");
    assert_eq!(put_json(&client, &at, &unknown.to_string()).await.0, 422);
    let other = server.url("/api/assets/7f1c7d2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f");
    let (status, e) = put_json(&client, &other, &mug("#fff", 1).to_string()).await;
    assert_eq!(status, 422, "the body's id must match the path: {e}");
    assert_eq!(put_json(&client, &at, "{nope").await.0, 400);
    assert_eq!(
        put_json(&client, &server.url("/api/assets/nope"), "{}")
            .await
            .0,
        422
    );
    assert_eq!(
        get_json(&client, &at, 200).await["version"],
        2,
        "failed updates change nothing"
    );
    server.stop().await;
}

#[tokio::test]
async fn saved_configurations_by_json_form_id_and_short_id() {
    let server = Server::start(settings(), Arc::new(Counting::new())).await;
    let client = reqwest::Client::new();
    let url = server.url("/api/configurations");
    let (status, c) = post_json(&client, &url, &json!({"productId": SOFA, "variant": {"Body": "Rust", "Skirt": true}, "metadata": {"order": "A-1"}})).await;
    assert_eq!(status, 200, "{c}");
    let short = c["shortId"].as_str().unwrap().to_string();
    assert!(
        (7..=14).contains(&short.len())
            && short
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
        "{short}"
    );
    for field in [
        "id",
        "shortId",
        "orgId",
        "productId",
        "productVersion",
        "variant",
        "metadata",
        "attachments",
        "sceneGraphState",
        "customerId",
        "identifier",
        "scope",
        "thumbnail",
        "sessionId",
        "publishFileId",
        "creator",
        "createdAt",
    ] {
        assert!(c.as_object().unwrap().contains_key(field), "{field}: {c}");
    }
    assert_eq!(c["attachments"], json!({}));
    assert_eq!(c["metadata"], json!({"order": "A-1"}));

    for (body, status, needle) in [
        (json!({"variant": {"Body": "Rust"}}), 422, "productId"),
        (json!({"productId": SOFA}), 422, "variant"),
        (
            json!({"productId": SOFA, "variant": {"Body": "Plaid"}}),
            422,
            "variant",
        ),
        (
            json!({"productId": "nope", "variant": {}}),
            422,
            "productId",
        ),
        (
            json!({"productId": "6f1c7d2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f", "variant": {}}),
            404,
            "asset",
        ),
        (
            json!({"productId": SOFA, "variant": {}, "colour": 1}),
            422,
            "colour",
        ),
    ] {
        let (got, e) = post_json(&client, &url, &body).await;
        assert_eq!(got, status, "{body}: {e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(needle),
            "{e} should name {needle}"
        );
    }
    let r = client
        .post(&url)
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // The multipart form, with an attachment.
    let form = reqwest::multipart::Form::new()
        .text("productId", SOFA)
        .text("variant", json!({"Pillows": "Teal"}).to_string())
        .part(
            "thumbnail.png",
            reqwest::multipart::Part::bytes(solid_png(4, 4, [1, 2, 3, 255])).file_name("thumb.png"),
        );
    let r = client.post(&url).multipart(form).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let m: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(m["variant"], json!({"Pillows": "Teal"}));
    let attached = m["attachments"]["thumbnail.png"].as_str().unwrap();
    assert_eq!(
        get_json(&client, &server.url(&format!("/api/files/{attached}")), 200).await["filename"],
        "thumb.png"
    );

    let id = c["id"].as_str().unwrap();
    assert_eq!(
        get_json(
            &client,
            &server.url(&format!("/api/configurations/{id}")),
            200
        )
        .await,
        c
    );
    assert_eq!(
        get_json(
            &client,
            &server.url(&format!("/api/configurations/{short}")),
            200
        )
        .await,
        c
    );
    get_json(&client, &server.url("/api/configurations/zzzzzzzzzz"), 404).await;
    let list = get_json(
        &client,
        &server.url("/api/configurations?perPage=1&sort=-createdAt"),
        200,
    )
    .await;
    assert_eq!(
        (
            list["count"].clone(),
            list["configurations"][0]["id"].clone()
        ),
        (json!(2), m["id"].clone())
    );

    // The fast compositor takes the short id instead of JSON.
    let direct = client
        .get(server.url(&image_url(
            &json!({"Body": "Rust", "Skirt": true}),
            "&width=100",
        )))
        .send()
        .await
        .unwrap();
    let saved = client
        .get(server.url(&format!(
            "/api/fast-compositor?configurationId={short}&width=100"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(saved.status(), 200);
    assert_eq!(saved.headers()["etag"], direct.headers()["etag"]);
    assert_eq!(saved.bytes().await.unwrap(), direct.bytes().await.unwrap());
    get_json(
        &client,
        &server.url("/api/fast-compositor?configurationId=nothing123"),
        404,
    )
    .await;
    get_json(
        &client,
        &server.url(&format!(
            "/api/fast-compositor?configurationId={short}&configuration={}",
            enc(&json!({}))
        )),
        422,
    )
    .await;
    server.stop().await;
}
