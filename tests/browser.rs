//! The product-listing page and the carousel embed in a real browser:
//! headless Chromium (Debian's `chromium`), driven by Playwright
//! (`tests/browser/check.mjs`, `playwright-core` from npm), against the
//! real binary with signing required, after `layercake prefetch` warmed
//! the demo catalogue's layers. `.ci/run` installs Chromium and runs
//! `npm ci` in `tests/browser`; screenshots land in `target/browser/`.

mod common;

use common::start_binary;
use std::path::Path;
use std::process::Command;

#[test]
fn plp_and_carousel_in_headless_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("layercake.toml");
    // Signed URLs only: the page and the embed must sign what they link.
    std::fs::write(
        &config,
        "[signing]\nkeys = [\"browser-test-signing-key-0123456789abcdef\"]\nrequired = true\n",
    )
    .unwrap();
    // Warm the layers first, as a shop does before a launch: the pages then
    // only compose, and no image waits past the miss budget.
    let warm = Command::new(env!("CARGO_BIN_EXE_layercake"))
        .args(["prefetch", "--asset", common::SOFA, "--all", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .expect("run layercake prefetch");
    assert!(
        warm.status.success(),
        "prefetch: {}",
        String::from_utf8_lossy(&warm.stderr)
    );
    let (_serve, line) = start_binary(
        &["serve", "--listen", "127.0.0.1:0"],
        &config,
        &dir.path().join("data"),
        "open http://",
    );
    let base = line
        .split("open http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .map(|a| format!("http://{a}"))
        .expect("address in the log line");
    let out = root.join("target/browser");
    let report = common::browser_check("check.mjs", &[&base, &out.display().to_string()]);
    assert!(report["plp"]["tiles"].as_u64().unwrap() >= 6, "{report}");
    assert!(
        report["carousel"]["views"].as_array().unwrap().len() >= 2,
        "{report}"
    );
    for shot in ["plp.png", "carousel.png", "spin.png"] {
        let meta = std::fs::metadata(out.join(shot)).expect("screenshot");
        assert!(meta.len() > 1000, "{shot} is {} bytes", meta.len());
        // Painted: at least a tenth of the page differs clearly from its
        // top-left corner (a blank page would not).
        let img = image::open(out.join(shot)).expect("a PNG").to_rgba8();
        let corner = img.get_pixel(0, 0).0;
        let far = img
            .pixels()
            .filter(|p| p.0.iter().zip(corner).any(|(a, b)| a.abs_diff(b) > 48))
            .count();
        assert!(
            far * 10 > img.pixels().len(),
            "{shot}: only {far} of {} pixels are painted",
            img.pixels().len()
        );
    }
}
