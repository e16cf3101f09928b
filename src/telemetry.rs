//! Metrics: names, labels and the Prometheus recorder.
//!
//! Every metric is named here, prefixed `layercake_`, so the set an
//! operator can rely on is in one file:
//!
//! | name | type | labels |
//! |---|---|---|
//! | `layercake_http_requests_total` | counter | `route`, `method`, `status` |
//! | `layercake_http_request_duration_seconds` | histogram | `route` |
//! | `layercake_cache_requests_total` | counter | `cache` (composite, layer, flattened), `tier` (memory, disk, store), `result` (hit, miss) |
//! | `layercake_renders_total` | counter | `result` (success, retry, failure) |
//! | `layercake_renders_duplicate_total` | counter | renders finished for a key that already had a usable stored layer (wasted work: one render per key is the promise) |
//! | `layercake_renders_reused_total` | counter | `at` (queue, claim): tasks finished without rendering because their key was already recorded |
//! | `layercake_render_duration_seconds` | histogram | |
//! | `layercake_encodes_total` | counter | `format`: composites encoded (one per miss, however many requests wait for it) |
//! | `layercake_queue_wait_seconds` | histogram | (task queued or due → claimed: waiting, apart from work) |
//! | `layercake_queue_depth` | gauge | `status` (pending, running) |
//! | `layercake_cache_bytes` | gauge | `cache` (composites, layers, flattened, stand-ins, disk) |
//! | `layercake_compose_waiting` | gauge | (requests waiting for a compose slot) |
//! | `layercake_rejected_total` | counter | `reason` (compose, render-queue, org-share) |
//! | `layercake_webhook_deliveries_total` | counter | `result` (delivered, retry, failed) |
//! | `layercake_store_corrupt_total` | counter | `tier` (disk, outbox, store): objects whose blake3 did not match, deleted |
//! | `layercake_store_errors_total` | counter | `op` (get, put, head, delete, list): object store requests that failed after their retries |
//! | `layercake_store_up` | gauge | 1 while the object store answers, 0 while it is taken as down |
//! | `layercake_store_outbox` | gauge | `unit` (objects, bytes): writes waiting for the object store |
//! | `layercake_connections_refused_total` | counter | client connections answered 503 at once because `http.max_connections` were open |
//! | `layercake_webhook_addresses_refused_total` | counter | webhook deliveries refused because their address is not public |
//! | `layercake_store_composites` | gauge | `unit` (objects, bytes): composites in the object store, as the ledger counts them (`storage.composite_budget_bytes`) |
//! | `layercake_composites_evicted_total` | counter | composites deleted from the object store to keep it within its budget |
//!
//! The recorder is process-wide (the `metrics` facade has one global
//! recorder); [`handle`] installs it on first use, which `App` does at
//! start so that nothing is counted before it exists.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

pub const HTTP_REQUESTS: &str = "layercake_http_requests_total";
pub const HTTP_DURATION: &str = "layercake_http_request_duration_seconds";
pub const CACHE_REQUESTS: &str = "layercake_cache_requests_total";
pub const RENDERS: &str = "layercake_renders_total";
/// Composites encoded (by output format): one per miss, however many wait.
pub const ENCODES: &str = "layercake_encodes_total";
pub const RENDERS_DUPLICATE: &str = "layercake_renders_duplicate_total";
pub const RENDERS_REUSED: &str = "layercake_renders_reused_total";
pub const RENDER_DURATION: &str = "layercake_render_duration_seconds";
pub const QUEUE_WAIT: &str = "layercake_queue_wait_seconds";
pub const QUEUE_DEPTH: &str = "layercake_queue_depth";
/// From a task stopping (its row's time) to a request waiting for it
/// seeing so: how prompt the wake-ups are, in this process or across.
pub const WAKE_DELAY: &str = "layercake_task_wake_delay_seconds";
pub const CACHE_BYTES: &str = "layercake_cache_bytes";
pub const COMPOSE_WAITING: &str = "layercake_compose_waiting";
pub const REJECTED: &str = "layercake_rejected_total";
pub const WEBHOOK_DELIVERIES: &str = "layercake_webhook_deliveries_total";
pub const STORE_CORRUPT: &str = "layercake_store_corrupt_total";
pub const STORE_ERRORS: &str = "layercake_store_errors_total";
pub const STORE_UP: &str = "layercake_store_up";
pub const CONNECTIONS_REFUSED: &str = "layercake_connections_refused_total";
pub const WEBHOOKS_REFUSED: &str = "layercake_webhook_addresses_refused_total";
pub const STORE_OUTBOX: &str = "layercake_store_outbox";
pub const STORE_COMPOSITES: &str = "layercake_store_composites";
pub const COMPOSITES_EVICTED: &str = "layercake_composites_evicted_total";

/// Every metric's `# HELP` line on `/metrics`.
pub const DESCRIPTIONS: [(&str, &str); 23] = [
    (
        HTTP_REQUESTS,
        "HTTP requests answered, by route and status class",
    ),
    (HTTP_DURATION, "Time to answer an HTTP request, by route"),
    (
        CACHE_REQUESTS,
        "Cache lookups, by cache, tier and hit or miss",
    ),
    (RENDERS, "Layer renders finished, by backend and outcome"),
    (
        ENCODES,
        "Composites encoded, by output format (one per miss, however many wait)",
    ),
    (
        RENDERS_DUPLICATE,
        "Renders of a layer key that was already stored (should stay 0)",
    ),
    (
        RENDERS_REUSED,
        "Render requests answered by a task already running or done",
    ),
    (RENDER_DURATION, "Time one layer render took, by backend"),
    (
        QUEUE_WAIT,
        "Time a render task waited in the queue before a worker claimed it",
    ),
    (QUEUE_DEPTH, "Render tasks queued and not yet claimed"),
    (
        WAKE_DELAY,
        "From a task stopping to a waiting request seeing so",
    ),
    (CACHE_BYTES, "Bytes held by each in-memory cache"),
    (COMPOSE_WAITING, "Composes waiting for a CPU slot"),
    (REJECTED, "Requests refused for capacity (429), by reason"),
    (WEBHOOK_DELIVERIES, "Webhook delivery attempts, by outcome"),
    (
        STORE_CORRUPT,
        "Objects read from the store whose integrity seal did not match",
    ),
    (
        STORE_ERRORS,
        "Object store operations that failed, by operation",
    ),
    (STORE_UP, "Whether the object store answers (1) or not (0)"),
    (
        CONNECTIONS_REFUSED,
        "Connections refused at http.max_connections",
    ),
    (WEBHOOKS_REFUSED, "Webhook addresses refused (not public)"),
    (
        STORE_OUTBOX,
        "Objects written locally, waiting to reach the object store",
    ),
    (STORE_COMPOSITES, "Composites kept in the object store"),
    (
        COMPOSITES_EVICTED,
        "Composites removed from the object store past its budget",
    ),
];

/// Seconds: from a memory hit (tens of µs) to a long render (minutes).
const BUCKETS: &[f64] = &[
    0.000_1, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0, 30.0, 60.0, 300.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The Prometheus recorder of this process, installed on first call;
/// `None` if another recorder was installed first (then `/metrics` says so).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            for (name, help) in DESCRIPTIONS {
                // The kind is the exporter's concern; the text is the same.
                metrics::describe_counter!(name, help);
            }
            Some(handle)
        })
        .as_ref()
}

/// Drains histogram samples into their buckets every few seconds (the
/// recorder keeps raw samples until then; without this, a server nobody
/// scrapes would grow forever).
pub fn spawn_upkeep(
    tracker: &tokio_util::task::TaskTracker,
    stop: &tokio_util::sync::CancellationToken,
) {
    let stop = stop.clone();
    tracker.spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
            }
            if let Some(h) = handle() {
                h.run_upkeep();
            }
        }
    });
}

/// Counts one cache lookup.
pub fn cache_lookup(cache: &'static str, tier: &'static str, hit: bool) {
    metrics::counter!(CACHE_REQUESTS, "cache" => cache, "tier" => tier, "result" => if hit { "hit" } else { "miss" })
        .increment(1);
}

/// What one piece of work asked of the stores: connections taken from the
/// metadata pool and calls of the blob store, counted for the task that
/// runs it (see [`tally_io`]); background tasks do not count.
#[derive(Debug, Default)]
pub struct IoTally {
    meta: std::sync::atomic::AtomicU64,
    store: std::sync::atomic::AtomicU64,
}

/// The counts of an [`IoTally`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IoCounts {
    pub meta: u64,
    pub store: u64,
}

tokio::task_local! {
    static IO: std::sync::Arc<IoTally>;
}

/// Runs `work`, counting what it (in this task) asks of the metadata and
/// blob stores: how a test proves that a hit costs no I/O.
pub async fn tally_io<F: std::future::Future>(work: F) -> (F::Output, IoCounts) {
    let tally = std::sync::Arc::new(IoTally::default());
    let out = IO.scope(std::sync::Arc::clone(&tally), work).await;
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    let counts = IoCounts {
        meta: load(&tally.meta),
        store: load(&tally.store),
    };
    (out, counts)
}

/// `work`, counting for the tally of the task that made it (if any) once
/// spawned: work a request starts and awaits counts as that request's.
pub fn carry_io<F: std::future::Future>(work: F) -> impl std::future::Future<Output = F::Output> {
    let tally = IO.try_with(std::sync::Arc::clone).ok();
    async move {
        match tally {
            Some(t) => IO.scope(t, work).await,
            None => work.await,
        }
    }
}

/// A connection was taken from the metadata pool.
pub fn note_meta_io() {
    let _ = IO.try_with(|t| t.meta.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
}

/// The blob store was called.
pub fn note_store_io() {
    let _ = IO.try_with(|t| t.store.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
}
