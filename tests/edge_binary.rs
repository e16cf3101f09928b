//! The edge through the real binary: `layercake url` makes URLs the server
//! accepts, `layercake token` turns authentication on, development mode
//! keeps to loopback, and SIGTERM during a render lets the request finish
//! and exits 0.

mod common;

use common::{SOFA, base_of, enc, peak_rss_kib, solid_png, start_binary};
use serde_json::json;
use std::path::Path;
use std::process::Command;

const KEY: &str = "binary-test-signing-key-0123456789abcdef";

fn layercake(args: &[&str], config: &Path, data: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_layercake"))
        .args(args)
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[tokio::test]
async fn url_and_token_commands() {
    let dir = tempfile::tempdir().unwrap();
    let (config, data) = (dir.path().join("c.toml"), dir.path().join("data"));
    std::fs::write(
        &config,
        format!("[signing]\nkeys = [\"{KEY}\"]\nrequired = true\n"),
    )
    .unwrap();
    let client = reqwest::Client::new();
    {
        // The first start records the catalogue's versions.
        let (_serve, line) = start_binary(
            &["serve", "--listen", "127.0.0.1:0"],
            &config,
            &data,
            "open http://",
        );
        let base = base_of(&line);
        let out = layercake(
            &[
                "url",
                "--asset",
                SOFA,
                "--configuration",
                r#"{"Body":"Navy"}"#,
                "--view",
                "left",
                "--width",
                "64",
                "--format",
                "webp",
            ],
            &config,
            &data,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8(out.stdout).unwrap().trim().to_string();
        assert!(
            url.starts_with("/api/fast-compositor?") && url.contains("signature="),
            "{url}"
        );
        let r = client.get(format!("{base}{url}")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        let bad = layercake(&["url", "--asset", SOFA, "--view", "top"], &config, &data);
        assert!(!bad.status.success());
        assert!(String::from_utf8_lossy(&bad.stderr).contains("--view top"));
    }

    // Tokens: created once, listed without the secret, revoked.
    let out = layercake(&["token", "create", "--name", "ci"], &config, &data);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(token.len(), 36);
    let list = String::from_utf8(layercake(&["token", "list"], &config, &data).stdout).unwrap();
    assert!(
        list.contains("private") && list.contains("ci") && !list.contains(&token),
        "{list}"
    );
    let id = list.split_whitespace().next().unwrap().to_string();
    let out = layercake(&["token", "create", "--public"], &config, &data);
    assert!(!out.status.success(), "a public token needs an origin");
    {
        let (_serve, line) = start_binary(
            &["serve", "--listen", "127.0.0.1:0"],
            &config,
            &data,
            "open http://",
        );
        let base = base_of(&line);
        let r = client
            .get(format!("{base}/api/layers"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let r = client
            .get(format!("{base}/api/layers"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert!(
        layercake(&["token", "revoke", &id], &config, &data)
            .status
            .success()
    );
    let (_serve, line) = start_binary(
        &["serve", "--listen", "127.0.0.1:0"],
        &config,
        &data,
        "open http://",
    );
    let r = client
        .get(format!("{}/api/layers", base_of(&line)))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "revoked");
}

#[test]
fn development_mode_refuses_to_listen_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "").unwrap();
    let out = layercake(
        &["serve", "--listen", "0.0.0.0:0"],
        &config,
        &dir.path().join("data"),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("development mode") && err.contains("loopback"),
        "{err}"
    );
}

#[tokio::test]
async fn sigterm_during_a_render_finishes_the_request_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    std::fs::write(
        dir.path().join("layer.png"),
        solid_png(1200, 1200, [9, 9, 9, 255]),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("render.sh"),
        format!("#!/bin/sh\ncat > /dev/null\nsleep 2\ncat {d}/layer.png\n"),
    )
    .unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!("[render]\nbackend = \"slow\"\n[render.backends.slow]\nkind = \"command\"\ncommand = [\"sh\", \"{d}/render.sh\"]\n"),
    )
    .unwrap();
    let (mut serve, line) = start_binary(
        &["serve", "--listen", "127.0.0.1:0"],
        &config,
        &dir.path().join("data"),
        "open http://",
    );
    let base = base_of(&line);
    let client = reqwest::Client::new();
    let url = format!(
        "{base}/api/fast-compositor?assetId={SOFA}&configuration={}&width=50",
        enc(&json!({}))
    );
    let request = tokio::spawn({
        let (c, u) = (client.clone(), url.clone());
        async move { c.get(&u).send().await.map(|r| r.status().as_u16()) }
    });
    common::eventually("a render started", || async {
        let t: serde_json::Value = client
            .get(format!("{base}/api/jobs/tasks?runStatus=running"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        t["count"].as_i64().unwrap_or(0) > 0
    })
    .await;
    let pid = i32::try_from(serve.0.id()).unwrap();
    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    assert_eq!(
        request.await.unwrap().unwrap(),
        200,
        "the request under way completes"
    );
    let status = common::eventually_blocking("the server exits", || serve.0.try_wait().unwrap());
    assert!(status.success(), "exit status {status}");
}

/// A PNG of `side`×`side` grey pixels: hundreds of megabytes once decoded,
/// about a megabyte on the wire.
fn bomb_png(side: u32) -> Vec<u8> {
    let mut png = Vec::new();
    let mut enc = png::Encoder::new(&mut png, side, side);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_compression(png::Compression::Fast);
    let mut w = enc.write_header().unwrap();
    let mut stream = w.stream_writer().unwrap();
    let row = vec![0u8; side as usize];
    for _ in 0..side {
        std::io::Write::write_all(&mut stream, &row).unwrap();
    }
    stream.finish().unwrap();
    drop(w);
    png
}

/// Peak resident memory of a process, from `/proc/<pid>/status`.

#[tokio::test]
async fn decompression_bombs_are_refused_from_their_header_and_peak_memory_stays_small() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    // 20000×20000: 400 MB as grey, 1.6 GB as RGBA, if anything decoded it.
    let bomb = bomb_png(20_000);
    assert!(bomb.len() < 2_000_000, "{} bytes", bomb.len());
    std::fs::write(dir.path().join("bomb.png"), &bomb).unwrap();
    std::fs::write(
        dir.path().join("render.sh"),
        format!("#!/bin/sh\ncat > /dev/null\ncat {d}/bomb.png\n"),
    )
    .unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[render]\nbackend = \"bomb\"\n[render.backends.bomb]\nkind = \"command\"\ncommand = [\"sh\", \"{d}/render.sh\"]\n[jobs]\nmax_attempts = 1\n"
        ),
    )
    .unwrap();
    let (serve, line) = start_binary(
        &["serve", "--listen", "127.0.0.1:0"],
        &config,
        &dir.path().join("data"),
        "open http://",
    );
    let base = base_of(&line);
    let pid = serve.0.id();
    let client = reqwest::Client::new();
    // Warm up the upload path with a small image before taking the baseline.
    let small =
        reqwest::multipart::Part::bytes(solid_png(64, 64, [1, 2, 3, 255])).file_name("s.png");
    let r = client
        .post(format!("{base}/api/files"))
        .multipart(reqwest::multipart::Form::new().part("files", small))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let before = peak_rss_kib(pid);

    // The bomb as an upload: 422 naming its size.
    let part = reqwest::multipart::Part::bytes(bomb.clone()).file_name("bomb.png");
    let r = client
        .post(format!("{base}/api/files"))
        .multipart(reqwest::multipart::Form::new().part("files", part))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let e: serde_json::Value = r.json().await.unwrap();
    assert!(e.to_string().contains("20000x20000"), "{e}");

    // The bomb as a renderer's output: the run fails naming its size, and
    // the miss answers 502 (with the fixed sentence; the size is on the run).
    let url = format!(
        "{base}/api/fast-compositor?assetId={SOFA}&configuration={}&width=50",
        enc(&json!({}))
    );
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "render-failed", "{e}");
    let runs: serde_json::Value = client
        .get(format!("{base}/api/jobs/runs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(runs.to_string().contains("20000x20000"), "{runs}");

    let after = peak_rss_kib(pid);
    let grown_mib = after.saturating_sub(before) / 1024;
    eprintln!("peak RSS {before} kB before the bombs, {after} kB after");
    // Decoding either would take 400 MB at the very least.
    assert!(grown_mib < 64, "peak RSS grew by {grown_mib} MiB");
}
