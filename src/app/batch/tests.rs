//! `app::batch` on an in-memory app (the demo catalogue, no render
//! workers: what is queued stays pending).

use super::*;
use crate::config::{Overrides, Settings};

const SOFA: &str = "03a29397-2265-40cd-8c45-41a1c4e12574";

async fn app() -> App {
    let mut s = Settings::load(None, &Overrides::default()).unwrap();
    s.storage.url = "memory://".into();
    s.meta.url = "sqlite::memory:".into();
    s.jobs.in_process = false;
    App::build(s).await.unwrap()
}

fn request(body: serde_json::Value) -> BatchRequest {
    serde_json::from_value(body).unwrap()
}

/// Every combination of the Navy sofa on one view.
fn navy() -> BatchRequest {
    request(serde_json::json!({
        "assetId": SOFA, "all": true, "where": {"Body": ["Navy"]},
        "stageConfigurations": [{"Camera": 0}],
    }))
}

#[test]
fn modes_and_limits() {
    assert_eq!(Mode::dry_run(true), Mode::DryRun);
    assert_eq!(Mode::dry_run(false), Mode::Queue);
    let s = Settings::load(None, &Overrides::default()).unwrap();
    let l = BatchLimits::of(&s.jobs);
    assert_eq!(
        (l.configurations, l.keys),
        (s.jobs.max_batch_configurations, s.jobs.max_plan_keys)
    );
    assert_eq!(BatchLimits::NONE.configurations, usize::MAX);
}

#[tokio::test]
async fn a_dry_run_plans_and_queues_nothing() {
    let app = app().await;
    let org = app.catalog().get(&SOFA.parse().unwrap()).unwrap().org;
    let out = submit(&app, org, navy(), BatchLimits::NONE, Mode::DryRun)
        .await
        .unwrap();
    assert_eq!(out.job, None);
    let s = &out.summary;
    assert_eq!(s.asset_id.to_string(), SOFA);
    assert_eq!(s.asset_version, out.asset.version);
    assert_eq!(s.configurations, 60);
    assert_eq!(s.views.len(), 1);
    assert!(s.layers > 0);
    assert_eq!((s.cached, s.tasks), (0, s.layers));
    let (_, jobs) = app
        .jobs()
        .job_records(
            org,
            None,
            crate::meta::Window {
                offset: 0,
                limit: 10,
                descending: false,
            },
        )
        .await
        .unwrap();
    assert!(jobs.is_empty());
    app.shutdown().await;
}

#[tokio::test]
async fn a_batch_queues_one_job_for_the_missing_layers() {
    let app = app().await;
    let org = app.catalog().get(&SOFA.parse().unwrap()).unwrap().org;
    for mode in [Mode::Queue, Mode::QueueMissing] {
        let out = submit(&app, org, navy(), BatchLimits::NONE, mode)
            .await
            .unwrap();
        let job = out.job.expect("a job");
        let p = progress(&app, org, job).await.unwrap();
        assert_eq!(p.total, out.summary.tasks as u64);
        assert_eq!((p.successes, p.failures, p.stopped), (0, 0, false));
        let record = app.jobs().job_record(org, job).await.unwrap();
        assert_eq!(record.job.kind, "batch");
        // The job's parameters are the plan, as wire spells it.
        assert_eq!(record.job.parameters, out.summary.json().to_value());
    }
    app.shutdown().await;
}

#[tokio::test]
async fn bad_requests_name_their_field() {
    let app = app().await;
    let org = app.catalog().get(&SOFA.parse().unwrap()).unwrap().org;
    let small = BatchLimits {
        configurations: 10,
        keys: u64::MAX,
    };
    let few_keys = BatchLimits {
        configurations: usize::MAX,
        keys: 10,
    };
    let nope = request(serde_json::json!({"assetId": "nope", "all": true}));
    let other = request(serde_json::json!({"assetId": uuid::Uuid::nil(), "all": true}));
    for (req, limits, want) in [
        (navy(), small, "all: more than 10 combinations"),
        (
            navy(),
            few_keys,
            "configurations: 60 configurations x 1 views x",
        ),
        (nope, BatchLimits::NONE, "assetId: \"nope\" is not a UUID"),
        (other, BatchLimits::NONE, "not found"),
    ] {
        let e = submit(&app, org, req, limits, Mode::Queue)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{e}");
    }
    // Another org's asset is not found either.
    let e = submit(
        &app,
        uuid::Uuid::nil(),
        navy(),
        BatchLimits::NONE,
        Mode::DryRun,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, Error::NotFound(_)), "{e}");
    app.shutdown().await;
}
