//! Tests of the settings: loading, merging, and every section's checks.
// figment's Jail hands out its own (large) error type; fine in tests.
#![allow(clippy::result_large_err)]

use super::*;

fn no_env() -> Env {
    Env::prefixed("LAYERCAKE_TEST_NOTHING_")
}

#[test]
fn shipped_file_is_complete_and_valid() {
    // deny_unknown_fields + no serde defaults: every key is in the file.
    let s = Settings::load_from(None, &Overrides::default(), no_env()).unwrap();
    assert_eq!(s.http.listen, "127.0.0.1:8080");
    assert_eq!(s.storage.data_dir, PathBuf::from("./data"));
    // The loader's defaults (catalogue checks, tests) are the file's.
    assert_eq!(s.catalog.limits(), crate::catalog::Limits::default());
}

#[test]
fn environment_and_flags_override_in_order() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("LAYERCAKE_HTTP__LISTEN", "127.0.0.1:9000");
        jail.set_env("LAYERCAKE_CACHE__LAYER_BYTES", "1024");
        let s = Settings::load(None, &Overrides::default()).unwrap();
        assert_eq!(s.http.listen, "127.0.0.1:9000");
        assert_eq!(s.cache.layer_bytes, 1024);
        // Lists and booleans, as the README spells them.
        let (new, old) = ("n".repeat(32), "o".repeat(32));
        jail.set_env("LAYERCAKE_SIGNING__KEYS", format!(r#"["{new}", "{old}"]"#));
        jail.set_env("LAYERCAKE_SIGNING__REQUIRED", "true");
        let s = Settings::load(None, &Overrides::default()).unwrap();
        assert_eq!(s.signing.keys, [new, old]);
        assert!(s.signing.required);
        let flags = Overrides {
            listen: Some("127.0.0.1:9100".into()),
            data_dir: None,
            catalog: None,
        };
        assert_eq!(
            Settings::load(None, &flags).unwrap().http.listen,
            "127.0.0.1:9100"
        );
        jail.set_env("LAYERCAKE_HTTP__LISTN", "x");
        let e = Settings::load(None, &Overrides::default())
            .unwrap_err()
            .to_string();
        // Named as the variable itself, with the key it was meant to be.
        assert!(e.contains("LAYERCAKE_HTTP__LISTN"), "{e}");
        assert!(e.contains("did you mean LAYERCAKE_HTTP__LISTEN?"), "{e}");
        Ok(())
    });
}

#[test]
fn paths_in_a_file_are_relative_to_its_folder() {
    figment::Jail::expect_with(|jail| {
        jail.create_dir("conf")?;
        jail.create_file(
            "conf/c.toml",
            "[storage]\ndata_dir = \"../state\"\n[catalog]\ndir = \"assets\"\n",
        )?;
        let s = Settings::load(Some(Path::new("conf/c.toml")), &Overrides::default()).unwrap();
        assert_eq!(s.storage.data_dir, Path::new("conf/../state"));
        assert_eq!(Path::new(&s.catalog.dir), Path::new("conf/assets"));
        // Absolute paths stay; the environment and flags are relative to
        // the working directory.
        jail.create_file("conf/abs.toml", "[catalog]\ndir = \"/srv/assets\"\n")?;
        let s = Settings::load(Some(Path::new("conf/abs.toml")), &Overrides::default()).unwrap();
        assert_eq!(s.catalog.dir, "/srv/assets");
        jail.set_env("LAYERCAKE_CATALOG__DIR", "mine");
        let flags = Overrides {
            listen: None,
            data_dir: Some(PathBuf::from("here")),
            catalog: None,
        };
        let s = Settings::load(Some(Path::new("conf/c.toml")), &flags).unwrap();
        assert_eq!(s.catalog.dir, "mine");
        assert_eq!(s.storage.data_dir, Path::new("here"));
        Ok(())
    });
}

#[test]
fn the_worker_token_variable_is_not_a_setting_and_typos_get_the_nearest_key() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("LAYERCAKE_WORKER_TOKEN", "lc_worker_abc");
        Settings::load(None, &Overrides::default()).expect("other commands start with it set");
        jail.set_env("LAYERCAKE_RENDER_CONCURRENCY", "2");
        let e = Settings::load(None, &Overrides::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "configuration: LAYERCAKE_RENDER_CONCURRENCY: unknown key; did you mean LAYERCAKE_RENDER__CONCURRENCY?"
        );
        jail.clear_env();
        jail.set_env("LAYERCAKE_RENDER__CONCURENCY", "2");
        let e = Settings::load(None, &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("LAYERCAKE_RENDER__CONCURENCY: unknown key; did you mean LAYERCAKE_RENDER__CONCURRENCY?"), "{e}");
        jail.clear_env();
        jail.create_file("c.toml", "[http]\nmax_dimenson = 3\n")?;
        let e = Settings::load(Some(Path::new("c.toml")), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with("c.toml: http.max_dimenson: unknown key; did you mean http.max_dimension?"),
            "{e}"
        );
        Ok(())
    });
}

#[test]
fn bad_values_name_their_key() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("bad.toml", "[compose]\ndefault_format = \"gif\"\n")?;
        let e = Settings::load(Some(Path::new("bad.toml")), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("compose.default_format"), "{e}");
        jail.create_file("mem.toml", "[meta]\nurl = \"sqlite::memory:\"\n")?;
        let e = Settings::load(Some(Path::new("mem.toml")), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("meta.url"),
            "in-memory records over a persistent store: {e}"
        );
        jail.create_file("bad2.toml", "[http]\nmax_dimension = \"big\"\n")?;
        let e = Settings::load(Some(Path::new("bad2.toml")), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_dimension"), "{e}");
        // PostgreSQL is accepted; other databases are named, without
        // their password.
        jail.create_file("pg.toml", "[meta]\nurl = \"postgres://u:pw@db:5432/lc\"\n")?;
        let s = Settings::load(Some(Path::new("pg.toml")), &Overrides::default()).unwrap();
        assert_eq!(s.meta_url(), "postgres://u:pw@db:5432/lc");
        jail.create_file("my.toml", "[meta]\nurl = \"mysql://u:pw@db/lc\"\n")?;
        let e = Settings::load(Some(Path::new("my.toml")), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("meta.url") && e.contains("postgres://"), "{e}");
        assert!(!e.contains("pw"), "{e}");
        jail.create_file("conn.toml", "[meta]\nmax_connections = 0\n")?;
        let e = Settings::load(Some(Path::new("conn.toml")), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("meta.max_connections"), "{e}");
        // The size policy: each bad value names its key.
        for (toml, key) in [
            ("[sizes]\nladder = [0, 320]\n", "sizes.ladder"),
            ("[sizes]\nladder = [99999]\n", "sizes.ladder"),
            ("[sizes]\nquality_step = 0\n", "sizes.quality_step"),
            ("[sizes]\ncrop_step = 0\n", "sizes.crop_step"),
            ("[sizes.presets.\"a b\"]\nwidth = 10\n", "sizes.presets.a b"),
            ("[sizes.presets.x]\nwidth = 0\n", "sizes.presets.x.width"),
            (
                "[sizes.presets.x]\nfit = \"stretch\"\n",
                "sizes.presets.x.fit",
            ),
            (
                "[sizes.presets.x]\nformat = \"gif\"\n",
                "sizes.presets.x.format",
            ),
            (
                "[sizes.presets.x]\nquality = 101\n",
                "sizes.presets.x.quality",
            ),
        ] {
            jail.create_file("sizes.toml", toml)?;
            let e = Settings::load(Some(Path::new("sizes.toml")), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{toml}: {e}");
        }
        jail.create_file(
            "ok.toml",
            "[sizes.presets.hero]\nwidth = 1600\nformat = \"auto\"\n",
        )?;
        let s = Settings::load(Some(Path::new("ok.toml")), &Overrides::default()).unwrap();
        assert_eq!(s.sizes.presets["hero"].width, Some(1600));
        assert!(
            s.sizes.presets.contains_key("plp-tile"),
            "the shipped presets stay"
        );
        Ok(())
    });
}

fn shipped() -> Settings {
    Settings::load_from(None, &Overrides::default(), no_env()).unwrap()
}

type Break = fn(&mut Settings);

/// Every rule, broken alone on the shipped settings: refused, naming its key.
#[test]
fn each_rule_names_its_key() {
    let cases: &[(&str, Break)] = &[
        ("http.listen", |s| s.http.listen = "nowhere".into()),
        ("http.max_dimension", |s| s.http.max_dimension = 0),
        ("http.request_timeout_secs", |s| {
            s.http.request_timeout_secs = 0
        }),
        ("http.max_query_bytes", |s| s.http.max_query_bytes = 255),
        ("http.max_body_bytes", |s| s.http.max_upload_bytes = 1023),
        ("http.header_read_timeout_secs", |s| {
            s.http.header_read_timeout_secs = 0
        }),
        ("http.send_timeout_secs", |s| s.http.send_timeout_secs = 0),
        ("http.max_connections", |s| s.http.max_connections = 0),
        ("http.io_threads", |s| s.http.io_threads = 257),
        ("http.ops_listen", |s| s.http.ops_listen = "9090".into()),
        ("http.public_url", |s| {
            s.http.public_url = "https://x/?q=1".into()
        }),
        ("http.public_url", |s| s.http.public_url = "ftp://x".into()),
        ("http.trusted_proxies", |s| {
            s.http.trusted_proxies = vec!["10.0.0.0/99".into()]
        }),
        ("http.cache_buster", |s| s.http.cache_buster = "a b".into()),
        ("http.ignored_params", |s| {
            s.http.ignored_params = vec!["utm_*x".into()]
        }),
        ("http.ignored_params", |s| {
            s.http.ignored_params = vec![String::new()]
        }),
        ("catalog.max_views", |s| s.catalog.max_scene_bytes = 0),
        ("catalog.max_views", |s| s.catalog.max_compose_bytes = 0),
        ("meta.url", |s| s.meta.url = "mysql://db".into()),
        ("meta.max_connections", |s| s.meta.max_connections = 0),
        ("meta.url", |s| s.meta.url = "sqlite::memory:".into()),
        ("storage.url", |s| s.storage.url = "s3:///x".into()),
        ("storage.request_timeout_ms", |s| {
            s.storage.connect_timeout_ms = 0
        }),
        ("storage.composite_sweep_secs", |s| {
            s.storage.composite_sweep_secs = 0
        }),
        ("render.timeout_secs", |s| s.render.miss_wait_secs = 0),
        ("render.max_output_bytes", |s| {
            s.render.max_output_bytes = 1023
        }),
        ("render.max_pixels", |s| s.render.max_pixels = 4095),
        ("render.backend", |s| s.render.backend = "farm".into()),
        ("render.backends.farm.url", |s| {
            s.render.backends.insert(
                "farm".into(),
                BackendSettings {
                    kind: "http".into(),
                    url: "farm:80".into(),
                    ..BackendSettings::default()
                },
            );
        }),
        ("render.backends.b.device", |s| {
            s.render.backends.insert(
                "b".into(),
                BackendSettings {
                    kind: "blender".into(),
                    device: Some("tpu".into()),
                    ..BackendSettings::default()
                },
            );
        }),
        ("http.request_timeout_secs", |s| {
            s.http.request_timeout_secs = s.render.miss_wait_secs;
        }),
        ("signing.keys[1]", |s| {
            s.signing.keys = vec!["k".repeat(32), "short".into()]
        }),
        ("signing.required", |s| s.signing.required = true),
        ("sizes.ladder", |s| s.sizes.ladder = vec![320, 0]),
        ("sizes.quality_step", |s| s.sizes.quality_step = 101),
        ("sizes.crop_step", |s| s.sizes.crop_step = 0),
        ("jobs.lease_secs", |s| s.jobs.lease_secs = 0),
        ("jobs.scheduling_timeout_secs", |s| {
            s.jobs.scheduling_timeout_secs = 0
        }),
        ("jobs.poll_ms", |s| s.jobs.poll_ms = 9),
        ("jobs.max_attempts", |s| s.jobs.max_attempts = 0),
        ("jobs.max_pending_per_org", |s| {
            s.jobs.max_pending_per_org = 0
        }),
        ("webhooks.max_attempts", |s| s.webhooks.max_attempts = 0),
        ("webhooks.concurrency", |s| {
            s.webhooks.per_org_concurrency = 0
        }),
        ("webhooks.timeout_secs", |s| s.webhooks.timeout_secs = 0),
        ("compose.default_format", |s| {
            s.compose.default_format = "gif".into()
        }),
        ("compose.avif_quality", |s| s.compose.avif_quality = 0),
        ("compose.nice", |s| s.compose.nice = 20),
        ("log.format", |s| s.log.format = "xml".into()),
    ];
    for (key, break_it) in cases {
        let mut s = shipped();
        break_it(&mut s);
        let e = s.validate().unwrap_err();
        assert_eq!(e.key(), Some(*key), "{e}");
        assert!(
            e.to_string()
                .starts_with(&format!("configuration: {key}: ")),
            "{e}"
        );
    }
}

/// A Blender backend is checked by its settings only: validation neither
/// looks for the program nor makes its work folder (that happens when a
/// process starts, in `Renderers::from_settings`).
#[test]
fn render_backends_are_checked_without_being_built() {
    let mut s = shipped();
    s.render.backends.insert(
        "b".into(),
        BackendSettings {
            kind: "blender".into(),
            command: vec!["/nonexistent/blender".into()],
            ..BackendSettings::default()
        },
    );
    s.render.backend = "b".into();
    assert_eq!(s.validate(), Ok(()));
}

/// A sentence from a lower module keeps its key, or is put under its
/// section; its text is unchanged either way.
#[test]
fn lower_modules_sentences_keep_their_key() {
    let cases = [
        (
            "render",
            "render.backend: \"x\" is unknown",
            "render.backend",
        ),
        (
            "render",
            "render.backends.b: a private folder: denied",
            "render.backends.b",
        ),
        ("render", "no key here", "render"),
        ("signing.keys", "some words: then a colon", "signing.keys"),
    ];
    for (section, sentence, key) in cases {
        let e = SettingsError::named(section)(sentence.to_string());
        assert_eq!(e.key(), Some(key), "{sentence}");
        assert!(e.to_string().ends_with(sentence), "{e}");
    }
}
