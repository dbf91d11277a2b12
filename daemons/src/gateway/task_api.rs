//! The operator's task API: search (`GET /tasks`), cancel, retry, purge the queue, and a
//! function's statistics and deletion.
//!
//! The work is in `store::tasks` and its Lua scripts; these handlers parse and check input
//! (every bad value is a 400 naming it, before anything changes) and shape the replies. A
//! cancelled task ends FAILED with error type `Cancelled` (the four statuses stay the ones the
//! original clients know); a RUNNING one is also announced on `{p}:cancels`, where the
//! dispatcher running it kills it.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use faas_protocol::api::{
    CancelReply, ConflictReply, DeleteFunctionReply, ErrorReply, FunctionDetail, ListTasksQuery,
    PurgeQueue, PurgeReply, RetryReply, TaskList,
};
use faas_protocol::{FunctionId, TaskId, TaskStatus};

use super::error::ApiError;
use super::extract::{FunctionIdPath, JsonBody, TaskIdPath};
use super::handlers::unknown_task;
use super::AppState;
use crate::store::{Cancelled, Cursor, NewTask, TaskFilter};

/// `limit` when none is given, and the largest accepted.
pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 1_000;

/// Tasks, newest first, filtered, a page at a time.
#[utoipa::path(
    get,
    path = "/tasks",
    tag = "tasks",
    params(ListTasksQuery),
    responses(
        (status = 200, description = "One page of tasks, newest first; follow `next_cursor` for the next", body = TaskList),
        (status = 400, description = "Invalid filter, limit or cursor", body = ErrorReply),
        (status = 401, description = "Missing or wrong token", body = ErrorReply),
        (status = 503, description = "Redis is unavailable", body = ErrorReply),
    )
)]
pub async fn list_tasks(
    State(st): State<AppState>,
    query: Result<Query<ListTasksQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<TaskList>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad(e.body_text()))?;
    let status = q
        .status
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<TaskStatus>().map_err(|_| {
                ApiError::bad(format!(
                    "`status` must be QUEUED, RUNNING, COMPLETED or FAILED, not {s:?}"
                ))
            })
        })
        .transpose()?;
    let function_id = q
        .function_id
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<FunctionId>()
                .map_err(|e| ApiError::bad(format!("`function_id`: {e}")))
        })
        .transpose()?;
    let worker = q.worker.filter(|w| !w.is_empty());
    if worker.as_ref().is_some_and(|w| w.len() > 256) {
        return Err(ApiError::bad("`worker` is longer than 256 bytes"));
    }
    let since = q
        .since
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u64>().map_err(|_| {
                ApiError::bad(format!(
                    "`since` must be unix time in milliseconds, not {s:?}"
                ))
            })
        })
        .transpose()?;
    let limit = match q.limit.as_deref().filter(|s| !s.is_empty()) {
        None => DEFAULT_LIMIT,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::bad(format!(
                    "`limit` must be between 1 and {MAX_LIMIT}, not {s:?}"
                )))
            }
        },
    };
    let cursor = q
        .cursor
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<Cursor>().map_err(ApiError::bad))
        .transpose()?;
    if cursor.is_some_and(|c| !c.fits(status)) {
        return Err(ApiError::bad(
            "this cursor continues a listing of another status: pass `next_cursor` with the \
             filters it came with"
                .to_owned(),
        ));
    }
    let filter = TaskFilter {
        status,
        function_id,
        worker,
        since,
    };
    let (tasks, next) = st.store.list_tasks(&filter, limit, cursor).await?;
    Ok(Json(TaskList {
        tasks,
        next_cursor: next.map(|c| c.to_string()),
    }))
}

/// Cancels a QUEUED or RUNNING task: it ends FAILED with error type `Cancelled`; a queued one
/// never runs, a running one's process group is killed by its dispatcher.
#[utoipa::path(
    post,
    path = "/tasks/{id}/cancel",
    tag = "tasks",
    params(("id" = TaskId, Path, description = "The task id")),
    responses(
        (status = 200, description = "Cancelled: now FAILED; `was` is the status it had", body = CancelReply),
        (status = 400, description = "Invalid task id", body = ErrorReply),
        (status = 401, description = "Missing or wrong token", body = ErrorReply),
        (status = 404, description = "Unknown task (never submitted, or its result expired)", body = ErrorReply),
        (status = 409, description = "The task had already ended (its status is given)", body = ConflictReply),
        (status = 503, description = "Redis is unavailable", body = ErrorReply),
    )
)]
pub async fn cancel_task(
    State(st): State<AppState>,
    TaskIdPath(id): TaskIdPath,
) -> Result<Json<CancelReply>, ApiError> {
    match st.store.cancel(id, st.config.retention).await? {
        Cancelled::Now { was } => Ok(Json(CancelReply {
            task_id: id,
            status: TaskStatus::Failed,
            was,
        })),
        Cancelled::AlreadyTerminal(status) => Err(ApiError::Conflict {
            message: format!("task {id} already ended {status}: nothing to cancel"),
            status,
        }),
        Cancelled::Missing => Err(unknown_task(id)),
    }
}

/// Runs an ended task again: a new task with the same function, arguments, timeout and
/// attempts, whose record names the task it retries (`retry_of`).
#[utoipa::path(
    post,
    path = "/tasks/{id}/retry",
    tag = "tasks",
    params(("id" = TaskId, Path, description = "The task to run again")),
    responses(
        (status = 201, description = "Queued as a new task", body = RetryReply),
        (status = 400, description = "Invalid task id", body = ErrorReply),
        (status = 401, description = "Missing or wrong token", body = ErrorReply),
        (status = 404, description = "Unknown task, or its function was deleted", body = ErrorReply),
        (status = 409, description = "The task has not ended (its status is given)", body = ConflictReply),
        (status = 503, description = "Redis is unavailable", body = ErrorReply),
    )
)]
pub async fn retry_task(
    State(st): State<AppState>,
    TaskIdPath(id): TaskIdPath,
) -> Result<(StatusCode, Json<RetryReply>), ApiError> {
    let src = st
        .store
        .retry_source(id)
        .await?
        .ok_or_else(|| unknown_task(id))?;
    if !src.status.is_terminal() {
        return Err(ApiError::Conflict {
            message: format!(
                "task {id} is {}: only an ended task can be retried (cancel it first)",
                src.status
            ),
            status: src.status,
        });
    }
    // Read from Redis, not the cache: a function deleted a moment ago must not run again.
    let meta = st
        .store
        .function_meta(src.function_id)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "the function {} of task {id} was deleted",
                src.function_id
            ))
        })?;
    let task = NewTask {
        function_id: src.function_id,
        meta,
        args: src.args,
        timeout_ms: src.timeout_ms,
        max_attempts: src.max_attempts,
        retry_of: Some(id),
    };
    let task_id = st.store.submit(&task).await?;
    Ok((
        StatusCode::CREATED,
        Json(RetryReply {
            task_id,
            retry_of: id,
        }),
    ))
}

/// Cancels every QUEUED task (running ones go on). Needs `{"confirm": true}`.
#[utoipa::path(
    post,
    path = "/queue/purge",
    tag = "tasks",
    request_body = PurgeQueue,
    responses(
        (status = 200, description = "How many queued tasks were cancelled", body = PurgeReply),
        (status = 400, description = "No `{\"confirm\": true}` body", body = ErrorReply),
        (status = 401, description = "Missing or wrong token", body = ErrorReply),
        (status = 413, description = "Body larger than the limit", body = ErrorReply),
        (status = 503, description = "Redis is unavailable", body = ErrorReply),
    )
)]
pub async fn purge_queue(
    State(st): State<AppState>,
    JsonBody(req): JsonBody<PurgeQueue>,
) -> Result<Json<PurgeReply>, ApiError> {
    if !req.confirm {
        return Err(ApiError::bad(
            "purging cancels every queued task: send {\"confirm\": true} to do it",
        ));
    }
    let purged = st.store.purge_queued(st.config.retention).await?;
    tracing::info!(event = "queue_purged", purged, "queue purged");
    Ok(Json(PurgeReply { purged }))
}

/// A function's metadata and statistics (counts since it was registered; run time and queue
/// wait percentiles over its last 1,000 finished runs).
#[utoipa::path(
    get,
    path = "/functions/{id}",
    tag = "functions",
    params(("id" = FunctionId, Path, description = "The function id")),
    responses(
        (status = 200, description = "The function and its statistics", body = FunctionDetail),
        (status = 400, description = "Invalid function id", body = ErrorReply),
        (status = 401, description = "Missing or wrong token", body = ErrorReply),
        (status = 404, description = "Unknown function", body = ErrorReply),
        (status = 503, description = "Redis is unavailable", body = ErrorReply),
    )
)]
pub async fn function_detail(
    State(st): State<AppState>,
    FunctionIdPath(id): FunctionIdPath,
) -> Result<Json<FunctionDetail>, ApiError> {
    st.store
        .function_detail(id)
        .await?
        .map(Json)
        .ok_or_else(|| unknown_function(id))
}

/// Deletes a function: later executions of it answer 404, its queued tasks end FAILED
/// `FunctionDeleted`, running ones finish, finished ones keep their records.
#[utoipa::path(
    delete,
    path = "/functions/{id}",
    tag = "functions",
    params(("id" = FunctionId, Path, description = "The function id")),
    responses(
        (status = 200, description = "Deleted; `cancelled` queued tasks ended FAILED", body = DeleteFunctionReply),
        (status = 400, description = "Invalid function id", body = ErrorReply),
        (status = 401, description = "Missing or wrong token", body = ErrorReply),
        (status = 404, description = "Unknown function", body = ErrorReply),
        (status = 503, description = "Redis is unavailable", body = ErrorReply),
    )
)]
pub async fn delete_function(
    State(st): State<AppState>,
    FunctionIdPath(id): FunctionIdPath,
) -> Result<Json<DeleteFunctionReply>, ApiError> {
    // This gateway forgets it at once; the others when they see the deletion count move.
    st.functions.write().expect("cache lock").remove(&id);
    let cancelled = st
        .store
        .delete_function(id, st.config.retention)
        .await?
        .ok_or_else(|| unknown_function(id))?;
    st.functions.write().expect("cache lock").remove(&id);
    tracing::info!(event = "function_deleted", function_id = %id, cancelled, "function deleted");
    Ok(Json(DeleteFunctionReply {
        function_id: id,
        cancelled,
    }))
}

fn unknown_function(id: FunctionId) -> ApiError {
    ApiError::NotFound(format!("unknown function {id}"))
}
