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
//! It works on a data dir ([`backend::Local`]) or against a server
//! (`--server URL --token T`, [`backend::Remote`]). A second run finds
//! everything done and does nothing; Ctrl-C cancels what is queued and
//! keeps what is done; the exit status is 1 when anything failed.

mod backend;
pub mod feed;

use crate::app::image::query_of;
use crate::catalog::Asset;
use crate::config::Settings;
use crate::jobs::plan;
use anyhow::{Context, bail};
use backend::{Backend, Counts, Local, Made, Remote};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Configurations `--all` may expand to.
const MAX_COMBINATIONS: usize = 100_000;

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

/// What one asset's plan found.
struct Planned {
    counts: Counts,
    images: Vec<Image>,
}

pub fn run(settings: Settings, mut args: PrefetchArgs) -> anyhow::Result<()> {
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
        let work = inputs(backend, args).await?;
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
        totals.plan.configurations += p.counts.configurations;
        totals.plan.layers += p.counts.layers;
        totals.plan.cached += p.counts.cached;
        totals.plan.tasks += p.counts.tasks;
    }
    if args.dry_run {
        println!("dry run: nothing rendered");
        return Ok(false);
    }
    for (w, p) in work.iter().zip(&plans) {
        if interrupt.is_cancelled() || !render(backend, w, p.counts, &mut totals, interrupt).await?
        {
            totals.interrupted = true;
            break;
        }
    }
    if args.composites && !totals.interrupted {
        for (w, p) in work.iter().zip(&plans) {
            if !composites(backend, args, w, &p.images, &mut totals, interrupt).await {
                totals.interrupted = true;
                break;
            }
        }
    }
    if let Some(path) = &args.output
        && !totals.interrupted
    {
        write_output(args, path, &work, &plans)?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}: {} configurations, {} distinct layers ({} were cached, {} rendered, {} failed){} in {secs:.2} s",
        if totals.interrupted {
            "interrupted"
        } else {
            "done"
        },
        totals.plan.configurations,
        totals.plan.layers,
        totals.plan.cached,
        totals.rendered,
        totals.render_failures,
        if args.composites {
            format!(
                "; {} composites ({} were cached, {} encoded, {} failed)",
                totals.composites, totals.cached, totals.encoded, totals.composite_failures
            )
        } else {
            String::new()
        }
    );
    Ok(totals.interrupted || totals.render_failures > 0 || totals.composite_failures > 0)
}

/// The assets, configurations and views the arguments name.
async fn inputs(backend: &dyn Backend, args: &PrefetchArgs) -> anyhow::Result<Vec<Work>> {
    let mut by_asset: Vec<(Arc<Asset>, Vec<Row>)> = Vec::new();
    if let Some(path) = &args.feed {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        let name = path.display().to_string();
        let assets = FeedAssets::collect(backend, &name, &text, args.asset).await?;
        let entries = feed::parse(&path.display().to_string(), &text, args.asset, &assets)?;
        for e in entries {
            let asset = assets.get(e.asset)?;
            match by_asset.iter_mut().find(|(a, _)| a.id == e.asset) {
                Some((_, list)) => list.push((e.id, e.configuration)),
                None => by_asset.push((asset, vec![(e.id, e.configuration)])),
            }
        }
    } else if let Some(id) = args.asset {
        let asset = backend.asset(id).await?;
        let filter = where_filter(&asset, &args.where_)?;
        let configs = plan::combinations(&asset, filter.as_ref(), MAX_COMBINATIONS)?;
        let list = configs
            .iter()
            .map(|c| match serde_json::from_str(&c.canonical(&asset)) {
                Ok(Value::Object(m)) => Ok((None, m)),
                _ => bail!("configuration {} is not an object", c.canonical(&asset)),
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        by_asset.push((asset, list));
    }
    by_asset
        .into_iter()
        .map(|(asset, configurations)| {
            let stages = views(&asset, &args.views)?;
            Ok(Work {
                asset,
                configurations,
                stages,
            })
        })
        .collect()
}

/// `--where Body=Navy,Rust` as the batch's `where` object.
fn where_filter(asset: &Asset, wheres: &[String]) -> anyhow::Result<Option<Map<String, Value>>> {
    if wheres.is_empty() {
        return Ok(None);
    }
    let mut out = Map::new();
    for w in wheres {
        let Some((name, values)) = w.split_once('=') else {
            bail!("--where {w}: expected ATTR=V1,V2");
        };
        let Some((_, attr)) = asset.attribute(name.trim()) else {
            bail!("--where {w}: {} has no attribute \"{name}\"", asset.name);
        };
        let values = values
            .split(',')
            .map(|v| {
                feed::cell(&attr.kind, v.trim()).map_err(|m| anyhow::anyhow!("--where {w}: {m}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        out.insert(name.trim().to_string(), Value::Array(values));
    }
    Ok(Some(out))
}

/// The named views (all when none), as (name, stage configuration).
fn views(asset: &Asset, names: &[String]) -> anyhow::Result<Vec<(String, Value)>> {
    let all: Vec<&str> = asset.views.iter().map(|v| v.name.as_str()).collect();
    let pick = |name: &str| {
        asset
            .views
            .iter()
            .find(|v| v.name == name)
            .map(|v| (v.name.clone(), Value::Object(v.stage.clone())))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "--views: {} has no view \"{name}\" ({})",
                    asset.name,
                    all.join(", ")
                )
            })
    };
    if names.is_empty() {
        return all.iter().map(|n| pick(n)).collect();
    }
    let mut out: Vec<(String, Value)> = Vec::new();
    for name in names {
        let group = match name.as_str() {
            _ if all.contains(&name.as_str()) => None,
            "turntable" => Some(asset.turntable()),
            "stills" => Some(asset.stills()),
            _ => None,
        };
        let picked = match group {
            Some(ix) => ix
                .iter()
                .map(|&i| pick(&asset.views[i].name))
                .collect::<anyhow::Result<Vec<_>>>()?,
            None => vec![pick(name)?],
        };
        for p in picked {
            if !out.iter().any(|(n, _)| *n == p.0) {
                out.push(p);
            }
        }
    }
    Ok(out)
}

/// The assets a feed names, fetched once each.
struct FeedAssets(Vec<Arc<Asset>>);

impl FeedAssets {
    /// `--asset` and the feed's `assetId` values, each fetched once. A
    /// lookup that fails is reported here; the parser then names the line.
    async fn collect(
        backend: &dyn Backend,
        file: &str,
        text: &str,
        default: Option<Uuid>,
    ) -> anyhow::Result<FeedAssets> {
        let mut ids: Vec<Uuid> = default.into_iter().collect();
        for id in feed::asset_ids(file, text) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        let mut assets = Vec::new();
        for id in ids {
            match backend.asset(id).await {
                Ok(a) => assets.push(a),
                Err(e) => eprintln!("asset {id}: {e:#}"),
            }
        }
        Ok(FeedAssets(assets))
    }

    fn get(&self, id: Uuid) -> anyhow::Result<Arc<Asset>> {
        self.0
            .iter()
            .find(|a| a.id == id)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("unknown asset {id}"))
    }
}

impl feed::Assets for FeedAssets {
    fn asset(&self, id: Uuid) -> Option<Arc<Asset>> {
        self.get(id).ok()
    }
}

/// A progress bar (on stderr) when stdout is a terminal; plain lines on
/// stderr, when the count moves and at most every 2 s, elsewhere (logs, CI).
struct Meter {
    bar: Option<ProgressBar>,
    what: &'static str,
    total: u64,
    started: Instant,
    last_line: Instant,
    last_done: Option<u64>,
}

impl Meter {
    fn new(what: &'static str, total: u64) -> Meter {
        let bar = std::io::stdout().is_terminal().then(|| {
            let b = ProgressBar::new(total);
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix:>10} [{bar:40}] {pos}/{len} {per_sec} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b.set_prefix(what);
            b
        });
        Meter {
            bar,
            what,
            total,
            started: Instant::now(),
            last_line: Instant::now(),
            last_done: None,
        }
    }

    fn set(&mut self, done: u64) {
        if let Some(b) = &self.bar {
            b.set_position(done);
            return;
        }
        let moved = self.last_done != Some(done);
        let first = self.last_done.is_none();
        if !(first
            || (moved
                && (done == self.total || self.last_line.elapsed() >= Duration::from_secs(2))))
        {
            return;
        }
        self.last_line = Instant::now();
        self.last_done = Some(done);
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = done as f64 / secs;
        let eta = if rate > 0.0 {
            (self.total - done.min(self.total)) as f64 / rate
        } else {
            0.0
        };
        eprintln!(
            "{}: {done}/{} ({rate:.1}/s, ETA {eta:.0} s)",
            self.what, self.total
        );
        let _ = std::io::stderr().flush();
    }

    /// A message that does not garble the bar.
    fn println(&self, line: &str) {
        match &self.bar {
            Some(b) => b.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
        }
    }
}

/// Where the jobs are, summed; a failed poll is retried for a while (a
/// server restarting, a timeout) before the run gives up.
async fn poll(
    backend: &dyn Backend,
    asset: &Asset,
    jobs: &[Uuid],
) -> anyhow::Result<backend::Progress> {
    let mut sum = backend::Progress {
        stopped: true,
        ..Default::default()
    };
    for job in jobs {
        let mut tries = 0;
        let p = loop {
            match backend.progress(asset, *job).await {
                Ok(p) => break p,
                Err(e) if tries < 30 => {
                    tries += 1;
                    eprintln!("job {job}: {e:#}; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => return Err(e),
            }
        };
        sum.total += p.total;
        sum.successes += p.successes;
        sum.failures += p.failures;
        sum.stopped &= p.stopped;
    }
    Ok(sum)
}

/// Queues and follows one asset's renders; `false` when interrupted (the
/// jobs are cancelled: what is rendered stays).
async fn render(
    backend: &dyn Backend,
    w: &Work,
    planned: Counts,
    totals: &mut Totals,
    interrupt: &CancellationToken,
) -> anyhow::Result<bool> {
    if planned.tasks == 0 {
        // Nothing missing when planned: queue no (empty) job.
        return Ok(true);
    }
    let (counts, jobs) = w.batch(backend, false).await?;
    if jobs.is_empty() {
        return Ok(true);
    }
    let mut meter = Meter::new("renders", counts.tasks);
    loop {
        let p = poll(backend, &w.asset, &jobs).await?;
        meter.set(p.successes + p.failures);
        if p.stopped {
            meter.finish();
            totals.rendered += p.successes;
            totals.render_failures += p.failures;
            if p.failures > 0 {
                meter.println(&format!(
                    "{} of {} renders failed: see GET /api/jobs/{{id}} for {jobs:?}",
                    p.failures, p.total
                ));
            }
            return Ok(true);
        }
        tokio::select! {
            () = interrupt.cancelled() => {
                meter.finish();
                meter.println("interrupted: cancelling the queued renders; finished ones are kept");
                for job in &jobs {
                    backend.cancel(&w.asset, *job).await?;
                }
                let p = poll(backend, &w.asset, &jobs).await?;
                totals.rendered += p.successes;
                totals.render_failures += p.failures;
                return Ok(false);
            }
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// Encodes one asset's composites; `false` when interrupted.
async fn composites(
    backend: &dyn Backend,
    args: &PrefetchArgs,
    w: &Work,
    images: &[Image],
    totals: &mut Totals,
    interrupt: &CancellationToken,
) -> bool {
    let mut meter = Meter::new("composites", images.len() as u64);
    let mut stream = futures::stream::iter(
        images
            .iter()
            .map(|i| async move { (i, backend.composite(&w.asset, &i.url).await) }),
    )
    .buffer_unordered(args.concurrency.max(1));
    let mut done = 0;
    loop {
        tokio::select! {
            () = interrupt.cancelled() => {
                meter.finish();
                meter.println("interrupted: composites made so far are kept");
                return false;
            }
            next = stream.next() => match next {
                None => break,
                Some((image, result)) => {
                    done += 1;
                    totals.composites += 1;
                    match result {
                        Ok(Made::Cached) => totals.cached += 1,
                        Ok(Made::Encoded) => totals.encoded += 1,
                        Err(e) => {
                            totals.composite_failures += 1;
                            meter.println(&format!("composite {} failed: {e:#}", image.url));
                        }
                    }
                    meter.set(done);
                }
            }
        }
    }
    meter.finish();
    true
}

/// The image URLs, one line each, as CSV or JSONL (by the file's
/// extension), written to a temporary file and renamed into place.
fn write_output(
    args: &PrefetchArgs,
    path: &Path,
    work: &[Work],
    plans: &[Planned],
) -> anyhow::Result<()> {
    let jsonl = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("jsonl") || e.eq_ignore_ascii_case("ndjson"));
    let mut out = Vec::new();
    if !jsonl {
        out.extend_from_slice(b"id,assetId,view,width,format,configuration,url\n");
    }
    let mut n = 0;
    for (w, p) in work.iter().zip(plans) {
        for i in &p.images {
            n += 1;
            let url = format!("{}{}", args.base, i.url);
            if jsonl {
                let line = serde_json::json!({
                    "id": i.id, "assetId": w.asset.id, "view": i.view, "width": i.width,
                    "format": i.format, "configuration": i.configuration, "url": url,
                });
                out.extend_from_slice(line.to_string().as_bytes());
                out.push(b'\n');
            } else {
                let mut row = csv::Writer::from_writer(Vec::new());
                row.write_record([
                    i.id.clone().unwrap_or_default(),
                    w.asset.id.to_string(),
                    i.view.clone(),
                    i.width.map(|x| x.to_string()).unwrap_or_default(),
                    i.format.clone(),
                    Value::Object(i.configuration.clone()).to_string(),
                    url,
                ])?;
                out.extend_from_slice(&row.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?);
            }
        }
    }
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, &out).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("write {}", path.display()))?;
    println!("wrote {n} image URLs to {}", path.display());
    Ok(())
}
