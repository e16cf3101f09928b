//! Who is calling: the auth seam every route goes through.
//!
//! A token arrives as `Authorization: Bearer <t>` or as the query parameter
//! `bearer_token=<t>` (the published Threekit client sends it in the
//! query). [`Caller`] resolves it to an org; every record a route reads or
//! writes is scoped to that org.
//!
//! Today layercake runs in **development mode** only: every request acts
//! for the default org (`meta::DEFAULT_ORG`) and `orgId` is ignored, which
//! is why the server binds loopback by default. Tokens, their orgs, public
//! tokens' origins and the 401/403 answers fill in [`Caller::resolve`]
//! without touching the routes.

use super::error::ApiError;
use crate::app::App;
use crate::error::Error;
use crate::meta::DEFAULT_ORG;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use std::sync::Arc;
use uuid::Uuid;

/// The resolved caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub org: Uuid,
    /// Whether the caller may write (private token, or development mode).
    pub private: bool,
}

impl Caller {
    fn resolve(_app: &App, token: Option<String>) -> Result<Caller, Error> {
        // Development mode: no token store yet; everything is the default org.
        if token.is_some() {
            tracing::trace!("token ignored: development mode");
        }
        Ok(Caller {
            org: DEFAULT_ORG,
            private: true,
        })
    }

    /// For routes that change state.
    ///
    /// # Errors
    /// 401 without a token, 403 for a token that may not write (never in
    /// development mode).
    pub fn require_private(&self) -> Result<(), Error> {
        if self.private {
            Ok(())
        } else {
            Err(Error::Forbidden("this route needs a private token".into()))
        }
    }
}

/// The token of a request: the `Authorization` header first, then `bearer_token`.
pub fn token(parts: &Parts) -> Option<String> {
    if let Some(h) = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some(t) = h
            .strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))
    {
        return Some(t.trim().to_string());
    }
    let q = parts.uri.query()?;
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == "bearer_token")
        .map(|(_, v)| v.into_owned())
}

impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Caller, ApiError> {
        Ok(Caller::resolve(app, token(parts))?)
    }
}
