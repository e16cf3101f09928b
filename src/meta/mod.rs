//! Metadata: the durable records behind the API: orgs, asset versions,
//! files, layers, saved configurations, jobs/tasks/runs, webhooks, tokens
//! and the composite tier's ledger.
//!
//! One interface, [`Meta`], over sqlx's `Any` driver with portable SQL
//! (`$N` placeholders, TEXT ids, BIGINT microsecond times, JSON as TEXT),
//! so the embedded SQLite file and a shared PostgreSQL differ only in the
//! URL. Migrations (`migrations/`) run at open (`open`). Only this module
//! imports sqlx; its errors are translated into [`MetaError`] in `error`.
//! States are enums with their stored spellings (`states`: an unknown
//! spelling reads as [`MetaError::Corrupt`]); `sql` holds the query
//! helpers, `clock` the store's time. Deciding what a record means
//! (validation, keys, objects) is `service`'s business.

mod assets;
mod clock;
mod composites;
mod configurations;
mod error;
mod files;
mod jobs;
mod layers;
mod notify;
mod open;
mod sql;
mod states;
mod tokens;
mod webhooks;

pub use assets::AssetVersionRow;
pub use composites::CompositeRow;
pub use configurations::ConfigurationRow;
pub use files::FileRow;
pub use jobs::{
    Claimed, Existing, Finished, JobCounts, JobRow, NewTask, Outcome, Queued, RunRow, TaskRow,
};
pub use layers::{LayerFilter, LayerRow};
pub use notify::Listener;
pub use tokens::TokenRow;
pub use webhooks::{AttemptRow, DeliveryRow, WebhookRow};

pub use clock::micros;
pub use error::MetaError;
#[doc(hidden)]
pub use open::create_scratch_database;
pub use open::redact;
pub use sql::Window;
pub use states::{DeliveryStatus, RunResult, SchedulerState, Status, TaskResult};

use clock::Clock;
use error::translate;
#[cfg(test)]
use open::{MIGRATOR, with_database};
use sql::{Where, int, opt_int, opt_text, placeholders, text, uuid};
use sqlx::AnyPool;
use std::sync::atomic::{AtomicI64, Ordering};
use uuid::Uuid;

/// Delay before attempt `attempt + 1` after `attempt` failed: `base`
/// doubled per attempt, capped at `max` (all in ms). The retry time of a
/// render task (`not_before`) or a webhook delivery (`next_attempt_at`).
pub fn backoff(attempt: i64, base: u64, max: u64) -> std::time::Duration {
    let exp = u32::try_from(attempt.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    std::time::Duration::from_millis(base.saturating_mul(1u64 << exp).min(max))
}

/// The org every record belongs to in embedded (single-tenant) mode.
pub const DEFAULT_ORG: Uuid = Uuid::from_u128(0x420e2093_8bf9_4d82_b236_277c2b65a13c);

/// The metadata store.
pub struct Meta {
    pool: AnyPool,
    /// PostgreSQL rather than SQLite: claims add `FOR UPDATE SKIP LOCKED`.
    postgres: bool,
    /// The URL it was opened with (a `LISTEN` connection opens its own).
    url: String,
    /// Last timestamp handed out, so that times within a process strictly
    /// increase and `createdAt` order is insertion order.
    last: AtomicI64,
    /// The time source: the system's, or a test's.
    clock: Clock,
    /// Connections handed out by the pool: one per statement or
    /// transaction, so a count of what a request path asks the database.
    acquired: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Meta {
    /// The locking clause of a claim's candidate subquery: on PostgreSQL,
    /// concurrent claimers skip rows another claimer holds and take the
    /// next one (instead of all racing for the first and all but one coming
    /// back empty); SQLite serialises writers and has no such clause.
    fn skip_locked(&self) -> &'static str {
        if self.postgres {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        }
    }

    /// How many times a connection was taken from the pool (at least once
    /// per statement or transaction): what a test of a request path counts.
    pub fn connections_taken(&self) -> u64 {
        self.acquired.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests;
