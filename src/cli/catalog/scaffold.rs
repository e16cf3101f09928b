//! What `layercake catalog new` writes: a product drawn in flat SVG, with
//! a colour attribute (options carrying a `color` for the templates), a
//! boolean that shows a layer, two views and a template per view and
//! layer: the parts of the format a first product needs.

use serde_json::{Value, json};
use uuid::Uuid;

/// The definition; its layers read `<slug>/{view}/<layer>.svg`.
pub fn definition(id: Uuid, name: &str, slug: &str) -> Value {
    let layer = |name: &str, file: &str| {
        json!({
            "id": Uuid::new_v4().to_string(),
            "name": name,
            "render": {"svg": format!("{slug}/{{view}}/{file}.svg")},
        })
    };
    let mut body = layer("Body", "body");
    body["dependsOn"] = json!(["Colour"]);
    let mut trim = layer("Trim", "trim");
    trim["visibleWhen"] = json!({"Trim": true});
    json!({
        "$schema": "http://127.0.0.1:8080/api/assets/schema.json",
        "id": id.to_string(),
        "name": name,
        "description": "Started by `layercake catalog new`: change it into your product (docs/assets.md has every field).",
        "width": 800,
        "height": 800,
        "attributes": [
            {
                "name": "Colour",
                "type": "string",
                "label": "Colour",
                "default": "Sage",
                "values": [
                    {"value": "Sage", "metadata": {"color": "#8fa68a"}},
                    {"value": "Ink", "label": "Ink blue", "metadata": {"color": "#2c3a55"}},
                    {"value": "Clay", "metadata": {"color": "#c0603e"}},
                ],
            },
            {"name": "Trim", "type": "boolean", "label": "Gold trim", "default": false},
        ],
        "views": [
            {"name": "front", "label": "Front", "stage": {"Camera": 0}},
            {"name": "back", "label": "Back", "stage": {"Camera": 1}},
        ],
        "layers": [layer("Backdrop", "backdrop"), body, trim],
    })
}

const BACKDROP: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" width="800" height="800">
  <defs>
    <linearGradient id="wall" x1="0" y1="0" x2="0" y2="1">
      <stop offset="0" stop-color="#f7f5f2"/>
      <stop offset="1" stop-color="#e2ddd6"/>
    </linearGradient>
  </defs>
  <rect width="800" height="800" fill="url(#wall)"/>
  <ellipse cx="400" cy="668" rx="190" ry="30" fill="#000" fill-opacity="0.16"/>
</svg>
"##;

/// `(view, layer file, text)`: the views differ in shape, so a picture of
/// the back is not the front's.
pub const TEMPLATES: [(&str, &str, &str); 6] = [
    ("front", "backdrop", BACKDROP),
    ("back", "backdrop", BACKDROP),
    (
        "front",
        "body",
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="800" height="800">
  <rect x="250" y="200" width="300" height="460" rx="44" fill="{{Colour.color}}"/>
  <rect x="282" y="236" width="42" height="388" rx="21" fill="#fff" fill-opacity="0.22"/>
</svg>
"##,
    ),
    (
        "back",
        "body",
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="800" height="800">
  <rect x="270" y="200" width="260" height="460" rx="44" fill="{{Colour.color}}"/>
  <rect x="270" y="200" width="260" height="70" rx="35" fill="#000" fill-opacity="0.18"/>
</svg>
"##,
    ),
    (
        "front",
        "trim",
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="800" height="800">
  <rect x="250" y="560" width="300" height="34" fill="#d4af37"/>
</svg>
"##,
    ),
    (
        "back",
        "trim",
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="800" height="800">
  <rect x="270" y="560" width="260" height="34" fill="#d4af37"/>
</svg>
"##,
    ),
];
