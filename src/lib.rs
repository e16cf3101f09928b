//! layercake: a render cache and layered image compositor.
//!
//! Reading order, from pure logic to the edge:
//!
//! - [`spelling`]: the nearest known word, for errors that suggest it.
//! - [`catalog`]: assets, attributes, views, layers, render recipes.
//! - [`keys`]: canonical configurations and blake3 layer/composite keys.
//! - [`compose`]: pixel kernels: "over", fit/resize, encoders, layer files.
//! - [`render`]: renderer backends (built-in SVG, command, http).
//! - [`store`]: memory tiers, the object store.
//! - [`meta`]: durable records (SQL through one interface).
//! - [`wire`]: the contract's JSON shapes (answers and event payloads).
//! - [`sizes`]: which output sizes an image URL may ask for.
//! - [`jobs`]: the durable render queue (jobs, tasks, runs) and its
//!   workers, the only way a render starts.
//! - [`webhooks`]: subscriptions and signed, retried event deliveries.
//! - [`pipeline`]: the request path from key to bytes, single flights.
//! - [`service`]: assets (versions), files, layers, saved configurations.
//! - [`signing`]: signed image URLs (HMAC over the canonical URL).
//! - [`telemetry`]: metric names and the Prometheus recorder.
//! - [`config`], [`app`]: settings and the runtime built from them.
//! - [`http`]: routes, parameters, errors → status codes.
//! - [`cli`]: the `layercake` binary.

pub mod app;
pub mod catalog;
pub mod cli;
pub mod compose;
pub mod config;
pub mod error;
pub mod http;
pub mod jobs;
pub mod keys;
pub mod meta;
pub mod pipeline;
pub mod render;
pub mod service;
pub mod signing;
pub mod sizes;
pub mod spelling;
pub mod store;
pub mod telemetry;
pub mod webhooks;
pub mod wire;

pub use app::App;
pub use config::Settings;
pub use error::Error;
