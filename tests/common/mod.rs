//! Shared harness: a real server on 127.0.0.1:0, in this process, with
//! settings and renderer chosen by the test.
#![allow(dead_code)]

use async_trait::async_trait;
use layercake::App;
use layercake::compose::LayerImage;
use layercake::config::{Overrides, Settings};
use layercake::render::{BuiltinRenderer, RenderError, RenderRequest, Renderer};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

pub mod eventually;
pub mod postgres;
pub mod seaweed;

// Each test file uses some of them.
#[allow(unused_imports)]
pub use eventually::{Guard, eventually, eventually_blocking, eventually_some, finishes};

pub const SOFA: &str = "03a29397-2265-40cd-8c45-41a1c4e12574";

/// Default settings with the object store in memory, and the metadata in
/// memory too, or, with `LC_TEST_META=postgres` (a second pass of
/// `.ci/run`), in a fresh database on the PostgreSQL server named by
/// `LC_TEST_POSTGRES_URL`.
pub fn settings() -> Settings {
    let mut s = Settings::load(None, &Overrides::default()).expect("default settings");
    s.storage.url = "memory://".into();
    s.meta.url = match std::env::var("LC_TEST_META").as_deref() {
        Ok("postgres") => scratch_postgres(),
        Ok("sqlite") | Err(_) => "sqlite::memory:".into(),
        Ok(other) => panic!("LC_TEST_META={other}: use sqlite or postgres"),
    };
    s
}

/// A new database on the test PostgreSQL server (`LC_TEST_POSTGRES_URL`).
pub fn scratch_postgres() -> String {
    scratch_postgres_on(
        &std::env::var("LC_TEST_POSTGRES_URL")
            .expect("LC_TEST_POSTGRES_URL names the test PostgreSQL server"),
    )
}

/// A new database on the PostgreSQL server of `base`.
pub fn scratch_postgres_on(base: &str) -> String {
    let base = base.to_string();
    // Callable from sync and async tests alike: a runtime of its own.
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(layercake::meta::create_scratch_database(&base))
    })
    .join()
    .unwrap()
    .expect("a scratch database")
}

/// Default settings with everything under `dir` (survives a restart).
pub fn settings_in(dir: &std::path::Path) -> Settings {
    let mut s = Settings::load(None, &Overrides::default()).expect("default settings");
    s.storage.data_dir = dir.to_path_buf();
    s
}

pub struct Server {
    pub base: String,
    pub app: Arc<App>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    pub async fn start(settings: Settings, renderer: Arc<dyn Renderer>) -> Server {
        let app = Arc::new(
            App::with_renderer(settings, renderer)
                .await
                .expect("app builds"),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(layercake::http::serve(
            listener,
            Arc::clone(&app),
            async move {
                let _ = rx.await;
            },
        ));
        Server {
            base,
            app,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.base, path_and_query)
    }

    /// Stops accepting, drains, and waits for the server task.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("server task").expect("server io");
        }
    }
}

/// The built-in renderer, counting renders per layer key description.
/// Counts when a render *starts*, then (optionally) waits before rendering,
/// so a render abandoned during the wait is still counted.
#[derive(Clone)]
pub struct Counting {
    inner: BuiltinRenderer,
    delay: std::time::Duration,
    pub counts: Arc<Mutex<HashMap<String, usize>>>,
    /// While false, renders wait (after counting) until it turns true.
    open: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Counting {
    pub fn new() -> Counting {
        Counting {
            inner: BuiltinRenderer::new(1 << 26),
            delay: std::time::Duration::ZERO,
            counts: Arc::default(),
            open: Arc::new(tokio::sync::watch::Sender::new(true)),
        }
    }

    pub fn slow(delay: std::time::Duration) -> Counting {
        Counting {
            delay,
            ..Counting::new()
        }
    }

    /// Renders that start from now on wait until [`Counting::release`].
    pub fn hold(&self) {
        self.open.send_replace(false);
    }

    pub fn release(&self) {
        self.open.send_replace(true);
    }

    pub fn total(&self) -> usize {
        self.counts.lock().unwrap().values().sum()
    }

    pub fn max_per_layer(&self) -> usize {
        self.counts
            .lock()
            .unwrap()
            .values()
            .copied()
            .max()
            .unwrap_or(0)
    }
}

#[async_trait]
impl Renderer for Counting {
    async fn render(&self, req: &RenderRequest) -> Result<LayerImage, RenderError> {
        let id = format!("{} {:?}", req.describe(), req.values);
        *self.counts.lock().unwrap().entry(id).or_default() += 1;
        let _ = self.open.subscribe().wait_for(|open| *open).await;
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.inner.render(req).await
    }
}

/// `encodeURIComponent(JSON.stringify(v))`.
pub fn enc(v: &serde_json::Value) -> String {
    form_urlencoded::byte_serialize(v.to_string().as_bytes()).collect()
}

pub fn image_url(config: &serde_json::Value, extra: &str) -> String {
    format!(
        "/api/fast-compositor?assetId={SOFA}&configuration={}{extra}",
        enc(config)
    )
}

/// GET a URL and parse its JSON body, asserting the status.
pub async fn get_json(client: &reqwest::Client, url: &str, status: u16) -> serde_json::Value {
    let r = client.get(url).send().await.expect("request");
    assert_eq!(r.status().as_u16(), status, "GET {url}");
    serde_json::from_slice(&r.bytes().await.unwrap()).expect("JSON body")
}

/// Sends a request: its status and JSON body (`null` when not JSON).
pub async fn status_and_body(r: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let bytes = r.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

/// Uploads one file to POST /api/files and returns its record.
pub async fn upload(
    client: &reqwest::Client,
    base: &str,
    filename: &str,
    bytes: Vec<u8>,
) -> serde_json::Value {
    let part = reqwest::multipart::Part::bytes(bytes).file_name(filename.to_string());
    let form = reqwest::multipart::Form::new().part("files", part);
    let r = client
        .post(format!("{base}/api/files"))
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status(), 201);
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    v["files"][0].clone()
}

/// A PNG of `w`×`h` pixels of one straight-alpha colour.
pub fn solid_png(w: u32, h: u32, rgba: [u8; 4]) -> Vec<u8> {
    let img = image::RgbaImage::from_pixel(w, h, image::Rgba(rgba));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

pub struct Proc(pub std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `layercake <args>` and waits for a line of its log containing
/// `ready`; returns the process and that line.
pub fn start_binary(
    args: &[&str],
    config: &std::path::Path,
    data: &std::path::Path,
    ready: &'static str,
) -> (Proc, String) {
    start_binary_env(args, &[], config, data, ready)
}

/// [`start_binary`] with environment variables set for the process.
pub fn start_binary_env(
    args: &[&str],
    env: &[(&str, &str)],
    config: &std::path::Path,
    data: &std::path::Path,
    ready: &'static str,
) -> (Proc, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_layercake"))
        .args(args)
        .envs(env.iter().copied())
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .env("NO_COLOR", "1")
        .env(
            "RUST_LOG",
            std::env::var("LC_TEST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("start layercake");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
            if line.contains(ready) {
                let _ = tx.send(line.clone());
            }
            eprintln!("  | {line}");
        }
    });
    let line = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("layercake {args:?} never logged {ready:?}"));
    (Proc(child), line)
}

/// `layercake serve` on 127.0.0.1:0 with `config` and `data`; its base URL.
pub fn start_serve(config: &std::path::Path, data: &std::path::Path) -> (Proc, String) {
    let (p, line) = start_binary(
        &["serve", "--listen", "127.0.0.1:0"],
        config,
        data,
        "open http://",
    );
    (p, base_of(&line))
}

/// `layercake worker --metrics-listen 127.0.0.1:0`; its `/metrics` URL.
pub fn start_worker_with_metrics(
    config: &std::path::Path,
    data: &std::path::Path,
) -> (Proc, String) {
    let (p, line) = start_binary(
        &["worker", "--metrics-listen", "127.0.0.1:0"],
        config,
        data,
        "worker metrics on http://",
    );
    let url = line
        .split("worker metrics on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the metrics URL in the line")
        .to_string();
    (p, url)
}

/// The base URL (`http://host:port`) in a `serve` log line `... open http://host:port/ ...`.
pub fn base_of(line: &str) -> String {
    let addr = line
        .split("open http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("a serve address in the line");
    format!("http://{addr}")
}

/// Processes whose command line mentions `needle`.
pub fn running_commands(needle: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .filter(|c| String::from_utf8_lossy(c).contains(needle))
        .count()
}

/// The value of one series in a Prometheus text exposition (0 if absent).
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Writes `dir/render.sh`, a `command` render backend that answers a
/// 1200² layer of `rgba` after `seconds`, or while `dir/slow` exists
/// after the seconds it holds, 60 if empty (a render to kill a worker
/// in). Returns the script's path.
pub fn render_script(dir: &std::path::Path, rgba: [u8; 4], seconds: f32) -> std::path::PathBuf {
    let d = dir.display();
    std::fs::write(dir.join("layer.png"), solid_png(1200, 1200, rgba)).unwrap();
    let script = dir.join("render.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncat > /dev/null\nif [ -e {d}/slow ]; then s=$(cat {d}/slow); sleep ${{s:-60}}; else sleep {seconds}; fi\ncat {d}/layer.png\n"
        ),
    )
    .unwrap();
    script
}

/// The peak resident set (VmHWM) of process `pid`, in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Runs `tests/browser/<script>` with `args` in headless Chromium (its
/// prerequisites checked: playwright-core in `tests/browser`, a Chromium at
/// `CHROMIUM` or Debian's), fails the test with the script's reason, and
/// returns the JSON report it prints last.
pub fn browser_check(script: &str, args: &[&str]) -> serde_json::Value {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "run `npm ci --prefix tests/browser` first (.ci/run does)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} is missing: apt-get install chromium (.ci/run does)"
    );
    let run = std::process::Command::new("node")
        .arg(dir.join(script))
        .args(args)
        .env("CHROMIUM", &chromium)
        .output()
        .expect("run node (Node.js 18+)");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(run.status.success(), "the browser check failed:\n{stderr}");
    serde_json::from_str(stdout.lines().last().unwrap_or("{}")).expect("a JSON report")
}
