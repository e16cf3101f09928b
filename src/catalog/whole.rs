//! Whole numbers as JSON writes them. `1702` and `1702.0` are the same JSON
//! number, and JSON Schema calls both integers (generators and some clients
//! send the second), so a field that holds a size, a count or a version
//! reads either. A fraction, a negative number or one out of the field's
//! range is refused with serde's message; the body parser names the field.
//!
//! Use: `#[serde(deserialize_with = "whole::de")]`, or for an optional
//! field `#[serde(default, deserialize_with = "whole::opt")]`.

use serde::Deserializer;
use serde::de::{Error, Unexpected, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// The unsigned integer types a field may hold, with their largest value.
pub trait Unsigned: TryFrom<u64> {
    const MAX: u64;
}

impl Unsigned for u32 {
    const MAX: u64 = u32::MAX as u64;
}

impl Unsigned for u64 {
    const MAX: u64 = u64::MAX;
}

/// A whole number that fits `T`.
///
/// # Errors
/// Anything else: a string, a fraction, a negative number, out of range.
pub fn de<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Unsigned,
{
    d.deserialize_any(Whole(PhantomData))
}

/// `null` (or, with `#[serde(default)]`, absent), or a whole number.
///
/// # Errors
/// As [`de`].
pub fn opt<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Unsigned,
{
    d.deserialize_option(Maybe(PhantomData))
}

struct Whole<T>(PhantomData<T>);

impl<T: Unsigned> Visitor<'_> for Whole<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a whole number from 0 to {}", T::MAX)
    }

    fn visit_u64<E: Error>(self, v: u64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
    }

    fn visit_i64<E: Error>(self, v: i64) -> Result<T, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::invalid_value(Unexpected::Signed(v), &self)),
        }
    }

    fn visit_f64<E: Error>(self, v: f64) -> Result<T, E> {
        // Exactly representable whole values below 2^64 only.
        if v.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&v) {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            self.visit_u64(v as u64)
        } else {
            Err(E::invalid_value(Unexpected::Float(v), &self))
        }
    }
}

struct Maybe<T>(PhantomData<T>);

impl<'de, T: Unsigned> Visitor<'de> for Maybe<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("null or a whole number")
    }

    fn visit_none<E: Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_unit<E: Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        de(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct T {
        #[serde(deserialize_with = "super::de")]
        w: u32,
        #[serde(default, deserialize_with = "super::opt")]
        s: Option<u64>,
    }

    fn parse(text: &str) -> Result<T, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn whole_numbers_in_any_spelling_and_nothing_else() {
        let ok = |w, s| Ok(T { w, s });
        for (text, want) in [
            (r#"{"w": 1702}"#, ok(1702, None)),
            (r#"{"w": 1702.0}"#, ok(1702, None)),
            (r#"{"w": 1.702e3, "s": null}"#, ok(1702, None)),
            (r#"{"w": 0, "s": 7.0}"#, ok(0, Some(7))),
            (r#"{"w": 4294967295}"#, ok(u32::MAX, None)),
        ] {
            assert_eq!(parse(text), want, "{text}");
        }
        for (text, says) in [
            (r#"{"w": 1702.5}"#, "floating point `1702.5`"),
            (r#"{"w": -1}"#, "integer `-1`"),
            (r#"{"w": -1.0}"#, "floating point `-1.0`"),
            (r#"{"w": 4294967296}"#, "integer `4294967296`"),
            (r#"{"w": "12"}"#, "string \"12\""),
            (r#"{"w": 1, "s": 0.5}"#, "floating point `0.5`"),
            (r#"{"w": 1e300}"#, "floating point"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
        let e = parse(r#"{"w": -1}"#).unwrap_err();
        assert!(e.contains("a whole number from 0 to 4294967295"), "{e}");
    }

    #[test]
    fn toml_integers_and_floats_too() {
        let t: T = toml::from_str("w = 12.0\ns = 3").unwrap();
        assert_eq!(t, T { w: 12, s: Some(3) });
    }
}
