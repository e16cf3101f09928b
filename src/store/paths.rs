//! The path scheme of the object store: where layers, composites and
//! uploads live, and what a path says about its object.

use crate::compose::Format;
use crate::keys::Key;

/// Whether `path` is `files/<aa>/blake3-<hex of body>` (an upload's
/// content address) and `body` hashes to it.
pub(super) fn content_addressed(path: &str, body: &[u8]) -> bool {
    path.starts_with("files/")
        && path
            .rsplit('/')
            .next()
            .and_then(|name| name.strip_prefix("blake3-"))
            .is_some_and(|hex| hex == blake3::hash(body).to_hex().as_str())
}

/// `layers`, `composites` or `files`: the first segment, for metrics.
pub(super) fn kind_of(path: &str) -> &'static str {
    match path.split('/').next() {
        Some("layers") => "layer",
        Some("composites") => "composite",
        _ => "file",
    }
}

/// The folder of an asset version's layers: `v<version>`.
pub fn layer_generation(version: u32) -> String {
    format!("v{version}")
}

/// The folder of an asset version's composites: `v<version>e<epoch>` (a
/// registered layer bumps the epoch, making older composites stale).
pub fn composite_generation(version: u32, epoch: u64) -> String {
    format!("v{version}e{epoch}")
}

/// `layers/<asset>/v<version>/ab/abcd….png`: the asset and version let
/// `gc` drop a stale version by listing its folder; two hex digits of
/// fan-out keep directories small and spread S3 key prefixes.
pub fn layer_path(asset: uuid::Uuid, version: u32, key: &Key) -> String {
    let h = key.hex();
    format!(
        "layers/{asset}/{}/{}/{h}.png",
        layer_generation(version),
        &h[..2]
    )
}

/// `composites/<asset>/v<version>e<epoch>/ab/abcd….<format>`.
pub fn composite_path(
    asset: uuid::Uuid,
    version: u32,
    epoch: u64,
    key: &Key,
    format: Format,
) -> String {
    let h = key.hex();
    format!(
        "composites/{asset}/{}/{}/{h}.{}",
        composite_generation(version, epoch),
        &h[..2],
        format.name()
    )
}
