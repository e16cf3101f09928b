//! No definition can make the process read host files or hold unbounded
//! memory, and no batch can plan without bound (issue "no request can
//! exhaust or escape the process", items 1, 2 and 4): each attack goes to
//! the real binary, gets a 422 naming what was refused, the process's peak
//! RSS (`VmHWM`) stays within a stated bound of its baseline, and an
//! ordinary image request answers during and after.

mod common;

use common::{SOFA, base_of, enc, peak_rss_kib, start_binary};
use serde_json::{Value, json};

/// A valid one-layer asset: `views` views, `template` as its template.
fn asset(id: &str, views: usize, template: &str) -> Value {
    json!({
        "name": "attack",
        "width": 64, "height": 64,
        "attributes": [{"name": "Color", "type": "string", "default": "Red",
            "values": [{"value": "Red", "metadata": {"hex": "#ff0000"}}]}],
        "views": (0..views).map(|i| json!({"name": format!("v{i}"), "stage": {"Camera": i}})).collect::<Vec<_>>(),
        "layers": [{"id": id, "name": "Body", "dependsOn": ["Color"],
            "render": {"template": template}}],
    })
}

const RECT: &str = "<svg xmlns='http://www.w3.org/2000/svg' width='64' height='64'><rect width='64' height='64' fill='{{Color.hex}}'/></svg>";

#[tokio::test]
async fn definitions_and_batches_over_their_caps_are_refused_and_memory_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "").unwrap();
    let (serve, line) = start_binary(
        &["serve", "--listen", "127.0.0.1:0"],
        &config,
        &dir.path().join("data"),
        "open http://",
    );
    let base = base_of(&line);
    let pid = serve.0.id();
    let client = reqwest::Client::new();
    let hit = format!(
        "{base}/api/fast-compositor?assetId={SOFA}&configuration={}&width=64",
        enc(&json!({}))
    );
    let ordinary = || async { client.get(&hit).send().await.unwrap().status().as_u16() };
    assert_eq!(ordinary().await, 200);
    // Warm the PUT path with one ordinary definition before the baseline.
    let put = |id: String, body: Value| {
        let client = client.clone();
        let url = format!("{base}/api/assets/{id}");
        async move {
            let r = client.put(&url).json(&body).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or_default())
        }
    };
    let ok_id = uuid::Uuid::new_v4().to_string();
    let (status, e) = put(
        ok_id.clone(),
        asset(&uuid::Uuid::new_v4().to_string(), 2, RECT),
    )
    .await;
    assert_eq!(status, 201, "{e}");
    let before = peak_rss_kib(pid);

    let fifo = dir.path().join("some.fifo");
    let c = std::ffi::CString::new(fifo.display().to_string()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let img = |href: &str| {
        format!(
            "<svg xmlns='http://www.w3.org/2000/svg' width='64' height='64'><image href='{href}' width='64' height='64'/></svg>"
        )
    };
    let huge_template = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='64' height='64'><!-- {} --><rect width='1' height='1'/></svg>",
        "x".repeat(1_000_000)
    );
    let many_options: Vec<Value> = (0..100_000)
        .map(|i| json!({"value": format!("o{i}")}))
        .collect();
    let mut options_attack = asset(&uuid::Uuid::new_v4().to_string(), 1, RECT);
    options_attack["attributes"][0]["values"] = Value::Array(many_options);
    options_attack["attributes"][0]["default"] = json!("o0");
    let mut canvas_attack = asset(&uuid::Uuid::new_v4().to_string(), 1, RECT);
    canvas_attack["width"] = json!(8192);
    canvas_attack["height"] = json!(8192);
    let mut compose_attack = asset(&uuid::Uuid::new_v4().to_string(), 1, RECT);
    compose_attack["width"] = json!(4096);
    compose_attack["height"] = json!(4096);
    compose_attack["layers"] = (0..64)
        .map(|i| json!({"id": uuid::Uuid::new_v4().to_string(), "name": format!("L{i}"), "dependsOn": ["Color"], "render": {"template": RECT}}))
        .collect();
    let lid = || uuid::Uuid::new_v4().to_string();
    let attacks: Vec<(&str, Value, &str, &str)> = vec![
        (
            "a FIFO",
            asset(&lid(), 1, &img(&fifo.display().to_string())),
            "layers[0].render.template",
            "<image> href=",
        ),
        (
            "/dev/zero",
            asset(&lid(), 1, &img("/dev/zero")),
            "layers[0].render.template",
            "/dev/zero",
        ),
        (
            "a host SVG",
            asset(&lid(), 1, &img("file:///etc/hostname")),
            "layers[0].render.template",
            "may not reference files",
        ),
        (
            "a network URL",
            asset(&lid(), 1, &img("http://127.0.0.1:9/x.svg")),
            "layers[0].render.template",
            "may not reference files",
        ),
        (
            "an href from metadata",
            asset(&lid(), 1, &img("{{Color.hex}}")),
            "layers[0].render.template",
            "{{Color.hex}}",
        ),
        (
            "20,000 views",
            asset(&lid(), 20_000, RECT),
            "views",
            "20000 views, over catalog.max_views (64)",
        ),
        (
            "1 MB template x 20,000 views",
            asset(&lid(), 20_000, &huge_template),
            "views",
            "over catalog.max_views",
        ),
        (
            "a 1 MB template",
            asset(&lid(), 1, &huge_template),
            "layers[0].render.template",
            "over catalog.max_template_bytes (262144)",
        ),
        (
            "100,000 options",
            options_attack,
            "attributes[0].values",
            "100000 options, over catalog.max_options (512)",
        ),
        (
            "an 8192x8192 canvas",
            canvas_attack,
            "width",
            "over catalog.max_canvas_pixels (16777216)",
        ),
        (
            "4096x4096 x 64 layers",
            compose_attack,
            "layers",
            "over catalog.max_compose_bytes (1073741824)",
        ),
    ];
    for (name, body, field, needle) in attacks {
        let (status, e) = put(uuid::Uuid::new_v4().to_string(), body).await;
        assert_eq!(status, 422, "{name}: {e}");
        let msg = e["error"]["message"].as_str().unwrap();
        assert!(msg.contains(field) && msg.contains(needle), "{name}: {msg}");
        assert_eq!(ordinary().await, 200, "a hit after {name}");
        eprintln!("{name}: 422 {msg:.160} (peak RSS {} kB)", peak_rss_kib(pid));
    }

    // 80,000 copies of one view plan one view (dry run: nothing queued).
    let jobs = format!("{base}/api/jobs");
    let stages: Vec<Value> = (0..80_000).map(|_| json!({"Camera": 0})).collect();
    let r = client
        .post(&jobs)
        .json(&json!({"assetId": SOFA, "all": true, "stageConfigurations": stages, "dryRun": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let plan: Value = r.json().await.unwrap();
    assert_eq!(
        plan["parameters"]["views"].as_array().map(Vec::len),
        Some(1),
        "{plan}"
    );
    eprintln!(
        "80,000 copies of a view: 200, 1 view (peak RSS {} kB)",
        peak_rss_kib(pid)
    );
    // An asset at the caps: all of its combinations on every view plan
    // more keys than jobs.max_plan_keys.
    let mut wide = asset(&lid(), 64, RECT);
    wide["attributes"] = (0..3)
        .map(|a| json!({"name": format!("A{a}"), "type": "string", "default": "o0",
            "values": (0..40).map(|i| json!({"value": format!("o{i}"), "metadata": {"hex": "#00ff00"}})).collect::<Vec<_>>()}))
        .collect();
    wide["layers"] = (0..100)
        .map(|i| {
            json!({"id": lid(), "name": format!("L{i}"), "dependsOn": ["A0", "A1", "A2"],
            "render": {"template": RECT.replace("Color", &format!("A{}", i % 3))}})
        })
        .collect();
    let wide_id = uuid::Uuid::new_v4().to_string();
    let (status, e) = put(wide_id.clone(), wide).await;
    assert_eq!(status, 201, "{e}");
    let r = client
        .post(&jobs)
        .json(&json!({"assetId": wide_id, "all": true, "dryRun": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let e: Value = r.json().await.unwrap();
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("64000 configurations x 64 views x 100 layers = 409600000")
            && msg.contains("jobs.max_plan_keys (2000000)"),
        "{msg}"
    );
    eprintln!(
        "plan over the cap: 422 {msg} (peak RSS {} kB)",
        peak_rss_kib(pid)
    );
    assert_eq!(ordinary().await, 200);

    let after = peak_rss_kib(pid);
    let grown_mib = after.saturating_sub(before) / 1024;
    eprintln!("peak RSS {before} kB before the attacks, {after} kB after (+{grown_mib} MiB)");
    // Definitions are refused from their text (nothing grows); the largest
    // accepted body (80,000 stage configurations, 1.3 MB of JSON) is 45 to
    // 66 MiB parsed (serde_json objects), once; 96 MiB is that with room.
    assert!(grown_mib < 96, "peak RSS grew by {grown_mib} MiB");
    drop(serve);
}

/// Item 5: a template that is cheap to send but slow to rasterise (30
/// stacked blurs over a 2048² canvas: about two minutes of CPU) is stopped
/// at its timeout, and its render slot (the only one here) renders the
/// next miss at once.
#[tokio::test]
async fn a_render_past_its_timeout_gives_its_slot_back() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        "[render]\ntimeout_secs = 2\nconcurrency = 1\n[jobs]\nmax_attempts = 1\n",
    )
    .unwrap();
    let (serve, line) = start_binary(
        &["serve", "--listen", "127.0.0.1:0"],
        &config,
        &dir.path().join("data"),
        "open http://",
    );
    let base = base_of(&line);
    let client = reqwest::Client::new();
    let blurs = "<feGaussianBlur stdDeviation='30'/>".repeat(30);
    let slow = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='64' height='64'><filter id='f' x='-50%' y='-50%' width='200%' height='200%'>{blurs}</filter><rect width='64' height='64' fill='{{{{Color.hex}}}}' filter='url(#f)'/></svg>"
    );
    let mut def = asset(&uuid::Uuid::new_v4().to_string(), 1, &slow);
    def["width"] = json!(2048);
    def["height"] = json!(2048);
    let id = uuid::Uuid::new_v4();
    let r = client
        .put(format!("{base}/api/assets/{id}"))
        .json(&def)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let image = |asset: String| {
        format!(
            "{base}/api/fast-compositor?assetId={asset}&configuration={}&width=64",
            enc(&json!({}))
        )
    };
    // An ordinary definition whose layer is not rendered yet, for after.
    let fresh = uuid::Uuid::new_v4();
    let r = client
        .put(format!("{base}/api/assets/{fresh}"))
        .json(&asset(&uuid::Uuid::new_v4().to_string(), 1, RECT))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // The sofa, rendered before the attack: the ordinary hit.
    let hit = image(SOFA.to_string());
    assert_eq!(client.get(&hit).send().await.unwrap().status(), 200);
    let pid = serve.0.id();
    let before = peak_rss_kib(pid);
    let started = std::time::Instant::now();
    let slow_request = tokio::spawn({
        let (client, url) = (client.clone(), image(id.to_string()));
        async move {
            let r = client.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    });
    // While the slow render holds the only slot, hits still answer.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        common::running_commands("render-builtin") > 0,
        "the slow render is running"
    );
    let r = client.get(&hit).send().await.unwrap();
    assert_eq!(r.status(), 200, "a hit during the slow render");
    assert_eq!(r.headers()["x-layercake-cache"], "hit-memory");
    let (status, body) = slow_request.await.unwrap();
    assert_eq!(status, 502, "{body}");
    eprintln!("the slow render answered 502 after {:?}", started.elapsed());
    let runs: Value = client
        .get(format!("{base}/api/jobs/runs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(runs.to_string().contains("longer than"), "{runs}");
    // The child is gone (left alone, the blur stack renders for about two
    // minutes, past the hang guard: only the kill at the timeout ends it
    // in time), and the one slot renders the next miss.
    common::eventually("the render process killed at its timeout", || async {
        common::running_commands("render-builtin") == 0
    })
    .await;
    let started = std::time::Instant::now();
    let r = client.get(image(fresh.to_string())).send().await.unwrap();
    assert_eq!(r.status(), 200);
    eprintln!(
        "the next miss (1 layer, 1 slot) answered 200 after {:?}",
        started.elapsed()
    );
    assert_eq!(
        client.get(&hit).send().await.unwrap().status(),
        200,
        "a hit after"
    );
    // The 2048² blur stack ran in the child: the server's own memory did
    // not move for it.
    let after = peak_rss_kib(pid);
    eprintln!("server peak RSS: {before} kB before the slow render, {after} kB after");
    assert!(
        after < before + 64 * 1024,
        "the server's peak RSS grew from {before} to {after} kB"
    );
    drop(serve);
}

/// Item 3 (in part): one org's flood fills its share of the render queue,
/// and another org's miss still queues and renders.
#[tokio::test]
async fn one_orgs_flood_fills_only_its_share_of_the_render_queue() {
    use common::{Counting, Server, settings};
    let mut s = settings();
    s.jobs.max_pending = 1000;
    s.jobs.max_pending_per_org = 6;
    s.render.concurrency = 1;
    let server = Server::start(
        s,
        std::sync::Arc::new(Counting::slow(std::time::Duration::from_millis(1500))),
    )
    .await;
    let client = reqwest::Client::new();
    let tokens = &server.app.tokens();
    let (flooder, _) = tokens.create(None, "a", false, &[]).await.unwrap();
    let (other, _) = tokens
        .create(Some(uuid::Uuid::new_v4()), "b", false, &[])
        .await
        .unwrap();
    let theirs = uuid::Uuid::new_v4();
    let r = client
        .put(server.url(&format!("/api/assets/{theirs}")))
        .bearer_auth(&other)
        .json(&asset(&uuid::Uuid::new_v4().to_string(), 1, RECT))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let batch = |camera: u32| {
        client
            .post(server.url("/api/jobs"))
            .bearer_auth(&flooder)
            .json(
                &json!({"assetId": SOFA, "all": true, "stageConfigurations": [{"Camera": camera}]}),
            )
            .send()
    };
    assert_eq!(
        batch(0).await.unwrap().status(),
        200,
        "a first job larger than the share is taken"
    );
    let r = batch(1).await.unwrap();
    assert_eq!(r.status(), 429);
    let e: Value = r.json().await.unwrap();
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("jobs.max_pending_per_org = 6"),
        "{e}"
    );
    // The other org's miss queues (ahead of batches) and renders.
    let r = client
        .get(server.url(&format!(
            "/api/fast-compositor?assetId={theirs}&configuration={}&width=32",
            enc(&json!({}))
        )))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    server.stop().await;
}
