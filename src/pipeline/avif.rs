//! AVIF within a time budget: an impatient request whose AVIF encode runs
//! past `compose.avif_budget_ms` (or finds every AVIF slot busy) is
//! answered a WebP stand-in, held in the stand-in tier (never under the
//! AVIF key's cache headers); the AVIF finishes in the background and
//! replaces it.

use super::admission::Admit;
use super::produce::{EncodeTask, Encoding, joined};
use super::{ImageRequest, Inner, Source};
use crate::compose::{self, Format, PremulImage};
use crate::error::Error;
use crate::keys::Key;
use crate::store::Encoded;
use bytes::Bytes;
use std::sync::Arc;
use tracing::Instrument;

impl Inner {
    /// The AVIF if it is encoded within the budget, else the stand-in.
    pub(super) async fn avif_within_budget(
        this: Arc<Inner>,
        key: Key,
        path: String,
        fitted: PremulImage,
        req: ImageRequest,
    ) -> Result<(Encoded, Source), Error> {
        let backup = fitted.clone();
        let mut encode = Inner::spawn_encode(&this, fitted, &req);
        match tokio::time::timeout(this.limits.avif_budget, &mut encode).await {
            Err(_) => {
                tracing::info!(%key, budget = ?this.limits.avif_budget, "AVIF encode over budget; answering WebP meanwhile");
                Inner::keep_when_done(&this, key, path, encode);
                Inner::stand_in(this, key, backup, req).await
            }
            Ok(done) => match joined(done)? {
                Encoding::Done(bytes, format) => {
                    let e = Inner::keep(&this, key, path, (bytes, format));
                    Ok((e, Source::Composed))
                }
                Encoding::Busy => {
                    tracing::info!(%key, "every AVIF slot is busy; answering WebP, the AVIF is made by a later request");
                    Inner::stand_in(this, key, backup, req).await
                }
            },
        }
    }

    /// Keeps the AVIF of an encode past its budget once it is done.
    fn keep_when_done(this: &Arc<Inner>, key: Key, path: String, encode: EncodeTask) {
        let later = Arc::clone(this);
        this.writes.spawn(
            async move {
                match joined(encode.await) {
                    Ok(Encoding::Done(bytes, format)) => {
                        Inner::keep(&later, key, path, (bytes, format));
                    }
                    Ok(Encoding::Busy) => {}
                    Err(e) => tracing::warn!(%key, error = %e, "AVIF encode failed"),
                }
            }
            .in_current_span(),
        );
    }

    /// The WebP stand-in for an AVIF not ready: encoded now, kept in the
    /// stand-in tier unless the AVIF landed meanwhile.
    async fn stand_in(
        this: Arc<Inner>,
        key: Key,
        backup: PremulImage,
        req: ImageRequest,
    ) -> Result<(Encoded, Source), Error> {
        // Compose slots are never held by AVIF encodes, so this wait is
        // one of composes and short encodes.
        let permit = this.cpu_slot(Admit::Wait).await?;
        let quality = req.output.quality;
        let (bytes, format) = this
            .pool
            .run(move || compose::encode_as(backup, Format::Webp, quality))
            .await?
            .map_err(|e| Error::Internal(format!("encode: {e}")))?;
        drop(permit);
        let e = Encoded {
            bytes: Bytes::from(bytes),
            format,
        };
        if this.tiers.composites.get(&key).is_none() {
            this.tiers.stand_ins.insert(key, e.clone());
        }
        Ok((e, Source::Fallback))
    }
}
