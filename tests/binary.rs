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

#[test]
fn a_config_file_s_paths_are_relative_to_its_folder_from_anywhere() {
    let elsewhere = tempfile::tempdir().unwrap();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let blender = repo.join("config/blender.toml");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_layercake"))
            .args(args)
            .current_dir(elsewhere.path())
            // README's remote-node variable breaks no other command.
            .env("LAYERCAKE_WORKER_TOKEN", "lc_worker_not_a_setting")
            .output()
            .unwrap()
    };
    let out = run(&["catalog", "check", "--config", blender.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("Harbor Sofa 3D"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["config", "--config", blender.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let merged: toml::Table = toml::from_str(&String::from_utf8(out.stdout).unwrap()).unwrap();
    let data_dir = std::path::PathBuf::from(merged["storage"]["data_dir"].as_str().unwrap());
    assert_eq!(data_dir, repo.join("config/../data/blender"));
    // A folder that is not there is named once, absolute, relative to the
    // file that named it.
    std::fs::write(
        elsewhere.path().join("c.toml"),
        "[catalog]\ndir = \"missing\"\n",
    )
    .unwrap();
    let out = run(&[
        "serve",
        "--config",
        "c.toml",
        "--data-dir",
        "data",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let missing = format!(
        "{}: cannot read folder",
        elsewhere.path().join("missing").display()
    );
    assert_eq!(err.matches(&missing).count(), 1, "{err}");

    // serve with a config file elsewhere: its catalogue and data dir are
    // found beside the file, whatever the working directory (this test's
    // is the repository).
    assert!(
        run(&["catalog", "new", "Desk lamp", "--dir", "products"])
            .status
            .success()
    );
    std::fs::create_dir(elsewhere.path().join("conf")).unwrap();
    let conf = elsewhere.path().join("conf/c.toml");
    std::fs::write(
        &conf,
        "[catalog]\ndir = \"../products\"\n[storage]\ndata_dir = \"../state\"\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_layercake"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&conf)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.contains("open http://"))
        .expect("serve starts");
    let base = common::base_of(&line);
    let assets = curl_get(&format!("{base}/api/assets"));
    sigterm(&child);
    wait_exit(&mut child);
    assert!(assets.contains("Desk lamp"), "{assets}");
    assert!(
        elsewhere.path().join("state").is_dir(),
        "the data dir is beside the file"
    );
}

/// A GET without an async runtime (this test has none).
fn curl_get(url: &str) -> String {
    let out = Command::new("curl").args(["-s", url]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn an_api_asset_exported_to_a_catalogue_keeps_its_version() {
    let dir = tempfile::tempdir().unwrap();
    let (config, data, catalog) = (
        dir.path().join("c.toml"),
        dir.path().join("data"),
        dir.path().join("products"),
    );
    std::fs::write(&config, "").unwrap();
    let id = "6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8c9d";
    let svg = "<svg xmlns='http://www.w3.org/2000/svg' width='16' height='16'><rect width='16' height='16' fill='#336699'/></svg>";
    let definition = serde_json::json!({
        "name": "Tile", "width": 16, "height": 16, "attributes": [],
        "views": [{"name": "front", "stage": {"Camera": 0}}],
        "layers": [{"id": "7b8c9d0e-1f2a-4b3c-9d4e-5f6a7b8c9d0e", "name": "Face", "render": {"template": svg}}]
    });
    let client = reqwest::Client::new();
    {
        let (_serve, line) = common::start_binary(
            &["serve", "--listen", "127.0.0.1:0"],
            &config,
            &data,
            "open http://",
        );
        let base = common::base_of(&line);
        let r = client
            .put(format!("{base}/api/assets/{id}"))
            .json(&definition)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        // The first version is replaced by a second, so "the same version"
        // is not just "version 1".
        let mut changed = definition.clone();
        changed["name"] = "Blue tile".into();
        let r = client
            .put(format!("{base}/api/assets/{id}"))
            .json(&changed)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_layercake"))
        .args(["catalog", "export", id, "--dir"])
        .arg(&catalog)
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = catalog.join("blue-tile.json");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert!(
        written.get("version").is_none(),
        "the version is the server's: {written}"
    );
    let (_serve, line) = common::start_binary(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--catalog",
            catalog.to_str().unwrap(),
        ],
        &config,
        &data,
        "open http://",
    );
    let base = common::base_of(&line);
    let asset = common::get_json(&client, &format!("{base}/api/assets/{id}"), 200).await;
    assert_eq!(
        (asset["version"].as_u64(), asset["name"].as_str()),
        (Some(2), Some("Blue tile"))
    );
    let r = client
        .put(format!("{base}/api/assets/{id}"))
        .json(&definition)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        409,
        "from now on the file is the asset's source of truth"
    );
}
