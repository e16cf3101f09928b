//! The JSON Schema of the asset definition format, derived from the spec
//! types the loader reads (`schemars`): served at
//! `GET /api/assets/schema.json` for editors, and the body of
//! `PUT /api/assets/{id}` in the OpenAPI document. The caps of this
//! server (`[catalog]` limits) are stated as `maxItems`.
//!
//! A schema states each part's shape; the rules that span parts (a layer's
//! `dependsOn` names attributes that exist, a default is one of the
//! options, a template reads only what its layer depends on) are the
//! loader's, which names the field when one is broken.

use super::{Limits, spec::AssetSpec};
use serde_json::{Value, json};

/// The schema (draft 2020-12) with this server's caps.
pub fn asset_schema(limits: &Limits) -> Value {
    let mut schema = schemars::schema_for!(AssetSpec).to_value();
    let caps = [
        ("/properties/views", limits.views),
        ("/properties/layers", limits.layers),
        ("/properties/attributes", limits.attributes),
        ("/$defs/AttributeSpec/properties/values", limits.options),
    ];
    for (pointer, max) in caps {
        if let Some(Value::Object(part)) = schema.pointer_mut(pointer) {
            part.insert("maxItems".into(), json!(max));
        }
    }
    // The loader reads `colour` as `color` (a serde alias the derive
    // does not state).
    if let Some(Value::Array(kinds)) = schema.pointer_mut("/$defs/AttributeType/enum") {
        kinds.push(json!("colour"));
    }
    // A 2D layer's art comes one way only (values given as null count as
    // absent, as the loader reads them).
    let given = |field: &str, kind: &str| json!({"required": [field], "properties": {field: {"type": kind}}});
    if let Some(Value::Object(render)) = schema.pointer_mut("/$defs/RenderSpec") {
        render.insert(
            "oneOf".into(),
            json!([
                given("svg", "string"),
                given("template", "string"),
                given("templates", "object"),
                given("blender", "object"),
            ]),
        );
    }
    // A 3D asset (one with a scene) names its backend, and each of its
    // layers draws the scene and each view has a camera; a 2D asset has
    // neither.
    if let Value::Object(top) = &mut schema {
        let each = |part: Value| json!({"items": part});
        top.insert("if".into(), given("scene", "object"));
        top.insert(
            "then".into(),
            json!({
                "required": ["renderer"],
                "properties": {
                    "renderer": {"type": "string", "not": {"const": "builtin"}},
                    "layers": each(json!({"properties": {"render": given("blender", "object")}})),
                    "views": each(given("camera", "object")),
                },
            }),
        );
        top.insert(
            "else".into(),
            json!({
                "properties": {
                    "layers": each(json!({"properties": {"render": {"properties": {"blender": {"type": "null"}}}}})),
                    "views": each(json!({"properties": {"camera": {"type": "null"}}})),
                },
            }),
        );
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caps_reach_the_parts_they_bound() {
        let limits = Limits {
            views: 3,
            options: 7,
            ..Limits::default()
        };
        let s = asset_schema(&limits);
        assert_eq!(s.pointer("/properties/views/maxItems"), Some(&json!(3)));
        assert_eq!(
            s.pointer("/$defs/AttributeSpec/properties/values/maxItems"),
            Some(&json!(7))
        );
        assert_eq!(
            s.pointer("/properties/layers/maxItems"),
            Some(&json!(limits.layers))
        );
    }

    #[test]
    fn the_definition_is_closed_and_read_only_fields_say_so() {
        let s = asset_schema(&Limits::default());
        assert_eq!(s["additionalProperties"], json!(false));
        let required: Vec<&str> = s["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for field in ["name", "width", "height", "attributes", "views", "layers"] {
            assert!(
                required.contains(&field),
                "{field} is required: {required:?}"
            );
        }
        for field in [
            "id",
            "version",
            "orgId",
            "createdAt",
            "updatedAt",
            "$schema",
        ] {
            assert!(!required.contains(&field), "{field} is optional");
        }
        for field in ["orgId", "createdAt", "updatedAt"] {
            assert_eq!(s["properties"][field]["readOnly"], json!(true), "{field}");
        }
        assert_eq!(
            s.pointer("/$defs/ViewSpec/properties/name/pattern"),
            Some(&json!("^[a-z0-9-]+$"))
        );
        assert_eq!(
            s.pointer("/$defs/AttributeType/enum"),
            Some(&json!(["string", "number", "boolean", "color", "colour"]))
        );
    }
}
