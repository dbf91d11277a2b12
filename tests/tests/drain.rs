//! Draining a worker at an operator's request (`POST /workers/{id}/drain`, `faas drain`), on a
//! real stack in push and pull: the worker finishes the tasks it runs (none lost, none run
//! again), shows `draining` in the registry and on the events channel, then leaves (exits 0,
//! `left`, not lost) while the other worker keeps serving; unknown ids are 404 JSON and a local
//! pool is refused with 409.

use std::time::Duration;

use faas_protocol::event::{Event, WorkerState};
use faas_protocol::{Keys, TaskId};
use faas_tests::{
    assert_json_error, bin, wait_until, Mode, Stack, StatusCode, FAST_DISPATCHER, FAST_WORKER,
};
use futures::StreamExt;
use serde_json::{json, Value};

faas_tests::remote_modes!(
    a_drained_worker_finishes_its_tasks_and_leaves,
    an_idle_drained_worker_leaves_at_once,
);

const BOUND: Duration = Duration::from_secs(30);
const FUNCTIONS: &str = "import time\n\
def slow(seconds):\n    \
    time.sleep(seconds)\n    \
    return 'finished'\n\
def add_one(x):\n    \
    return x + 1\n";

/// The registry id of the worker process with this pid.
async fn worker_id(stack: &Stack, pid: u32) -> String {
    let workers = stack.registered_workers().await;
    workers
        .iter()
        .find(|(_, w)| w["pid"] == pid)
        .map(|(id, _)| id.clone())
        .unwrap_or_else(|| panic!("no registered worker with pid {pid}: {workers:?}"))
}

async fn a_drained_worker_finishes_its_tasks_and_leaves(mode: Mode) {
    let mut stack = Stack::builder(mode)
        .procs(2)
        .worker_processes(2)
        .dispatcher_args(FAST_DISPATCHER)
        .worker_args(FAST_WORKER)
        .start()
        .await;
    stack.wait_registered_workers(2, BOUND).await;
    let pid = stack.worker(0).pid();
    let drained = worker_id(&stack, pid).await;

    // The worker events, heard from before the drain.
    let client = redis::Client::open(stack.redis_url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe(Keys::default().events()).await.unwrap();

    // Four slots, four slow tasks: both workers run some.
    let fid = stack.register_source("slow", FUNCTIONS, "slow").await;
    let mut slow = Vec::new();
    for _ in 0..4 {
        slow.push(stack.execute_json(fid, json!([3]), json!({})).await);
    }
    let mut records: Vec<Value> = Vec::new();
    let all_running = wait_until(BOUND, async || {
        records.clear();
        for t in &slow {
            records.push(stack.task(*t).await);
        }
        records.iter().all(|r| r["status"] == "RUNNING")
    })
    .await;
    assert!(all_running, "the slow tasks did not all start: {records:?}");
    let on_drained: Vec<TaskId> = slow
        .iter()
        .zip(&records)
        .filter(|(_, r)| r["worker"] == drained.as_str())
        .map(|(t, _)| *t)
        .collect();
    assert!(
        !on_drained.is_empty(),
        "the drained worker runs none of them: {records:?}"
    );

    // The drain is accepted while they run, and the registry says draining.
    let (status, body) = stack
        .post_json(&format!("/workers/{drained}/drain"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["worker"], drained.as_str());
    assert_eq!(body["state"], "draining");
    let mut listed = Value::Null;
    let shows_draining = wait_until(BOUND, async || {
        listed = stack.get_json("/workers").await.1;
        listed.as_array().is_some_and(|ws| {
            ws.iter()
                .any(|w| w["id"] == drained.as_str() && w["draining"] == true)
        })
    })
    .await;
    assert!(shows_draining, "never listed as draining: {listed}");
    let cli = tokio::process::Command::new(bin("faas"))
        .args(["--gateway", stack.base_url(), "workers"])
        .output()
        .await
        .unwrap();
    let table = String::from_utf8_lossy(&cli.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(drained.as_str()) && l.trim_end().ends_with("draining")),
        "faas workers does not say so:\n{table}"
    );

    // New work goes to the other worker only, while the drained one finishes.
    let add = stack.register_source("add_one", FUNCTIONS, "add_one").await;
    for i in 0..6 {
        let t = stack.execute_json(add, json!([i]), json!({})).await;
        let reply = stack.wait_result_within(t, BOUND).await;
        assert_eq!(reply["status"], "COMPLETED", "{reply}");
        let record = stack.task(t).await;
        assert_ne!(
            record["worker"],
            drained.as_str(),
            "a draining worker got a task"
        );
    }

    // The drained worker's tasks complete once, on it; then it exits cleanly and is gone.
    for t in &on_drained {
        let reply = stack.wait_result_within(*t, BOUND).await;
        assert_eq!(reply["status"], "COMPLETED", "{reply}");
        let record = stack.task(*t).await;
        assert_eq!(record["worker"], drained.as_str(), "{record}");
        assert_eq!(record["attempts"], 1, "run again: {record}");
    }
    let status = stack.worker(0).wait_exit(BOUND).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "the drained worker did not exit cleanly ({status:?}):\n{}",
        stack.worker(0).log_tail(30)
    );
    stack.wait_registered_workers(1, BOUND).await;
    for t in slow.iter().filter(|t| !on_drained.contains(t)) {
        let reply = stack.wait_result_within(*t, BOUND).await;
        assert_eq!(reply["status"], "COMPLETED", "{reply}");
    }

    // The events said draining, then left; never lost.
    let mut states = Vec::new();
    let mut messages = pubsub.on_message();
    let heard = wait_until(BOUND, async || {
        while let Ok(Some(msg)) =
            tokio::time::timeout(Duration::from_millis(50), messages.next()).await
        {
            let payload: String = msg.get_payload().unwrap();
            if let Ok(Event::Worker { worker, state, .. }) = serde_json::from_str(&payload) {
                if worker == drained && state != WorkerState::Heartbeat {
                    states.push(state);
                }
            }
        }
        states.contains(&WorkerState::Left)
    })
    .await;
    assert!(heard, "no left event; heard {states:?}");
    assert_eq!(states, [WorkerState::Draining, WorkerState::Left]);

    // The other worker still serves.
    stack.worker(1).assert_running();
    let t = stack.execute_json(add, json!([41]), json!({})).await;
    assert_eq!(stack.wait_result_within(t, BOUND).await["result"], 42);

    // Asking again for a worker that has left: 404.
    let gone = stack
        .post_json(&format!("/workers/{drained}/drain"), json!({}))
        .await;
    assert_json_error(&gone, StatusCode::NOT_FOUND, "drain a worker that left");
}

/// An idle worker (a pull worker's poll held by the dispatcher, a push worker's free credit)
/// leaves within a few heartbeats, through the CLI this time.
async fn an_idle_drained_worker_leaves_at_once(mode: Mode) {
    let mut stack = Stack::builder(mode)
        .procs(1)
        .worker_processes(2)
        .dispatcher_args(FAST_DISPATCHER)
        .worker_args(FAST_WORKER)
        .start()
        .await;
    stack.wait_registered_workers(2, BOUND).await;
    let pid = stack.worker(1).pid();
    let drained = worker_id(&stack, pid).await;
    let out = tokio::process::Command::new(bin("faas"))
        .args(["--gateway", stack.base_url(), "drain", &drained])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("draining"));
    let status = stack.worker(1).wait_exit(Duration::from_secs(10)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "the idle worker did not leave ({status:?}):\n{}",
        stack.worker(1).log_tail(30)
    );
    // Both sides log the drain under its event name, the dispatcher naming the worker.
    assert!(
        stack.worker(1).logged(|e| e.is("drain_requested")),
        "{}",
        stack.worker(1).log_tail(30)
    );
    let dispatcher = stack.dispatcher().expect("a dispatcher");
    assert!(
        dispatcher.logged(|e| e.is("drain_requested") && e.field("worker") == Some(&drained)),
        "{}",
        dispatcher.log_tail(30)
    );
    let left = stack.wait_registered_workers(1, BOUND).await;
    assert!(!left.contains_key(&drained));
    stack.worker(0).assert_running();
    let f = stack.register_source("add_one", FUNCTIONS, "add_one").await;
    let t = stack.execute_json(f, json!([1]), json!({})).await;
    assert_eq!(stack.wait_result_within(t, BOUND).await["result"], 2);
}

#[tokio::test]
async fn unknown_workers_are_404_and_a_local_pool_is_409() {
    let stack = Stack::start(Mode::Local).await;
    let workers = stack.wait_registered_workers(1, BOUND).await;
    let local = workers.keys().next().expect("the local pool").clone();
    for bad in ["nope", "a%20b", "..%2F"] {
        let reply = stack
            .post_json(&format!("/workers/{bad}/drain"), json!({}))
            .await;
        assert_json_error(&reply, StatusCode::NOT_FOUND, bad);
    }
    let reply = stack
        .post_json(&format!("/workers/{local}/drain"), json!({}))
        .await;
    assert_json_error(&reply, StatusCode::CONFLICT, "drain a local pool");
    assert!(
        reply.1["error"].as_str().unwrap().contains("stop"),
        "{}",
        reply.1
    );
    // The CLI says the same, with a non-zero exit.
    let out = tokio::process::Command::new(bin("faas"))
        .args(["--gateway", stack.base_url(), "drain", "nope"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no worker"), "{stderr}");
}
