//! The Python executor: a pool of long-lived `python3` children that run tasks one at a time.
//!
//! Each child runs `bootstrap.py` (embedded in the binary) and talks length-prefixed JSON over
//! its stdin/stdout. Children are started once and reused, so a task never pays for a process
//! spawn; a child that times out or dies is killed as a process group and replaced.

mod child;
mod pool;

use std::time::Duration;

pub use faas_protocol::model::Outcome;
use faas_protocol::{FunctionFormat, FunctionId, TaskId};

pub use pool::{Pool, PoolConfig, Slot};

/// A registered function as the executor needs it. Functions never change once registered,
/// so dispatchers and workers cache these by id.
#[derive(Clone, Debug)]
pub struct FunctionDef {
    pub id: FunctionId,
    pub format: FunctionFormat,
    /// dill: base64 of the pickle; source: the Python source text.
    pub body: String,
    pub entrypoint: Option<String>,
}

/// One execution to run.
#[derive(Clone, Debug)]
pub struct Job {
    pub task_id: TaskId,
    pub function: std::sync::Arc<FunctionDef>,
    /// dill: base64 string of the pickled `(args, kwargs)`; source: `{"args": [], "kwargs": {}}`.
    pub args: serde_json::Value,
    pub timeout: Duration,
}

/// Errors that stop a pool from starting at all.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    #[error("cannot start python {python:?}: {source}")]
    Spawn {
        python: String,
        #[source]
        source: std::io::Error,
    },
    #[error("python {python:?} did not start the executor: {detail}")]
    Handshake { python: String, detail: String },
}
