//! Opening the store: the pool (its size, per-connection pragmas, the
//! count of connections taken), the migrations, the default org; a scratch
//! PostgreSQL database for tests; URLs without their credentials.

use super::clock::Clock;
use super::{DEFAULT_ORG, Meta, MetaError, translate};
use sqlx::any::AnyPoolOptions;
use std::sync::atomic::{AtomicI64, Ordering};
use uuid::Uuid;

pub(super) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

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

    pub(super) async fn ensure_org(&self, id: Uuid, name: &str) -> Result<(), MetaError> {
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
pub(super) fn with_database(base: &str, name: &str) -> String {
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
