//! Signed image URLs.
//!
//! A signature is HMAC-SHA256, keyed by a server secret, over the URL's
//! canonical form: the path, `?`, then every query parameter except
//! `signature` and `bearer_token`, percent-decoded, sorted by name then
//! value, and re-encoded (`application/x-www-form-urlencoded`). So the
//! order of parameters and the spelling of their escapes do not matter,
//! and nothing that changes the image can be added, dropped or altered
//! without breaking the signature. It travels as `signature=<url-safe
//! base64, no padding>`.
//!
//! Several keys can be configured: the first signs, all verify, so a new
//! key can be introduced first (listed second), then promoted (first), and
//! the old one removed once the URLs signed with it have expired from the
//! pages that use them. Comparison is constant-time (`Mac::verify_slice`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The query parameter carrying the signature.
pub const PARAM: &str = "signature";
/// Shortest key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 32;

/// What a URL's signature says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No `signature` parameter.
    Unsigned,
    /// Signed by one of the keys.
    Valid,
    /// Signed, but by no key we have, or the URL was changed.
    Invalid,
}

#[derive(Clone, Default)]
pub struct Signer {
    keys: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({} keys)", self.keys.len())
    }
}

impl Signer {
    /// # Errors
    /// A message naming a key shorter than [`MIN_KEY_BYTES`].
    pub fn new(keys: &[String]) -> Result<Signer, String> {
        for (i, k) in keys.iter().enumerate() {
            if k.len() < MIN_KEY_BYTES {
                return Err(format!(
                    "signing.keys[{i}]: a key needs at least {MIN_KEY_BYTES} bytes (e.g. `openssl rand -hex 32`)"
                ));
            }
        }
        Ok(Signer {
            keys: keys.iter().map(|k| k.as_bytes().to_vec()).collect(),
        })
    }

    /// Whether any key is configured.
    pub fn can_sign(&self) -> bool {
        !self.keys.is_empty()
    }

    fn mac(key: &[u8], path: &str, query: Option<&str>) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(canonical(path, query).as_bytes());
        mac
    }

    /// The signature of `path?query` with the first key, if there is one.
    pub fn sign(&self, path: &str, query: Option<&str>) -> Option<String> {
        let key = self.keys.first()?;
        Some(URL_SAFE_NO_PAD.encode(Self::mac(key, path, query).finalize().into_bytes()))
    }

    /// `path?query&signature=...` (unchanged when there is no key).
    pub fn signed_url(&self, path: &str, query: &str) -> String {
        match self.sign(path, Some(query)) {
            Some(sig) => format!("{path}?{query}&{PARAM}={sig}"),
            None => format!("{path}?{query}"),
        }
    }

    /// Checks the `signature` parameter of `path?query` against every key.
    pub fn verify(&self, path: &str, query: Option<&str>) -> Verdict {
        let given = query.and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == PARAM)
                .map(|(_, v)| v.into_owned())
        });
        let Some(given) = given else {
            return Verdict::Unsigned;
        };
        // A repeated name would be signed as a set but read as its first
        // occurrence: reordering could change the image under the signature.
        let mut names: Vec<String> = query
            .map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .map(|(k, _)| k.into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let n = names.len();
        names.sort();
        names.dedup();
        if names.len() != n {
            return Verdict::Invalid;
        }
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(given.trim_end_matches('=')) else {
            return Verdict::Invalid;
        };
        let valid = self
            .keys
            .iter()
            .any(|k| Self::mac(k, path, query).verify_slice(&bytes).is_ok());
        if valid {
            Verdict::Valid
        } else {
            Verdict::Invalid
        }
    }
}

/// The signed form of a URL (see the module documentation).
pub fn canonical(path: &str, query: Option<&str>) -> String {
    let mut pairs: Vec<(String, String)> = query
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .filter(|(k, _)| k != PARAM && k != "bearer_token")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    pairs.sort();
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in &pairs {
        out.append_pair(k, v);
    }
    format!("{path}?{}", out.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "0123456789abcdef0123456789abcdef-one";
    const K2: &str = "0123456789abcdef0123456789abcdef-two";

    #[test]
    fn order_and_escapes_do_not_matter_but_values_do() {
        let a = canonical("/p", Some("b=2&a=%7B%22X%22%3A1%7D&bearer_token=t"));
        let b = canonical("/p", Some("a={\"X\":1}&b=2"));
        assert_eq!(a, b);
        assert_ne!(a, canonical("/p", Some("a={\"X\":2}&b=2")));
        assert_ne!(a, canonical("/q", Some("a={\"X\":1}&b=2")));
    }

    #[test]
    fn sign_verify_rotate() {
        let s = Signer::new(&[K1.into()]).unwrap();
        let url = s.signed_url("/api/fast-compositor", "assetId=x&width=100");
        let (path, query) = url.split_once('?').unwrap();
        assert_eq!(s.verify(path, Some(query)), Verdict::Valid);
        let tampered = query.replace("width=100", "width=4000");
        assert_eq!(s.verify(path, Some(&tampered)), Verdict::Invalid);
        assert_eq!(
            s.verify(path, Some("assetId=x&width=100")),
            Verdict::Unsigned
        );
        assert_eq!(
            s.verify(path, Some(&format!("{query}&bearer_token=zz"))),
            Verdict::Valid
        );
        assert_eq!(
            s.verify(path, Some("assetId=x&width=100&signature=!!")),
            Verdict::Invalid
        );
        // A new key signs; the old one still verifies until removed.
        let rotated = Signer::new(&[K2.into(), K1.into()]).unwrap();
        assert_eq!(rotated.verify(path, Some(query)), Verdict::Valid);
        let only_new = Signer::new(&[K2.into()]).unwrap();
        assert_eq!(only_new.verify(path, Some(query)), Verdict::Invalid);
        assert!(Signer::new(&["short".into()]).is_err());
        let doubled = format!("{query}&width=4000");
        assert_eq!(
            s.verify(path, Some(&doubled)),
            Verdict::Invalid,
            "a repeated name"
        );
    }
}
