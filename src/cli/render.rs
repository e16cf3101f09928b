//! `layercake render`: one view of one configuration straight through the
//! asset's render backend, in this process, bypassing caches, queue and
//! stores: every visible layer rendered and stacked as the compositor
//! stacks them, or (`--full`, 3D assets) the whole configured scene in one
//! Blender render, the reference the layering is measured against. For
//! checking an asset file and a backend's settings before serving them.

use crate::app::load_catalog;
use crate::catalog::Asset;
use crate::compose::LayerImage;
use crate::compose::{Format, Rect, compose, encode};
use crate::config::Settings;
use crate::jobs::LayerJob;
use crate::keys::Configuration;
use crate::render::Renderers;
use crate::render::blender::{BlenderRenderer, Target};
use anyhow::{Context, anyhow, bail};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// The asset (in the configured catalogue), configuration and view.
    #[command(flatten)]
    pub of: super::ViewArgs,
    /// One render of the whole configured scene (3D assets) instead of
    /// the layers stacked.
    #[arg(long)]
    pub full: bool,
    /// Where to write the PNG (the asset's canvas size).
    #[arg(long, short)]
    pub output: PathBuf,
}

pub fn run(settings: Settings, args: RenderArgs) -> anyhow::Result<()> {
    super::serve::init_tracing(&settings);
    let catalog = load_catalog(&settings)?;
    let asset = catalog
        .get(&args.of.asset)
        .cloned()
        .ok_or_else(|| anyhow!("--asset: {} is not in the catalogue", args.of.asset))?;
    let (_, config, view) = args.of.resolve(&asset)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let started = std::time::Instant::now();
    let layers = runtime.block_on(async {
        if args.full {
            full_render(&settings, &asset, &config, view).await
        } else {
            layer_renders(&settings, &asset, &config, view).await
        }
    })?;
    if layers.is_empty() {
        bail!(
            "no layer of {} is visible in this configuration",
            asset.name
        );
    }
    let canvas = Rect {
        x: 0,
        y: 0,
        width: asset.width,
        height: asset.height,
    };
    let stacked = compose(canvas, &layers.iter().collect::<Vec<_>>());
    let png = encode(stacked, Format::Png, None)?;
    std::fs::write(&args.output, png)
        .with_context(|| format!("--output {}", args.output.display()))?;
    eprintln!(
        "{} ({}, view {}): {} in {:.2} s",
        args.output.display(),
        asset.name,
        asset.views[view].name,
        if args.full {
            "one full render".to_string()
        } else {
            format!("{} layers rendered and stacked", layers.len())
        },
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One Blender render of the whole scene (`--full`).
async fn full_render(
    settings: &Settings,
    asset: &Asset,
    config: &Configuration,
    view: usize,
) -> anyhow::Result<Vec<LayerImage>> {
    let backend = asset.spec.renderer.as_deref().unwrap_or_default();
    let b = settings
        .render
        .backends
        .get(backend)
        .filter(|b| b.kind == "blender")
        .ok_or_else(|| {
            anyhow!(
                "--full: {} is not drawn by a blender backend of this configuration",
                asset.name
            )
        })?;
    let renderer =
        BlenderRenderer::configured(backend, b, &settings.render).map_err(|e| anyhow!(e))?;
    let image = renderer
        .render_target(
            asset,
            view,
            Target::Full {
                config: config.values(),
            },
        )
        .await?;
    Ok(vec![image])
}

/// Every visible layer, rendered by the asset's backend, bottom to top.
async fn layer_renders(
    settings: &Settings,
    asset: &Arc<Asset>,
    config: &Configuration,
    view: usize,
) -> anyhow::Result<Vec<LayerImage>> {
    let renderers = Renderers::from_settings(&settings.render, None).map_err(|e| anyhow!(e))?;
    let (renderer, _) = renderers.for_asset(asset)?;
    let mut out = Vec::new();
    for job in LayerJob::visible(asset, config, view) {
        let name = &asset.layers[job.request.layer].name;
        out.push(
            renderer
                .render(&job.request)
                .await
                .with_context(|| format!("layer \"{name}\""))?,
        );
    }
    Ok(out)
}
