//! `layercake prefetch` through the real binary: the plan, the renders of
//! the distinct layers only, a second run that does nothing, feed errors
//! with their line and column, resume after Ctrl-C, the URL output, and
//! the same against a server over HTTP.

mod common;

use common::{SOFA, solid_png, start_binary};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn prefetch(args: &[&str], config: Option<&Path>, data: &Path) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_layercake"));
    c.arg("prefetch").args(args).arg("--data-dir").arg(data);
    if let Some(config) = config {
        c.arg("--config").arg(config);
    }
    c.env("NO_COLOR", "1")
        .output()
        .expect("run layercake prefetch")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `(layers, cached, to render)` from the plan line.
fn plan_of(stdout: &str) -> (u64, u64, u64) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("plan "))
        .unwrap_or_else(|| panic!("no plan line:\n{stdout}"));
    let n = |after: &str| -> u64 {
        let rest = line.split(after).next().unwrap();
        rest.rsplit(' ')
            .find(|w| !w.is_empty())
            .unwrap()
            .parse()
            .unwrap()
    };
    (n(" distinct layers"), n(" cached"), n(" to render"))
}

/// The `rendered` count of the summary line.
fn rendered_of(stdout: &str) -> u64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("done:") || l.starts_with("interrupted:"))
        .unwrap_or_else(|| panic!("no summary:\n{stdout}"));
    let before = line.split(" rendered").next().unwrap();
    before.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn the_demo_catalogue_renders_its_distinct_layers_once_then_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let output = dir.path().join("urls.csv");
    let first = prefetch(
        &[
            "--asset",
            SOFA,
            "--all",
            "--sizes",
            "400",
            "--output",
            output.to_str().unwrap(),
        ],
        None,
        &data,
    );
    let (out, err) = text(&first);
    assert!(first.status.success(), "{out}\n{err}");
    assert!(out.contains("360 configurations × 4 views"), "{out}");
    let (layers, cached, todo) = plan_of(&out);
    assert_eq!(cached, 0);
    assert_eq!(todo, layers);
    assert!(
        (60..=120).contains(&layers),
        "about 25 a view, not 1440: {layers}"
    );
    assert_eq!(
        rendered_of(&out),
        todo,
        "the jobs rendered what the plan said"
    );
    assert!(err.contains("renders: "), "progress lines: {err}");
    // The URL feed: one row per configuration × view, signed-ready paths.
    let csv = std::fs::read_to_string(&output).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], "id,assetId,view,width,format,configuration,url");
    assert_eq!(rows.len(), 1 + 360 * 4);
    assert!(
        rows[1].contains("/api/fast-compositor?") && rows[1].contains("&v=1.0"),
        "{}",
        rows[1]
    );

    let second = prefetch(&["--asset", SOFA, "--all"], None, &data);
    let (out, err) = text(&second);
    assert!(second.status.success(), "{out}\n{err}");
    assert_eq!(plan_of(&out), (layers, layers, 0), "{out}");
    assert_eq!(rendered_of(&out), 0);
}

#[test]
fn where_views_dry_run_and_composites() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = [
        "--asset",
        SOFA,
        "--all",
        "--where",
        "Body=Navy,Rust",
        "--where",
        "Skirt=false",
        "--views",
        "front",
        "--sizes",
        "200",
        "--formats",
        "png,webp",
        "--composites",
    ];
    let dry: Vec<&str> = args.iter().copied().chain(["--dry-run"]).collect();
    let o = prefetch(&dry, None, &data);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    // 2 bodies × 6 pillows × 5 legs × no skirt = 60 configurations.
    assert!(out.contains("60 configurations × 1 views"), "{out}");
    assert!(
        out.contains("120 composites, 0 cached, 120 to encode"),
        "{out}"
    );
    assert!(out.contains("dry run"), "{out}");
    let (layers, _, todo) = plan_of(&out);
    let again = prefetch(&dry, None, &data);
    assert_eq!(
        plan_of(&text(&again).0),
        (layers, 0, todo),
        "a dry run renders nothing"
    );

    let o = prefetch(&args, None, &data);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(
        out.contains("120 composites (0 were cached, 120 encoded, 0 failed)"),
        "{out}"
    );
    let o = prefetch(&args, None, &data);
    let (out, _) = text(&o);
    assert!(
        out.contains("120 composites, 120 cached, 0 to encode"),
        "{out}"
    );
    assert!(
        out.contains("120 composites (120 were cached, 0 encoded, 0 failed)"),
        "{out}"
    );
    assert_eq!(rendered_of(&out), 0);
}

#[test]
fn feed_errors_name_the_line_and_column_and_render_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let feed = dir.path().join("feed.csv");
    std::fs::write(
        &feed,
        "id,Body,Legs\nA1,Navy,Walnut Block\nA2,Rust,Oak Stump\n",
    )
    .unwrap();
    let o = prefetch(
        &["--asset", SOFA, "--feed", feed.to_str().unwrap()],
        None,
        &data,
    );
    let (out, err) = text(&o);
    assert!(!o.status.success());
    assert!(err.contains("line 3, column 3 (Legs)"), "{err}");
    assert!(err.contains("Oak Stump"), "{err}");
    assert!(!out.contains("plan "), "nothing planned or rendered: {out}");

    let jsonl = dir.path().join("feed.jsonl");
    std::fs::write(
        &jsonl,
        format!("{{\"assetId\":\"{SOFA}\",\"configuration\":{{\"Body\":\"Navy\"}}}}\n{{\"assetId\":\"{SOFA}\",\"configuration\":{{\"Colour\":\"Red\"}}}}\n"),
    )
    .unwrap();
    let o = prefetch(&["--feed", jsonl.to_str().unwrap()], None, &data);
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(err.contains("line 2, column configuration"), "{err}");
    assert!(err.contains("unknown attribute \"Colour\""), "{err}");

    // The good lines alone: planned and rendered, the ids carried through.
    std::fs::write(&feed, "id,Body,Legs\nA1,Navy,Walnut Block\nA2,Rust,\n").unwrap();
    let urls = dir.path().join("urls.jsonl");
    let o = prefetch(
        &[
            "--asset",
            SOFA,
            "--feed",
            feed.to_str().unwrap(),
            "--views",
            "front",
            "--output",
            urls.to_str().unwrap(),
        ],
        None,
        &data,
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("2 configurations × 1 views"), "{out}");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&urls)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["id"], "A1");
    assert_eq!(
        lines[1]["configuration"],
        serde_json::json!({"Body": "Rust"})
    );
}

/// A catalogue with one asset rendered by a slow command (so that a run
/// can be interrupted halfway): 12 options × 2 layers.
fn slow_catalogue(dir: &Path) -> std::path::PathBuf {
    let cat = dir.join("catalog");
    std::fs::create_dir_all(&cat).unwrap();
    let png = dir.join("layer.png");
    std::fs::write(&png, solid_png(16, 16, [0, 0, 0, 0])).unwrap();
    let options: Vec<String> = (0..12)
        .map(|i| format!("{{\"value\": \"O{i}\"}}"))
        .collect();
    std::fs::write(
        cat.join("tile.json"),
        format!(
            r#"{{"id": "5b0c8a53-9c1e-4d7a-8a55-0f6b2e9c4d11", "name": "Tile", "version": 1, "width": 16, "height": 16,
               "renderer": "slow",
               "attributes": [{{"name": "Pattern", "type": "string", "default": "O0", "values": [{}]}}],
               "views": [{{"name": "top", "stage": {{"Camera": 0}}}}],
               "layers": [
                 {{"id": "6b0c8a53-9c1e-4d7a-8a55-0f6b2e9c4d11", "name": "Base", "dependsOn": ["Pattern"], "render": {{"template": "<svg xmlns='http://www.w3.org/2000/svg' width='16' height='16'/>"}}}},
                 {{"id": "7b0c8a53-9c1e-4d7a-8a55-0f6b2e9c4d11", "name": "Glaze", "dependsOn": ["Pattern"], "render": {{"template": "<svg xmlns='http://www.w3.org/2000/svg' width='16' height='16'/>"}}}}
               ]}}"#,
            options.join(", ")
        ),
    )
    .unwrap();
    let config = dir.join("layercake.toml");
    std::fs::write(
        &config,
        format!(
            "[catalog]\ndir = \"{}\"\n[render]\nconcurrency = 2\n[render.backends.slow]\nkind = \"command\"\ncommand = [\"sh\", \"-c\", \"cat >/dev/null; sleep 0.4; cat '{}'\"]\n",
            cat.display(),
            png.display()
        ),
    )
    .unwrap();
    config
}

#[test]
fn ctrl_c_keeps_what_is_done_and_the_next_run_finishes_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = slow_catalogue(dir.path());
    let asset = "5b0c8a53-9c1e-4d7a-8a55-0f6b2e9c4d11";
    let mut child = Command::new(env!("CARGO_BIN_EXE_layercake"))
        .args(["prefetch", "--asset", asset, "--all", "--data-dir"])
        .arg(&data)
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once a render is done (24 at 2 × 0.4 s ≈ 5 s in all), as the
    // progress lines on stderr say.
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("a progress line with a finished render");
        let done = line
            .strip_prefix("renders: ")
            .and_then(|r| r.split('/').next())
            .and_then(|n| n.parse::<u32>().ok());
        if done.is_some_and(|n| n >= 1) {
            break;
        }
    }
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    common::eventually_blocking("prefetch stops on SIGINT", || child.try_wait().unwrap());
    let first = child.wait_with_output().unwrap();
    let err = reader.join().unwrap();
    let out = String::from_utf8_lossy(&first.stdout).into_owned();
    assert!(!first.status.success(), "interrupted is a failure: {out}");
    assert!(out.contains("interrupted:"), "{out}\n{err}");
    let (layers, _, _) = plan_of(&out);
    assert_eq!(layers, 24);
    let done = rendered_of(&out);
    assert!(
        done > 0 && done < 24,
        "interrupted halfway: {done} of 24\n{out}\n{err}"
    );

    let second = prefetch(&["--asset", asset, "--all"], Some(&config), &data);
    let (out, err) = text(&second);
    assert!(second.status.success(), "{out}\n{err}");
    let (_, cached, todo) = plan_of(&out);
    assert!(cached >= done, "what was done is kept: {cached} < {done}");
    assert_eq!(cached + todo, 24);
    assert_eq!(rendered_of(&out), todo, "{out}");
    let third = prefetch(&["--asset", asset, "--all"], Some(&config), &data);
    assert_eq!(plan_of(&text(&third).0), (24, 24, 0));
}

#[tokio::test]
async fn against_a_server_with_a_private_token() {
    let dir = tempfile::tempdir().unwrap();
    let (config, data) = (dir.path().join("c.toml"), dir.path().join("data"));
    std::fs::write(&config, "").unwrap();
    let token = Command::new(env!("CARGO_BIN_EXE_layercake"))
        .args(["token", "create", "--name", "prefetch", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(token.status.success());
    let token = String::from_utf8_lossy(&token.stdout).trim().to_string();
    let (_serve, line) = start_binary(
        &["serve", "--listen", "127.0.0.1:0"],
        &config,
        &data,
        "open http://",
    );
    let base = line
        .split("open http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .map(|a| format!("http://{a}"))
        .unwrap();
    let elsewhere = dir.path().join("unused");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "--server",
            &base,
            "--token",
            &token,
            "--asset",
            SOFA,
            "--all",
            "--where",
            "Legs=Brass Cone",
            "--views",
            "front",
            "--sizes",
            "256",
            "--formats",
            "webp",
            "--composites",
        ];
        args.extend_from_slice(extra);
        prefetch(&args, None, &elsewhere)
    };
    let o = run(&[]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("72 configurations × 1 views"), "{out}");
    let (layers, cached, todo) = plan_of(&out);
    assert_eq!((cached, todo), (0, layers));
    assert_eq!(rendered_of(&out), todo);
    assert!(
        out.contains("72 composites (0 were cached, 72 encoded, 0 failed)"),
        "{out}"
    );
    let o = run(&[]);
    let (out, _) = text(&o);
    assert_eq!(plan_of(&out), (layers, layers, 0), "{out}");
    assert!(
        out.contains("72 composites, 72 cached, 0 to encode"),
        "{out}"
    );
    // A wrong token is refused with the server's reason.
    let o = prefetch(
        &[
            "--server",
            &base,
            "--token",
            "nope",
            "--asset",
            SOFA,
            "--all",
            "--dry-run",
        ],
        None,
        &elsewhere,
    );
    assert!(!o.status.success());
    assert!(text(&o).1.contains("401"), "{}", text(&o).1);
}
