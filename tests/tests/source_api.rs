//! The `source` format and the JSON API around it: results, errors, the task record, waiting,
//! and what the executor does when a function times out, crashes or prints.

use std::time::{Duration, Instant};

use faas_tests::{process_gone, wait_until, Mode, Stack};
use serde_json::{json, Value};

faas_tests::per_mode!(
    adds_two_numbers,
    kwargs_and_json_values_round_trip,
    exception_fails_with_type_message_and_traceback,
    task_record_has_every_field,
    result_wait_is_woken_by_completion,
    a_waited_for_result_too_big_for_the_event_is_read_back,
    timeout_kills_the_process_group_and_the_pool_recovers,
    default_timeout_applies_without_timeout_ms,
    crash_fails_the_task_and_the_pool_refills,
    print_goes_to_the_task_log,
    raw_fd_writes_do_not_corrupt_the_protocol,
    many_tasks_all_complete,
);

const ADD: &str = "def add(a, b):\n    return a + b\n";

#[track_caller]
fn assert_completed(reply: &Value, expected: Value) {
    assert_eq!(reply["status"], "COMPLETED", "{reply}");
    assert_eq!(reply["result"], expected, "{reply}");
    assert!(reply.get("error").is_none_or(Value::is_null), "{reply}");
}

#[track_caller]
fn assert_failed(reply: &Value, error_type: &str) {
    assert_eq!(reply["status"], "FAILED", "{reply}");
    assert_eq!(reply["error"]["type"], error_type, "{reply}");
    assert!(reply["result"].is_null(), "{reply}");
}

/// Proves a pool still serves: a fresh `add` completes.
async fn assert_still_serving(stack: &Stack) {
    let add = stack.register_source("add", ADD, "add").await;
    let tid = stack.execute_json(add, json!([40, 2]), json!({})).await;
    assert_completed(&stack.wait_result(tid).await, json!(42));
}

async fn adds_two_numbers(mode: Mode) {
    let stack = Stack::start(mode).await;
    let fid = stack.register_source("add", ADD, "add").await;
    let tid = stack.execute_json(fid, json!([2, 3]), json!({})).await;
    let reply = stack.wait_result(tid).await;
    assert_eq!(reply["task_id"], tid.to_string());
    assert_completed(&reply, json!(5));
    assert_eq!(stack.status(tid).await, "COMPLETED");
}

async fn kwargs_and_json_values_round_trip(mode: Mode) {
    let stack = Stack::start(mode).await;
    let source = r#"
def describe(name, *tags, sep="-", extra=None):
    return {"name": name, "joined": sep.join(tags), "tags": list(tags), "extra": extra,
            "none": None, "float": 1.5, "unicode": "héllo ✓", "nested": [[1], {"a": True}]}
"#;
    let fid = stack.register_source("describe", source, "describe").await;
    let tid = stack
        .execute_json(
            fid,
            json!(["x", "a", "b"]),
            json!({"sep": "+", "extra": {"k": [1, 2]}}),
        )
        .await;
    assert_completed(
        &stack.wait_result(tid).await,
        json!({"name": "x", "joined": "a+b", "tags": ["a", "b"], "extra": {"k": [1, 2]},
               "none": null, "float": 1.5, "unicode": "héllo ✓", "nested": [[1], {"a": true}]}),
    );

    // `kwargs` may be left out.
    let tid = stack
        .execute(json!({"function_id": fid, "args": ["y"]}))
        .await;
    assert_eq!(stack.wait_result(tid).await["result"]["name"], "y");
}

async fn exception_fails_with_type_message_and_traceback(mode: Mode) {
    let stack = Stack::start(mode).await;
    let source = "def check(x):\n    raise ValueError(f'bad value {x}')\n";
    let fid = stack.register_source("check", source, "check").await;
    let tid = stack.execute_json(fid, json!([7]), json!({})).await;
    let reply = stack.wait_result(tid).await;
    assert_failed(&reply, "ValueError");
    let error = &reply["error"];
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("bad value 7"),
        "{reply}"
    );
    let traceback = error["traceback"].as_str().unwrap_or_default();
    assert!(
        traceback.contains("Traceback") && traceback.contains("check"),
        "traceback should show the failing function: {reply}"
    );
    // It starts at the user's code: the platform's own frames (the bootstrap, run with -c as
    // "<string>") are left out.
    let frames: Vec<&str> = traceback
        .lines()
        .filter(|l| l.trim_start().starts_with("File "))
        .collect();
    assert!(
        !frames.is_empty() && frames.iter().all(|l| l.contains("<function ")),
        "every frame is the function's: {traceback}"
    );
    // A function's own exception is final: no second attempt.
    assert_eq!(stack.task(tid).await["attempts"], 1);
    assert_eq!(stack.status(tid).await, "FAILED");
}

async fn task_record_has_every_field(mode: Mode) {
    let stack = Stack::start(mode).await;
    let fid = stack.register_source("add", ADD, "add").await;
    let tid = stack
        .execute(json!({"function_id": fid, "args": [2, 3], "kwargs": {},
                        "timeout_ms": 5000, "max_attempts": 2}))
        .await;
    stack.wait_result(tid).await;
    let t = stack.task(tid).await;

    for field in [
        "task_id",
        "function_id",
        "function_name",
        "format",
        "status",
        "args",
        "result",
        "error",
        "log",
        "attempts",
        "max_attempts",
        "timeout_ms",
        "worker",
        "created_at",
        "started_at",
        "finished_at",
    ] {
        assert!(
            t.get(field).is_some(),
            "GET /tasks/{{id}} lacks {field:?}: {t}"
        );
    }
    assert_eq!(t["task_id"], tid.to_string());
    assert_eq!(t["function_id"], fid.to_string());
    assert_eq!(t["function_name"], "add");
    assert_eq!(t["format"], "source");
    assert_eq!(t["status"], "COMPLETED");
    assert_eq!(t["args"], json!({"args": [2, 3], "kwargs": {}}));
    assert_eq!(t["result"], 5);
    assert!(t["error"].is_null(), "{t}");
    assert_eq!(t["attempts"], 1);
    assert_eq!(t["max_attempts"], 2);
    assert_eq!(t["timeout_ms"], 5000);
    assert!(t["worker"].as_str().is_some_and(|w| !w.is_empty()), "{t}");
    let created = t["created_at"].as_u64().expect("created_at is a number");
    let started = t["started_at"].as_u64().expect("started_at is a number");
    let finished = t["finished_at"].as_u64().expect("finished_at is a number");
    assert!(created <= started && started <= finished, "{t}");
}

async fn result_wait_is_woken_by_completion(mode: Mode) {
    let stack = Stack::start(mode).await;
    let source = "import time\ndef nap():\n    time.sleep(1)\n    return 'awake'\n";
    let fid = stack.register_source("nap", source, "nap").await;
    let tid = stack.execute_json(fid, json!([]), json!({})).await;

    // Asked before the task can have finished, so the reply has to come from the wait.
    let started = Instant::now();
    let reply = stack.result_wait(tid, 10_000).await;
    assert_completed(&reply, json!("awake"));
    // Not a speed test: only proves the wait ended on completion, not by running out.
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "?wait=10000 took {:?} for a 1 s task",
        started.elapsed()
    );
}

/// Terminal events carry small outcomes only; a big one reaches the waiter by a re-read.
async fn a_waited_for_result_too_big_for_the_event_is_read_back(mode: Mode) {
    let stack = Stack::start(mode).await;
    let source = "import time\ndef big(n):\n    time.sleep(0.3)\n    return 'x' * n\n";
    let fid = stack.register_source("big", source, "big").await;
    let n = 100_000;
    let tid = stack.execute_json(fid, json!([n]), json!({})).await;
    let reply = stack.result_wait(tid, 10_000).await;
    assert_eq!(reply["status"], "COMPLETED", "{}", reply["status"]);
    assert_eq!(reply["result"].as_str().map(str::len), Some(n));
}

async fn timeout_kills_the_process_group_and_the_pool_recovers(mode: Mode) {
    // Unsandboxed, so the function can write its host pids where the test reads them; the
    // sandboxed clean-up is tested in isolation.rs.
    let stack = Stack::builder(mode)
        .procs(1)
        .env("FAAS_SANDBOX", "none")
        .start()
        .await;
    let pids = stack.dir().path().join("pids");
    // The function starts a grandchild (which joins its process group), records both, and hangs.
    let source = r#"
import os, subprocess, time

def hang(path):
    grandchild = subprocess.Popen(["sleep", "300"])
    with open(path + ".tmp", "w") as f:
        f.write(f"{os.getpid()} {os.getpgid(0)} {grandchild.pid}")
    os.rename(path + ".tmp", path)
    time.sleep(30)
"#;
    let fid = stack.register_source("hang", source, "hang").await;
    let tid = stack
        .execute(json!({"function_id": fid, "args": [pids.to_string_lossy()], "timeout_ms": 1000}))
        .await;
    let started = Instant::now();
    let reply = stack.wait_result(tid).await;
    assert_failed(&reply, "Timeout");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase()
            .contains("timeout"),
        "{reply}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "the 30 s sleep was not cut short"
    );

    let recorded = std::fs::read_to_string(&pids).expect("the function recorded its pids");
    let ids: Vec<i32> = recorded
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    let (child, group, grandchild) = (ids[0], ids[1], ids[2]);
    assert_eq!(
        child, group,
        "the python child should lead its own process group"
    );
    assert!(
        wait_until(Duration::from_secs(10), async || {
            process_gone(child) && process_gone(grandchild)
        })
        .await,
        "process group {group} survived the timeout (child {child} gone: {}, grandchild {grandchild} gone: {})",
        process_gone(child),
        process_gone(grandchild)
    );

    assert_still_serving(&stack).await;
}

async fn default_timeout_applies_without_timeout_ms(mode: Mode) {
    let stack = Stack::builder(mode)
        .procs(1)
        .dispatcher_args(&["--default-timeout-ms", "1000"])
        .start()
        .await;
    let source = "import time\ndef hang():\n    time.sleep(30)\n";
    let fid = stack.register_source("hang", source, "hang").await;
    let tid = stack.execute_json(fid, json!([]), json!({})).await;
    assert_failed(&stack.wait_result(tid).await, "Timeout");
    assert_still_serving(&stack).await;
}

async fn crash_fails_the_task_and_the_pool_refills(mode: Mode) {
    // One child: every task after a crash proves the pool replaced it.
    let stack = Stack::builder(mode).procs(1).start().await;
    let source = r#"
import os, signal

def die(how):
    if how == "exit":
        os._exit(3)
    os.kill(os.getpid(), signal.SIGSEGV)
"#;
    let fid = stack.register_source("die", source, "die").await;
    for how in ["exit", "segv"] {
        let tid = stack.execute_json(fid, json!([how]), json!({})).await;
        let reply = stack.wait_result(tid).await;
        assert_failed(&reply, "WorkerCrashed");
        assert!(
            reply["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("died"),
            "{how}: the message should say the process died: {reply}"
        );
        assert_still_serving(&stack).await;
    }
}

async fn print_goes_to_the_task_log(mode: Mode) {
    let stack = Stack::start(mode).await;
    let source = r#"
import sys

def chatty(n):
    print("hello from the function")
    print("line", n, flush=True)
    sys.stdout.write("no newline at the end")
    return n * 2
"#;
    let fid = stack.register_source("chatty", source, "chatty").await;
    let tid = stack.execute_json(fid, json!([7]), json!({})).await;
    assert_completed(&stack.wait_result(tid).await, json!(14));
    let log = stack.task(tid).await["log"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        log.contains("hello from the function") && log.contains("line 7"),
        "the task log should hold what was printed: {log:?}"
    );
}

async fn raw_fd_writes_do_not_corrupt_the_protocol(mode: Mode) {
    let stack = Stack::builder(mode).procs(1).start().await;
    // Bytes that look like a frame header, written below Python's sys.stdout.
    let source = r#"
import os

def scribble():
    os.write(1, b"\x00\x00\x00\x10{\"not\": \"a frame\"}\n")
    return "ok"
"#;
    let fid = stack.register_source("scribble", source, "scribble").await;
    let tid = stack.execute_json(fid, json!([]), json!({})).await;
    assert_completed(&stack.wait_result(tid).await, json!("ok"));
    assert_still_serving(&stack).await;
}

async fn many_tasks_all_complete(mode: Mode) {
    let stack = Stack::start(mode).await;
    let fid = stack.register_source("add", ADD, "add").await;
    let mut tids = Vec::new();
    for i in 0..20 {
        tids.push((i, stack.execute_json(fid, json!([i, i]), json!({})).await));
    }
    for (i, tid) in tids {
        assert_completed(&stack.wait_result(tid).await, json!(2 * i));
    }
}

/// Without a dispatcher nothing finishes, so `?wait=` must run out and answer QUEUED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_wait_returns_queued_when_the_wait_runs_out() {
    let stack = Stack::builder(Mode::Local)
        .without_dispatcher()
        .start()
        .await;
    let fid = stack.register_source("add", ADD, "add").await;
    let tid = stack.execute_json(fid, json!([1, 2]), json!({})).await;

    let started = Instant::now();
    let reply = stack.result_wait(tid, 300).await;
    assert_eq!(reply["status"], "QUEUED", "{reply}");
    assert!(reply["result"].is_null(), "{reply}");
    assert!(reply.get("error").is_none_or(Value::is_null), "{reply}");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "?wait=300 answered after {:?}, before the wait ran out",
        started.elapsed()
    );
    assert_eq!(stack.status(tid).await, "QUEUED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_are_listed() {
    let stack = Stack::builder(Mode::Local)
        .without_dispatcher()
        .start()
        .await;
    let (status, list) = stack.get_json("/functions").await;
    assert_eq!(status, 200);
    assert_eq!(list, json!([]), "a fresh platform has no functions");

    let add = stack.register_source("add", ADD, "add").await;
    // The pickle of `None` (protocol 4): the gateway only checks that it is a pickle.
    let dill = stack.register_dill("nothing", "gAROLg==").await;

    let (status, list) = stack.get_json("/functions").await;
    assert_eq!(status, 200);
    let list = list.as_array().expect("GET /functions is a JSON list");
    assert_eq!(list.len(), 2, "{list:?}");
    for (id, name, format) in [(add, "add", "source"), (dill, "nothing", "dill")] {
        let f = list
            .iter()
            .find(|f| f["function_id"] == id.to_string())
            .unwrap_or_else(|| panic!("{name} missing from {list:?}"));
        assert_eq!(f["name"], name);
        assert_eq!(f["format"], format);
        assert!(f["created_at"].as_u64().is_some_and(|t| t > 0), "{f}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_is_ok_while_redis_answers() {
    let stack = Stack::builder(Mode::Local)
        .without_dispatcher()
        .start()
        .await;
    assert_eq!(stack.healthz().await, Some(faas_tests::StatusCode::OK));
}

/// The local pool's registry entry counts running tasks, not the slots the dispatch loop holds
/// while it waits for work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_pool_shows_its_running_tasks_as_busy() {
    let stack = Stack::builder(Mode::Local).procs(2).start().await;
    let busy = async || -> Option<u64> {
        let (_, list) = stack.get_json("/workers").await;
        list.as_array()?.iter().find(|w| w["mode"] == "local")?["busy"].as_u64()
    };
    // The entry is refreshed every 2 s: give it two refreshes.
    let idle = wait_until(Duration::from_secs(6), async || busy().await == Some(0)).await;
    assert!(idle, "an idle pool reports busy {:?}", busy().await);

    let source = "import time\ndef nap():\n    time.sleep(5)\n";
    let fid = stack.register_source("nap", source, "nap").await;
    let tid = stack.execute_json(fid, json!([]), json!({})).await;
    let one = wait_until(Duration::from_secs(6), async || busy().await == Some(1)).await;
    assert!(one, "one running task, busy {:?}", busy().await);
    assert_eq!(stack.status(tid).await, "RUNNING");
}
