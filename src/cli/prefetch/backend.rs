//! Where prefetch does its work: this process, on a data dir
//! ([`Local`]: the stores, an in-process render queue and workers), or a
//! layercake server over HTTP with a private token ([`Remote`]).

use crate::app::App;
use crate::catalog::Asset;
use crate::config::Settings;
use crate::http::{image_request_for, pinned_url};
use crate::jobs::{batch, plan};
use crate::pipeline::Source;
use anyhow::{Context, anyhow, bail};
use async_trait::async_trait;
use serde_json::{Value, json};
use std::sync::Arc;
use uuid::Uuid;

/// Configurations (or image URLs) per request to a server.
const CHUNK: usize = 1000;
/// Retries of a request answered 429 or 503.
const RETRIES: u32 = 5;
/// Tries for a composite answered with a stand-in, a second apart.
const AVIF_POLLS: u32 = 600;

/// The query of an image URL (`/api/fast-compositor?<query>`).
fn query_part(url: &str) -> &str {
    url.split_once('?').map_or(url, |(_, q)| q)
}

/// A batch plan in numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub configurations: u64,
    pub layers: u64,
    pub cached: u64,
    pub tasks: u64,
}

impl Counts {
    fn from_json(p: &Value) -> Counts {
        let n = |k: &str| p[k].as_u64().unwrap_or(0);
        Counts {
            configurations: n("configurations"),
            layers: n("layers"),
            cached: n("cached"),
            tasks: n("tasks"),
        }
    }
}

/// Where a batch job is.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub total: u64,
    pub successes: u64,
    pub failures: u64,
    pub stopped: bool,
}

/// One composite's fate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Made {
    Cached,
    Encoded,
}

#[async_trait]
pub trait Backend: Send + Sync {
    /// The asset's live definition.
    async fn asset(&self, id: Uuid) -> anyhow::Result<Arc<Asset>>;
    /// Plans (`dry_run`) or queues the renders of `configurations` on
    /// `stages`; the jobs queued (none when nothing is missing).
    async fn batch(
        &self,
        asset: &Asset,
        configurations: &[Value],
        stages: &[Value],
        dry_run: bool,
    ) -> anyhow::Result<(Counts, Vec<Uuid>)>;
    async fn progress(&self, asset: &Asset, job: Uuid) -> anyhow::Result<Progress>;
    async fn cancel(&self, asset: &Asset, job: Uuid) -> anyhow::Result<()>;
    /// Whether the image at `url` (from [`Backend::urls`]) is cached,
    /// without making it.
    async fn is_cached(&self, asset: &Asset, url: &str) -> anyhow::Result<bool>;
    /// Makes (or finds) the image at `url`, AVIF included (no stand-in).
    async fn composite(&self, asset: &Asset, url: &str) -> anyhow::Result<Made>;
    /// The final URLs (path and query, pinned and signed as the service
    /// would) of `queries`, each checked as the image route checks it.
    async fn urls(&self, asset: &Asset, queries: &[String]) -> anyhow::Result<Vec<String>>;
    /// Stops background work, keeping what is done.
    async fn close(&self);
}

/// In this process, on the data dir's stores.
pub struct Local {
    app: App,
}

impl Local {
    /// Opens the stores and starts in-process workers (the catalogue is
    /// reconciled as `serve` does).
    ///
    /// # Errors
    /// When the stores or the catalogue do not open.
    pub async fn open(mut settings: Settings) -> anyhow::Result<Local> {
        settings.jobs.in_process = true;
        Ok(Local {
            app: App::build(settings).await?,
        })
    }
}

#[async_trait]
impl Backend for Local {
    async fn asset(&self, id: Uuid) -> anyhow::Result<Arc<Asset>> {
        self.app
            .catalog()
            .get(&id)
            .ok_or_else(|| anyhow!("unknown asset {id} (not in this data dir's catalogue)"))
    }

    async fn batch(
        &self,
        asset: &Asset,
        configurations: &[Value],
        stages: &[Value],
        dry_run: bool,
    ) -> anyhow::Result<(Counts, Vec<Uuid>)> {
        let asset = self.asset(asset.id).await?;
        let request = plan::BatchRequest {
            asset_id: asset.id.to_string(),
            configurations: Some(configurations.to_vec()),
            all: false,
            where_: None,
            stage_configurations: Some(stages.to_vec()),
            dry_run,
        };
        let planned = {
            let asset = Arc::clone(&asset);
            tokio::task::spawn_blocking(move || {
                let (configs, views) = request.expand(&asset, usize::MAX, u64::MAX)?;
                Ok::<_, crate::error::Error>(plan::plan(&asset, &configs, &views))
            })
            .await??
        };
        let missing = batch::missing(&self.app.store(), &self.app.meta(), &planned).await?;
        let counts = Counts::from_json(&batch::summary(&asset, &planned, missing.layers.len()));
        if dry_run || missing.layers.is_empty() {
            return Ok((counts, Vec::new()));
        }
        let spec = batch::spec(asset.org, &asset, &planned, &missing);
        let job = self
            .app
            .jobs()
            .submit(spec, &missing.layers, false)
            .await?
            .job;
        Ok((counts, vec![job.id]))
    }

    async fn progress(&self, asset: &Asset, job: Uuid) -> anyhow::Result<Progress> {
        let row = self.app.meta().job(asset.org, job).await?;
        let c = self.app.meta().job_counts(job).await?;
        let n = |x: i64| u64::try_from(x).unwrap_or(0);
        Ok(Progress {
            total: n(c.total),
            successes: n(c.successes),
            failures: n(c.failures),
            stopped: row.status == "stopped",
        })
    }

    async fn cancel(&self, asset: &Asset, job: Uuid) -> anyhow::Result<()> {
        self.app.jobs().cancel(asset.org, job).await?;
        Ok(())
    }

    async fn is_cached(&self, asset: &Asset, url: &str) -> anyhow::Result<bool> {
        let req = image_request_for(&self.app, asset.org, query_part(url))?;
        Ok(self.app.compositor().is_cached(&req).await?)
    }

    async fn composite(&self, asset: &Asset, url: &str) -> anyhow::Result<Made> {
        let mut req = image_request_for(&self.app, asset.org, query_part(url))?;
        req.patient = true;
        let img = self.app.compositor().image(req).await?;
        Ok(match img.source {
            Source::Memory | Source::Store => Made::Cached,
            Source::Composed | Source::Fallback => Made::Encoded,
        })
    }

    async fn urls(&self, asset: &Asset, queries: &[String]) -> anyhow::Result<Vec<String>> {
        let live = self.asset(asset.id).await?;
        let buster = &self.app.settings().http.cache_buster;
        queries
            .iter()
            .map(|q| {
                image_request_for(&self.app, asset.org, q).with_context(|| format!("image {q}"))?;
                Ok(pinned_url(&self.app.signer(), &live, buster, q))
            })
            .collect()
    }

    async fn close(&self) {
        self.app.shutdown().await;
    }
}

/// A layercake server, over HTTP, with a private token.
pub struct Remote {
    base: String,
    token: String,
    client: reqwest::Client,
}

impl Remote {
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(base: &str, token: &str) -> anyhow::Result<Remote> {
        Ok(Remote {
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(120))
                .build()?,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `POST <path>` with a JSON body, as [`Remote::json`] sends it.
    async fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let body = body.to_string();
        let make = || {
            self.client
                .post(self.url(path))
                .header("content-type", "application/json")
                .body(body.clone())
        };
        self.json(make, &format!("POST {path}")).await
    }

    /// Sends the request `make` builds, retrying 429 and 503 (a busy or
    /// briefly unavailable server) after their `Retry-After`, a few times.
    async fn json(
        &self,
        make: impl Fn() -> reqwest::RequestBuilder,
        what: &str,
    ) -> anyhow::Result<Value> {
        for attempt in 0.. {
            let r = make()
                .bearer_auth(&self.token)
                .send()
                .await
                .with_context(|| format!("{what}: {}", self.base))?;
            let status = r.status();
            if matches!(status.as_u16(), 429 | 503) && attempt < RETRIES {
                let wait = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(2)
                    .clamp(1, 30);
                tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
                continue;
            }
            let body = r.text().await.unwrap_or_default();
            if !status.is_success() {
                bail!("{what}: {status}: {}", error_message(&body));
            }
            return serde_json::from_str(&body)
                .with_context(|| format!("{what}: the answer is not JSON"));
        }
        unreachable!("the loop returns")
    }
}

#[async_trait]
impl Backend for Remote {
    async fn asset(&self, id: Uuid) -> anyhow::Result<Arc<Asset>> {
        let mut v = self
            .json(
                || self.client.get(self.url(&format!("/api/assets/{id}"))),
                "GET asset",
            )
            .await?;
        // The definition, without the record's own fields (createdAt...).
        const SPEC: [&str; 10] = [
            "id",
            "name",
            "version",
            "description",
            "width",
            "height",
            "attributes",
            "views",
            "layers",
            "renderer",
        ];
        if let Value::Object(m) = &mut v {
            m.retain(|k, _| SPEC.contains(&k.as_str()));
            // This side checks configurations and names views; rendering is
            // the server's, so templates (maybe files on the server) are
            // replaced by an empty one.
            if let Some(Value::Array(layers)) = m.get_mut("layers") {
                for l in layers {
                    l["render"] = json!({"template": "<svg xmlns='http://www.w3.org/2000/svg'/>"});
                }
            }
            // A 3D asset's scene parts go with its scene (which stays there).
            for (list, field) in [("attributes", "scene"), ("views", "camera")] {
                if let Some(Value::Array(items)) = m.get_mut(list) {
                    for item in items.iter_mut().filter_map(Value::as_object_mut) {
                        item.remove(field);
                    }
                }
            }
        }
        let asset = crate::catalog::load_asset_str(
            &format!("asset {id}"),
            &v.to_string(),
            &crate::catalog::Limits::NONE,
        )
        .with_context(|| format!("the server's definition of asset {id}"))?;
        Ok(Arc::new(asset))
    }

    /// In chunks of [`CHUNK`] configurations (request bodies and the
    /// server's `jobs.max_batch_configurations` stay bounded); the counts
    /// add up per chunk, so a layer shared by two chunks counts twice.
    async fn batch(
        &self,
        asset: &Asset,
        configurations: &[Value],
        stages: &[Value],
        dry_run: bool,
    ) -> anyhow::Result<(Counts, Vec<Uuid>)> {
        let mut total = Counts::default();
        let mut jobs = Vec::new();
        for chunk in configurations.chunks(CHUNK) {
            let body = json!({
                "assetId": asset.id,
                "configurations": chunk,
                "stageConfigurations": stages,
                "dryRun": dry_run,
            });
            let v = self.post_json("/api/jobs", &body).await?;
            let c = Counts::from_json(&v["parameters"]);
            total.configurations += c.configurations;
            total.layers += c.layers;
            total.cached += c.cached;
            total.tasks += c.tasks;
            if !dry_run
                && c.tasks > 0
                && let Some(id) = v["id"].as_str().and_then(|s| Uuid::parse_str(s).ok())
            {
                jobs.push(id);
            }
        }
        Ok((total, jobs))
    }

    async fn progress(&self, _: &Asset, job: Uuid) -> anyhow::Result<Progress> {
        let v = self
            .json(
                || self.client.get(self.url(&format!("/api/jobs/{job}"))),
                "GET job",
            )
            .await?;
        let n = |k: &str| v[k].as_u64().unwrap_or(0);
        Ok(Progress {
            total: n("taskCount"),
            successes: n("taskResultSuccesses"),
            failures: n("taskResultFailures"),
            stopped: v["status"] == "stopped",
        })
    }

    async fn cancel(&self, _: &Asset, job: Uuid) -> anyhow::Result<()> {
        self.json(
            || {
                self.client
                    .post(self.url(&format!("/api/jobs/{job}/cancel")))
            },
            "cancel job",
        )
        .await?;
        Ok(())
    }

    async fn is_cached(&self, _: &Asset, url: &str) -> anyhow::Result<bool> {
        let r = self
            .client
            .head(self.url(url))
            .header("cache-control", "only-if-cached")
            .bearer_auth(&self.token)
            .send()
            .await?;
        match r.status().as_u16() {
            200 => Ok(true),
            504 => Ok(false),
            s => bail!("HEAD image: {s}"),
        }
    }

    /// A WebP stand-in (`miss-fallback`: the AVIF is still encoding, or
    /// every AVIF slot was busy) is asked again until the AVIF is there.
    async fn composite(&self, _: &Asset, url: &str) -> anyhow::Result<Made> {
        let mut made = Made::Cached;
        for _ in 0..AVIF_POLLS {
            let r = self
                .client
                .get(self.url(url))
                .bearer_auth(&self.token)
                .send()
                .await?;
            let status = r.status();
            let source = r
                .headers()
                .get(crate::http::CACHE_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            if matches!(status.as_u16(), 429 | 503) {
                made = Made::Encoded;
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
            if !status.is_success() {
                let body = r.text().await.unwrap_or_default();
                bail!("{status}: {}", body.trim());
            }
            // Reading the body completes the work, as a browser would.
            r.bytes().await?;
            if source == "miss-fallback" {
                made = Made::Encoded;
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
            if !source.starts_with("hit") {
                made = Made::Encoded;
            }
            return Ok(made);
        }
        bail!("still not the requested format after {AVIF_POLLS} tries")
    }

    async fn urls(&self, asset: &Asset, queries: &[String]) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::with_capacity(queries.len());
        for chunk in queries.chunks(CHUNK) {
            let images: Vec<Value> = chunk
                .iter()
                .map(|q| {
                    let mut m = serde_json::Map::new();
                    for (k, v) in form_urlencoded::parse(q.as_bytes()) {
                        let v = match k.as_ref() {
                            "configuration" | "stageConfiguration" => {
                                serde_json::from_str(&v).unwrap_or(Value::String(v.into_owned()))
                            }
                            _ => Value::String(v.into_owned()),
                        };
                        m.insert(k.into_owned(), v);
                    }
                    Value::Object(m)
                })
                .collect();
            let v = self
                .post_json("/api/urls", &json!({ "images": images }))
                .await?;
            let urls = v["urls"]
                .as_array()
                .ok_or_else(|| anyhow!("POST /api/urls: no urls for asset {}", asset.id))?;
            out.extend(urls.iter().filter_map(|u| u.as_str().map(str::to_string)));
        }
        Ok(out)
    }

    async fn close(&self) {}
}

/// What an error answer says: the `message` of its `{"error": {...}}` body
/// (with the request id, when the server gave one), else the body itself.
fn error_message(body: &str) -> String {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return body.to_string();
    };
    match (
        v["error"]["message"].as_str(),
        v["error"]["requestId"].as_str(),
    ) {
        (Some(m), Some(id)) => format!("{m} (request {id})"),
        (Some(m), None) => m.to_string(),
        _ => body.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::error_message;

    #[test]
    fn an_error_answer_reads_as_its_message() {
        assert_eq!(
            error_message(r#"{"error":{"code":"invalid","message":"width must be at most 4096"}}"#),
            "width must be at most 4096"
        );
        assert_eq!(
            error_message(
                r#"{"error":{"code":"internal","message":"internal error","requestId":"r-1"}}"#
            ),
            "internal error (request r-1)"
        );
        assert_eq!(error_message("Bad Gateway"), "Bad Gateway");
        assert_eq!(error_message(r#"{"message":"x"}"#), r#"{"message":"x"}"#);
    }
}
