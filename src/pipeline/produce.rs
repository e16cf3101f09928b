//! A composite's miss: the object store, else a stand-in, else compose the
//! layers, encode, and keep the result in memory and (in the background)
//! in the store.

use super::admission::Admit;
use super::cpu::{compose_fitted, fit_flattened, flatten};
use super::{ImageRequest, Inner, Source};
use crate::compose::{self, Format, PremulImage};
use crate::error::Error;
use crate::keys::Key;
use crate::store::{Encoded, composite_path};
use crate::telemetry;
use bytes::Bytes;
use std::sync::Arc;
use tracing::Instrument;

/// What an encode task gives back.
pub(super) enum Encoding {
    /// The encoded bytes and their format.
    Done(Vec<u8>, Format),
    /// Every AVIF slot was busy: nothing was encoded.
    Busy,
}

pub(super) type EncodeTask = tokio::task::JoinHandle<Result<Encoding, Error>>;

/// An encode task's outcome, its panic or cancellation an internal error.
pub(super) fn joined(
    done: Result<Result<Encoding, Error>, tokio::task::JoinError>,
) -> Result<Encoding, Error> {
    done.map_err(|e| Error::Internal(format!("encode task: {e}")))?
}

impl Inner {
    pub(super) async fn produce(
        this: Arc<Inner>,
        key: Key,
        req: ImageRequest,
    ) -> Result<(Encoded, Source), Error> {
        let format = req.output.format;
        let asset = &req.asset;
        let path = composite_path(asset.id, asset.version, asset.epoch, &key, format);
        // A store that cannot answer is a miss here: with the layers in
        // memory the composite can still be made (the layers' own reads
        // answer 503 if they need the store).
        let stored = this.store.get(&path).await.unwrap_or_else(|e| {
            tracing::debug!(%key, error = %e, "composite read failed; composing");
            None
        });
        telemetry::cache_lookup("composite", "store", stored.is_some());
        if let Some(bytes) = stored {
            // JPEG-or-PNG is decided per image: the bytes say which.
            let format = Format::sniff(&bytes).unwrap_or(format);
            if let Some(l) = this.ledger.get() {
                l.read(&path);
            }
            let e = Encoded { bytes, format };
            this.tiers.composites.insert(key, e.clone());
            return Ok((e, Source::Store));
        }
        if let Some(e) = this.tiers.stand_ins.get(&key) {
            return Ok((e, Source::Fallback));
        }
        let fitted = Inner::fitted(&this, &req).await?;
        if format == Format::Avif && !req.patient {
            return Inner::avif_within_budget(this, key, path, fitted, req).await;
        }
        let encode = Inner::spawn_encode(&this, fitted, &req);
        match joined(encode.await)? {
            Encoding::Done(bytes, format) => {
                let e = Inner::keep(&this, key, path, (bytes, format));
                Ok((e, Source::Composed))
            }
            Encoding::Busy => Err(Error::Internal("a patient encode was skipped".into())),
        }
    }

    /// The image `req` asks for, resized but not encoded: from its
    /// flattened stack if another size or format of it was made lately,
    /// else from its layers (keeping the stack for the next size).
    async fn fitted(this: &Arc<Inner>, req: &ImageRequest) -> Result<PremulImage, Error> {
        let flat_key = req.flattened_key();
        let flat = this.tiers.flattened.get(&flat_key);
        telemetry::cache_lookup("flattened", "memory", flat.is_some());
        let output = req.output.clone();
        if let Some(flat) = flat {
            let _permit = this.cpu_slot(Admit::OrReject).await?;
            return this.pool.run(move || fit_flattened(&flat, &output)).await;
        }
        let layers = Inner::layers_for(this, req).await?;
        let _permit = this.cpu_slot(Admit::OrReject).await?;
        let canvas = (req.asset.width, req.asset.height);
        if !this.keeps_stack(canvas, &output) {
            return this
                .pool
                .run(move || compose_fitted(&layers, canvas, &output))
                .await;
        }
        let (flat, fitted) = this
            .pool
            .run(move || {
                let flat = Arc::new(flatten(&layers, canvas, &output));
                let fitted = fit_flattened(&flat, &output);
                (flat, fitted)
            })
            .await?;
        this.tiers.flattened.insert(flat_key, flat);
        Ok(fitted)
    }

    /// Whether the stack of an image is worth keeping: the tier is on and
    /// the stack takes at most a quarter of its budget (a larger one would
    /// evict the others, or not be admitted at all, and keeping it costs a
    /// copy when the output is the stack itself).
    fn keeps_stack(&self, canvas: (u32, u32), output: &compose::Output) -> bool {
        let (w, h) = output.crop.map_or(canvas, |c| (c.width, c.height));
        let bytes = u64::from(w) * u64::from(h) * 4;
        let budget = self.tiers.flattened.policy().max_capacity().unwrap_or(0);
        bytes <= budget / 4
    }

    /// Encodes `fitted` as the request asks, on a task of its own so that
    /// an AVIF past its budget can finish in the background.
    ///
    /// AVIF encodes take an AVIF slot (`compose.avif_concurrency`), not a
    /// compose slot: one that runs past its budget finishes in the
    /// background without holding up other requests' composes. With every
    /// AVIF slot taken, an impatient request gets [`Encoding::Busy`] (its
    /// stand-in answers) without queueing another AVIF, so background AVIF
    /// work is bounded by the AVIF slots; a later request makes the AVIF.
    pub(super) fn spawn_encode(
        this: &Arc<Inner>,
        fitted: PremulImage,
        req: &ImageRequest,
    ) -> EncodeTask {
        let this = Arc::clone(this);
        let (output, patient) = (req.output.clone(), req.patient);
        tokio::spawn(async move {
            let _permit = if output.format != Format::Avif {
                this.cpu_slot(Admit::Wait).await?
            } else if patient {
                Arc::clone(&this.avif)
                    .acquire_owned()
                    .await
                    .map_err(|_| Error::unavailable("shutting down"))?
            } else {
                match Arc::clone(&this.avif).try_acquire_owned() {
                    Ok(p) => p,
                    Err(_) => return Ok(Encoding::Busy),
                }
            };
            let (bytes, format) = this
                .pool
                .run(move || compose::encode_as(fitted, output.format, output.quality))
                .await?
                .map_err(|e| Error::Internal(format!("encode: {e}")))?;
            metrics::counter!(telemetry::ENCODES, "format" => format.name()).increment(1);
            Ok(Encoding::Done(bytes, format))
        })
    }

    /// Puts an encoded composite in the memory tier and, in the background,
    /// in the object store.
    pub(super) fn keep(
        this: &Arc<Inner>,
        key: Key,
        path: String,
        (bytes, format): (Vec<u8>, Format),
    ) -> Encoded {
        let e = Encoded {
            bytes: Bytes::from(bytes),
            format,
        };
        this.tiers.composites.insert(key, e.clone());
        this.tiers.stand_ins.invalidate(&key);
        let (store, bytes) = (this.store.clone(), e.bytes.clone());
        let ledger = this.ledger.get().cloned();
        this.writes.spawn(
            async move {
                let n = bytes.len() as u64;
                match store.put_cached(&path, bytes).await {
                    Ok(()) => {
                        if let Some(l) = ledger {
                            l.written(&path, n);
                        }
                    }
                    Err(err) => {
                        tracing::warn!(%key, error = %err, "composite not written to the object store");
                    }
                }
            }
            .in_current_span(),
        );
        e
    }
}
