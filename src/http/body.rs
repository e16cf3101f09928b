//! JSON request bodies with errors that name the field.
//!
//! Malformed JSON (or a body that is not JSON at all) is a 400; JSON of the
//! wrong shape (a missing or unknown field, a wrong type) is a 422 naming
//! the field's path; a body over `http.max_body_bytes` is a 413.

use crate::error::Error;
use serde::de::DeserializeOwned;

/// Reads the whole body, refusing more than `limit` bytes.
///
/// # Errors
/// 413 over the limit, 400 when the body cannot be read.
pub async fn read(body: axum::body::Body, limit: usize) -> Result<bytes::Bytes, Error> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        // axum wraps http-body-util's LengthLimitError; its text is stable.
        let mut cause: Option<&dyn std::error::Error> = Some(&e);
        let mut over = false;
        while let Some(c) = cause {
            over |= c.to_string().contains("length limit exceeded");
            cause = c.source();
        }
        if over {
            Error::TooLarge(format!(
                "the request body is over the limit of {limit} bytes"
            ))
        } else {
            Error::malformed("body", format!("cannot be read: {e}"))
        }
    })
}

/// Parses `bytes` as JSON into `T`, straight from the text (no
/// `serde_json::Value` in between: built, a 2 MB body of small objects is
/// tens of megabytes).
///
/// # Errors
/// 400 for malformed JSON, 422 naming the field for the wrong shape.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_data() {
            Error::invalid(
                if path == "." {
                    "body".to_string()
                } else {
                    path
                },
                inner.to_string(),
            )
        } else {
            Error::malformed("body", format!("is not valid JSON ({inner})"))
        }
    })?;
    de.end()
        .map_err(|e| Error::malformed("body", format!("is not valid JSON ({e})")))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Thing {
        a: u32,
        inner: Option<Inner>,
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        b: String,
    }

    #[test]
    fn errors_name_the_field() {
        assert!(matches!(
            parse::<Thing>(b"{nope"),
            Err(Error::Malformed { .. })
        ));
        assert!(
            matches!(parse::<Thing>(br#"{"a": "x"}"#), Err(Error::Invalid { param, .. }) if param == "a")
        );
        assert!(
            matches!(parse::<Thing>(br#"{"a": 1, "inner": {"c": 1}}"#), Err(Error::Invalid { param, .. }) if param.starts_with("inner"))
        );
        let e = parse::<Thing>(br#"{"a": 1, "zzz": 2}"#).unwrap_err();
        assert!(
            matches!(&e, Error::Invalid { message, .. } if message.contains("zzz")),
            "{e}"
        );
        assert!(parse::<Thing>(br#"{"a": 1}"#).is_ok());
    }
}
