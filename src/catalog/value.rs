//! Attribute values: the typed form of one entry of a configuration, and the
//! check of a JSON value against an attribute's domain.
//!
//! This decides what a value *is*; how it is spelled inside a key is the
//! business of `keys::canonical`.

use super::{AttrKind, Attribute};
use std::fmt;

/// A colour, 8 bits per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rgb {
    pub r: u8,
    pub g: u8,
    pub b: u8,
}

impl Rgb {
    pub fn hex(&self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.r, self.g, self.b)
    }

    /// `#rrggbb` (or `rrggbb`), case-insensitive.
    pub fn parse_hex(s: &str) -> Option<Rgb> {
        let s = s.strip_prefix('#').unwrap_or(s);
        if s.len() != 6 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let p = |i: usize| u8::from_str_radix(&s[i..i + 2], 16).ok();
        Some(Rgb {
            r: p(0)?,
            g: p(2)?,
            b: p(4)?,
        })
    }
}

/// One attribute's value, already checked against its attribute.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    /// Always finite; `-0.0` is normalised to `0.0`.
    Num(f64),
    Bool(bool),
    Color(Rgb),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => f.write_str(s),
            Value::Num(n) => write!(f, "{n}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Color(c) => f.write_str(&c.hex()),
        }
    }
}

/// Why a value does not fit its attribute; the caller adds which attribute.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueError {
    #[error("expected {expected}, got {got}")]
    WrongType {
        expected: &'static str,
        got: &'static str,
    },
    #[error("\"{value}\" is not an option (options: {options})")]
    UnknownOption { value: String, options: String },
    #[error("{value} is outside the range {min}..={max}")]
    OutOfRange { value: f64, min: f64, max: f64 },
    #[error("a colour needs r, g and b as integers 0-255, or \"#rrggbb\"")]
    BadColor,
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

impl Attribute {
    /// Checks a JSON value against this attribute's domain.
    ///
    /// # Errors
    /// [`ValueError`] when the value has the wrong type, is not an option,
    /// is out of range, or is not a colour. `null` is not accepted here:
    /// the caller decides whether null means "the default".
    pub fn accept(&self, v: &serde_json::Value) -> Result<Value, ValueError> {
        use serde_json::Value as J;
        let wrong = |expected| ValueError::WrongType {
            expected,
            got: json_type(v),
        };
        match (&self.kind, v) {
            (AttrKind::String { options }, J::String(s)) => {
                if options.iter().any(|o| o.value == *s) {
                    Ok(Value::Str(s.clone()))
                } else {
                    let all: Vec<&str> = options.iter().map(|o| o.value.as_str()).collect();
                    Err(ValueError::UnknownOption {
                        value: s.clone(),
                        options: all.join(", "),
                    })
                }
            }
            (AttrKind::String { .. }, _) => Err(wrong("a string")),
            (AttrKind::Number { min, max }, J::Number(n)) => {
                let x = n
                    .as_f64()
                    .filter(|x| x.is_finite())
                    .ok_or(wrong("a finite number"))?;
                if x < *min || x > *max {
                    return Err(ValueError::OutOfRange {
                        value: x,
                        min: *min,
                        max: *max,
                    });
                }
                Ok(Value::Num(if x == 0.0 { 0.0 } else { x }))
            }
            (AttrKind::Number { .. }, _) => Err(wrong("a number")),
            (AttrKind::Boolean, J::Bool(b)) => Ok(Value::Bool(*b)),
            (AttrKind::Boolean, _) => Err(wrong("a boolean")),
            (AttrKind::Color, J::String(s)) => Rgb::parse_hex(s)
                .map(Value::Color)
                .ok_or(ValueError::BadColor),
            (AttrKind::Color, J::Object(m)) => {
                if m.keys().any(|k| !matches!(k.as_str(), "r" | "g" | "b")) {
                    return Err(ValueError::BadColor);
                }
                let ch = |k: &str| -> Result<u8, ValueError> {
                    let x = m
                        .get(k)
                        .and_then(|v| v.as_f64())
                        .ok_or(ValueError::BadColor)?;
                    if x.fract() != 0.0 || !(0.0..=255.0).contains(&x) {
                        return Err(ValueError::BadColor);
                    }
                    Ok(x as u8)
                };
                Ok(Value::Color(Rgb {
                    r: ch("r")?,
                    g: ch("g")?,
                    b: ch("b")?,
                }))
            }
            (AttrKind::Color, _) => Err(wrong("a colour")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::AttrOption;
    use serde_json::json;

    fn attr(kind: AttrKind) -> Attribute {
        Attribute {
            name: "A".into(),
            label: None,
            kind,
            default: Value::Bool(false),
            scene: None,
        }
    }

    #[test]
    fn string_options_are_exact() {
        let a = attr(AttrKind::String {
            options: vec![AttrOption {
                value: "Red".into(),
                label: None,
                metadata: Default::default(),
            }],
        });
        assert_eq!(a.accept(&json!("Red")), Ok(Value::Str("Red".into())));
        assert!(matches!(
            a.accept(&json!("red")),
            Err(ValueError::UnknownOption { .. })
        ));
        assert!(matches!(
            a.accept(&json!(1)),
            Err(ValueError::WrongType { .. })
        ));
    }

    #[test]
    fn numbers_are_ranged_and_normalised() {
        let a = attr(AttrKind::Number {
            min: -1.0,
            max: 10.0,
        });
        assert_eq!(a.accept(&json!(2)), Ok(Value::Num(2.0)));
        assert_eq!(a.accept(&json!(2.0)), Ok(Value::Num(2.0)));
        assert_eq!(a.accept(&json!(-0.0)), Ok(Value::Num(0.0)));
        assert!(matches!(
            a.accept(&json!(10.5)),
            Err(ValueError::OutOfRange { .. })
        ));
        assert!(a.accept(&json!("2")).is_err());
    }

    #[test]
    fn colours_take_objects_and_hex() {
        let a = attr(AttrKind::Color);
        let c = Value::Color(Rgb {
            r: 255,
            g: 0,
            b: 16,
        });
        assert_eq!(a.accept(&json!({"r": 255, "g": 0, "b": 16})), Ok(c.clone()));
        assert_eq!(
            a.accept(&json!({"b": 16.0, "g": 0, "r": 255})),
            Ok(c.clone())
        );
        assert_eq!(a.accept(&json!("#FF0010")), Ok(c));
        assert_eq!(
            a.accept(&json!({"r": 256, "g": 0, "b": 0})),
            Err(ValueError::BadColor)
        );
        assert_eq!(
            a.accept(&json!({"r": 1, "g": 0, "b": 0, "a": 1})),
            Err(ValueError::BadColor)
        );
        assert_eq!(
            a.accept(&json!({"r": 1.5, "g": 0, "b": 0})),
            Err(ValueError::BadColor)
        );
        assert_eq!(a.accept(&json!("#12345")), Err(ValueError::BadColor));
    }
}
