//! Remote workers and their dispatcher: joining in any order, surviving a dispatcher restart,
//! draining on SIGTERM, refusing peers that speak another protocol or mode, the Redis worker
//! registry, and an idle pair that does not busy-poll.

use std::time::Duration;

use bytes::Bytes;
use faas_tests::{connect_dealer, wait_until, Mode, Stack, FAST_DISPATCHER, FAST_WORKER};
use nix::sys::signal::Signal;
use serde_json::{json, Value};
use zeromq::{DealerSocket, SocketRecv, SocketSend, ZmqMessage};

faas_tests::remote_modes!(
    a_worker_started_before_its_dispatcher_joins_when_it_comes,
    a_dispatcher_restart_is_survived_by_its_workers,
    a_worker_drains_its_task_on_sigterm,
    an_idle_worker_stops_promptly_on_sigterm,
    a_worker_of_the_other_mode_is_refused,
    the_registry_lists_joined_workers_and_drops_lost_ones,
    an_idle_worker_and_dispatcher_do_not_busy_poll,
);

const ADD: &str = "def add(a, b):\n    return a + b\n";
const JOIN: Duration = Duration::from_secs(20);

fn other(mode: Mode) -> Mode {
    match mode {
        Mode::Pull => Mode::Push,
        _ => Mode::Pull,
    }
}

async fn add_completes(stack: &Stack, a: i64) {
    let fid = stack.register_source("add", ADD, "add").await;
    let tid = stack.execute_json(fid, json!([a, 1]), json!({})).await;
    let reply = stack.wait_result_within(tid, Duration::from_secs(30)).await;
    assert_eq!(reply["status"], "COMPLETED", "{reply}");
    assert_eq!(reply["result"], a + 1, "{reply}");
}

async fn a_worker_started_before_its_dispatcher_joins_when_it_comes(mode: Mode) {
    let mut stack = Stack::builder(mode)
        .procs(1)
        .without_dispatcher()
        .dispatcher_args(FAST_DISPATCHER)
        .worker_args(FAST_WORKER)
        // A pull worker's failed attempts to reach the dispatcher are logged at debug level.
        .env("RUST_LOG", "info,faas_daemons=debug")
        .start()
        .await;
    let port = stack.dispatcher_port();
    let w = stack.add_worker(port, &[]);
    // Pull logs each failed hello; a push worker's connect retries silently inside the
    // zeromq crate, so for push "up and connecting" is the pool being ready.
    let retry = match mode {
        Mode::Pull => "hello_unanswered",
        _ => "pool_started",
    };
    let tried = wait_until(JOIN, async || {
        stack.worker(w).assert_running();
        stack.worker(w).logged(|e| e.is(retry))
    })
    .await;
    assert!(
        tried,
        "the worker never started waiting for the absent dispatcher:\n{}",
        stack.worker(w).log_tail(20)
    );

    stack.start_dispatcher();
    add_completes(&stack, 41).await;
    let worker = stack.worker(w);
    assert!(worker.exited().is_none(), "{}", worker.log_tail(20));
    assert!(
        worker.logged(|e| e.is("joined") && e.field("dispatcher").is_some()),
        "{}",
        worker.log_tail(20)
    );
}

async fn a_dispatcher_restart_is_survived_by_its_workers(mode: Mode) {
    let mut stack = Stack::builder(mode)
        .procs(1)
        .worker_processes(2)
        .dispatcher_args(FAST_DISPATCHER)
        .worker_args(FAST_WORKER)
        .start()
        .await;
    let before = stack.wait_registered_workers(2, JOIN).await;
    add_completes(&stack, 1).await;

    let exit = stack.stop_dispatcher().expect("the dispatcher was running");
    assert!(
        exit.success(),
        "SIGTERM should stop the dispatcher cleanly: {exit}"
    );
    stack.start_dispatcher();

    // Both rejoin the new dispatcher (another process, so another name in the registry).
    let old = before.values().next().expect("two entries")["dispatcher"].clone();
    let mut last = Default::default();
    let rejoined = wait_until(JOIN, async || {
        last = stack.registered_workers().await;
        last.len() == 2 && last.values().all(|w| w["dispatcher"] != old)
    })
    .await;
    assert!(
        rejoined,
        "workers did not rejoin the new dispatcher: {last:?}"
    );
    for a in 2..6 {
        add_completes(&stack, a).await;
    }
    for i in 0..stack.worker_count() {
        let worker = stack.worker(i);
        assert!(
            worker.exited().is_none(),
            "worker {i} died:\n{}",
            worker.log_tail(20)
        );
        assert!(
            worker.count_events(|e| e.is("joined")) >= 2,
            "worker {i} did not say hello again:\n{}",
            worker.log_tail(20)
        );
    }
}

async fn a_worker_drains_its_task_on_sigterm(mode: Mode) {
    // Unsandboxed, so the task can touch the marker file in the test's directory.
    let mut stack = Stack::builder(mode)
        .env("FAAS_SANDBOX", "none")
        .procs(1)
        .dispatcher_args(FAST_DISPATCHER)
        .worker_args(&["--heartbeat-ms", "300", "--drain-grace-ms", "10000"])
        .start()
        .await;
    stack.wait_registered_workers(1, JOIN).await;
    let marker = stack.dir().path().join("started");
    let source = "import time\n\
def nap(marker):\n    open(marker, 'w').close()\n    time.sleep(1)\n    return 'rested'\n";
    let fid = stack.register_source("nap", source, "nap").await;
    let tid = stack
        .execute_json(fid, json!([marker.to_string_lossy()]), json!({}))
        .await;
    // SIGTERM only once the task is really running in the worker's Python child.
    assert!(
        wait_until(JOIN, async || marker.exists()).await,
        "the task never started: {}",
        stack.task(tid).await
    );

    assert!(stack.worker(0).signal(Signal::SIGTERM));
    let reply = stack.wait_result_within(tid, Duration::from_secs(20)).await;
    assert_eq!(reply["status"], "COMPLETED", "{reply}");
    assert_eq!(reply["result"], "rested", "{reply}");
    assert_eq!(stack.task(tid).await["attempts"], 1, "it ran once");
    let exit = stack.worker(0).wait_exit(Duration::from_secs(15)).await;
    assert!(
        exit.is_some_and(|s| s.success()),
        "the worker should exit 0 after draining, got {exit:?}:\n{}",
        stack.worker(0).log_tail(20)
    );
    stack
        .wait_registered_workers(0, Duration::from_secs(10))
        .await;

    let exit = stack.stop_dispatcher().expect("the dispatcher was running");
    assert!(
        exit.success(),
        "SIGTERM should stop the dispatcher cleanly: {exit}"
    );
}

async fn an_idle_worker_stops_promptly_on_sigterm(mode: Mode) {
    let mut stack = Stack::builder(mode)
        .procs(1)
        .dispatcher_args(FAST_DISPATCHER)
        .worker_args(FAST_WORKER)
        .start()
        .await;
    stack.wait_registered_workers(1, JOIN).await;
    add_completes(&stack, 1).await;

    assert!(stack.worker(0).signal(Signal::SIGTERM));
    // Nothing to drain: it says goodbye and goes, well inside a service manager's stop timeout.
    let exit = stack.worker(0).wait_exit(Duration::from_secs(5)).await;
    assert!(
        exit.is_some_and(|s| s.success()),
        "an idle worker should exit 0 within 5 s of SIGTERM, got {exit:?}:\n{}",
        stack.worker(0).log_tail(20)
    );
    stack
        .wait_registered_workers(0, Duration::from_secs(5))
        .await;
}

async fn a_worker_of_the_other_mode_is_refused(mode: Mode) {
    let mut stack = Stack::builder(mode)
        .procs(1)
        .worker_processes(0)
        .start()
        .await;
    let port = stack.dispatcher_port();
    let w = stack.add_worker_of(other(mode), port, &[]);
    let exit = stack.worker(w).wait_exit(JOIN).await;
    let log = stack.worker(w).log_tail(20);
    assert!(
        exit.is_some_and(|s| !s.success()),
        "a {} worker against a {} dispatcher should exit non-zero, got {exit:?}:\n{log}",
        other(mode).as_str(),
        mode.as_str()
    );
    // The reason is the dispatcher's, in words: it names the modes.
    assert!(
        stack
            .worker(w)
            .logged(|e| e.is("refused") && e.field("reason").is_some_and(|r| r.contains("mode"))),
        "no clear reason in the log:\n{log}"
    );
    assert!(stack.registered_workers().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_of_another_protocol_version_is_refused() {
    let mut stack = Stack::builder(Mode::Push).worker_processes(0).start().await;
    let endpoint = format!("tcp://127.0.0.1:{}", stack.dispatcher_port());
    let mut socket = connect_dealer(&endpoint, JOIN).await;
    let hello = |v: u32| {
        json!({"v": v, "type": "hello", "worker": "raw", "mode": "push", "host": "h",
               "pid": 1, "slots": 1, "busy": 0})
    };

    let reply = exchange(&mut socket, &hello(99)).await;
    assert_eq!(reply["type"], "refused", "{reply}");
    assert_eq!(reply["rejoin"], false, "{reply}");
    let reason = reply["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("version") && reason.contains("99"),
        "the reason should name the version: {reply}"
    );
    let dispatcher = stack.dispatcher().expect("running");
    dispatcher.assert_running();
    assert!(
        dispatcher.logged(|e| e.is("message_refused") && e.field("reason") == Some("version")),
        "{}",
        dispatcher.log_tail(20)
    );

    // The refusal is per message: the same peer speaking version 2 is welcome.
    let reply = exchange(&mut socket, &hello(2)).await;
    assert_eq!(reply["type"], "welcome", "{reply}");
    assert_eq!(reply["v"], 2, "{reply}");
}

/// Sends one frame from a raw DEALER and returns the JSON answer.
async fn exchange(socket: &mut DealerSocket, msg: &Value) -> Value {
    let frame = ZmqMessage::from(Bytes::from(msg.to_string()));
    socket.send(frame).await.expect("send");
    let reply = tokio::time::timeout(Duration::from_secs(10), socket.recv())
        .await
        .unwrap_or_else(|_| panic!("no answer to {msg}"))
        .expect("recv");
    let payload = reply.into_vec().pop().expect("a frame");
    serde_json::from_slice(&payload).expect("JSON answer")
}

async fn the_registry_lists_joined_workers_and_drops_lost_ones(mode: Mode) {
    let mut stack = Stack::builder(mode)
        .procs(2)
        .worker_processes(0)
        .dispatcher_args(&[
            "--heartbeat-ms",
            "300",
            "--reclaim-after-ms",
            "2000",
            "--name",
            "disp-reg",
        ])
        .worker_args(FAST_WORKER)
        .start()
        .await;
    let port = stack.dispatcher_port();
    let w1 = stack.add_worker(port, &["--id", "w1"]);
    let w2 = stack.add_worker(port, &["--id", "w2"]);
    let registry = stack.wait_registered_workers(2, JOIN).await;
    for (id, w) in [("w1", w1), ("w2", w2)] {
        let info = &registry[id];
        assert_eq!(info["id"], id, "{info}");
        assert_eq!(info["mode"], mode.as_str(), "{info}");
        assert_eq!(info["slots"], 2, "{info}");
        assert_eq!(info["dispatcher"], "disp-reg", "{info}");
        assert_eq!(info["pid"], stack.worker(w).pid(), "{info}");
    }

    stack.worker(w2).kill9();
    let registry = stack
        .wait_registered_workers(1, Duration::from_secs(5))
        .await;
    assert!(registry.contains_key("w1"), "{registry:?}");
}

async fn an_idle_worker_and_dispatcher_do_not_busy_poll(mode: Mode) {
    // Default heartbeat and long-poll: the idle state a deployment is in most of the time.
    let mut stack = Stack::builder(mode).procs(1).start().await;
    stack.wait_registered_workers(1, JOIN).await;
    add_completes(&stack, 1).await;

    let dispatcher_pid = stack.dispatcher().expect("running").pid();
    let worker_pid = stack.worker(0).pid();
    let cpu =
        || [dispatcher_pid, worker_pid].map(|pid| faas_tests::cpu_time(pid as i32).expect("alive"));
    let before = cpu();
    // A measurement window, not a wait for a condition: idle is what is measured.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = cpu();
    for (i, name) in ["dispatcher", "worker"].iter().enumerate() {
        let used = after[i] - before[i];
        assert!(
            used < Duration::from_millis(300),
            "idle {name} used {used:?} of CPU in 3 s: busy polling?"
        );
    }
}
