//! `GET /api/carousel` and `GET /embed/carousel`: every view's URLs with a
//! srcset, bad input named, and an embed page that no asset text can break.

mod common;

use common::{Counting, SOFA, Server, enc, get_json, settings};
use serde_json::json;
use std::sync::Arc;

#[tokio::test]
async fn every_view_with_its_srcset_and_bad_input_named() {
    let server = Server::start(settings(), Arc::new(Counting::new())).await;
    let client = reqwest::Client::new();
    let config = enc(&json!({"Body": "Navy"}));
    let c = get_json(
        &client,
        &server.url(&format!(
            "/api/carousel?assetId={SOFA}&configuration={config}&widths=200,400&format=webp"
        )),
        200,
    )
    .await;
    let views = c["views"].as_array().unwrap();
    assert_eq!(views.len(), 4);
    assert_eq!(c["configuration"]["Body"], "Navy");
    assert!(
        c["configuration"]["Pillows"].is_string(),
        "defaults filled in"
    );
    for v in views {
        assert_eq!(v["widths"], json!([200, 400]));
        let srcset = v["srcset"].as_str().unwrap();
        assert_eq!(
            srcset.matches(" 200w").count() + srcset.matches(" 400w").count(),
            2,
            "{srcset}"
        );
        let r = client
            .get(server.url(v["url"].as_str().unwrap()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{v}");
        assert_eq!(r.headers()["content-type"], "image/webp");
    }
    for (query, param) in [
        (
            format!(
                "assetId={SOFA}&configuration={}",
                enc(&json!({"Body": "Purple"}))
            ),
            "configuration",
        ),
        (format!("assetId={SOFA}&widths=0"), "widths"),
        (format!("assetId={SOFA}&widths=a,b"), "widths"),
        (format!("assetId={SOFA}&format=gif"), "format"),
        ("assetId=nope".to_string(), "assetId"),
    ] {
        let r = client
            .get(server.url(&format!("/api/carousel?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{query}");
        let body = r.text().await.unwrap();
        assert!(body.contains(param), "{query}: {body}");
    }
    server.stop().await;
}

#[tokio::test]
async fn the_embed_page_inlines_its_data_safely() {
    let server = Server::start(settings(), Arc::new(Counting::new())).await;
    let client = reqwest::Client::new();
    let id = "8a1c7d2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f";
    let hostile = "Mug </script><script>alert(1)</script> <!--TITLE--> \\";
    let asset = json!({
        "id": id, "name": hostile, "version": 1, "width": 32, "height": 32,
        "attributes": [{"name": "Size", "type": "number", "min": 1, "max": 3, "default": 2}],
        "views": [{"name": "front", "label": "<!--<script>", "stage": {"Camera": 0}}],
        "layers": [{"id": "0e7b3c1a-2d4f-4a6b-8c9d-1e2f3a4b5c6d", "name": "Bg",
                    "render": {"template": "<svg xmlns='http://www.w3.org/2000/svg' width='32' height='32'/>"}}]
    });
    let r = client
        .put(server.url(&format!("/api/assets/{id}")))
        .header("content-type", "application/json")
        .body(asset.to_string())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let page = client
        .get(server.url(&format!("/embed/carousel?assetId={id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    // Exactly the page's own script element, and the names only escaped.
    assert_eq!(html.matches("<script>").count(), 1, "{html}");
    assert_eq!(html.matches("</script>").count(), 1, "{html}");
    assert!(!html.contains("alert(1)</"), "{html}");
    assert!(html.contains("\\u003c/script\\u003e"), "{html}");
    assert!(html.contains("<title>Mug &lt;/script&gt;"), "{html}");
    assert!(html.len() < 8000, "a small page: {} bytes", html.len());
    server.stop().await;
}
