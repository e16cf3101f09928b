//! Who is calling: the auth seam every route goes through.
//!
//! A token arrives as `Authorization: Bearer <t>` or as the query parameter
//! `bearer_token=<t>` (the published Threekit client sends it in the
//! query). [`Caller`] resolves it to an org through `service::tokens`;
//! every record a route reads or writes is scoped to that org (another
//! org's id is a 404).
//!
//! - No token was ever created: **development mode**. Every request acts
//!   for the default org (`service::DEFAULT_ORG`), tokens are ignored, and
//!   `serve` refuses to listen beyond loopback.
//! - Otherwise: no token is 401; an unknown or revoked one is 401; a
//!   public token on a write, from an origin it does not list (`Origin`,
//!   else `Referer`), or an `orgId` that is not the token's org is 403.
//! - **What a public token may read.** It ships in every storefront's page
//!   source, and `Origin` is a header any client can set, so it gets only
//!   what a storefront shows: images, carousels, the listing page, layers,
//!   assets, one saved configuration by its id or shortId (the share
//!   link), and the bytes of files that are layers' images. [`Caller`]
//!   refuses it (403); only routes that take a [`Reader`] let it in. A new
//!   route is private unless it says otherwise.
//! - The image route also serves callers without a token when the URL is
//!   validly signed ([`ImageCaller`]): the signature is the permission.

use super::error::ApiError;
use crate::app::App;
use crate::error::Error;
use crate::service::DEFAULT_ORG;
use crate::service::tokens::origin_of;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, header};
use std::sync::Arc;
use uuid::Uuid;

/// The resolved caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub org: Uuid,
    pub kind: CallerKind,
}

/// How a caller was let in (decides how shared caches may keep answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerKind {
    /// No token exists at all: everyone is the default org.
    Development,
    Private,
    Public,
}

impl Caller {
    /// The caller of a request; `None` when it carries no token outside
    /// development mode (each route decides whether that may do anything).
    pub(super) async fn resolve(app: &App, parts: &Parts) -> Result<Option<Caller>, Error> {
        if app.tokens().development_mode().await? {
            // Tokens are ignored here, but a malformed `bearer_token` is
            // refused as it is outside development mode.
            token(parts)?;
            return Ok(Some(Caller {
                org: DEFAULT_ORG,
                kind: CallerKind::Development,
            }));
        }
        let Some(t) = token(parts)? else {
            return Ok(None);
        };
        let Some(grant) = app.tokens().authenticate(&t).await? else {
            return Err(Error::Unauthorized("unknown or revoked token".into()));
        };
        if grant.worker {
            return Err(Error::Forbidden(
                "a worker token may only use the worker protocol (/api/jobs/worker/...)".into(),
            ));
        }
        if !grant.private {
            if !matches!(parts.method, Method::GET | Method::HEAD) {
                return Err(Error::Forbidden(
                    "a public token may only read (GET); use a private token".into(),
                ));
            }
            let origin = parts
                .headers
                .get(header::ORIGIN)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .or_else(|| {
                    parts
                        .headers
                        .get(header::REFERER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(origin_of)
                });
            match origin {
                Some(o) if grant.origins.iter().any(|a| a == &o) => {}
                Some(o) => {
                    return Err(Error::Forbidden(format!(
                        "origin {o} may not use this public token"
                    )));
                }
                None => {
                    return Err(Error::Forbidden(
                        "a public token is accepted only with an Origin or Referer of an allowed origin".into(),
                    ));
                }
            }
        }
        if let Some(q) = parts.uri.query()
            && let Some((_, org)) = form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "orgId")
        {
            let org = crate::app::params::parse_uuid("orgId", &org)?;
            if org != grant.org {
                return Err(Error::Forbidden("orgId is not the token's org".into()));
            }
        }
        Ok(Some(Caller {
            org: grant.org,
            kind: if grant.private {
                CallerKind::Private
            } else {
                CallerKind::Public
            },
        }))
    }

    /// Whether the caller may write (private token, or development mode).
    pub fn private(&self) -> bool {
        self.kind != CallerKind::Public
    }
}

/// The token of a request: the `Authorization` header first, then
/// `bearer_token`.
///
/// # Errors
/// 401 when `bearer_token` is given but is not a token at all (tokens
/// are UUIDs), even beside a header: a malformed credential is refused,
/// not silently passed over.
pub fn token(parts: &Parts) -> Result<Option<String>, Error> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_string());
    let query = parts.uri.query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "bearer_token")
            .map(|(_, v)| v.into_owned())
    });
    if let Some(q) = &query
        && uuid::Uuid::parse_str(q).is_err()
    {
        return Err(Error::Unauthorized(
            "bearer_token is not a token (tokens are UUIDs)".into(),
        ));
    }
    Ok(header.or(query))
}

fn needs_token() -> ApiError {
    ApiError(Error::Unauthorized(
        "a token is needed: Authorization: Bearer <token>, or bearer_token=<token>".into(),
    ))
}

/// The caller of a route a private token (or development mode) is needed for.
impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Caller, ApiError> {
        let caller = Caller::resolve(app, parts).await?.ok_or_else(needs_token)?;
        if caller.kind == CallerKind::Public {
            return Err(ApiError(Error::Forbidden(
                "this route needs a private token: a public token reads only images, carousels, layers, assets and one saved configuration by its id".into(),
            )));
        }
        Ok(caller)
    }
}

/// The caller of the worker protocol: a `worker` token (or development
/// mode). Every other token is refused (403): a render node's token and
/// the API's tokens never stand in for each other.
#[derive(Debug, Clone, Copy)]
pub struct WorkerCaller;

impl FromRequestParts<Arc<App>> for WorkerCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<App>,
    ) -> Result<WorkerCaller, ApiError> {
        if app.tokens().development_mode().await.map_err(ApiError)? {
            token(parts).map_err(ApiError)?;
            return Ok(WorkerCaller);
        }
        let Some(t) = token(parts).map_err(ApiError)? else {
            return Err(needs_token());
        };
        match app.tokens().authenticate(&t).await.map_err(ApiError)? {
            Some(g) if g.worker => Ok(WorkerCaller),
            Some(_) => Err(ApiError(Error::Forbidden(
                "the worker protocol needs a worker token (layercake token create --worker)".into(),
            ))),
            None => Err(ApiError(Error::Unauthorized(
                "unknown or revoked token".into(),
            ))),
        }
    }
}

/// The caller of a route a public token may read too (what a storefront shows).
#[derive(Debug, Clone)]
pub struct Reader(pub Caller);

impl FromRequestParts<Arc<App>> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Reader, ApiError> {
        Ok(Reader(
            Caller::resolve(app, parts).await?.ok_or_else(needs_token)?,
        ))
    }
}

/// The caller of the image route: `None` when there is no token at all
/// (then only a signed URL is served; see `compositor`).
#[derive(Debug, Clone)]
pub struct ImageCaller(pub Option<Caller>);

impl FromRequestParts<Arc<App>> for ImageCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<App>,
    ) -> Result<ImageCaller, ApiError> {
        Ok(ImageCaller(Caller::resolve(app, parts).await?))
    }
}
