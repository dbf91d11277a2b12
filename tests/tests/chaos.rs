//! Chaos: workers and dispatchers killed mid-run (SIGKILL, no goodbye) lose no task and give no
//! wrong result; two dispatchers on one Redis share the queue without running a task twice; a
//! task that keeps killing its worker fails with `WorkerLost` once its attempts are used up.

use std::time::Duration;

use faas_protocol::TaskId;
use faas_tests::{free_port, Mode, Stack, FAST_DISPATCHER, FAST_WORKER};
use serde_json::{json, Value};

faas_tests::per_mode!(a_killed_dispatcher_is_replaced_and_loses_nothing);

faas_tests::remote_modes!(
    a_killed_worker_loses_no_task,
    two_dispatchers_share_the_queue_and_run_each_task_once,
    a_task_that_kills_its_worker_fails_after_max_attempts,
);

/// Short enough that 200 of them finish in seconds, long enough that a kill lands mid-task.
const DOUBLE: &str = "import time\ndef f(x):\n    time.sleep(0.02)\n    return x * 2\n";
/// Kills the `faas-worker` that runs it: a Python child's parent is the worker process.
const KILL_MY_WORKER: &str = "import os, signal, time\n\
def die():\n    os.kill(os.getppid(), signal.SIGKILL)\n    time.sleep(5)\n";
/// Lost workers are noticed after three 300 ms heartbeats, dead dispatchers' entries are
/// reclaimed after 2 s: chaos tests run in seconds instead of a minute.
const ALL_DONE: Duration = Duration::from_secs(45);

async fn submit(stack: &Stack, source: &str, entrypoint: &str, n: u64) -> Vec<(u64, TaskId)> {
    let fid = stack.register_source(entrypoint, source, entrypoint).await;
    let mut tids = Vec::new();
    for i in 0..n {
        tids.push((i, stack.execute_json(fid, json!([i]), json!({})).await));
    }
    tids
}

/// Asserts every task COMPLETED with `x * 2` and returns the task records.
async fn all_doubled(stack: &Stack, tids: &[(u64, TaskId)]) -> Vec<Value> {
    let mut records = Vec::new();
    for &(i, tid) in tids {
        let reply = stack.wait_result_within(tid, ALL_DONE).await;
        assert_eq!(reply["status"], "COMPLETED", "task {i}: {reply}");
        assert_eq!(reply["result"], i * 2, "task {i}: {reply}");
        records.push(stack.task(tid).await);
    }
    records
}

fn attempts(record: &Value) -> u64 {
    record["attempts"].as_u64().unwrap_or_default()
}

fn worker_of(record: &Value) -> &str {
    record["worker"].as_str().unwrap_or_default()
}

/// Counts the lines of a daemon log that contain `needle`.
async fn a_killed_worker_loses_no_task(mode: Mode) {
    let mut stack = Stack::builder(mode)
        .procs(2)
        .worker_processes(0)
        .dispatcher_args(FAST_DISPATCHER)
        .worker_args(FAST_WORKER)
        .start()
        .await;
    let port = stack.dispatcher_port();
    stack.add_worker(port, &["--id", "survivor"]);
    let victim = stack.add_worker(port, &["--id", "victim"]);
    stack
        .wait_registered_workers(2, Duration::from_secs(20))
        .await;

    let tids = submit(&stack, DOUBLE, "f", 200).await;
    // Mid-run: the first tasks are done, most are still running or queued.
    let early = stack.wait_result_within(tids[20].1, ALL_DONE).await;
    assert_eq!(early["status"], "COMPLETED", "{early}");
    stack.worker(victim).kill9();

    let records = all_doubled(&stack, &tids).await;
    let retried = records.iter().filter(|r| attempts(r) >= 2).count();
    let by_victim = records.iter().filter(|r| worker_of(r) == "victim").count();
    eprintln!("{retried} task(s) ran again after the kill; the victim finished {by_victim}");
    assert!(
        retried > 0 || by_victim > 0,
        "the killed worker neither ran a task nor left one to re-run: the kill tested nothing"
    );
    assert!(
        stack.worker(0).exited().is_none(),
        "the surviving worker died"
    );
    stack
        .wait_registered_workers(1, Duration::from_secs(10))
        .await;
}

async fn a_killed_dispatcher_is_replaced_and_loses_nothing(mode: Mode) {
    let mut stack = Stack::builder(mode)
        .procs(2)
        .worker_processes(2)
        .dispatcher_args(FAST_DISPATCHER)
        .worker_args(FAST_WORKER)
        .start()
        .await;
    // Long enough that the workers are still busy when they rejoin the new dispatcher.
    let slow = "import time\ndef f(x):\n    time.sleep(0.5)\n    return x * 2\n";
    let tids = submit(&stack, slow, "f", 24).await;
    let early = stack.wait_result_within(tids[0].1, ALL_DONE).await;
    assert_eq!(early["status"], "COMPLETED", "{early}");

    stack.kill9_dispatcher();
    // Same port: the workers of the dead dispatcher must find this one by themselves.
    stack.start_dispatcher();
    let records = all_doubled(&stack, &tids).await;
    assert!(
        records.iter().all(|r| r["status"] == "COMPLETED"),
        "{records:?}"
    );

    if mode != Mode::Local {
        for i in 0..stack.worker_count() {
            let worker = stack.worker(i);
            assert!(
                worker.exited().is_none(),
                "worker {i} did not survive the dispatcher's crash:\n{}",
                worker.log_tail(30)
            );
            assert!(
                worker.count_events(|e| e.is("joined")) >= 2,
                "worker {i} never rejoined:\n{}",
                worker.log_tail(30)
            );
        }
        // And they serve new work.
        let more = submit(&stack, DOUBLE, "f", 4).await;
        all_doubled(&stack, &more).await;
    }
}

async fn two_dispatchers_share_the_queue_and_run_each_task_once(mode: Mode) {
    // Default heartbeats and reclaim time: nothing is killed here, and a worker that a loaded
    // machine delays past a short heartbeat would be re-run and spoil `attempts == 1`.
    let mut stack = Stack::builder(mode)
        .procs(1)
        .without_dispatcher()
        .start()
        .await;
    let (port_a, port_b) = (free_port(), free_port());
    stack.add_dispatcher(port_a, &["--name", "disp-a"]);
    stack.add_dispatcher(port_b, &["--name", "disp-b"]);
    for (port, id) in [
        (port_a, "a1"),
        (port_a, "a2"),
        (port_b, "b1"),
        (port_b, "b2"),
    ] {
        stack.add_worker(port, &["--id", id]);
    }
    let registry = stack
        .wait_registered_workers(4, Duration::from_secs(20))
        .await;
    for (id, info) in &registry {
        let expected = if id.starts_with('a') {
            "disp-a"
        } else {
            "disp-b"
        };
        assert_eq!(info["dispatcher"], expected, "{id}: {info}");
    }

    let tids = submit(&stack, DOUBLE, "f", 100).await;
    let records = all_doubled(&stack, &tids).await;
    for r in &records {
        assert_eq!(attempts(r), 1, "a task ran more than once: {r}");
    }
    let via_a = records
        .iter()
        .filter(|r| worker_of(r).starts_with('a'))
        .count();
    let via_b = records
        .iter()
        .filter(|r| worker_of(r).starts_with('b'))
        .count();
    assert_eq!(
        via_a + via_b,
        100,
        "tasks ran on unknown workers: {records:?}"
    );
    assert!(
        via_a > 0 && via_b > 0,
        "one dispatcher took all the work: {via_a} via disp-a, {via_b} via disp-b"
    );
}

async fn a_task_that_kills_its_worker_fails_after_max_attempts(mode: Mode) {
    // Unsandboxed: a sandboxed function cannot reach its worker (isolation.rs tests that).
    let mut stack = Stack::builder(mode)
        .env("FAAS_SANDBOX", "none")
        .procs(1)
        .worker_processes(3)
        .dispatcher_args(FAST_DISPATCHER)
        .worker_args(FAST_WORKER)
        .start()
        .await;
    stack
        .wait_registered_workers(3, Duration::from_secs(20))
        .await;
    let fid = stack.register_source("die", KILL_MY_WORKER, "die").await;
    let run = async |stack: &Stack, max_attempts: u32| {
        let body =
            json!({"function_id": fid, "args": [], "kwargs": {}, "max_attempts": max_attempts});
        let tid = stack.execute(body).await;
        let reply = stack.wait_result_within(tid, ALL_DONE).await;
        (reply, stack.task(tid).await)
    };

    // One attempt: the first lost worker fails the task.
    let (reply, record) = run(&stack, 1).await;
    assert_eq!(reply["status"], "FAILED", "{reply}");
    assert_eq!(record["error"]["type"], "WorkerLost", "{record}");
    let message = record["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("worker lost"), "{record}");
    assert_eq!(attempts(&record), 1, "{record}");
    let alive = |stack: &mut Stack| {
        (0..stack.worker_count())
            .filter(|&i| stack.worker(i).exited().is_none())
            .count()
    };
    assert_eq!(alive(&mut stack), 2, "exactly one worker should have died");

    // Two attempts, two workers left: each dies once, then the task fails.
    let (reply, record) = run(&stack, 2).await;
    assert_eq!(reply["status"], "FAILED", "{reply}");
    assert_eq!(record["error"]["type"], "WorkerLost", "{record}");
    assert_eq!(attempts(&record), 2, "{record}");
    let message = record["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("worker lost"), "{record}");
    for i in 0..stack.worker_count() {
        let exit = stack.worker(i).wait_exit(Duration::from_secs(5)).await;
        assert!(exit.is_some_and(|s| !s.success()), "worker {i}: {exit:?}");
    }
    stack
        .wait_registered_workers(0, Duration::from_secs(10))
        .await;
}
