//! Wake-ups across processes on PostgreSQL: `NOTIFY` on one channel, and a
//! `LISTEN`ing connection per process (`jobs` says what the messages
//! mean). SQLite is one process's store: nothing to send, nothing to hear.
//!
//! A notification is sent after the change it announces has committed, so
//! whoever hears it reads the change. Delivery is best-effort: a listener
//! whose connection drops reconnects and may have missed messages, which
//! is why everyone still polls (`jobs.poll_ms`) as well.

use super::{Meta, MetaError, translate};

/// The channel every layercake process listens on.
pub const CHANNEL: &str = "layercake_jobs";

/// A process's `LISTEN` connection.
pub struct Listener(sqlx::postgres::PgListener);

impl Listener {
    /// The next message; `None` after the connection was lost and made
    /// again (messages sent meanwhile are gone: poll once).
    ///
    /// # Errors
    /// [`MetaError`] when the connection cannot be made again.
    pub async fn next(&mut self) -> Result<Option<String>, MetaError> {
        Ok(self
            .0
            .try_recv()
            .await
            .map_err(translate)?
            .map(|n| n.payload().to_string()))
    }
}

impl Meta {
    /// Whether wake-ups across processes are possible (PostgreSQL).
    pub fn can_notify(&self) -> bool {
        self.postgres
    }

    /// Sends `payload` to every listening process (none on SQLite).
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn notify(&self, payload: &str) -> Result<(), MetaError> {
        if !self.postgres {
            return Ok(());
        }
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(payload.to_string())
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(translate)
    }

    /// A connection listening on [`CHANNEL`]; `None` on SQLite.
    ///
    /// # Errors
    /// [`MetaError`] when it cannot connect.
    pub async fn listen(&self) -> Result<Option<Listener>, MetaError> {
        if !self.postgres {
            return Ok(None);
        }
        let mut l = sqlx::postgres::PgListener::connect(&self.url)
            .await
            .map_err(translate)?;
        l.listen(CHANNEL).await.map_err(translate)?;
        Ok(Some(Listener(l)))
    }
}
