//! The Layers and Files services over HTTP.

mod common;

use common::{
    Counting, SOFA, Server, enc, get_json, image_url, settings, solid_png, status_and_body, upload,
};
use serde_json::json;
use std::sync::Arc;

async fn render_some(server: &Server, client: &reqwest::Client) {
    for (cfg, view) in [(json!({}), 0), (json!({"Body": "Navy"}), 0), (json!({}), 1)] {
        let url = server.url(&image_url(
            &cfg,
            &format!(
                "&width=200&stageConfiguration={}",
                enc(&json!({"Camera": view}))
            ),
        ));
        assert_eq!(client.get(url).send().await.unwrap().status(), 200);
    }
}

#[tokio::test]
async fn rendered_layers_are_listed_with_filters_and_pages() {
    let server = Server::start(settings(), Arc::new(Counting::new())).await;
    let client = reqwest::Client::new();
    render_some(&server, &client).await;
    // 5 layers for the first, the Navy body, then 5 for view 1.
    let all = get_json(&client, &server.url("/api/layers?perPage=500"), 200).await;
    assert_eq!(all["count"], 11);
    assert_eq!(all["perPage"], 100, "perPage is capped at 100");
    assert_eq!(all["sort"], "+createdAt");
    let layers = all["layers"].as_array().unwrap();
    let l = &layers[0];
    for field in [
        "id",
        "assetId",
        "assetLayer",
        "assetVersion",
        "assetLayerConfiguration",
        "assetLayerConfigurationHash",
        "stageId",
        "stageConfiguration",
        "stageConfigurationHash",
        "stageMetadata",
        "metadata",
        "orgId",
        "jobId",
        "taskId",
        "fileId",
        "branch",
        "format",
        "width",
        "height",
        "sceneGraphState",
        "createdAt",
    ] {
        assert!(
            l.as_object().unwrap().contains_key(field),
            "layer JSON has {field}: {l}"
        );
    }
    assert_eq!(l["assetId"], SOFA);
    assert_eq!(l["width"], 1200);
    assert_eq!(l["branch"], "main");
    assert!(l["createdAt"].as_str().unwrap().ends_with('Z'));

    // Pagination and order.
    let p1 = get_json(&client, &server.url("/api/layers?perPage=4&page=1"), 200).await;
    let p3 = get_json(&client, &server.url("/api/layers?perPage=4&page=3"), 200).await;
    assert_eq!(p1["layers"].as_array().unwrap().len(), 4);
    assert_eq!(p3["layers"].as_array().unwrap().len(), 3);
    assert_eq!(p1["layers"][0]["id"], layers[0]["id"]);
    let desc = get_json(
        &client,
        &server.url("/api/layers?sort=-createdAt&perPage=1"),
        200,
    )
    .await;
    assert_eq!(desc["layers"][0]["id"], layers[10]["id"]);

    // Filters.
    let body = get_json(
        &client,
        &server.url(&format!(
            "/api/layers?assetLayerConfiguration={}",
            enc(&json!({"Body": "Navy"}))
        )),
        200,
    )
    .await;
    assert_eq!(body["count"], 1);
    assert_eq!(
        body["layers"][0]["assetLayerConfiguration"],
        json!({"Body": "Navy"})
    );
    let view1 = get_json(
        &client,
        &server.url(&format!(
            "/api/layers?stageConfiguration={}",
            enc(&json!({"Camera": 1.0}))
        )),
        200,
    )
    .await;
    assert_eq!(view1["count"], 5);
    // Renders finish in any order; the backdrop and the shadow depend on nothing.
    let unconfigured = layers
        .iter()
        .find(|l| l["assetLayerConfiguration"] == json!({}))
        .unwrap();
    let by_layer = get_json(
        &client,
        &server.url(&format!(
            "/api/layers?assetId={SOFA}&assetLayer={}",
            unconfigured["assetLayer"].as_str().unwrap()
        )),
        200,
    )
    .await;
    assert_eq!(
        by_layer["count"], 2,
        "a layer without dependencies, in two views"
    );
    let at_origin = layers
        .iter()
        .filter(|l| l["metadata"]["offsetX"] == 0 && l["metadata"]["offsetY"] == 0)
        .count();
    assert!(
        (2..11).contains(&at_origin),
        "the backdrops, not every layer: {at_origin}"
    );
    let by_meta = get_json(
        &client,
        &server.url(&format!(
            "/api/layers?metadata={}",
            enc(&json!({"offsetX": 0, "offsetY": 0}))
        )),
        200,
    )
    .await;
    assert_eq!(
        by_meta["count"].as_u64().unwrap() as usize,
        at_origin,
        "{by_meta}"
    );
    let nowhere = get_json(
        &client,
        &server.url(&format!(
            "/api/layers?metadata={}",
            enc(&json!({"offsetX": 99999}))
        )),
        200,
    )
    .await;
    assert_eq!(nowhere["count"], 0);
    let by_name = get_json(
        &client,
        &server.url(&format!("/api/layers?assetId={SOFA}&assetLayer=Backdrop")),
        200,
    )
    .await;
    assert_eq!(by_name["count"], 2, "a layer named, not only by id");
    let hash = body["layers"][0]["assetLayerConfigurationHash"]
        .as_str()
        .unwrap();
    let by_hash = get_json(
        &client,
        &server.url(&format!("/api/layers?assetLayerConfigurationHash={hash}")),
        200,
    )
    .await;
    assert_eq!(by_hash["count"], 1);
    let none = get_json(&client, &server.url("/api/layers?branch=other"), 200).await;
    assert_eq!(none["count"], 0);

    // One layer; bad ids and parameters.
    let id = layers[3]["id"].as_str().unwrap();
    assert_eq!(
        get_json(&client, &server.url(&format!("/api/layers/{id}")), 200).await["id"],
        id
    );
    get_json(&client, &server.url("/api/layers/not-a-uuid"), 422).await;
    get_json(
        &client,
        &server.url("/api/layers/6f1c7d2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f"),
        404,
    )
    .await;
    get_json(&client, &server.url("/api/layers?assetId=nope"), 422).await;
    get_json(
        &client,
        &server.url("/api/layers?assetLayerConfiguration=%7Bbad"),
        400,
    )
    .await;
    get_json(
        &client,
        &server.url(&format!(
            "/api/layers?assetId={SOFA}&assetLayerConfiguration={}",
            enc(&json!({"Body": "Plaid"}))
        )),
        422,
    )
    .await;
    get_json(&client, &server.url("/api/layers?sort=size"), 422).await;
    server.stop().await;
}

#[tokio::test]
async fn the_latest_layer_as_json_url_file_or_optimized_copy() {
    let server = Server::start(settings(), Arc::new(Counting::new())).await;
    let client = reqwest::Client::new();
    render_some(&server, &client).await;
    let q = format!(
        "/api/layers/layer?assetId={SOFA}&assetLayerConfiguration={}&stageConfiguration={}",
        enc(&json!({"Body": "Navy"})),
        enc(&json!({"Camera": 0}))
    );

    let j = get_json(&client, &server.url(&q), 200).await;
    assert_eq!(j["assetLayerConfiguration"], json!({"Body": "Navy"}));
    // Absolute, from the request's Host (no public_url configured), as the
    // published client's `LayerWithFile` requires; `path` is its path.
    let path = format!("/api/files/{}/content", j["fileId"].as_str().unwrap());
    let url = j["url"].as_str().unwrap().to_string();
    assert_eq!(url, server.url(&path));
    assert_eq!(j["path"], path.as_str());
    let by_id = get_json(
        &client,
        &server.url(&format!("/api/layers/{}", j["id"].as_str().unwrap())),
        200,
    )
    .await;
    assert_eq!(by_id["url"], url.as_str());
    assert_eq!(by_id["path"], path.as_str());
    // Forwarded headers from a peer that is not a trusted proxy (none is
    // configured) do not move the links.
    let (_, spoofed) = status_and_body(
        client
            .get(server.url(&q))
            .header("x-forwarded-host", "evil.example")
            .header("x-forwarded-proto", "https"),
    )
    .await;
    assert_eq!(spoofed["url"], url.as_str());

    let u = get_json(&client, &server.url(&format!("{q}&resultType=url")), 200).await;
    assert_eq!(u["url"], url.as_str());
    assert!(u["metadata"]["offsetX"].is_number());

    let r = client
        .get(server.url(&format!("{q}&resultType=file")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "image/png");
    let file = r.bytes().await.unwrap();
    let img = image::load_from_memory(&file).unwrap();
    assert!(
        img.width() < 1200,
        "the stored layer is cropped to its visible box"
    );
    let same = client
        .get(&url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(file, same, "the url serves the same bytes");

    let opt = enc(&json!({"width": 300, "format": "webp", "quality": 70}));
    let r = client
        .get(server.url(&format!("{q}&resultType=file&optimization={opt}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "image/webp");
    let img = image::load_from_memory(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(
        (img.width(), img.height()),
        (300, 300),
        "placed on its canvas, then resized"
    );

    get_json(
        &client,
        &server.url(&format!(
            "{q}&resultType=file&optimization={}",
            enc(&json!({"width": 300, "dpi": 2}))
        )),
        422,
    )
    .await;
    get_json(&client, &server.url(&format!("{q}&resultType=pdf")), 422).await;
    get_json(
        &client,
        &server.url(&format!(
            "/api/layers/layer?assetLayerConfiguration={}",
            enc(&json!({"Body": "Rust"}))
        )),
        404,
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn files_upload_once_by_content_and_serve_ranges() {
    let mut s = settings();
    s.http.max_upload_bytes = 64 * 1024;
    let server = Server::start(s, Arc::new(Counting::new())).await;
    let client = reqwest::Client::new();
    let png = solid_png(16, 8, [10, 20, 30, 255]);
    let f = upload(&client, &server.base, "swatch.png", png.clone()).await;
    for field in [
        "id",
        "userId",
        "filename",
        "size",
        "encodings",
        "hash",
        "extension",
        "mimeType",
        "createdAt",
    ] {
        assert!(f.as_object().unwrap().contains_key(field), "{field}: {f}");
    }
    assert_eq!(f["filename"], "swatch.png");
    assert_eq!(f["mimeType"], "image/png");
    assert_eq!(f["extension"], "png");
    assert_eq!(f["size"], png.len());
    assert_eq!(f["encodings"]["raw"]["size"], png.len().to_string());
    assert_eq!(f["hash"], format!("blake3-{}", blake3::hash(&png).to_hex()));
    let again = upload(&client, &server.base, "copy.png", png.clone()).await;
    assert_eq!(again["id"], f["id"], "same content, one file");

    // The published client's field name is `file`.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"hello".to_vec()).file_name("a.txt"),
    );
    let r = client
        .post(server.url("/api/files"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // What the form may not be: 422 naming the part.
    let refused = |form: reqwest::multipart::Form| {
        let request = client.post(server.url("/api/files")).multipart(form);
        async move {
            let (status, body) = status_and_body(request).await;
            (
                status,
                body["error"]["message"].as_str().unwrap_or("").to_string(),
            )
        }
    };
    let (status, message) =
        refused(reqwest::multipart::Form::new().text("files", "not a file")).await;
    assert_eq!(
        (status, message.starts_with("files:")),
        (422, true),
        "{message}"
    );
    let (status, message) = refused(
        reqwest::multipart::Form::new()
            .part(
                "files",
                reqwest::multipart::Part::bytes(b"x".to_vec()).file_name("a.txt"),
            )
            .text("note", "hello"),
    )
    .await;
    assert_eq!(
        (status, message.starts_with("note:")),
        (422, true),
        "{message}"
    );
    let (status, _) = refused(reqwest::multipart::Form::new().text("other", "x")).await;
    assert_eq!(status, 422, "no file part");
    // Anything but a plain image is a download, never rendered by a browser on our origin.
    let svg = upload(
        &client,
        &server.base,
        "x.svg",
        b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>".to_vec(),
    )
    .await;
    assert_eq!(svg["mimeType"], "image/svg+xml");
    let r = client
        .get(server.url(&format!(
            "/api/files/{}/content",
            svg["id"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");

    let id = f["id"].as_str().unwrap();
    assert_eq!(
        get_json(&client, &server.url(&format!("/api/files/{id}")), 200).await,
        f
    );
    let content = server.url(&format!("/api/files/{id}/content"));
    let r = client.get(&content).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(r.bytes().await.unwrap(), png);
    let r = client
        .get(&content)
        .header("range", "bytes=1-3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 1-3/{}", png.len())
    );
    assert_eq!(r.bytes().await.unwrap(), &png[1..=3]);
    let r = client
        .get(&content)
        .header("range", "bytes=-4")
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap(), &png[png.len() - 4..]);
    let r = client
        .get(&content)
        .header("range", format!("bytes={}-", png.len()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    let r = client
        .get(&content)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);

    get_json(&client, &server.url("/api/files/not-a-uuid"), 422).await;
    get_json(
        &client,
        &server.url("/api/files/6f1c7d2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f"),
        404,
    )
    .await;
    get_json(
        &client,
        &server.url("/api/files/6f1c7d2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f/content"),
        404,
    )
    .await;

    let big = reqwest::multipart::Form::new().part(
        "files",
        reqwest::multipart::Part::bytes(vec![7u8; 100 * 1024]).file_name("big.bin"),
    );
    let r = client
        .post(server.url("/api/files"))
        .multipart(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let r = client
        .post(server.url("/api/files"))
        .multipart(reqwest::multipart::Form::new().text("other", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422, "no file part");
    let r = client
        .post(server.url("/api/files"))
        .body("not multipart")
        .send()
        .await
        .unwrap();
    // A body without a Content-Type is refused before it is read (415).
    assert_eq!(r.status(), 415);
    server.stop().await;
}

#[tokio::test]
async fn registering_a_layer_checks_every_field() {
    let server = Server::start(settings(), Arc::new(Counting::new())).await;
    let client = reqwest::Client::new();
    let file = upload(
        &client,
        &server.base,
        "legs.png",
        solid_png(1200, 1200, [0, 0, 0, 0]),
    )
    .await;
    let good = json!({
        "assetId": SOFA, "assetLayer": "Backdrop", "assetLayerConfiguration": {},
        "stageConfiguration": {"Camera": 0}, "fileId": file["id"], "width": 1200, "height": 1200
    });
    let post = |body: serde_json::Value| {
        let (client, url) = (client.clone(), server.url("/api/layers"));
        async move {
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
                serde_json::from_slice::<serde_json::Value>(&r.bytes().await.unwrap()).unwrap(),
            )
        }
    };
    let with = |k: &str, v: serde_json::Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    let cases = [
        (with("colour", json!("red")), 422, "colour"),
        (with("assetId", json!("nope")), 422, "assetId"),
        (
            with("assetId", json!("6f1c7d2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f")),
            404,
            "asset",
        ),
        (
            with("fileId", json!("6f1c7d2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f")),
            404,
            "file",
        ),
        (with("assetLayer", json!("Roof")), 422, "assetLayer"),
        (
            with("assetLayerConfiguration", json!({"Body": "Plaid"})),
            422,
            "assetLayerConfiguration",
        ),
        (
            with("stageConfiguration", json!({"Camera": 9})),
            422,
            "stageConfiguration",
        ),
        (with("width", json!(1000)), 422, "width"),
        (with("width", json!("wide")), 422, "width"),
        (with("metadata", json!({"offsetX": -3})), 422, "offsetX"),
    ];
    for (body, status, needle) in cases {
        let (got, err) = post(body.clone()).await;
        assert_eq!(got, status, "{body}: {err}");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(needle),
            "{err} should name {needle}"
        );
    }
    let r = client
        .post(server.url("/api/layers"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let mut no_layer = good.clone();
    no_layer.as_object_mut().unwrap().remove("assetLayer");
    assert_eq!(post(no_layer).await.0, 422, "the sofa has several layers");
    let text = upload(&client, &server.base, "notes.txt", b"plain text".to_vec()).await;
    let (status, err) = post(with("fileId", text["id"].clone())).await;
    assert_eq!(status, 422, "{err}");

    let (status, layer) = post(good).await;
    assert_eq!(status, 200, "{layer}");
    assert_eq!(layer["fileId"], file["id"]);
    assert_eq!(layer["branch"], "main");
    server.stop().await;
}
