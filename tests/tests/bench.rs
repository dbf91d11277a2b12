//! `faas bench` runs and reports sane JSON, and `POST /execute_batch` submits all of a batch
//! or none of it. Nothing here is timed: speed is measured by `faas bench`, not by tests.

use std::time::Duration;

use faas_protocol::Keys;
use faas_tests::{bin, Mode, Resp, Stack, StatusCode};
use serde_json::{json, Value};

const NOOP: &str = "def noop():\n    return None\n";
/// A bench run that has not returned by then is hung.
const BENCH_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_reports_sane_json() {
    let stack = Stack::start(Mode::Local).await;
    let out = tokio::time::timeout(
        BENCH_TIMEOUT,
        tokio::process::Command::new(bin("faas"))
            .args(["bench", "--gateway", stack.base_url()])
            .args(["--tasks", "50", "--concurrency", "8", "--json"])
            .env_remove("FAAS_TOKEN")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("faas bench hung")
    .expect("run faas bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "faas bench failed: {}\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout}"));
    let num = |k: &str| {
        r[k].as_f64()
            .unwrap_or_else(|| panic!("`{k}` is not a number: {r}"))
    };
    assert_eq!(r["tasks"], 50, "{r}");
    assert_eq!(r["completed"], 50, "{r}");
    assert_eq!(r["failures"], 0, "{r}");
    assert_eq!(r["mode"], "local", "{r}");
    assert!(num("throughput") > 0.0, "{r}");
    assert!(num("submit_rate") > 0.0, "{r}");
    let (p50, p90, p99) = (num("p50_ms"), num("p90_ms"), num("p99_ms"));
    assert!(0.0 < p50 && p50 <= p90 && p90 <= p99, "{r}");
    assert!(
        p99 <= num("max_ms") && num("max_ms") <= num("wall_s") * 1000.0,
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_100_completes_in_order() {
    let stack = Stack::start(Mode::Local).await;
    let add = stack
        .register_source("add", "def add(a, b):\n    return a + b\n", "add")
        .await;
    let executions: Vec<Value> = (0..100)
        .map(|i| json!({"function_id": add, "args": [i, 1000]}))
        .collect();
    let ids = stack.execute_batch(executions).await;
    assert_eq!(ids.len(), 100);
    // The ids come back in the order of the executions: the i-th computes i + 1000.
    for (i, id) in ids.into_iter().enumerate() {
        let result = stack.wait_result(id).await;
        assert_eq!(result["status"], "COMPLETED", "{result}");
        assert_eq!(result["result"], i + 1000, "{result}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_one_bad_item_submits_nothing() {
    // No dispatcher: whatever is submitted stays in the queue, where the test can count it.
    let mut stack = Stack::builder(Mode::Local)
        .without_dispatcher()
        .start()
        .await;
    let noop = stack.register_source("noop", NOOP, "noop").await;
    let good = json!({"function_id": noop});
    let cases = [
        (
            json!([good, good, {"function_id": noop, "args": 5}]),
            "executions[2]",
        ),
        (json!([good, {"function_id": "nope"}]), "executions[1]"),
        (
            json!([{"function_id": noop, "timeout_ms": 0}]),
            "executions[0]",
        ),
        (
            json!([good, {"function_id": noop, "payload": "gAROLg=="}]),
            "executions[1]",
        ),
    ];
    for (executions, index) in cases {
        let (status, reply) = stack
            .post_json("/execute_batch", json!({ "executions": executions }))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{executions}: {reply}");
        let error = reply["error"].as_str().unwrap_or_default();
        assert!(error.starts_with(index), "{executions}: {reply}");
        assert!(reply.get("task_ids").is_none(), "{reply}");
    }
    let (status, reply) = stack
        .post_json("/execute_batch", json!({"executions": []}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");

    let keys = Keys::default();
    let stats = stack.redis().hgetall(&keys.stats()).await;
    assert_eq!(stats.get("submitted"), None, "{stats:?}");
    let queued = stack.redis().command(&["XLEN", &keys.queue()]).await;
    assert_eq!(queued, Resp::Int(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_batch_is_refused() {
    let stack = Stack::builder(Mode::Local)
        .without_dispatcher()
        .start()
        .await;
    let noop = stack.register_source("noop", NOOP, "noop").await;
    let executions = vec![json!({"function_id": noop}); 10_001];
    let (status, reply) = stack
        .post_json("/execute_batch", json!({ "executions": executions }))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .unwrap_or_default()
            .contains("10000"),
        "{reply}"
    );
}

/// `--functions` cycles over several functions and `--cold-starts` times first calls of new
/// ones; both report every task completed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_runs_a_function_mix_and_cold_starts() {
    let stack = Stack::start(Mode::Local).await;
    for args in [
        &["--tasks", "30", "--concurrency", "4", "--functions", "5"][..],
        &["--cold-starts", "3", "--cold-pause-ms", "10"][..],
    ] {
        let out = tokio::time::timeout(
            BENCH_TIMEOUT,
            tokio::process::Command::new(bin("faas"))
                .args(["bench", "--gateway", stack.base_url(), "--json"])
                .args(args)
                .env_remove("FAAS_TOKEN")
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("faas bench hung")
        .expect("run faas bench");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "faas bench {args:?} failed: {stdout}");
        let r: Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
        assert_eq!(r["failures"], 0, "{r}");
        assert_eq!(r["completed"], r["tasks"], "{r}");
        if args[0] == "--cold-starts" {
            assert_eq!(r["cold_starts"], 3, "{r}");
        } else {
            assert_eq!(r["functions"], 5, "{r}");
        }
    }
}
