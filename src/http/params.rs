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

    pub fn str(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    /// # Errors
    /// 422 when not a UUID.
    pub fn uuid(&self, name: &str) -> Result<Option<Uuid>, Error> {
        self.str(name).map(|s| parse_uuid(name, s)).transpose()
    }

    /// JSON-valued parameter.
    ///
    /// # Errors
    /// 400 naming the parameter when it is not valid JSON.
    pub fn json(&self, name: &str) -> Result<Option<serde_json::Value>, Error> {
        self.str(name)
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
        self.str(name)
            .map(|s| {
                s.trim()
                    .parse::<u32>()
                    .map_err(|_| Error::malformed(name, format!("\"{s}\" is not a whole number")))
            })
            .transpose()
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
