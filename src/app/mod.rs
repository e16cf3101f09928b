//! The runtime assembled from [`Settings`]: metadata store, object store,
//! asset registry (live catalogue), memory tiers, record services, render
//! queue and compositor, in one value the HTTP layer and the CLI share.
//!
//! This is stage two of configuration: all I/O of start-up (reading the
//! catalogue, opening the stores, reconciling asset versions) happens here,
//! with errors that say which setting led to them.

pub mod batch;
pub mod health;
pub mod image;
pub mod params;

use crate::catalog::{Catalog, SharedCatalog};
use crate::config::Settings;
use crate::error::Error;
use crate::jobs::{Jobs, Worker, WorkerLimits};
use crate::meta::Meta;
use crate::pipeline::{Compositor, Limits};
use crate::render::{Renderer, Renderers};
use crate::service::{AssetRegistry, FileService, LayerService, SavedConfigurations};
use crate::store::{BlobStore, Budgets, MemoryTiers};
use crate::webhooks::Webhooks;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Everything a running server needs.
pub struct App {
    settings: Settings,
    meta: Arc<Meta>,
    store: BlobStore,
    assets: Arc<AssetRegistry>,
    files: FileService,
    layers: Arc<LayerService>,
    configurations: SavedConfigurations,
    compositor: Compositor,
    jobs: Arc<Jobs>,
    /// Finishes runs: of this process's render slots (when running them)
    /// and of remote render nodes (the worker protocol, always).
    worker: Arc<Worker>,
    webhooks: Arc<Webhooks>,
    signer: crate::signing::Signer,
    /// What sizes URLs anyone can change may ask for; the presets.
    sizes: crate::sizes::SizePolicy,
    /// The composite tier's byte budget (`storage.composite_budget_bytes`;
    /// none when 0), swept in the background.
    composite_budget: Option<Arc<crate::service::CompositeBudget>>,
    tokens: Arc<crate::service::TokenService>,
    /// Render workers (when `jobs.in_process`) and the webhook dispatcher.
    background: Background,
}

/// Long-running tasks of a process, stopped together.
#[derive(Default)]
pub struct Background {
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl Background {
    /// Stops the tasks and waits for them up to `grace` (a render still
    /// running after that is abandoned; its lease expires and another
    /// worker redoes it).
    pub async fn stop(&self, grace: Duration) {
        self.stop.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                ?grace,
                "background work still running at shutdown; abandoned"
            );
        }
    }

    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    pub fn token(&self) -> &CancellationToken {
        &self.stop
    }
}

/// Whether a process reconciles the catalogue files with the recorded
/// versions (`serve`), or only reads what the servers recorded (`worker`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Server,
    Worker,
}

/// What `serve` and `worker` processes both run: the stores, the asset
/// registry, the record services a render needs, the queue, and the
/// background tasks (render workers, unless a server has
/// `jobs.in_process = false`; the webhook dispatcher; the outbox flusher).
pub struct Core {
    pub meta: Arc<Meta>,
    pub store: BlobStore,
    pub assets: Arc<AssetRegistry>,
    pub files: FileService,
    pub layers: Arc<LayerService>,
    pub webhooks: Arc<Webhooks>,
    pub jobs: Arc<Jobs>,
    pub worker: Arc<Worker>,
    pub background: Background,
}

impl Core {
    /// Opens the stores, loads the catalogue and starts the background
    /// tasks; `builtin` replaces the built-in renderer (tests).
    ///
    /// # Errors
    /// [`AppError`] naming the setting, file or store at fault.
    pub async fn start(
        settings: &Settings,
        role: Role,
        builtin: Option<Arc<dyn Renderer>>,
    ) -> Result<Core, AppError> {
        let renderers =
            Renderers::from_settings(&settings.render, builtin).map_err(AppError::Render)?;
        let files_catalog = load_catalog(settings)?;
        let (meta, store) = open_stores(settings, true).await?;
        let assets = Arc::new(match role {
            Role::Server => AssetRegistry::start(Arc::clone(&meta), files_catalog)
                .await?
                .with_limits(settings.catalog.limits()),
            Role::Worker => AssetRegistry::follower(Arc::clone(&meta), files_catalog),
        });
        let missing = renderers.missing(assets.catalog().snapshot().assets());
        if !missing.is_empty() {
            return Err(AppError::Render(format!(
                "assets name render backends that are not configured: {}",
                missing.join("; ")
            )));
        }
        let files = FileService::new(Arc::clone(&meta), store.clone(), settings.render.max_pixels);
        let layers = Arc::new(LayerService::new(
            Arc::clone(&meta),
            store.clone(),
            files.clone(),
            Arc::clone(&assets),
        ));
        let webhooks = Arc::new(Webhooks::new(Arc::clone(&meta), settings.webhooks.clone())?);
        let jobs = Arc::new(Jobs::new(
            Arc::clone(&meta),
            Arc::clone(&webhooks),
            settings.jobs.clone(),
        ));
        let background = Background::default();
        let worker = Arc::new(Worker::new(
            Arc::clone(&jobs),
            store.clone(),
            Arc::clone(&assets) as Arc<dyn crate::jobs::Definitions>,
            renderers,
            Arc::clone(&layers) as Arc<dyn crate::jobs::Recorder>,
            worker_limits(settings),
        ));
        if role == Role::Worker || settings.jobs.in_process {
            worker.spawn(background.tracker(), background.token());
        }
        jobs.spawn_listener(background.tracker(), background.token());
        webhooks.spawn_dispatcher(background.tracker(), background.token());
        store.spawn_flusher(background.tracker(), background.token());
        Ok(Core {
            meta,
            store,
            assets,
            files,
            layers,
            webhooks,
            jobs,
            worker,
            background,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("catalogue: {0}")]
    Catalog(#[from] crate::catalog::CatalogError),
    #[error("storage: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("metadata: {0}")]
    Meta(#[from] crate::meta::MetaError),
    #[error("data dir {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error("start-up: {0}")]
    Start(#[from] Error),
    #[error("render backends: {0}")]
    Render(String),
    #[error("start-up: {0}")]
    Threads(String),
}

impl App {
    /// Builds the runtime with the built-in renderer.
    ///
    /// # Errors
    /// [`AppError`] when the catalogue does not load or a store cannot open.
    pub async fn build(settings: Settings) -> Result<App, AppError> {
        App::assemble(settings, None).await
    }

    /// Builds the runtime with `renderer` as the `builtin` backend (tests
    /// count or slow down renders this way).
    ///
    /// # Errors
    /// As [`App::build`].
    pub async fn with_renderer(
        settings: Settings,
        renderer: Arc<dyn Renderer>,
    ) -> Result<App, AppError> {
        App::assemble(settings, Some(renderer)).await
    }

    async fn assemble(
        settings: Settings,
        builtin: Option<Arc<dyn Renderer>>,
    ) -> Result<App, AppError> {
        // Install the metrics recorder before anything counts.
        if crate::telemetry::handle().is_none() {
            tracing::warn!("another metrics recorder is installed; /metrics will fail");
        }
        let Core {
            meta,
            store,
            assets,
            files,
            layers,
            webhooks,
            jobs,
            worker,
            background,
        } = Core::start(&settings, Role::Server, builtin).await?;
        let tiers = MemoryTiers::new(Budgets {
            composite_bytes: settings.cache.composite_bytes,
            layer_bytes: settings.cache.layer_bytes,
            stand_in_bytes: settings.cache.stand_in_bytes,
            flattened_bytes: settings.cache.flattened_bytes,
        });
        crate::telemetry::spawn_upkeep(background.tracker(), background.token());
        let compositor = compositor(&settings, tiers, &store, &jobs)?;
        assets.on_replaced_layers(Arc::new(compositor.clone()));
        let composite_budget = composite_budget(&settings, &meta, &store, &compositor, &background);
        if settings.catalog.refresh_ms > 0 {
            assets.spawn_refresh(
                Duration::from_millis(settings.catalog.refresh_ms),
                background.tracker(),
                background.token(),
            );
        }
        let configurations = SavedConfigurations::new(
            Arc::clone(&meta),
            Arc::clone(&assets),
            settings.cache.configuration_bytes,
        );
        let signer =
            crate::signing::Signer::new(&settings.signing.keys).map_err(AppError::Render)?;
        let tokens = Arc::new(crate::service::TokenService::new(Arc::clone(&meta)));
        let sizes = crate::sizes::SizePolicy::new(&settings.sizes, settings.http.max_dimension);
        Ok(App {
            settings,
            meta,
            store,
            assets,
            files,
            layers,
            configurations,
            compositor,
            jobs,
            worker,
            webhooks,
            signer,
            sizes,
            tokens,
            composite_budget,
            background,
        })
    }

    /// The settings it was built from.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The metadata store: for tools and tests. Handlers never call it
    /// (they reach records through the services; `tests/invariants.rs`).
    pub fn meta(&self) -> &Arc<Meta> {
        &self.meta
    }

    /// The object store: for tools and tests, as [`App::meta`].
    pub fn store(&self) -> &BlobStore {
        &self.store
    }

    /// Asset versions: the live catalogue.
    pub fn assets(&self) -> &Arc<AssetRegistry> {
        &self.assets
    }

    /// Uploaded files.
    pub fn files(&self) -> &FileService {
        &self.files
    }

    /// Layer records.
    pub fn layers(&self) -> &Arc<LayerService> {
        &self.layers
    }

    /// Saved configurations.
    pub fn configurations(&self) -> &SavedConfigurations {
        &self.configurations
    }

    /// The image pipeline.
    pub fn compositor(&self) -> &Compositor {
        &self.compositor
    }

    /// The render queue.
    pub fn jobs(&self) -> &Arc<Jobs> {
        &self.jobs
    }

    /// Finishes runs: of this process's render slots (when running them)
    /// and of remote render nodes (the worker protocol, always).
    pub fn worker(&self) -> &Arc<Worker> {
        &self.worker
    }

    /// Webhook subscriptions and deliveries.
    pub fn webhooks(&self) -> &Arc<Webhooks> {
        &self.webhooks
    }

    /// Signs and verifies image URLs.
    pub fn signer(&self) -> &crate::signing::Signer {
        &self.signer
    }

    /// What sizes URLs anyone can change may ask for; the presets.
    pub fn sizes(&self) -> &crate::sizes::SizePolicy {
        &self.sizes
    }

    /// The composite tier's budget, when `storage.composite_budget_bytes` sets one.
    pub fn composite_budget(&self) -> Option<&Arc<crate::service::CompositeBudget>> {
        self.composite_budget.as_ref()
    }

    /// API tokens.
    pub fn tokens(&self) -> &Arc<crate::service::TokenService> {
        &self.tokens
    }

    /// The live catalogue.
    pub fn catalog(&self) -> &Arc<SharedCatalog> {
        self.assets.catalog()
    }

    /// Stops the workers and the dispatcher (a render under way gets up to
    /// one lease to finish), waits for background writes and closes the
    /// metadata store.
    pub async fn shutdown(&self) {
        self.background
            .stop(Duration::from_secs(self.settings.jobs.lease_secs))
            .await;
        self.compositor.flush().await;
        // What was written since the background's last flush.
        if let Some(b) = &self.composite_budget
            && let Err(e) = b.flush().await
        {
            tracing::warn!(error = %e, "composite ledger not flushed at shutdown");
        }
        self.meta.close().await;
    }
}

/// The compositor over `tiers`, with the limits of `[compose]` and `[render]`.
fn compositor(
    settings: &Settings,
    tiers: MemoryTiers,
    store: &BlobStore,
    jobs: &Arc<Jobs>,
) -> Result<Compositor, AppError> {
    Compositor::new(
        tiers,
        store.clone(),
        Arc::clone(jobs),
        Limits {
            compose_concurrency: Settings::threads(settings.compose.concurrency),
            miss_wait: Duration::from_secs(settings.render.miss_wait_secs),
            max_layer_pixels: settings.render.max_pixels,
            compose_max_waiting: settings.compose.max_waiting,
            avif_budget: Duration::from_millis(settings.compose.avif_budget_ms),
            avif_concurrency: settings.compose.avif_concurrency,
            cpu_nice: settings.compose.nice,
        },
    )
    .map_err(|e| AppError::Threads(format!("compose threads: {e}")))
}

/// The composite tier's budget (`storage.composite_budget_bytes`; none
/// when 0), reported to by `compositor` and swept in the background.
fn composite_budget(
    settings: &Settings,
    meta: &Arc<Meta>,
    store: &BlobStore,
    compositor: &Compositor,
    background: &Background,
) -> Option<Arc<crate::service::CompositeBudget>> {
    (settings.storage.composite_budget_bytes > 0).then(|| {
        let budget = Arc::new(crate::service::CompositeBudget::new(
            Arc::clone(meta),
            store.clone(),
            settings.storage.composite_budget_bytes,
        ));
        compositor.report_to(Arc::clone(&budget) as Arc<dyn crate::store::Ledger>);
        budget.spawn(
            Duration::from_secs(settings.storage.composite_sweep_secs),
            background.tracker(),
            background.token(),
        );
        budget
    })
}

/// The catalogue files: the configured folder, or the built-in demo.
///
/// # Errors
/// [`AppError::Catalog`] naming the file and field.
pub fn load_catalog(settings: &Settings) -> Result<Catalog, AppError> {
    Ok(if settings.catalog.dir.is_empty() {
        Catalog::demo()?
    } else {
        Catalog::from_dir(Path::new(&settings.catalog.dir), &settings.catalog.limits())?
    })
}

/// Opens (creating the data dir if needed) the metadata and object stores;
/// with `local_tiers`, the object store's outbox and disk tier too (for
/// `serve` and `worker`; a one-shot tool such as `gc` must not leave
/// writes in an outbox nobody flushes).
///
/// # Errors
/// [`AppError`] naming the store.
pub async fn open_stores(
    settings: &Settings,
    local_tiers: bool,
) -> Result<(Arc<Meta>, BlobStore), AppError> {
    if settings.meta.url.is_empty() || settings.storage.url.is_empty() {
        let dir = &settings.storage.data_dir;
        std::fs::create_dir_all(dir)
            .map_err(|e| AppError::DataDir(dir.display().to_string(), e))?;
    }
    let meta = Arc::new(Meta::open(&settings.meta_url(), settings.meta.max_connections).await?);
    let mut options = settings.store_options();
    if !local_tiers {
        options.outbox = None;
        options.disk = None;
    }
    let store = BlobStore::open(&options)?;
    Ok((meta, store))
}

/// The worker pool's limits from the settings.
pub fn worker_limits(settings: &Settings) -> WorkerLimits {
    WorkerLimits {
        slots: Settings::threads(settings.render.concurrency),
        max_pixels: settings.render.max_pixels,
    }
}
