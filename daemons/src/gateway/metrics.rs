//! `GET /metrics` and the middleware that counts requests.
//!
//! Per-process values (requests by route and status, latency, tasks this gateway accepted) come
//! from the process's Prometheus recorder; cluster-wide values (completed and failed tasks, queue
//! depth) are read from Redis at scrape time, so any gateway of a fleet reports the same truth
//! and nothing is double counted when several gateways are scraped.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::metrics::{self as m, CONTENT_TYPE_TEXT};
use faas_protocol::api::ErrorReply;
use faas_protocol::keys::fields::stats as sf;

/// Label of requests that matched no route, so unknown paths cannot grow the label set.
const UNMATCHED: &str = "unmatched";

/// Middleware: counts every answered request by route template, method and status, and times it.
pub async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
        .to_owned();
    let method = req.method().clone();
    let resp = next.run(req).await;
    let status = resp.status();
    m::http_request(&route, method.as_str(), status.as_u16(), started.elapsed());
    if method == Method::POST && route == "/execute_function" && status == StatusCode::OK {
        m::task_submitted();
    }
    resp
}

/// The exposition text: this process's recorder, then the values read from Redis.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus exposition text (`faas_redis_up` is 0 when Redis could not be read)", body = String, content_type = "text/plain; version=0.0.4; charset=utf-8"),
        (status = 401, description = "Missing or wrong token", body = ErrorReply),
    )
)]
pub async fn metrics(State(st): State<AppState>) -> Response {
    let mut body = st.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    match cluster_values(&st).await {
        Ok((stats, depth)) => {
            for (field, help) in [
                (
                    sf::SUBMITTED,
                    "Tasks submitted to the platform (all gateways)",
                ),
                (sf::COMPLETED, "Tasks that completed (all dispatchers)"),
                (sf::FAILED, "Tasks that failed (all dispatchers)"),
                (
                    sf::REQUEUED,
                    "Tasks put back on the queue after an infrastructure failure",
                ),
            ] {
                let value = stats.get(field).copied().unwrap_or(0);
                let name = format!("{}{field}_total", m::TASKS_STATS_PREFIX);
                m::render_value(&mut body, &name, "counter", help, value);
            }
            m::render_value(
                &mut body,
                m::QUEUE_DEPTH,
                "gauge",
                "Entries in the task queue stream not yet acknowledged",
                depth,
            );
            m::render_value(
                &mut body,
                m::REDIS_UP,
                "gauge",
                "Whether the gateway could read Redis for this scrape",
                1,
            );
        }
        Err(e) => {
            tracing::warn!(event = "metrics_redis_failed", error = %e, "metrics: cannot read cluster values from redis");
            m::render_value(
                &mut body,
                m::REDIS_UP,
                "gauge",
                "Whether the gateway could read Redis for this scrape",
                0,
            );
        }
    }
    // Tasks some request of this gateway is waiting for: returns to 0 when no request waits.
    m::render_value(
        &mut body,
        "faas_gateway_result_waiters",
        "gauge",
        "Tasks that long-polling requests of this gateway are waiting for",
        st.waiters.len() as u64,
    );
    ([(CONTENT_TYPE, CONTENT_TYPE_TEXT)], body).into_response()
}

async fn cluster_values(
    st: &AppState,
) -> Result<(std::collections::HashMap<String, u64>, u64), crate::store::StoreError> {
    let stats = st.store.stats().await?;
    let depth = st.store.queue_depth().await?;
    Ok((stats, depth))
}
