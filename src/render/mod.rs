//! Renderers: one layer, one (restricted) configuration, one view → pixels.
//!
//! [`Renderer`] is the seam every backend implements:
//! - `builtin` rasterises the asset's SVG templates with resvg;
//! - `command` runs a program with the request as JSON on stdin and reads
//!   a PNG from its stdout;
//! - `http` POSTs the request as JSON to a render farm and reads a PNG back.
//!
//! [`Renderers`] picks the backend of an asset (its `renderer`, else the
//! configured default). A renderer neither stores nor caches anything:
//! deciding *whether* to render, and keeping the result, is the job of
//! `jobs` and `store`. Output of external backends is checked by
//! [`external::decode_output`] (dimensions from the header against the
//! pixel budget before any pixel is inflated) and, like every output, by
//! `jobs::validate` against the canvas.

pub mod blender;
pub mod builtin;
mod command;
pub mod external;
mod http;
mod settings;

pub use blender::{BlenderRenderer, BlenderSettings};
pub use builtin::BuiltinRenderer;
pub use command::CommandRenderer;
pub use http::HttpRenderer;
pub use settings::{BackendSettings, RenderSettings};

use crate::catalog::{Asset, Value};
use crate::compose::LayerImage;
use std::sync::Arc;

/// What to render.
#[derive(Debug, Clone)]
pub struct RenderRequest {
    pub asset: Arc<Asset>,
    /// Index into `asset.layers`.
    pub layer: usize,
    /// Index into `asset.views`.
    pub view: usize,
    /// The configuration restricted to the layer's `dependsOn`.
    pub values: Vec<(usize, Value)>,
    pub width: u32,
    pub height: u32,
}

impl RenderRequest {
    pub fn describe(&self) -> String {
        format!(
            "{} / {} / {}",
            self.asset.name, self.asset.layers[self.layer].name, self.asset.views[self.view].name
        )
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum RenderError {
    #[error("template: {0}")]
    Template(#[from] crate::catalog::TemplateError),
    #[error("the template is not valid SVG: {0}")]
    Svg(String),
    #[error("render size {width}x{height} is over the pixel budget of {budget}")]
    TooLarge {
        width: u32,
        height: u32,
        budget: u64,
    },
    #[error("the renderer failed: {0}")]
    Failed(String),
    #[error("the render took longer than {0:?}")]
    Timeout(std::time::Duration),
    #[error("the render backend \"{0}\" is not configured on this server")]
    Unconfigured(String),
    /// The backend answered, and the answer will not change on a retry
    /// (a 4xx from a render farm, output of the wrong size).
    #[error("the renderer failed: {0}")]
    Rejected(String),
}

impl RenderError {
    /// Whether trying again might succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, RenderError::Timeout(_) | RenderError::Failed(_))
    }
}

/// A render backend.
#[async_trait::async_trait]
pub trait Renderer: Send + Sync + 'static {
    /// Renders one layer. The result's canvas must be `width`×`height`.
    ///
    /// # Errors
    /// [`RenderError`] when the recipe is broken or the backend fails.
    async fn render(&self, req: &RenderRequest) -> Result<LayerImage, RenderError>;
}

/// The configured backends by name, and the default.
#[derive(Clone)]
pub struct Renderers {
    default: String,
    /// Backend and the longest one of its renders may take.
    backends: std::collections::HashMap<String, (Arc<dyn Renderer>, std::time::Duration)>,
}

/// The built-in renderer as configured: in a child process of this
/// executable (`render.isolate_builtin`, the default), else on the blocking pool.
fn builtin_renderer(s: &RenderSettings, timeout: std::time::Duration) -> BuiltinRenderer {
    let r = BuiltinRenderer::new(s.max_pixels);
    if !s.isolate_builtin {
        return r;
    }
    match std::env::current_exe() {
        Ok(exe) => r.isolated(exe, timeout),
        Err(e) => {
            tracing::warn!(error = %e, "cannot find this executable; built-in renders run in-process and cannot be stopped at their timeout");
            r
        }
    }
}

impl Renderers {
    /// Backends from the configuration; `builtin` is `builtin` unless given.
    /// This is where backends are built (Blender's private folder made):
    /// when a process starts, never while settings are validated.
    ///
    /// # Errors
    /// A message starting with the key at fault: the settings'
    /// ([`RenderSettings::check_backends`]), else `render.backends.<name>`
    /// for a backend that cannot be built.
    pub fn from_settings(
        s: &RenderSettings,
        builtin: Option<Arc<dyn Renderer>>,
    ) -> Result<Renderers, String> {
        s.check_backends()?;
        let mut backends = std::collections::HashMap::new();
        let default_timeout = std::time::Duration::from_secs(s.timeout_secs);
        backends.insert(
            "builtin".to_string(),
            (
                builtin.unwrap_or_else(|| Arc::new(builtin_renderer(s, default_timeout))),
                default_timeout,
            ),
        );
        for (name, b) in &s.backends {
            let built = |e: String| format!("render.backends.{name}: {e}");
            let timeout = std::time::Duration::from_secs(b.timeout_secs.unwrap_or(s.timeout_secs));
            let r: Arc<dyn Renderer> = match b.kind.as_str() {
                "command" => Arc::new(
                    CommandRenderer::new(
                        b.command.clone(),
                        &b.pass_env,
                        timeout,
                        s.max_pixels,
                        s.max_output_bytes,
                    )
                    .map_err(built)?,
                ),
                "blender" => Arc::new(BlenderRenderer::configured(name, b, s).map_err(built)?),
                "http" => Arc::new(
                    HttpRenderer::new(&b.url, timeout, b.retries, s.max_pixels, s.max_output_bytes)
                        .map_err(built)?,
                ),
                other => {
                    return Err(format!(
                        "render.backends.{name}.kind: unknown kind \"{other}\""
                    ));
                }
            };
            backends.insert(name.clone(), (r, timeout));
        }
        // `check_backends` saw that `s.backend` is one of them.
        Ok(Renderers {
            default: s.backend.clone(),
            backends,
        })
    }

    /// The name of the backend that draws `asset` (its `renderer`, else
    /// the default), configured here or not.
    pub fn name_for<'a>(&'a self, asset: &'a Asset) -> &'a str {
        asset.spec.renderer.as_deref().unwrap_or(&self.default)
    }

    /// The names of the backends configured here.
    pub fn names(&self) -> Vec<String> {
        let mut n: Vec<String> = self.backends.keys().cloned().collect();
        n.sort();
        n
    }

    /// The backend that draws `asset`, and its render timeout.
    ///
    /// # Errors
    /// [`RenderError::Unconfigured`] when the asset names a backend this
    /// process does not have.
    pub fn for_asset(
        &self,
        asset: &Asset,
    ) -> Result<(Arc<dyn Renderer>, std::time::Duration), RenderError> {
        let name = self.name_for(asset);
        self.backends
            .get(name)
            .map(|(r, t)| (Arc::clone(r), *t))
            .ok_or_else(|| RenderError::Unconfigured(name.to_string()))
    }

    /// Names of the assets in `catalog` whose backend is not configured.
    pub fn missing<'a>(&self, assets: impl Iterator<Item = &'a Arc<Asset>>) -> Vec<String> {
        assets
            .filter(|a| self.for_asset(a).is_err())
            .map(|a| {
                format!(
                    "{} ({}) wants \"{}\"",
                    a.name,
                    a.id,
                    a.spec.renderer.as_deref().unwrap_or("")
                )
            })
            .collect()
    }
}
