//! The in-memory tiers: encoded composites, decoded layers, the flattened
//! (stacked, not yet resized) composites a new size of the same image is
//! resized from, and the WebP stand-ins served while an AVIF is being
//! encoded; each a moka cache bounded in bytes.

use crate::compose::{Format, LayerImage, PremulImage};
use crate::keys::Key;
use bytes::Bytes;
use std::sync::Arc;

/// An encoded composite as served.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub bytes: Bytes,
    pub format: Format,
}

/// Byte budgets of the memory tiers.
#[derive(Debug, Clone, Copy)]
pub struct Budgets {
    pub composite_bytes: u64,
    pub layer_bytes: u64,
    pub stand_in_bytes: u64,
    pub flattened_bytes: u64,
}

/// The in-memory tiers. Cheap to clone (the caches are shared).
#[derive(Clone)]
pub struct MemoryTiers {
    pub composites: moka::sync::Cache<Key, Encoded>,
    pub layers: moka::sync::Cache<Key, Arc<LayerImage>>,
    /// WebP stand-ins of AVIF composites still being encoded, by the
    /// AVIF's key; short-lived (the AVIF replaces them).
    pub stand_ins: moka::sync::Cache<Key, Encoded>,
    /// The layers of a configuration stacked at canvas resolution (over
    /// the crop, if any), by [`flattened_key`](crate::pipeline::ImageRequest):
    /// a miss for another size or format of the same image resizes this
    /// instead of stacking the layers again.
    pub flattened: moka::sync::Cache<Key, Arc<PremulImage>>,
}

/// moka weighs entries in u32; a single entry larger than that is
/// impossible here (the canvas is at most 8192² RGBA = 256 MiB).
fn weight(bytes: usize) -> u32 {
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

impl MemoryTiers {
    pub fn new(b: Budgets) -> MemoryTiers {
        MemoryTiers {
            composites: moka::sync::Cache::builder()
                .max_capacity(b.composite_bytes)
                .weigher(|_, v: &Encoded| weight(v.bytes.len() + 64))
                .build(),
            layers: moka::sync::Cache::builder()
                .max_capacity(b.layer_bytes)
                .weigher(|_, v: &Arc<LayerImage>| weight(v.byte_size()))
                .build(),
            stand_ins: moka::sync::Cache::builder()
                .max_capacity(b.stand_in_bytes)
                .weigher(|_, v: &Encoded| weight(v.bytes.len() + 64))
                .time_to_live(std::time::Duration::from_secs(120))
                .build(),
            flattened: moka::sync::Cache::builder()
                .max_capacity(b.flattened_bytes)
                .weigher(|_, v: &Arc<PremulImage>| weight(v.data.len() + 64))
                .build(),
        }
    }
}
