//! The messages between the network tasks and the UI state: `Update`s flow in, `Command`s out.
//!
//! Keeping them plain data is what lets the state and the key handling be tested without a
//! terminal or a network: a test feeds `Update`s and keys and checks the `Command`s that come out.

use faas_protocol::api::{FunctionDetail, ResultReply, TaskSummary};
use faas_protocol::event::Event;
use faas_protocol::model::{FunctionSummary, TaskRecord, WorkerInfo};
use faas_protocol::{FunctionId, TaskId, TaskStatus};

/// The state of one connection, as the header shows it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Link {
    /// Not connected yet, no failure so far.
    #[default]
    Connecting,
    /// Connected since this Unix time (ms).
    Up { since_ms: u64 },
    /// The last attempt failed; the next one is at `retry_at_ms`.
    Down { retry_at_ms: u64, error: String },
}

impl Link {
    pub fn is_up(&self) -> bool {
        matches!(self, Link::Up { .. })
    }
}

/// The platform counters of `{prefix}:stats`: totals since the platform's Redis began.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Stats {
    pub submitted: u64,
    pub completed: u64,
    pub failed: u64,
    pub requeued: u64,
}

/// One periodic read of the platform's state from Redis.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Snapshot {
    pub stats: Stats,
    /// XLEN of the queue stream: queued plus in-flight entries.
    pub queue_len: u64,
    /// Entries delivered to a dispatcher and not yet acknowledged (in flight).
    pub pending: u64,
    /// The worker registry.
    pub workers: Vec<WorkerInfo>,
}

/// What the task hash says about a task, read to fill in what events do not carry.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TaskInfo {
    pub function_name: Option<String>,
    pub status: Option<TaskStatus>,
    pub worker: Option<String>,
    pub attempts: Option<u32>,
    pub created_at: Option<u64>,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
}

/// From the network tasks to the state.
#[derive(Clone, Debug)]
pub enum Update {
    /// The pub/sub subscription to the events channel.
    RedisEvents(Link),
    /// The connection that polls counters, the queue and the registry.
    RedisPoll(Link),
    Gateway(Link),
    Event(Event),
    /// The events that arrived together: under a flood, one update (one wake-up of the UI)
    /// per burst rather than per event.
    Events(Vec<Event>),
    Snapshot(Snapshot),
    Tasks(Vec<(TaskId, TaskInfo)>),
    Functions(Vec<FunctionSummary>),
    Registered(Result<FunctionSummary, String>),
    Invoked(Result<TaskId, String>),
    InvokeResult(ResultReply),
    TaskDetail(TaskId, Result<TaskRecord, String>),
    /// The gateway's answer to a drain: the worker id, or why it was refused.
    Drained(String, Result<(), String>),
    /// One round of function statistics (the functions whose read failed are left out).
    FunctionStats(Vec<FunctionDetail>),
    /// A function's recent failures, for its view.
    FunctionFailures(FunctionId, Result<Vec<TaskSummary>, String>),
    /// What an operator's action (retry, cancel, purge, delete) came to.
    Acted(Result<Acted, ActionFailed>),
    /// A page of `GET /tasks` for the query of this generation: its tasks and `next_cursor`.
    TaskPage {
        generation: u64,
        page: Result<(Vec<TaskSummary>, Option<String>), String>,
    },
}

/// From the state to the network tasks: each is run without the UI waiting for it.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Register {
        name: String,
        entrypoint: String,
        source: String,
    },
    Invoke {
        function_id: FunctionId,
        args: serde_json::Value,
        kwargs: serde_json::Value,
    },
    FetchTask(TaskId),
    RefreshFunctions,
    /// Read these task hashes (function name, attempts, times) for the task list.
    Enrich(Vec<TaskId>),
    /// `POST /workers/{id}/drain`.
    DrainWorker(String),
    /// Read one page of the task history (`GET /tasks`).
    ListTasks(TaskQuery),
    /// Read the statistics of these functions (`GET /functions/{id}` each).
    FunctionStats(Vec<FunctionId>),
    /// Read a function's recent failures (`GET /tasks?function_id=..&status=FAILED`).
    FunctionFailures(FunctionId),
    /// The operator's actions, each confirmed first.
    Retry(TaskId),
    Cancel(TaskId),
    Purge,
    DeleteFunction(FunctionId),
}

/// A done action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Acted {
    Retried {
        of: TaskId,
        new: TaskId,
    },
    Cancelled {
        task: TaskId,
        was: TaskStatus,
    },
    Purged(u64),
    Deleted {
        function: FunctionId,
        cancelled: u64,
    },
}

/// A refused or failed action: what was tried, the HTTP status and, for a 409, the status the
/// task was in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionFailed {
    /// "retry", "cancel", "purge", "delete".
    pub action: &'static str,
    pub http: Option<u16>,
    pub conflict: Option<TaskStatus>,
    pub message: String,
}

impl ActionFailed {
    pub fn new(action: &'static str, e: &crate::client::ClientError) -> Self {
        let (http, conflict) = match e {
            crate::client::ClientError::Api {
                status, conflict, ..
            } => (Some(status.as_u16()), *conflict),
            _ => (None, None),
        };
        let message = match e {
            crate::client::ClientError::Api { message, .. } => message.clone(),
            other => other.to_string(),
        };
        Self {
            action,
            http,
            conflict,
            message,
        }
    }
}

/// One `GET /tasks` call: the filters the gateway applies, where to start, how many.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskQuery {
    /// The task list's generation, handed back with the page.
    pub generation: u64,
    pub status: Option<TaskStatus>,
    pub function_id: Option<FunctionId>,
    pub worker: Option<String>,
    pub cursor: Option<String>,
    pub limit: usize,
}
