//! README's "Your own products", followed as written: every `sh` block of
//! the section runs in order (in one shell, so `$id` carries over) with the
//! real binary as `layercake`, in a fresh folder. The steps the prose asks
//! of a person are done here as it says: the server runs in the background
//! (the prose: "in another terminal"), a second `serve` replaces the first
//! (Ctrl-C), the edit adds the option the prose names, and `renders/` holds
//! one image laid out as the prose says. The port is a free one instead of
//! 8080 (LAYERCAKE_HTTP__LISTEN, which `import` reads too).

use std::path::Path;
use std::process::Command;

/// The `sh` blocks of README's "Your own products".
fn blocks() -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme.find("## Your own products").expect("the section");
    let rest = &readme[start + 3..];
    let section = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
    let mut out = Vec::new();
    let mut block: Option<String> = None;
    for line in section.lines() {
        match &mut block {
            None if line.trim_end() == "```sh" => block = Some(String::new()),
            None => {}
            Some(_) if line.trim_end() == "```" => out.extend(block.take()),
            Some(b) => {
                b.push_str(line);
                b.push('\n');
            }
        }
    }
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn png_pixel(path: &Path, x: u32, y: u32) -> [u8; 4] {
    let img = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        (img.width(), img.height()),
        (800, 800),
        "{}",
        path.display()
    );
    img.to_rgba8().get_pixel(x, y).0
}

#[test]
fn your_own_products_as_written() {
    let blocks = blocks();
    assert_eq!(
        blocks.len(),
        4,
        "start, first image, change, import: {blocks:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_layercake"), bin.join("layercake")).unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let port = free_port();

    // One script: each `layercake serve` line starts the server in the
    // background (stopping the one before) and waits until it answers.
    let mut script = String::from("set -euo pipefail\n");
    for (i, block) in blocks.iter().enumerate() {
        if i == 2 {
            script.push_str("edit_the_definition\n");
        }
        if i == 3 {
            script.push_str("make_renders\n");
        }
        for line in block.lines() {
            let line = line.replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"));
            if line.starts_with("layercake serve") {
                script.push_str(&format!(
                    "[ -n \"${{serve:-}}\" ] && kill $serve && wait $serve || true\n\
                     {line} >> serve.log 2>&1 &\nserve=$!\n\
                     for _ in $(seq 1 200); do curl -sf http://127.0.0.1:{port}/healthz >/dev/null && break; sleep 0.05; done\n"
                ));
            } else {
                script.push_str(&line);
                script.push('\n');
            }
        }
    }
    script.push_str("kill $serve; wait $serve || true\n");
    // The prose's steps: add Moss to Colour; one render of the front body.
    let helpers = format!(
        "edit_the_definition() {{ python3 - <<'PY'\n\
import json\n\
p = 'products/desk-lamp.json'\n\
d = json.load(open(p))\n\
d['attributes'][0]['values'].append({{'value': 'Moss', 'metadata': {{'color': '#6b7d4b'}}}})\n\
json.dump(d, open(p, 'w'), indent=2)\n\
PY\n}}\n\
make_renders() {{ mkdir -p renders/front/Body && cp {} renders/front/Body/Sage.png; }}\n",
        work.join("sage.png").display()
    );
    let sage = image::RgbaImage::from_pixel(800, 800, image::Rgba([1, 2, 3, 255]));
    sage.save(work.join("sage.png")).unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("{helpers}{script}"))
        .current_dir(&work)
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        )
        .env("LAYERCAKE_HTTP__LISTEN", format!("127.0.0.1:{port}"))
        .env_remove("LAYERCAKE_API_TOKEN")
        .output()
        .unwrap();
    let log = std::fs::read_to_string(work.join("serve.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "{}\n{}\nserve.log:\n{log}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The back view of Clay with its trim, and the new Moss option.
    assert_eq!(
        png_pixel(&work.join("back.png"), 400, 400),
        [0xc0, 0x60, 0x3e, 255]
    );
    assert_eq!(
        png_pixel(&work.join("back.png"), 400, 577),
        [0xd4, 0xaf, 0x37, 255],
        "the trim"
    );
    assert_eq!(
        png_pixel(&work.join("moss.png"), 400, 400),
        [0x6b, 0x7d, 0x4b, 255]
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("would register 1, unchanged 0, failed 0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("registered 1, unchanged 0, failed 0"),
        "{stdout}"
    );
    assert!(
        log.contains("asset from its catalogue file, changed"),
        "{log}"
    );
}
