//! `POST /execute_batch`: many executions in one request, written to Redis in one pipeline.
//!
//! One HTTP request and one Redis round trip for a whole batch is what lets a single client
//! submit tens of thousands of tasks a second. The batch is all or nothing: every item is
//! validated (by the same code as `/execute_function`) before any is submitted, so a client
//! that gets an error knows that none of its tasks exist and can simply fix and resend.

use axum::extract::State;
use axum::Json;
use faas_protocol::api::{ErrorReply, ExecuteBatch, ExecuteBatchReply};

use super::error::ApiError;
use super::extract::JsonBody;
use super::handlers::new_task;
use super::AppState;

/// Most executions in one batch: bounds the gateway's memory for one request and how long one
/// atomic pipeline holds Redis (which serves nobody else meanwhile).
pub const MAX_BATCH: usize = 10_000;

/// Submits many executions at once, all or nothing; ids come back in order.
#[utoipa::path(
    post,
    path = "/execute_batch",
    tag = "tasks",
    request_body = ExecuteBatch,
    responses(
        (status = 200, description = "All queued", body = ExecuteBatchReply),
        (status = 400, description = "Invalid input", body = ErrorReply),
        (status = 401, description = "Missing or wrong token", body = ErrorReply),
        (status = 404, description = "An execution names an unknown function", body = ErrorReply),
        (status = 413, description = "Body larger than the limit, or more than 10,000 executions", body = ErrorReply),
        (status = 503, description = "Redis is unavailable", body = ErrorReply),
    )
)]
pub async fn execute_batch(
    State(st): State<AppState>,
    JsonBody(req): JsonBody<ExecuteBatch>,
) -> Result<Json<ExecuteBatchReply>, ApiError> {
    let count = req.executions.len();
    if count == 0 {
        return Err(ApiError::bad("`executions` is empty"));
    }
    if count > MAX_BATCH {
        return Err(ApiError::TooLarge(format!(
            "{count} executions in one batch; at most {MAX_BATCH} are accepted"
        )));
    }
    let mut tasks = Vec::with_capacity(count);
    for (i, execution) in req.executions.into_iter().enumerate() {
        let task = new_task(&st, execution).await.map_err(|e| at_index(i, e))?;
        tasks.push(task);
    }
    let task_ids = st.store.submit_many(&tasks).await?;
    // The metrics middleware counts `/execute_function` one per request; a batch counts here.
    crate::metrics::tasks_submitted(count as u64);
    Ok(Json(ExecuteBatchReply { task_ids }))
}

/// Names the item an error is about; the status stays what `/execute_function` would answer.
pub(super) fn at_index(i: usize, e: ApiError) -> ApiError {
    let at = |m: String| format!("executions[{i}]: {m}");
    match e {
        ApiError::BadRequest(m) => ApiError::BadRequest(at(m)),
        ApiError::NotFound(m) => ApiError::NotFound(at(m)),
        ApiError::TooLarge(m) => ApiError::TooLarge(at(m)),
        ApiError::MethodNotAllowed(m) => ApiError::MethodNotAllowed(at(m)),
        // Not answered by executions.
        other @ (ApiError::Unavailable(_)
        | ApiError::Conflict { .. }
        | ApiError::Refused(_)
        | ApiError::NoListener(_)) => other,
    }
}
