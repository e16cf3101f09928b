//! Asset versions and epochs.

use super::{Meta, MetaError, int, text, translate, uuid};
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

/// One version of one asset definition.
#[derive(Debug, Clone, PartialEq)]
pub struct AssetVersionRow {
    pub asset_id: Uuid,
    pub version: u32,
    pub org_id: Uuid,
    pub name: String,
    /// The asset definition as JSON.
    pub definition: String,
    /// Hex blake3 of the definition without its version.
    pub content_fp: String,
    /// `catalog` (a catalogue file) or `api` (`PUT /api/assets/{id}`).
    pub source: String,
    pub created_at: i64,
}

const COLUMNS: &str = "asset_id, version, org_id, name, definition, content_fp, source, created_at";

fn row(r: &AnyRow) -> Result<AssetVersionRow, MetaError> {
    Ok(AssetVersionRow {
        asset_id: uuid(r, "asset_id")?,
        version: u32::try_from(int(r, "version")?)
            .map_err(|e| MetaError::Corrupt(format!("version: {e}")))?,
        org_id: uuid(r, "org_id")?,
        name: text(r, "name")?,
        definition: text(r, "definition")?,
        content_fp: text(r, "content_fp")?,
        source: text(r, "source")?,
        created_at: int(r, "created_at")?,
    })
}

impl Meta {
    /// The newest version of `asset_id`, if it has any.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn latest_asset_versions_of(
        &self,
        asset_id: Uuid,
    ) -> Result<Option<AssetVersionRow>, MetaError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM asset_versions WHERE asset_id = $1 ORDER BY version DESC LIMIT 1"
        );
        let r = sqlx::query(&sql)
            .bind(asset_id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(translate)?;
        r.as_ref().map(row).transpose()
    }

    /// The version of `asset_id` whose content fingerprint is `content_fp`, if any.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn asset_version_by_content(
        &self,
        asset_id: Uuid,
        content_fp: &str,
    ) -> Result<Option<AssetVersionRow>, MetaError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM asset_versions WHERE asset_id = $1 AND content_fp = $2 ORDER BY version DESC LIMIT 1"
        );
        let r = sqlx::query(&sql)
            .bind(asset_id.to_string())
            .bind(content_fp.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(translate)?;
        r.as_ref().map(row).transpose()
    }

    /// When the first version of `asset_id` was recorded.
    ///
    /// # Errors
    /// [`MetaError::NotFound`] for an unknown asset.
    pub async fn asset_created_at(&self, asset_id: Uuid) -> Result<i64, MetaError> {
        let r = sqlx::query("SELECT MIN(created_at) AS t FROM asset_versions WHERE asset_id = $1")
            .bind(asset_id.to_string())
            .fetch_one(&self.pool)
            .await
            .map_err(translate)?;
        // MIN over no rows is NULL: that asset does not exist.
        match r.try_get::<Option<i64>, _>("t") {
            Ok(Some(t)) => Ok(t),
            Ok(None) => Err(MetaError::NotFound),
            Err(e) => Err(MetaError::Corrupt(format!("created_at: {e}"))),
        }
    }

    /// Records a new version.
    ///
    /// # Errors
    /// [`MetaError::Conflict`] when that version number exists already.
    pub async fn insert_asset_version(&self, v: &AssetVersionRow) -> Result<(), MetaError> {
        let sql = format!(
            "INSERT INTO asset_versions ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        );
        sqlx::query(&sql)
            .bind(v.asset_id.to_string())
            .bind(i64::from(v.version))
            .bind(v.org_id.to_string())
            .bind(v.name.clone())
            .bind(v.definition.clone())
            .bind(v.content_fp.clone())
            .bind(v.source.clone())
            .bind(v.created_at)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(translate)
    }

    /// A given version of `asset_id`.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn asset_version(
        &self,
        asset_id: Uuid,
        version: u32,
    ) -> Result<Option<AssetVersionRow>, MetaError> {
        let sql =
            format!("SELECT {COLUMNS} FROM asset_versions WHERE asset_id = $1 AND version = $2");
        let r = sqlx::query(&sql)
            .bind(asset_id.to_string())
            .bind(i64::from(version))
            .fetch_optional(&self.pool)
            .await
            .map_err(translate)?;
        r.as_ref().map(row).transpose()
    }

    /// The live version of every asset that has one.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn live_versions(&self) -> Result<Vec<(Uuid, u32)>, MetaError> {
        let rows = sqlx::query("SELECT asset_id, version FROM asset_live ORDER BY asset_id")
            .fetch_all(&self.pool)
            .await
            .map_err(translate)?;
        rows.iter()
            .map(|r| {
                Ok((
                    uuid(r, "asset_id")?,
                    u32::try_from(int(r, "version")?)
                        .map_err(|e| MetaError::Corrupt(format!("version: {e}")))?,
                ))
            })
            .collect()
    }

    /// Makes `version` the live version of `asset_id`.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn set_live_version(&self, asset_id: Uuid, version: u32) -> Result<(), MetaError> {
        sqlx::query(
            "INSERT INTO asset_live (asset_id, version, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (asset_id) DO UPDATE SET version = $2, updated_at = $3",
        )
        .bind(asset_id.to_string())
        .bind(i64::from(version))
        .bind(self.now())
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(translate)
    }

    /// The content fingerprint of the catalogue file for `asset_id` when last read.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn catalog_import(&self, asset_id: Uuid) -> Result<Option<String>, MetaError> {
        let r = sqlx::query("SELECT content_fp FROM catalog_imports WHERE asset_id = $1")
            .bind(asset_id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(translate)?;
        r.as_ref().map(|r| text(r, "content_fp")).transpose()
    }

    /// Notes what the catalogue file for `asset_id` looks like now.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn record_catalog_import(
        &self,
        asset_id: Uuid,
        content_fp: &str,
    ) -> Result<(), MetaError> {
        sqlx::query(
            "INSERT INTO catalog_imports (asset_id, content_fp, imported_at) VALUES ($1, $2, $3) \
             ON CONFLICT (asset_id) DO UPDATE SET content_fp = $2, imported_at = $3",
        )
        .bind(asset_id.to_string())
        .bind(content_fp.to_string())
        .bind(self.now())
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(translate)
    }

    /// The asset's layer epoch (0 until a registered layer replaced an image).
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn asset_epoch(&self, asset_id: Uuid) -> Result<u64, MetaError> {
        let r = sqlx::query("SELECT epoch FROM asset_epochs WHERE asset_id = $1")
            .bind(asset_id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(translate)?;
        match r {
            Some(r) => Ok(int(&r, "epoch")?.max(0) as u64),
            None => Ok(0),
        }
    }

    /// Increments and returns the asset's layer epoch.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn bump_asset_epoch(&self, asset_id: Uuid) -> Result<u64, MetaError> {
        sqlx::query(
            "INSERT INTO asset_epochs (asset_id, epoch) VALUES ($1, 1) \
             ON CONFLICT (asset_id) DO UPDATE SET epoch = asset_epochs.epoch + 1",
        )
        .bind(asset_id.to_string())
        .execute(&self.pool)
        .await
        .map_err(translate)?;
        self.asset_epoch(asset_id).await
    }
}
