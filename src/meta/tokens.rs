//! API tokens (stored hashed).

use super::{Meta, MetaError, int, opt_int, text, translate, uuid};
use sqlx::any::AnyRow;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq)]
pub struct TokenRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    /// `private` or `public`.
    pub kind: String,
    /// Hex blake3 of the token.
    pub hash: String,
    /// JSON array of allowed origins (public tokens).
    pub origins: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

const COLUMNS: &str = "id, org_id, name, kind, hash, origins, created_at, revoked_at";

fn row(r: &AnyRow) -> Result<TokenRow, MetaError> {
    Ok(TokenRow {
        id: uuid(r, "id")?,
        org_id: uuid(r, "org_id")?,
        name: text(r, "name")?,
        kind: text(r, "kind")?,
        hash: text(r, "hash")?,
        origins: text(r, "origins")?,
        created_at: int(r, "created_at")?,
        revoked_at: opt_int(r, "revoked_at")?,
    })
}

impl Meta {
    /// Records a token (and its org, if new).
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn insert_token(&self, t: &TokenRow) -> Result<(), MetaError> {
        self.ensure_org(t.org_id, &t.org_id.to_string()).await?;
        sqlx::query(&format!(
            "INSERT INTO tokens ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)"
        ))
        .bind(t.id.to_string())
        .bind(t.org_id.to_string())
        .bind(t.name.clone())
        .bind(t.kind.clone())
        .bind(t.hash.clone())
        .bind(t.origins.clone())
        .bind(t.created_at)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(translate)
    }

    /// The token with this hash, revoked or not.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRow>, MetaError> {
        let r = sqlx::query(&format!("SELECT {COLUMNS} FROM tokens WHERE hash = $1"))
            .bind(hash.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(translate)?;
        r.as_ref().map(row).transpose()
    }

    /// Every token, oldest first.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn tokens(&self) -> Result<Vec<TokenRow>, MetaError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM tokens ORDER BY created_at ASC, id ASC"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(translate)?;
        rows.iter().map(row).collect()
    }

    /// Every token not revoked.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn live_tokens(&self) -> Result<Vec<TokenRow>, MetaError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM tokens WHERE revoked_at IS NULL ORDER BY created_at ASC, id ASC"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(translate)?;
        rows.iter().map(row).collect()
    }

    /// How many tokens were ever created (revoked ones count: revoking
    /// every token must not turn authentication off).
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn token_count(&self) -> Result<i64, MetaError> {
        let r = sqlx::query("SELECT COUNT(*) AS n FROM tokens")
            .fetch_one(&self.pool)
            .await
            .map_err(translate)?;
        int(&r, "n")
    }

    /// Revokes token `id`; false if there is no such live token.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn revoke_token(&self, id: Uuid) -> Result<bool, MetaError> {
        let done =
            sqlx::query("UPDATE tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .bind(id.to_string())
                .bind(self.now())
                .execute(&self.pool)
                .await
                .map_err(translate)?;
        Ok(done.rows_affected() == 1)
    }
}
