//! The render queue's state machine at its own level, on in-memory SQLite
//! and, when `LC_TEST_POSTGRES_URL` names a server (as `.ci/run` does), on
//! a fresh PostgreSQL database: reuse of recorded keys, claims, leases and
//! their renewal and expiry, retries with backoff, retries running out,
//! the failure TTL, cancels (also racing a claim), jobs sharing a task,
//! and jobs whose queueing fails. Time is the store's manual clock
//! ([`Meta::with_manual_clock`]): leases and backoff pass by moving it,
//! and no test sleeps.

use super::*;
use crate::meta::tests::{layer, stores};
use crate::meta::{DEFAULT_ORG, Meta};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

const LEASE: Duration = Duration::from_secs(30);

async fn queues() -> Vec<Arc<Meta>> {
    stores()
        .await
        .into_iter()
        .map(|m| Arc::new(m.with_manual_clock()))
        .collect()
}

fn backend(meta: &Meta) -> &'static str {
    if meta.postgres { "postgres" } else { "sqlite" }
}

async fn claim(meta: &Meta, worker: &str) -> Option<Claimed> {
    meta.claim_task(worker, meta.after(LEASE), None)
        .await
        .unwrap()
}

fn new_task_with(key: &str, max_attempts: i64) -> NewTask {
    NewTask {
        max_attempts,
        ..new_task(key, false)
    }
}

fn job(meta: &Meta) -> JobRow {
    JobRow {
        id: Uuid::new_v4(),
        org_id: DEFAULT_ORG,
        title: "t".into(),
        kind: "render".into(),
        status: Status::Pending,
        scheduler_state: SchedulerState::Scheduling,
        parameters: "{}".into(),
        priority: 0,
        created_by: None,
        created_at: meta.now(),
        updated_at: meta.now(),
    }
}

fn new_task(key: &str, rerender: bool) -> NewTask {
    NewTask {
        layer_key: key.into(),
        title: key.into(),
        parameters: "{}".into(),
        max_attempts: 3,
        rerender,
        asset_id: None,
    }
}

#[tokio::test]
async fn a_task_for_a_recorded_key_stops_at_once_reusing_the_record() {
    for meta in stores().await {
        let asset = Uuid::new_v4();
        let recorded = layer(&meta, asset, "done", "h");
        meta.insert_layer(&recorded).await.unwrap();
        let q = meta
            .create_job(
                &job(&meta),
                &[new_task("done", false), new_task("todo", false)],
            )
            .await
            .unwrap();
        assert_eq!(q.reused, vec![true, false]);
        assert_eq!(
            q.job.status.as_str(),
            "pending",
            "one task is still to render"
        );
        // A registered layer (no task made it): a task stopped at once.
        let reused = meta.task_by_id(q.tasks[0]).await.unwrap();
        assert_eq!(
            (
                reused.status.as_str(),
                reused.run_result.map(TaskResult::as_str)
            ),
            ("stopped", Some("success"))
        );
        assert_eq!(reused.reused_layer, Some(recorded.id.to_string()));
        // Only the other one is claimed; it renders and records.
        let c = meta
            .claim_task("w", meta.now() + 10_000_000, None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((c.task.layer_key.as_str(), c.existing), ("todo", None));
        assert!(
            meta.claim_task("w", meta.now() + 10_000_000, None)
                .await
                .unwrap()
                .is_none()
        );
        meta.insert_layer(&layer(&meta, asset, "todo", "h2"))
            .await
            .unwrap();
        let f = meta
            .finish_run(c.task.id, c.run.id, &Outcome::Success { files: vec![] })
            .await
            .unwrap();
        assert_eq!(f.stopped_jobs.len(), 1);

        // A later job that saw "todo" missing is linked to the task that
        // rendered it: no new task, stopped at once.
        let q2 = meta
            .create_job(&job(&meta), &[new_task("todo", false)])
            .await
            .unwrap();
        assert_eq!((q2.tasks[0], q2.reused[0]), (c.task.id, true));
        assert_eq!(q2.job.status.as_str(), "stopped");
        let (n, _) = meta.tasks(DEFAULT_ORG, None, None, None).await.unwrap();
        assert_eq!(n, 2, "one task per key");
        assert_eq!(meta.job_counts(q2.job.id).await.unwrap().successes, 1);

        // Asked to render again (the recorded object went missing): it is
        // created pending, and its claim does not reuse the record.
        let q = meta
            .create_job(&job(&meta), &[new_task("done", true)])
            .await
            .unwrap();
        assert_eq!((q.reused[0], q.job.status.as_str()), (false, "pending"));
        let c = meta
            .claim_task("w", meta.now() + 10_000_000, None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (c.task.id, c.task.rerender, c.existing),
            (q.tasks[0], true, None)
        );
    }
}

#[tokio::test]
async fn a_claim_that_finds_its_key_recorded_finishes_with_that_layer() {
    for meta in stores().await {
        let q = meta
            .create_job(&job(&meta), &[new_task("k", false)])
            .await
            .unwrap();
        assert_eq!(q.reused, vec![false]);
        // Recorded after the task was queued (an earlier run that stored
        // and recorded the layer but could not report).
        let recorded = layer(&meta, Uuid::new_v4(), "k", "h");
        meta.insert_layer(&recorded).await.unwrap();
        let c = meta
            .claim_task("w", meta.now() + 10_000_000, None)
            .await
            .unwrap()
            .unwrap();
        let existing = c.existing.expect("the claim sees the record");
        assert_eq!(
            existing,
            Existing {
                layer: recorded.id,
                file: recorded.file_id
            }
        );
        let f = meta
            .finish_run(c.task.id, c.run.id, &Outcome::Reused(existing))
            .await
            .unwrap();
        assert!(f.owned);
        assert_eq!(f.stopped_jobs.len(), 1, "the job stops, once");
        let t = meta.task_by_id(c.task.id).await.unwrap();
        assert_eq!(t.run_result.map(TaskResult::as_str), Some("success"));
        assert_eq!(t.reused_layer, Some(recorded.id.to_string()));
        let run = meta.run(DEFAULT_ORG, c.run.id).await.unwrap();
        assert_eq!(run.result_code.map(RunResult::as_str), Some("Success"));
        assert_eq!(run.files, vec![recorded.file_id]);
        let counts = meta.job_counts(q.job.id).await.unwrap();
        assert_eq!((counts.successes, counts.failures), (1, 0));
    }
}

#[tokio::test]
async fn joining_with_rerender_makes_the_active_task_render() {
    for meta in stores().await {
        let first = meta
            .create_job(&job(&meta), &[new_task("k", false)])
            .await
            .unwrap();
        meta.insert_layer(&layer(&meta, Uuid::new_v4(), "k", "h"))
            .await
            .unwrap();
        // A caller that found the record's object gone joins the pending
        // task: it must render, not reuse.
        let second = meta
            .create_job(&job(&meta), &[new_task("k", true)])
            .await
            .unwrap();
        assert_eq!(second.tasks, first.tasks, "joined, not a second task");
        let c = meta
            .claim_task("w", meta.now() + 10_000_000, None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((c.task.rerender, c.existing), (true, None));
    }
}

#[tokio::test]
async fn concurrent_claimers_never_get_one_task() {
    for meta in queues().await {
        let keys: Vec<NewTask> = (0..24)
            .map(|i| new_task(&format!("k{i:02}"), false))
            .collect();
        let q = meta.create_job(&job(&meta), &keys).await.unwrap();
        let claimers = (0..6).map(|w| {
            let meta = meta.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(c) = claim(&meta, &format!("w{w}")).await {
                    got.push(c.task.id);
                }
                got
            })
        });
        let mut all = Vec::new();
        for c in claimers {
            all.extend(c.await.unwrap());
        }
        let distinct: HashSet<_> = all.iter().copied().collect();
        assert_eq!(all.len(), 24, "{}: every task claimed once", backend(&meta));
        assert_eq!(
            distinct,
            q.tasks.iter().copied().collect(),
            "{}",
            backend(&meta)
        );
        let (runs, _) = meta
            .runs(DEFAULT_ORG, Some(q.job.id), None, None)
            .await
            .unwrap();
        assert_eq!(runs, 24, "{}: one run per task", backend(&meta));
        assert_eq!(
            meta.job(DEFAULT_ORG, q.job.id)
                .await
                .unwrap()
                .status
                .as_str(),
            "running"
        );
    }
}

#[tokio::test]
async fn a_renewed_lease_holds_and_an_expired_one_is_taken_over_exactly_once() {
    for meta in queues().await {
        let q = meta
            .create_job(&job(&meta), &[new_task("k", false)])
            .await
            .unwrap();
        let first = claim(&meta, "a").await.unwrap();
        assert_eq!(first.task.attempts, 1);
        meta.advance(LEASE - Duration::from_secs(1));
        assert!(claim(&meta, "b").await.is_none(), "the lease still holds");
        assert!(
            meta.renew_lease(first.task.id, first.run.id, meta.after(LEASE))
                .await
                .unwrap()
        );
        meta.advance(Duration::from_secs(2));
        assert!(
            claim(&meta, "b").await.is_none(),
            "{}: renewed past its first end",
            backend(&meta)
        );

        meta.advance(LEASE);
        let racers = (0..4).map(|w| {
            let meta = meta.clone();
            tokio::spawn(async move { claim(&meta, &format!("b{w}")).await })
        });
        let mut won = Vec::new();
        for r in racers {
            won.extend(r.await.unwrap());
        }
        assert_eq!(won.len(), 1, "{}: taken over exactly once", backend(&meta));
        let second = won.pop().unwrap();
        assert_eq!((second.task.id, second.task.attempts), (first.task.id, 2));
        let abandoned = meta.run(DEFAULT_ORG, first.run.id).await.unwrap();
        assert_eq!(abandoned.result_code.map(RunResult::as_str), Some("Failed"));
        assert!(abandoned.stopped_at.is_some());

        // The first worker comes back: it holds nothing any more.
        assert!(
            !meta
                .renew_lease(first.task.id, first.run.id, meta.after(LEASE))
                .await
                .unwrap()
        );
        let late = meta
            .finish_run(
                first.task.id,
                first.run.id,
                &Outcome::Success { files: vec![] },
            )
            .await
            .unwrap();
        assert!(!late.owned && late.stopped_jobs.is_empty());
        assert_eq!(
            meta.task_by_id(first.task.id)
                .await
                .unwrap()
                .status
                .as_str(),
            "running"
        );

        let done = meta
            .finish_run(
                second.task.id,
                second.run.id,
                &Outcome::Success { files: vec![] },
            )
            .await
            .unwrap();
        assert!(done.owned);
        assert_eq!(
            done.stopped_jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
            vec![q.job.id]
        );
        assert_eq!(done.stopped_jobs[0].scheduler_state.as_str(), "finished");
    }
}

#[tokio::test]
async fn a_retry_waits_for_its_backoff_then_runs_out_of_attempts() {
    for meta in queues().await {
        let q = meta
            .create_job(&job(&meta), &[new_task_with("k", 2)])
            .await
            .unwrap();
        let c = claim(&meta, "a").await.unwrap();
        let backoff = Duration::from_secs(10);
        let retry = Outcome::Retry {
            error: "renderer crashed".into(),
            not_before: meta.after(backoff),
        };
        let f = meta.finish_run(c.task.id, c.run.id, &retry).await.unwrap();
        assert!(f.owned && f.stopped_jobs.is_empty());
        assert_eq!(
            meta.task_by_id(c.task.id).await.unwrap().status.as_str(),
            "pending"
        );
        meta.advance(backoff - Duration::from_secs(1));
        assert!(
            claim(&meta, "a").await.is_none(),
            "{}: still backing off",
            backend(&meta)
        );
        meta.advance(Duration::from_secs(2));
        let last = claim(&meta, "a").await.unwrap();
        assert_eq!(last.task.attempts, 2);

        // The last attempt's worker dies: nobody may claim it again, and
        // the reaper fails it and stops its job.
        meta.advance(LEASE + Duration::from_secs(1));
        assert!(
            claim(&meta, "b").await.is_none(),
            "{}: no attempt left",
            backend(&meta)
        );
        let failed = meta.fail_abandoned().await.unwrap();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0.id, c.task.id);
        assert_eq!(
            failed[0].1.iter().map(|j| j.id).collect::<Vec<_>>(),
            vec![q.job.id]
        );
        assert!(
            meta.fail_abandoned().await.unwrap().is_empty(),
            "failed once"
        );
        let t = meta.task_by_id(c.task.id).await.unwrap();
        assert_eq!(
            (t.status.as_str(), t.run_result.map(TaskResult::as_str)),
            ("stopped", Some("failure"))
        );
        let counts = meta.job_counts(q.job.id).await.unwrap();
        assert_eq!((counts.failures, counts.successes), (1, 0));

        // The failure TTL: remembered for a while, then forgotten.
        let ttl = Duration::from_secs(30);
        let since = |m: &Meta| m.now() - crate::meta::micros(ttl);
        assert!(
            meta.recent_failure("k", since(&meta))
                .await
                .unwrap()
                .is_some()
        );
        meta.advance(ttl + Duration::from_secs(1));
        assert!(
            meta.recent_failure("k", since(&meta))
                .await
                .unwrap()
                .is_none()
        );
    }
}

#[tokio::test]
async fn a_failure_for_good_stops_the_task_and_its_job() {
    for meta in queues().await {
        let q = meta
            .create_job(&job(&meta), &[new_task("k", false)])
            .await
            .unwrap();
        let c = claim(&meta, "a").await.unwrap();
        let f = meta
            .finish_run(
                c.task.id,
                c.run.id,
                &Outcome::Fail {
                    error: "bad scene".into(),
                },
            )
            .await
            .unwrap();
        assert_eq!(f.stopped_jobs.len(), 1);
        assert_eq!(meta.job_counts(q.job.id).await.unwrap().failures, 1);
        assert_eq!(
            meta.recent_failure("k", 0).await.unwrap().as_deref(),
            Some("bad scene")
        );
        meta.advance(LEASE * 10);
        assert!(claim(&meta, "a").await.is_none());
    }
}

#[tokio::test]
async fn a_cancel_stops_pending_tasks_and_lets_running_ones_finish_unretried() {
    for meta in queues().await {
        let keys = [
            new_task("k1", false),
            new_task("k2", false),
            new_task("k3", false),
        ];
        let q = meta.create_job(&job(&meta), &keys).await.unwrap();
        let (a, b) = (
            claim(&meta, "a").await.unwrap(),
            claim(&meta, "b").await.unwrap(),
        );
        let cancelled = meta
            .cancel_job(DEFAULT_ORG, q.job.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                cancelled.status.as_str(),
                cancelled.scheduler_state.as_str()
            ),
            ("stopped", "cancelled")
        );
        assert!(
            meta.cancel_job(DEFAULT_ORG, q.job.id)
                .await
                .unwrap()
                .is_none(),
            "stopped once"
        );
        let third = meta.task_by_id(q.tasks[2]).await.unwrap();
        assert_eq!(third.run_result.map(TaskResult::as_str), Some("cancelled"));
        assert!(claim(&meta, "c").await.is_none());

        let ok = meta
            .finish_run(a.task.id, a.run.id, &Outcome::Success { files: vec![] })
            .await
            .unwrap();
        assert!(
            ok.owned && ok.stopped_jobs.is_empty(),
            "the job had stopped already"
        );
        let retry = Outcome::Retry {
            error: "crash".into(),
            not_before: meta.now(),
        };
        meta.finish_run(b.task.id, b.run.id, &retry).await.unwrap();
        let t = meta.task_by_id(b.task.id).await.unwrap();
        assert_eq!(
            (t.status.as_str(), t.run_result.map(TaskResult::as_str)),
            ("stopped", Some("cancelled"))
        );
        assert!(
            claim(&meta, "c").await.is_none(),
            "{}: not retried",
            backend(&meta)
        );
        assert!(matches!(
            meta.cancel_job(DEFAULT_ORG, Uuid::new_v4()).await,
            Err(MetaError::NotFound)
        ));
    }
}

#[tokio::test]
async fn a_cancel_racing_a_claim_leaves_one_consistent_outcome() {
    for meta in queues().await {
        for round in 0..8 {
            let q = meta
                .create_job(&job(&meta), &[new_task(&format!("race{round}"), false)])
                .await
                .unwrap();
            let (claimed, cancelled) =
                tokio::join!(claim(&meta, "w"), meta.cancel_job(DEFAULT_ORG, q.job.id));
            assert!(cancelled.unwrap().is_some(), "the job stops, once");
            let task = meta.task_by_id(q.tasks[0]).await.unwrap();
            match claimed {
                Some(c) => {
                    assert_eq!((task.status.as_str(), c.task.id), ("running", task.id));
                    let f = meta
                        .finish_run(c.task.id, c.run.id, &Outcome::Success { files: vec![] })
                        .await
                        .unwrap();
                    assert!(f.owned && f.stopped_jobs.is_empty());
                }
                None => assert_eq!(
                    (
                        task.status.as_str(),
                        task.run_result.map(TaskResult::as_str)
                    ),
                    ("stopped", Some("cancelled")),
                    "{}: round {round}",
                    backend(&meta)
                ),
            }
            assert!(claim(&meta, "w").await.is_none());
            let j = meta.job(DEFAULT_ORG, q.job.id).await.unwrap();
            assert_eq!(
                (j.status.as_str(), j.scheduler_state.as_str()),
                ("stopped", "cancelled")
            );
        }
    }
}

#[tokio::test]
async fn jobs_sharing_a_task_are_linked_and_unlinked_by_cancel() {
    for meta in queues().await {
        let a = meta
            .create_job(&job(&meta), &[new_task("shared", false)])
            .await
            .unwrap();
        let b = meta
            .create_job(&job(&meta), &[new_task("shared", false)])
            .await
            .unwrap();
        assert_eq!(a.tasks, b.tasks, "one task per key");
        meta.cancel_job(DEFAULT_ORG, a.job.id).await.unwrap();
        assert_eq!(
            meta.task_by_id(a.tasks[0]).await.unwrap().status.as_str(),
            "pending",
            "b still wants it"
        );
        let c = claim(&meta, "w").await.unwrap();
        let f = meta
            .finish_run(c.task.id, c.run.id, &Outcome::Success { files: vec![] })
            .await
            .unwrap();
        assert_eq!(
            f.stopped_jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
            vec![b.job.id]
        );

        let x = meta
            .create_job(&job(&meta), &[new_task("alone", false)])
            .await
            .unwrap();
        let y = meta
            .create_job(&job(&meta), &[new_task("alone", false)])
            .await
            .unwrap();
        meta.cancel_job(DEFAULT_ORG, x.job.id).await.unwrap();
        meta.cancel_job(DEFAULT_ORG, y.job.id).await.unwrap();
        let t = meta.task_by_id(x.tasks[0]).await.unwrap();
        assert_eq!(
            t.run_result.map(TaskResult::as_str),
            Some("cancelled"),
            "no live job wants it"
        );
        assert!(claim(&meta, "w").await.is_none());
    }
}

/// Makes statements matching `when` fail, as an outage would: an INSERT
/// into `job_tasks`, or the UPDATE that cancels a job.
async fn refuse(meta: &Meta, name: &str, event: &str, table: &str, when: &str) {
    let sql = if meta.postgres {
        format!(
            "CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN RAISE EXCEPTION 'injected outage'; END $f$; \
             CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW WHEN ({when}) EXECUTE FUNCTION {name}();"
        )
    } else {
        format!(
            "CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW WHEN {when} \
             BEGIN SELECT RAISE(ABORT, 'injected outage'); END;"
        )
    };
    sqlx::raw_sql(&sql).execute(&meta.pool).await.unwrap();
}

async fn restore(meta: &Meta, name: &str, table: &str) {
    let sql = if meta.postgres {
        format!("DROP TRIGGER {name} ON {table}; DROP FUNCTION {name}();")
    } else {
        format!("DROP TRIGGER {name};")
    };
    sqlx::raw_sql(&sql).execute(&meta.pool).await.unwrap();
}

#[tokio::test]
async fn a_job_whose_tasks_fail_to_link_never_stays_scheduling() {
    for meta in queues().await {
        // Linking fails, the cancel works: the job stops as cancelled.
        refuse(&meta, "lc_no_links", "INSERT", "job_tasks", "1 = 1").await;
        let j = job(&meta);
        assert!(meta.create_job(&j, &[new_task("k", false)]).await.is_err());
        let stored = meta.job(DEFAULT_ORG, j.id).await.unwrap();
        assert_eq!(
            (stored.status.as_str(), stored.scheduler_state.as_str()),
            ("stopped", "cancelled")
        );

        // Linking and the cancel both fail (the store went down): the job
        // is left `scheduling` until the reaper's timeout, then cancelled.
        refuse(
            &meta,
            "lc_no_cancel",
            "UPDATE",
            "jobs",
            "NEW.scheduler_state = 'cancelled'",
        )
        .await;
        let stuck = job(&meta);
        assert!(
            meta.create_job(&stuck, &[new_task("k", false)])
                .await
                .is_err()
        );
        assert_eq!(
            meta.job(DEFAULT_ORG, stuck.id)
                .await
                .unwrap()
                .scheduler_state
                .as_str(),
            "scheduling"
        );
        restore(&meta, "lc_no_links", "job_tasks").await;
        restore(&meta, "lc_no_cancel", "jobs").await;

        let timeout = Duration::from_secs(300);
        assert!(
            meta.stop_idle_jobs(timeout).await.unwrap().is_empty(),
            "not stale yet"
        );
        meta.advance(timeout + Duration::from_secs(1));
        // A job queued since, with a task still to render, is left alone.
        let live = meta
            .create_job(&job(&meta), &[new_task("live", false)])
            .await
            .unwrap();
        let reaped = meta.stop_idle_jobs(timeout).await.unwrap();
        assert_eq!(
            reaped.iter().map(|j| j.id).collect::<Vec<_>>(),
            vec![stuck.id],
            "{}",
            backend(&meta)
        );
        assert_eq!(reaped[0].scheduler_state.as_str(), "cancelled");
        assert!(
            meta.stop_idle_jobs(timeout).await.unwrap().is_empty(),
            "stopped once"
        );
        assert_eq!(
            meta.job(DEFAULT_ORG, live.job.id)
                .await
                .unwrap()
                .status
                .as_str(),
            "pending"
        );
    }
}

#[tokio::test]
async fn a_claim_for_some_assets_takes_only_their_tasks() {
    for meta in queues().await {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let of = |key: &str, asset: Option<Uuid>| NewTask {
            asset_id: asset,
            ..new_task(key, false)
        };
        meta.create_job(
            &job(&meta),
            &[of("a", Some(a)), of("b", Some(b)), of("old", None)],
        )
        .await
        .unwrap();
        let until = meta.after(LEASE);
        let none: &[Uuid] = &[];
        assert!(
            meta.claim_task("r", until, Some(none))
                .await
                .unwrap()
                .is_none(),
            "{}: no assets, no task",
            backend(&meta)
        );
        let c = meta
            .claim_task("r", until, Some(&[b]))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.task.layer_key, "b", "{}", backend(&meta));
        assert!(
            meta.claim_task("r", until, Some(&[b]))
                .await
                .unwrap()
                .is_none(),
            "{}: b's only task is taken",
            backend(&meta)
        );
        // A task queued without an asset id goes to a claim without a filter.
        let mut rest: Vec<String> = Vec::new();
        while let Some(c) = meta.claim_task("db", until, None).await.unwrap() {
            rest.push(c.task.layer_key);
        }
        rest.sort();
        assert_eq!(rest, ["a", "old"], "{}", backend(&meta));
    }
}

#[tokio::test]
async fn a_state_spelled_unknown_in_the_database_is_corrupt_not_a_panic() {
    for meta in stores().await {
        let q = meta
            .create_job(&job(&meta), &[new_task("odd", false)])
            .await
            .unwrap();
        let task = q.tasks[0];
        assert_eq!(meta.task_by_id(task).await.unwrap().status, Status::Pending);
        for (sql, col) in [
            ("UPDATE tasks SET status = 'paused' WHERE id = $1", "status"),
            (
                "UPDATE tasks SET status = 'stopped', run_result = 'meh' WHERE id = $1",
                "run_result",
            ),
        ] {
            sqlx::query(sql)
                .bind(task.to_string())
                .execute(&meta.pool)
                .await
                .unwrap();
            match meta.task_by_id(task).await {
                Err(MetaError::Corrupt(m)) => {
                    assert!(m.starts_with(col), "{}: {m}", backend(&meta))
                }
                other => panic!("{}: {col}: {other:?}", backend(&meta)),
            }
        }
        sqlx::query("UPDATE jobs SET scheduler_state = 'later' WHERE id = $1")
            .bind(q.job.id.to_string())
            .execute(&meta.pool)
            .await
            .unwrap();
        assert!(matches!(
            meta.job(DEFAULT_ORG, q.job.id).await,
            Err(MetaError::Corrupt(_))
        ));
    }
}
