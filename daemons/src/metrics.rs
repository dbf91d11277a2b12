//! Prometheus metrics of the daemons: the metric names (one table, like the Redis keys), the
//! recorder each process installs, the small functions the dispatcher calls, and [`serve`], the
//! `GET /metrics` listener of daemons that have no HTTP API of their own.
//!
//! | name                                      | type      | labels                  | who     |
//! |-------------------------------------------|-----------|-------------------------|---------|
//! | `faas_http_requests_total`                | counter   | route, method, status   | gateway |
//! | `faas_http_request_duration_seconds`      | histogram | route, method           | gateway |
//! | `faas_gateway_tasks_submitted_total`      | counter   |                         | gateway |
//! | `faas_tasks_{submitted,completed,failed,requeued}_total` | counter | (read from `{p}:stats` at scrape) | gateway |
//! | `faas_queue_depth`                        | gauge     | (XLEN `{p}:queue` at scrape) | gateway |
//! | `faas_redis_up`                           | gauge     | (1 when the scrape-time read worked) | gateway |
//! | `faas_dispatcher_tasks_dispatched_total`  | counter   |                         | dispatcher |
//! | `faas_dispatcher_results_total`           | counter   | status                  | dispatcher |
//! | `faas_dispatcher_requeues_total`          | counter   | reason                  | dispatcher |
//! | `faas_dispatcher_workers_online`          | gauge     |                         | dispatcher |
//! | `faas_dispatcher_task_duration_seconds`   | histogram |                         | dispatcher |
//! | `faas_dispatcher_stale_results_total`     | counter   |                         | dispatcher |
//! | `faas_dispatcher_channel_refused_total`   | counter   | reason                  | dispatcher |
//!
//! Without an installed recorder (unit tests) every function here is a no-op, so code can call
//! them unconditionally.

use std::time::Duration;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use faas_protocol::TaskStatus;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub const HTTP_REQUESTS: &str = "faas_http_requests_total";
pub const HTTP_DURATION: &str = "faas_http_request_duration_seconds";
pub const GATEWAY_TASKS_SUBMITTED: &str = "faas_gateway_tasks_submitted_total";

pub const TASKS_DISPATCHED: &str = "faas_dispatcher_tasks_dispatched_total";
pub const TASK_RESULTS: &str = "faas_dispatcher_results_total";
pub const TASK_REQUEUES: &str = "faas_dispatcher_requeues_total";
pub const WORKERS_ONLINE: &str = "faas_dispatcher_workers_online";
pub const TASK_DURATION: &str = "faas_dispatcher_task_duration_seconds";
pub const STALE_RESULTS: &str = "faas_dispatcher_stale_results_total";
pub const CHANNEL_REFUSED: &str = "faas_dispatcher_channel_refused_total";

/// Cluster-wide values the gateway reads from Redis when it is scraped.
pub const TASKS_STATS_PREFIX: &str = "faas_tasks_";
pub const QUEUE_DEPTH: &str = "faas_queue_depth";
pub const REDIS_UP: &str = "faas_redis_up";

/// The exposition format's content type.
pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Histogram buckets in seconds: from a fast HTTP call to a long task.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// How often histograms are compacted (the exporter leaves that to its user).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot install the metrics recorder: {0}")]
    Install(String),
    #[error("cannot listen for metrics on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// Installs the process-wide Prometheus recorder and returns the handle that renders it.
/// Call once per process, inside the Tokio runtime (it spawns the upkeep task).
pub fn install() -> Result<PrometheusHandle, MetricsError> {
    let handle = PrometheusBuilder::new()
        .set_buckets(BUCKETS)
        .map_err(|e| MetricsError::Install(e.to_string()))?
        .install_recorder()
        .map_err(|e| MetricsError::Install(e.to_string()))?;
    describe();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP_EVERY);
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// Help texts, and counters registered at zero so that a scrape shows them before they move.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route, method and status"
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time to answer an HTTP request"
    );
    describe_counter!(
        GATEWAY_TASKS_SUBMITTED,
        "Tasks this gateway accepted (POST /execute_function answered 200)"
    );
    describe_counter!(TASKS_DISPATCHED, "Tasks handed to an executor or worker");
    describe_counter!(TASK_RESULTS, "Task results recorded, by final status");
    describe_counter!(
        TASK_REQUEUES,
        "Tasks put back on the queue after an infrastructure failure"
    );
    describe_gauge!(WORKERS_ONLINE, "Workers connected to this dispatcher");
    describe_counter!(
        STALE_RESULTS,
        "Results dropped because the task no longer ran under that lease (a late attempt)"
    );
    describe_counter!(
        CHANNEL_REFUSED,
        "Worker-channel frames or handshakes refused (no key, wrong key, forged, wrong session)"
    );
    describe_histogram!(
        TASK_DURATION,
        Unit::Seconds,
        "Execution time of a task, from start to result"
    );
}

/// Registers the gateway's own counters at zero.
pub fn init_gateway() {
    metrics::counter!(GATEWAY_TASKS_SUBMITTED).absolute(0);
}

/// Registers the dispatcher's counters at zero.
pub fn init_dispatcher() {
    metrics::counter!(TASKS_DISPATCHED).absolute(0);
    for status in [TaskStatus::Completed, TaskStatus::Failed] {
        metrics::counter!(TASK_RESULTS, "status" => status.as_str()).absolute(0);
    }
    metrics::gauge!(WORKERS_ONLINE).set(0.0);
    metrics::counter!(STALE_RESULTS).absolute(0);
}

/// One answered HTTP request. `route` is the matched route template, never the raw path, so
/// that ids do not explode the label set.
pub fn http_request(route: &str, method: &str, status: u16, elapsed: Duration) {
    metrics::counter!(HTTP_REQUESTS, "route" => route.to_owned(), "method" => method.to_owned(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!(HTTP_DURATION, "route" => route.to_owned(), "method" => method.to_owned())
        .record(elapsed.as_secs_f64());
}

/// The gateway accepted a task (`POST /execute_function`: counted by the metrics middleware).
pub fn task_submitted() {
    tasks_submitted(1);
}

/// The gateway accepted `n` tasks at once (a batch: its handler calls this).
pub fn tasks_submitted(n: u64) {
    metrics::counter!(GATEWAY_TASKS_SUBMITTED).increment(n);
}

/// The dispatcher handed a task to an executor or a worker.
pub fn task_dispatched() {
    metrics::counter!(TASKS_DISPATCHED).increment(1);
}

/// A task reached a terminal status after running for `elapsed`.
pub fn task_finished(status: TaskStatus, elapsed: Duration) {
    metrics::counter!(TASK_RESULTS, "status" => status.as_str()).increment(1);
    metrics::histogram!(TASK_DURATION).record(elapsed.as_secs_f64());
}

/// A task went back to the queue; `reason` is a short fixed word (`worker_lost`, `drain`, ...).
pub fn task_requeued(reason: &'static str) {
    metrics::counter!(TASK_REQUEUES, "reason" => reason).increment(1);
}

/// A result of an earlier attempt (or of no current assignment) was not recorded.
pub fn stale_result() {
    metrics::counter!(STALE_RESULTS).increment(1);
}

/// The worker channel refused a frame; `reason` is a short fixed word.
pub fn channel_refused(reason: &'static str) {
    metrics::counter!(CHANNEL_REFUSED, "reason" => reason).increment(1);
}

/// How many workers are connected now.
pub fn workers_online(n: usize) {
    metrics::gauge!(WORKERS_ONLINE).set(n as f64);
}

/// Installs the recorder and serves `GET /metrics` on `addr` until `shutdown`, for daemons
/// without an HTTP API (`--metrics-listen`). Binding happens before this returns, so a bad
/// address is reported at start-up (exit 64 in the daemons) rather than from a background task.
pub async fn serve(
    addr: &str,
    shutdown: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, MetricsError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind {
            addr: addr.to_owned(),
            source,
        })?;
    let handle = install()?;
    // The bound address (`:0` resolved), like the gateway's `listening` event.
    let local = listener
        .local_addr()
        .map_or_else(|_| addr.to_owned(), |a| a.to_string());
    info!(event = "metrics_listening", addr = %local, "serving metrics on /metrics");
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let body = handle.render();
            async move { ([(CONTENT_TYPE, CONTENT_TYPE_TEXT)], body).into_response() }
        }),
    );
    Ok(tokio::spawn(async move {
        let stop = shutdown.clone();
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
        {
            warn!(event = "metrics_failed", error = %e, "metrics listener failed");
        }
    }))
}

/// Prometheus text for values that are not recorded in this process but read at scrape time.
pub fn render_value(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    use std::fmt::Write;
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrape_time_values_are_valid_exposition_text() {
        let mut out = String::new();
        render_value(&mut out, QUEUE_DEPTH, "gauge", "Entries in the queue", 7);
        assert_eq!(
            out,
            "# HELP faas_queue_depth Entries in the queue\n# TYPE faas_queue_depth gauge\nfaas_queue_depth 7\n"
        );
    }

    #[test]
    fn recording_without_a_recorder_is_a_no_op() {
        http_request("/healthz", "GET", 200, Duration::from_millis(1));
        task_finished(TaskStatus::Completed, Duration::from_millis(3));
        workers_online(2);
    }
}
