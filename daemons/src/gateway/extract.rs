//! Request extractors whose rejections are JSON `{"error"}` bodies with the right status.
//!
//! The body is parsed as JSON whatever its Content-Type: the original Python clients do not
//! always send one, and wire compatibility matters more than strictness here.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::AppState;

/// A JSON body of type `T`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge(format!(
                    "request body is larger than the limit of {} bytes",
                    state.config.body_limit
                ))
            } else {
                ApiError::bad(format!("cannot read the request body: {e}"))
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad(
                "request body is empty; expected a JSON object",
            ));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::bad(format!("invalid JSON body: {e}")))
    }
}

/// The id in the path; a malformed one is a 400 that says so.
async fn path_id<T>(parts: &mut Parts, state: &AppState) -> Result<T, ApiError>
where
    T: std::str::FromStr<Err = faas_protocol::ids::InvalidId>,
{
    let Path(raw) = Path::<String>::from_request_parts(parts, state)
        .await
        .map_err(|e| ApiError::bad(e.to_string()))?;
    raw.parse()
        .map_err(|e: faas_protocol::ids::InvalidId| ApiError::bad(e.to_string()))
}

/// A task id from the path; a malformed one is a 400 that says so.
#[derive(Debug)]
pub struct TaskIdPath(pub faas_protocol::TaskId);

impl FromRequestParts<AppState> for TaskIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        path_id(parts, state).await.map(TaskIdPath)
    }
}

/// A function id from the path; a malformed one is a 400 that says so.
#[derive(Debug)]
pub struct FunctionIdPath(pub faas_protocol::FunctionId);

impl FromRequestParts<AppState> for FunctionIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        path_id(parts, state).await.map(FunctionIdPath)
    }
}
