//! The composite tier's ledger: which composites the object store holds,
//! their sizes and their last use, for eviction past a byte budget.

use super::{Meta, MetaError, int, text, translate};

/// One composite of the ledger.
#[derive(Debug, Clone, PartialEq)]
pub struct CompositeRow {
    pub path: String,
    pub bytes: i64,
    pub used_at: i64,
}

impl Meta {
    /// Records composites written (`(path, bytes, when)`) and composites
    /// read (`(path, when)`; times from [`Meta::now`]) in one transaction.
    /// A write replaces the size; a read of a path the ledger does not know
    /// adds nothing, and an older read than the last use changes nothing.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn note_composites(
        &self,
        written: &[(String, u64, i64)],
        read: &[(String, i64)],
    ) -> Result<(), MetaError> {
        if written.is_empty() && read.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(translate)?;
        for (path, bytes, now) in written {
            sqlx::query(
                "INSERT INTO composites (path, bytes, used_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (path) DO UPDATE SET bytes = excluded.bytes, used_at = excluded.used_at",
            )
            .bind(path.clone())
            .bind(i64::try_from(*bytes).unwrap_or(i64::MAX))
            .bind(*now)
            .execute(&mut *tx)
            .await
            .map_err(translate)?;
        }
        for (path, when) in read {
            sqlx::query("UPDATE composites SET used_at = $2 WHERE path = $1 AND used_at < $2")
                .bind(path.clone())
                .bind(*when)
                .execute(&mut *tx)
                .await
                .map_err(translate)?;
        }
        tx.commit().await.map_err(translate)
    }

    /// `(count, bytes)` of the composites in the ledger.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn composite_totals(&self) -> Result<(i64, i64), MetaError> {
        let r = sqlx::query(
            "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(bytes), 0) AS BIGINT) AS total FROM composites",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(translate)?;
        Ok((int(&r, "n")?, int(&r, "total")?))
    }

    /// The `limit` least recently used composites, oldest first.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn oldest_composites(&self, limit: i64) -> Result<Vec<CompositeRow>, MetaError> {
        let rows = sqlx::query(
            "SELECT path, bytes, used_at FROM composites ORDER BY used_at ASC, path ASC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(translate)?;
        rows.iter()
            .map(|r| {
                Ok(CompositeRow {
                    path: text(r, "path")?,
                    bytes: int(r, "bytes")?,
                    used_at: int(r, "used_at")?,
                })
            })
            .collect()
    }

    /// Takes `c` off the ledger unless it was written or read since it was
    /// listed (its `used_at` moved); `true` when taken off, and so the
    /// caller's to delete.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn evict_composite(&self, c: &CompositeRow) -> Result<bool, MetaError> {
        let done = sqlx::query("DELETE FROM composites WHERE path = $1 AND used_at = $2")
            .bind(c.path.clone())
            .bind(c.used_at)
            .execute(&self.pool)
            .await
            .map_err(translate)?;
        Ok(done.rows_affected() == 1)
    }

    /// Puts `c` back on the ledger (its object could not be deleted),
    /// unless the path was written again meanwhile.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn restore_composite(&self, c: &CompositeRow) -> Result<(), MetaError> {
        sqlx::query(
            "INSERT INTO composites (path, bytes, used_at) VALUES ($1, $2, $3) ON CONFLICT (path) DO NOTHING",
        )
        .bind(c.path.clone())
        .bind(c.bytes)
        .bind(c.used_at)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(translate)
    }

    /// Takes every composite under `prefix` (a stale version's folder) off
    /// the ledger; how many.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn forget_composites(&self, prefix: &str) -> Result<u64, MetaError> {
        // The prefix is a path the store made (`composites/<uuid>/v<n>e<n>/`):
        // no LIKE wildcards in it, but escape them anyway.
        let pattern = format!(
            "{}%",
            prefix
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let done = sqlx::query("DELETE FROM composites WHERE path LIKE $1 ESCAPE '\\'")
            .bind(pattern)
            .execute(&self.pool)
            .await
            .map_err(translate)?;
        Ok(done.rows_affected())
    }
}
