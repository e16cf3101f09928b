//! A definition's attributes: unique names, a kind with what it takes
//! (options, a range), what it changes in a 3D scene, and a valid default.

use super::super::spec::{AssetSpec, AttributeSpec, AttributeType, OptionSpec};
use super::ErrFn;
use crate::catalog::{AttrKind, AttrOption, Attribute, CatalogError, Value};
use std::collections::HashSet;

/// The definition's attributes, checked in order.
pub(super) fn attributes(
    spec: &AssetSpec,
    err: &ErrFn<'_>,
) -> Result<Vec<Attribute>, CatalogError> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, a) in spec.attributes.iter().enumerate() {
        let at = |f: &str| format!("attributes[{i}]{f}");
        if a.name.trim().is_empty() {
            return Err(err(at(".name"), "must not be empty".into()));
        }
        if !seen.insert(a.name.as_str()) {
            return Err(err(
                at(".name"),
                format!("attribute \"{}\" is defined twice", a.name),
            ));
        }
        let mut attr = Attribute {
            name: a.name.clone(),
            label: a.label.clone(),
            kind: kind(a, &at, err)?,
            default: Value::Bool(false),
            scene: None,
        };
        if let Some(s) = &a.scene {
            if spec.scene.is_none() {
                return Err(err(
                    at(".scene"),
                    "only 3D assets (with a \"scene\") say what an attribute changes in it".into(),
                ));
            }
            super::super::scene::check_attribute(&attr, s, &at("")).map_err(|(f, m)| err(f, m))?;
            attr.scene = Some(s.clone());
        }
        attr.default = default(&attr, a, &at, err)?;
        out.push(attr);
    }
    Ok(out)
}

/// A field path under the attribute being checked (`attributes[2].min`).
type At<'a> = dyn Fn(&str) -> String + 'a;

/// The attribute's kind, with only the fields its type takes.
fn kind(a: &AttributeSpec, at: &At<'_>, err: &ErrFn<'_>) -> Result<AttrKind, CatalogError> {
    let only = |present: bool, field: &str, types: &str| {
        if present {
            Err(err(
                at(&format!(".{field}")),
                format!("only {types} attributes take \"{field}\""),
            ))
        } else {
            Ok(())
        }
    };
    Ok(match a.kind {
        AttributeType::String => {
            only(a.min.is_some(), "min", "number")?;
            only(a.max.is_some(), "max", "number")?;
            AttrKind::String {
                options: options(a, at, err)?,
            }
        }
        AttributeType::Number => {
            only(a.values.is_some(), "values", "string")?;
            let (min, max) = match (a.min, a.max) {
                (Some(lo), Some(hi)) if lo.is_finite() && hi.is_finite() && lo <= hi => (lo, hi),
                (Some(_), Some(_)) => {
                    return Err(err(
                        at(".max"),
                        "min and max must be finite with min <= max".into(),
                    ));
                }
                _ => {
                    return Err(err(
                        at(".min"),
                        "a number attribute needs min and max".into(),
                    ));
                }
            };
            AttrKind::Number { min, max }
        }
        AttributeType::Boolean => {
            only(a.values.is_some(), "values", "string")?;
            only(a.min.is_some(), "min", "number")?;
            only(a.max.is_some(), "max", "number")?;
            AttrKind::Boolean
        }
        AttributeType::Color => {
            only(a.values.is_some(), "values", "string")?;
            only(a.min.is_some(), "min", "number")?;
            only(a.max.is_some(), "max", "number")?;
            AttrKind::Color
        }
    })
}

/// A string attribute's options: at least one, none listed twice.
fn options(
    a: &AttributeSpec,
    at: &At<'_>,
    err: &ErrFn<'_>,
) -> Result<Vec<AttrOption>, CatalogError> {
    let values = a.values.as_ref().filter(|v| !v.is_empty()).ok_or_else(|| {
        err(
            at(".values"),
            "a string attribute needs at least one value".into(),
        )
    })?;
    let mut opts = Vec::new();
    let mut names = HashSet::new();
    for (j, o) in values.iter().enumerate() {
        if !names.insert(o.value()) {
            return Err(err(
                at(&format!(".values[{j}]")),
                format!("option \"{}\" is listed twice", o.value()),
            ));
        }
        opts.push(match o {
            OptionSpec::Plain(v) => AttrOption {
                value: v.clone(),
                label: None,
                metadata: Default::default(),
            },
            OptionSpec::Detailed(d) => AttrOption {
                value: d.value.clone(),
                label: d.label.clone(),
                metadata: d.metadata.clone(),
            },
        });
    }
    Ok(opts)
}

/// The attribute's default: required except for booleans (false), and a
/// value the attribute accepts.
fn default(
    attr: &Attribute,
    a: &AttributeSpec,
    at: &At<'_>,
    err: &ErrFn<'_>,
) -> Result<Value, CatalogError> {
    Ok(match (&a.default, a.kind) {
        (None | Some(serde_json::Value::Null), AttributeType::Boolean) => Value::Bool(false),
        (None | Some(serde_json::Value::Null), _) => {
            return Err(err(at(".default"), "a default value is required".into()));
        }
        (Some(v), _) => attr
            .accept(v)
            .map_err(|e| err(at(".default"), e.to_string()))?,
    })
}
