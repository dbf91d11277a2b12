//! The FaaS daemons as a library: the binaries in `src/bin` only parse flags and call `run`.
//!
//! - [`store`]: Redis access (functions, tasks, the queue stream, events, the epoch).
//! - [`gateway`]: the HTTP API (axum) and its edge (connection cap, timeouts).
//! - [`dispatcher`]: takes tasks from the queue and runs them, locally or on workers.
//! - [`worker`]: `faas-worker`, running tasks for a push or pull dispatcher.
//! - [`executor`]: the pool of sandboxed Python children that run user code.
//! - [`channel`]: the worker key and the Noise sealing of dispatcher ⇄ worker frames.
//! - [`cli`]: what every daemon binary shares (logging, open-file limit, signals, exit codes).
//! - [`metrics`]: the Prometheus recorder and `/metrics` listener.
//! - [`notify`]: systemd readiness (`sd-notify`).
//! - [`backoff`]: retry delays with jitter.

/// Retry delays with jitter: one policy, shared with the console and the CLI.
pub use faas_protocol::backoff;
pub mod channel;
pub mod cli;
pub mod dispatcher;
pub mod executor;
pub mod gateway;
pub mod metrics;
pub mod notify;
pub mod store;
pub mod worker;

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time in milliseconds, the unit of every timestamp the platform stores.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
