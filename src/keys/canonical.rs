//! Canonical JSON: the one spelling of a configuration that goes into keys.
//!
//! - Objects: keys sorted by their UTF-8 bytes, no whitespace.
//! - Numbers: `-0` is `0`; an integral value below 2^53 in magnitude is
//!   written as an integer (`1.0` → `1`, `1e2` → `100`); any other finite
//!   value uses Rust's shortest round-trip decimal form (`0.1`, `2.5`).
//! - Strings: JSON escapes as serde_json writes them.
//! - Colours: `{"b":..,"g":..,"r":..}` with integer channels.
//!
//! This format is pinned by tests with expected hashes: changing it changes
//! every key in every deployed cache, so it carries a version salt in
//! `keys` and a change here must bump that salt.

use crate::catalog::Value;
use std::fmt::Write;

/// Largest magnitude written as an integer; beyond it f64 has gaps.
const EXACT_INT: f64 = 9_007_199_254_740_992.0; // 2^53

/// Canonical JSON of any JSON value (used for stage configurations).
pub fn canonical_json(v: &serde_json::Value) -> String {
    let mut out = String::new();
    write_json(&mut out, v);
    out
}

fn write_json(out: &mut String, v: &serde_json::Value) {
    use serde_json::Value as J;
    match v {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Number(n) => write_number(out, n.as_f64().unwrap_or(0.0)),
        J::String(s) => write_str(out, s),
        J::Array(xs) => {
            out.push('[');
            for (i, x) in xs.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, x);
            }
            out.push(']');
        }
        J::Object(m) => {
            let mut entries: Vec<_> = m.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, x)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(out, k);
                out.push(':');
                write_json(out, x);
            }
            out.push('}');
        }
    }
}

/// Writes `x` in canonical number spelling.
pub fn write_number(out: &mut String, x: f64) {
    if x == 0.0 || !x.is_finite() {
        // Non-finite numbers cannot come out of JSON; 0 keeps this total.
        out.push('0');
    } else if x.fract() == 0.0 && x.abs() < EXACT_INT {
        let _ = write!(out, "{}", x as i64);
    } else {
        let _ = write!(out, "{x}");
    }
}

pub fn write_str(out: &mut String, s: &str) {
    // serde_json's string escaping is itself deterministic.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

/// Writes one attribute value.
pub fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Str(s) => write_str(out, s),
        Value::Num(n) => write_number(out, *n),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Color(c) => {
            let _ = write!(out, "{{\"b\":{},\"g\":{},\"r\":{}}}", c.b, c.g, c.r);
        }
    }
}

/// Canonical JSON object of `(name, value)` pairs, sorted by name.
pub fn write_object<'a>(out: &mut String, pairs: impl IntoIterator<Item = (&'a str, &'a Value)>) {
    let mut pairs: Vec<_> = pairs.into_iter().collect();
    pairs.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    out.push('{');
    for (i, (k, v)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, k);
        out.push(':');
        write_value(out, v);
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_have_one_spelling() {
        let cases = [
            (1.0, "1"),
            (-0.0, "0"),
            (100.0, "100"),
            (0.1, "0.1"),
            (2.5, "2.5"),
            (-3.25, "-3.25"),
            (1e21, "1000000000000000000000"),
        ];
        for (x, want) in cases {
            let mut s = String::new();
            write_number(&mut s, x);
            assert_eq!(s, want, "{x}");
        }
    }

    #[test]
    fn objects_are_sorted_and_compact() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{ "b": 1.0, "a": [1e2, "x\n"], "B": null }"#).unwrap();
        assert_eq!(canonical_json(&a), r#"{"B":null,"a":[100,"x\n"],"b":1}"#);
        assert_eq!(
            canonical_json(&json!({"Camera": 2.0})),
            canonical_json(&json!({"Camera": 2}))
        );
    }
}
