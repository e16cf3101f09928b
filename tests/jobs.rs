//! The Jobs system through the HTTP API: one task per layer key however
//! many requests and batches want it, retries with backoff, failures that
//! surface as 502 with the renderer's reason, batch planning, cancellation.

mod common;

use async_trait::async_trait;
use common::{Counting, SOFA, Server, get_json, image_url, settings};
use layercake::compose::LayerImage;
use layercake::config::Settings;
use layercake::render::{BuiltinRenderer, RenderError, RenderRequest, Renderer};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn fast_retries() -> Settings {
    let mut s = settings();
    s.jobs.poll_ms = 50;
    s.jobs.backoff_ms = 20;
    s.jobs.backoff_max_ms = 100;
    s
}

/// Fails the first `failures` renders of every layer, then renders.
#[derive(Clone)]
struct Flaky {
    failures: usize,
    seen: Arc<Mutex<HashMap<String, usize>>>,
    inner: BuiltinRenderer,
}

impl Flaky {
    fn new(failures: usize) -> Flaky {
        Flaky {
            failures,
            seen: Arc::default(),
            inner: BuiltinRenderer::new(1 << 26),
        }
    }
}

#[async_trait]
impl Renderer for Flaky {
    async fn render(&self, req: &RenderRequest) -> Result<LayerImage, RenderError> {
        let id = format!("{} {:?}", req.describe(), req.values);
        let n = {
            let mut seen = self.seen.lock().unwrap();
            let n = seen.entry(id).or_default();
            *n += 1;
            *n
        };
        if n <= self.failures {
            return Err(RenderError::Failed(format!(
                "the farm is out of GPUs (attempt {n})"
            )));
        }
        self.inner.render(req).await
    }
}

async fn post_json(client: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    let r = client.post(url).json(body).send().await.unwrap();
    let status = r.status().as_u16();
    (
        status,
        serde_json::from_slice(&r.bytes().await.unwrap()).unwrap(),
    )
}

/// Polls a job until it stops.
async fn stopped_job(client: &reqwest::Client, server: &Server, id: &str) -> Value {
    common::eventually_some(&format!("job {id} stopped"), || async {
        let job = get_json(client, &server.url(&format!("/api/jobs/{id}")), 200).await;
        (job["status"] == "stopped").then_some(job)
    })
    .await
}

#[tokio::test]
async fn concurrent_misses_and_a_batch_share_one_task_per_layer() {
    let renders = Counting::slow(Duration::from_millis(300));
    let server = Server::start(settings(), Arc::new(renders.clone())).await;
    let client = reqwest::Client::new();
    let config = json!({"Body": "Navy"});
    // Different sizes: different composites, the same five layers.
    let (url_a, url_b) = (
        server.url(&image_url(&config, "&width=300")),
        server.url(&image_url(&config, "&width=200")),
    );
    let a = client.get(&url_a).send();
    let b = client.get(&url_b).send();
    let (jobs_url, batch_body) = (
        server.url("/api/jobs"),
        json!({"assetId": SOFA, "configurations": [config], "stageConfigurations": [{"Camera": 0}]}),
    );
    let batch = post_json(&client, &jobs_url, &batch_body);
    let (a, b, (status, job)) = tokio::join!(a, b, batch);
    assert_eq!(a.unwrap().status(), 200);
    assert_eq!(b.unwrap().status(), 200);
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["type"], "batch");
    assert_eq!(job["parameters"]["layers"], 5);
    assert!(
        job["runs"].is_array(),
        "the created job carries its runs: {job}"
    );

    let tasks = get_json(&client, &server.url("/api/jobs/tasks?perPage=100"), 200).await;
    assert_eq!(tasks["count"], 5, "one task per layer key: {tasks}");
    assert_eq!(renders.total(), 5);
    assert_eq!(renders.max_per_layer(), 1);
    let jobs = get_json(&client, &server.url("/api/jobs?perPage=100"), 200).await;
    for j in jobs["jobs"].as_array().unwrap() {
        assert!(j["taskCount"].as_i64().unwrap() <= 5, "{j}");
    }
    let job = stopped_job(&client, &server, job["id"].as_str().unwrap()).await;
    assert_eq!(
        job["taskResultSuccesses"].as_i64().unwrap(),
        job["taskCount"].as_i64().unwrap(),
        "{job}"
    );
    // A listing carries each job's runs (the published client's `Job`
    // requires them): here the batch's five, one per task, with their files.
    let listed = get_json(&client, &server.url("/api/jobs?perPage=100"), 200).await;
    let batch = listed["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == job["id"])
        .expect("the batch job in the list");
    let runs = batch["runs"].as_array().expect("runs in the list");
    assert_eq!(runs.len(), 5, "{batch}");
    assert!(runs.iter().all(|r| r["resultCode"] == "Success"
        && r["error"] == ""
        && r["results"]["files"].as_array().unwrap().len() == 1));
    // Every task's layer was recorded once, with the task that made it.
    let layers = get_json(&client, &server.url("/api/layers?perPage=100"), 200).await;
    assert_eq!(layers["count"], 5);
    for l in layers["layers"].as_array().unwrap() {
        assert!(l["taskId"].is_string() && l["jobId"].is_string(), "{l}");
    }
    server.stop().await;
}

#[tokio::test]
async fn concurrent_misses_sharing_some_layers_render_each_once() {
    let renders = Counting::slow(Duration::from_millis(200));
    let server = Server::start(settings(), Arc::new(renders.clone())).await;
    let client = reqwest::Client::new();
    // Same legs, pillows, backdrop and shadow; different bodies.
    let urls: Vec<String> = ["Navy", "Rust", "Forest"]
        .iter()
        .map(|b| server.url(&image_url(&json!({"Body": b}), "&width=120")))
        .collect();
    let answers = futures::future::join_all(urls.iter().map(|u| client.get(u).send())).await;
    for a in answers {
        assert_eq!(a.unwrap().status(), 200);
    }
    assert_eq!(renders.total(), 4 + 3, "4 shared layers and 3 bodies");
    assert_eq!(renders.max_per_layer(), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_renderer_that_fails_twice_succeeds_on_the_third_run() {
    let flaky = Flaky::new(2);
    let server = Server::start(fast_retries(), Arc::new(flaky)).await;
    let client = reqwest::Client::new();
    let r = client
        .get(server.url(&image_url(&json!({}), "&width=200")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let tasks = get_json(&client, &server.url("/api/jobs/tasks?perPage=100"), 200).await;
    let tasks = tasks["tasks"].as_array().unwrap();
    assert!(!tasks.is_empty());
    for t in tasks {
        assert_eq!(t["status"], "stopped");
        assert_eq!(t["runResult"], "Success", "{t}");
        assert_eq!(t["attempts"], 3);
        assert_eq!(t["branch"], "", "{t}");
        assert_eq!(t["createdBy"], "00000000-0000-0000-0000-000000000000");
        let runs = t["runs"].as_array().unwrap();
        let codes: Vec<&str> = runs
            .iter()
            .map(|r| r["resultCode"].as_str().unwrap())
            .collect();
        assert_eq!(codes, ["Failed", "Failed", "Success"], "{t}");
        assert!(runs[0]["error"].as_str().unwrap().contains("out of GPUs"));
        assert_eq!(runs[2]["results"]["files"].as_array().unwrap().len(), 1);
        // The same runs, by task and one by one.
        let id = t["id"].as_str().unwrap();
        let by_task = get_json(
            &client,
            &server.url(&format!("/api/jobs/runs?taskId={id}")),
            200,
        )
        .await;
        assert_eq!(by_task["count"], 3);
        let run_id = runs[2]["id"].as_str().unwrap();
        let run = get_json(
            &client,
            &server.url(&format!("/api/jobs/runs/{run_id}")),
            200,
        )
        .await;
        assert_eq!(run["taskId"], t["id"]);
    }
    server.stop().await;
}

#[tokio::test]
async fn a_renderer_that_always_fails_gives_502_and_a_stopped_job_with_failures() {
    let mut s = fast_retries();
    s.jobs.max_attempts = 2;
    let flaky = Flaky::new(usize::MAX);
    let attempts = Arc::clone(&flaky.seen);
    let server = Server::start(s, Arc::new(flaky)).await;
    let client = reqwest::Client::new();
    let url = server.url(&image_url(&json!({"Body": "Navy"}), "&width=200"));
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(
        r.headers()["cache-control"].to_str().unwrap(),
        "no-store",
        "a failure is not cached downstream"
    );
    let body: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "render-failed");
    // The cause is on the job's runs, not in the image answer.
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(!msg.contains("out of GPUs"), "{msg}");
    let runs = get_json(&client, &server.url("/api/jobs/runs"), 200).await;
    assert!(runs.to_string().contains("out of GPUs"), "{runs}");

    let jobs = get_json(&client, &server.url("/api/jobs"), 200).await;
    assert_eq!(jobs["count"], 1);
    let job = stopped_job(&client, &server, jobs["jobs"][0]["id"].as_str().unwrap()).await;
    assert!(job["taskResultFailures"].as_i64().unwrap() >= 1, "{job}");
    assert_eq!(job["schedulerState"], "finished");
    let runs = job["runs"].as_array().unwrap();
    assert!(runs.iter().all(|r| r["resultCode"] == "Failed"));

    // Within the failure TTL the same request fails at once: nothing is
    // queued or rendered again.
    let tried: usize = attempts.lock().unwrap().values().sum();
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let jobs = get_json(&client, &server.url("/api/jobs"), 200).await;
    assert_eq!(jobs["count"], 1, "no new job for a recent failure");
    assert_eq!(attempts.lock().unwrap().values().sum::<usize>(), tried);
    server.stop().await;
}

/// Draws as the built-in, but panics on anything asked for in navy.
struct PanicsOnNavy(BuiltinRenderer);

#[async_trait]
impl Renderer for PanicsOnNavy {
    async fn render(&self, req: &RenderRequest) -> Result<LayerImage, RenderError> {
        if format!("{:?}", req.values).contains("Navy") {
            panic!("a bug in the renderer");
        }
        self.0.render(req).await
    }
}

#[tokio::test]
async fn a_renderer_that_panics_fails_its_run_for_good_and_the_worker_goes_on() {
    let mut s = fast_retries();
    // One slot: were it lost to the panic, nothing would render after.
    s.render.concurrency = 1;
    let server = Server::start(s, Arc::new(PanicsOnNavy(BuiltinRenderer::new(1 << 26)))).await;
    let client = reqwest::Client::new();
    let navy = server.url(&image_url(&json!({"Body": "Navy"}), "&width=200"));
    let r = client.get(&navy).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let forest = server.url(&image_url(&json!({"Body": "Forest"}), "&width=200"));
    let r = client.get(&forest).send().await.unwrap();
    assert_eq!(r.status(), 200, "the slot still renders");
    let tasks = get_json(&client, &server.url("/api/jobs/tasks?perPage=100"), 200).await;
    let panicked: Vec<&Value> = tasks["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| {
            t["error"]
                .as_str()
                .is_some_and(|e| e.contains("the renderer panicked"))
        })
        .collect();
    assert_eq!(panicked.len(), 1, "{tasks}");
    assert_eq!(
        (
            panicked[0]["runResult"].as_str(),
            panicked[0]["attempts"].as_i64()
        ),
        (Some("Failed"), Some(1)),
        "failed for good at the first attempt: {tasks}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_batch_of_every_combination_renders_only_the_distinct_layers() {
    let renders = Counting::new();
    let server = Server::start(settings(), Arc::new(renders.clone())).await;
    let client = reqwest::Client::new();
    let body = json!({"assetId": SOFA, "all": true, "stageConfigurations": [{"Camera": 0}]});
    let started = Instant::now();
    let (status, job) = post_json(&client, &server.url("/api/jobs"), &body).await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["parameters"]["configurations"], 360);
    assert_eq!(job["parameters"]["layers"], 25);
    assert_eq!(job["parameters"]["tasks"], 25);
    assert_eq!(job["taskCount"], 25);
    let done = stopped_job(&client, &server, job["id"].as_str().unwrap()).await;
    eprintln!(
        "batch: 360 configurations, 25 layer tasks, rendered in {:?}",
        started.elapsed()
    );
    assert_eq!(done["taskResultSuccesses"], 25);
    assert_eq!(done["taskProgress"], 100.0);
    assert_eq!(renders.total(), 25);
    assert_eq!(renders.max_per_layer(), 1);

    // Everything is there now: a second batch queues nothing, and any of
    // the 360 images composes without a render.
    let (_, again) = post_json(&client, &server.url("/api/jobs"), &body).await;
    assert_eq!(again["parameters"]["tasks"], 0);
    assert_eq!(again["parameters"]["cached"], 25);
    assert_eq!(again["status"], "stopped");
    let r = client
        .get(server.url(&image_url(
            &json!({"Body": "Navy", "Legs": "Brass Cone"}),
            "&width=100",
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(renders.total(), 25);

    // `where` narrows the combinations; bad input names the field.
    let (status, narrowed) = post_json(
        &client,
        &server.url("/api/jobs"),
        &json!({"assetId": SOFA, "all": true, "where": {"Body": ["Navy"]}, "stageConfigurations": [{"Camera": 0}]}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(narrowed["parameters"]["configurations"], 60);
    for (bad, field) in [
        (json!({"assetId": SOFA}), "body"),
        (
            json!({"assetId": SOFA, "all": true, "where": {"Body": ["Plaid"]}}),
            "where.Body",
        ),
        (
            json!({"assetId": SOFA, "configurations": [{"Nope": 1}]}),
            "configurations[0]",
        ),
        (
            json!({"assetId": SOFA, "all": true, "stageConfigurations": [{"Camera": 9}]}),
            "stageConfigurations[0]",
        ),
        (json!({"assetId": "nope", "all": true}), "assetId"),
    ] {
        let (status, e) = post_json(&client, &server.url("/api/jobs"), &bad).await;
        assert_eq!(status, 422, "{bad} → {e}");
        assert!(
            e["error"]["message"].as_str().unwrap().starts_with(field),
            "{bad} → {e}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn cancelling_a_batch_stops_its_pending_tasks() {
    let mut s = settings();
    s.render.concurrency = 1;
    // Renders wait until released: the one a worker takes is still
    // running when the batch is cancelled.
    let renders = Counting::new();
    renders.hold();
    let server = Server::start(s, Arc::new(renders.clone())).await;
    let client = reqwest::Client::new();
    let (_, job) = post_json(
        &client,
        &server.url("/api/jobs"),
        &json!({"assetId": SOFA, "all": true, "stageConfigurations": [{"Camera": 1}]}),
    )
    .await;
    let id = job["id"].as_str().unwrap();
    let running = || async {
        get_json(
            &client,
            &server.url(&format!("/api/jobs/tasks?jobId={id}&runStatus=running")),
            200,
        )
        .await["count"]
            .as_i64()
            .unwrap()
    };
    common::eventually("a render started", || async {
        renders.total() > 0 && running().await > 0
    })
    .await;
    let (status, cancelled) = post_json(
        &client,
        &server.url(&format!("/api/jobs/{id}/cancel")),
        &json!({}),
    )
    .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "stopped");
    assert_eq!(cancelled["schedulerState"], "cancelled");
    let tasks = get_json(
        &client,
        &server.url(&format!("/api/jobs/tasks?jobId={id}&perPage=100")),
        200,
    )
    .await;
    let results: Vec<&Value> = tasks["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["runResult"])
        .collect();
    let n_cancelled = results.iter().filter(|r| **r == "Cancelled").count();
    assert_eq!(
        n_cancelled,
        results.len() - 1,
        "every task but the running one is cancelled: {results:?}"
    );
    // The running render finishes, and it is the only one.
    renders.release();
    common::eventually("the running render finished", || async {
        running().await == 0
    })
    .await;
    assert_eq!(renders.total(), 1, "only the running render ran");
    let done = get_json(&client, &server.url(&format!("/api/jobs/{id}")), 200).await;
    assert_eq!(done["taskResultSuccesses"], 1, "{done}");
    // Unknown and malformed ids.
    let r = client
        .post(server.url("/api/jobs/6f1c7d2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    get_json(&client, &server.url("/api/jobs/nope"), 422).await;
    get_json(&client, &server.url("/api/jobs?status=sleeping"), 422).await;
    server.stop().await;
}
