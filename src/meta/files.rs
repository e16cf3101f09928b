//! File records. The bytes live in the object store at `path`; one record
//! per (org, content hash).

use super::{Meta, MetaError, int, opt_text, placeholders, text, translate, uuid};
use sqlx::any::AnyRow;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq)]
pub struct FileRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub user_id: Option<String>,
    pub filename: String,
    pub size: i64,
    /// `blake3-<hex>` of the content.
    pub hash: String,
    pub extension: String,
    pub mime_type: String,
    /// Object store path of the content.
    pub path: String,
    pub created_at: i64,
}

const COLUMNS: &str =
    "id, org_id, user_id, filename, size, hash, extension, mime_type, path, created_at";

fn row(r: &AnyRow) -> Result<FileRow, MetaError> {
    Ok(FileRow {
        id: uuid(r, "id")?,
        org_id: uuid(r, "org_id")?,
        user_id: opt_text(r, "user_id")?,
        filename: text(r, "filename")?,
        size: int(r, "size")?,
        hash: text(r, "hash")?,
        extension: text(r, "extension")?,
        mime_type: text(r, "mime_type")?,
        path: text(r, "path")?,
        created_at: int(r, "created_at")?,
    })
}

impl Meta {
    /// Inserts `f`, or returns the org's existing record for the same content.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn insert_file(&self, f: &FileRow) -> Result<FileRow, MetaError> {
        let sql = format!(
            "INSERT INTO files ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (org_id, hash) DO NOTHING"
        );
        sqlx::query(&sql)
            .bind(f.id.to_string())
            .bind(f.org_id.to_string())
            .bind(f.user_id.clone())
            .bind(f.filename.clone())
            .bind(f.size)
            .bind(f.hash.clone())
            .bind(f.extension.clone())
            .bind(f.mime_type.clone())
            .bind(f.path.clone())
            .bind(f.created_at)
            .execute(&self.pool)
            .await
            .map_err(translate)?;
        let sql = format!("SELECT {COLUMNS} FROM files WHERE org_id = $1 AND hash = $2");
        let r = sqlx::query(&sql)
            .bind(f.org_id.to_string())
            .bind(f.hash.clone())
            .fetch_one(&self.pool)
            .await
            .map_err(translate)?;
        row(&r)
    }

    /// Every file record (of any org) whose bytes are at `path`.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn files_at(&self, path: &str) -> Result<Vec<FileRow>, MetaError> {
        let sql = format!("SELECT {COLUMNS} FROM files WHERE path = $1");
        let rows = sqlx::query(&sql)
            .bind(path.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(translate)?;
        rows.iter().map(row).collect()
    }

    /// Points a file record at another copy of the same bytes.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn move_file(&self, id: Uuid, path: &str) -> Result<(), MetaError> {
        sqlx::query("UPDATE files SET path = $1 WHERE id = $2")
            .bind(path.to_string())
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(translate)
    }

    /// # Errors
    /// [`MetaError::NotFound`] when the org has no such file.
    pub async fn file(&self, org: Uuid, id: Uuid) -> Result<FileRow, MetaError> {
        let sql = format!("SELECT {COLUMNS} FROM files WHERE org_id = $1 AND id = $2");
        let r = sqlx::query(&sql)
            .bind(org.to_string())
            .bind(id.to_string())
            .fetch_one(&self.pool)
            .await
            .map_err(translate)?;
        row(&r)
    }

    /// The files of `org` among `ids` (absent ones left out), in chunks of
    /// 500 ids per query.
    ///
    /// # Errors
    /// [`MetaError`] from the store.
    pub async fn files_among(&self, org: Uuid, ids: &[Uuid]) -> Result<Vec<FileRow>, MetaError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT {COLUMNS} FROM files WHERE org_id = $1 AND id IN ({})",
                placeholders(2, chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(org.to_string());
            for id in chunk {
                q = q.bind(id.to_string());
            }
            for r in q.fetch_all(&self.pool).await.map_err(translate)? {
                out.push(row(&r)?);
            }
        }
        Ok(out)
    }
}
