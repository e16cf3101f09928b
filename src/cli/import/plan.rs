//! What an import folder holds, read against the asset's definition: one
//! entry per image (its layer, view and the values of the attributes the
//! layer depends on), and a problem for everything that is not one, each
//! naming its path. Pure but for listing the folder.
//!
//! The layout: `<view>/<layer>/<value>[+<value>…].<ext>`, one value per
//! `dependsOn` attribute in its order; `<view>/<layer>.<ext>` for a layer
//! that depends on nothing. Views by name; layers by name (any case, or
//! its slug) or id; values as a configuration gives them (an option, `true`
//! or `false`, a number, a colour as `rrggbb` or `#rrggbb`).

use crate::catalog::spec::{AssetSpec, AttributeSpec, AttributeType};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// One image to register.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub path: PathBuf,
    pub layer: usize,
    pub view: usize,
    /// The layer's `dependsOn` attributes and their values.
    pub values: Map<String, Value>,
}

/// A file (or folder) that is not an image to register, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub path: PathBuf,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Plan {
    pub entries: Vec<Entry>,
    pub problems: Vec<Problem>,
}

const EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "webp"];

/// Reads `dir` against `spec`.
///
/// # Errors
/// The folder (or one below it) cannot be listed.
pub fn plan(dir: &Path, spec: &AssetSpec) -> std::io::Result<Plan> {
    let mut out = Plan::default();
    let views: Vec<&str> = spec.views.iter().map(|v| v.name.as_str()).collect();
    for path in listing(dir)? {
        let name = file_name(&path);
        match spec.views.iter().position(|v| v.name == name) {
            Some(view) if path.is_dir() => view_folder(&path, view, spec, &mut out)?,
            _ => out.problem(
                &path,
                format!("not a view folder (views: {})", views.join(", ")),
            ),
        }
    }
    Ok(out)
}

impl Plan {
    fn problem(&mut self, path: &Path, reason: String) {
        self.problems.push(Problem {
            path: path.to_path_buf(),
            reason,
        });
    }
}

fn view_folder(dir: &Path, view: usize, spec: &AssetSpec, out: &mut Plan) -> std::io::Result<()> {
    for path in listing(dir)? {
        let (stem, ext) = split(&path);
        let Some(layer) = find_layer(
            spec,
            if path.is_dir() {
                file_name(&path)
            } else {
                stem
            },
        ) else {
            let names: Vec<&str> = spec.layers.iter().map(|l| l.name.as_str()).collect();
            out.problem(
                &path,
                format!("not a layer of the asset (layers: {})", names.join(", ")),
            );
            continue;
        };
        let deps = &spec.layers[layer].depends_on;
        if path.is_dir() {
            if deps.is_empty() {
                out.problem(
                    &path,
                    format!(
                        "layer \"{}\" depends on nothing: its image is {}.png beside this folder",
                        spec.layers[layer].name,
                        file_name(&path)
                    ),
                );
                continue;
            }
            for file in listing(&path)? {
                image(&file, layer, view, spec, out);
            }
        } else if !deps.is_empty() {
            out.problem(
                &path,
                format!(
                    "layer \"{}\" depends on {}: its images go in {}/<value>{}.{ext}",
                    spec.layers[layer].name,
                    deps.join(", "),
                    stem,
                    "+<value>".repeat(deps.len() - 1)
                ),
            );
        } else if is_image(ext) {
            out.entries.push(Entry {
                path,
                layer,
                view,
                values: Map::new(),
            });
        } else {
            out.problem(&path, not_an_image());
        }
    }
    Ok(())
}

/// `<value>[+<value>…].<ext>` of a layer that depends on something.
fn image(path: &Path, layer: usize, view: usize, spec: &AssetSpec, out: &mut Plan) {
    let (stem, ext) = split(path);
    if path.is_dir() || !is_image(ext) {
        return out.problem(path, not_an_image());
    }
    let deps = &spec.layers[layer].depends_on;
    let parts: Vec<&str> = stem.split('+').collect();
    if parts.len() != deps.len() {
        return out.problem(
            path,
            format!(
                "{} value(s) in the name; layer \"{}\" depends on {} ({})",
                parts.len(),
                spec.layers[layer].name,
                deps.len(),
                deps.join(", ")
            ),
        );
    }
    let mut values = Map::new();
    for (name, part) in deps.iter().zip(parts) {
        let Some(attr) = spec.attributes.iter().find(|a| &a.name == name) else {
            return out.problem(
                path,
                format!("the layer depends on \"{name}\", which the asset does not define"),
            );
        };
        match value_of(attr, part) {
            Ok(v) => {
                values.insert(name.clone(), v);
            }
            Err(reason) => return out.problem(path, reason),
        }
    }
    out.entries.push(Entry {
        path: path.to_path_buf(),
        layer,
        view,
        values,
    });
}

/// The layer a folder or file names: its id, its name (any case) or the
/// name's slug.
fn find_layer(spec: &AssetSpec, name: &str) -> Option<usize> {
    let l = spec.layers.iter();
    l.clone()
        .position(|l| l.id == name || l.name == name)
        .or_else(|| l.clone().position(|l| l.name.eq_ignore_ascii_case(name)))
        .or_else(|| {
            l.clone()
                .position(|l| super::super::catalog::slug(&l.name).as_deref() == Some(name))
        })
}

/// One value as a file name gives it, as a configuration would.
fn value_of(attr: &AttributeSpec, s: &str) -> Result<Value, String> {
    let name = &attr.name;
    match attr.kind {
        AttributeType::String => {
            let options: Vec<&str> = attr.values.iter().flatten().map(|o| o.value()).collect();
            let exact = options.iter().copied().find(|o| *o == s);
            let loose: Vec<&str> = options
                .iter()
                .copied()
                .filter(|o| o.eq_ignore_ascii_case(s))
                .collect();
            match (exact, loose.as_slice()) {
                (Some(o), _) | (None, &[o]) => Ok(Value::from(o.to_string())),
                _ => Err(format!(
                    "\"{s}\" is not an option of {name} ({})",
                    options.join(", ")
                )),
            }
        }
        AttributeType::Boolean => match s.to_ascii_lowercase().as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!("\"{s}\": {name} is true or false")),
        },
        AttributeType::Number => s
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(|n| {
                if n.fract() == 0.0 && n.abs() < 9e15 {
                    Value::from(n as i64)
                } else {
                    Value::from(n)
                }
            })
            .ok_or_else(|| format!("\"{s}\": {name} is a number")),
        AttributeType::Color => {
            let hex = s.trim_start_matches('#');
            if hex.len() == 6 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(Value::from(format!("#{}", hex.to_ascii_lowercase())))
            } else {
                Err(format!("\"{s}\": {name} is a colour, rrggbb"))
            }
        }
    }
}

/// The entries of `dir`, sorted, hidden ones (`.DS_Store`) left out.
fn listing(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if !file_name(&p).starts_with('.') {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

fn file_name(p: &Path) -> &str {
    p.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

/// `Oak+Short.png` → (`Oak+Short`, `png`).
fn split(p: &Path) -> (&str, &str) {
    let stem = p.file_stem().and_then(|n| n.to_str()).unwrap_or("");
    let ext = p.extension().and_then(|n| n.to_str()).unwrap_or("");
    (stem, ext)
}

fn is_image(ext: &str) -> bool {
    EXTENSIONS.iter().any(|e| e.eq_ignore_ascii_case(ext))
}

fn not_an_image() -> String {
    "not an image file (.png, .jpg, .jpeg, .webp)".into()
}

#[cfg(test)]
mod tests;
