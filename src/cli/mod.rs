//! The `layercake` command line: one binary, a subcommand per role.
//!
//! - `serve`: the HTTP service (with render workers unless `jobs.in_process = false`).
//! - `worker`: render workers only, sharing the stores with `serve` processes.
//! - `url`: a signed, version-pinned image URL.
//! - `token create|list|revoke`: API tokens.
//! - `catalog check`: validate a folder of asset definitions.
//! - `render`: one view of a configuration through its backend, to a PNG.
//! - `config`: print the merged configuration.
//!
//! This is the only module that uses `anyhow`: errors here end the process
//! with a message, they are not matched on.

mod catalog;
mod gc;
mod import;
pub mod prefetch;
mod render;
mod serve;
mod token;
mod url;
mod worker;

use crate::config::{Overrides, Settings};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "layercake",
    version,
    about = "Render cache and layered image compositor"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP service (fast compositor, assets, demo page).
    Serve {
        #[command(flatten)]
        common: Common,
        /// Address to listen on (overrides http.listen).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Run render workers only: claim tasks from the shared queue (same
    /// metadata store, object store and catalogue as the serve processes),
    /// or, with --server and --token, from a serve process over HTTP (a
    /// remote render node: no database or object-store access needed).
    Worker {
        #[command(flatten)]
        common: Common,
        /// Serve `/metrics` (Prometheus: renders, queue wait, queue depth)
        /// and `/healthz` on this address, e.g. 127.0.0.1:9100; off by default.
        #[arg(long)]
        metrics_listen: Option<String>,
        #[command(flatten)]
        remote: worker::RemoteArgs,
    },
    /// Print a signed image URL for a configuration (signing.keys; the
    /// asset's live definition from the data dir).
    Url {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: url::UrlArgs,
    },
    /// Manage API tokens (stored hashed in the metadata store).
    Token {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        command: token::TokenCommand,
    },
    /// Work with asset definitions.
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
    /// Warm the cache for a catalogue: plan, render the distinct missing
    /// layers through the Jobs system, optionally encode every composite,
    /// and write the image URLs.
    Prefetch {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: prefetch::PrefetchArgs,
    },
    /// Register a folder of pre-rendered layer images (your own renders)
    /// with a server: <view>/<layer>/<value>[+<value>].png; resumable, with
    /// a dry run (docs/assets.md, section 8).
    Import {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: import::ImportArgs,
    },
    /// Remove the layers and composites of asset versions that are no longer
    /// live, and their records; print what was removed (count, bytes).
    Gc {
        #[command(flatten)]
        common: Common,
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Render one view of a configuration through the asset's render
    /// backend in this process (no cache, queue or stores) and write a PNG:
    /// the visible layers stacked, or with --full (3D assets) one render of
    /// the whole configured scene.
    Render {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: render::RenderArgs,
    },
    /// Print the merged configuration (defaults, file, environment, flags) as TOML.
    Config {
        #[command(flatten)]
        common: Common,
    },
    /// One built-in render in this process (started by the render workers:
    /// an SVG on stdin, the raster on stdout; see `render::builtin`).
    #[command(name = "render-builtin", hide = true)]
    RenderBuiltin { args: Vec<String> },
}

#[derive(Debug, Subcommand)]
enum CatalogCommand {
    /// Load and validate every asset file in a folder (default: the built-in demo).
    Check {
        #[command(flatten)]
        common: Common,
        /// Folder of *.json / *.toml asset files (default: --catalog, then
        /// catalog.dir, then the built-in demo); the caps are the
        /// configuration's.
        dir: Option<PathBuf>,
    },
    /// Write a small working asset (two attributes, two views, an SVG
    /// template per view and layer) into a catalogue folder, to change
    /// into your own product; `serve --catalog <dir>` shows it at once.
    New(catalog::NewArgs),
    /// Write an asset's live definition, with its template files, into a
    /// catalogue folder (e.g. one defined through the API, to keep it in
    /// files from then on); the loader reads it back as the same version.
    Export {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: catalog::ExportArgs,
    },
}

/// One view of one configuration of an asset, as `url` and `render` take it.
#[derive(Debug, clap::Args)]
pub struct ViewArgs {
    /// The asset's id.
    #[arg(long)]
    pub asset: uuid::Uuid,
    /// The configuration as JSON, e.g. '{"Body":"Navy"}' (default: all defaults).
    #[arg(long, default_value = "{}")]
    pub configuration: String,
    /// The view's name (default: the first view).
    #[arg(long)]
    pub view: Option<String>,
}

impl ViewArgs {
    /// The configuration as written (JSON) and checked against `asset`,
    /// and the index of the view.
    ///
    /// # Errors
    /// A message naming the flag at fault.
    pub fn resolve(
        &self,
        asset: &crate::catalog::Asset,
    ) -> anyhow::Result<(serde_json::Value, crate::keys::Configuration, usize)> {
        use anyhow::{Context, anyhow};
        let json: serde_json::Value = serde_json::from_str(&self.configuration)
            .context("--configuration is not valid JSON")?;
        let config = crate::keys::Configuration::parse(asset, &json)
            .map_err(|e| anyhow!("--configuration: {e}"))?;
        let view = match &self.view {
            None => 0,
            Some(name) => asset
                .views
                .iter()
                .position(|v| &v.name == name)
                .ok_or_else(|| {
                    let names: Vec<&str> = asset.views.iter().map(|v| v.name.as_str()).collect();
                    anyhow!("--view {name}: the views are {}", names.join(", "))
                })?,
        };
        Ok((json, config, view))
    }
}

#[derive(Debug, clap::Args)]
struct Common {
    /// Configuration file (TOML); see config/layercake.toml.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Where state lives (overrides storage.data_dir).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Folder of asset definitions (overrides catalog.dir; the format is
    /// docs/assets.md; `layercake catalog new` starts one).
    #[arg(long, global = true)]
    catalog: Option<PathBuf>,
}

impl Common {
    fn settings(&self, listen: Option<String>) -> anyhow::Result<Settings> {
        let flags = Overrides {
            listen,
            data_dir: self.data_dir.clone(),
            catalog: self.catalog.clone(),
        };
        Ok(Settings::load(self.config.as_deref(), &flags)?)
    }
}

/// The live definition of asset `id` as the servers sharing this data dir
/// (or `meta.url`) see it: what `url` pins and `catalog export` writes.
///
/// # Errors
/// An asset the metadata store does not know, or store failures.
async fn live_asset(
    settings: &Settings,
    id: uuid::Uuid,
) -> anyhow::Result<std::sync::Arc<crate::catalog::Asset>> {
    let catalog = crate::app::load_catalog(settings)?;
    let (meta, _) = crate::app::open_stores(settings, false).await?;
    let version = meta
        .live_versions()
        .await?
        .into_iter()
        .find(|(asset, _)| *asset == id)
        .map(|(_, v)| v)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "asset {id} is not known to this data dir (start `layercake serve` on it once)"
            )
        })?;
    let assets = crate::service::AssetRegistry::follower(std::sync::Arc::clone(&meta), catalog);
    let asset = assets.resolve(id, version).await;
    meta.close().await;
    Ok(asset?)
}

/// Runs the command line; the binary's `main` is just this.
///
/// # Errors
/// Any failure, for `main` to print.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { common, listen } => serve::run(common.settings(listen)?),
        Command::RenderBuiltin { args } => {
            crate::render::builtin::child_main(&args).map_err(|e| anyhow::anyhow!(e))
        }
        Command::Worker {
            common,
            metrics_listen,
            remote,
        } => match remote.server {
            Some(_) => {
                worker::run_remote(common.settings(None)?, metrics_listen.as_deref(), remote)
            }
            None => worker::run(common.settings(None)?, metrics_listen.as_deref()),
        },
        Command::Url { common, args } => url::run(common.settings(None)?, args),
        Command::Render { common, args } => render::run(common.settings(None)?, args),
        Command::Token { common, command } => token::run(common.settings(None)?, command),
        Command::Prefetch { common, args } => prefetch::run(common.settings(None)?, args),
        Command::Import { common, args } => import::run(common.settings(None)?, args),
        Command::Gc {
            common,
            dry_run,
            json,
        } => gc::run(common.settings(None)?, dry_run, json),
        Command::Config { common } => {
            let mut s = common.settings(None)?;
            for k in &mut s.signing.keys {
                *k = "<redacted>".into();
            }
            if !s.storage.s3_secret_access_key.is_empty() {
                s.storage.s3_secret_access_key = "<redacted>".into();
            }
            s.meta.url = crate::meta::redact(&s.meta.url);
            print!("{}", s.to_toml());
            Ok(())
        }
        Command::Catalog { command } => match command {
            CatalogCommand::Check { common, dir } => {
                catalog::check(&common.settings(None)?, dir.as_deref())
            }
            CatalogCommand::New(args) => catalog::new(&args),
            CatalogCommand::Export { common, args } => {
                catalog::export(common.settings(None)?, &args)
            }
        },
    }
}
