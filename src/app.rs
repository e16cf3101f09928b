//! The runtime assembled from [`Settings`]: metadata store, object store,
//! asset registry (live catalogue), memory tiers, record services, render
//! queue and compositor, in one value the HTTP layer and the CLI share.
//!
//! This is stage two of configuration: all I/O of start-up (reading the
//! catalogue, opening the stores, reconciling asset versions) happens here,
//! with errors that say which setting led to them.

use crate::catalog::{Catalog, SharedCatalog};
use crate::config::Settings;
use crate::error::Error;
use crate::jobs::{InProcess, InProcessLimits};
use crate::meta::Meta;
use crate::pipeline::{Compositor, Limits};
use crate::render::{BuiltinRenderer, Renderer};
use crate::service::{AssetRegistry, FileService, LayerService, SavedConfigurations};
use crate::store::{BlobStore, Budgets, MemoryTiers};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Everything a running server needs.
pub struct App {
    pub settings: Settings,
    pub meta: Arc<Meta>,
    pub store: BlobStore,
    pub assets: Arc<AssetRegistry>,
    pub files: FileService,
    pub layers: Arc<LayerService>,
    pub configurations: SavedConfigurations,
    pub compositor: Compositor,
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
}

impl App {
    /// Builds the runtime with the built-in renderer.
    ///
    /// # Errors
    /// [`AppError`] when the catalogue does not load or a store cannot open.
    pub async fn build(settings: Settings) -> Result<App, AppError> {
        let renderer = Arc::new(BuiltinRenderer::new(settings.render.max_pixels));
        App::with_renderer(settings, renderer).await
    }

    /// Builds the runtime around a given renderer (tests count renders this way).
    ///
    /// # Errors
    /// As [`App::build`].
    pub async fn with_renderer(
        settings: Settings,
        renderer: Arc<dyn Renderer>,
    ) -> Result<App, AppError> {
        let files_catalog = if settings.catalog.dir.is_empty() {
            Catalog::demo()?
        } else {
            Catalog::from_dir(Path::new(&settings.catalog.dir))?
        };
        if settings.meta.url.is_empty() || settings.storage.url.is_empty() {
            let dir = &settings.storage.data_dir;
            std::fs::create_dir_all(dir)
                .map_err(|e| AppError::DataDir(dir.display().to_string(), e))?;
        }
        let meta = Arc::new(Meta::open(&settings.meta_url()).await?);
        let store = BlobStore::open(&settings.store_url())?;
        let assets = Arc::new(AssetRegistry::start(Arc::clone(&meta), files_catalog).await?);
        let tiers = MemoryTiers::new(Budgets {
            composite_bytes: settings.cache.composite_bytes,
            layer_bytes: settings.cache.layer_bytes,
        });
        let files = FileService::new(Arc::clone(&meta), store.clone());
        let layers = Arc::new(LayerService::new(
            Arc::clone(&meta),
            store.clone(),
            files.clone(),
            Arc::clone(&assets),
        ));
        let queue = InProcess::new(
            renderer,
            store.clone(),
            Arc::clone(&layers) as Arc<dyn crate::jobs::Recorder>,
            InProcessLimits {
                concurrency: Settings::threads(settings.render.concurrency),
                timeout: Duration::from_secs(settings.render.timeout_secs),
                max_pixels: settings.render.max_pixels,
            },
        );
        let compositor = Compositor::new(
            tiers,
            store.clone(),
            Arc::new(queue),
            Limits {
                compose_concurrency: Settings::threads(settings.compose.concurrency),
                miss_wait: Duration::from_secs(settings.render.miss_wait_secs),
                max_layer_pixels: settings.render.max_pixels,
            },
        );
        let configurations = SavedConfigurations::new(Arc::clone(&meta), Arc::clone(&assets));
        Ok(App {
            settings,
            meta,
            store,
            assets,
            files,
            layers,
            configurations,
            compositor,
        })
    }

    /// The live catalogue.
    pub fn catalog(&self) -> &Arc<SharedCatalog> {
        self.assets.catalog()
    }

    /// Waits for background writes and closes the metadata store.
    pub async fn shutdown(&self) {
        self.compositor.flush().await;
        self.meta.close().await;
    }
}
