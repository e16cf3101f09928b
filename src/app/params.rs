//! Query-string parameters with errors that name them.
//!
//! The contract passes JSON in the query (`configuration=%7B...%7D`), and a
//! bad value must come back as a 400 or 422 naming the parameter, which
//! axum's generic `Query` rejection cannot do. So the raw query is parsed
//! here: malformed input (bad JSON, a width that is not a number) is
//! `Error::Malformed` (400); a well-formed but unacceptable value (bad
//! UUID, out of range) is `Error::Invalid` (422).

use crate::error::Error;
use std::collections::HashMap;
use uuid::Uuid;

#[derive(Debug, Default)]
pub struct Params {
    values: HashMap<String, String>,
}

impl Params {
    /// Parses `query`; the first occurrence of a repeated name wins.
    ///
    /// # Errors
    /// [`Error::TooLarge`] when the query is longer than `max_bytes`.
    pub fn parse(query: Option<&str>, max_bytes: usize) -> Result<Params, Error> {
        let q = query.unwrap_or("");
        if q.len() > max_bytes {
            return Err(Error::TooLarge(format!(
                "the query string is {} bytes; the limit is {max_bytes}",
                q.len()
            )));
        }
        let mut values = HashMap::new();
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            values
                .entry(k.into_owned())
                .or_insert_with(|| v.into_owned());
        }
        Ok(Params { values })
    }

    /// The value, if given and not empty (`name=` counts as absent).
    pub fn str(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    /// The value as given, `""` included. The typed getters read this: a
    /// UUID, a number or JSON given empty is a wrong value, not an absent one.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// # Errors
    /// 422 when not a UUID (an empty value included).
    pub fn uuid(&self, name: &str) -> Result<Option<Uuid>, Error> {
        self.raw(name).map(|s| parse_uuid(name, s)).transpose()
    }

    /// Refuses `name=` for each of `names`: parameters whose every value is
    /// a word from a set, an id or a list, where empty is not a choice.
    ///
    /// # Errors
    /// 422 naming the first empty one.
    pub fn none_empty(&self, names: &[&str]) -> Result<(), Error> {
        match names.iter().find(|n| self.raw(n) == Some("")) {
            Some(n) => Err(Error::invalid(*n, "is empty; give a value or leave it out")),
            None => Ok(()),
        }
    }

    /// A closed set of words: absent, or one of `allowed`.
    ///
    /// # Errors
    /// 422 naming the parameter and the words it takes.
    pub fn one_of(&self, name: &str, allowed: &[&str]) -> Result<Option<&str>, Error> {
        match self.raw(name) {
            None => Ok(None),
            Some(s) if allowed.contains(&s) => Ok(Some(s)),
            Some(s) => Err(Error::invalid(
                name,
                format!("\"{s}\": use {}", allowed.join(", ")),
            )),
        }
    }

    /// Refuses a parameter that is neither one of `known` nor matched by
    /// `ignored` (names, or prefixes written `utm_*`: what CDNs and
    /// marketing tools add to URLs, `http.ignored_params`). A misspelt
    /// parameter is otherwise silently without effect: `widht=300` would
    /// answer the full-size image.
    ///
    /// # Errors
    /// 422 naming the first unknown parameter (by name) and the closest
    /// known one, or listing them when none is close.
    pub fn only(&self, known: &[&str], ignored: &[String]) -> Result<(), Error> {
        let Some(name) = self
            .values
            .keys()
            .filter(|k| !known.contains(&k.as_str()) && !ignored.iter().any(|p| matches(p, k)))
            .min()
        else {
            return Ok(());
        };
        let hint = match crate::spelling::closest(name, known.iter().copied()) {
            Some(k) => format!("did you mean {k}?"),
            None => format!("this route takes {}", known.join(", ")),
        };
        Err(Error::invalid(name, format!("unknown parameter; {hint}")))
    }

    /// JSON-valued parameter.
    ///
    /// # Errors
    /// 400 naming the parameter when it is not valid JSON.
    pub fn json(&self, name: &str) -> Result<Option<serde_json::Value>, Error> {
        self.raw(name)
            .map(|s| {
                serde_json::from_str(s)
                    .map_err(|e| Error::malformed(name, format!("is not valid JSON ({e})")))
            })
            .transpose()
    }

    /// Non-negative integer parameter.
    ///
    /// # Errors
    /// 400 when it is not a whole number.
    pub fn u32(&self, name: &str) -> Result<Option<u32>, Error> {
        self.raw(name)
            .map(|s| {
                s.trim()
                    .parse::<u32>()
                    .map_err(|_| Error::malformed(name, format!("\"{s}\" is not a whole number")))
            })
            .transpose()
    }
}

/// Whether `name` matches an `ignored_params` pattern: the name itself, or
/// a prefix followed by `*`.
pub fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// # Errors
/// 422 naming `name` when `s` is not a UUID.
pub fn parse_uuid(name: &str, s: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(s).map_err(|_| Error::invalid(name, format!("\"{s}\" is not a UUID")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_parameters_are_named_with_the_nearest_known_one() {
        let known = ["assetId", "width", "height", "view", "configuration"];
        let ignored = vec!["utm_*".to_string(), "fbclid".to_string()];
        let refused = |q: &str| {
            let p = Params::parse(Some(q), 1000).unwrap();
            match p.only(&known, &ignored) {
                Err(Error::Invalid { param, message }) => format!("{param}: {message}"),
                other => panic!("{q}: {other:?}"),
            }
        };
        assert_eq!(
            refused("widht=300"),
            "widht: unknown parameter; did you mean width?"
        );
        assert_eq!(
            refused("assetid=x"),
            "assetid: unknown parameter; did you mean assetId?"
        );
        assert_eq!(
            refused("heigth=1"),
            "heigth: unknown parameter; did you mean height?"
        );
        assert_eq!(
            refused("veiw=side"),
            "veiw: unknown parameter; did you mean view?"
        );
        assert_eq!(
            refused("size=300"),
            "size: unknown parameter; this route takes assetId, width, height, view, configuration"
        );
        // The first unknown one by name, whatever the order in the URL.
        assert!(refused("zz=1&widht=2").starts_with("widht:"));
        let ok = Params::parse(Some("width=1&utm_source=x&utm_=y&fbclid=z"), 1000).unwrap();
        assert!(ok.only(&known, &ignored).is_ok());
        let near_miss = Params::parse(Some("fbclid2=z"), 1000).unwrap();
        assert!(near_miss.only(&known, &ignored).is_err());
    }

    #[test]
    fn parameters_are_decoded_and_checked() {
        let p = Params::parse(
            Some("a=1&configuration=%7B%22X%22%3A1%7D&w=abc&id=nope&a=2&empty="),
            1000,
        )
        .unwrap();
        assert_eq!(p.str("a"), Some("1"));
        assert_eq!(
            p.json("configuration").unwrap(),
            Some(serde_json::json!({"X": 1}))
        );
        assert!(matches!(p.u32("w"), Err(Error::Malformed { .. })));
        assert!(matches!(p.uuid("id"), Err(Error::Invalid { .. })));
        assert_eq!(p.str("empty"), None);
        assert_eq!(p.raw("empty"), Some(""));
        // Empty is a wrong value for a typed parameter, not an absent one.
        assert!(matches!(p.uuid("empty"), Err(Error::Invalid { .. })));
        assert!(matches!(p.u32("empty"), Err(Error::Malformed { .. })));
        assert!(matches!(p.json("empty"), Err(Error::Malformed { .. })));
        assert_eq!(p.one_of("a", &["1", "2"]).unwrap(), Some("1"));
        assert!(p.one_of("empty", &["1"]).is_err());
        assert_eq!(p.one_of("missing", &["1"]).unwrap(), None);
        assert!(matches!(
            Params::parse(Some("x=1"), 2),
            Err(Error::TooLarge(_))
        ));
        let bad = Params::parse(Some("configuration=%7Bnope"), 100).unwrap();
        assert!(
            matches!(bad.json("configuration"), Err(Error::Malformed { param, .. }) if param == "configuration")
        );
    }
}
