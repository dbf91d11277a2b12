//! `POST /results/wait`: many tasks in one long poll, the cursor that spares Redis reads,
//! submissions in the same request, bad input as 4xx JSON, and no waiter left behind.

use std::time::{Duration, Instant};

use faas_tests::{wait_until, Mode, Stack, StatusCode};
use serde_json::{json, Value};

const ADD: &str = "def add(a, b):\n    return a + b\n";
const SLEEP: &str = "import time\ndef nap(s):\n    time.sleep(s)\n    return s\n";
const UNKNOWN_ID: &str = "6f1c1a52-3f43-4a7e-9b59-5d1c0f6a9a10";

async fn wait(stack: &Stack, body: Value) -> Value {
    let (status, reply) = stack.post_json("/results/wait", body).await;
    assert_eq!(status, StatusCode::OK, "/results/wait: {reply}");
    reply
}

fn ids_of(reply: &Value, field: &str) -> Vec<String> {
    reply[field]
        .as_array()
        .unwrap_or_else(|| panic!("`{field}` is not a list: {reply}"))
        .iter()
        .map(|v| {
            v.get("task_id")
                .unwrap_or(v)
                .as_str()
                .expect("an id")
                .to_owned()
        })
        .collect()
}

/// The gateway's `faas_gateway_result_waiters` gauge.
async fn waiters(stack: &Stack) -> u64 {
    let text = stack
        .client()
        .get(stack.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics body");
    text.lines()
        .find_map(|l| l.strip_prefix("faas_gateway_result_waiters "))
        .unwrap_or_else(|| panic!("no result waiters gauge in:\n{text}"))
        .trim()
        .parse()
        .expect("a number")
}

/// Asserts that the waiter map empties (requests that ended left nothing behind).
async fn assert_no_waiters(stack: &Stack) {
    let mut last = u64::MAX;
    let empty = wait_until(Duration::from_secs(10), async || {
        last = waiters(stack).await;
        last == 0
    })
    .await;
    assert!(
        empty,
        "{last} task waiters remain after every request ended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_as_soon_as_one_is_terminal_and_waits_for_the_rest() {
    let stack = Stack::start(Mode::Local).await;
    let nap = stack.register_source("nap", SLEEP, "nap").await;
    let add = stack.register_source("add", ADD, "add").await;
    let slow = stack.execute_json(nap, json!([30]), json!({})).await;
    let fast = stack.execute_json(add, json!([2, 3]), json!({})).await;

    let started = Instant::now();
    let reply = wait(
        &stack,
        json!({"task_ids": [slow, fast, fast], "wait_ms": 20_000}),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the reply waited for the slow task: {reply}"
    );
    assert_eq!(ids_of(&reply, "results"), vec![fast.to_string()], "{reply}");
    assert_eq!(reply["results"][0]["status"], "COMPLETED", "{reply}");
    assert_eq!(reply["results"][0]["result"], 5, "{reply}");
    assert!(ids_of(&reply, "unknown").is_empty(), "{reply}");
    let cursor = reply["cursor"].as_str().expect("a cursor").to_owned();

    // With the cursor, the slow task is not read again and nothing is terminal: the wait ends
    // empty when its time is up, and the same cursor comes back usable.
    let reply = wait(
        &stack,
        json!({"cursor": cursor, "cursor_ids": [slow], "wait_ms": 300}),
    )
    .await;
    assert!(ids_of(&reply, "results").is_empty(), "{reply}");
    assert!(reply["cursor"].is_string(), "{reply}");
    assert_no_waiters(&stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_finds_tasks_that_finished_between_two_calls() {
    let stack = Stack::start(Mode::Local).await;
    let add = stack.register_source("add", ADD, "add").await;
    let nap = stack.register_source("nap", SLEEP, "nap").await;
    // One call that returns at once and hands out a cursor covering `a`...
    let a = stack.execute_json(nap, json!([0.5]), json!({})).await;
    let reply = wait(&stack, json!({"task_ids": [a], "wait_ms": 0})).await;
    assert!(ids_of(&reply, "results").is_empty(), "{reply}");
    let cursor = reply["cursor"].as_str().expect("a cursor").to_owned();
    // ...`a` finishes while nobody waits for it...
    let done = stack.wait_result(a).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    // ...and the next call with the cursor reports it from the log, without a wait.
    let reply = wait(
        &stack,
        json!({"cursor": cursor, "cursor_ids": [a], "wait_ms": 10_000}),
    )
    .await;
    assert_eq!(ids_of(&reply, "results"), vec![a.to_string()], "{reply}");

    // A cursor of another gateway (or from before a restart) is not trusted: the ids are read.
    let b = stack.execute_json(add, json!([1, 1]), json!({})).await;
    assert_eq!(stack.wait_result(b).await["result"], 2);
    let reply = wait(
        &stack,
        json!({"cursor": "00000000000000ff-1", "cursor_ids": [b], "wait_ms": 10_000}),
    )
    .await;
    assert_eq!(ids_of(&reply, "results"), vec![b.to_string()], "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_are_submitted_and_waited_for_in_the_same_request() {
    let stack = Stack::start(Mode::Local).await;
    let add = stack.register_source("add", ADD, "add").await;
    let executions: Vec<Value> = (0..20)
        .map(|i| json!({"function_id": add, "args": [i, 1]}))
        .collect();
    let reply = wait(
        &stack,
        json!({"executions": executions, "task_ids": [UNKNOWN_ID], "wait_ms": 0}),
    )
    .await;
    let submitted = ids_of(&reply, "submitted");
    assert_eq!(submitted.len(), 20, "{reply}");
    assert_eq!(
        ids_of(&reply, "unknown"),
        vec![UNKNOWN_ID.to_owned()],
        "{reply}"
    );

    // Follow the cursor until every submitted task is resolved, as a client would.
    let mut pending = submitted.clone();
    let mut cursor = reply["cursor"].as_str().expect("a cursor").to_owned();
    let mut results = std::collections::HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pending.is_empty() {
        assert!(Instant::now() < deadline, "still pending: {pending:?}");
        let reply = wait(
            &stack,
            json!({"cursor": cursor, "cursor_ids": pending, "wait_ms": 5_000}),
        )
        .await;
        for r in reply["results"].as_array().expect("results") {
            results.insert(
                r["task_id"].as_str().unwrap().to_owned(),
                r["result"].clone(),
            );
        }
        pending.retain(|id| !results.contains_key(id));
        cursor = reply["cursor"].as_str().expect("a cursor").to_owned();
    }
    for (i, id) in submitted.iter().enumerate() {
        assert_eq!(results[id], json!(i + 1), "task {i} ({id})");
    }
    assert_no_waiters(&stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_are_dropped_when_the_wait_ends_or_the_client_leaves() {
    let stack = Stack::start(Mode::Local).await;
    let nap = stack.register_source("nap", SLEEP, "nap").await;
    let slow: Vec<_> = {
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(stack.execute_json(nap, json!([30]), json!({})).await);
        }
        ids
    };
    // A wait that runs out.
    let reply = wait(&stack, json!({"task_ids": slow, "wait_ms": 200})).await;
    assert!(ids_of(&reply, "results").is_empty(), "{reply}");
    assert_no_waiters(&stack).await;

    // A client that goes away in the middle of a long wait.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    let gone = impatient
        .post(stack.url("/results/wait"))
        .json(&json!({"task_ids": slow, "wait_ms": 60_000}))
        .send()
        .await;
    assert!(gone.is_err(), "the request should have timed out: {gone:?}");
    assert_no_waiters(&stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_4xx_json_and_submit_nothing() {
    let mut stack = Stack::start(Mode::Local).await;
    let add = stack.register_source("add", ADD, "add").await;
    let too_many: Vec<String> = (0..10_001)
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    let cases = [
        ("empty object", json!({}), StatusCode::BAD_REQUEST),
        ("not an object", json!([1]), StatusCode::BAD_REQUEST),
        (
            "unknown field",
            json!({"task_ids": [UNKNOWN_ID], "ids": []}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "bad id",
            json!({"task_ids": [UNKNOWN_ID, "nope"]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "ids not strings",
            json!({"task_ids": [1]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "cursor_ids without cursor",
            json!({"cursor_ids": [UNKNOWN_ID]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "bad cursor",
            json!({"cursor": "x", "cursor_ids": [UNKNOWN_ID]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "negative wait",
            json!({"task_ids": [UNKNOWN_ID], "wait_ms": -1}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "too many ids",
            json!({"task_ids": too_many}),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "a bad execution",
            json!({"executions": [{"function_id": add, "args": [1, 2]}, {"function_id": add, "args": 3}]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "an unknown function",
            json!({"executions": [{"function_id": UNKNOWN_ID, "args": []}]}),
            StatusCode::NOT_FOUND,
        ),
    ];
    let mut wrong = Vec::new();
    for (what, body, expected) in cases {
        let (status, reply) = stack.post_json("/results/wait", body).await;
        if status != expected || reply["error"].as_str().is_none_or(str::is_empty) {
            wrong.push(format!("{what}: expected {expected}, got {status} {reply}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let (_, reply) = stack
        .post_json(
            "/results/wait",
            json!({"executions": [{"function_id": add, "args": [1, 2]}, {"function_id": add, "args": 3}]}),
        )
        .await;
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .starts_with("executions[1]"),
        "the error names the bad item: {reply}"
    );
    // All or nothing: the valid first item of the refused requests was not submitted.
    let stats = stack
        .redis()
        .hgetall(&faas_protocol::Keys::default().stats())
        .await;
    assert!(
        stats.get("submitted").is_none_or(|n| n == "0"),
        "refused requests submitted tasks: {stats:?}"
    );
    assert_no_waiters(&stack).await;
}
