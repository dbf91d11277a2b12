//! The worker registry routes: `GET /workers` lists it as the dispatchers keep it (for
//! `faas workers` and tools), `POST /workers/{id}/drain` asks a worker to leave gracefully.
//!
//! The registry (`{p}:workers`, id → JSON `WorkerInfo`) is written only by dispatchers: a
//! remote worker's entry by the dispatcher it joined, a local pool's by its own dispatcher.
//! An entry says `draining` while its worker finishes its tasks before leaving, and is deleted
//! when the worker leaves (`bye`) or is lost (missed heartbeats).
//!
//! Draining is an operator request, not a record: the gateway checks that the worker is
//! registered and publishes its id on `{p}:drains`; every dispatcher hears it and the one that
//! owns the worker stops giving it tasks, marks it draining and sends it `drain` on the worker
//! protocol, after which the worker leaves as it does on SIGTERM. A local pool is the
//! dispatcher itself, so it cannot be drained apart from it: the answer is 409, and stopping
//! that dispatcher (SIGTERM) drains it.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use faas_protocol::api::{DrainReply, ErrorReply};
use faas_protocol::event::WorkerState;
use faas_protocol::model::{WorkerInfo, WorkerMode};

use super::error::ApiError;
use super::AppState;

/// Every registered worker, sorted by id.
#[utoipa::path(
    get,
    path = "/workers",
    tag = "operations",
    responses(
        (status = 200, description = "The workers", body = Vec<WorkerInfo>),
        (status = 401, description = "Missing or wrong token", body = ErrorReply),
        (status = 503, description = "Redis is unavailable", body = ErrorReply),
    )
)]
pub async fn workers(State(st): State<AppState>) -> Result<Json<Vec<WorkerInfo>>, ApiError> {
    Ok(Json(st.store.workers().await?))
}

/// Drains a remote worker: its dispatcher gives it no new task, it finishes the tasks it runs
/// (within its drain grace; what is left then goes back to the queue) and leaves. Meanwhile
/// `/workers` and the events say `draining`. Asking again is harmless.
#[utoipa::path(
    post,
    path = "/workers/{id}/drain",
    tag = "operations",
    params(("id" = String, Path, description = "The worker id, as `/workers` lists it")),
    responses(
        (status = 202, description = "The worker's dispatcher was asked to drain it", body = DrainReply),
        (status = 401, description = "Missing or wrong token", body = ErrorReply),
        (status = 404, description = "No such worker in the registry", body = ErrorReply),
        (status = 409, description = "A local pool: stop its dispatcher instead", body = ErrorReply),
        (status = 503, description = "Redis is unavailable, or no dispatcher is listening", body = ErrorReply),
    )
)]
pub async fn drain_worker(
    State(st): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<(StatusCode, Json<DrainReply>), ApiError> {
    let Path(id) = id.map_err(|e| ApiError::bad(e.body_text()))?;
    let Some(info) = st.store.worker(&id).await? else {
        return Err(ApiError::NotFound(format!(
            "no worker {id:?} in the registry (`GET /workers` lists them)"
        )));
    };
    if info.mode == WorkerMode::Local {
        return Err(ApiError::Refused(format!(
            "worker {id} is the local pool of dispatcher {}: local workers cannot be drained \
             apart from their dispatcher; stop that dispatcher (SIGTERM drains it)",
            info.dispatcher
        )));
    }
    if st.store.request_drain(&id).await? == 0 {
        return Err(ApiError::NoListener(
            "no dispatcher is listening for drains; is one running?".into(),
        ));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(DrainReply {
            worker: id,
            dispatcher: info.dispatcher,
            state: WorkerState::Draining,
        }),
    ))
}
