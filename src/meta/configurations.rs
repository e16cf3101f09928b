//! Saved configurations.

use super::{Meta, MetaError, Where, Window, int, opt_text, text, translate, uuid};
use sqlx::any::AnyRow;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq)]
pub struct ConfigurationRow {
    pub id: Uuid,
    /// 10 characters of `[A-Za-z0-9_-]`, for short links.
    pub short_id: String,
    pub org_id: Uuid,
    pub product_id: String,
    pub product_version: Option<String>,
    /// The configuration, JSON.
    pub variant: String,
    /// JSON object.
    pub metadata: String,
    /// JSON object of name → file id.
    pub attachments: String,
    pub customer_id: Option<String>,
    pub identifier: Option<String>,
    pub scope: Option<String>,
    pub thumbnail: Option<String>,
    pub session_id: Option<String>,
    pub creator: Option<String>,
    pub created_at: i64,
}

const COLUMNS: &str = "id, short_id, org_id, product_id, product_version, variant, metadata, attachments, \
    customer_id, identifier, scope, thumbnail, session_id, creator, created_at";

fn row(r: &AnyRow) -> Result<ConfigurationRow, MetaError> {
    Ok(ConfigurationRow {
        id: uuid(r, "id")?,
        short_id: text(r, "short_id")?,
        org_id: uuid(r, "org_id")?,
        product_id: text(r, "product_id")?,
        product_version: opt_text(r, "product_version")?,
        variant: text(r, "variant")?,
        metadata: text(r, "metadata")?,
        attachments: text(r, "attachments")?,
        customer_id: opt_text(r, "customer_id")?,
        identifier: opt_text(r, "identifier")?,
        scope: opt_text(r, "scope")?,
        thumbnail: opt_text(r, "thumbnail")?,
        session_id: opt_text(r, "session_id")?,
        creator: opt_text(r, "creator")?,
        created_at: int(r, "created_at")?,
    })
}

impl Meta {
    /// # Errors
    /// [`MetaError::Conflict`] when the short id is taken (pick another).
    pub async fn insert_configuration(&self, c: &ConfigurationRow) -> Result<(), MetaError> {
        let sql = format!(
            "INSERT INTO configurations ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        );
        sqlx::query(&sql)
            .bind(c.id.to_string())
            .bind(c.short_id.clone())
            .bind(c.org_id.to_string())
            .bind(c.product_id.clone())
            .bind(c.product_version.clone())
            .bind(c.variant.clone())
            .bind(c.metadata.clone())
            .bind(c.attachments.clone())
            .bind(c.customer_id.clone())
            .bind(c.identifier.clone())
            .bind(c.scope.clone())
            .bind(c.thumbnail.clone())
            .bind(c.session_id.clone())
            .bind(c.creator.clone())
            .bind(c.created_at)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(translate)
    }

    /// A configuration by id, or by short id when `key` is not a UUID.
    ///
    /// # Errors
    /// [`MetaError::NotFound`] when the org has no such configuration.
    pub async fn configuration(&self, org: Uuid, key: &str) -> Result<ConfigurationRow, MetaError> {
        let column = if Uuid::parse_str(key).is_ok() {
            "id"
        } else {
            "short_id"
        };
        let sql =
            format!("SELECT {COLUMNS} FROM configurations WHERE org_id = $1 AND {column} = $2");
        let r = sqlx::query(&sql)
            .bind(org.to_string())
            .bind(key.to_string())
            .fetch_one(&self.pool)
            .await
            .map_err(translate)?;
        row(&r)
    }

    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn configurations(
        &self,
        org: Uuid,
        w: Window,
    ) -> Result<(usize, Vec<ConfigurationRow>), MetaError> {
        let mut filter = Where::default();
        filter.eq("org_id", Some(org));
        self.page("configurations", COLUMNS, &filter, Some(w), row)
            .await
    }
}
