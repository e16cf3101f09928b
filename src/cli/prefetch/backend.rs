//! Where prefetch does its work, behind one [`Backend`] trait: this
//! process, on a data dir ([`super::local::Local`]: the stores, an
//! in-process render queue and workers, the application layer's calls), or
//! a layercake server over HTTP with a private token
//! ([`super::remote::Remote`]).

use crate::app::batch::Summary;
use crate::catalog::Asset;
use async_trait::async_trait;
use serde_json::Value;
use std::sync::Arc;
use uuid::Uuid;

pub use crate::app::batch::Progress;

/// A batch plan in numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub configurations: u64,
    pub layers: u64,
    pub cached: u64,
    pub tasks: u64,
}

impl Counts {
    /// A server's plan (a batch job's `parameters`); a missing figure is 0.
    pub fn from_json(p: &Value) -> Counts {
        let n = |k: &str| p[k].as_u64().unwrap_or(0);
        Counts {
            configurations: n("configurations"),
            layers: n("layers"),
            cached: n("cached"),
            tasks: n("tasks"),
        }
    }

    /// Adds `other`'s figures (chunks of one asset, or the assets of a run).
    pub fn add(&mut self, other: Counts) {
        self.configurations += other.configurations;
        self.layers += other.layers;
        self.cached += other.cached;
        self.tasks += other.tasks;
    }
}

impl From<&Summary> for Counts {
    fn from(s: &Summary) -> Counts {
        let n = |x: usize| u64::try_from(x).unwrap_or(u64::MAX);
        Counts {
            configurations: n(s.configurations),
            layers: n(s.layers),
            cached: n(s.cached),
            tasks: n(s.tasks),
        }
    }
}

/// One composite's fate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Made {
    Cached,
    Encoded,
}

#[async_trait]
pub trait Backend: Send + Sync {
    /// The asset's live definition.
    async fn asset(&self, id: Uuid) -> anyhow::Result<Arc<Asset>>;
    /// Plans (`dry_run`) or queues the renders of `configurations` on
    /// `stages`; the jobs queued (none when nothing is missing).
    async fn batch(
        &self,
        asset: &Asset,
        configurations: &[Value],
        stages: &[Value],
        dry_run: bool,
    ) -> anyhow::Result<(Counts, Vec<Uuid>)>;
    async fn progress(&self, asset: &Asset, job: Uuid) -> anyhow::Result<Progress>;
    async fn cancel(&self, asset: &Asset, job: Uuid) -> anyhow::Result<()>;
    /// Whether the image at `url` (from [`Backend::urls`]) is cached,
    /// without making it.
    async fn is_cached(&self, asset: &Asset, url: &str) -> anyhow::Result<bool>;
    /// Makes (or finds) the image at `url`, AVIF included (no stand-in).
    async fn composite(&self, asset: &Asset, url: &str) -> anyhow::Result<Made>;
    /// The final URLs (path and query, pinned and signed as the service
    /// would) of `queries`, each checked as the image route checks it.
    async fn urls(&self, asset: &Asset, queries: &[String]) -> anyhow::Result<Vec<String>>;
    /// Stops background work, keeping what is done.
    async fn close(&self);
}

#[cfg(test)]
mod tests {
    use super::{Counts, Summary};
    use uuid::Uuid;

    #[test]
    fn counts_read_a_plan_typed_or_as_json() {
        let s = Summary {
            asset_id: Uuid::nil(),
            asset_version: 1,
            configurations: 4,
            views: vec!["Front".into()],
            layers: 10,
            cached: 3,
            tasks: 7,
        };
        let typed = Counts::from(&s);
        let want = Counts {
            configurations: 4,
            layers: 10,
            cached: 3,
            tasks: 7,
        };
        assert_eq!(typed, want);
        assert_eq!(Counts::from_json(&s.json().to_value()), want);
        assert_eq!(Counts::from_json(&serde_json::json!({})), Counts::default());
        let mut sum = want;
        sum.add(want);
        assert_eq!((sum.configurations, sum.tasks), (8, 14));
    }
}
