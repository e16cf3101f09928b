//! Layer records: one per rendered or registered layer image.

use super::{
    Existing, Meta, MetaError, Where, Window, int, opt_text, placeholders, text, translate, uuid,
};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq)]
pub struct LayerRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub asset_id: Uuid,
    pub asset_version: i64,
    /// The composition layer's UUID.
    pub asset_layer: String,
    /// Canonical JSON of the configuration restricted to the layer's `dependsOn`.
    pub layer_config: String,
    pub layer_config_hash: String,
    pub stage_id: Option<String>,
    /// Canonical JSON of the view's stage configuration.
    pub stage_config: String,
    pub stage_config_hash: String,
    /// JSON object; for cropped layers `offsetX`/`offsetY` place the image.
    pub metadata: String,
    pub job_id: Option<String>,
    pub task_id: Option<String>,
    pub file_id: Uuid,
    pub branch: String,
    pub format: String,
    /// The full canvas.
    pub width: i64,
    pub height: i64,
    /// layercake's layer key (hex): where the image is in the object store.
    pub layer_key: String,
    /// `render` or `upload`.
    pub source: String,
    pub created_at: i64,
}

/// Equality filters of `GET /api/layers`; `None` matches anything.
#[derive(Debug, Clone, Default)]
pub struct LayerFilter {
    pub id: Option<Uuid>,
    pub asset_id: Option<Uuid>,
    pub asset_layer: Option<String>,
    pub layer_config_hash: Option<String>,
    pub stage_id: Option<String>,
    pub stage_config_hash: Option<String>,
    pub job_id: Option<String>,
    pub branch: Option<String>,
    pub layer_key: Option<String>,
}

const COLUMNS: &str = "id, org_id, asset_id, asset_version, asset_layer, layer_config, layer_config_hash, stage_id, \
    stage_config, stage_config_hash, metadata, job_id, task_id, file_id, branch, format, width, height, layer_key, source, created_at";

fn row(r: &AnyRow) -> Result<LayerRow, MetaError> {
    Ok(LayerRow {
        id: uuid(r, "id")?,
        org_id: uuid(r, "org_id")?,
        asset_id: uuid(r, "asset_id")?,
        asset_version: int(r, "asset_version")?,
        asset_layer: text(r, "asset_layer")?,
        layer_config: text(r, "layer_config")?,
        layer_config_hash: text(r, "layer_config_hash")?,
        stage_id: opt_text(r, "stage_id")?,
        stage_config: text(r, "stage_config")?,
        stage_config_hash: text(r, "stage_config_hash")?,
        metadata: text(r, "metadata")?,
        job_id: opt_text(r, "job_id")?,
        task_id: opt_text(r, "task_id")?,
        file_id: uuid(r, "file_id")?,
        branch: text(r, "branch")?,
        format: text(r, "format")?,
        width: int(r, "width")?,
        height: int(r, "height")?,
        layer_key: text(r, "layer_key")?,
        source: text(r, "source")?,
        created_at: int(r, "created_at")?,
    })
}

fn filter(org: Uuid, f: &LayerFilter) -> Where {
    let mut w = Where::default();
    w.eq("org_id", Some(org))
        .eq("id", f.id)
        .eq("asset_id", f.asset_id)
        .eq("asset_layer", f.asset_layer.clone())
        .eq("layer_config_hash", f.layer_config_hash.clone())
        .eq("stage_id", f.stage_id.clone())
        .eq("stage_config_hash", f.stage_config_hash.clone())
        .eq("job_id", f.job_id.clone())
        .eq("branch", f.branch.clone())
        .eq("layer_key", f.layer_key.clone());
    w
}

impl Meta {
    /// The layer keys of `asset` `version` that have an uploaded
    /// (registered) image: the ones a registration may have replaced.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn registered_layer_keys(
        &self,
        asset: Uuid,
        version: u32,
    ) -> Result<Vec<String>, MetaError> {
        let rows = sqlx::query(
            "SELECT DISTINCT layer_key FROM layers WHERE asset_id = $1 AND asset_version = $2 AND source = 'upload'",
        )
        .bind(asset.to_string())
        .bind(i64::from(version))
        .fetch_all(&self.pool)
        .await
        .map_err(translate)?;
        rows.iter().map(|r| text(r, "layer_key")).collect()
    }

    /// Whether `file` is the image of one of `org`'s layers.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn is_layer_file(&self, org: Uuid, file: Uuid) -> Result<bool, MetaError> {
        let row =
            sqlx::query("SELECT 1 AS one FROM layers WHERE org_id = $1 AND file_id = $2 LIMIT 1")
                .bind(org.to_string())
                .bind(file.to_string())
                .fetch_optional(&self.pool)
                .await
                .map_err(translate)?;
        Ok(row.is_some())
    }

    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn insert_layer(&self, l: &LayerRow) -> Result<(), MetaError> {
        let sql = format!(
            "INSERT INTO layers ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)"
        );
        sqlx::query(&sql)
            .bind(l.id.to_string())
            .bind(l.org_id.to_string())
            .bind(l.asset_id.to_string())
            .bind(l.asset_version)
            .bind(l.asset_layer.clone())
            .bind(l.layer_config.clone())
            .bind(l.layer_config_hash.clone())
            .bind(l.stage_id.clone())
            .bind(l.stage_config.clone())
            .bind(l.stage_config_hash.clone())
            .bind(l.metadata.clone())
            .bind(l.job_id.clone())
            .bind(l.task_id.clone())
            .bind(l.file_id.to_string())
            .bind(l.branch.clone())
            .bind(l.format.clone())
            .bind(l.width)
            .bind(l.height)
            .bind(l.layer_key.clone())
            .bind(l.source.clone())
            .bind(l.created_at)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(translate)
    }

    /// # Errors
    /// [`MetaError::NotFound`] when the org has no such layer.
    pub async fn layer(&self, org: Uuid, id: Uuid) -> Result<LayerRow, MetaError> {
        let f = LayerFilter {
            id: Some(id),
            ..LayerFilter::default()
        };
        self.layers(
            org,
            &f,
            Some(Window {
                offset: 0,
                limit: 1,
                descending: false,
            }),
        )
        .await?
        .1
        .pop()
        .ok_or(MetaError::NotFound)
    }

    /// Matching layers and their total count; all of them when `window` is `None`.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn layers(
        &self,
        org: Uuid,
        f: &LayerFilter,
        window: Option<Window>,
    ) -> Result<(usize, Vec<LayerRow>), MetaError> {
        self.page("layers", COLUMNS, &filter(org, f), window, row)
            .await
    }
}

/// The latest layer record of `layer_key` (a registration after a render
/// replaced its image), if any: what a task for that
/// key finishes with instead of rendering again. Read in the transaction
/// that creates or claims the task; on PostgreSQL (READ COMMITTED) the
/// statement sees every record committed before it, and a worker records
/// its layer before it stops its task, so a task created after another
/// stopped, or claimed after another run of it recorded, sees the record.
pub(super) async fn existing_layer(
    conn: &mut AnyConnection,
    layer_key: &str,
) -> Result<Option<Existing>, MetaError> {
    let r = sqlx::query(
        "SELECT id, file_id FROM layers WHERE layer_key = $1 ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(layer_key.to_string())
    .fetch_optional(&mut *conn)
    .await
    .map_err(translate)?;
    r.map(|r| {
        Ok(Existing {
            layer: uuid(&r, "id")?,
            file: uuid(&r, "file_id")?,
        })
    })
    .transpose()
}

impl Meta {
    /// Which of `keys` have a layer record.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn recorded_among(
        &self,
        keys: &[String],
    ) -> Result<std::collections::HashSet<String>, MetaError> {
        let mut out = std::collections::HashSet::new();
        for chunk in keys.chunks(500) {
            let sql = format!(
                "SELECT DISTINCT layer_key FROM layers WHERE layer_key IN ({})",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for k in chunk {
                q = q.bind(k.clone());
            }
            for r in q.fetch_all(&self.pool).await.map_err(translate)? {
                out.insert(text(&r, "layer_key")?);
            }
        }
        Ok(out)
    }

    /// The latest layer record of `layer_key`, if any.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn recorded_layer(&self, layer_key: &str) -> Result<Option<Existing>, MetaError> {
        let mut conn = self.pool.acquire().await.map_err(translate)?;
        existing_layer(&mut conn, layer_key).await
    }
}
