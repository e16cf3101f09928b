//! Metadata: the durable records behind the API: orgs, asset versions,
//! files, layers, saved configurations, jobs/tasks/runs, webhooks, tokens
//! and the composite tier's ledger.
//!
//! One interface, [`Meta`], over sqlx's `Any` driver with portable SQL
//! (`$N` placeholders, TEXT ids, BIGINT microsecond times, JSON as TEXT),
//! so the embedded SQLite file and a shared PostgreSQL differ only in the
//! URL. Migrations (`migrations/`) run at open. Only this module imports
//! sqlx; its errors are translated into [`MetaError`] here. Deciding what
//! a record means (validation, keys, objects) is `service`'s business.

mod assets;
mod composites;
mod configurations;
mod files;
mod jobs;
mod layers;
mod notify;
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

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
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

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone, thiserror::Error)]
pub enum MetaError {
    #[error("no such record")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("cannot open the metadata store {0}: {1}")]
    Open(String, String),
    /// The store cannot be reached now: a connection or I/O failure, a
    /// pool timeout, a busy database, a serialisation conflict. Retrying helps.
    #[error("metadata store unavailable: {0}")]
    Unavailable(String),
    /// A value the request carried that the database cannot store (a NUL
    /// character in text): the request's fault (422).
    #[error("a value cannot be stored: {0}")]
    Rejected(String),
    /// Any other database error: a bug or a broken schema; retrying does not help.
    #[error("metadata store: {0}")]
    Backend(String),
    #[error("a stored record is unreadable: {0}")]
    Corrupt(String),
}

impl MetaError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, MetaError::NotFound)
    }

    /// A unique constraint refused the write (another writer got there first).
    pub fn is_conflict(&self) -> bool {
        matches!(self, MetaError::Conflict(_))
    }
}

fn translate(e: sqlx::Error) -> MetaError {
    match e {
        sqlx::Error::RowNotFound => MetaError::NotFound,
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            // The constraint's text stays in the log: it names tables.
            tracing::debug!(error = %db, "unique constraint");
            MetaError::Conflict("a record with the same unique key was written first".into())
        }
        sqlx::Error::Database(db) if is_rejected_value(db.as_ref()) => {
            MetaError::Rejected(db.to_string())
        }
        e if is_transient(&e) => MetaError::Unavailable(e.to_string()),
        e => MetaError::Backend(e.to_string()),
    }
}

/// PostgreSQL class 22 (data exception): a value the request carried that
/// the database cannot store, such as a NUL character in text.
fn is_rejected_value(db: &dyn sqlx::error::DatabaseError) -> bool {
    db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .is_some_and(|pg| pg.code().starts_with("22"))
}

/// Whether retrying `e` can succeed: the connection, not the statement,
/// failed. PostgreSQL classes 08 (connection exception), 53 (insufficient
/// resources), 57P0x (operator intervention: shutdown) and 40001/40P01
/// (serialisation failure, deadlock); SQLite BUSY and LOCKED (primary
/// codes 5 and 6, with their extended codes).
fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                let c = pg.code();
                c.starts_with("08")
                    || c.starts_with("53")
                    || c.starts_with("57P0")
                    || c == "40001"
                    || c == "40P01"
            } else if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                db.code()
                    .and_then(|c| c.parse::<i64>().ok())
                    .is_some_and(|n| matches!(n & 0xff, 5 | 6))
            } else {
                false
            }
        }
        _ => false,
    }
}

/// A bound value of a dynamically built query.
#[derive(Debug, Clone)]
enum Bind {
    Str(String),
    Int(i64),
}

/// Builds `WHERE a = $1 AND b = $2 ...` with numbered placeholders.
#[derive(Debug, Default)]
struct Where {
    clauses: Vec<String>,
    binds: Vec<Bind>,
}

impl Where {
    fn eq(&mut self, column: &str, value: Option<impl Into<BindValue>>) -> &mut Self {
        if let Some(v) = value {
            self.binds.push(v.into().0);
            self.clauses
                .push(format!("{column} = ${}", self.binds.len()));
        }
        self
    }

    /// A clause with one placeholder, written `{}` in `template`, e.g.
    /// `id IN (SELECT task_id FROM job_tasks WHERE job_id = {})`.
    fn sub(&mut self, template: &str, value: Option<impl Into<BindValue>>) -> &mut Self {
        if let Some(v) = value {
            self.binds.push(v.into().0);
            self.clauses
                .push(template.replace("{}", &format!("${}", self.binds.len())));
        }
        self
    }

    fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }

    fn next(&self) -> usize {
        self.binds.len() + 1
    }

    fn apply<'q>(
        &self,
        mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        for b in &self.binds {
            q = match b {
                Bind::Str(s) => q.bind(s.clone()),
                Bind::Int(i) => q.bind(*i),
            };
        }
        q
    }
}

struct BindValue(Bind);

impl From<String> for BindValue {
    fn from(s: String) -> Self {
        BindValue(Bind::Str(s))
    }
}

impl From<&str> for BindValue {
    fn from(s: &str) -> Self {
        BindValue(Bind::Str(s.to_string()))
    }
}

impl From<Uuid> for BindValue {
    fn from(u: Uuid) -> Self {
        BindValue(Bind::Str(u.to_string()))
    }
}

impl From<i64> for BindValue {
    fn from(i: i64) -> Self {
        BindValue(Bind::Int(i))
    }
}

/// One page of a listing: rows in `+createdAt` or `-createdAt` order.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub offset: usize,
    pub limit: usize,
    pub descending: bool,
}

impl Window {
    fn order(&self) -> &'static str {
        if self.descending {
            " ORDER BY created_at DESC, id DESC"
        } else {
            " ORDER BY created_at ASC, id ASC"
        }
    }
}

impl Meta {
    /// A page of `table` rows matching `filter` (newest or oldest first) and
    /// the count of all matches; every row if `window` is `None`.
    async fn page<T>(
        &self,
        table: &str,
        columns: &str,
        filter: &Where,
        window: Option<Window>,
        row: fn(&AnyRow) -> Result<T, MetaError>,
    ) -> Result<(usize, Vec<T>), MetaError> {
        let count_sql = format!("SELECT COUNT(*) AS n FROM {table}{}", filter.sql());
        let n: i64 = filter
            .apply(sqlx::query(&count_sql))
            .fetch_one(&self.pool)
            .await
            .map_err(translate)?
            .try_get("n")
            .map_err(translate)?;
        let rows = match window {
            Some(w) => {
                let sql = format!(
                    "SELECT {columns} FROM {table}{}{} LIMIT ${} OFFSET ${}",
                    filter.sql(),
                    w.order(),
                    filter.next(),
                    filter.next() + 1
                );
                filter
                    .apply(sqlx::query(&sql))
                    .bind(w.limit as i64)
                    .bind(w.offset as i64)
                    .fetch_all(&self.pool)
                    .await
            }
            None => {
                let sql = format!(
                    "SELECT {columns} FROM {table}{} ORDER BY created_at ASC, id ASC",
                    filter.sql()
                );
                filter.apply(sqlx::query(&sql)).fetch_all(&self.pool).await
            }
        }
        .map_err(translate)?;
        Ok((
            usize::try_from(n).unwrap_or(0),
            rows.iter().map(row).collect::<Result<_, _>>()?,
        ))
    }
}

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

/// Where [`Meta::now`] reads the time. Leases, retry times and TTLs are
/// compared with times this process wrote, so a test moves them by moving
/// this clock; tokio's paused time cannot drive them, as the database
/// driver's own timers would make a paused clock jump while a statement runs.
enum Clock {
    System,
    /// Microseconds since the epoch, set by the test.
    Manual(AtomicI64),
}

impl Meta {
    /// Opens (creating if needed) and migrates the store at `url`:
    /// `sqlite:///path/file.db`, `sqlite::memory:`, or `postgres://...`;
    /// at most `max_connections` connections are kept.
    ///
    /// # Errors
    /// [`MetaError::Open`] when the database cannot be reached or migrated.
    pub async fn open(url: &str, max_connections: u32) -> Result<Meta, MetaError> {
        sqlx::any::install_default_drivers();
        let open_err = |e: String| MetaError::Open(redact(url), e);
        let sqlite = url.starts_with("sqlite:");
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        let url = if sqlite && !memory && !url.contains('?') {
            format!("{url}?mode=rwc")
        } else {
            url.to_string()
        };
        let acquired = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (on_connect, on_acquire) = (acquired.clone(), acquired.clone());
        let pool = AnyPoolOptions::new()
            // Each connection to an in-memory SQLite database is a database
            // of its own: keep exactly one.
            .max_connections(if memory { 1 } else { max_connections.max(1) })
            .min_connections(if memory { 1 } else { 0 })
            .idle_timeout(if memory {
                None
            } else {
                Some(std::time::Duration::from_secs(600))
            })
            .max_lifetime(if memory {
                None
            } else {
                Some(std::time::Duration::from_secs(3600))
            })
            .before_acquire(move |_, _| {
                on_acquire.fetch_add(1, Ordering::Relaxed);
                crate::telemetry::note_meta_io();
                Box::pin(async { Ok(true) })
            })
            .after_connect(move |conn, _| {
                on_connect.fetch_add(1, Ordering::Relaxed);
                crate::telemetry::note_meta_io();
                Box::pin(async move {
                    if sqlite {
                        // Wait for a writer instead of failing at once.
                        sqlx::query("PRAGMA busy_timeout = 5000")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA foreign_keys = ON")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|e| open_err(e.to_string()))?;
        if sqlite && !memory {
            // Readers do not block the writer; persistent for the file.
            sqlx::query("PRAGMA journal_mode = WAL")
                .fetch_all(&pool)
                .await
                .map_err(|e| open_err(e.to_string()))?;
        }
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| open_err(format!("migration: {e}")))?;
        let meta = Meta {
            pool,
            postgres: !sqlite,
            url: url.clone(),
            last: AtomicI64::new(0),
            clock: Clock::System,
            acquired,
        };
        meta.ensure_org(DEFAULT_ORG, "default").await?;
        Ok(meta)
    }

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

    /// `now()` plus `d`, saturating: a lease end, a retry time.
    pub fn after(&self, d: std::time::Duration) -> i64 {
        self.now().saturating_add(micros(d))
    }

    /// Reads the time from a clock the caller moves with [`Meta::advance`],
    /// starting at the system's time now (tests of leases, backoff, TTLs).
    #[doc(hidden)]
    #[must_use]
    pub fn with_manual_clock(mut self) -> Meta {
        self.clock = Clock::Manual(AtomicI64::new(self.now()));
        self
    }

    /// Moves a manual clock forward by `d` (no effect on the system clock).
    #[doc(hidden)]
    pub fn advance(&self, d: std::time::Duration) {
        if let Clock::Manual(t) = &self.clock {
            t.fetch_add(micros(d), Ordering::Relaxed);
        }
    }

    /// Microseconds since the Unix epoch, strictly increasing in this process.
    pub fn now(&self) -> i64 {
        let wall = match &self.clock {
            Clock::System => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_micros() as i64)
                .unwrap_or(0),
            Clock::Manual(t) => t.load(Ordering::Relaxed),
        };
        let mut prev = self.last.load(Ordering::Relaxed);
        loop {
            let next = wall.max(prev + 1);
            match self
                .last
                .compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(p) => prev = p,
            }
        }
    }

    /// How many times a connection was taken from the pool (at least once
    /// per statement or transaction): what a test of a request path counts.
    pub fn connections_taken(&self) -> u64 {
        self.acquired.load(Ordering::Relaxed)
    }

    /// Checks that the store answers (for readiness).
    ///
    /// # Errors
    /// [`MetaError::Backend`] when it does not.
    pub async fn ping(&self) -> Result<(), MetaError> {
        sqlx::query("SELECT 1")
            .fetch_one(&self.pool)
            .await
            .map(|_| ())
            .map_err(translate)
    }

    async fn ensure_org(&self, id: Uuid, name: &str) -> Result<(), MetaError> {
        sqlx::query("INSERT INTO orgs (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING")
            .bind(id.to_string())
            .bind(name.to_string())
            .bind(self.now())
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(translate)
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A duration in the store's time unit (microseconds), saturating.
pub fn micros(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Creates an empty PostgreSQL database on the server of `base` (a
/// `postgres://` URL whose role may create databases) and returns its URL:
/// each test gets a database of its own on one shared server.
///
/// # Errors
/// [`MetaError::Open`] when the server refuses.
#[doc(hidden)]
pub async fn create_scratch_database(base: &str) -> Result<String, MetaError> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let err = |e: sqlx::Error| MetaError::Open(redact(base), e.to_string());
    let name = format!("lc_{}", Uuid::new_v4().simple());
    let mut conn = sqlx::AnyConnection::connect(base).await.map_err(err)?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .map_err(err)?;
    conn.close().await.map_err(err)?;
    Ok(with_database(base, &name))
}

/// `base` (`scheme://authority[/database][?query]`) naming database `name`.
fn with_database(base: &str, name: &str) -> String {
    let (head, query) = base
        .split_once('?')
        .map_or((base, None), |(h, q)| (h, Some(q)));
    let authority_at = head.find("://").map_or(0, |i| i + 3);
    let server = match head[authority_at..].find('/') {
        Some(slash) => &head[..authority_at + slash],
        None => head,
    };
    match query {
        Some(q) => format!("{server}/{name}?{q}"),
        None => format!("{server}/{name}"),
    }
}

/// The URL without its credentials, for messages and `layercake config`.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***{}", &url[..s], &url[at..]),
        _ => url.to_string(),
    }
}

fn text(row: &AnyRow, col: &str) -> Result<String, MetaError> {
    row.try_get::<String, _>(col)
        .map_err(|e| MetaError::Corrupt(format!("{col}: {e}")))
}

fn opt_text(row: &AnyRow, col: &str) -> Result<Option<String>, MetaError> {
    row.try_get::<Option<String>, _>(col)
        .map_err(|e| MetaError::Corrupt(format!("{col}: {e}")))
}

fn int(row: &AnyRow, col: &str) -> Result<i64, MetaError> {
    row.try_get::<i64, _>(col)
        .map_err(|e| MetaError::Corrupt(format!("{col}: {e}")))
}

fn uuid(row: &AnyRow, col: &str) -> Result<Uuid, MetaError> {
    let s = text(row, col)?;
    Uuid::parse_str(&s).map_err(|e| MetaError::Corrupt(format!("{col}: {e}")))
}

/// `$first, ..., $(first + n - 1)`: the placeholders of an `IN (...)` list.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;

fn opt_int(row: &AnyRow, col: &str) -> Result<Option<i64>, MetaError> {
    row.try_get::<Option<i64>, _>(col)
        .map_err(|e| MetaError::Corrupt(format!("{col}: {e}")))
}
