//! What the composite tier reports to whoever keeps its byte budget.

/// Told of every composite written to the object store and every one read
/// back from it, so that the least recently used can be evicted past a
/// budget (`service::CompositeBudget`). Calls are on the request path:
/// implementations buffer and return at once.
pub trait Ledger: Send + Sync {
    /// `path` now holds a composite of `bytes` bytes.
    fn written(&self, path: &str, bytes: u64);
    /// The composite at `path` was served from the object store.
    fn read(&self, path: &str);
}
