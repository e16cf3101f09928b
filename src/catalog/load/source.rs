//! Where an asset file's template and scene files are read from: a
//! catalogue folder, the built-in catalogue, the files sent along with a
//! definition, or nowhere (definitions submitted over the API carry their
//! templates inline). Every path stays inside the catalogue, and a read
//! stops one byte past its cap.

use super::caps::check_template;
use crate::catalog::Limits;
use include_dir::Dir;
use std::collections::BTreeMap;
use std::path::{Component, Path};

/// Where template files come from.
pub(super) enum Source<'a> {
    Dir(&'a Path),
    Embedded(&'static Dir<'static>),
    /// Template files sent along with the definition (see `Asset::bundle`).
    Map(&'a BTreeMap<String, String>),
    /// Definitions submitted over the API carry their templates inline.
    None,
}

/// Template texts as a definition may have them: read from its source,
/// within its caps.
pub(super) struct Templates<'a> {
    pub(super) src: &'a Source<'a>,
    pub(super) limits: &'a Limits,
}

impl Templates<'_> {
    /// A template file, refused past `catalog.max_template_bytes` or with a
    /// reference to a file or URL.
    pub(super) fn read(&self, rel: &str) -> Result<String, String> {
        let text = self.src.read(rel, self.limits.template_bytes)?;
        check_template(&text, self.limits).map_err(|m| format!("{rel}: {m}"))?;
        Ok(text)
    }
}

impl Source<'_> {
    /// The file at `rel` (relative to the asset file, inside the
    /// catalogue), as bytes: at most `max` + 1 are read from a folder, so
    /// the caller's size check sees an oversized file without holding it.
    /// `what` names it in errors ("template", "scene file").
    pub(super) fn read_bytes(&self, what: &str, rel: &str, max: usize) -> Result<Vec<u8>, String> {
        let p = Path::new(rel);
        if p.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(format!(
                "{what} path \"{rel}\" must be relative and stay inside the catalogue"
            ));
        }
        match self {
            Source::Dir(d) => {
                use std::io::Read as _;
                let mut bytes = Vec::new();
                std::fs::File::open(d.join(p))
                    .and_then(|f| f.take(max as u64 + 1).read_to_end(&mut bytes))
                    .map_err(|e| format!("cannot read {what} \"{rel}\": {e}"))?;
                Ok(bytes)
            }
            Source::Embedded(d) => d
                .get_file(p)
                .map(|f| f.contents().to_vec())
                .ok_or_else(|| format!("{what} \"{rel}\" is not in the built-in catalogue")),
            Source::Map(m) => super::super::scene::from_bundle(m, rel).unwrap_or_else(|| {
                Err(format!("{what} \"{rel}\" was not sent with the definition"))
            }),
            Source::None if what == "template" => Err(format!(
                "template file \"{rel}\" cannot be read here; give the template inline"
            )),
            Source::None => Err(format!(
                "{what} \"{rel}\" cannot be read here: 3D assets come from catalogue files"
            )),
        }
    }

    /// A template's text (its size is checked by the caller).
    pub(super) fn read(&self, rel: &str, max: usize) -> Result<String, String> {
        String::from_utf8(self.read_bytes("template", rel, max)?)
            .map_err(|_| format!("template \"{rel}\" is not UTF-8 text"))
    }
}
