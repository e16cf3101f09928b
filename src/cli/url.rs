//! `layercake url`: a signed, version-pinned image URL from the command line.
//!
//! Reads the live definition of the asset from the metadata store (the same
//! data dir or `meta.url` the servers use) to check the configuration and
//! view, pins the URL to that definition (`v`) and signs it with the first
//! key of `signing.keys`.

use crate::app::image::pinned_url;
use crate::config::Settings;
use crate::signing::Signer;
use anyhow::bail;

/// What to put in the URL.
#[derive(Debug, clap::Args)]
pub struct UrlArgs {
    #[command(flatten)]
    pub of: super::ViewArgs,
    /// Output width in pixels (at most http.max_dimension); alone, the
    /// height follows the canvas's aspect ratio.
    #[arg(long)]
    pub width: Option<u32>,
    /// Output height in pixels (at most http.max_dimension); alone, the
    /// width follows the canvas's aspect ratio.
    #[arg(long)]
    pub height: Option<u32>,
    /// png, jpg, webp, avif.
    #[arg(long)]
    pub format: Option<String>,
    /// Prefix for the printed URL, e.g. https://images.example.com.
    #[arg(long, default_value = "")]
    pub base: String,
}

pub fn run(settings: Settings, args: UrlArgs) -> anyhow::Result<()> {
    let signer = Signer::new(&settings.signing.keys).map_err(anyhow::Error::msg)?;
    if !signer.can_sign() {
        eprintln!("warning: signing.keys is empty; the URL is not signed");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let url = runtime.block_on(async {
        let asset = super::live_asset(&settings, args.of.asset).await?;
        let (json, _, view) = args.of.resolve(&asset)?;
        let view = &asset.views[view];
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("assetId", &asset.id.to_string());
        q.append_pair("configuration", &json.to_string());
        q.append_pair(
            "stageConfiguration",
            &serde_json::Value::Object(view.stage.clone()).to_string(),
        );
        if let Some(w) = args.width {
            q.append_pair("width", &w.to_string());
        }
        if let Some(h) = args.height {
            q.append_pair("height", &h.to_string());
        }
        if let Some(f) = &args.format {
            if crate::compose::Format::parse(f).is_none() {
                bail!("--format {f}: use png, jpg, webp or avif");
            }
            q.append_pair("format", f);
        }
        Ok::<_, anyhow::Error>(pinned_url(
            &signer,
            &asset,
            &settings.http.cache_buster,
            &q.finish(),
        ))
    })?;
    println!("{}{url}", args.base.trim_end_matches('/'));
    Ok(())
}
