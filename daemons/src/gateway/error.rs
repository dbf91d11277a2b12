//! The gateway's error type and its mapping to HTTP: a clear JSON `{"error"}` for the client,
//! the internal detail in the log.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use faas_protocol::api::{ConflictReply, ErrorReply};

use crate::store::{StoreError, Trouble};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 409: the task's status does not allow the request; the body names the status.
    #[error("{message}")]
    Conflict {
        message: String,
        status: faas_protocol::TaskStatus,
    },
    /// 409 about something that is not a task (its body is a plain `{"error"}`).
    #[error("{0}")]
    Refused(String),
    /// 503 that is not Redis trouble: nobody is there to act on the request.
    #[error("{0}")]
    NoListener(String),
    #[error("storage unavailable")]
    Unavailable(#[from] StoreError),
}

impl ApiError {
    pub fn bad(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict { .. } | Self::Refused(_) => StatusCode::CONFLICT,
            Self::NoListener(_) => StatusCode::SERVICE_UNAVAILABLE,
            // Corrupt data is not Redis being away: retrying will not help.
            Self::Unavailable(e) if e.kind() == Trouble::Corrupt => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Self::Conflict {
            message,
            status: st,
        } = self
        {
            let body = ConflictReply {
                error: message,
                status: st,
            };
            return (status, Json(body)).into_response();
        }
        let error = match &self {
            Self::Unavailable(e) => {
                tracing::warn!(event = "redis_error", error = %e, "request failed: redis trouble");
                unavailable_message(e.kind()).to_owned()
            }
            other => other.to_string(),
        };
        (status, Json(ErrorReply { error })).into_response()
    }
}

/// What a client is told about each kind of Redis trouble (the detail goes to the log).
pub fn unavailable_message(kind: Trouble) -> &'static str {
    match kind {
        Trouble::Unreachable => "redis is unreachable; try again shortly",
        Trouble::OutOfMemory => {
            "redis is out of memory (maxmemory reached) and refuses writes; try again later"
        }
        Trouble::ReadOnly => "redis is a read-only replica and refuses writes",
        Trouble::PersistenceFailed => {
            "redis refuses writes because it cannot persist them (MISCONF)"
        }
        Trouble::Other => "redis is unavailable; try again shortly",
        Trouble::Corrupt => "a stored record is corrupt; see the gateway's log",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(e: StoreError) -> (StatusCode, String) {
        let e = ApiError::from(e);
        let status = e.status();
        let body = match &e {
            ApiError::Unavailable(s) => unavailable_message(s.kind()).to_owned(),
            other => other.to_string(),
        };
        (status, body)
    }

    #[test]
    fn redis_trouble_is_told_apart() {
        let server = |text: &str| {
            StoreError::Redis(redis::RedisError::from((
                redis::ErrorKind::Extension,
                "",
                text.to_owned(),
            )))
        };
        let (status, msg) = reply(server(
            "OOM command not allowed when used memory > 'maxmemory'.",
        ));
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(msg.contains("out of memory"), "{msg}");
        let (status, msg) = reply(server(
            "READONLY You can't write against a read only replica.",
        ));
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(msg.contains("read-only"), "{msg}");
        let down = StoreError::Redis(redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused",
        )));
        let (status, msg) = reply(down);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(msg.contains("unreachable"), "{msg}");
        let corrupt = StoreError::Corrupt {
            key: "faas:task:x".into(),
            detail: "bad status".into(),
        };
        let (status, msg) = reply(corrupt);
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(msg.contains("corrupt"), "{msg}");
    }
}
