//! The HTTP gateway: registers functions, submits executions, answers status and results.
//!
//! Wire-compatible with the original Python clients (`/register_function`, `/execute_function`,
//! `/status/{id}`, `/result/{id}` with dill + base64 payloads, and the original platform's own
//! names for those two, `/get_task_status/{id}` and `/get_task_result/{id}`) and JSON-native for everyone else
//! (`source` functions, JSON `args`). The router is a plain function of its state ([`app`]), so
//! tests drive it in-process with `tower::ServiceExt::oneshot` (tests/tests/gateway_router.rs)
//! as well as over a real socket. Its routes come from
//! [`openapi::api`], which documents each route it adds: `/openapi.json` and `/docs` describe
//! exactly what is served. Task search, cancel, retry, purge and function statistics and
//! deletion are in [`task_api`] (their storage in `store::tasks`).

mod auth;
mod batch;
pub mod edge;
mod error;
pub mod events;
mod extract;
mod handlers;
mod metrics;
pub mod openapi;
mod results_wait;
mod syntax;
mod task_api;
pub mod validate;
mod waiters;
mod workers;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::Router;
use faas_protocol::FunctionId;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::{debug, info};

pub use edge::EdgeConfig;
pub use error::ApiError;
pub use events::{EventHub, EventsConfig};
pub use waiters::Waiters;

use crate::store::{FunctionMeta, Store};

/// Settings of the gateway.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Largest accepted request body, in bytes (413 above).
    pub body_limit: usize,
    /// Longest `?wait=` honoured; longer waits are cut to this.
    pub max_wait: Duration,
    /// `max_attempts` of an execution that does not say.
    pub default_max_attempts: u32,
    /// How long in-flight requests (long polls included) may run on after shutdown begins.
    pub shutdown_grace: Duration,
    /// Most `?wait=` long polls held at once; beyond it `/result` answers at once (the client
    /// polls again), so waiting requests cannot take every connection.
    pub max_waits: usize,
    /// Connection cap and timeouts of the HTTP edge.
    pub edge: EdgeConfig,
    /// `GET /events`: fan-out buffer, backlog, heartbeat, stream cap.
    pub events: EventsConfig,
    /// How long the records of tasks the gateway ends (cancel, purge, function deletion) are
    /// kept: the dispatchers' result TTL.
    pub retention: Duration,
    /// The Python that syntax-checks source functions at registration; None: no check
    /// ([`syntax`]).
    pub python: Option<std::path::PathBuf>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            body_limit: 10 * 1024 * 1024,
            max_wait: Duration::from_secs(300),
            default_max_attempts: 3,
            shutdown_grace: Duration::from_secs(5),
            max_waits: 5_000,
            edge: EdgeConfig::default(),
            events: EventsConfig::default(),
            retention: Duration::from_secs(86_400),
            python: Some("python3".into()),
        }
    }
}

/// Shared by every request.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<GatewayConfig>,
    pub waiters: Arc<Waiters>,
    /// The fan-out of live events to `GET /events` streams.
    pub events: Arc<EventHub>,
    /// One permit per long poll held ([`GatewayConfig::max_waits`]).
    wait_slots: Arc<Semaphore>,
    /// Functions never change once registered: their name and format are cached by id, until
    /// the Redis epoch changes ([`crate::store::watch_epoch`]).
    functions: Arc<RwLock<HashMap<FunctionId, FunctionMeta>>>,
    /// When set, every route but `/healthz` needs `Authorization: Bearer <token>`.
    token: Option<Arc<str>>,
    /// Renders this process's metrics on `/metrics` (none in unit tests: only Redis values).
    metrics: Option<PrometheusHandle>,
}

impl AppState {
    pub fn new(store: Store, config: GatewayConfig) -> Self {
        Self {
            store,
            wait_slots: Arc::new(Semaphore::new(config.max_waits)),
            events: Arc::new(EventHub::new(config.events.clone())),
            config: Arc::new(config),
            waiters: Arc::default(),
            functions: Arc::default(),
            token: None,
            metrics: None,
        }
    }

    /// Requires `token` on every route but `/healthz` (an empty token means none).
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token.filter(|t| !t.is_empty()).map(Arc::from);
        self
    }

    /// Serves this process's recorder on `/metrics` (see [`crate::metrics::install`]).
    pub fn with_metrics(mut self, handle: PrometheusHandle) -> Self {
        self.metrics = Some(handle);
        self
    }
}

/// The whole HTTP API.
pub fn app(state: AppState) -> Router {
    let x_request_id = axum::http::HeaderName::from_static("x-request-id");
    // Every route is added in `openapi::api`, with its description; add none here.
    let (routes, _) = openapi::api().split_for_parts();
    routes
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.body_limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .layer(middleware::from_fn(metrics::track))
        .layer(TraceLayer::new_for_http())
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` (through [`edge::serve`]), with the event
/// listener that wakes result waiters. In-flight requests finish within the shutdown grace.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let events = tokio::spawn(waiters::listen(
        state.store.client().clone(),
        state.store.keys().finished(),
        state.waiters.clone(),
        shutdown.clone(),
    ));
    let hub = tokio::spawn(state.events.clone().listen(
        state.store.client().clone(),
        state.store.keys().events(),
        state.store.keys().task_prefix(),
        shutdown.clone(),
    ));
    // Streams never end by themselves: they end when shutdown begins, not after the grace.
    let closer = {
        let (events, shutdown) = (state.events.clone(), shutdown.clone());
        tokio::spawn(async move {
            shutdown.cancelled().await;
            events.close();
        })
    };
    {
        let store = state.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.upgrade_indexes().await {
                debug!(error = %e, "earlier task indexes not upgraded; the next start tries again");
            }
        });
    }
    let functions = state.functions.clone();
    let epoch = tokio::spawn(crate::store::watch_epoch(
        state.store.clone(),
        shutdown.clone(),
        move || functions.write().expect("cache lock").clear(),
    ));
    info!(event = "listening", addr = %listener.local_addr()?, "gateway listening");
    let grace = state.config.shutdown_grace;
    let edge = state.config.edge.clone();
    edge::serve(listener, app(state), &edge, shutdown.clone(), grace).await;
    shutdown.cancel();
    let _ = events.await;
    let _ = hub.await;
    let _ = closer.await;
    let _ = epoch.await;
    Ok(())
}
