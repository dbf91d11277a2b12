//! Redis in trouble: stopped, out of memory, read-only, or down while daemons stop. The
//! gateway answers 503 fast and says why, recovers without a restart, and every daemon stops
//! on SIGTERM whatever Redis is doing.

use std::time::Duration;

use faas_tests::{
    assert_json_error, bin, free_port, redis_circuit_open, redis_unreachable, wait_until, within,
    Daemon, Mode, Resp, Stack, StatusCode, TestDir,
};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

const ADD: &str = "def add(a, b):\n    return a + b\n";

/// A process stopped with SIGSTOP, continued (SIGCONT) when dropped: a failing test must not
/// leave a frozen Redis behind.
struct Paused(Pid);

impl Paused {
    fn new(pid: u32) -> Self {
        let pid = Pid::from_raw(pid as i32);
        kill(pid, Signal::SIGSTOP).expect("SIGSTOP");
        Self(pid)
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        let _ = kill(self.0, Signal::SIGCONT);
    }
}

async fn add_completes(stack: &Stack) {
    let fid = stack.register_source("add", ADD, "add").await;
    let tid = stack.execute_json(fid, json!([2, 3]), json!({})).await;
    let reply = stack.wait_result(tid).await;
    assert_eq!(reply["status"], "COMPLETED", "{reply}");
    assert_eq!(reply["result"], 5, "{reply}");
}

fn error_text(reply: &(StatusCode, Value)) -> String {
    reply.1["error"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_redis_is_503_within_a_second_and_recovery_needs_no_restart() {
    let mut stack = Stack::start(Mode::Local).await;
    let fid = stack.register_source("add", ADD, "add").await;
    add_completes(&stack).await;
    let redis_pid = stack.redis().pid().expect("redis runs");

    let paused = Paused::new(redis_pid);
    for i in 0..5 {
        let reply = within(
            Duration::from_secs(1),
            "/healthz with Redis stopped",
            stack.get_json("/healthz"),
        )
        .await;
        assert_json_error(&reply, StatusCode::SERVICE_UNAVAILABLE, "/healthz");
        assert!(
            error_text(&reply).contains("unreachable"),
            "healthz {i}: {reply:?}"
        );
    }
    for i in 0..5 {
        let body = json!({"function_id": fid, "args": [1, 2]});
        let reply = within(
            Duration::from_secs(1),
            "execute_function with Redis stopped",
            stack.post_json("/execute_function", body),
        )
        .await;
        assert_json_error(
            &reply,
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("execute {i}"),
        );
        let reply = within(
            Duration::from_secs(1),
            "GET /functions with Redis stopped",
            stack.get_json("/functions"),
        )
        .await;
        assert_json_error(
            &reply,
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("functions {i}"),
        );
    }

    drop(paused);
    let healthy = wait_until(Duration::from_secs(15), async || {
        stack.healthz().await == Some(StatusCode::OK)
    })
    .await;
    assert!(
        healthy,
        "no recovery after SIGCONT: {:?}",
        stack.healthz().await
    );
    add_completes(&stack).await;
    // The same daemons recovered: none was restarted (the harness never restarts them).
    stack.gateway().assert_running();
    stack.dispatcher().expect("dispatcher").assert_running();
    assert!(
        stack.gateway().logged(redis_circuit_open),
        "the breaker never opened:\n{}",
        stack.gateway().log_tail(20)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_writes_are_503_with_their_own_reason() {
    let mut stack = Stack::builder(Mode::Local)
        .without_dispatcher()
        .start()
        .await;
    let register = json!({"name": "add", "source": ADD, "entrypoint": "add"});

    // At maxmemory (noeviction) Redis refuses writes with OOM.
    let set = stack
        .redis()
        .command(&["CONFIG", "SET", "maxmemory", "1"])
        .await;
    assert_eq!(set, Resp::Simple("OK".into()));
    let reply = stack.get_json("/healthz").await;
    assert_json_error(
        &reply,
        StatusCode::SERVICE_UNAVAILABLE,
        "/healthz at maxmemory",
    );
    assert!(error_text(&reply).contains("out of memory"), "{reply:?}");
    let reply = stack
        .post_json("/register_function", register.clone())
        .await;
    assert_json_error(
        &reply,
        StatusCode::SERVICE_UNAVAILABLE,
        "register at maxmemory",
    );
    assert!(error_text(&reply).contains("out of memory"), "{reply:?}");
    stack
        .redis()
        .command(&["CONFIG", "SET", "maxmemory", "0"])
        .await;
    assert_eq!(stack.healthz().await, Some(StatusCode::OK));

    // A replica (here of a master that does not exist) refuses writes with READONLY.
    let nowhere = free_port().to_string();
    stack
        .redis()
        .command(&["REPLICAOF", "127.0.0.1", &nowhere])
        .await;
    let reply = stack.get_json("/healthz").await;
    assert_json_error(
        &reply,
        StatusCode::SERVICE_UNAVAILABLE,
        "/healthz on a replica",
    );
    assert!(error_text(&reply).contains("read-only"), "{reply:?}");
    let reply = stack
        .post_json("/register_function", register.clone())
        .await;
    assert!(error_text(&reply).contains("read-only"), "{reply:?}");
    stack.redis().command(&["REPLICAOF", "NO", "ONE"]).await;
    assert_eq!(stack.healthz().await, Some(StatusCode::OK));
    let (status, _) = stack.post_json("/register_function", register).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatcher_waiting_for_redis_stops_on_sigterm() {
    let mut stack = Stack::builder(Mode::Local)
        .without_dispatcher()
        .dispatcher_args(&["--drain-grace-ms", "2000"])
        .start()
        .await;
    stack.redis().stop();
    stack.start_dispatcher();
    let dispatcher = stack.dispatcher().expect("dispatcher");
    let waiting = dispatcher
        .wait_for_event(Duration::from_secs(20), redis_unreachable)
        .await;
    assert!(waiting, "{}", dispatcher.log_tail(20));
    dispatcher.signal(Signal::SIGTERM);
    let status = dispatcher.wait_exit(Duration::from_secs(5)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "dispatcher did not stop cleanly while Redis was down ({status:?}):\n{}",
        dispatcher.log_tail(20)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemons_stop_on_sigterm_while_redis_is_stopped() {
    let mut stack = Stack::builder(Mode::Local)
        .dispatcher_args(&["--drain-grace-ms", "2000"])
        .gateway_args(&["--shutdown-grace-ms", "2000"])
        .start()
        .await;
    add_completes(&stack).await;
    let _paused = Paused::new(stack.redis().pid().expect("redis runs"));
    // Bound: the grace (2 s), plus the blocking queue read in progress (2 s block + 1 s) and
    // the last registry write (0.5 s), which are not cut short.
    let bound = Duration::from_secs(8);
    let dispatcher = stack.dispatcher().expect("dispatcher");
    dispatcher.signal(Signal::SIGTERM);
    let status = dispatcher.wait_exit(bound).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "dispatcher did not stop with Redis stopped ({status:?}):\n{}",
        dispatcher.log_tail(20)
    );
    let gateway = stack.gateway();
    gateway.signal(Signal::SIGTERM);
    let status = gateway.wait_exit(bound).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "gateway did not stop with Redis stopped ({status:?}):\n{}",
        gateway.log_tail(20)
    );
}

/// Takes a little while, so that tasks are queued and running when Redis is flushed.
const NAP: &str = "import time\ndef nap(i):\n    time.sleep(0.005)\n    return i\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_redis_runs_no_task_of_a_vanished_function() {
    let mut stack = Stack::start(Mode::Local).await;
    let fid = stack.register_source("nap", NAP, "nap").await;
    // Load: tasks queued and running, and the function in both daemons' caches.
    let executions: Vec<Value> = (0..300)
        .map(|i| json!({"function_id": fid, "args": [i]}))
        .collect();
    let (status, _) = stack
        .post_json("/execute_batch", json!({ "executions": executions }))
        .await;
    assert_eq!(status, StatusCode::OK);
    let first = stack.execute_json(fid, json!([0]), json!({})).await;
    assert_eq!(stack.wait_result(first).await["status"], "COMPLETED");

    let flushed = stack.redis().command(&["FLUSHALL"]).await;
    assert_eq!(flushed, Resp::Simple("OK".into()));
    // Every execution sent from here on is of a function Redis no longer holds. Until the
    // gateway notices the new epoch it may still accept some (from its cache); once it has,
    // the function is a 404.
    let mut accepted = Vec::new();
    let mut gone = false;
    for i in 0..500 {
        let reply = stack
            .post_json(
                "/execute_function",
                json!({"function_id": fid, "args": [1000 + i]}),
            )
            .await;
        match reply.0 {
            StatusCode::OK => accepted.push(reply.1["task_id"].as_str().unwrap().to_owned()),
            StatusCode::NOT_FOUND => {
                gone = true;
                break;
            }
            other => panic!("execute after FLUSHALL: {other} {}", reply.1),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(gone, "the gateway still accepts the vanished function");
    eprintln!(
        "{} executions accepted from the gateway's cache before it noticed",
        accepted.len()
    );
    let reply = stack
        .post_json(
            "/execute_function",
            json!({"function_id": fid, "args": [1]}),
        )
        .await;
    assert_json_error(&reply, StatusCode::NOT_FOUND, "execute after the reset");
    let (_, functions) = stack.get_json("/functions").await;
    assert_eq!(functions, json!([]));
    // None of them ran: each was failed when the dispatcher found its function gone.
    for tid in &accepted {
        let reply = stack.wait_result(tid.parse().unwrap()).await;
        assert_eq!(
            reply["status"], "FAILED",
            "a task of a vanished function ran: {reply}"
        );
        assert_eq!(reply["error"]["type"], "FunctionMissing", "{reply}");
    }
    // The platform works on: a function registered now runs.
    add_completes(&stack).await;
}

/// An idle dispatcher waits in a blocking read with `take.lua` pipelined behind it, so that
/// Redis starts the task it delivers in the same round trip. A Redis that forgot its scripts
/// meanwhile (a restart, `SCRIPT FLUSH`) answers that call NOSCRIPT: the delivered task is
/// started the long way at once, not left pending for the reclaim of dead dispatchers' entries
/// (an hour away here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_dispatcher_starts_tasks_after_redis_forgot_its_scripts() {
    let mut stack = Stack::builder(Mode::Local)
        .dispatcher_args(&["--reclaim-after-ms", "3600000"])
        .start()
        .await;
    let fid = stack.register_source("add", ADD, "add").await;
    let first = stack.execute_json(fid, json!([1, 2]), json!({})).await;
    assert_eq!(stack.wait_result(first).await["result"], 3);
    let flushed = stack.redis().command(&["SCRIPT", "FLUSH"]).await;
    assert_eq!(flushed, Resp::Simple("OK".into()));
    for i in 0..3 {
        let tid = stack.execute_json(fid, json!([i, 10]), json!({})).await;
        let reply = stack.wait_result_within(tid, Duration::from_secs(60)).await;
        assert_eq!(reply["result"], i + 10, "{reply}");
    }
}

/// A daemon pointed at a Redis unix socket that is not there yet says so at once, naming the
/// URL and the OS error, and is up as soon as a Redis listens there (`faas up` runs its Redis
/// on such a socket). After that Redis is replaced by another on the same socket, the gateway
/// dials again, and a batch far larger than a socket's buffer goes through (the daemons'
/// sockets wait for write room only when a write would block, `store/link.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_waiting_for_a_redis_socket_says_so_and_comes_up_with_it() {
    let dir = TestDir::new();
    let socket = dir.path().join("redis.sock");
    let url = format!("unix://{}", socket.display());
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut gateway = Daemon::spawn(
        "gateway",
        bin("faas-gateway"),
        &["--listen", &listen, "--redis", &url],
        &[],
        dir.path(),
    );
    // Bounded well above the gateway's own first attempt, which fails at once (no socket), so
    // the warning must come from that one.
    let said = gateway
        .wait_for_event(Duration::from_secs(4), |e| {
            redis_unreachable(e) && e.field("url") == Some(url.as_str())
        })
        .await;
    assert!(said, "{}", gateway.log_tail(20));
    let event = gateway
        .events()
        .into_iter()
        .find(redis_unreachable)
        .expect("logged");
    assert!(
        event
            .field("error")
            .is_some_and(|e| e.contains("No such file")),
        "{}",
        gateway.log_tail(20)
    );

    let redis_on_socket = || {
        Daemon::spawn(
            "redis",
            "redis-server",
            &[
                "--port",
                "0",
                "--unixsocket",
                &socket.to_string_lossy(),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                &dir.path().to_string_lossy(),
            ],
            &[],
            dir.path(),
        )
    };
    let mut redis = redis_on_socket();
    let client = reqwest::Client::new();
    let healthy = wait_until(Duration::from_secs(30), async || {
        let r = client.get(format!("http://{listen}/healthz")).send().await;
        r.is_ok_and(|r| r.status() == StatusCode::OK)
    })
    .await;
    assert!(healthy, "{}", gateway.log_tail(20));

    redis.stop();
    let mut redis = redis_on_socket();
    let register =
        json!({"name": "echo", "source": "def echo(s):\n    return s\n", "entrypoint": "echo"});
    let mut function_id = None;
    let registered = wait_until(Duration::from_secs(30), async || {
        let r = client
            .post(format!("http://{listen}/register_function"))
            .json(&register)
            .send()
            .await;
        let Ok(r) = r else { return false };
        if r.status() != StatusCode::OK {
            return false;
        }
        let reply: serde_json::Value = r.json().await.expect("json reply");
        function_id = reply["function_id"].as_str().map(str::to_owned);
        true
    })
    .await;
    assert!(registered, "{}", gateway.log_tail(20));
    let function_id = function_id.expect("an id");
    // 2,000 tasks of 2 KiB each: some 5 MiB of commands in one pipeline.
    let arg = "x".repeat(2048);
    let executions: Vec<_> = (0..2000)
        .map(|_| json!({"function_id": function_id, "args": [arg]}))
        .collect();
    let r = client
        .post(format!("http://{listen}/execute_batch"))
        .json(&json!({ "executions": executions }))
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(r.status(), StatusCode::OK, "{}", gateway.log_tail(20));
    let reply: serde_json::Value = r.json().await.expect("json reply");
    let ids = reply["task_ids"].as_array().expect("task_ids");
    assert_eq!(ids.len(), 2000);
    let last = ids[1999].as_str().expect("an id");
    let task: serde_json::Value = client
        .get(format!("http://{listen}/tasks/{last}"))
        .send()
        .await
        .expect("gateway answers")
        .json()
        .await
        .expect("json reply");
    assert_eq!(task["status"], "QUEUED", "{task}");
    assert_eq!(
        task["args"]["args"][0].as_str().map(str::len),
        Some(2048),
        "{task}"
    );
    gateway.stop();
    redis.stop();
}
