//! Render nodes anywhere: two `serve` processes that only queue, one
//! database `worker` and one remote worker (`layercake worker --server
//! --token`, with a config that names no database and no object store),
//! sharing a real PostgreSQL and a real S3 (SeaweedFS) on loopback.
//!
//! - 200 concurrent cold requests for 20 configurations, spread over both
//!   serve nodes: every layer key is rendered exactly once over all
//!   processes (the sum of `layercake_renders_total{result="success"}` is
//!   the number of distinct keys, and of layer records), nothing is
//!   retried or failed, both workers rendered, and identical URLs answer
//!   identical bytes on both nodes.
//! - The remote worker killed with SIGKILL mid-render: its tasks are
//!   finished by the database worker once their leases expire, the
//!   waiting request gets its image, nothing is recorded twice.
//!
//! It prints the burst's wall time, the waiting requests' p50/p99 and the
//! renders per worker (the figures of the operator's guide). Run it with
//! `LAYERCAKE_JOBS__NOTIFY=false` for the same figures without
//! LISTEN/NOTIFY (polling only).

mod common;

use common::{
    SOFA, base_of, enc, metric, postgres, render_script, scratch_postgres_on, seaweed,
    start_binary, start_binary_env, start_worker_with_metrics,
};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::time::Instant;

fn token(config: &std::path::Path, data: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_layercake"))
        .args(["token", "create"])
        .args(args)
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .output()
        .expect("layercake token create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn metrics_url(line: &str) -> String {
    line.split("worker metrics on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the metrics URL in the line")
        .to_string()
}

async fn text(client: &reqwest::Client, url: &str) -> String {
    let r = client.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200, "GET {url}");
    r.text().await.unwrap()
}

async fn json_of(client: &reqwest::Client, url: &str) -> Value {
    serde_json::from_str(&text(client, url).await).unwrap()
}

const SUCCESS: &str = "layercake_renders_total{result=\"success\"}";

/// The wake delays of both serve nodes (`layercake_task_wake_delay_seconds`):
/// count, mean, and the bucket bounds under which half and 99% fell, in ms.
fn wake_delays(texts: &[&str]) -> (f64, f64, f64, f64) {
    let name = "layercake_task_wake_delay_seconds";
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    let (mut count, mut sum) = (0.0, 0.0);
    for text in texts {
        for line in text.lines() {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let value: f64 = value.parse().unwrap_or(0.0);
            if let Some(le) = series
                .strip_prefix(&format!("{name}_bucket{{le=\""))
                .and_then(|r| r.strip_suffix("\"}"))
            {
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                match buckets.iter_mut().find(|(b, _)| *b == le) {
                    Some((_, n)) => *n += value,
                    None => buckets.push((le, value)),
                }
            } else if series == format!("{name}_count") {
                count += value;
            } else if series == format!("{name}_sum") {
                sum += value;
            }
        }
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let under = |q: f64| {
        buckets
            .iter()
            .find(|(_, n)| *n >= q * count)
            .map_or(f64::INFINITY, |(le, _)| le * 1000.0)
    };
    (
        count,
        if count > 0.0 {
            sum / count * 1000.0
        } else {
            0.0
        },
        under(0.5),
        under(0.99),
    )
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_a_database_worker_and_a_remote_worker_render_each_key_once() {
    let (s3, _s3_guard) = seaweed::shared();
    let (pg, _pg_guard) = postgres::shared();
    let db = scratch_postgres_on(&pg);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    render_script(dir.path(), [40, 90, 160, 220], 0.2);
    let prefix = format!("multi-node-{}", uuid::Uuid::new_v4().simple());
    let render = format!(
        r#"
[render]
concurrency = 2
miss_wait_secs = 120
backend = "slow"
[render.backends.slow]
kind = "command"
command = ["sh", "{d}/render.sh"]
[jobs]
in_process = false
lease_secs = 2
poll_ms = 250
remote_claim_wait_secs = 10
"#
    );
    let config = dir.path().join("layercake.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[meta]
url = "{db}"
max_connections = 8
[storage]
url = "s3://{bucket}/{prefix}"
s3_endpoint = "{endpoint}"
s3_region = "us-east-1"
s3_access_key_id = "{key}"
s3_secret_access_key = "{secret}"
s3_allow_http = true
[http]
request_timeout_secs = 180
{render}"#,
            bucket = s3.bucket,
            endpoint = s3.endpoint,
            key = s3.key,
            secret = s3.secret,
        ),
    )
    .unwrap();
    // The remote node's whole configuration: its render backends (and the
    // request timeout that the settings' check wants above miss_wait_secs).
    let remote_config = dir.path().join("remote.toml");
    std::fs::write(
        &remote_config,
        format!("{render}\n[http]\nrequest_timeout_secs = 180\n"),
    )
    .unwrap();
    let data = |name: &str| dir.path().join(name);

    let private = token(&config, &data("t"), &["--name", "ci"]);
    let worker_token = token(&config, &data("t"), &["--worker", "--name", "gpu-1"]);
    let (_a, line) = start_binary(
        &["serve", "--listen", "127.0.0.1:0"],
        &config,
        &data("a"),
        "open http://",
    );
    let a = base_of(&line);
    let (_b, line) = start_binary(
        &["serve", "--listen", "127.0.0.1:0"],
        &config,
        &data("b"),
        "open http://",
    );
    let b = base_of(&line);
    let (db_worker, db_metrics) = start_worker_with_metrics(&config, &data("w"));
    // The node's token as README gives it: LAYERCAKE_WORKER_TOKEN.
    let (mut remote, line) = start_binary_env(
        &["worker", "--server", &a, "--metrics-listen", "127.0.0.1:0"],
        &[("LAYERCAKE_WORKER_TOKEN", &worker_token)],
        &remote_config,
        &data("r"),
        "worker metrics on http://",
    );
    let remote_metrics = metrics_url(&line);
    let remote_name = format!("/{}/", remote.0.id());

    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {private}").parse().unwrap(),
    );
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();

    // 20 configurations: 4 bodies × 5 leg styles.
    let configs: Vec<Value> = ["Slate", "Oatmeal", "Navy", "Forest"]
        .iter()
        .flat_map(|body| {
            [
                "Tapered Oak",
                "Walnut Block",
                "Black Hairpin",
                "Brass Cone",
                "Chrome Sled",
            ]
            .map(|legs| json!({"Body": body, "Legs": legs}))
        })
        .collect();
    let url = |base: &str, c: &Value| {
        format!(
            "{base}/api/fast-compositor?assetId={SOFA}&configuration={}&width=96",
            enc(c)
        )
    };
    let started = Instant::now();
    let answers = futures::future::join_all((0..200).map(|i| {
        let base = if i % 2 == 0 { &a } else { &b };
        let u = url(base, &configs[i % 20]);
        let client = client.clone();
        async move {
            let t = Instant::now();
            let r = client.get(&u).send().await.unwrap();
            let status = r.status().as_u16();
            let bytes = r.bytes().await.unwrap();
            assert_eq!(status, 200, "{u}: {}", String::from_utf8_lossy(&bytes));
            (i, bytes, t.elapsed().as_secs_f64() * 1000.0)
        }
    }))
    .await;
    let wall = started.elapsed();
    let mut by_config: HashMap<usize, HashSet<bytes::Bytes>> = HashMap::new();
    for (i, bytes, _) in &answers {
        by_config.entry(i % 20).or_default().insert(bytes.clone());
    }
    assert!(
        by_config.values().all(|set| set.len() == 1),
        "one body per configuration, on both nodes"
    );
    let mut ms: Vec<f64> = answers.iter().map(|(_, _, ms)| *ms).collect();
    ms.sort_by(f64::total_cmp);

    let tasks = json_of(&client, &format!("{b}/api/jobs/tasks?perPage=1")).await;
    let layers = json_of(&client, &format!("{a}/api/layers?perPage=1")).await;
    let keys = tasks["count"].as_f64().unwrap();
    let (dbm, rm) = (
        text(&client, &db_metrics).await,
        text(&client, &remote_metrics).await,
    );
    let (am, bm) = (
        text(&client, &format!("{a}/metrics")).await,
        text(&client, &format!("{b}/metrics")).await,
    );
    let (woken, mean, p50, p99) = wake_delays(&[&am, &bm]);
    eprintln!(
        "multi-node wake-ups: {woken} waits for a task ended on the serve nodes; task stopped → waiting request saw it: mean {mean:.1} ms, p50 ≤ {p50} ms, p99 ≤ {p99} ms (histogram buckets)"
    );
    assert!(
        woken >= 1.0,
        "requests waited for renders on the serve nodes"
    );
    let by_db = metric(&dbm, SUCCESS);
    let by_remote = metric(&rm, SUCCESS);
    let by_servers = metric(&am, SUCCESS) + metric(&bm, SUCCESS);
    eprintln!(
        "multi-node burst: notify={} wall {:.2} s; waiting requests p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {keys} distinct layer keys; renders: database worker {by_db}, remote worker {by_remote}, serve nodes {by_servers}",
        std::env::var("LAYERCAKE_JOBS__NOTIFY").unwrap_or_else(|_| "true".into()),
        wall.as_secs_f64(),
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        ms[ms.len() - 1],
    );
    assert_eq!(
        by_db + by_remote + by_servers,
        keys,
        "each layer key rendered exactly once over all processes"
    );
    assert_eq!(
        layers["count"].as_f64().unwrap(),
        keys,
        "one layer record per key"
    );
    assert!(
        by_db >= 1.0 && by_remote >= 1.0,
        "both workers rendered: {by_db} / {by_remote}"
    );
    for m in [&dbm, &rm] {
        for label in ["retry", "failure"] {
            assert_eq!(
                metric(m, &format!("layercake_renders_total{{result=\"{label}\"}}")),
                0.0
            );
        }
        assert_eq!(metric(m, "layercake_renders_duplicate_total"), 0.0);
    }

    // The remote worker dies mid-render: the database worker is paused so
    // that the remote one takes the new tasks, then killed while they render.
    std::fs::write(dir.path().join("slow"), "").unwrap();
    let signal = |sig: &str, pid: u32| {
        let s = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap();
        assert!(s.success());
    };
    signal("-STOP", db_worker.0.id());
    let fresh = json!({"Body": "Rust", "Legs": "Brass Cone"});
    let waiting = tokio::spawn({
        let (c, u) = (client.clone(), url(&b, &fresh));
        async move {
            let r = c.get(&u).send().await.unwrap();
            (r.status().as_u16(), r.bytes().await.unwrap())
        }
    });
    let mut guard = common::Guard::new();
    let held: Vec<String> = loop {
        let t = json_of(
            &client,
            &format!("{a}/api/jobs/tasks?runStatus=running&perPage=100"),
        )
        .await;
        let mine: Vec<String> = t["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| {
                t["runs"]
                    .as_array()
                    .and_then(|r| r.last())
                    .and_then(|r| r["worker"].as_str())
                    .is_some_and(|w| w.contains(&remote_name))
            })
            .map(|t| t["id"].as_str().unwrap().to_string())
            .collect();
        if !mine.is_empty() {
            break mine;
        }
        guard
            .wait(&format!("the remote worker taking a task: {t}"))
            .await;
    };
    remote.0.kill().unwrap();
    remote.0.wait().unwrap();
    std::fs::remove_file(dir.path().join("slow")).unwrap();
    signal("-CONT", db_worker.0.id());
    let (status, _) = waiting.await.unwrap();
    assert_eq!(status, 200, "the waiting request gets its image");
    for id in &held {
        let task = json_of(&client, &format!("{b}/api/jobs/tasks/{id}")).await;
        let runs = task["runs"].as_array().unwrap();
        assert_eq!(task["runResult"], "Success", "{task}");
        assert_eq!(runs.len(), 2, "{task}");
        assert!(runs[0]["worker"].as_str().unwrap().contains(&remote_name));
        assert!(
            runs[0]["error"].as_str().unwrap().contains("lease"),
            "{task}"
        );
        assert!(!runs[1]["worker"].as_str().unwrap().contains(&remote_name));
    }
    let tasks = json_of(&client, &format!("{b}/api/jobs/tasks?perPage=1")).await;
    let layers = json_of(&client, &format!("{a}/api/layers?perPage=1")).await;
    assert_eq!(
        layers["count"], tasks["count"],
        "nothing recorded twice, nothing lost"
    );
    let dbm = text(&client, &db_metrics).await;
    assert_eq!(metric(&dbm, "layercake_renders_duplicate_total"), 0.0);
    assert_eq!(
        by_remote + metric(&dbm, SUCCESS),
        tasks["count"].as_f64().unwrap(),
        "the database worker rendered every key the remote one did not finish"
    );
    eprintln!(
        "multi-node takeover: {} task(s) of the killed remote worker finished by the database worker; whole test {:.1} s",
        held.len(),
        started.elapsed().as_secs_f64()
    );
}
