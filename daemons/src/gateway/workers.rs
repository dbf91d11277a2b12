//! `GET /workers`: the worker registry as the dispatchers keep it, for `faas workers` and tools.

use axum::extract::State;
use axum::Json;
use faas_protocol::api::ErrorReply;
use faas_protocol::model::WorkerInfo;

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
