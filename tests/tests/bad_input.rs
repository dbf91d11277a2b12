//! Bad requests: each is a 4xx with a JSON `{"error": ...}` body, never a 5xx.
//!
//! Each test checks a table of cases and reports every mismatch at once, so one run tells the
//! whole story of what the gateway gets wrong.

use faas_tests::{Mode, Stack, StatusCode};
use reqwest::Method;
use serde_json::{json, Value};

/// base64 of "hello world": valid base64, not a pickle.
const NOT_A_PICKLE: &str = "aGVsbG8gd29ybGQ=";
/// The pickle of `None` (protocol 4): enough for the gateway, which only checks the header.
const A_PICKLE: &str = "gAROLg==";
const UNKNOWN_ID: &str = "6f1c1a52-3f43-4a7e-9b59-5d1c0f6a9a10";

/// Collects mismatches between expected and actual replies.
#[derive(Default)]
struct Checks(Vec<String>);

impl Checks {
    fn expect(&mut self, what: &str, reply: (StatusCode, Value), expected: StatusCode) {
        let (status, body) = reply;
        let json_error = body["error"].as_str().is_some_and(|e| !e.is_empty());
        if status != expected || !json_error {
            self.0.push(format!(
                "{what}: expected {expected} with {{\"error\"}}, got {status} {body}"
            ));
        }
    }

    #[track_caller]
    fn assert_all_passed(self) {
        assert!(
            self.0.is_empty(),
            "{} mismatches:\n{}",
            self.0.len(),
            self.0.join("\n")
        );
    }
}

async fn gateway_only() -> Stack {
    Stack::builder(Mode::Local)
        .without_dispatcher()
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_rejects_bad_bodies() {
    let stack = gateway_only().await;
    let mut c = Checks::default();
    let post = |body: Value| stack.post_json("/register_function", body);

    c.expect(
        "payload not base64",
        post(json!({"name": "f", "payload": "payload"})).await,
        StatusCode::BAD_REQUEST,
    );
    c.expect(
        "payload base64 but not a pickle",
        post(json!({"name": "f", "payload": NOT_A_PICKLE})).await,
        StatusCode::BAD_REQUEST,
    );
    c.expect(
        "payload empty",
        post(json!({"name": "f", "payload": ""})).await,
        StatusCode::BAD_REQUEST,
    );
    c.expect(
        "missing name",
        post(json!({"payload": A_PICKLE})).await,
        StatusCode::BAD_REQUEST,
    );
    c.expect(
        "name is a number",
        post(json!({"name": 5, "payload": A_PICKLE})).await,
        StatusCode::BAD_REQUEST,
    );
    c.expect(
        "payload is a number",
        post(json!({"name": "f", "payload": 5})).await,
        StatusCode::BAD_REQUEST,
    );
    c.expect(
        "neither payload nor source",
        post(json!({"name": "f"})).await,
        StatusCode::BAD_REQUEST,
    );
    c.expect(
        "body is a list",
        post(json!([1, 2])).await,
        StatusCode::BAD_REQUEST,
    );
    c.expect(
        "malformed JSON",
        stack
            .post_raw(
                "/register_function",
                "application/json",
                r#"{"name": "f", "payload": "#,
            )
            .await,
        StatusCode::BAD_REQUEST,
    );
    c.expect(
        "empty body",
        stack
            .post_raw("/register_function", "application/json", "")
            .await,
        StatusCode::BAD_REQUEST,
    );
    c.assert_all_passed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_rejects_bad_source() {
    let stack = gateway_only().await;
    let mut c = Checks::default();
    let post = |body: Value| stack.post_json("/register_function", body);
    let add = "def add(a, b):\n    return a + b\n";

    c.expect(
        "empty source",
        post(json!({"name": "f", "source": "", "entrypoint": "add"})).await,
        StatusCode::BAD_REQUEST,
    );
    c.expect(
        "entrypoint not defined",
        post(json!({"name": "f", "source": add, "entrypoint": "sub"})).await,
        StatusCode::BAD_REQUEST,
    );
    c.expect(
        "entrypoint missing",
        post(json!({"name": "f", "source": add})).await,
        StatusCode::BAD_REQUEST,
    );
    c.expect(
        "source is a number",
        post(json!({"name": "f", "source": 5, "entrypoint": "add"})).await,
        StatusCode::BAD_REQUEST,
    );
    c.assert_all_passed();

    // Python's own compiler checks the syntax (without running the source): a typo is a 400
    // naming the line and pointing at the column, not a SyntaxError at every invocation.
    let broken = "def add(a, b):\n    return a +\n";
    let (status, reply) = post(json!({"name": "f", "source": broken, "entrypoint": "add"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    let error = reply["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("syntax error in the source, line 2") && error.contains("return a +"),
        "{reply}"
    );
    let (status, reply) = stack.get_json("/functions").await;
    assert!(
        status == StatusCode::OK && reply.as_array().is_some_and(|a| a.is_empty()),
        "nothing was registered: {reply}"
    );

    // The gateway's entrypoint check accepts assignments as well as `def`.
    let (status, reply) =
        post(json!({"name": "f", "source": "sub = lambda a, b: a - b\n", "entrypoint": "sub"}))
            .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "`NAME =` should define the entrypoint: {reply}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_rejects_bad_bodies() {
    let stack = gateway_only().await;
    let source = stack
        .register_source("add", "def add(a, b):\n    return a + b\n", "add")
        .await;
    let dill = stack.register_dill("nothing", A_PICKLE).await;
    let mut c = Checks::default();
    let post = |body: Value| stack.post_json("/execute_function", body);

    c.expect(
        "malformed function_id",
        post(json!({"function_id": "nope", "args": []})).await,
        StatusCode::BAD_REQUEST,
    );
    c.expect(
        "function_id is a number",
        post(json!({"function_id": 5, "args": []})).await,
        StatusCode::BAD_REQUEST,
    );
    c.expect(
        "missing function_id",
        post(json!({"args": []})).await,
        StatusCode::BAD_REQUEST,
    );
    c.expect(
        "unknown function",
        post(json!({"function_id": UNKNOWN_ID, "args": []})).await,
        StatusCode::NOT_FOUND,
    );
    c.expect(
        "args a number",
        post(json!({"function_id": source, "args": 5})).await,
        StatusCode::BAD_REQUEST,
    );
    c.expect(
        "args an object",
        post(json!({"function_id": source, "args": {"a": 1}})).await,
        StatusCode::BAD_REQUEST,
    );
    c.expect(
        "kwargs a list",
        post(json!({"function_id": source, "args": [], "kwargs": [1]})).await,
        StatusCode::BAD_REQUEST,
    );
    c.expect(
        "kwargs a string",
        post(json!({"function_id": source, "args": [], "kwargs": "x"})).await,
        StatusCode::BAD_REQUEST,
    );
    c.expect(
        "timeout_ms a string",
        post(json!({"function_id": source, "args": [], "timeout_ms": "soon"})).await,
        StatusCode::BAD_REQUEST,
    );
    c.expect(
        "dill payload not base64",
        post(json!({"function_id": dill, "payload": "payload"})).await,
        StatusCode::BAD_REQUEST,
    );
    c.expect(
        "dill payload not a pickle",
        post(json!({"function_id": dill, "payload": NOT_A_PICKLE})).await,
        StatusCode::BAD_REQUEST,
    );
    c.expect(
        "malformed JSON",
        stack
            .post_raw("/execute_function", "application/json", "{not json")
            .await,
        StatusCode::BAD_REQUEST,
    );
    c.assert_all_passed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_routes_reject_bad_and_unknown_ids() {
    let stack = gateway_only().await;
    let mut c = Checks::default();
    for route in ["status", "result", "tasks"] {
        c.expect(
            &format!("/{route} malformed id"),
            stack.get_json(&format!("/{route}/not-a-uuid")).await,
            StatusCode::BAD_REQUEST,
        );
        c.expect(
            &format!("/{route} unknown id"),
            stack.get_json(&format!("/{route}/{UNKNOWN_ID}")).await,
            StatusCode::NOT_FOUND,
        );
    }
    c.expect(
        "/result unknown id with wait",
        stack
            .get_json(&format!("/result/{UNKNOWN_ID}?wait=200"))
            .await,
        StatusCode::NOT_FOUND,
    );
    c.expect(
        "/result bad wait",
        stack
            .get_json(&format!("/result/{UNKNOWN_ID}?wait=soon"))
            .await,
        StatusCode::BAD_REQUEST,
    );
    c.assert_all_passed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_body_is_413() {
    let stack = Stack::builder(Mode::Local)
        .without_dispatcher()
        .gateway_args(&["--body-limit", "1024"])
        .start()
        .await;
    let big = format!("def f():\n    return {:?}\n", "x".repeat(2000));
    let mut c = Checks::default();
    c.expect(
        "2 KB source over a 1 KiB limit",
        stack
            .post_json(
                "/register_function",
                json!({"name": "f", "source": big, "entrypoint": "f"}),
            )
            .await,
        StatusCode::PAYLOAD_TOO_LARGE,
    );
    c.assert_all_passed();

    // Under the limit still works.
    stack
        .register_source("f", "def f():\n    return 1\n", "f")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_methods_are_4xx() {
    let stack = gateway_only().await;
    let mut c = Checks::default();
    c.expect(
        "GET /nope",
        stack.get_json("/nope").await,
        StatusCode::NOT_FOUND,
    );
    c.expect(
        "POST /nope",
        stack.post_json("/nope", json!({})).await,
        StatusCode::NOT_FOUND,
    );
    c.assert_all_passed();

    // Wrong methods on known routes: any 4xx, as long as it is not a 5xx.
    for (method, path) in [
        (Method::GET, "/register_function"),
        (Method::DELETE, "/functions"),
    ] {
        let (status, body) = stack.request(method.clone(), path, None).await;
        assert!(status.is_client_error(), "{method} {path}: {status} {body}");
    }
}
