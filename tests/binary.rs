//! The real `layercake` binary: the README's commands, a restart on the same
//! data dir, and a clean exit on SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const SOFA: &str = "03a29397-2265-40cd-8c45-41a1c4e12574";

struct Running {
    child: Child,
    base: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `layercake serve` on an ephemeral loopback port and reads the
/// address it logs.
fn serve(data_dir: &std::path::Path) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_layercake"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start layercake");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("open http://").nth(1) {
                let _ = tx.send(rest.split('/').next().unwrap_or_default().to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the server logs its address");
    Running {
        child,
        base: format!("http://{addr}"),
    }
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

/// The child's exit status, once it has exited (under the hang guard).
fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    common::eventually_blocking("the server exits", || child.try_wait().unwrap())
}

#[tokio::test]
async fn readme_example_then_hit_then_restart_serves_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    // The README's curl example, as a URL.
    let path = format!(
        "/api/fast-compositor?assetId={SOFA}&configuration=%7B%22Body%22%3A%22Navy%22%2C%22Pillows%22%3A%22Teal%22%7D&width=1024&format=webp"
    );

    let mut server = serve(dir.path());
    let r = client
        .get(format!("{}{path}", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-layercake-cache"], "miss");
    let bytes = r.bytes().await.unwrap();
    let img = image::load_from_memory(&bytes).unwrap();
    assert_eq!((img.width(), img.height()), (1024, 1024));
    let r = client
        .get(format!("{}{path}", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-layercake-cache"], "hit-memory");
    let page = client
        .get(format!("{}/", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<img"));

    sigterm(&server.child);
    let status = wait_exit(&mut server.child);
    assert!(status.success(), "exit status {status}");
    drop(server);

    // Same data dir: the composite comes back from the object store.
    let server = serve(dir.path());
    let r = client
        .get(format!("{}{path}", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-layercake-cache"], "hit-store");
    assert_eq!(
        r.bytes().await.unwrap(),
        bytes,
        "identical bytes after a restart"
    );
}

#[test]
fn catalog_check_and_config_print() {
    let out = Command::new(env!("CARGO_BIN_EXE_layercake"))
        .args(["catalog", "check"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Harbor Sofa"), "{text}");

    let out = Command::new(env!("CARGO_BIN_EXE_layercake"))
        .args(["config"])
        .env("LAYERCAKE_HTTP__LISTEN", "127.0.0.1:9999")
        .output()
        .unwrap();
    assert!(out.status.success());
    let merged: toml::Table = toml::from_str(&String::from_utf8(out.stdout).unwrap()).unwrap();
    assert_eq!(merged["http"]["listen"].as_str(), Some("127.0.0.1:9999"));

    let bad = tempfile::tempdir().unwrap();
    std::fs::write(
        bad.path().join("broken.json"),
        r#"{"id": "x", "name": "y"}"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_layercake"))
        .args(["catalog", "check"])
        .arg(bad.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("broken.json"),
        "the error names the file: {err}"
    );
}
