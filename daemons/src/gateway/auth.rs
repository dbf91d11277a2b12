//! Bearer-token authentication: when the gateway has a token, every route but `/healthz` needs
//! `Authorization: Bearer <token>` and answers 401 with a JSON `{"error"}` otherwise.
//!
//! `/healthz` stays open so load balancers, systemd checks and `faas up` can probe liveness
//! without the secret. `/openapi.json` and `/docs` (with its assets) are open too: they hold only
//! the API's published shape, and a browser cannot send the token when it opens the page (see
//! [`super::openapi`]). Unknown routes are guarded, so no other path can be probed anonymously.

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use faas_protocol::api::ErrorReply;
use subtle::ConstantTimeEq;

use super::AppState;

/// The one route that never needs the token.
pub const OPEN_PATH: &str = "/healthz";

/// Middleware: lets the request through when no token is configured, the path is open, or the
/// request carries the right bearer token.
pub async fn require_token(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let Some(expected) = st.token.as_deref() else {
        return next.run(req).await;
    };
    if is_open(req.uri().path()) {
        return next.run(req).await;
    }
    match bearer(req.headers().get(AUTHORIZATION)) {
        Some(given) if token_matches(given.as_bytes(), expected.as_bytes()) => next.run(req).await,
        Some(_) => unauthorized("invalid token"),
        None => unauthorized(
            "missing `Authorization: Bearer <token>` header (this gateway requires a token)",
        ),
    }
}

/// `/healthz`, the OpenAPI document, and the documentation page and its assets.
fn is_open(path: &str) -> bool {
    path == OPEN_PATH || super::openapi::is_open(path)
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
fn bearer(header: Option<&HeaderValue>) -> Option<&str> {
    let value = header?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Constant time in the token's content, so response times do not reveal how much of a guess was
/// right. Only whether the lengths are equal can be told apart, which says nothing useful.
fn token_matches(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len() && bool::from(given.ct_eq(expected))
}

fn unauthorized(message: &str) -> Response {
    let mut resp = (
        StatusCode::UNAUTHORIZED,
        Json(ErrorReply {
            error: message.to_owned(),
        }),
    )
        .into_response();
    resp.headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_parsed_strictly() {
        let h = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(bearer(Some(&h("Bearer abc"))), Some("abc"));
        assert_eq!(bearer(Some(&h("bearer  abc "))), Some("abc"));
        assert_eq!(bearer(Some(&h("Basic abc"))), None);
        assert_eq!(bearer(Some(&h("Bearer"))), None);
        assert_eq!(bearer(Some(&h("Bearer "))), None);
        assert_eq!(bearer(None), None);
    }

    #[test]
    fn tokens_match_only_exactly() {
        assert!(token_matches(b"s3cret", b"s3cret"));
        assert!(!token_matches(b"s3creT", b"s3cret"));
        assert!(!token_matches(b"s3cre", b"s3cret"));
        assert!(!token_matches(b"", b"s3cret"));
    }
}
