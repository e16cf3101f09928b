//! The Files service: `POST /api/files`, `GET /api/files/{id}`,
//! `GET /api/files/{id}/content` (with `ETag` and `Range`).

use super::auth::{Caller, CallerKind, Reader};
use super::error::ApiError;
use super::params::parse_uuid;
use crate::app::App;
use crate::error::Error;
use crate::wire::{ErrorBody, FileJson, FilesJson};
use axum::Json;
use axum::extract::multipart::MultipartError;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

pub fn multipart_error(e: MultipartError) -> Error {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Error::TooLarge(format!("the upload is too large: {}", e.body_text()))
    } else {
        Error::malformed(
            "body",
            format!("not a readable multipart form: {}", e.body_text()),
        )
    }
}

/// Upload files (multipart field `files`, or `file` as the published client
/// sends it); each is stored once by content hash.
#[utoipa::path(post, path = "/api/files", tag = "files",
    request_body(content_type = "multipart/form-data", description = "One or more file parts named `files` (or `file`, or `files[]`); its schema is `http::constraints::upload_form`."),
    responses(
        (status = 201, body = FilesJson),
        (status = 400, description = "Not a multipart form", body = ErrorBody),
        (status = 413, description = "Over http.max_upload_bytes", body = ErrorBody),
        (status = 422, description = "No file part", body = ErrorBody),
    ))]
pub async fn upload(
    State(app): State<Arc<App>>,
    caller: Caller,
    mut form: Multipart,
) -> Result<Response, ApiError> {
    let mut files = Vec::new();
    while let Some(field) = form.next_field().await.map_err(multipart_error)? {
        if !matches!(field.name(), Some("files" | "file" | "files[]")) {
            return Err(Error::invalid(
                field.name().unwrap_or("(unnamed part)"),
                "unknown part; files go in parts named files (or file)",
            )
            .into());
        }
        let Some(filename) = field.file_name().map(str::to_string) else {
            return Err(Error::invalid(
                field.name().unwrap_or("files"),
                "each part must be a file (a part with a filename)",
            )
            .into());
        };
        let filename = Some(filename);
        let declared = field.content_type().map(str::to_string);
        let bytes = field.bytes().await.map_err(multipart_error)?;
        let row = app
            .files()
            .upload(caller.org, filename.as_deref(), declared.as_deref(), bytes)
            .await?;
        files.push(FileJson::from_row(&row));
    }
    if files.is_empty() {
        return Err(Error::invalid("files", "the form has no part named files (or file)").into());
    }
    Ok((StatusCode::CREATED, Json(FilesJson { files })).into_response())
}

/// A public token reads a file only when it is one of its org's layers'
/// images (a configuration's attachments are a customer's, not a storefront's).
async fn layer_file_for_public(app: &App, caller: &Caller, id: uuid::Uuid) -> Result<(), Error> {
    if caller.kind == CallerKind::Public && !app.files().is_layer_file(caller.org, id).await? {
        return Err(Error::Forbidden(
            "a public token reads only files that are layer images; this one needs a private token"
                .into(),
        ));
    }
    Ok(())
}

/// A file's record.
#[utoipa::path(get, path = "/api/files/{id}", tag = "files",
    params(("id" = String, Path, description = "File id (UUID).")),
    responses((status = 200, body = FileJson), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn get(
    State(app): State<Arc<App>>,
    Reader(caller): Reader,
    Path(id): Path<String>,
) -> Result<Json<FileJson>, ApiError> {
    let id = parse_uuid("id", &id)?;
    layer_file_for_public(&app, &caller, id).await?;
    Ok(Json(FileJson::from_row(
        &app.files().get(caller.org, id).await?,
    )))
}

/// A file's bytes, with `Content-Type`, a strong `ETag` (the content hash)
/// and single-range `Range` support.
#[utoipa::path(get, path = "/api/files/{id}/content", tag = "files",
    params(
        ("id" = String, Path, description = "File id (UUID)."),
        ("Range" = Option<String>, Header, description = "bytes=a-b, bytes=a- or bytes=-n"),
        ("If-None-Match" = Option<String>, Header),
    ),
    responses(
        (status = 200, description = "The bytes"),
        (status = 206, description = "The requested range"),
        (status = 304, description = "Not modified"),
        (status = 404, body = ErrorBody),
        (status = 416, description = "Range not satisfiable"),
        (status = 422, body = ErrorBody),
    ))]
pub async fn content(
    State(app): State<Arc<App>>,
    Reader(caller): Reader,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_uuid("id", &id)?;
    layer_file_for_public(&app, &caller, id).await?;
    let (f, bytes) = app.files().content(caller.org, id).await?;
    let etag = format!("\"{}\"", f.hash);
    let common = |res: &mut Response| {
        let h = res.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&etag) {
            h.insert(header::ETAG, v);
        }
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        // Content-addressed: the bytes behind an id never change.
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, max-age=31536000, immutable"),
        );
    };
    if super::conditional::none_match(&headers, &etag) {
        let mut res = StatusCode::NOT_MODIFIED.into_response();
        common(&mut res);
        return Ok(res);
    }
    let len = bytes.len() as u64;
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|r| parse_range(r, len));
    let content_type = if crate::service::files::is_inline_safe(&f.mime_type) {
        f.mime_type.clone()
    } else {
        "application/octet-stream".to_string()
    };
    let mut res = match range {
        None | Some(Range::Ignore) => {
            ([(header::CONTENT_TYPE, content_type.clone())], bytes).into_response()
        }
        Some(Range::Unsatisfiable) => {
            return Err(Error::RangeNotSatisfiable { length: len as u64 }.into());
        }
        Some(Range::Bytes(a, b)) => {
            let part = bytes.slice(a as usize..=b as usize);
            (
                StatusCode::PARTIAL_CONTENT,
                [
                    (header::CONTENT_TYPE, content_type.clone()),
                    (header::CONTENT_RANGE, format!("bytes {a}-{b}/{len}")),
                ],
                part,
            )
                .into_response()
        }
    };
    common(&mut res);
    if !crate::service::files::is_inline_safe(&f.mime_type) {
        let name = f.filename.replace(['"', '\\', '\r', '\n'], "_");
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
            res.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
    }
    Ok(res)
}

#[derive(Debug, PartialEq)]
enum Range {
    /// Inclusive byte positions.
    Bytes(u64, u64),
    Unsatisfiable,
    /// Not a single byte range we serve: answer the whole content (allowed by RFC 9110).
    Ignore,
}

fn parse_range(header: &str, len: u64) -> Range {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Range::Ignore;
    };
    if spec.contains(',') {
        return Range::Ignore;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Range::Ignore;
    };
    let (a, b) = (a.trim(), b.trim());
    let parsed = match (a.is_empty(), b.is_empty()) {
        (true, true) => return Range::Ignore,
        // Suffix: the last n bytes.
        (true, false) => match b.parse::<u64>() {
            Ok(0) => return Range::Unsatisfiable,
            Ok(n) => (len.saturating_sub(n), len.saturating_sub(1)),
            Err(_) => return Range::Ignore,
        },
        (false, true) => match a.parse::<u64>() {
            Ok(start) => (start, len.saturating_sub(1)),
            Err(_) => return Range::Ignore,
        },
        (false, false) => match (a.parse::<u64>(), b.parse::<u64>()) {
            (Ok(s), Ok(e)) if s <= e => (s, e.min(len.saturating_sub(1))),
            _ => return Range::Ignore,
        },
    };
    if len == 0 || parsed.0 >= len {
        Range::Unsatisfiable
    } else {
        Range::Bytes(parsed.0, parsed.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-3", 10), Range::Bytes(0, 3));
        assert_eq!(parse_range("bytes=5-", 10), Range::Bytes(5, 9));
        assert_eq!(parse_range("bytes=-4", 10), Range::Bytes(6, 9));
        assert_eq!(parse_range("bytes=8-100", 10), Range::Bytes(8, 9));
        assert_eq!(parse_range("bytes=10-", 10), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 10), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,3-4", 10), Range::Ignore);
        assert_eq!(parse_range("items=0-1", 10), Range::Ignore);
        assert_eq!(parse_range("bytes=5-2", 10), Range::Ignore);
    }
}
