//! Durability: Redis going away and coming back, tasks waiting for a dispatcher, and
//! dispatchers stopping or crashing mid-run without losing work.

use std::time::Duration;

use faas_tests::{assert_json_error, wait_until, Mode, Stack, StatusCode};
use serde_json::{json, Value};

faas_tests::per_mode!(
    redis_outage_is_503_and_the_platform_recovers,
    tasks_wait_in_the_queue_until_a_dispatcher_starts,
    a_dispatcher_restart_loses_nothing,
    a_killed_dispatcher_loses_nothing,
);

const ADD: &str = "def add(a, b):\n    return a + b\n";
/// Slow enough that a dispatcher stopped mid-run has tasks running and queued.
const SLOW_ECHO: &str = "import time\ndef echo(x):\n    time.sleep(0.3)\n    return x\n";

async fn add_completes(stack: &Stack) {
    let fid = stack.register_source("add", ADD, "add").await;
    let tid = stack.execute_json(fid, json!([2, 3]), json!({})).await;
    let reply = stack.wait_result(tid).await;
    assert_eq!(reply["status"], "COMPLETED", "{reply}");
    assert_eq!(reply["result"], 5, "{reply}");
}

async fn redis_outage_is_503_and_the_platform_recovers(mode: Mode) {
    let mut stack = Stack::start(mode).await;
    add_completes(&stack).await;

    stack.redis().stop();
    assert!(
        wait_until(Duration::from_secs(15), async || {
            stack.healthz().await == Some(StatusCode::SERVICE_UNAVAILABLE)
        })
        .await,
        "/healthz with Redis down: expected 503, last {:?}",
        stack.healthz().await
    );
    let (status, body) = stack.get_json("/healthz").await;
    assert_json_error(
        &(status, body),
        StatusCode::SERVICE_UNAVAILABLE,
        "/healthz with Redis down",
    );
    let reply = stack
        .post_json(
            "/register_function",
            json!({"name": "add", "source": ADD, "entrypoint": "add"}),
        )
        .await;
    assert_json_error(
        &reply,
        StatusCode::SERVICE_UNAVAILABLE,
        "register with Redis down",
    );

    stack.redis().restart().await;
    assert!(
        wait_until(Duration::from_secs(30), async || {
            stack.healthz().await == Some(StatusCode::OK)
        })
        .await,
        "the gateway did not recover after Redis came back: /healthz {:?}",
        stack.healthz().await
    );
    // Redis kept nothing (no persistence), so this is all new: the dispatcher must have
    // reconnected and re-created its consumer group.
    add_completes(&stack).await;
}

async fn tasks_wait_in_the_queue_until_a_dispatcher_starts(mode: Mode) {
    let mut stack = Stack::builder(mode).without_dispatcher().start().await;
    let fid = stack.register_source("add", ADD, "add").await;
    let mut tids = Vec::new();
    for i in 0..3 {
        tids.push((i, stack.execute_json(fid, json!([i, 10]), json!({})).await));
    }
    for (_, tid) in &tids {
        let reply = stack.result_wait(*tid, 300).await;
        assert_eq!(reply["status"], "QUEUED", "{reply}");
        assert!(reply["result"].is_null(), "{reply}");
    }

    stack.start_dispatcher();
    for (i, tid) in tids {
        let reply = stack.wait_result(tid).await;
        assert_eq!(reply["status"], "COMPLETED", "{reply}");
        assert_eq!(reply["result"], i + 10, "{reply}");
    }
}

/// Submits `n` slow echo tasks, returns them once the first has completed (so the dispatcher
/// is mid-run: some done, some running, some queued).
async fn submit_and_get_going(stack: &Stack, n: u64) -> Vec<(u64, faas_protocol::TaskId)> {
    let fid = stack.register_source("echo", SLOW_ECHO, "echo").await;
    let mut tids = Vec::new();
    for i in 0..n {
        tids.push((i, stack.execute_json(fid, json!([i]), json!({})).await));
    }
    let first = stack.wait_result(tids[0].1).await;
    assert_eq!(first["status"], "COMPLETED", "{first}");
    tids
}

async fn all_complete(stack: &Stack, tids: Vec<(u64, faas_protocol::TaskId)>, within: Duration) {
    for (i, tid) in tids {
        let reply: Value = stack.wait_result_within(tid, within).await;
        assert_eq!(reply["status"], "COMPLETED", "task {i}: {reply}");
        assert_eq!(reply["result"], i, "task {i}: {reply}");
    }
}

async fn a_dispatcher_restart_loses_nothing(mode: Mode) {
    let mut stack = Stack::builder(mode).procs(1).start().await;
    let tids = submit_and_get_going(&stack, 8).await;

    let exit = stack.stop_dispatcher().expect("dispatcher was running");
    assert!(
        exit.success(),
        "the dispatcher should exit cleanly on SIGTERM: {exit}"
    );
    stack.start_dispatcher();
    all_complete(&stack, tids, Duration::from_secs(60)).await;
}

async fn a_killed_dispatcher_loses_nothing(mode: Mode) {
    // Reclaiming sooner than the 30 s default keeps the test short; tasks take 0.3 s, so no
    // live dispatcher's entry idles that long.
    let mut stack = Stack::builder(mode)
        .procs(1)
        .dispatcher_args(&["--reclaim-after-ms", "3000"])
        .start()
        .await;
    let tids = submit_and_get_going(&stack, 8).await;

    stack.kill9_dispatcher();
    stack.start_dispatcher();
    // The dead dispatcher's entries come back only once they idled past the reclaim time.
    all_complete(&stack, tids, Duration::from_secs(60)).await;
}
