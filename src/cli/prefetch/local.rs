//! Prefetch in this process, on the data dir's stores: an `App` with
//! in-process render workers. Batches go through the application layer
//! ([`crate::app::batch`]), as `POST /api/jobs` does, without its bounds.

use super::backend::{Backend, Counts, Made, Progress};
use crate::app::App;
use crate::app::batch::{self, BatchLimits, BatchRequest, Mode};
use crate::app::image::{pinned_url, request_for};
use crate::catalog::Asset;
use crate::config::Settings;
use crate::pipeline::Source;
use anyhow::{Context, anyhow};
use async_trait::async_trait;
use serde_json::Value;
use std::sync::Arc;
use uuid::Uuid;

/// The query of an image URL (`/api/fast-compositor?<query>`).
fn query_part(url: &str) -> &str {
    url.split_once('?').map_or(url, |(_, q)| q)
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
        let request = BatchRequest {
            asset_id: asset.id.to_string(),
            configurations: Some(configurations.to_vec()),
            all: false,
            where_: None,
            stage_configurations: Some(stages.to_vec()),
            dry_run,
        };
        let mode = if dry_run {
            Mode::DryRun
        } else {
            Mode::QueueMissing
        };
        let out = batch::submit(&self.app, asset.org, request, BatchLimits::NONE, mode).await?;
        Ok((Counts::from(&out.summary), out.job.into_iter().collect()))
    }

    async fn progress(&self, asset: &Asset, job: Uuid) -> anyhow::Result<Progress> {
        Ok(batch::progress(&self.app, asset.org, job).await?)
    }

    async fn cancel(&self, asset: &Asset, job: Uuid) -> anyhow::Result<()> {
        self.app.jobs().cancel(asset.org, job).await?;
        Ok(())
    }

    async fn is_cached(&self, asset: &Asset, url: &str) -> anyhow::Result<bool> {
        let req = request_for(&self.app, asset.org, query_part(url))?;
        Ok(self.app.compositor().is_cached(&req).await?)
    }

    async fn composite(&self, asset: &Asset, url: &str) -> anyhow::Result<Made> {
        let mut req = request_for(&self.app, asset.org, query_part(url))?;
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
                request_for(&self.app, asset.org, q).with_context(|| format!("image {q}"))?;
                Ok(pinned_url(&self.app.signer(), &live, buster, q))
            })
            .collect()
    }

    async fn close(&self) {
        self.app.shutdown().await;
    }
}
