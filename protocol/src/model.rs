//! The task and function model shared by the gateway, dispatchers, workers and clients.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids::{FunctionId, TaskId};

/// Where a task is in its life: `QUEUED → RUNNING → COMPLETED | FAILED`, and back from
/// `RUNNING` to `QUEUED` only when infrastructure failed. Terminal states are final.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskStatus {
    Queued,
    Running,
    Completed,
    Failed,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 4] = [Self::Queued, Self::Running, Self::Completed, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::Running => "RUNNING",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
        }
    }

    /// COMPLETED and FAILED never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown task status {s:?}"))
    }
}

/// How a function and its arguments are encoded.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FunctionFormat {
    /// base64 of a dill pickle (the original Python clients); args and results likewise.
    Dill,
    /// Python source text and an entrypoint name; args and results are JSON.
    Source,
}

impl FunctionFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dill => "dill",
            Self::Source => "source",
        }
    }
}

impl FromStr for FunctionFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "dill" => Ok(Self::Dill),
            "source" => Ok(Self::Source),
            _ => Err(format!("unknown function format {s:?}")),
        }
    }
}

/// Why a task failed, as text any client can show.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskError {
    /// The exception's type (`ZeroDivisionError`), or a platform cause (`Timeout`, `WorkerLost`).
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
    #[serde(default)]
    pub traceback: String,
}

impl TaskError {
    pub fn platform(kind: &str, message: impl Into<String>) -> Self {
        Self {
            kind: kind.to_owned(),
            message: message.into(),
            traceback: String::new(),
        }
    }
}

/// How a task ended: `status` is COMPLETED or FAILED. Sent by workers, recorded by dispatchers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub status: TaskStatus,
    /// dill: base64 pickle of the value (or of the exception); source: the JSON value.
    pub result: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<TaskError>,
    /// What the function printed.
    #[serde(default)]
    pub log: String,
}

impl Outcome {
    /// A failure of the platform rather than of the user's code.
    pub fn platform_failure(kind: &str, message: impl Into<String>) -> Self {
        Self {
            status: TaskStatus::Failed,
            result: serde_json::Value::Null,
            error: Some(TaskError::platform(kind, message)),
            log: String::new(),
        }
    }
}

/// A registered function as the executor needs it (the store reads it, dispatchers and workers
/// run it). Functions never change once registered, so dispatchers and workers cache these by id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionDef {
    pub id: FunctionId,
    pub format: FunctionFormat,
    /// dill: base64 of the pickle; source: the Python source text.
    pub body: String,
    pub entrypoint: Option<String>,
}

/// A function as listed by `GET /functions`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionSummary {
    pub function_id: FunctionId,
    pub name: String,
    pub format: FunctionFormat,
    /// Unix time in milliseconds.
    pub created_at: u64,
}

/// The full record of a task, as `GET /tasks/{id}` returns it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub task_id: TaskId,
    pub function_id: FunctionId,
    pub function_name: String,
    pub format: FunctionFormat,
    pub status: TaskStatus,
    /// dill: the base64 args payload; source: `{"args": [...], "kwargs": {...}}`.
    pub args: serde_json::Value,
    /// dill: base64 pickle of the value or exception; source: the JSON value. Null until terminal.
    pub result: serde_json::Value,
    pub error: Option<TaskError>,
    /// What the function printed.
    pub log: String,
    pub attempts: u32,
    pub max_attempts: u32,
    pub timeout_ms: Option<u64>,
    pub worker: Option<String>,
    /// Unix times in milliseconds.
    pub created_at: u64,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
    /// The task this one retries (`POST /tasks/{id}/retry`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<TaskId>,
}

/// Where tasks run: the one mode type of the platform. `faas-dispatcher -m`, `faas up -m`,
/// `faas-worker MODE` (push or pull only, see [`WorkerMode::remote`]), the worker's hello on
/// the wire and the registry entries all use it. With the `clap` feature it is a
/// `clap::ValueEnum` whose variant docs are the help texts.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerMode {
    /// The dispatcher runs tasks on its own pool of Python processes.
    Local,
    /// Worker processes receive tasks as they have free slots (ZeroMQ ROUTER/DEALER).
    Push,
    /// Worker processes ask the dispatcher for tasks (ZeroMQ ROUTER/REQ, long-polled).
    Pull,
}

impl WorkerMode {
    pub const ALL: [WorkerMode; 3] = [Self::Local, Self::Push, Self::Pull];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Push => "push",
            Self::Pull => "pull",
        }
    }

    /// Whether tasks go to separate worker processes (push, pull) rather than the
    /// dispatcher's own pool.
    pub fn is_remote(self) -> bool {
        !matches!(self, Self::Local)
    }

    /// Parses a mode a `faas-worker` can run in: push or pull. `local` is refused with why.
    pub fn remote(s: &str) -> Result<Self, String> {
        match s.parse::<Self>() {
            Err(_) => Err(format!("unknown mode {s:?}: expected push or pull")),
            Ok(Self::Local) => Err(
                "a faas-worker runs in push or pull mode; local mode has no workers (the dispatcher runs its own pool: faas-dispatcher -m local)".into(),
            ),
            Ok(mode) => Ok(mode),
        }
    }
}

impl fmt::Display for WorkerMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for WorkerMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown mode {s:?}: expected local, push or pull"))
    }
}

/// One worker's entry in the registry hash `{prefix}:workers` (field = id, value = this JSON).
/// Dispatchers keep it current; `last_heartbeat` tells the console whether it is alive.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub id: String,
    pub mode: WorkerMode,
    pub host: String,
    pub pid: u32,
    /// Consumer name of the dispatcher this worker serves.
    pub dispatcher: String,
    /// Python processes (tasks it can run at once).
    pub slots: u32,
    /// Tasks running now.
    pub busy: u32,
    pub tasks_done: u64,
    /// Unix times in milliseconds.
    pub joined_at: u64,
    pub last_heartbeat: u64,
    /// Draining: takes no new tasks and leaves once its running ones end (an operator's drain
    /// or the worker's own SIGTERM). Left out of the JSON while false, so older readers and
    /// writers agree.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub draining: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_upper_case_on_the_wire() {
        assert_eq!(
            serde_json::to_string(&TaskStatus::Completed).unwrap(),
            "\"COMPLETED\""
        );
        assert_eq!("queued".parse::<TaskStatus>().unwrap(), TaskStatus::Queued);
        assert!(TaskStatus::Failed.is_terminal() && !TaskStatus::Running.is_terminal());
    }

    #[test]
    fn modes_read_and_print_their_wire_names() {
        for m in WorkerMode::ALL {
            assert_eq!(m.to_string().parse::<WorkerMode>().unwrap(), m);
            assert_eq!(serde_json::to_value(m).unwrap(), m.as_str());
        }
        assert_eq!("PULL".parse::<WorkerMode>().unwrap(), WorkerMode::Pull);
        assert!("remote"
            .parse::<WorkerMode>()
            .unwrap_err()
            .contains("local, push or pull"));
        assert_eq!(WorkerMode::remote("push").unwrap(), WorkerMode::Push);
        assert!(WorkerMode::remote("local")
            .unwrap_err()
            .contains("push or pull"));
    }

    #[test]
    fn task_error_names_its_type_field_type() {
        let e = TaskError::platform("Timeout", "task exceeded its timeout of 5 ms");
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"type": "Timeout", "message": "task exceeded its timeout of 5 ms", "traceback": ""})
        );
    }
}
