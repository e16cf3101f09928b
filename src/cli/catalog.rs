//! `layercake catalog`: `check` a catalogue folder with the server's loader,
//! start one with `new` (a small working asset to change into your own
//! product), and `export` an asset's live definition into one.

use crate::app::load_catalog;
use crate::catalog::{Catalog, Limits};
use crate::config::Settings;
use anyhow::{Context, anyhow, bail};
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// `catalog check`: every asset in `dir` (else the configured catalogue,
/// else the built-in demo), within the configured caps.
pub fn check(settings: &Settings, dir: Option<&Path>) -> anyhow::Result<()> {
    let catalog = match dir {
        Some(d) => Catalog::from_dir(d, &settings.catalog.limits())?,
        None => load_catalog(settings)?,
    };
    for a in catalog.assets() {
        let views: Vec<&str> = a.views.iter().map(|v| v.name.as_str()).collect();
        println!(
            "ok  {}  {}: {} attributes, views {}, {} layers, {}x{}",
            a.id,
            a.name,
            a.attributes.len(),
            views.join(","),
            a.layers.len(),
            a.width,
            a.height
        );
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The product's name, e.g. "Desk lamp" (its file is named after it).
    pub name: String,
    /// The catalogue folder to write into (made if missing).
    #[arg(long, default_value = "products")]
    pub dir: PathBuf,
}

/// `catalog new`: writes `<dir>/<slug>.json` and its templates under
/// `<dir>/<slug>/<view>/`, checks the folder with the loader, and says
/// what to run next. Never overwrites a file.
pub fn new(args: &NewArgs) -> anyhow::Result<()> {
    let slug = slug(&args.name)
        .ok_or_else(|| anyhow!("the name {:?} needs a letter or a digit", args.name))?;
    let file = args.dir.join(format!("{slug}.json"));
    let art = args.dir.join(&slug);
    for p in [&file, &art] {
        if p.exists() {
            bail!("{} exists; pick another name or remove it", p.display());
        }
    }
    let id = Uuid::new_v4();
    let definition = scaffold::definition(id, &args.name, &slug);
    let text = serde_json::to_string_pretty(&definition)? + "\n";
    for (view, layer, svg) in scaffold::TEMPLATES {
        let dir = art.join(view);
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot make {}", dir.display()))?;
        let path = dir.join(format!("{layer}.svg"));
        std::fs::write(&path, svg).with_context(|| format!("cannot write {}", path.display()))?;
    }
    std::fs::write(&file, text).with_context(|| format!("cannot write {}", file.display()))?;
    // The folder as the server will read it: a mistake here is a bug.
    Catalog::from_dir(&args.dir, &Limits::default())?;
    let dir = args.dir.display();
    let configuration = "%7B%22Colour%22%3A%22Clay%22%2C%22Trim%22%3Atrue%7D";
    println!(
        "wrote {} (asset {id}, \"{}\") and {} templates under {}/\n\nnext:\n  \
         layercake catalog check {dir}\n  \
         layercake serve --catalog {dir}      # then open http://127.0.0.1:8080/\n  \
         curl -o back.png 'http://127.0.0.1:8080/api/fast-compositor?assetId={id}&view=back&configuration={configuration}'\n\n\
         Edit {} and its templates to make it your product (docs/assets.md), check, restart serve.",
        file.display(),
        args.name,
        scaffold::TEMPLATES.len(),
        art.display(),
        file.display(),
    );
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The asset's id.
    pub asset: Uuid,
    /// The catalogue folder to write into (made if missing).
    #[arg(long, default_value = "products")]
    pub dir: PathBuf,
}

/// `catalog export`: the asset's live definition (from the data dir the
/// servers use) as `<dir>/<slug>.json` with the template files it reads.
/// Its content is unchanged, so a server reading the folder keeps the
/// same version, and from then on the file is the asset's one source of
/// truth (the API refuses to change it).
pub fn export(settings: Settings, args: &ExportArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let asset = runtime.block_on(super::live_asset(&settings, args.asset))?;
    if asset.scene.is_some() {
        bail!(
            "asset {} is a 3D asset: those are catalogue files already; copy its folder",
            asset.id
        );
    }
    let (mut json, files) = asset.bundle();
    if let Some(m) = json.as_object_mut() {
        m.remove("version");
    }
    let slug = slug(&asset.name).unwrap_or_else(|| asset.id.to_string());
    let file = args.dir.join(format!("{slug}.json"));
    if file.exists() {
        bail!("{} exists; give another --dir", file.display());
    }
    std::fs::create_dir_all(&args.dir)?;
    for (rel, text) in &files {
        let path = args.dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    std::fs::write(&file, serde_json::to_string_pretty(&json)? + "\n")?;
    println!(
        "wrote {} (asset {}, version {}) and {} template files; serve --catalog {} keeps version {}",
        file.display(),
        asset.id,
        asset.version,
        files.len(),
        args.dir.display(),
        asset.version
    );
    Ok(())
}

/// `Desk lamp` → `desk-lamp`: lowercase letters and digits, runs of
/// anything else one `-`; `None` when nothing is left.
pub(super) fn slug(name: &str) -> Option<String> {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-').to_string();
    (!out.is_empty()).then_some(out)
}

mod scaffold;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_file_names() {
        assert_eq!(slug("Desk lamp").as_deref(), Some("desk-lamp"));
        assert_eq!(slug("  Mug #2 (blue) ").as_deref(), Some("mug-2-blue"));
        assert_eq!(slug("Ça va").as_deref(), Some("a-va"));
        assert_eq!(slug("---"), None);
    }

    #[test]
    fn the_scaffold_loads_with_the_server_s_loader() {
        let dir = tempfile::tempdir().unwrap();
        let args = NewArgs {
            name: "Desk lamp".into(),
            dir: dir.path().join("products"),
        };
        new(&args).unwrap();
        let catalog = Catalog::from_dir(&args.dir, &Limits::default()).unwrap();
        let a = catalog.assets().next().unwrap();
        assert_eq!(a.name, "Desk lamp");
        assert_eq!((a.attributes.len(), a.views.len()), (2, 2));
        // A second run never overwrites.
        let again = new(&args).unwrap_err().to_string();
        assert!(again.contains("desk-lamp.json exists"), "{again}");
    }
}
