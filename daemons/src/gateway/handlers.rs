//! The route handlers. Each validates its input fully before touching Redis, so bad input is
//! always a 4xx and Redis trouble always a 503.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{Method, Uri};
use axum::Json;
use faas_protocol::api::{
    ErrorReply, ExecuteFunction, ExecuteFunctionReply, RegisterFunction, RegisterFunctionReply,
    ResultReply, StatusReply,
};
use faas_protocol::model::{FunctionSummary, TaskRecord};
use faas_protocol::{FunctionFormat, FunctionId, TaskId};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{JsonBody, TaskIdPath};
use super::{validate, AppState};
use crate::store::{FunctionMeta, NewFunction, NewTask, TaskBrief};

const MAX_TIMEOUT_MS: u64 = 7 * 24 * 3600 * 1000;
const MAX_ATTEMPTS: u32 = 100;

/// Registers a function: either `payload` (base64 dill pickle) or `source` with `entrypoint`.
#[utoipa::path(
    post,
    path = "/register_function",
    tag = "functions",
    request_body = RegisterFunction,
    responses(
        (status = 200, description = "Registered", body = RegisterFunctionReply),
        (status = 400, description = "Invalid input", body = ErrorReply),
        (status = 401, description = "Missing or wrong token", body = ErrorReply),
        (status = 413, description = "Body larger than the limit", body = ErrorReply),
        (status = 503, description = "Redis is unavailable", body = ErrorReply),
    )
)]
pub async fn register_function(
    State(st): State<AppState>,
    JsonBody(req): JsonBody<RegisterFunction>,
) -> Result<Json<RegisterFunctionReply>, ApiError> {
    let name = validate::function_name(&req.name)?;
    let f = match (req.payload, req.source) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad("send either `payload` (dill) or `source`, not both"))
        }
        (None, None) => {
            return Err(ApiError::bad(
                "missing the function: send `payload` (base64 dill pickle) or `source` with `entrypoint`",
            ))
        }
        (Some(payload), None) => NewFunction {
            name,
            format: FunctionFormat::Dill,
            body: validate::pickle_payload("payload", &payload)?,
            entrypoint: None,
        },
        (None, Some(source)) => NewFunction {
            name,
            format: FunctionFormat::Source,
            entrypoint: Some(validate::source_function(&source, req.entrypoint.as_deref())?),
            body: source,
        },
    };
    let function_id = st.store.register_function(&f).await?;
    st.functions.write().expect("cache lock").insert(
        function_id,
        FunctionMeta {
            name: f.name,
            format: f.format,
        },
    );
    Ok(Json(RegisterFunctionReply { function_id }))
}

/// The same as `POST /register_function`.
#[utoipa::path(
    post,
    path = "/functions",
    tag = "functions",
    request_body = RegisterFunction,
    responses(
        (status = 200, description = "Registered", body = RegisterFunctionReply),
        (status = 400, description = "Invalid input", body = ErrorReply),
        (status = 401, description = "Missing or wrong token", body = ErrorReply),
        (status = 413, description = "Body larger than the limit", body = ErrorReply),
        (status = 503, description = "Redis is unavailable", body = ErrorReply),
    )
)]
pub async fn create_function(
    st: State<AppState>,
    body: JsonBody<RegisterFunction>,
) -> Result<Json<RegisterFunctionReply>, ApiError> {
    register_function(st, body).await
}

/// Submits one execution: `payload` for a dill function, `args`/`kwargs` for a source one.
#[utoipa::path(
    post,
    path = "/execute_function",
    tag = "tasks",
    request_body = ExecuteFunction,
    responses(
        (status = 200, description = "Queued", body = ExecuteFunctionReply),
        (status = 400, description = "Invalid input", body = ErrorReply),
        (status = 401, description = "Missing or wrong token", body = ErrorReply),
        (status = 404, description = "Unknown function", body = ErrorReply),
        (status = 413, description = "Body larger than the limit", body = ErrorReply),
        (status = 503, description = "Redis is unavailable", body = ErrorReply),
    )
)]
pub async fn execute_function(
    State(st): State<AppState>,
    JsonBody(req): JsonBody<ExecuteFunction>,
) -> Result<Json<ExecuteFunctionReply>, ApiError> {
    let task = new_task(&st, req).await?;
    let task_id = st.store.submit(&task).await?;
    Ok(Json(ExecuteFunctionReply { task_id }))
}

/// Validates one execution (the body of `/execute_function`, an item of `/execute_batch`) and
/// turns it into the task to submit. Touches Redis only to look up an uncached function.
pub(super) async fn new_task(st: &AppState, req: ExecuteFunction) -> Result<NewTask, ApiError> {
    let function_id: FunctionId = req
        .function_id
        .parse()
        .map_err(|e: faas_protocol::ids::InvalidId| ApiError::bad(e.to_string()))?;
    if req.timeout_ms.is_some_and(|t| t == 0 || t > MAX_TIMEOUT_MS) {
        return Err(ApiError::bad(format!(
            "`timeout_ms` must be between 1 and {MAX_TIMEOUT_MS}"
        )));
    }
    if req.max_attempts.is_some_and(|n| n == 0 || n > MAX_ATTEMPTS) {
        return Err(ApiError::bad(format!(
            "`max_attempts` must be between 1 and {MAX_ATTEMPTS}"
        )));
    }
    let meta = function_meta(st, function_id).await?;
    let args = match meta.format {
        FunctionFormat::Dill => {
            if req.args.is_some() || req.kwargs.is_some() {
                return Err(ApiError::bad(
                    "this function was registered as a dill pickle: send its arguments as `payload`, base64 of dill.dumps(((args...), {kwargs}))",
                ));
            }
            let payload = req.payload.ok_or_else(|| {
                ApiError::bad("missing `payload`: base64 of dill.dumps(((args...), {kwargs}))")
            })?;
            validate::pickle_payload("payload", &payload)?
        }
        FunctionFormat::Source => {
            if req.payload.is_some() {
                return Err(ApiError::bad(
                    "this function was registered from source: send JSON `args` (a list) and `kwargs` (an object), not `payload`",
                ));
            }
            let args = req.args.unwrap_or_else(|| json!([]));
            let kwargs = req.kwargs.unwrap_or_else(|| json!({}));
            if !args.is_array() {
                return Err(ApiError::bad("`args` must be a JSON list"));
            }
            if !kwargs.is_object() {
                return Err(ApiError::bad("`kwargs` must be a JSON object"));
            }
            json!({"args": args, "kwargs": kwargs}).to_string()
        }
    };
    Ok(NewTask {
        function_id,
        meta,
        args,
        timeout_ms: req.timeout_ms,
        max_attempts: req.max_attempts.unwrap_or(st.config.default_max_attempts),
        retry_of: None,
    })
}

/// A task's status.
#[utoipa::path(
    get,
    path = "/status/{id}",
    tag = "tasks",
    params(("id" = TaskId, Path, description = "The task id")),
    responses(
        (status = 200, description = "The status", body = StatusReply),
        (status = 400, description = "Invalid input", body = ErrorReply),
        (status = 401, description = "Missing or wrong token", body = ErrorReply),
        (status = 404, description = "Unknown task (never submitted, or its result expired)", body = ErrorReply),
        (status = 503, description = "Redis is unavailable", body = ErrorReply),
    )
)]
pub async fn status(
    State(st): State<AppState>,
    TaskIdPath(id): TaskIdPath,
) -> Result<Json<StatusReply>, ApiError> {
    let brief = brief(&st, id).await?;
    Ok(Json(StatusReply {
        task_id: id,
        status: brief.status,
    }))
}

/// The original platform's name for `GET /status/{id}`.
#[utoipa::path(
    get,
    path = "/get_task_status/{id}",
    tag = "tasks",
    params(("id" = TaskId, Path, description = "The task id")),
    responses(
        (status = 200, description = "The status", body = StatusReply),
        (status = 400, description = "Invalid input", body = ErrorReply),
        (status = 401, description = "Missing or wrong token", body = ErrorReply),
        (status = 404, description = "Unknown task (never submitted, or its result expired)", body = ErrorReply),
        (status = 503, description = "Redis is unavailable", body = ErrorReply),
    )
)]
pub async fn get_task_status(
    st: State<AppState>,
    id: TaskIdPath,
) -> Result<Json<StatusReply>, ApiError> {
    status(st, id).await
}

#[derive(Debug, Deserialize)]
pub struct WaitQuery {
    wait: Option<String>,
}

/// A task's result (`null` until it is terminal), optionally waiting for it.
#[utoipa::path(
    get,
    path = "/result/{id}",
    tag = "tasks",
    params(("id" = TaskId, Path, description = "The task id"), ("wait" = Option<u64>, Query, description = "Milliseconds to wait for the task to end (long poll, capped by the gateway)")),
    responses(
        (status = 200, description = "The status, and the result once terminal", body = ResultReply),
        (status = 400, description = "Invalid input", body = ErrorReply),
        (status = 401, description = "Missing or wrong token", body = ErrorReply),
        (status = 404, description = "Unknown task (never submitted, or its result expired)", body = ErrorReply),
        (status = 503, description = "Redis is unavailable", body = ErrorReply),
    )
)]
pub async fn result(
    State(st): State<AppState>,
    TaskIdPath(id): TaskIdPath,
    query: Result<Query<WaitQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ResultReply>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad(e.body_text()))?;
    let wait = match query.wait.as_deref() {
        None | Some("") => Duration::ZERO,
        Some(ms) => ms.parse::<u64>().map(Duration::from_millis).map_err(|_| {
            ApiError::bad(format!(
                "`wait` must be a number of milliseconds, not {ms:?}"
            ))
        })?,
    }
    .min(st.config.max_wait);
    // Beyond `max_waits` long polls the answer is given at once: the client asks again.
    let slot = (!wait.is_zero())
        .then(|| st.wait_slots.clone().try_acquire_owned().ok())
        .flatten();
    let brief = match slot {
        None => brief(&st, id).await?,
        Some(_held) => wait_for(&st, id, wait).await?,
    };
    Ok(Json(ResultReply {
        task_id: id,
        status: brief.status,
        result: if brief.status.is_terminal() {
            brief.result
        } else {
            Value::Null
        },
        error: brief.error,
    }))
}

/// The original platform's name for `GET /result/{id}`.
#[utoipa::path(
    get,
    path = "/get_task_result/{id}",
    tag = "tasks",
    params(("id" = TaskId, Path, description = "The task id"), ("wait" = Option<u64>, Query, description = "Milliseconds to wait for the task to end (long poll, capped by the gateway)")),
    responses(
        (status = 200, description = "The status, and the result once terminal", body = ResultReply),
        (status = 400, description = "Invalid input", body = ErrorReply),
        (status = 401, description = "Missing or wrong token", body = ErrorReply),
        (status = 404, description = "Unknown task (never submitted, or its result expired)", body = ErrorReply),
        (status = 503, description = "Redis is unavailable", body = ErrorReply),
    )
)]
pub async fn get_task_result(
    st: State<AppState>,
    id: TaskIdPath,
    query: Result<Query<WaitQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ResultReply>, ApiError> {
    result(st, id, query).await
}

/// Waits until `id` is terminal or `wait` passes; woken by the task's terminal event, which
/// usually carries the outcome: a waited-for result then costs one Redis read in all.
async fn wait_for(st: &AppState, id: TaskId, wait: Duration) -> Result<TaskBrief, ApiError> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let woken = st.waiters.register(id);
        // Read after registering, so that an event between the two is not missed.
        let current = brief(st, id).await;
        if current.as_ref().map_or(true, |b| b.status.is_terminal()) {
            // `forget` keeps the senders whose receiver is still alive: drop ours first, or
            // every task waited for leaves an entry in the map for good.
            drop(woken);
            st.waiters.forget(id);
            return current;
        }
        match tokio::time::timeout_at(deadline, woken).await {
            Ok(Ok(Some(outcome))) => return Ok(outcome),
            // Woken to re-read (a big result, a lost subscription), or the sender was dropped.
            Ok(_) => {}
            Err(_) => {
                st.waiters.forget(id);
                return brief(st, id).await;
            }
        }
    }
}

/// A task's full record: arguments, result, error, log, attempts, times.
#[utoipa::path(
    get,
    path = "/tasks/{id}",
    tag = "tasks",
    params(("id" = TaskId, Path, description = "The task id")),
    responses(
        (status = 200, description = "The record", body = TaskRecord),
        (status = 400, description = "Invalid input", body = ErrorReply),
        (status = 401, description = "Missing or wrong token", body = ErrorReply),
        (status = 404, description = "Unknown task (never submitted, or its result expired)", body = ErrorReply),
        (status = 503, description = "Redis is unavailable", body = ErrorReply),
    )
)]
pub async fn task(
    State(st): State<AppState>,
    TaskIdPath(id): TaskIdPath,
) -> Result<Json<TaskRecord>, ApiError> {
    st.store
        .task_record(id)
        .await?
        .map(Json)
        .ok_or_else(|| unknown_task(id))
}

/// Every registered function.
#[utoipa::path(
    get,
    path = "/functions",
    tag = "functions",
    responses(
        (status = 200, description = "The functions", body = Vec<FunctionSummary>),
        (status = 401, description = "Missing or wrong token", body = ErrorReply),
        (status = 503, description = "Redis is unavailable", body = ErrorReply),
    )
)]
pub async fn functions(State(st): State<AppState>) -> Result<Json<Vec<FunctionSummary>>, ApiError> {
    Ok(Json(st.store.list_functions().await?))
}

/// The longest `/healthz` takes: a health check must get its 503, not time out itself.
const HEALTH_BOUND: Duration = Duration::from_millis(800);

/// `/healthz`'s answer when healthy.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    status: &'static str,
}

/// 200 when Redis answers and takes a write; else 503 saying which (unreachable, out of
/// memory, read-only, persistence failed). Needs no token.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    security(()),
    responses(
        (status = 200, description = "Redis answers and takes writes", body = Health),
        (status = 503, description = "Redis is unreachable or refuses writes (the message says which)", body = ErrorReply),
    )
)]
pub async fn healthz(State(st): State<AppState>) -> Result<Json<Health>, ApiError> {
    match tokio::time::timeout(HEALTH_BOUND, st.store.check_writable()).await {
        Ok(checked) => checked?,
        Err(_) => {
            let late = std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {HEALTH_BOUND:?}"),
            );
            return Err(ApiError::Unavailable(redis::RedisError::from(late).into()));
        }
    }
    Ok(Json(Health { status: "ok" }))
}

pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {}", uri.path()))
}

pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}

async fn brief(st: &AppState, id: TaskId) -> Result<TaskBrief, ApiError> {
    st.store
        .task_brief(id)
        .await?
        .ok_or_else(|| unknown_task(id))
}

pub(super) fn unknown_task(id: TaskId) -> ApiError {
    ApiError::NotFound(format!(
        "unknown task {id} (never submitted, or its result expired)"
    ))
}

async fn function_meta(st: &AppState, id: FunctionId) -> Result<FunctionMeta, ApiError> {
    if let Some(meta) = st.functions.read().expect("cache lock").get(&id) {
        return Ok(meta.clone());
    }
    let meta = st
        .store
        .function_meta(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("unknown function {id}")))?;
    st.functions
        .write()
        .expect("cache lock")
        .insert(id, meta.clone());
    Ok(meta)
}
