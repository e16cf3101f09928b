//! A definition's views: slug names, one distinct stage each, and a
//! camera exactly when the asset is 3D.

use super::super::spec::AssetSpec;
use super::ErrFn;
use crate::catalog::{CatalogError, View};
use std::collections::HashSet;

pub(super) fn views(
    spec: &AssetSpec,
    is_3d: bool,
    err: &ErrFn<'_>,
) -> Result<Vec<View>, CatalogError> {
    if spec.views.is_empty() {
        return Err(err(
            "views".into(),
            "an asset needs at least one view".into(),
        ));
    }
    let mut names = HashSet::new();
    let mut stages = HashSet::new();
    let mut out = Vec::new();
    for (i, v) in spec.views.iter().enumerate() {
        let slug = !v.name.is_empty()
            && v.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !slug {
            return Err(err(
                format!("views[{i}].name"),
                format!("\"{}\" must be lowercase letters, digits and '-'", v.name),
            ));
        }
        if !names.insert(v.name.as_str()) {
            return Err(err(
                format!("views[{i}].name"),
                format!("view \"{}\" is defined twice", v.name),
            ));
        }
        if v.stage.is_empty() {
            return Err(err(
                format!("views[{i}].stage"),
                "must name at least one stage attribute, e.g. {\"Camera\": 0}".into(),
            ));
        }
        let canonical = crate::keys::canonical_json(&serde_json::Value::Object(v.stage.clone()));
        if stages.contains(&canonical) {
            return Err(err(
                format!("views[{i}].stage"),
                format!("another view already has the stage {canonical}"),
            ));
        }
        stages.insert(canonical.clone());
        match (&v.camera, is_3d) {
            (Some(c), true) => super::super::scene::check_camera(c, &format!("views[{i}]"))
                .map_err(|(f, m)| err(f, m))?,
            (None, true) => {
                return Err(err(
                    format!("views[{i}].camera"),
                    "every view of a 3D asset needs a camera".into(),
                ));
            }
            (Some(_), false) => {
                return Err(err(
                    format!("views[{i}].camera"),
                    "only 3D assets (with a \"scene\") take a camera".into(),
                ));
            }
            (None, false) => {}
        }
        out.push(View {
            name: v.name.clone(),
            label: v.label.clone().unwrap_or_else(|| v.name.clone()),
            stage: v.stage.clone(),
            stage_canonical: canonical,
            camera: v.camera.clone(),
            turntable: v.turntable,
        });
    }
    Ok(out)
}
