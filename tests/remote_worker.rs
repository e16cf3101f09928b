//! The worker protocol against the real HTTP server (`serve` that only
//! queues): who may use it (worker tokens only, and worker tokens nothing
//! else), long-poll claims, the asset bundle a claim carries, uploads
//! checked as a local render's output (a wrong canvas fails the run), a
//! good upload finishing the waiting request, a run whose lease expired
//! losing its task to the next claim (409 for everything it sends after),
//! and `jobs::node::Node`, the client `layercake worker --server` runs,
//! rendering a miss end to end.

mod common;

use common::{Counting, SOFA, Server, enc, settings, solid_png, status_and_body};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

struct Fixture {
    server: Server,
    client: reqwest::Client,
    private: String,
    worker: String,
}

async fn fixture(lease_secs: u64) -> Fixture {
    let mut s = settings();
    s.jobs.in_process = false;
    s.jobs.lease_secs = lease_secs;
    s.jobs.poll_ms = 50;
    // A layer failed on purpose is queued again by the next request.
    s.jobs.failure_ttl_secs = 0;
    s.jobs.remote_claim_wait_secs = 5;
    s.render.miss_wait_secs = 8;
    let server = Server::start(s, Arc::new(Counting::new())).await;
    let (private, _) = server
        .app
        .tokens()
        .create(None, "ci", false, &[])
        .await
        .unwrap();
    let (worker, row) = server.app.tokens().create_worker("gpu").await.unwrap();
    assert_eq!(row.kind, "worker");
    Fixture {
        server,
        client: reqwest::Client::new(),
        private,
        worker,
    }
}

impl Fixture {
    fn claim(&self, token: &str, wait: u64) -> reqwest::RequestBuilder {
        self.client
            .post(self.server.url("/api/jobs/worker/claim"))
            .bearer_auth(token)
            .json(&json!({"worker": "test-node/1/0", "backends": ["builtin"], "waitSeconds": wait}))
    }

    /// A miss for `config`, waiting in the background: its status.
    fn miss(&self, config: &Value) -> tokio::task::JoinHandle<u16> {
        let url = self.server.url(&format!(
            "/api/fast-compositor?assetId={SOFA}&configuration={}&width=64",
            enc(config)
        ));
        let (c, t) = (self.client.clone(), self.private.clone());
        tokio::spawn(async move {
            c.get(url)
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    }

    async fn claimed(&self) -> Value {
        let (status, task) = status_and_body(self.claim(&self.worker, 5)).await;
        assert_eq!(status, 200, "{task}");
        task
    }

    fn run(&self, task: &Value, what: &str) -> String {
        self.server.url(&format!(
            "/api/jobs/worker/runs/{}/{what}",
            task["runId"].as_str().unwrap()
        ))
    }

    async fn upload(&self, task: &Value, png: Vec<u8>) -> (u16, Value) {
        status_and_body(
            self.client
                .put(self.run(task, "result"))
                .bearer_auth(&self.worker)
                .header("content-type", "image/png")
                .body(png),
        )
        .await
    }

    /// A PNG of the task's canvas.
    fn layer_of(task: &Value) -> Vec<u8> {
        let p = &task["parameters"];
        solid_png(
            p["width"].as_u64().unwrap() as u32,
            p["height"].as_u64().unwrap() as u32,
            [200, 10, 10, 255],
        )
    }
}

#[tokio::test]
async fn only_worker_tokens_use_the_protocol_and_they_use_nothing_else() {
    let f = fixture(30).await;
    let (status, body) = status_and_body(f.claim(&f.private, 0)).await;
    assert_eq!(status, 403, "a private token is not a worker's: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("worker token")
    );
    let (status, _) = status_and_body(
        f.client
            .post(f.server.url("/api/jobs/worker/claim"))
            .json(&json!({"worker": "x", "backends": ["builtin"]})),
    )
    .await;
    assert_eq!(status, 401, "no token");
    for path in ["/api/jobs", "/api/layers", &format!("/api/assets/{SOFA}")] {
        let (status, body) =
            status_and_body(f.client.get(f.server.url(path)).bearer_auth(&f.worker)).await;
        assert_eq!(status, 403, "{path} with a worker token: {body}");
    }
    // Nothing queued: a claim waits, then answers 204.
    let r = f.claim(&f.worker, 0).send().await.unwrap();
    assert_eq!(r.status(), 204);
    // Bad claims name what is wrong.
    for (body, field) in [
        (json!({"worker": "", "backends": ["builtin"]}), "worker"),
        (json!({"worker": "n", "backends": []}), "backends"),
        (
            json!({"worker": "n", "backends": ["builtin"], "waitSeconds": 600}),
            "waitSeconds",
        ),
    ] {
        let (status, e) = status_and_body(
            f.client
                .post(f.server.url("/api/jobs/worker/claim"))
                .bearer_auth(&f.worker)
                .json(&body),
        )
        .await;
        assert_eq!(status, 422, "{body}: {e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(field),
            "{e}"
        );
    }
    // A node without the asset's backend gets nothing.
    let miss = f.miss(&json!({}));
    let (status, _) = status_and_body(
        f.client
            .post(f.server.url("/api/jobs/worker/claim"))
            .bearer_auth(&f.worker)
            .json(&json!({"worker": "n", "backends": ["blender"], "waitSeconds": 1})),
    )
    .await;
    assert_eq!(status, 204, "no task for a backend no asset uses");
    miss.abort();
    f.server.stop().await;
}

#[tokio::test]
async fn an_upload_is_checked_like_a_local_render_and_finishes_the_request() {
    let f = fixture(30).await;
    // A wrong canvas fails the run for good, as a local render's would.
    let red = f.miss(&json!({"Body": "Navy"}));
    let task = f.claimed().await;
    assert_eq!(task["attempt"], 1);
    assert!(
        !task["asset"]["files"].as_object().unwrap().is_empty(),
        "the bundle carries the templates"
    );
    let (status, e) = status_and_body(
        f.client
            .post(f.run(&task, "heartbeat"))
            .bearer_auth(&f.worker),
    )
    .await;
    assert_eq!(status, 200, "{e}");
    let (status, e) = f.upload(&task, solid_png(7, 7, [0, 0, 0, 255])).await;
    assert_eq!(status, 422, "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("canvas"),
        "{e}"
    );
    let (status, _) = f.upload(&task, Fixture::layer_of(&task)).await;
    assert_eq!(status, 409, "the run has ended");
    let t = f
        .server
        .app
        .meta()
        .task_by_id(task["taskId"].as_str().unwrap().parse().unwrap())
        .await
        .unwrap();
    assert_eq!(t.run_result.as_deref(), Some("failure"));
    assert!(t.error.unwrap().contains("canvas"));
    assert_eq!(
        red.await.unwrap(),
        502,
        "the request learns the render failed"
    );

    // Not a PNG at all: refused by type; garbage as PNG: 422.
    let waiting = f.miss(&json!({"Body": "Forest"}));
    let mut done = 0;
    while !waiting.is_finished() {
        let (status, task) = status_and_body(f.claim(&f.worker, 2)).await;
        if status == 204 {
            continue;
        }
        assert_eq!(status, 200);
        if done == 0 {
            let (status, _) = status_and_body(
                f.client
                    .put(f.run(&task, "result"))
                    .bearer_auth(&f.worker)
                    .header("content-type", "text/plain")
                    .body("x"),
            )
            .await;
            assert_eq!(status, 415);
        }
        let (status, body) = f.upload(&task, Fixture::layer_of(&task)).await;
        assert_eq!(
            (status, body["result"].as_str()),
            (200, Some("success")),
            "{body}"
        );
        done += 1;
    }
    assert_eq!(
        waiting.await.unwrap(),
        200,
        "every layer came from the node"
    );
    assert!(done >= 1);
    f.server.stop().await;
}

#[tokio::test]
async fn a_run_that_stops_renewing_loses_its_task_to_the_next_claim() {
    let f = fixture(1).await;
    let _waiting = f.miss(&json!({"Body": "Navy", "Legs": "Walnut Block"}));
    let first = f.claimed().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = f.claimed().await;
    assert_eq!(
        second["taskId"], first["taskId"],
        "the expired task is claimed again"
    );
    assert_ne!(second["runId"], first["runId"]);
    assert_eq!(second["attempt"], 2);
    let (status, _) = status_and_body(
        f.client
            .post(f.run(&first, "heartbeat"))
            .bearer_auth(&f.worker),
    )
    .await;
    assert_eq!(status, 409, "the old run's heartbeat");
    let (status, _) = f.upload(&first, Fixture::layer_of(&first)).await;
    assert_eq!(status, 409, "the old run's upload keeps nothing");
    let (status, body) = status_and_body(
        f.client
            .post(f.run(&second, "failure"))
            .bearer_auth(&f.worker)
            .json(&json!({"error": "GPU fell off the bus", "transient": true})),
    )
    .await;
    assert_eq!(
        (status, body["result"].as_str()),
        (200, Some("retry")),
        "{body}"
    );
    let t = f
        .server
        .app
        .meta()
        .task_by_id(second["taskId"].as_str().unwrap().parse().unwrap())
        .await
        .unwrap();
    assert_eq!(t.status, "pending");
    assert!(
        t.error
            .unwrap()
            .contains("test-node/1/0: GPU fell off the bus")
    );
    f.server.stop().await;
}

#[tokio::test]
async fn a_node_renders_misses_end_to_end() {
    let f = fixture(30).await;
    // In this process: the isolated built-in would run the test binary.
    let mut render = f.server.app.settings().render.clone();
    render.isolate_builtin = false;
    let renderers = layercake::render::Renderers::from_settings(&render, None).unwrap();
    let node = Arc::new(
        layercake::jobs::node::Node::new(
            layercake::jobs::node::NodeSettings {
                server: f.server.base.clone(),
                token: f.worker.clone(),
                slots: 2,
                claim_wait: Duration::from_secs(2),
                assets: None,
            },
            renderers,
        )
        .unwrap(),
    );
    let tracker = tokio_util::task::TaskTracker::new();
    let stop = tokio_util::sync::CancellationToken::new();
    node.spawn(&tracker, &stop);
    let config = json!({"Body": "Navy", "Legs": "Chrome Sled"});
    assert_eq!(f.miss(&config).await.unwrap(), 200);
    let layers = f.server.app.meta().task_counts().await.unwrap();
    assert_eq!(layers, (0, 0), "nothing left pending or running");
    stop.cancel();
    tracker.close();
    tracker.wait().await;
    f.server.stop().await;
}
