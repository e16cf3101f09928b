//! Renderers: one layer, one (restricted) configuration, one view → pixels.
//!
//! [`Renderer`] is the seam every backend implements; `builtin` rasterises
//! the asset's SVG templates with resvg. A renderer neither stores nor
//! caches anything: deciding *whether* to render, and keeping the result,
//! is the job of `jobs` and `store`.

mod builtin;

pub use builtin::BuiltinRenderer;

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
