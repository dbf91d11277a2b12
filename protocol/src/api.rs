//! HTTP request and response bodies of the gateway.
//!
//! Requests keep ids as plain strings: the gateway parses them itself so that a malformed id
//! is a 400 that says which field is wrong, not a generic deserialisation failure.

use serde::{Deserialize, Serialize};

use crate::ids::{FunctionId, TaskId};
use crate::model::{TaskError, TaskStatus};

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
