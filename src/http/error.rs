//! The one place where error kinds become HTTP statuses.
//!
//! Body: `{"error": {"code": "<kebab-case>", "message": "..."}}`. Client
//! errors say exactly what was wrong; a 500 says something generic and the
//! real cause goes to the log. Every error response is `no-store`: an error
//! must never be cached by a CDN in front of us.

use crate::error::Error;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

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
            Error::RenderFailed(_) => StatusCode::BAD_GATEWAY,
            Error::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Error::Overloaded { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
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
            Error::RenderFailed(_) => "render-failed",
            Error::Unavailable { .. } => "unavailable",
            Error::Overloaded { .. } => "overloaded",
            Error::Unauthorized(_) => "unauthorized",
            Error::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self.0 {
            Error::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                "internal error; see the server log".to_string()
            }
            e => e.to_string(),
        };
        let body = serde_json::json!({ "error": { "code": self.code(), "message": message } });
        let mut res = (status, Json(body)).into_response();
        let h = res.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Error::Unavailable { retry_after, .. } | Error::Overloaded { retry_after, .. } =
            &self.0
        {
            h.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
        }
        res
    }
}

impl From<crate::meta::MetaError> for ApiError {
    fn from(e: crate::meta::MetaError) -> ApiError {
        ApiError(Error::from(e))
    }
}
