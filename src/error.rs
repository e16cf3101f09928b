//! The service-level error: what went wrong, in terms a caller can act on.
//!
//! Module errors (`CatalogError`, `ConfigError`, `StoreError`, `RenderError`,
//! ...) are translated into these kinds where they cross into the service
//! (`pipeline`, `http` extractors). Only `http::error` turns a kind into a
//! status code. `Error` is `Clone` because one failed computation is shared
//! by every request that waited on it.

/// Seconds a client is asked to wait before retrying a 503.
pub const DEFAULT_RETRY_AFTER: u32 = 2;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The request cannot be read: malformed JSON, a non-number width (400).
    #[error("{param}: {message}")]
    Malformed { param: String, message: String },
    /// Well-formed but not acceptable: unknown attribute, out of range (422).
    #[error("{param}: {message}")]
    Invalid { param: String, message: String },
    /// Credentials that may not do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// A well-formed id that names nothing (404).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state, e.g. a concurrent update (409).
    #[error("{0}")]
    Conflict(String),
    /// A body over its limit (413).
    #[error("{0}")]
    TooLarge(String),
    /// A body of a media type the route does not take (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The renderer failed for good (502).
    #[error("render failed: {0}")]
    RenderFailed(String),
    /// Not ready yet, or a dependency is down; try again later (503).
    #[error("{message}")]
    Unavailable { message: String, retry_after: u32 },
    /// Over capacity: too much work queued already; try again later (429).
    #[error("{message}")]
    Overloaded { message: String, retry_after: u32 },
    /// No credentials where they are needed (401).
    #[error("{0}")]
    Unauthorized(String),
    /// `Cache-Control: only-if-cached` and nothing cached: an answer, not
    /// a failure, so neither logged nor hidden (504).
    #[error("{0}")]
    NotCached(String),
    /// A `Range` outside a body of `length` bytes (416, `Content-Range: bytes */length`).
    #[error("range: the file has {length} bytes")]
    RangeNotSatisfiable { length: u64 },
    /// A bug or an unexpected failure; the message is logged, not sent (500).
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn malformed(param: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Malformed {
            param: param.into(),
            message: message.into(),
        }
    }

    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Invalid {
            param: param.into(),
            message: message.into(),
        }
    }

    pub fn overloaded(message: impl Into<String>) -> Error {
        Error::Overloaded {
            message: message.into(),
            retry_after: 1,
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Error {
        Error::Unavailable {
            message: message.into(),
            retry_after: DEFAULT_RETRY_AFTER,
        }
    }
}

impl From<crate::store::StoreError> for Error {
    fn from(e: crate::store::StoreError) -> Error {
        if e.is_transient() {
            Error::unavailable(format!("object store: {e}"))
        } else {
            Error::Internal(format!("object store: {e}"))
        }
    }
}

impl From<crate::meta::MetaError> for Error {
    fn from(e: crate::meta::MetaError) -> Error {
        use crate::meta::MetaError as M;
        match e {
            M::NotFound => Error::NotFound("no such record".into()),
            M::Conflict(m) => Error::Conflict(m),
            // Both messages name the metadata store already. Only a
            // failure of the connection is worth a retry; any other
            // database error is a bug, and a 503 would hide it as an outage.
            M::Open(..) | M::Unavailable(_) => Error::unavailable(e.to_string()),
            M::Backend(_) => Error::Internal(e.to_string()),
            M::Rejected(cause) => {
                tracing::debug!(%cause, "the database refused a value");
                Error::invalid(
                    "request",
                    "a value in the request cannot be stored (a NUL character, or a number out of range)",
                )
            }
            M::Corrupt(m) => Error::Internal(format!("metadata store: {m}")),
        }
    }
}

impl From<crate::catalog::CatalogError> for Error {
    /// A definition submitted over the API: the field is the parameter.
    fn from(e: crate::catalog::CatalogError) -> Error {
        Error::Invalid {
            param: if e.field.is_empty() {
                "body".into()
            } else {
                e.field
            },
            message: e.message,
        }
    }
}

impl From<crate::render::RenderError> for Error {
    fn from(e: crate::render::RenderError) -> Error {
        Error::RenderFailed(e.to_string())
    }
}
