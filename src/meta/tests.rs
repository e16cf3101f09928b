use super::*;

async fn memory() -> Meta {
    Meta::open("sqlite::memory:", 1).await.unwrap()
}

/// The stores every test runs against: in-memory SQLite, and a fresh
/// PostgreSQL database when `LC_TEST_POSTGRES_URL` names a server (as
/// `.ci/run` does).
pub(super) async fn stores() -> Vec<Meta> {
    let mut all = vec![memory().await];
    if let Ok(base) = std::env::var("LC_TEST_POSTGRES_URL") {
        let url = create_scratch_database(&base).await.unwrap();
        all.push(Meta::open(&url, 4).await.unwrap());
    }
    all
}

pub(super) fn layer(meta: &Meta, asset: Uuid, key: &str, config_hash: &str) -> LayerRow {
    LayerRow {
        id: Uuid::new_v4(),
        org_id: DEFAULT_ORG,
        asset_id: asset,
        asset_version: 1,
        asset_layer: Uuid::new_v4().to_string(),
        layer_config: "{}".into(),
        layer_config_hash: config_hash.into(),
        stage_id: None,
        stage_config: "{\"Camera\":0}".into(),
        stage_config_hash: "s0".into(),
        metadata: "{}".into(),
        job_id: None,
        task_id: None,
        file_id: Uuid::new_v4(),
        branch: "main".into(),
        format: "png".into(),
        width: 10,
        height: 10,
        layer_key: key.into(),
        source: "render".into(),
        created_at: meta.now(),
    }
}

#[tokio::test]
async fn layers_filter_count_and_page_in_creation_order() {
    for meta in stores().await {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut ids = Vec::new();
        for i in 0..5 {
            let l = layer(
                &meta,
                if i < 3 { a } else { b },
                &format!("k{i}"),
                if i % 2 == 0 { "even" } else { "odd" },
            );
            ids.push(l.id);
            meta.insert_layer(&l).await.unwrap();
        }
        let all = LayerFilter::default();
        let (n, page) = meta
            .layers(
                DEFAULT_ORG,
                &all,
                Some(Window {
                    offset: 1,
                    limit: 2,
                    descending: false,
                }),
            )
            .await
            .unwrap();
        assert_eq!(n, 5);
        assert_eq!(page.iter().map(|l| l.id).collect::<Vec<_>>(), ids[1..3]);
        let (_, desc) = meta
            .layers(
                DEFAULT_ORG,
                &all,
                Some(Window {
                    offset: 0,
                    limit: 1,
                    descending: true,
                }),
            )
            .await
            .unwrap();
        assert_eq!(desc[0].id, ids[4]);
        let f = LayerFilter {
            asset_id: Some(a),
            layer_config_hash: Some("even".into()),
            ..LayerFilter::default()
        };
        let (n, rows) = meta.layers(DEFAULT_ORG, &f, None).await.unwrap();
        assert_eq!((n, rows.len()), (2, 2));
        assert_eq!(
            meta.layer(DEFAULT_ORG, ids[3]).await.unwrap().layer_key,
            "k3"
        );
        assert!(
            meta.layer(Uuid::new_v4(), ids[3])
                .await
                .unwrap_err()
                .is_not_found(),
            "another org sees nothing"
        );
    }
}

#[tokio::test]
async fn files_are_one_record_per_content() {
    for meta in stores().await {
        let f = FileRow {
            id: Uuid::new_v4(),
            org_id: DEFAULT_ORG,
            user_id: None,
            filename: "a.png".into(),
            size: 3,
            hash: "blake3-abc".into(),
            extension: "png".into(),
            mime_type: "image/png".into(),
            path: "files/ab/abc".into(),
            created_at: meta.now(),
        };
        let first = meta.insert_file(&f).await.unwrap();
        let again = meta
            .insert_file(&FileRow {
                id: Uuid::new_v4(),
                filename: "b.png".into(),
                ..f.clone()
            })
            .await
            .unwrap();
        assert_eq!(first, again, "same content, same record");
        assert_eq!(
            meta.file(DEFAULT_ORG, f.id).await.unwrap().filename,
            "a.png"
        );
        assert_eq!(meta.files_at("files/ab/abc").await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn configurations_by_id_or_short_id_and_unique_short_ids() {
    for meta in stores().await {
        let c = ConfigurationRow {
            id: Uuid::new_v4(),
            short_id: "Ab3_-xY9zQ".into(),
            org_id: DEFAULT_ORG,
            product_id: Uuid::new_v4().to_string(),
            product_version: None,
            variant: "{\"Body\":\"Navy\"}".into(),
            metadata: "{}".into(),
            attachments: "{}".into(),
            customer_id: None,
            identifier: None,
            scope: None,
            thumbnail: None,
            session_id: None,
            creator: None,
            created_at: meta.now(),
        };
        meta.insert_configuration(&c).await.unwrap();
        assert_eq!(
            meta.configuration(DEFAULT_ORG, &c.id.to_string())
                .await
                .unwrap(),
            c
        );
        assert_eq!(
            meta.configuration(DEFAULT_ORG, "Ab3_-xY9zQ").await.unwrap(),
            c
        );
        let dup = ConfigurationRow {
            id: Uuid::new_v4(),
            ..c.clone()
        };
        assert!(matches!(
            meta.insert_configuration(&dup).await,
            Err(MetaError::Conflict(_))
        ));
    }
}

#[tokio::test]
async fn asset_versions_and_epochs() {
    for meta in stores().await {
        let id = Uuid::new_v4();
        let v = |version: u32, fp: &str| AssetVersionRow {
            asset_id: id,
            version,
            org_id: DEFAULT_ORG,
            name: "Mug".into(),
            definition: "{}".into(),
            content_fp: fp.into(),
            source: "api".into(),
            created_at: meta.now(),
        };
        meta.insert_asset_version(&v(1, "aa")).await.unwrap();
        meta.insert_asset_version(&v(2, "bb")).await.unwrap();
        assert!(matches!(
            meta.insert_asset_version(&v(2, "cc")).await,
            Err(MetaError::Conflict(_))
        ));
        let latest = meta.latest_asset_versions_of(id).await.unwrap().unwrap();
        assert_eq!(latest.version, 2);
        assert_eq!(
            meta.asset_version_by_content(id, "aa")
                .await
                .unwrap()
                .unwrap()
                .version,
            1
        );
        assert!(
            meta.asset_version_by_content(id, "zz")
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(meta.asset_epoch(id).await.unwrap(), 0);
        assert_eq!(meta.bump_asset_epoch(id).await.unwrap(), 1);
        assert_eq!(meta.bump_asset_epoch(id).await.unwrap(), 2);
        assert!(
            meta.asset_created_at(Uuid::new_v4())
                .await
                .unwrap_err()
                .is_not_found()
        );
    }
}

#[tokio::test]
async fn a_file_database_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/meta.db", dir.path().display());
    let meta = Meta::open(&url, 2).await.unwrap();
    let l = layer(&meta, Uuid::new_v4(), "k", "h");
    meta.insert_layer(&l).await.unwrap();
    meta.close().await;
    let again = Meta::open(&url, 2).await.unwrap();
    assert_eq!(again.layer(DEFAULT_ORG, l.id).await.unwrap(), l);
}

#[test]
fn scratch_databases_keep_the_server_and_options() {
    assert_eq!(
        with_database("postgres://u:p@h:5432/base", "x"),
        "postgres://u:p@h:5432/x"
    );
    assert_eq!(
        with_database("postgres://u:p@h:5432", "x"),
        "postgres://u:p@h:5432/x"
    );
    assert_eq!(
        with_database("postgres://h/db?sslmode=disable", "x"),
        "postgres://h/x?sslmode=disable"
    );
}

#[test]
fn passwords_are_redacted() {
    assert_eq!(
        redact("postgres://u:secret@db:5432/x"),
        "postgres://***@db:5432/x"
    );
    assert_eq!(redact("sqlite::memory:"), "sqlite::memory:");
}

#[tokio::test]
async fn migration_5_keeps_one_version_per_definition() {
    let dir = tempfile::tempdir().unwrap();
    let mut urls = vec![format!("sqlite://{}/m.db?mode=rwc", dir.path().display())];
    if let Ok(base) = std::env::var("LC_TEST_POSTGRES_URL") {
        urls.push(create_scratch_database(&base).await.unwrap());
    }
    sqlx::any::install_default_drivers();
    for url in urls {
        // A database from before migration 5, holding duplicates: asset A
        // has v1 and v3 with one definition (v1 live), asset B v1 and v2
        // with one definition (neither live).
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        let before = sqlx::migrate::Migrator {
            migrations: std::borrow::Cow::Owned(MIGRATOR.migrations[..4].to_vec()),
            ignore_missing: false,
            locking: true,
            no_tx: false,
        };
        before.run(&pool).await.unwrap();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        for (asset, version, fp) in [
            (a, 1, "x"),
            (a, 2, "y"),
            (a, 3, "x"),
            (b, 1, "z"),
            (b, 2, "z"),
        ] {
            sqlx::query(
                "INSERT INTO asset_versions (asset_id, version, org_id, name, definition, content_fp, source, created_at) \
                 VALUES ($1, $2, $3, 'n', '{}', $4, 'api', 0)",
            )
            .bind(asset.to_string())
            .bind(version)
            .bind(DEFAULT_ORG.to_string())
            .bind(fp)
            .execute(&pool)
            .await
            .unwrap();
        }
        sqlx::query("INSERT INTO asset_live (asset_id, version, updated_at) VALUES ($1, 1, 0)")
            .bind(a.to_string())
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        let meta = Meta::open(&url, 2).await.unwrap();
        let by = |asset, fp: &'static str| {
            let meta = &meta;
            async move {
                meta.asset_version_by_content(asset, fp)
                    .await
                    .unwrap()
                    .map(|r| r.version)
            }
        };
        assert_eq!(by(a, "x").await, Some(1), "the live one stays: {url}");
        assert_eq!(by(a, "y").await, Some(2));
        assert_eq!(by(b, "z").await, Some(2), "else the newest");
        assert_eq!(
            meta.asset_version(a, 3).await.unwrap().unwrap().version,
            3,
            "kept"
        );
        meta.close().await;
    }
}

/// Only a failure of the connection is worth a retry (503): a statement
/// the database refuses is a bug (500), on both backends.
#[tokio::test]
async fn only_connection_failures_are_transient() {
    let io = sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "reset",
    ));
    assert!(matches!(translate(io), MetaError::Unavailable(_)));
    assert!(matches!(
        translate(sqlx::Error::PoolTimedOut),
        MetaError::Unavailable(_)
    ));
    assert!(matches!(
        translate(sqlx::Error::PoolClosed),
        MetaError::Unavailable(_)
    ));
    assert!(matches!(
        translate(sqlx::Error::RowNotFound),
        MetaError::NotFound
    ));
    assert!(matches!(
        translate(sqlx::Error::ColumnNotFound("x".into())),
        MetaError::Backend(_)
    ));
    for meta in stores().await {
        let Err(e) = sqlx::query("SELECT no_such_column FROM no_such_table")
            .execute(&meta.pool)
            .await
        else {
            panic!("a query of a missing table succeeded");
        };
        let e = translate(e);
        assert!(matches!(e, MetaError::Backend(_)), "{e:?}");
        assert!(matches!(
            crate::error::Error::from(e),
            crate::error::Error::Internal(_)
        ));
        // A NUL in text: SQLite stores it, PostgreSQL refuses the value (22021),
        // which is the request's fault (422), not an outage.
        let nul = sqlx::query("SELECT CAST($1 AS TEXT)")
            .bind("a\0b")
            .execute(&meta.pool)
            .await;
        if let Err(e) = nul {
            let e = translate(e);
            assert!(matches!(e, MetaError::Rejected(_)), "{e:?}");
            assert!(matches!(
                crate::error::Error::from(e),
                crate::error::Error::Invalid { .. }
            ));
        }
    }
}

#[tokio::test]
async fn the_composite_ledger_counts_orders_and_evicts_only_unused_rows() {
    for meta in stores().await {
        let t0 = meta.now();
        let w = |p: &str, n: u64, t: i64| (p.to_string(), n, t);
        meta.note_composites(
            &[
                w("composites/a/v1e0/aa/1.png", 100, t0),
                w("composites/a/v1e0/aa/2.png", 200, t0 + 1),
                w("composites/b/v2e0/bb/3.png", 300, t0 + 2),
            ],
            &[],
        )
        .await
        .unwrap();
        assert_eq!(meta.composite_totals().await.unwrap(), (3, 600));
        // A read makes the first the newest; an older read changes nothing;
        // a read of an unknown path adds nothing.
        meta.note_composites(
            &[],
            &[
                ("composites/a/v1e0/aa/1.png".into(), t0 + 10),
                ("composites/a/v1e0/aa/2.png".into(), t0 - 5),
                ("composites/zz.png".into(), t0 + 11),
            ],
        )
        .await
        .unwrap();
        let oldest = meta.oldest_composites(10).await.unwrap();
        let order: Vec<&str> = oldest.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            order,
            vec![
                "composites/a/v1e0/aa/2.png",
                "composites/b/v2e0/bb/3.png",
                "composites/a/v1e0/aa/1.png"
            ]
        );
        // Used since it was listed: not taken off.
        meta.note_composites(&[], &[("composites/a/v1e0/aa/2.png".into(), t0 + 20)])
            .await
            .unwrap();
        assert!(!meta.evict_composite(&oldest[0]).await.unwrap());
        assert!(meta.evict_composite(&oldest[1]).await.unwrap());
        assert!(!meta.evict_composite(&oldest[1]).await.unwrap(), "once");
        assert_eq!(meta.composite_totals().await.unwrap(), (2, 300));
        // A rewrite replaces the size.
        meta.note_composites(&[w("composites/a/v1e0/aa/1.png", 150, t0 + 30)], &[])
            .await
            .unwrap();
        assert_eq!(meta.composite_totals().await.unwrap(), (2, 350));
        // An object that could not be deleted goes back, unless rewritten.
        meta.restore_composite(&oldest[1]).await.unwrap();
        assert_eq!(meta.composite_totals().await.unwrap(), (3, 650));
        let mut rewritten = oldest[1].clone();
        rewritten.bytes = 1;
        meta.restore_composite(&rewritten).await.unwrap();
        assert_eq!(
            meta.composite_totals().await.unwrap(),
            (3, 650),
            "kept as it was"
        );
        // gc forgets a stale version's folder, nothing else; LIKE's
        // wildcards in a prefix match only themselves.
        meta.note_composites(
            &[
                w("composites/a_b/v1e0/aa/4.png", 10, t0 + 40),
                w("composites/aXb/v1e0/aa/5.png", 20, t0 + 41),
                w("composites/a/v1e00/aa/6.png", 40, t0 + 42),
            ],
            &[],
        )
        .await
        .unwrap();
        assert_eq!(
            meta.forget_composites("composites/a/v1e0/").await.unwrap(),
            2
        );
        assert_eq!(meta.forget_composites("composites/a_b/").await.unwrap(), 1);
        let left: Vec<String> = meta
            .oldest_composites(10)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.path)
            .collect();
        assert_eq!(
            left,
            vec![
                "composites/b/v2e0/bb/3.png",
                "composites/aXb/v1e0/aa/5.png",
                "composites/a/v1e00/aa/6.png"
            ]
        );
    }
}

#[test]
fn backoff_doubles_and_caps() {
    use std::time::Duration;
    assert_eq!(backoff(1, 100, 10_000), Duration::from_millis(100));
    assert_eq!(backoff(2, 100, 10_000), Duration::from_millis(200));
    assert_eq!(backoff(4, 100, 10_000), Duration::from_millis(800));
    assert_eq!(backoff(40, 100, 10_000), Duration::from_millis(10_000));
    assert_eq!(backoff(0, 100, 10_000), Duration::from_millis(100));
}
