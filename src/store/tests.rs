//! The blob store on its own: create-only writes, and the outbox keeping
//! writes while the object store is unreachable.

use super::*;

#[tokio::test]
async fn put_new_never_overwrites() {
    for url in [
        "memory://".to_string(),
        format!("file://{}", tempfile::tempdir().unwrap().keep().display()),
    ] {
        let s = BlobStore::open_url(&url).unwrap();
        assert!(!s.exists("a/b").await.unwrap());
        assert!(
            s.put_new("a/b", Bytes::from_static(b"one")).await.unwrap(),
            "{url}"
        );
        assert!(
            !s.put_new("a/b", Bytes::from_static(b"two")).await.unwrap(),
            "{url}"
        );
        assert_eq!(
            s.get("a/b").await.unwrap().unwrap(),
            Bytes::from_static(b"one")
        );
        assert!(s.exists("a/b").await.unwrap());
        s.put("a/b", Bytes::from_static(b"three")).await.unwrap();
        assert_eq!(
            s.get("a/b").await.unwrap().unwrap(),
            Bytes::from_static(b"three")
        );
    }
}

#[tokio::test]
async fn while_the_store_is_unreachable_writes_wait_in_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = StoreOptions::url("s3://bucket/prefix");
    // Nothing listens on the discard port of loopback.
    o.s3 = S3Options {
        endpoint: "http://127.0.0.1:9".into(),
        region: "us-east-1".into(),
        access_key_id: "key".into(),
        secret_access_key: "secret".into(),
        allow_http: true,
    };
    o.timeouts = Timeouts {
        connect: Duration::from_millis(200),
        request: Duration::from_millis(500),
        max_retries: 0,
        retry_budget: Duration::from_millis(200),
    };
    o.down_cooldown = Duration::from_secs(600);
    o.outbox = Some((dir.path().join("outbox"), 1 << 20));
    let s = BlobStore::open(&o).unwrap();
    assert!(s.is_up());
    let body = Bytes::from_static(b"a rendered layer");
    assert!(
        s.put_new("layers/a", body.clone()).await.unwrap(),
        "kept, not lost"
    );
    assert!(!s.is_up(), "the failure takes the store down");
    assert_eq!(s.get("layers/a").await.unwrap(), Some(body.clone()));
    assert!(s.exists("layers/a").await.unwrap());
    // Within the cooldown, nothing else is even tried.
    assert!(matches!(s.get("layers/b").await, Err(StoreError::Down(_))));
    assert!(matches!(
        s.exists("layers/b").await,
        Err(StoreError::Down(_))
    ));
    assert!(matches!(
        s.put_cached("composites/c", body.clone()).await,
        Err(StoreError::Down(_))
    ));
    assert!(matches!(s.flush_outbox().await, Err(StoreError::Down(_))));
    assert_eq!(s.status().outbox_objects, 1);
    // A restart finds the waiting write.
    drop(s);
    let s = BlobStore::open(&o).unwrap();
    assert_eq!(s.status().outbox_objects, 1);
    assert_eq!(s.get("layers/a").await.unwrap(), Some(body));
}
