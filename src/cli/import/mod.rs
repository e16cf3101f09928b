//! `layercake import <dir> --asset <id>`: registers a folder of
//! pre-rendered layer images with a server, through its own API (`POST
//! /api/files`, then `POST /api/layers`), so every image is checked exactly
//! as a registration over HTTP is; the same command serves a local `serve`
//! and a remote one. The layout is `plan`'s.
//!
//! Resumable: an image whose bytes are already registered for its layer,
//! view and values in the live version is left alone, so a re-run
//! registers only what is missing or changed. A bad file is reported with
//! its path and the rest go on; the exit status says whether any failed.

mod plan;

use crate::catalog::spec::{AssetSpec, AttributeType};
use crate::config::Settings;
use crate::service::files::content_hash;
use anyhow::{Context, anyhow, bail};
use plan::{Entry, Plan, Problem};
use reqwest::{Client, RequestBuilder, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;
use uuid::Uuid;

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// Folder of layer images: <view>/<layer>/<value>[+<value>…].png (one
    /// value per dependsOn attribute, in order), <view>/<layer>.png for a
    /// layer that depends on nothing; .jpg and .webp too.
    pub dir: PathBuf,
    /// The asset the images belong to.
    #[arg(long)]
    pub asset: Uuid,
    /// The server to register with (default: http://<http.listen>).
    #[arg(long)]
    pub server: Option<String>,
    /// A private token (none in development mode).
    #[arg(long, env = "LAYERCAKE_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the plan (what would be registered, what is already, every
    /// problem) and register nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// What became of each image.
#[derive(Default)]
struct Tally {
    registered: usize,
    unchanged: usize,
    failed: Vec<Problem>,
}

pub fn run(settings: Settings, args: ImportArgs) -> anyhow::Result<()> {
    let server = args
        .server
        .clone()
        .unwrap_or_else(|| format!("http://{}", settings.http.listen));
    let api = Api {
        client: Client::builder()
            .timeout(std::time::Duration::from_secs(
                settings.http.request_timeout_secs + 30,
            ))
            .build()?,
        base: server.trim_end_matches('/').to_string(),
        token: args.token.clone(),
    };
    let max_bytes = settings.http.max_upload_bytes;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(import(&api, &args, max_bytes))
}

async fn import(api: &Api, args: &ImportArgs, max_bytes: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    let spec: AssetSpec = serde_json::from_value(
        api.json(api.get(&format!("/api/assets/{}", args.asset)))
            .await?,
    )
    .context("the server's asset definition does not read")?;
    let plan = plan::plan(&args.dir, &spec)
        .with_context(|| format!("cannot read {}", args.dir.display()))?;
    let known = api.registered(&spec).await?;
    let Plan { entries, problems } = plan;
    let mut tally = Tally {
        failed: problems,
        ..Tally::default()
    };
    let bar = indicatif::ProgressBar::new(entries.len() as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} images, {elapsed} ({eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut todo = 0;
    // The images that are (or, in a dry run, would be) registered.
    let mut usable = Vec::new();
    for e in &entries {
        bar.inc(1);
        match check(e, &spec, &known, api, max_bytes).await {
            Ok(None) => tally.unchanged += 1,
            Ok(Some(_)) if args.dry_run => todo += 1,
            Ok(Some(bytes)) => match api.register(e, &spec, bytes).await {
                Ok(()) => tally.registered += 1,
                Err(reason) => {
                    tally.failed.push(problem(e, reason));
                    continue;
                }
            },
            Err(reason) => {
                tally.failed.push(problem(e, reason));
                continue;
            }
        }
        usable.push(e);
    }
    bar.finish_and_clear();
    tally.failed.sort_by(|a, b| a.path.cmp(&b.path));
    for p in &tally.failed {
        println!("  {}: {}", p.path.display(), p.reason);
    }
    let (have, need) = coverage(&spec, &usable);
    let verb = if args.dry_run {
        "would register"
    } else {
        "registered"
    };
    println!(
        "asset {} \"{}\" v{}: {verb} {}, unchanged {}, failed {}, in {:.1} s",
        spec.id,
        spec.name,
        spec.version,
        if args.dry_run { todo } else { tally.registered },
        tally.unchanged,
        tally.failed.len(),
        started.elapsed().as_secs_f64()
    );
    if let Some(need) = need {
        let are = if args.dry_run { "would be" } else { "are" };
        println!(
            "{have} of the {need} layer images the asset's configurations use {are} registered from the folder; the rest render on demand"
        );
    }
    if !tally.failed.is_empty() {
        bail!("{} file(s) not imported (listed above)", tally.failed.len());
    }
    Ok(())
}

fn problem(e: &Entry, reason: String) -> Problem {
    Problem {
        path: e.path.clone(),
        reason,
    }
}

/// The entry's bytes when they need registering, `None` when exactly these
/// are registered already; a problem found before any upload (too big,
/// not an image, not the canvas's size) as the error.
async fn check(
    e: &Entry,
    spec: &AssetSpec,
    known: &HashMap<String, String>,
    api: &Api,
    max_bytes: usize,
) -> Result<Option<Vec<u8>>, String> {
    let bytes = std::fs::read(&e.path).map_err(|err| format!("cannot read: {err}"))?;
    if bytes.len() > max_bytes {
        return Err(format!(
            "{} bytes, over http.max_upload_bytes ({max_bytes})",
            bytes.len()
        ));
    }
    // The header alone: a decompression bomb costs nothing here.
    let size = image::ImageReader::new(std::io::Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|err| err.to_string())
        .and_then(|r| r.into_dimensions().map_err(|err| err.to_string()))
        .map_err(|err| format!("not a readable image: {err}"))?;
    if size != (spec.width, spec.height) {
        return Err(format!(
            "is {}x{}; the asset's canvas is {}x{}",
            size.0, size.1, spec.width, spec.height
        ));
    }
    if let Some(file) = known.get(&identity(spec, e))
        && api.file_hash(file).await.as_deref() == Some(content_hash(&bytes).as_str())
    {
        return Ok(None);
    }
    Ok(Some(bytes))
}

/// Layer, values and stage as one comparable text.
fn identity(spec: &AssetSpec, e: &Entry) -> String {
    let stage = Value::Object(spec.views[e.view].stage.clone());
    format!(
        "{} {} {}",
        spec.layers[e.layer].id,
        Value::Object(e.values.clone()),
        stage
    )
}

/// How many distinct (layer, view, values) images of `entries` there are, and
/// how many the asset's configurations can use (`None` when a number or
/// colour attribute makes that unbounded).
fn coverage(spec: &AssetSpec, entries: &[&Entry]) -> (usize, Option<usize>) {
    let mut need = 0usize;
    for l in &spec.layers {
        let mut n = spec.views.len();
        for d in &l.depends_on {
            let a = spec.attributes.iter().find(|a| &a.name == d);
            n *= match a.map(|a| a.kind) {
                Some(AttributeType::String) => {
                    a.and_then(|a| a.values.as_ref()).map_or(0, Vec::len)
                }
                Some(AttributeType::Boolean) => 2,
                _ => return (entries.len(), None),
            };
        }
        need += n;
    }
    let mut seen: Vec<String> = entries.iter().map(|e| identity(spec, e)).collect();
    seen.sort();
    seen.dedup();
    (seen.len(), Some(need))
}

/// The server's API, as this command uses it.
struct Api {
    client: Client,
    base: String,
    token: Option<String>,
}

impl Api {
    fn get(&self, path: &str) -> RequestBuilder {
        self.auth(self.client.get(format!("{}{path}", self.base)))
    }

    fn auth(&self, r: RequestBuilder) -> RequestBuilder {
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// The answer's JSON, or its error message.
    async fn json(&self, r: RequestBuilder) -> anyhow::Result<Value> {
        let resp = r
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        answer(resp).await.map_err(|m| anyhow!(m))
    }

    /// `identity` → file id of every layer registered or rendered for the
    /// live version (the newest of each).
    async fn registered(&self, spec: &AssetSpec) -> anyhow::Result<HashMap<String, String>> {
        let mut out = HashMap::new();
        for page in 1.. {
            let q = format!("/api/layers?assetId={}&perPage=100&page={page}", spec.id);
            let list = self.json(self.get(&q)).await?;
            let layers = list["layers"].as_array().cloned().unwrap_or_default();
            for l in &layers {
                if l["assetVersion"] != json!(spec.version.to_string()) {
                    continue;
                }
                let key = format!(
                    "{} {} {}",
                    l["assetLayer"].as_str().unwrap_or(""),
                    l["assetLayerConfiguration"],
                    l["stageConfiguration"]
                );
                out.insert(key, l["fileId"].as_str().unwrap_or("").to_string());
            }
            if layers.len() < 100 {
                break;
            }
        }
        Ok(out)
    }

    /// The `blake3-<hex>` of a file's content, if the server says it.
    async fn file_hash(&self, id: &str) -> Option<String> {
        let f = self
            .json(self.get(&format!("/api/files/{id}")))
            .await
            .ok()?;
        f["hash"].as_str().map(str::to_string)
    }

    /// Uploads the image and registers it as the entry's layer.
    async fn register(&self, e: &Entry, spec: &AssetSpec, bytes: Vec<u8>) -> Result<(), String> {
        let name = e
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("layer.png")
            .to_string();
        let part = reqwest::multipart::Part::bytes(bytes).file_name(name);
        let form = reqwest::multipart::Form::new().part("files", part);
        let post = |path: &str| self.auth(self.client.post(format!("{}{path}", self.base)));
        let sent = post("/api/files")
            .multipart(form)
            .send()
            .await
            .map_err(|err| err.to_string())?;
        let files = answer(sent).await?;
        let file = files["files"][0]["id"]
            .as_str()
            .ok_or("the upload answered no file id")?;
        let body = json!({
            "assetId": spec.id,
            "assetLayer": spec.layers[e.layer].id,
            "assetLayerConfiguration": e.values,
            "stageConfiguration": spec.views[e.view].stage,
            "fileId": file,
            "width": spec.width,
            "height": spec.height,
        });
        let sent = post("/api/layers")
            .json(&body)
            .send()
            .await
            .map_err(|err| err.to_string())?;
        answer(sent).await.map(|_| ())
    }
}

/// A 2xx answer's JSON; otherwise the server's error message.
async fn answer(resp: Response) -> Result<Value, String> {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(body);
    }
    let message = body["error"]["message"].as_str().unwrap_or("no message");
    Err(format!(
        "the server answered {}: {message}",
        status.as_u16()
    ))
}
