//! Render templates: SVG text with `{{...}}` placeholders.
//!
//! Placeholders are resolved against the *restricted* configuration of one
//! layer, so the loader rejects any template that names an attribute outside
//! the layer's `dependsOn`: a layer's image can only depend on what its key
//! covers. Substituted values are XML-escaped.
//!
//! | placeholder          | becomes                                          |
//! |----------------------|--------------------------------------------------|
//! | `{{Attr}}`           | the value: option name, number, `true`/`false`, `#rrggbb` |
//! | `{{Attr.key}}`       | metadata `key` of the chosen option (`string` attributes) |
//! | `{{view.name}}`, `{{view.label}}` | the view being rendered             |
//! | `{{canvas.width}}`, `{{canvas.height}}` | the render size              |
//!
//! Rasterising the result is `render`'s business, not this module's.

use super::{AttrKind, Attribute, Value};

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Text(String),
    Attr { index: usize, field: Option<String> },
    ViewName,
    ViewLabel,
    CanvasWidth,
    CanvasHeight,
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    segments: Vec<Segment>,
}

/// What a template may read while rendering one layer in one view.
pub struct TemplateContext<'a> {
    pub attributes: &'a [Attribute],
    /// `(attribute index, value)` for the layer's `dependsOn` only.
    pub values: &'a [(usize, Value)],
    pub view_name: &'a str,
    pub view_label: &'a str,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateError {
    #[error("unterminated placeholder at byte {0}")]
    Unterminated(usize),
    #[error("unknown placeholder {{{{{0}}}}}")]
    Unknown(String),
    #[error("placeholder {{{{{name}}}}}: option \"{option}\" has no metadata \"{field}\"")]
    MissingMetadata {
        name: String,
        option: String,
        field: String,
    },
    #[error("placeholder {{{{{0}}}}}: only string attributes have fields")]
    FieldOnNonString(String),
    #[error("attribute \"{0}\" has no value in this layer's configuration")]
    MissingValue(String),
}

impl Template {
    /// Parses `text`, resolving attribute names against `attributes`.
    ///
    /// # Errors
    /// [`TemplateError`] for an unterminated or unknown placeholder, or a
    /// field that some option of the attribute does not carry.
    pub fn parse(text: &str, attributes: &[Attribute]) -> Result<Template, TemplateError> {
        let mut segments = Vec::new();
        let mut rest = text;
        let mut consumed = 0;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                segments.push(Segment::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or(TemplateError::Unterminated(consumed + open))?;
            let name = after[..close].trim();
            segments.push(resolve(name, attributes)?);
            consumed += open + 2 + close + 2;
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            segments.push(Segment::Text(rest.to_string()));
        }
        Ok(Template { segments })
    }

    /// Indices of the attributes this template reads.
    pub fn attributes(&self) -> impl Iterator<Item = usize> + '_ {
        self.segments.iter().filter_map(|s| match s {
            Segment::Attr { index, .. } => Some(*index),
            _ => None,
        })
    }

    /// Substitutes every placeholder.
    ///
    /// # Errors
    /// [`TemplateError::MissingValue`] when the context lacks an attribute the
    /// template reads (the loader makes this impossible for catalogue assets).
    pub fn render(&self, ctx: &TemplateContext<'_>) -> Result<String, TemplateError> {
        let mut out = String::with_capacity(self.segments.iter().map(seg_len).sum());
        for seg in &self.segments {
            match seg {
                Segment::Text(t) => out.push_str(t),
                Segment::ViewName => escape_into(&mut out, ctx.view_name),
                Segment::ViewLabel => escape_into(&mut out, ctx.view_label),
                Segment::CanvasWidth => out.push_str(&ctx.width.to_string()),
                Segment::CanvasHeight => out.push_str(&ctx.height.to_string()),
                Segment::Attr { index, field } => {
                    let attr = &ctx.attributes[*index];
                    let value = ctx
                        .values
                        .iter()
                        .find(|(i, _)| i == index)
                        .map(|(_, v)| v)
                        .ok_or_else(|| TemplateError::MissingValue(attr.name.clone()))?;
                    match (field, value, &attr.kind) {
                        (None, v, _) => escape_into(&mut out, &v.to_string()),
                        (Some(f), Value::Str(s), AttrKind::String { options }) => {
                            let meta = options
                                .iter()
                                .find(|o| o.value == *s)
                                .and_then(|o| o.metadata.get(f))
                                .ok_or_else(|| TemplateError::MissingMetadata {
                                    name: attr.name.clone(),
                                    option: s.clone(),
                                    field: f.clone(),
                                })?;
                            escape_into(&mut out, meta);
                        }
                        (Some(_), _, _) => {
                            return Err(TemplateError::FieldOnNonString(attr.name.clone()));
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

fn seg_len(s: &Segment) -> usize {
    match s {
        Segment::Text(t) => t.len(),
        _ => 8,
    }
}

fn resolve(name: &str, attributes: &[Attribute]) -> Result<Segment, TemplateError> {
    match name {
        "view.name" => return Ok(Segment::ViewName),
        "view.label" => return Ok(Segment::ViewLabel),
        "canvas.width" => return Ok(Segment::CanvasWidth),
        "canvas.height" => return Ok(Segment::CanvasHeight),
        _ => {}
    }
    // Attribute names may contain dots themselves; prefer the whole name.
    if let Some(index) = attributes.iter().position(|a| a.name == name) {
        return Ok(Segment::Attr { index, field: None });
    }
    let (attr, field) = name
        .rsplit_once('.')
        .ok_or_else(|| TemplateError::Unknown(name.into()))?;
    let index = attributes
        .iter()
        .position(|a| a.name == attr)
        .ok_or_else(|| TemplateError::Unknown(name.into()))?;
    let AttrKind::String { options } = &attributes[index].kind else {
        return Err(TemplateError::FieldOnNonString(name.into()));
    };
    if let Some(o) = options.iter().find(|o| !o.metadata.contains_key(field)) {
        return Err(TemplateError::MissingMetadata {
            name: name.into(),
            option: o.value.clone(),
            field: field.into(),
        });
    }
    Ok(Segment::Attr {
        index,
        field: Some(field.to_string()),
    })
}

fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::AttrOption;

    fn attrs() -> Vec<Attribute> {
        let opt = |v: &str, c: &str| AttrOption {
            value: v.into(),
            label: None,
            metadata: [("color".to_string(), c.to_string())].into(),
        };
        vec![
            Attribute {
                name: "Body".into(),
                label: None,
                kind: AttrKind::String {
                    options: vec![opt("Red", "#f00"), opt("R&D", "#0f0")],
                },
                default: Value::Str("Red".into()),
                scene: None,
            },
            Attribute {
                name: "Skirt".into(),
                label: None,
                kind: AttrKind::Boolean,
                default: Value::Bool(false),
                scene: None,
            },
        ]
    }

    fn ctx<'a>(attributes: &'a [Attribute], values: &'a [(usize, Value)]) -> TemplateContext<'a> {
        TemplateContext {
            attributes,
            values,
            view_name: "front",
            view_label: "Front",
            width: 10,
            height: 20,
        }
    }

    #[test]
    fn substitutes_values_metadata_and_builtins() {
        let a = attrs();
        let t = Template::parse(
            "<g fill=\"{{ Body.color }}\" id=\"{{Body}}-{{view.name}}\" w=\"{{canvas.width}}\"/>",
            &a,
        )
        .unwrap();
        let vals = [(0, Value::Str("R&D".into()))];
        assert_eq!(
            t.render(&ctx(&a, &vals)).unwrap(),
            "<g fill=\"#0f0\" id=\"R&amp;D-front\" w=\"10\"/>"
        );
        assert_eq!(t.attributes().collect::<Vec<_>>(), vec![0, 0]);
    }

    #[test]
    fn rejects_unknown_and_unterminated() {
        let a = attrs();
        assert_eq!(
            Template::parse("{{Colour}}", &a),
            Err(TemplateError::Unknown("Colour".into()))
        );
        assert_eq!(
            Template::parse("ab{{Body", &a),
            Err(TemplateError::Unterminated(2))
        );
        assert!(matches!(
            Template::parse("{{Body.shine}}", &a),
            Err(TemplateError::MissingMetadata { .. })
        ));
        assert!(matches!(
            Template::parse("{{Skirt.x}}", &a),
            Err(TemplateError::FieldOnNonString(_))
        ));
    }

    #[test]
    fn missing_value_is_an_error_not_a_panic() {
        let a = attrs();
        let t = Template::parse("{{Skirt}}", &a).unwrap();
        assert_eq!(
            t.render(&ctx(&a, &[])),
            Err(TemplateError::MissingValue("Skirt".into()))
        );
    }
}
