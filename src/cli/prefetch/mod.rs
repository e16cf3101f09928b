//! `layercake prefetch`: warms the cache for a catalogue before shoppers
//! ask, so that the first product-listing page never waits for a render.
//!
//! 1. Inputs: every combination of an asset (`--asset ID --all`, optionally
//!    `--where Attr=a,b`), or a product feed (`--feed FILE`, CSV or JSONL,
//!    see [`feed`]); the views, sizes and formats to produce.
//! 2. The plan, printed first: configurations, distinct layer keys, how
//!    many are cached, how many to render, composites to encode.
//! 3. The renders, as one batch job per asset through the Jobs system (the
//!    distinct missing layers only), with a progress bar (plain lines when
//!    stderr is not a terminal).
//! 4. With `--composites`, every image encoded and stored too (bounded by
//!    `--concurrency`), the place for slow encoders such as AVIF.
//! 5. With `--output`, the final image URLs (pinned, signed when signing is
//!    configured) as CSV or JSONL.
//!
//! It works on a data dir ([`local::Local`]) or against a server
//! (`--server URL --token T`, [`remote::Remote`]), both behind
//! [`backend::Backend`]. Here: the arguments and the run; `inputs` reads
//! what to cover, `progress` follows renders and composites, `output`
//! writes the URLs. A second run finds
//! everything done and does nothing; Ctrl-C cancels what is queued and
//! keeps what is done; the exit status is 1 when anything failed.

mod backend;
pub mod feed;
mod inputs;
mod local;
mod output;
mod progress;
mod remote;

use crate::app::image::query_of;
use crate::catalog::Asset;
use crate::config::Settings;
use anyhow::bail;
use backend::{Backend, Counts};
use futures::StreamExt;
use local::Local;
use remote::Remote;
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Debug, clap::Args)]
pub struct PrefetchArgs {
    /// The asset (with --all; or the default asset of a feed).
    #[arg(long)]
    pub asset: Option<Uuid>,
    /// Every combination of the asset's options.
    #[arg(long, requires = "asset", conflicts_with = "feed")]
    pub all: bool,
    /// With --all: only these values of an attribute, e.g. Body=Navy,Rust (repeatable).
    #[arg(long = "where", value_name = "ATTR=V1,V2", requires = "all")]
    pub where_: Vec<String>,
    /// A product feed: CSV (one column per attribute) or JSONL ({assetId, configuration}).
    #[arg(long)]
    pub feed: Option<PathBuf>,
    /// Views by name, comma-separated (default: every view); `turntable`
    /// stands for the turntable's views (the 360° spin), `stills` for the
    /// others (the carousel's), unless the asset has a view of that name.
    #[arg(long, value_delimiter = ',')]
    pub views: Vec<String>,
    /// Image widths, comma-separated (default: the canvas size).
    #[arg(long, value_delimiter = ',')]
    pub sizes: Vec<u32>,
    /// Formats, comma-separated: png, jpg, webp, avif.
    #[arg(long, value_delimiter = ',', default_value = "webp")]
    pub formats: Vec<String>,
    /// Also encode and store every composite (views × sizes × formats).
    #[arg(long)]
    pub composites: bool,
    /// Print the plan only.
    #[arg(long)]
    pub dry_run: bool,
    /// Write the image URLs here: .csv or .jsonl.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Prefix of the URLs written to --output, e.g. https://images.example.com.
    #[arg(long, default_value = "")]
    pub base: String,
    /// A layercake server to work through (instead of --data-dir).
    #[arg(long, requires = "token")]
    pub server: Option<String>,
    /// A private token of that server.
    #[arg(long)]
    pub token: Option<String>,
    /// Composites made at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
}

/// A product id (from the feed) and the configuration.
type Row = (Option<String>, Map<String, Value>);

/// What one asset's share of the run is.
struct Work {
    asset: Arc<Asset>,
    /// In input order.
    configurations: Vec<Row>,
    stages: Vec<(String, Value)>,
}

impl Work {
    /// Plans (`dry_run`) or queues this asset's renders.
    async fn batch(
        &self,
        backend: &dyn Backend,
        dry_run: bool,
    ) -> anyhow::Result<(Counts, Vec<Uuid>)> {
        let configs: Vec<Value> = self
            .configurations
            .iter()
            .map(|(_, c)| Value::Object(c.clone()))
            .collect();
        let stages: Vec<Value> = self.stages.iter().map(|(_, s)| s.clone()).collect();
        backend.batch(&self.asset, &configs, &stages, dry_run).await
    }

    /// Image queries: configuration × view × size × format.
    fn images(&self, args: &PrefetchArgs) -> Vec<Image> {
        let sizes: Vec<Option<u32>> = if args.sizes.is_empty() {
            vec![None]
        } else {
            args.sizes.iter().copied().map(Some).collect()
        };
        let mut out = Vec::new();
        for (id, config) in &self.configurations {
            for (view, stage) in &self.stages {
                for size in &sizes {
                    for format in &args.formats {
                        let mut p = Map::new();
                        p.insert("assetId".into(), self.asset.id.to_string().into());
                        p.insert("configuration".into(), Value::Object(config.clone()));
                        p.insert("stageConfiguration".into(), stage.clone());
                        if let Some(w) = size {
                            p.insert("width".into(), (*w).into());
                        }
                        p.insert("format".into(), format.clone().into());
                        out.push(Image {
                            id: id.clone(),
                            view: view.clone(),
                            width: *size,
                            format: format.clone(),
                            configuration: config.clone(),
                            query: query_of(&p).unwrap_or_default(),
                            url: String::new(),
                        });
                    }
                }
            }
        }
        out
    }
}

struct Image {
    id: Option<String>,
    view: String,
    width: Option<u32>,
    format: String,
    configuration: Map<String, Value>,
    query: String,
    /// Path and query as the service serves it (pinned, signed if keys).
    url: String,
}

/// Totals for the summary.
#[derive(Default)]
struct Totals {
    plan: Counts,
    rendered: u64,
    render_failures: u64,
    composites: u64,
    cached: u64,
    encoded: u64,
    composite_failures: u64,
    interrupted: bool,
}

impl Totals {
    /// The closing line: what was done (or, interrupted, done so far).
    fn report(&self, args: &PrefetchArgs, secs: f64) {
        println!(
            "{}: {} configurations, {} distinct layers ({} were cached, {} rendered, {} failed){} in {secs:.2} s",
            if self.interrupted {
                "interrupted"
            } else {
                "done"
            },
            self.plan.configurations,
            self.plan.layers,
            self.plan.cached,
            self.rendered,
            self.render_failures,
            if args.composites {
                format!(
                    "; {} composites ({} were cached, {} encoded, {} failed)",
                    self.composites, self.cached, self.encoded, self.composite_failures
                )
            } else {
                String::new()
            }
        );
    }
}

/// What one asset's plan found.
struct Planned {
    counts: Counts,
    images: Vec<Image>,
}

pub fn run(settings: Settings, mut args: PrefetchArgs) -> anyhow::Result<()> {
    check(&settings, &mut args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let failed = runtime.block_on(async {
        // Listening for Ctrl-C from the start. The first stops the run
        // cleanly (queued renders cancelled, finished work kept); a second
        // one quits at once.
        let interrupt = CancellationToken::new();
        let on_signal = interrupt.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("stopping (Ctrl-C again to quit at once)");
                on_signal.cancel();
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
        let backend: Box<dyn Backend> = match (&args.server, &args.token) {
            (Some(server), Some(token)) => Box::new(Remote::new(server, token)?),
            _ => Box::new(Local::open(settings).await?),
        };
        let result = prefetch(backend.as_ref(), &args, &interrupt).await;
        backend.close().await;
        result
    })?;
    if failed {
        std::process::exit(1);
    }
    Ok(())
}

/// The arguments checked (before anything opens); `--base` defaults to
/// `--server`.
fn check(settings: &Settings, args: &mut PrefetchArgs) -> anyhow::Result<()> {
    if args.all == args.feed.is_some() {
        bail!("give either --asset ID --all or --feed FILE");
    }
    for f in &args.formats {
        if !matches!(f.as_str(), "png" | "jpg" | "jpeg" | "webp" | "avif") {
            bail!("--formats: unknown format \"{f}\" (png, jpg, webp, avif)");
        }
    }
    let max = settings.http.max_dimension;
    if let Some(w) = args.sizes.iter().find(|w| **w == 0 || **w > max) {
        bail!("--sizes: {w} is not between 1 and {max} (http.max_dimension)");
    }
    if let Some(path) = &args.output {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !matches!(
            ext.to_ascii_lowercase().as_str(),
            "csv" | "jsonl" | "ndjson"
        ) {
            bail!("--output {}: name a .csv or .jsonl file", path.display());
        }
    }
    if args.base.is_empty()
        && let Some(server) = &args.server
    {
        args.base = server.trim_end_matches('/').to_string();
    }
    Ok(())
}

/// One asset's plan: the layer counts, the image URLs, and (with
/// `--composites`) how many images are cached already.
async fn plan_one(backend: &dyn Backend, args: &PrefetchArgs, w: &Work) -> anyhow::Result<Planned> {
    let (counts, _) = w.batch(backend, true).await?;
    let mut images = w.images(args);
    if args.composites || args.output.is_some() {
        let queries: Vec<String> = images.iter().map(|i| i.query.clone()).collect();
        for (image, url) in images
            .iter_mut()
            .zip(backend.urls(&w.asset, &queries).await?)
        {
            image.url = url;
        }
    }
    let mut cached = 0;
    if args.composites {
        let checks =
            futures::stream::iter(images.iter().map(|i| backend.is_cached(&w.asset, &i.url)))
                .buffer_unordered(16)
                .collect::<Vec<_>>()
                .await;
        for c in checks {
            cached += u64::from(c?);
        }
    }
    println!(
        "plan {} ({}): {} configurations × {} views: {} distinct layers, {} cached, {} to render{}",
        w.asset.name,
        w.asset.id,
        counts.configurations,
        w.stages.len(),
        counts.layers,
        counts.cached,
        counts.tasks,
        if args.composites {
            format!(
                "; {} composites, {} cached, {} to encode",
                images.len(),
                cached,
                images.len() as u64 - cached
            )
        } else {
            String::new()
        }
    );
    Ok(Planned { counts, images })
}

/// The whole run; `true` when anything failed or it was interrupted.
async fn prefetch(
    backend: &dyn Backend,
    args: &PrefetchArgs,
    interrupt: &CancellationToken,
) -> anyhow::Result<bool> {
    let started = Instant::now();
    let mut totals = Totals::default();
    let planning = async {
        let work = inputs::inputs(backend, args).await?;
        let mut plans = Vec::new();
        for w in &work {
            plans.push(plan_one(backend, args, w).await?);
        }
        anyhow::Ok((work, plans))
    };
    let (work, plans) = tokio::select! {
        r = planning => r?,
        () = interrupt.cancelled() => {
            println!("interrupted while planning: nothing queued");
            return Ok(true);
        }
    };
    for p in &plans {
        totals.plan.add(p.counts);
    }
    if args.dry_run {
        println!("dry run: nothing rendered");
        return Ok(false);
    }
    for (w, p) in work.iter().zip(&plans) {
        if interrupt.is_cancelled()
            || !progress::render(backend, w, p.counts, &mut totals, interrupt).await?
        {
            totals.interrupted = true;
            break;
        }
    }
    if args.composites && !totals.interrupted {
        for (w, p) in work.iter().zip(&plans) {
            if !progress::composites(backend, args, w, &p.images, &mut totals, interrupt).await {
                totals.interrupted = true;
                break;
            }
        }
    }
    if let Some(path) = &args.output
        && !totals.interrupted
    {
        output::write_output(args, path, &work, &plans)?;
    }
    totals.report(args, started.elapsed().as_secs_f64());
    Ok(totals.interrupted || totals.render_failures > 0 || totals.composite_failures > 0)
}
