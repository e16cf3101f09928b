//! `--output`: the run's image URLs (pinned, signed when signing is
//! configured, behind `--base`), one line each, as CSV or JSONL.

use super::{Planned, PrefetchArgs, Work};
use anyhow::Context;
use serde_json::Value;
use std::path::Path;

/// The image URLs, one line each, as CSV or JSONL (by the file's
/// extension), written to a temporary file and renamed into place.
pub(super) fn write_output(
    args: &PrefetchArgs,
    path: &Path,
    work: &[Work],
    plans: &[Planned],
) -> anyhow::Result<()> {
    let jsonl = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("jsonl") || e.eq_ignore_ascii_case("ndjson"));
    let mut out = Vec::new();
    if !jsonl {
        out.extend_from_slice(b"id,assetId,view,width,format,configuration,url\n");
    }
    let mut n = 0;
    for (w, p) in work.iter().zip(plans) {
        for i in &p.images {
            n += 1;
            let url = format!("{}{}", args.base, i.url);
            if jsonl {
                let line = serde_json::json!({
                    "id": i.id, "assetId": w.asset.id, "view": i.view, "width": i.width,
                    "format": i.format, "configuration": i.configuration, "url": url,
                });
                out.extend_from_slice(line.to_string().as_bytes());
                out.push(b'\n');
            } else {
                let mut row = csv::Writer::from_writer(Vec::new());
                row.write_record([
                    i.id.clone().unwrap_or_default(),
                    w.asset.id.to_string(),
                    i.view.clone(),
                    i.width.map(|x| x.to_string()).unwrap_or_default(),
                    i.format.clone(),
                    Value::Object(i.configuration.clone()).to_string(),
                    url,
                ])?;
                out.extend_from_slice(&row.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?);
            }
        }
    }
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, &out).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("write {}", path.display()))?;
    println!("wrote {n} image URLs to {}", path.display());
    Ok(())
}
