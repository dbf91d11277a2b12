//! The gateway's router driven in-process with `tower::ServiceExt::oneshot`: the real router
//! (`faas_daemons::gateway::app`) on a real redis-server, no socket in between. What the
//! socket-level tests check end to end, these check one request at a time.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use faas_daemons::gateway::{app, AppState, GatewayConfig};
use faas_daemons::store::Store;
use faas_protocol::Keys;
use faas_tests::{RedisGuard, TestDir};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// A router on its own redis-server; both go when the returned guards drop.
async fn router(token: Option<&str>) -> (axum::Router, RedisGuard, TestDir) {
    let dir = TestDir::new();
    let redis = RedisGuard::start(dir.path()).await;
    let store = Store::connect(
        &redis.url(),
        Keys::default(),
        Duration::from_secs(2),
        &CancellationToken::new(),
    )
    .await
    .expect("store")
    .expect("not cancelled");
    let state = AppState::new(store, GatewayConfig::default()).with_token(token.map(str::to_owned));
    (app(state), redis, dir)
}

async fn call(router: &axum::Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = router.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body)
}

fn post(path: &str, body: Value) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_then_read_back_and_queue_through_the_router() {
    let (router, _redis, _dir) = router(None).await;
    assert_eq!(call(&router, get("/healthz")).await.0, StatusCode::OK);
    let (status, reply) = call(
        &router,
        post(
            "/register_function",
            json!({"name": "add", "source": "def add(a, b):\n    return a + b\n", "entrypoint": "add"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let fid = reply["function_id"]
        .as_str()
        .expect("function_id")
        .to_owned();
    let (status, list) = call(&router, get("/functions")).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert!(list.to_string().contains(&fid), "{list}");
    let (status, reply) = call(
        &router,
        post(
            "/execute_function",
            json!({"function_id": fid, "args": [1, 2]}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let tid = reply["task_id"].as_str().expect("task_id");
    // No dispatcher runs: the task waits in the queue.
    let (status, reply) = call(&router, get(&format!("/status/{tid}"))).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["status"], "QUEUED", "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_errors_from_the_router() {
    let (router, _redis, _dir) = router(None).await;
    let (status, reply) = call(&router, get("/no/such/route")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        reply["error"]
            .as_str()
            .is_some_and(|e| e.contains("/no/such/route")),
        "{reply}"
    );
    let (status, reply) = call(&router, post("/register_function", json!({"name": "x"}))).await;
    assert!(status.is_client_error(), "{status} {reply}");
    assert!(reply["error"].is_string(), "{reply}");
    let unknown = uuid::Uuid::new_v4();
    let (status, reply) = call(&router, get(&format!("/status/{unknown}"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{reply}");
    assert!(reply["error"].is_string(), "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_wants_the_token_everywhere_but_healthz() {
    let (router, _redis, _dir) = router(Some("s3cret")).await;
    assert_eq!(call(&router, get("/healthz")).await.0, StatusCode::OK);
    let (status, reply) = call(&router, get("/functions")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{reply}");
    assert!(reply["error"].is_string(), "{reply}");
    let authorised = Request::get("/functions")
        .header("authorization", "Bearer s3cret")
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&router, authorised).await.0, StatusCode::OK);
}
