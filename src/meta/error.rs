//! The metadata store's errors: [`MetaError`], and the one place that
//! translates sqlx's errors into it (what is retryable, what is the
//! request's fault, what is a conflict).

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

pub(super) fn translate(e: sqlx::Error) -> MetaError {
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
