//! Self-verifying objects: every stored object is
//! `LCB1` ‖ blake3(body) (32 bytes) ‖ body.
//!
//! The hash travels with the object, so any node (a fresh one with an empty
//! metadata store included) can verify what it reads from a shared bucket,
//! and a truncated, bit-flipped or foreign object is detected before it is
//! decoded or served. The body is returned as a slice of the read buffer
//! (no copy).

use bytes::{BufMut, Bytes, BytesMut};

const MAGIC: &[u8; 4] = b"LCB1";
/// Bytes added to every object.
pub const OVERHEAD: usize = MAGIC.len() + blake3::OUT_LEN;

/// Why a stored object was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Corrupt {
    #[error("{0} bytes: shorter than the integrity header")]
    Short(usize),
    #[error("no integrity header (not written by layercake, or damaged)")]
    NoHeader,
    #[error("blake3 mismatch: {0} body bytes do not hash to the recorded digest")]
    Mismatch(usize),
}

/// Wraps `body` with its header.
pub fn seal(body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(OVERHEAD + body.len());
    out.put_slice(MAGIC);
    out.put_slice(blake3::hash(body).as_bytes());
    out.put_slice(body);
    out.freeze()
}

/// The body of a sealed object, if its digest matches.
///
/// # Errors
/// [`Corrupt`] naming what is wrong.
pub fn open(sealed: Bytes) -> Result<Bytes, Corrupt> {
    if sealed.len() < OVERHEAD {
        return Err(Corrupt::Short(sealed.len()));
    }
    if &sealed[..MAGIC.len()] != MAGIC {
        return Err(Corrupt::NoHeader);
    }
    let recorded = &sealed[MAGIC.len()..OVERHEAD];
    let body = sealed.slice(OVERHEAD..);
    // blake3::Hash's equality is constant-time; timing is not a concern
    // here, but it is also the idiomatic comparison.
    let want = blake3::Hash::from_slice(recorded).map_err(|_| Corrupt::NoHeader)?;
    if blake3::hash(&body) != want {
        return Err(Corrupt::Mismatch(body.len()));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_kind_of_damage() {
        let body = b"\x89PNG\r\n\x1a\n a layer, long enough".repeat(2);
        let sealed = seal(&body);
        assert_eq!(sealed.len(), body.len() + OVERHEAD);
        assert_eq!(open(sealed.clone()).unwrap(), Bytes::from(body.clone()));
        // Truncated anywhere in the body.
        let cut = sealed.slice(..sealed.len() - 1);
        assert_eq!(open(cut), Err(Corrupt::Mismatch(body.len() - 1)));
        // One bit flipped in the body, and in the digest.
        for at in [OVERHEAD + 3, 10] {
            let mut b = sealed.to_vec();
            b[at] ^= 1;
            assert_eq!(open(Bytes::from(b)), Err(Corrupt::Mismatch(body.len())));
        }
        // A plain image (no header) and a stub.
        assert_eq!(open(Bytes::from(body)), Err(Corrupt::NoHeader));
        assert_eq!(open(Bytes::from_static(b"LCB1")), Err(Corrupt::Short(4)));
        // The empty body is a valid object.
        assert_eq!(open(seal(b"")).unwrap(), Bytes::new());
    }
}
