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

    /// Every asset's live version and layer epoch: what `gc` keeps, and
    /// what a serve process's catalogue refresh compares with its own.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn live_generations(&self) -> Result<Vec<(Uuid, u32, u64)>, MetaError> {
        self.generations(None).await
    }

    /// [`Meta::live_generations`] of one asset (`None` if none is live).
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn live_generation(&self, asset: Uuid) -> Result<Option<(u32, u64)>, MetaError> {
        Ok(self
            .generations(Some(asset))
            .await?
            .into_iter()
            .next()
            .map(|(_, version, epoch)| (version, epoch)))
    }

    async fn generations(&self, asset: Option<Uuid>) -> Result<Vec<(Uuid, u32, u64)>, MetaError> {
        let sql = format!(
            "SELECT l.asset_id, l.version, COALESCE(e.epoch, 0) AS epoch \
             FROM asset_live l LEFT JOIN asset_epochs e ON e.asset_id = l.asset_id {} \
             ORDER BY l.asset_id",
            if asset.is_some() {
                "WHERE l.asset_id = $1"
            } else {
                ""
            }
        );
        let mut q = sqlx::query(&sql);
        if let Some(a) = asset {
            q = q.bind(a.to_string());
        }
        let rows = q.fetch_all(&self.pool).await.map_err(translate)?;
        rows.iter()
            .map(|r| {
                Ok((
                    uuid(r, "asset_id")?,
                    u32::try_from(int(r, "version")?)
                        .map_err(|e| MetaError::Corrupt(format!("version: {e}")))?,
                    int(r, "epoch")?.max(0) as u64,
                ))
            })
            .collect()
    }

    /// Paths under `layers/<asset>/` but outside the live version's folder
    /// that file records still used by other layer records point at (a
    /// file record is shared by identical images, so a live layer can use
    /// one first stored under an older version).
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn stale_paths_in_use(
        &self,
        asset: Uuid,
        live: u32,
    ) -> Result<Vec<String>, MetaError> {
        let rows = sqlx::query(
            "SELECT DISTINCT path FROM files WHERE path LIKE $1 AND path NOT LIKE $2 \
             AND id IN (SELECT file_id FROM layers WHERE NOT (asset_id = $3 AND asset_version <> $4)) \
             ORDER BY path",
        )
        .bind(format!("layers/{asset}/%"))
        .bind(format!("layers/{asset}/v{live}/%"))
        .bind(asset.to_string())
        .bind(i64::from(live))
        .fetch_all(&self.pool)
        .await
        .map_err(translate)?;
        rows.iter().map(|r| text(r, "path")).collect()
    }

    /// The layer records of `asset` made under another version than
    /// `live`, and the file records under its stale layer folders that no
    /// other layer record uses: counted, and deleted unless `dry_run`.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn stale_layer_records(
        &self,
        asset: Uuid,
        live: u32,
        dry_run: bool,
    ) -> Result<(u64, u64), MetaError> {
        let layers = "FROM layers WHERE asset_id = $1 AND asset_version <> $2";
        let files = "FROM files WHERE path LIKE $3 AND path NOT LIKE $4 AND id NOT IN \
                     (SELECT file_id FROM layers WHERE NOT (asset_id = $1 AND asset_version <> $2))";
        let (asset_id, version) = (asset.to_string(), i64::from(live));
        let (under, keep) = (
            format!("layers/{asset}/%"),
            format!("layers/{asset}/v{live}/%"),
        );
        let count_l = format!("SELECT COUNT(*) AS n {layers}");
        let count_f = format!("SELECT COUNT(*) AS n {files}");
        let (delete_l, delete_f) = (format!("DELETE {layers}"), format!("DELETE {files}"));
        let q_layers = |sql| sqlx::query(sql).bind(asset_id.clone()).bind(version);
        let q_files = |sql| q_layers(sql).bind(under.clone()).bind(keep.clone());
        if dry_run {
            let n = |r: &AnyRow| int(r, "n").map(|n| n.max(0) as u64);
            let l = q_layers(&count_l)
                .fetch_one(&self.pool)
                .await
                .map_err(translate)?;
            let f = q_files(&count_f)
                .fetch_one(&self.pool)
                .await
                .map_err(translate)?;
            return Ok((n(&l)?, n(&f)?));
        }
        let mut tx = self.pool.begin().await.map_err(translate)?;
        // Files first: the layer records they are checked against go next.
        let f = q_files(&delete_f)
            .execute(&mut *tx)
            .await
            .map_err(translate)?
            .rows_affected();
        let l = q_layers(&delete_l)
            .execute(&mut *tx)
            .await
            .map_err(translate)?
            .rows_affected();
        tx.commit().await.map_err(translate)?;
        Ok((l, f))
    }
}
