//! The record-keeping services behind the API: assets (versions), files,
//! layers, saved configurations and tokens; the composite tier's byte
//! budget; and garbage collection of stale asset versions.
//!
//! Each service validates its input against the catalogue and the keys,
//! and keeps its records in `meta` and its bytes in `store`; the HTTP
//! routes only translate between the wire and these calls. The image path
//! itself (compose on request) is `pipeline`'s.

pub mod assets;
pub mod composites;
pub mod configurations;
pub mod files;
pub mod gc;
pub mod layers;
pub mod tokens;

pub use assets::{AssetRegistry, ReplacedLayers};
pub use composites::{CompositeBudget, Sweep};
pub use configurations::{NewConfiguration, SavedConfiguration, SavedConfigurations};
pub use files::FileService;
pub use layers::{LayerQuery, LayerService, NewLayer};
pub use tokens::{Grant, TokenService};

/// The records' vocabulary of the services' methods, for their callers
/// (the edges name no `meta` type): a page window, the layer filter and
/// the org of development mode.
pub use crate::meta::{DEFAULT_ORG, LayerFilter, Window};
