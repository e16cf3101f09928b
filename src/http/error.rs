//! The one place where error kinds become HTTP statuses, and the one
//! boundary every answer passes on its way out.
//!
//! Body: `{"error": {"code": "<kebab-case>", "message": "...", "requestId": "..."}}`.
//! A 4xx message says exactly what was wrong with the request. A 5xx
//! message is a fixed sentence for its kind: the cause (a renderer's
//! stderr, a store path, a database error) goes to the log under the
//! request id, and for renders to the job's runs, readable with a private
//! token. Every error response is `no-store`: an error must never be
//! cached by a CDN in front of us.
//!
//! [`boundary`] wraps every request: it gives [`ApiError`] the request id
//! (a task-local), logs each 5xx cause once, and turns any error answer
//! that is not ours (an axum rejection, a 405, a caught panic) into the
//! same JSON shape, so no route can leak a body of its own.

use super::REQUEST_ID;
use crate::error::Error;
use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

tokio::task_local! {
    static REQUEST: String;
}

/// The cause of a 5xx, carried from [`ApiError`] to [`boundary`] (which logs it).
#[derive(Clone)]
struct Cause(String);

/// Marks an error answered as an HTML page on purpose ([`for_page`]): the
/// boundary leaves it as it is.
#[derive(Clone)]
struct AsPage;

/// An [`Error`] on its way out as a response.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match &self.0 {
            Error::Malformed { .. } => StatusCode::BAD_REQUEST,
            Error::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::RenderFailed(_) => StatusCode::BAD_GATEWAY,
            Error::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Error::Overloaded { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::NotCached(_) => StatusCode::GATEWAY_TIMEOUT,
            Error::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match &self.0 {
            Error::Malformed { .. } => "malformed",
            Error::Invalid { .. } => "invalid",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound(_) => "not-found",
            Error::Conflict(_) => "conflict",
            Error::TooLarge(_) => "too-large",
            Error::UnsupportedMediaType(_) => "unsupported-media-type",
            Error::RenderFailed(_) => "render-failed",
            Error::Unavailable { .. } => "unavailable",
            Error::Overloaded { .. } => "overloaded",
            Error::Unauthorized(_) => "unauthorized",
            Error::NotCached(_) => "not-cached",
            Error::RangeNotSatisfiable { .. } => "range-not-satisfiable",
            Error::Internal(_) => "internal",
        }
    }
}

/// The fixed sentence of each 5xx kind: all a client ever reads of one.
pub fn public_sentence(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_GATEWAY => {
            "the render failed; the job's runs say why (with a private token), the server log has the cause under this request id"
        }
        StatusCode::SERVICE_UNAVAILABLE => {
            "the service cannot answer this now; retry after the Retry-After seconds"
        }
        StatusCode::GATEWAY_TIMEOUT => "the request took too long; retry later",
        _ => "internal error; the server log has the cause under this request id",
    }
}

fn request_id() -> String {
    REQUEST.try_with(Clone::clone).unwrap_or_default()
}

fn body(status: StatusCode, code: &str, message: &str) -> Response {
    let mut error = serde_json::json!({ "code": code, "message": message });
    let id = request_id();
    if !id.is_empty() {
        error["requestId"] = id.into();
    }
    let mut res = (status, Json(serde_json::json!({ "error": error }))).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut res = if status.is_server_error() && !matches!(self.0, Error::NotCached(_)) {
            let mut res = body(status, self.code(), public_sentence(status));
            res.extensions_mut().insert(Cause(self.0.to_string()));
            res
        } else {
            body(status, self.code(), &self.0.to_string())
        };
        if let Error::Unavailable { retry_after, .. } | Error::Overloaded { retry_after, .. } =
            &self.0
        {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
        }
        if let Error::RangeNotSatisfiable { length } = &self.0
            && let Ok(v) = HeaderValue::from_str(&format!("bytes */{length}"))
        {
            res.headers_mut().insert(header::CONTENT_RANGE, v);
        }
        res
    }
}

/// An error of an HTML page (the listing page, the embeds): a browser (an
/// `Accept` naming `text/html`) gets a page saying what went wrong and
/// what to do, with the same status and headers; any other client the JSON
/// error body.
pub fn for_page(e: ApiError, accept: Option<&str>) -> Response {
    if !accept.is_some_and(|a| a.contains("text/html")) {
        return e.into_response();
    }
    let status = e.status();
    let message = if status.is_server_error() {
        public_sentence(status).to_string()
    } else {
        e.0.to_string()
    };
    let hint = match status {
        StatusCode::UNAUTHORIZED => {
            "This server has API tokens. Open the page with <code>?bearer_token=</code> and a <em>public</em> token (<code>layercake token create --public --origin https://your.shop</code>): it may only read what a storefront shows, so it can be in a page's image URLs."
        }
        StatusCode::FORBIDDEN => {
            "A page puts its token into every image URL, where anyone can read it: open it with a public token, or configure <code>signing.keys</code> so its URLs are signed instead."
        }
        _ => "",
    };
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} · layercake</title>\n\
         <style>body{{font:15px/1.5 system-ui,sans-serif;max-width:40em;margin:3em auto;padding:0 1em;color:#222}}code{{background:#f2f0ed;padding:0 .2em}}</style></head>\n\
         <body><h1>{}</h1><p>{}</p><p>{hint}</p><p><small>request id {}</small></p></body></html>\n",
        status.as_u16(),
        status,
        super::plp::escape(&message),
        super::plp::escape(&request_id()),
    );
    let mut res = e.into_response();
    *res.body_mut() = axum::body::Body::from(html);
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    res.extensions_mut().insert(AsPage);
    res
}

/// The error boundary (see the module docs). Runs inside the request's
/// trace span, so the log line carries the request id as well.
pub async fn boundary(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    REQUEST
        .scope(id, async move {
            let res = next.run(req).await;
            let status = res.status();
            if let Some(Cause(cause)) = res.extensions().get::<Cause>() {
                if status == StatusCode::INTERNAL_SERVER_ERROR {
                    tracing::error!(status = status.as_u16(), %cause, "request failed");
                } else {
                    tracing::warn!(status = status.as_u16(), %cause, "request failed");
                }
                return res;
            }
            let ours = res
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/json"))
                || res.extensions().get::<AsPage>().is_some();
            if !(status.is_client_error() || status.is_server_error()) || ours {
                return res;
            }
            foreign(res).await
        })
        .await
}

/// An error answer made outside [`ApiError`]: the same JSON shape, its
/// headers kept (`Allow`, `Content-Range`), a 4xx with its own short text
/// (an axum rejection says which part was wrong), a 5xx with the fixed sentence.
async fn foreign(res: Response) -> Response {
    let (parts, inner) = res.into_parts();
    let status = parts.status;
    let text = axum::body::to_bytes(inner, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let (code, message) = if status.is_server_error() {
        tracing::error!(status = status.as_u16(), cause = %text, "request failed outside the handlers");
        ("internal", public_sentence(status).to_string())
    } else {
        let code = match status {
            StatusCode::BAD_REQUEST => "malformed",
            StatusCode::NOT_FOUND => "not-found",
            StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
            StatusCode::PAYLOAD_TOO_LARGE => "too-large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type",
            StatusCode::RANGE_NOT_SATISFIABLE => "range-not-satisfiable",
            StatusCode::UNPROCESSABLE_ENTITY => "invalid",
            _ => "client-error",
        };
        let message = if text.is_empty() {
            status
                .canonical_reason()
                .unwrap_or("client error")
                .to_lowercase()
        } else {
            text
        };
        (code, message)
    };
    let mut out = body(status, code, &message);
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    out
}
