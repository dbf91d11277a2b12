//! `GET /workers`: the worker registry as the dispatchers keep it, for `faas workers` and tools.

use axum::extract::State;
use axum::Json;
use faas_protocol::model::WorkerInfo;

use super::error::ApiError;
use super::AppState;

/// Every registered worker, sorted by id.
pub async fn workers(State(st): State<AppState>) -> Result<Json<Vec<WorkerInfo>>, ApiError> {
    Ok(Json(st.store.workers().await?))
}
