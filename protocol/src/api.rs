//! HTTP request and response bodies of the gateway.
//!
//! Requests keep ids as plain strings: the gateway parses them itself so that a malformed id
//! is a 400 that says which field is wrong, not a generic deserialisation failure.

use serde::{Deserialize, Serialize};

use crate::ids::{FunctionId, TaskId};
use crate::model::{TaskError, TaskStatus};

/// `POST /register_function`: either `payload` (dill, the original clients) or `source` +
/// `entrypoint` (any language).
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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterFunctionReply {
    pub function_id: FunctionId,
}

/// `POST /execute_function`: `payload` for a dill function, `args`/`kwargs` for a source one.
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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecuteFunctionReply {
    pub task_id: TaskId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReply {
    pub task_id: TaskId,
    pub status: TaskStatus,
}

/// `GET /result/{id}`: `result` is null until the task is terminal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultReply {
    pub task_id: TaskId,
    pub status: TaskStatus,
    pub result: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<TaskError>,
}

/// Every 4xx and 5xx body.
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
}
