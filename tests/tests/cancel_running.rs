//! Cancelling a running task, in every mode: through the gateway's `POST /tasks/{id}/cancel`,
//! and an id published on the cancels channel directly (what that route does): it kills the task's process, records it FAILED `Cancelled` through the
//! dispatcher's normal finish path, and leaves the slot able to run the next task; an id of a
//! task nobody runs changes nothing.
//!
//! The functions run unsandboxed (`FAAS_SANDBOX=none`): they write their host pid to a file the
//! test reads, which a sandbox would hide.

use std::path::Path;
use std::time::Duration;

use faas_protocol::{Keys, TaskId};
use faas_tests::{process_gone, wait_until, Mode, Resp, Stack};
use serde_json::{json, Value};

faas_tests::per_mode!(
    a_cancelled_task_is_killed_and_its_slot_runs_the_next,
    the_gateways_cancel_route_kills_a_running_task,
    a_cancel_for_a_task_not_running_changes_nothing,
    a_cancel_published_while_the_dispatcher_was_not_listening_still_kills,
);

const BOUND: Duration = Duration::from_secs(30);
const FUNCTIONS: &str = "import os, time\n\
def slow(pidfile, seconds):\n    \
    with open(pidfile + '.tmp', 'w') as f:\n        \
        f.write(str(os.getpid()))\n    \
    os.rename(pidfile + '.tmp', pidfile)\n    \
    time.sleep(seconds)\n    \
    return 'finished'\n\
def add_one(x):\n    \
    return x + 1\n";

/// One slot (one child locally, one worker with one child remotely), functions unsandboxed.
async fn stack(mode: Mode) -> Stack {
    Stack::builder(mode)
        .procs(1)
        .env("FAAS_SANDBOX", "none")
        .start()
        .await
}

/// Starts `slow(pidfile, seconds)` and returns its task id and the pid of the process that
/// runs it, once it runs.
async fn start_slow(stack: &Stack, pidfile: &Path, seconds: u64) -> (TaskId, i32) {
    let fid = stack.register_source("slow", FUNCTIONS, "slow").await;
    let tid = stack
        .execute_json(fid, json!([pidfile.to_string_lossy(), seconds]), json!({}))
        .await;
    let mut pid = None;
    let running = wait_until(BOUND, async || {
        pid = std::fs::read_to_string(pidfile)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        pid.is_some()
    })
    .await;
    assert!(running, "the task never ran: {}", stack.task(tid).await);
    (tid, pid.expect("read"))
}

/// PUBLISHes `message` on the cancels channel until a dispatcher hears it (the dispatcher may
/// still be subscribing); returns how many subscribers got it.
async fn publish_cancel(stack: &mut Stack, message: &str) -> i64 {
    let channel = Keys::default().cancels();
    let mut heard = 0;
    let published = wait_until(BOUND, async || {
        if let Resp::Int(n) = stack.redis().command(&["PUBLISH", &channel, message]).await {
            heard = n;
        }
        heard > 0
    })
    .await;
    assert!(published, "no dispatcher subscribed to {channel}");
    heard
}

async fn a_cancelled_task_is_killed_and_its_slot_runs_the_next(mode: Mode) {
    let mut stack = stack(mode).await;
    let pidfile = stack.dir().path().join("slow.pid");
    let (tid, pid) = start_slow(&stack, &pidfile, 60).await;
    assert!(!process_gone(pid), "the task's process runs");

    publish_cancel(&mut stack, &tid.to_string()).await;

    let mut record = Value::Null;
    let cancelled = wait_until(BOUND, async || {
        record = stack.task(tid).await;
        record["status"] == "FAILED"
    })
    .await;
    assert!(cancelled, "the task was not cancelled: {record}");
    assert_eq!(record["error"]["type"], "Cancelled", "{record}");
    assert_eq!(
        record["error"]["message"], "cancelled by request",
        "{record}"
    );
    assert!(
        wait_until(BOUND, async || process_gone(pid)).await,
        "the cancelled task's process {pid} still runs"
    );

    // The one slot runs the next task as usual.
    let add_one = stack.register_source("add_one", FUNCTIONS, "add_one").await;
    let next = stack.execute_json(add_one, json!([41]), json!({})).await;
    let reply = stack.wait_result_within(next, BOUND).await;
    assert_eq!(reply["status"], "COMPLETED", "{reply}");
    assert_eq!(reply["result"], 42, "{reply}");
}

/// The whole path an operator takes: `POST /tasks/{id}/cancel` on a RUNNING task answers at
/// once with the task FAILED `Cancelled`, and the process is killed by the dispatcher that runs it.
async fn the_gateways_cancel_route_kills_a_running_task(mode: Mode) {
    let mut stack = stack(mode).await;
    let pidfile = stack.dir().path().join("slow.pid");
    let (tid, pid) = start_slow(&stack, &pidfile, 60).await;
    // The gateway publishes once: wait until the dispatcher listens, as it does in steady state.
    let channel = Keys::default().cancels();
    let listening = wait_until(BOUND, async || {
        matches!(
            stack.redis().command(&["PUBSUB", "NUMSUB", &channel]).await,
            Resp::Array(Some(ref a)) if matches!(a.get(1), Some(Resp::Int(n)) if *n > 0)
        )
    })
    .await;
    assert!(listening, "no dispatcher subscribed to {channel}");

    let (status, reply) = stack
        .post_json(&format!("/tasks/{tid}/cancel"), json!({}))
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["was"], "RUNNING", "{reply}");
    assert_eq!(reply["status"], "FAILED", "{reply}");
    assert!(
        wait_until(BOUND, async || process_gone(pid)).await,
        "the cancelled task's process {pid} still runs"
    );
    let record = stack.task(tid).await;
    assert_eq!(record["error"]["type"], "Cancelled", "{record}");
    // Cancelling again is a conflict naming the status, and changes nothing.
    let (status, reply) = stack
        .post_json(&format!("/tasks/{tid}/cancel"), json!({}))
        .await;
    assert_eq!(status, 409, "{reply}");
    assert_eq!(reply["status"], "FAILED", "{reply}");

    let add_one = stack.register_source("add_one", FUNCTIONS, "add_one").await;
    let next = stack.execute_json(add_one, json!([1]), json!({})).await;
    let reply = stack.wait_result_within(next, BOUND).await;
    assert_eq!(reply["result"], 2, "the slot works again: {reply}");
}

async fn a_cancel_for_a_task_not_running_changes_nothing(mode: Mode) {
    let mut stack = stack(mode).await;
    let pidfile = stack.dir().path().join("slow.pid");
    let (tid, pid) = start_slow(&stack, &pidfile, 3).await;

    // Heard by the dispatcher while the task runs, and ignored: an id nobody runs, and
    // something that is no task id at all.
    publish_cancel(&mut stack, &TaskId::new().to_string()).await;
    publish_cancel(&mut stack, "not a task id").await;
    assert!(!process_gone(pid), "the running task was left alone");

    let reply = stack.wait_result_within(tid, BOUND).await;
    assert_eq!(reply["status"], "COMPLETED", "{reply}");
    assert_eq!(reply["result"], "finished", "{reply}");
    let record = stack.task(tid).await;
    assert_eq!(record["attempts"], 1, "it ran once: {record}");
}

/// The dispatcher's cancels subscription drops (its connection killed) and cannot be made
/// again for a while (SUBSCRIBE denied by an ACL), and the task is cancelled meanwhile: nobody
/// hears the id. Once the dispatcher subscribes again it reads the records of what it runs,
/// finds the task ended, and kills it.
async fn a_cancel_published_while_the_dispatcher_was_not_listening_still_kills(mode: Mode) {
    let mut stack = stack(mode).await;
    let pidfile = stack.dir().path().join("slow.pid");
    let (tid, pid) = start_slow(&stack, &pidfile, 120).await;
    let channel = Keys::default().cancels();
    let subscribers = async |stack: &mut Stack| match stack
        .redis()
        .command(&["PUBSUB", "NUMSUB", &channel])
        .await
    {
        Resp::Array(Some(a)) => match a.get(1) {
            Some(Resp::Int(n)) => *n,
            _ => 0,
        },
        _ => 0,
    };
    assert!(
        wait_until(BOUND, async || subscribers(&mut stack).await > 0).await,
        "no dispatcher subscribed to {channel}"
    );
    stack
        .redis()
        .command(&["ACL", "SETUSER", "default", "-subscribe"])
        .await;
    stack
        .redis()
        .command(&["CLIENT", "KILL", "TYPE", "pubsub"])
        .await;
    assert!(
        wait_until(BOUND, async || subscribers(&mut stack).await == 0).await,
        "the subscription was not dropped"
    );

    let (status, reply) = stack
        .post_json(&format!("/tasks/{tid}/cancel"), json!({}))
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["was"], "RUNNING", "{reply}");
    assert!(
        !process_gone(pid),
        "killed while nobody could hear the cancel"
    );

    stack
        .redis()
        .command(&["ACL", "SETUSER", "default", "+subscribe"])
        .await;
    assert!(
        wait_until(BOUND, async || process_gone(pid)).await,
        "the cancelled task's process {pid} still runs after the dispatcher subscribed again"
    );
    let record = stack.task(tid).await;
    assert_eq!(record["error"]["type"], "Cancelled", "{record}");
    let dispatcher = stack.dispatcher().expect("running");
    assert!(
        dispatcher.logged(|e| e.is("cancelling")
            && e.field("task_id") == Some(tid.to_string().as_str())
            && e.field("reason") == Some("ended while cancels were not heard")),
        "the dispatcher did not find the cancel when it subscribed again"
    );
}
