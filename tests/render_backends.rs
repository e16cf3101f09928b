//! External render backends through the whole path: the `command` backend
//! with small shell scripts, and the `http` backend against a local render
//! farm; and output validation (wrong canvas, a header that claims 20000²
//! pixels, a program that fails) failing the run with a clear reason.

mod common;

use axum::body::Bytes;
use axum::http::StatusCode;
use common::{Counting, Server, image_url, settings, solid_png};
use layercake::config::{BackendSettings, Settings};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const CANVAS: u32 = 1200;

fn with_backend(name: &str, backend: BackendSettings) -> Settings {
    let mut s = settings();
    s.jobs.max_attempts = 1;
    s.render.backends.insert(name.into(), backend);
    s.render.backend = name.into();
    s
}

fn command(script: &Path) -> BackendSettings {
    BackendSettings {
        kind: "command".into(),
        command: vec!["sh".into(), script.display().to_string()],
        url: String::new(),
        timeout_secs: Some(20),
        retries: 0,
        pass_env: Vec::new(),
        ..Default::default()
    }
}

fn write_script(dir: &Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("render.sh");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    path
}

async fn get(server: &Server) -> (u16, Value) {
    let r = reqwest::get(server.url(&image_url(&json!({"Body": "Navy"}), "&width=100")))
        .await
        .unwrap();
    let status = r.status().as_u16();
    let bytes = r.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// The errors of every job run: where a render's cause goes (a 502 body
/// carries a fixed sentence only; tests/edge_security.rs checks that).
async fn run_errors(server: &Server) -> String {
    let runs: Value = reqwest::get(server.url("/api/jobs/runs?perPage=100"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["error"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_fixed_502(e: &Value) {
    assert_eq!(e["error"]["code"], "render-failed", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("the render failed;"),
        "{e}"
    );
}

/// A PNG whose header says `w`×`h` with a few bytes of pixel data: what a
/// decompression bomb looks like before anyone inflates it.
fn header_only_png(w: u32, h: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for &b in bytes {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [
        (
            &b"IHDR"[..],
            [&w.to_be_bytes()[..], &h.to_be_bytes(), &[8, 6, 0, 0, 0]].concat(),
        ),
        (
            &b"IDAT"[..],
            vec![0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
        ),
        (&b"IEND"[..], Vec::new()),
    ] {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let chunk = [kind, &data].concat();
        out.extend_from_slice(&chunk);
        out.extend_from_slice(&crc32(&chunk).to_be_bytes());
    }
    out
}

#[tokio::test]
async fn the_command_backend_gets_the_request_on_stdin_and_answers_a_png() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("layer.png"),
        solid_png(CANVAS, CANVAS, [200, 40, 40, 128]),
    )
    .unwrap();
    let d = dir.path().display();
    let script = write_script(
        dir.path(),
        &format!("cat > {d}/request-$$.json\ncat {d}/layer.png"),
    );
    let server = Server::start(
        with_backend("script", command(&script)),
        Arc::new(Counting::new()),
    )
    .await;
    let (status, body) = get(&server).await;
    assert_eq!(status, 200, "{body}");
    let requests: Vec<Value> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("request-"))
        .map(|e| serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap())
        .collect();
    assert_eq!(requests.len(), 5, "one process per layer");
    let body_layer = requests.iter().find(|r| r["layer"] == "Body").unwrap();
    assert_eq!(body_layer["configuration"], json!({"Body": "Navy"}));
    assert_eq!(body_layer["view"], "front");
    assert_eq!(body_layer["stageConfiguration"], json!({"Camera": 0}));
    assert_eq!(body_layer["width"], CANVAS);
    assert!(body_layer["assetId"].is_string() && body_layer["layerId"].is_string());
    server.stop().await;
}

#[tokio::test]
async fn bad_command_output_fails_the_run_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    std::fs::write(
        dir.path().join("small.png"),
        solid_png(64, 64, [0, 0, 0, 255]),
    )
    .unwrap();
    std::fs::write(dir.path().join("bomb.png"), header_only_png(20_000, 20_000)).unwrap();
    let cases = [
        (
            "echo 'licence server unreachable' >&2; exit 3",
            "licence server unreachable",
        ),
        (
            &*format!("cat > /dev/null; cat {d}/small.png"),
            "output canvas is 64x64, expected 1200x1200",
        ),
        (
            &*format!("cat > /dev/null; cat {d}/bomb.png"),
            "over the pixel budget",
        ),
        ("cat > /dev/null; echo 'not a png'", "unusable image"),
    ];
    for (body, reason) in cases {
        let script = write_script(dir.path(), body);
        let server = Server::start(
            with_backend("script", command(&script)),
            Arc::new(Counting::new()),
        )
        .await;
        let (status, e) = get(&server).await;
        assert_eq!(status, 502, "{body}: {e}");
        let msg = run_errors(&server).await;
        assert!(msg.contains(reason), "{body}: {msg}");
        assert_fixed_502(&e);
        server.stop().await;
    }
}

#[tokio::test]
async fn a_slow_command_is_killed_at_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    // A child of the script: the whole process group must go, not just
    // `sh`. Left alone it would run for ten minutes, far past the hang
    // guards below: an answer, and the child gone, can only come from the
    // kill at the one-second timeout.
    let script = write_script(dir.path(), "sleep 600.517 &\nwait");
    let mut backend = command(&script);
    backend.timeout_secs = Some(1);
    let server = Server::start(with_backend("script", backend), Arc::new(Counting::new())).await;
    let (status, e) =
        common::finishes("the answer to a render past its timeout", get(&server)).await;
    assert_eq!(status, 502, "{e}");
    assert_fixed_502(&e);
    assert!(run_errors(&server).await.contains("longer than"));
    // The script's own child went with it.
    common::eventually("the timed-out program's child is gone", || async {
        common::running_commands("600.517") == 0
    })
    .await;
    server.stop().await;
}

/// A render farm: answers 503 to the first `fail_first` requests, then the PNG.
async fn farm(
    fail_first: usize,
    png: Vec<u8>,
) -> (String, Arc<AtomicUsize>, Arc<Mutex<Vec<Value>>>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (h, s) = (Arc::clone(&hits), Arc::clone(&seen));
    let app = axum::Router::new().route(
        "/render",
        axum::routing::post(move |body: Bytes| {
            let (hits, seen, png) = (Arc::clone(&h), Arc::clone(&s), png.clone());
            async move {
                let n = hits.fetch_add(1, Ordering::SeqCst);
                seen.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap());
                if n < fail_first {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        Vec::from(&b"warming up"[..]),
                    )
                } else if png.is_empty() {
                    (
                        StatusCode::BAD_REQUEST,
                        Vec::from(&b"unknown material: Navy"[..]),
                    )
                } else {
                    (StatusCode::OK, png)
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/render"), hits, seen)
}

fn http(url: &str) -> BackendSettings {
    BackendSettings {
        kind: "http".into(),
        command: Vec::new(),
        url: url.into(),
        timeout_secs: Some(20),
        retries: 2,
        pass_env: Vec::new(),
        ..Default::default()
    }
}

#[tokio::test]
async fn the_http_backend_retries_a_5xx_and_reports_a_4xx() {
    let (url, hits, seen) = farm(1, solid_png(CANVAS, CANVAS, [10, 120, 10, 255])).await;
    let mut s = with_backend("farm", http(&url));
    s.render.concurrency = 1;
    let server = Server::start(s, Arc::new(Counting::new())).await;
    let (status, body) = get(&server).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        6,
        "five layers, one retried after the 503"
    );
    assert!(seen.lock().unwrap().iter().all(|r| r["width"] == CANVAS));
    server.stop().await;

    let (url, _, _) = farm(0, Vec::new()).await;
    let server = Server::start(with_backend("farm", http(&url)), Arc::new(Counting::new())).await;
    let (status, e) = get(&server).await;
    assert_eq!(status, 502);
    assert_fixed_502(&e);
    let msg = run_errors(&server).await;
    assert!(
        msg.contains("400") && msg.contains("unknown material: Navy"),
        "{msg}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_render_farm_that_never_answers_fails_the_run_at_its_timeout() {
    // Accepts connections and reads the requests, but never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&held);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            keep.lock().unwrap().push(socket);
        }
    });
    let mut backend = http(&format!("http://{addr}/render"));
    backend.timeout_secs = Some(1);
    backend.retries = 0;
    let server = Server::start(with_backend("farm", backend), Arc::new(Counting::new())).await;
    // The farm never answers: an answer at all is the timeout's doing,
    // and the run's error says so.
    let (status, e) =
        common::finishes("the answer to a render the farm never sends", get(&server)).await;
    assert_eq!(status, 502, "{e}");
    assert_fixed_502(&e);
    let msg = run_errors(&server).await;
    assert!(msg.contains("longer than"), "{msg}");
    assert!(!held.lock().unwrap().is_empty(), "the farm was asked");
    server.stop().await;
}

#[tokio::test]
async fn an_asset_naming_an_unconfigured_backend_is_refused_at_start() {
    let catalog = tempfile::tempdir().unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("catalog");
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(source.join("sofa"))
        .arg(catalog.path())
        .status()
        .unwrap();
    assert!(status.success());
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string(source.join("sofa.json")).unwrap()).unwrap();
    doc["renderer"] = json!("blender");
    std::fs::write(catalog.path().join("sofa.json"), doc.to_string()).unwrap();
    let mut s = settings();
    s.catalog.dir = catalog.path().display().to_string();
    let err = match layercake::App::build(s).await {
        Ok(_) => panic!("an asset with an unknown backend must not load"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("blender"), "{err}");
}
