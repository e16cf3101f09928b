//! Render capacity as separate processes: `serve` only queues, `layercake
//! worker` processes render. A worker killed with SIGKILL mid-render leaves
//! its task to another worker once the lease expires; the waiting request
//! still gets its image, and every layer is recorded exactly once.

mod common;

use common::{
    base_of, enc, get_json, metric, render_script, running_commands, start_binary as start,
};
use serde_json::json;

#[tokio::test]
async fn a_task_of_a_killed_worker_is_finished_by_another() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = dir.path().display();
    render_script(dir.path(), [90, 60, 30, 255], 1.5);
    let config = dir.path().join("layercake.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[http]
request_timeout_secs = 180
[render]
concurrency = 1
miss_wait_secs = 120
backend = "slow"
[render.backends.slow]
kind = "command"
command = ["sh", "{d}/render.sh"]
[jobs]
in_process = false
lease_secs = 2
poll_ms = 100
"#
        ),
    )
    .unwrap();

    let (_serve, line) = start(
        &["serve", "--listen", "127.0.0.1:0"],
        &config,
        &data,
        "open http://",
    );
    let base = base_of(&line);
    std::fs::write(dir.path().join("slow"), "600").unwrap();
    let (mut doomed, _) = start(&["worker"], &config, &data, "worker running");

    let client = reqwest::Client::new();
    let url = format!(
        "{base}/api/fast-compositor?assetId=03a29397-2265-40cd-8c45-41a1c4e12574&configuration={}&width=100",
        enc(&json!({}))
    );
    let request = tokio::spawn({
        let (client, url) = (client.clone(), url.clone());
        async move { client.get(&url).send().await.unwrap().status().as_u16() }
    });

    // Kill the worker while it renders its first task.
    let running = common::eventually_some("a task started", || async {
        let t = get_json(
            &client,
            &format!("{base}/api/jobs/tasks?runStatus=running"),
            200,
        )
        .await;
        t["tasks"][0]["id"].as_str().map(str::to_string)
    })
    .await;
    doomed.0.kill().unwrap(); // SIGKILL
    doomed.0.wait().unwrap();
    std::fs::remove_file(dir.path().join("slow")).unwrap();
    // Its render program dies with it rather than rendering on (for ten
    // minutes, far past the hang guard).
    let script = format!("{d}/render.sh");
    common::eventually("the killed worker's render program gone", || async {
        running_commands(&script) == 0
    })
    .await;
    let (_rescuer, metrics) = common::start_worker_with_metrics(&config, &data);

    assert_eq!(
        request.await.unwrap(),
        200,
        "the waiting request gets its image"
    );
    let task = get_json(&client, &format!("{base}/api/jobs/tasks/{running}"), 200).await;
    assert_eq!(task["runResult"], "Success", "{task}");
    let runs = task["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{task}");
    assert_eq!(runs[0]["resultCode"], "Failed");
    assert!(
        runs[0]["error"].as_str().unwrap().contains("lease"),
        "{}",
        runs[0]
    );
    assert_eq!(runs[1]["resultCode"], "Success");
    assert_ne!(runs[0]["worker"], runs[1]["worker"]);

    // Exactly one layer record per layer key.
    let layers = get_json(&client, &format!("{base}/api/layers?perPage=100"), 200).await;
    assert_eq!(layers["count"], 5, "{layers}");
    let tasks = get_json(&client, &format!("{base}/api/jobs/tasks?perPage=100"), 200).await;
    assert_eq!(tasks["count"], 5);
    let layer_keys: std::collections::HashSet<&str> = tasks["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["layerKey"].as_str().unwrap())
        .collect();
    assert_eq!(layer_keys.len(), 5);
    // The image is now a hit.
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);

    // The rescuer's renders show on its own /metrics.
    let text = client
        .get(&metrics)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        metric(&text, "layercake_renders_total{result=\"success\"}"),
        5.0,
        "{text}"
    );
    assert!(
        text.contains("layercake_queue_depth{status=\"pending\"} 0"),
        "{text}"
    );
}
