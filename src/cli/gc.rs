//! `layercake gc [--dry-run]`: removes the layers and composites of asset
//! versions that are no longer live, and their records, and says what it
//! removed. Run it against the shared metadata store and object store (the
//! same settings as the servers).

use crate::app::open_stores;
use crate::config::Settings;
use crate::service::{FileService, gc};
use std::sync::Arc;

pub fn run(settings: Settings, dry_run: bool, json: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (meta, store) = open_stores(&settings, false).await?;
        let files = FileService::new(Arc::clone(&meta), store.clone(), settings.render.max_pixels);
        let report = gc::collect(&meta, &store, &files, dry_run).await;
        meta.close().await;
        let report = report?;
        if json {
            println!("{}", serde_json::to_string_pretty(&report)?);
            return Ok(());
        }
        let verb = if dry_run { "would remove" } else { "removed" };
        for f in &report.folders {
            println!("{verb} {}/ ({} objects, {} bytes)", f.prefix, f.objects, f.bytes);
        }
        println!(
            "{verb} {} objects ({} bytes) in {} stale version folders, {} layer records and {} file records; {} assets checked in {}",
            report.objects,
            report.bytes,
            report.folders.len(),
            report.layer_records,
            report.file_records,
            report.assets,
            store.url()
        );
        Ok(())
    })
}
