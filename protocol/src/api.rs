//! HTTP request and response bodies of the gateway.
//!
//! Requests keep ids as plain strings: the gateway parses them itself so that a malformed id
//! is a 400 that says which field is wrong, not a generic deserialisation failure.

use serde::{Deserialize, Serialize};

use crate::ids::{FunctionId, TaskId};
use crate::model::{FunctionFormat, TaskError, TaskStatus};

/// `POST /register_function`: either `payload` (dill, the original clients) or `source` +
/// `entrypoint` (any language).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RegisterFunction {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<String>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterFunctionReply {
    pub function_id: FunctionId,
}

/// `POST /execute_function`: `payload` for a dill function, `args`/`kwargs` for a source one.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ExecuteFunction {
    pub function_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kwargs: Option<serde_json::Value>,
    /// Overrides the dispatcher's default timeout for this execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// How many times infrastructure failures may restart this task (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecuteFunctionReply {
    pub task_id: TaskId,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReply {
    pub task_id: TaskId,
    pub status: TaskStatus,
}

/// `GET /result/{id}`: `result` is null until the task is terminal.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultReply {
    pub task_id: TaskId,
    pub status: TaskStatus,
    pub result: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<TaskError>,
}

/// `POST /execute_batch`: many executions in one request, each shaped like `/execute_function`'s
/// body. All are validated before any is submitted, then all are written in one pipeline.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ExecuteBatch {
    pub executions: Vec<ExecuteFunction>,
}

/// The task ids of an [`ExecuteBatch`], in the order of its `executions`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecuteBatchReply {
    pub task_ids: Vec<TaskId>,
}

/// `GET /tasks` query: every value is text, parsed by the gateway so that a bad one is a 400
/// naming it.
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ListTasksQuery {
    /// QUEUED, RUNNING, COMPLETED or FAILED.
    pub status: Option<String>,
    /// Only tasks of this function.
    pub function_id: Option<String>,
    /// Only tasks last started on this worker.
    pub worker: Option<String>,
    /// Only tasks created at or after this unix time in milliseconds.
    pub since: Option<String>,
    /// Most tasks in the page: 1 to 1000, default 50.
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Why a task failed, without the traceback (the task's record has it).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskErrorBrief {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
}

/// One task of `GET /tasks`: its record without arguments, result, log or traceback.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSummary {
    pub task_id: TaskId,
    pub function_id: FunctionId,
    pub function_name: String,
    pub status: TaskStatus,
    pub worker: Option<String>,
    pub attempts: u32,
    pub max_attempts: u32,
    /// Unix times in milliseconds.
    pub created_at: u64,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<TaskErrorBrief>,
    /// The task this one retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<TaskId>,
}

/// `GET /tasks`: newest first; `next_cursor` is null on the last page. A page may hold fewer
/// than `limit` tasks (even none) while `next_cursor` is set: very selective filters stop a page
/// after a bounded number of tasks examined.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskList {
    pub tasks: Vec<TaskSummary>,
    pub next_cursor: Option<String>,
}

/// `POST /tasks/{id}/cancel`: the task is now FAILED (error type `Cancelled`); `was` is the
/// status it had, QUEUED or RUNNING.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelReply {
    pub task_id: TaskId,
    pub status: TaskStatus,
    pub was: TaskStatus,
}

/// `POST /workers/{id}/drain`, 202: the drain was handed to the dispatchers; the one that owns
/// the worker stops giving it tasks and tells it to finish its running ones and leave. The
/// worker shows `draining` in the registry and on the events channel, then leaves.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainReply {
    pub worker: String,
    /// The dispatcher that owns the worker (as the registry names it).
    pub dispatcher: String,
    /// Always `draining`.
    pub state: crate::event::WorkerState,
}

/// 409: the task is in a state the request does not apply to (its status says which).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictReply {
    pub error: String,
    pub status: TaskStatus,
}

/// `POST /tasks/{id}/retry`: the new task.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryReply {
    pub task_id: TaskId,
    pub retry_of: TaskId,
}

/// `POST /queue/purge`: `confirm` must be true.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PurgeQueue {
    pub confirm: bool,
}

/// How many QUEUED tasks the purge cancelled.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeReply {
    pub purged: u64,
}

/// Percentiles of a sample, in milliseconds.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: u64,
    pub p95: u64,
    pub p99: u64,
    /// How many runs the percentiles are over (the last 1,000 at most).
    pub samples: u64,
}

/// A function's statistics, kept by the platform as its tasks end.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionStats {
    /// Executions submitted (retries included).
    pub invocations: u64,
    pub completed: u64,
    /// Failed runs, cancelled ones not included.
    pub failed: u64,
    pub cancelled: u64,
    /// Run time (started to finished) over the last 1,000 finished runs; null before any.
    pub run_ms: Option<Percentiles>,
    /// Queue wait (created to started) over the same runs.
    pub queue_wait_ms: Option<Percentiles>,
    /// Unix time in milliseconds of the last failed run, and its error type.
    pub last_failure_at: Option<u64>,
    pub last_failure_type: Option<String>,
}

/// `GET /functions/{id}`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionDetail {
    pub function_id: FunctionId,
    pub name: String,
    pub format: FunctionFormat,
    /// The entrypoint of a source function.
    pub entrypoint: Option<String>,
    /// Unix time in milliseconds.
    pub created_at: u64,
    pub stats: FunctionStats,
}

/// `DELETE /functions/{id}`: how many of its QUEUED tasks ended FAILED `FunctionDeleted`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteFunctionReply {
    pub function_id: FunctionId,
    pub cancelled: u64,
}

/// Every 4xx and 5xx body.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_reply_bytes_are_pinned() {
        let id: TaskId = "6f1c1a52-3f43-4a7e-9b59-5d1c0f6a9a10".parse().unwrap();
        let r = ResultReply {
            task_id: id,
            status: TaskStatus::Queued,
            result: serde_json::Value::Null,
            error: None,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"task_id":"6f1c1a52-3f43-4a7e-9b59-5d1c0f6a9a10","status":"QUEUED","result":null}"#
        );
    }

    #[test]
    fn execute_batch_bytes_are_pinned() {
        let batch = ExecuteBatch {
            executions: vec![
                ExecuteFunction {
                    function_id: "0b6f8a52-3f43-4a7e-9b59-5d1c0f6a9a10".into(),
                    args: Some(serde_json::json!([1])),
                    ..ExecuteFunction::default()
                },
                ExecuteFunction {
                    function_id: "0b6f8a52-3f43-4a7e-9b59-5d1c0f6a9a10".into(),
                    payload: Some("gARLKi4=".into()),
                    timeout_ms: Some(500),
                    ..ExecuteFunction::default()
                },
            ],
        };
        assert_eq!(
            serde_json::to_string(&batch).unwrap(),
            concat!(
                r#"{"executions":[{"function_id":"0b6f8a52-3f43-4a7e-9b59-5d1c0f6a9a10","args":[1]},"#,
                r#"{"function_id":"0b6f8a52-3f43-4a7e-9b59-5d1c0f6a9a10","payload":"gARLKi4=","timeout_ms":500}]}"#
            )
        );
        let id: TaskId = "6f1c1a52-3f43-4a7e-9b59-5d1c0f6a9a10".parse().unwrap();
        let reply = ExecuteBatchReply { task_ids: vec![id] };
        let text = r#"{"task_ids":["6f1c1a52-3f43-4a7e-9b59-5d1c0f6a9a10"]}"#;
        assert_eq!(serde_json::to_string(&reply).unwrap(), text);
        assert_eq!(
            serde_json::from_str::<ExecuteBatchReply>(text).unwrap(),
            reply
        );
    }
}
