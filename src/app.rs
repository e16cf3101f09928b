//! The runtime assembled from [`Settings`]: catalogue, object store, memory
//! tiers, render queue and compositor, in one value the HTTP layer and the
//! CLI share.
//!
//! This is stage two of configuration: all I/O of start-up (reading the
//! catalogue, opening the store) happens here, with errors that say which
//! setting led to them.

use crate::catalog::Catalog;
use crate::config::Settings;
use crate::jobs::{InProcess, InProcessLimits};
use crate::pipeline::{Compositor, Limits};
use crate::render::{BuiltinRenderer, Renderer};
use crate::store::{BlobStore, Budgets, MemoryTiers};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Everything a running server needs.
pub struct App {
    pub settings: Settings,
    pub catalog: Arc<Catalog>,
    pub store: BlobStore,
    pub compositor: Compositor,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("catalogue: {0}")]
    Catalog(#[from] crate::catalog::CatalogError),
    #[error("storage: {0}")]
    Store(#[from] crate::store::StoreError),
}

impl App {
    /// Builds the runtime with the built-in renderer.
    ///
    /// # Errors
    /// [`AppError`] when the catalogue does not load or the store cannot open.
    pub fn build(settings: Settings) -> Result<App, AppError> {
        let renderer = Arc::new(BuiltinRenderer::new(settings.render.max_pixels));
        App::with_renderer(settings, renderer)
    }

    /// Builds the runtime around a given renderer (tests count renders this way).
    ///
    /// # Errors
    /// As [`App::build`].
    pub fn with_renderer(settings: Settings, renderer: Arc<dyn Renderer>) -> Result<App, AppError> {
        let catalog = if settings.catalog.dir.is_empty() {
            Catalog::demo()?
        } else {
            Catalog::from_dir(Path::new(&settings.catalog.dir))?
        };
        let store = BlobStore::open(&settings.store_url())?;
        let tiers = MemoryTiers::new(Budgets {
            composite_bytes: settings.cache.composite_bytes,
            layer_bytes: settings.cache.layer_bytes,
        });
        let queue = InProcess::new(
            renderer,
            store.clone(),
            InProcessLimits {
                concurrency: Settings::threads(settings.render.concurrency),
                timeout: Duration::from_secs(settings.render.timeout_secs),
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
        Ok(App { settings, catalog: Arc::new(catalog), store, compositor })
    }
}
