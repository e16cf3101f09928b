//! The Files service: bytes stored once by content hash, records per org.
//!
//! Uploaded content goes to `files/<aa>/<blake3>` in the object store; a
//! rendered layer's file record points at its layer object instead, so a
//! layer image is stored once whichever way it is reached.

use crate::error::Error;
use crate::meta::{FileRow, Meta};
use crate::store::BlobStore;
use bytes::Bytes;
use std::sync::Arc;
use uuid::Uuid;

#[derive(Clone)]
pub struct FileService {
    meta: Arc<Meta>,
    store: BlobStore,
    max_pixels: u64,
}

/// `blake3-<hex>` of `bytes`, the form the API shows as `hash`.
pub fn content_hash(bytes: &[u8]) -> String {
    format!("blake3-{}", blake3::hash(bytes).to_hex())
}

impl FileService {
    /// `max_pixels` bounds the images accepted as uploads.
    pub fn new(meta: Arc<Meta>, store: BlobStore, max_pixels: u64) -> FileService {
        FileService {
            meta,
            store,
            max_pixels,
        }
    }

    /// Stores an upload (once per content) and records it for `org`.
    ///
    /// # Errors
    /// 422 for an image whose header says it is over the pixel budget
    /// (checked before any pixel is decoded: a decompression bomb is a few
    /// KB); store or metadata failures.
    pub async fn upload(
        &self,
        org: Uuid,
        filename: Option<&str>,
        declared_type: Option<&str>,
        bytes: Bytes,
    ) -> Result<FileRow, Error> {
        check_pixels(&bytes, self.max_pixels)?;
        let path = content_path(&content_hash(&bytes));
        if !self.store.exists(&path).await? {
            self.store.put(&path, bytes.clone()).await?;
        }
        self.record(org, filename, declared_type, &path, &bytes)
            .await
    }

    /// Before the object at `path` is overwritten, moves every file record
    /// that points at it to a content-addressed copy, so the bytes behind a
    /// file id never change.
    ///
    /// # Errors
    /// Store or metadata failures.
    pub async fn detach(&self, path: &str) -> Result<(), Error> {
        let rows = self.meta.files_at(path).await?;
        if rows.is_empty() {
            return Ok(());
        }
        let Some(bytes) = self.store.get(path).await? else {
            return Ok(());
        };
        let hash = content_hash(&bytes);
        let target = content_path(&hash);
        if !self.store.exists(&target).await? {
            self.store.put(&target, bytes).await?;
        }
        for r in rows {
            if r.hash == hash {
                self.meta.move_file(r.id, &target).await?;
            } else {
                tracing::warn!(file = %r.id, path, "file record does not match the bytes at its path");
            }
        }
        Ok(())
    }

    /// Records content that is already stored at `path`.
    ///
    /// # Errors
    /// Metadata failures.
    pub async fn record(
        &self,
        org: Uuid,
        filename: Option<&str>,
        declared_type: Option<&str>,
        path: &str,
        bytes: &[u8],
    ) -> Result<FileRow, Error> {
        let mime = sniff(bytes)
            .or(declared_type.filter(|t| !t.is_empty()))
            .unwrap_or("application/octet-stream");
        let filename = filename
            .filter(|f| !f.is_empty())
            .unwrap_or("upload")
            .to_string();
        let extension = filename
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .filter(|e| !e.is_empty() && e.len() <= 8)
            .unwrap_or_else(|| extension_of(mime).to_string());
        let row = FileRow {
            id: Uuid::new_v4(),
            org_id: org,
            user_id: None,
            filename,
            size: bytes.len() as i64,
            hash: content_hash(bytes),
            extension,
            mime_type: mime.to_string(),
            path: path.to_string(),
            created_at: self.meta.now(),
        };
        Ok(self.meta.insert_file(&row).await?)
    }

    /// Whether file `id` is a layer's image (what a public token may read).
    ///
    /// # Errors
    /// Metadata failures.
    pub async fn is_layer_file(&self, org: Uuid, id: Uuid) -> Result<bool, Error> {
        Ok(self.meta.is_layer_file(org, id).await?)
    }

    /// # Errors
    /// [`Error::NotFound`] when `org` has no such file.
    pub async fn get(&self, org: Uuid, id: Uuid) -> Result<FileRow, Error> {
        self.meta.file(org, id).await.map_err(|e| {
            if e.is_not_found() {
                Error::NotFound(format!("file {id} not found"))
            } else {
                e.into()
            }
        })
    }

    /// # Errors
    /// [`Error::NotFound`] for an unknown file; 500 when its bytes are missing.
    pub async fn content(&self, org: Uuid, id: Uuid) -> Result<(FileRow, Bytes), Error> {
        let f = self.get(org, id).await?;
        let bytes =
            self.store.get(&f.path).await?.ok_or_else(|| {
                Error::Internal(format!("file {id}: object {} is missing", f.path))
            })?;
        Ok((f, bytes))
    }
}

/// `files/<aa>/<hex>`: where content with this `blake3-<hex>` hash is kept.
pub fn content_path(hash: &str) -> String {
    let hex = hash.strip_prefix("blake3-").unwrap_or(hash);
    format!("files/{}/{hex}", hex.get(..2).unwrap_or("00"))
}

/// Media types served inline; anything else is a download, so an uploaded
/// HTML page or SVG cannot run script on the API's origin.
pub fn is_inline_safe(mime: &str) -> bool {
    matches!(
        mime,
        "image/png" | "image/jpeg" | "image/webp" | "image/gif"
    )
}

/// The media type from the first bytes, for the formats layercake cares about.
pub fn sniff(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if b.len() >= 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        Some("image/webp")
    } else if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        Some("image/gif")
    } else {
        let head = String::from_utf8_lossy(&b[..b.len().min(256)]);
        let t = head.trim_start();
        if t.starts_with("<svg") || (t.starts_with("<?xml") && head.contains("<svg")) {
            Some("image/svg+xml")
        } else {
            None
        }
    }
}

fn extension_of(mime: &str) -> &'static str {
    match mime {
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/webp" => "webp",
        "image/gif" => "gif",
        "image/svg+xml" => "svg",
        "application/json" => "json",
        _ => "bin",
    }
}

/// Refuses an image (PNG, JPEG, WebP, ...) whose header declares more than
/// `max` pixels; other files pass.
///
/// # Errors
/// 422 naming the dimensions and the budget.
pub fn check_pixels(bytes: &[u8], max: u64) -> Result<(), Error> {
    let reader = match image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format() {
        Ok(r) if r.format().is_some() => r,
        _ => return Ok(()),
    };
    if let Ok((w, h)) = reader.into_dimensions()
        && u64::from(w) * u64::from(h) > max
    {
        return Err(Error::invalid(
            "files",
            format!(
                "the image is {w}x{h}, over the pixel budget of {max} pixels (render.max_pixels)"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_common_images() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some("image/jpeg"));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff(b"  <svg xmlns=..."), Some("image/svg+xml"));
        assert_eq!(sniff(b"hello"), None);
        assert_eq!(
            content_hash(b"abc"),
            format!("blake3-{}", blake3::hash(b"abc").to_hex())
        );
    }
}
