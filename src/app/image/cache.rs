//! Who may keep an image answer, and for how long: `Cache-Control` and
//! `Vary` from the signature verdict, who is asking, and whether the URL is
//! pinned (`v`) to the live definition.
//!
//! A signed URL pinned to the live definition names one image forever
//! (`immutable`, a year). Otherwise the answer is kept `http.max_age_secs`
//! (then served stale while revalidating), by any cache for a signed URL
//! or in development mode, by the browser only for a private token's
//! answer, and per origin for a public token's. Every answer varies on
//! `Accept` (`format=auto`). A stand-in (a WebP while the AVIF is being
//! made) is not the representation the key names: no cache keeps it.

use crate::signing::Verdict;

/// Who asks for an image: how the edge let the caller in (or `Anonymous`:
/// no token, which only a valid signature lets through).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asker {
    Anonymous,
    /// No token exists at all: everyone is the default org.
    Development,
    /// A private token.
    Private,
    /// A public token: its URLs are in every shopper's browser.
    Public,
}

/// How long answers are kept: `http.max_age_secs` and
/// `http.stale_while_revalidate_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttl {
    pub max_age_secs: u64,
    pub stale_while_revalidate_secs: u64,
}

/// The caching headers of an image answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachePolicy {
    /// `Cache-Control`.
    pub control: String,
    /// `Vary`.
    pub vary: &'static str,
}

impl CachePolicy {
    /// The policy of a stand-in answer: kept by no cache.
    pub fn stand_in(self) -> CachePolicy {
        CachePolicy {
            control: "no-store".into(),
            ..self
        }
    }
}

/// The caching headers of an image answer.
pub fn policy(verdict: Verdict, asker: Asker, pinned: bool, ttl: Ttl) -> CachePolicy {
    // Who may a shared cache hand this answer to? Anyone, for a signed URL
    // or in development mode; nobody else, for a private token's answer;
    // the same origin, for a public token's.
    let (scope, vary) = match asker {
        _ if verdict == Verdict::Valid => ("public", "Accept"),
        Asker::Anonymous | Asker::Development => ("public", "Accept"),
        Asker::Private => ("private", "Accept"),
        Asker::Public => ("public", "Accept, Origin"),
    };
    let control = if pinned {
        "public, max-age=31536000, immutable".to_string()
    } else {
        format!(
            "{scope}, max-age={}, stale-while-revalidate={}",
            ttl.max_age_secs, ttl.stale_while_revalidate_secs
        )
    };
    CachePolicy { control, vary }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_and_vary_by_verdict_and_asker() {
        let ttl = Ttl {
            max_age_secs: 60,
            stale_while_revalidate_secs: 600,
        };
        let year = "public, max-age=31536000, immutable";
        let public = "public, max-age=60, stale-while-revalidate=600";
        let private = "private, max-age=60, stale-while-revalidate=600";
        use Asker::*;
        use Verdict::{Unsigned, Valid};
        let table: &[(Verdict, Asker, bool, &str, &str)] = &[
            (Valid, Public, true, year, "Accept"),
            (Valid, Private, true, year, "Accept"),
            (Valid, Anonymous, true, year, "Accept"),
            (Valid, Public, false, public, "Accept"),
            (Valid, Private, false, public, "Accept"),
            (Valid, Anonymous, false, public, "Accept"),
            (Unsigned, Development, false, public, "Accept"),
            (Unsigned, Anonymous, false, public, "Accept"),
            (Unsigned, Private, false, private, "Accept"),
            (Unsigned, Public, false, public, "Accept, Origin"),
        ];
        for &(verdict, asker, pinned, control, vary) in table {
            let p = policy(verdict, asker, pinned, ttl);
            assert_eq!(
                (p.control.as_str(), p.vary),
                (control, vary),
                "{verdict:?} {asker:?} pinned={pinned}"
            );
        }
        let stand_in = policy(Unsigned, Public, false, ttl).stand_in();
        assert_eq!(
            (stand_in.control.as_str(), stand_in.vary),
            ("no-store", "Accept, Origin")
        );
    }
}
