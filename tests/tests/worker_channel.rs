//! The trusted worker channel against real peers: rogue ZeroMQ clients (no key, a wrong key,
//! plaintext, forged results, spoofed `bye`, a key holder speaking for another worker), a real
//! `faas-worker` with the wrong key, a frozen worker whose late result must be dropped, and the
//! dispatcher's refusal to bind a reachable address without a key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use faas_daemons::channel::{tag, ChannelError, ChannelKey, Initiator, Link};
use faas_protocol::worker_key::WorkerKey;
use faas_protocol::TaskId;
use faas_tests::{
    bin, connect_dealer, redis_unreachable, wait_until, Daemon, Mode, Stack, TestDir,
    FAST_DISPATCHER,
};
use nix::sys::signal::Signal;
use serde_json::{json, Value};
use zeromq::{DealerSocket, SocketRecv, SocketSend, ZmqMessage};

faas_tests::remote_modes!(
    a_rogue_without_the_key_gets_no_task_and_forges_nothing,
    a_key_holder_speaks_only_for_the_worker_it_joined_as,
    a_worker_with_the_wrong_key_never_runs_a_task,
    a_frozen_workers_late_result_is_dropped,
);

const JOIN: Duration = Duration::from_secs(20);
const SLOW: &str = "import time\ndef slow(s, marker=None):\n    if marker:\n        open(marker, 'w').close()\n    time.sleep(s)\n    return 'real'\n";

/// Writes a fresh key file (mode 0600) in `dir`.
fn key_file(dir: &Path, name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, WorkerKey::generate().to_file_text()).expect("write key");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path
}

fn channel_key(path: &Path) -> ChannelKey {
    ChannelKey::load(path).expect("a valid key file")
}

/// A keyed push or pull stack with `workers` real workers named `real-1`, `real-2`, ...
async fn keyed_stack(mode: Mode, key: &Path, workers: usize) -> Stack {
    keyed_stack_with(mode, key, workers, &[]).await
}

/// [`keyed_stack`] with extra environment for every daemon.
async fn keyed_stack_with(mode: Mode, key: &Path, workers: usize, env: &[(&str, &str)]) -> Stack {
    let key = key.to_string_lossy().into_owned();
    let mut dispatcher: Vec<&str> = vec!["--worker-key-file", &key];
    dispatcher.extend(FAST_DISPATCHER);
    let builder = env
        .iter()
        .fold(Stack::builder(mode), |b, (k, v)| b.env(k, v));
    let mut stack = builder
        .procs(1)
        .worker_processes(0)
        .dispatcher_args(&dispatcher)
        .worker_args(&["--worker-key-file", &key, "--heartbeat-ms", "300"])
        .start()
        .await;
    let port = stack.dispatcher_port();
    for i in 1..=workers {
        stack.add_worker(port, &["--id", &format!("real-{i}")]);
    }
    stack
}

/// Starts `slow(seconds)` and waits until a worker runs it; returns it with its record.
async fn running_task(stack: &Stack, seconds: f64) -> (TaskId, Value) {
    let fid = stack.register_source("slow", SLOW, "slow").await;
    let tid = stack.execute_json(fid, json!([seconds]), json!({})).await;
    let mut record = Value::Null;
    let running = wait_until(JOIN, async || {
        record = stack.task(tid).await;
        record["status"] == "RUNNING"
    })
    .await;
    assert!(running, "the task never ran: {record}");
    (tid, record)
}

/// A raw ZeroMQ peer of the dispatcher's worker socket. `req` frames like a REQ socket (an
/// empty delimiter first), as pull workers do, over a DEALER so it never blocks on a dropped
/// answer.
struct Rogue {
    socket: DealerSocket,
    req: bool,
    link: Link,
}

impl Rogue {
    async fn connect(port: u16, mode: Mode) -> Self {
        let endpoint = format!("tcp://127.0.0.1:{port}");
        Self {
            socket: connect_dealer(&endpoint, JOIN).await,
            req: mode == Mode::Pull,
            link: Link::Plain,
        }
    }

    async fn send_raw(&mut self, payload: Bytes) {
        let mut frames = Vec::new();
        if self.req {
            frames.push(Bytes::new());
        }
        frames.push(payload);
        let msg = ZmqMessage::try_from(frames).expect("frames");
        self.socket.send(msg).await.expect("send");
    }

    /// The next frame's payload, or `None` after `wait`.
    async fn recv_raw(&mut self, wait: Duration) -> Option<Bytes> {
        let msg = tokio::time::timeout(wait, self.socket.recv()).await.ok()?;
        msg.expect("recv").into_vec().pop()
    }

    async fn handshake(&mut self, key: &ChannelKey) -> Result<(), ChannelError> {
        let (init, first) = Initiator::start(key);
        self.send_raw(first).await;
        let answer = self
            .recv_raw(Duration::from_secs(10))
            .await
            .ok_or(ChannelError::Unanswered)?;
        self.link = Link::Sealed(init.finish(&answer)?);
        Ok(())
    }

    async fn send(&mut self, msg: &Value) {
        let frame = self.link.seal(msg.to_string().into_bytes());
        self.send_raw(frame).await;
    }

    /// The next message, opened and parsed; `None` after `wait`.
    async fn recv(&mut self, wait: Duration) -> Option<Value> {
        let frame = self.recv_raw(wait).await?;
        let payload = self.link.open(&frame).expect("a frame that opens");
        Some(serde_json::from_slice(&payload).expect("JSON"))
    }
}

fn hello(worker: &str, mode: Mode, slots: u32) -> Value {
    json!({"v": 2, "type": "hello", "worker": worker, "mode": mode.as_str(), "host": "rogue",
           "pid": 1, "slots": slots, "busy": 0})
}

fn forged_result(worker: &str, task: TaskId, lease: &Value) -> Value {
    json!({"v": 2, "type": "result", "worker": worker, "task_id": task, "lease": lease,
           "format": "source", "outcome": {"status": "COMPLETED", "result": "forged", "log": ""}})
}

fn bye(worker: &str) -> Value {
    json!({"v": 2, "type": "bye", "worker": worker, "unfinished": []})
}

/// The task finished with the real worker's result, and the real worker is still registered.
async fn real_result_and_worker_kept(stack: &mut Stack, tid: TaskId, worker: &str) {
    let reply = stack.wait_result_within(tid, Duration::from_secs(30)).await;
    assert_eq!(reply["status"], "COMPLETED", "{reply}");
    assert_eq!(
        reply["result"], "real",
        "a forged result was stored: {reply}"
    );
    let record = stack.task(tid).await;
    assert_eq!(record["worker"], worker, "{record}");
    assert_eq!(record["attempts"], 1, "the task ran again: {record}");
    assert!(
        stack.registered_workers().await.contains_key(worker),
        "the real worker was evicted"
    );
    let dispatcher = stack.dispatcher().expect("running");
    let about_real =
        |event: &str| dispatcher.logged(|e| e.is(event) && e.field("worker") == Some(worker));
    assert!(
        !about_real("worker_left"),
        "a spoofed bye was taken:\n{}",
        dispatcher.log_tail(30)
    );
    assert!(!about_real("worker_lost"), "{}", dispatcher.log_tail(30));
}

async fn a_rogue_without_the_key_gets_no_task_and_forges_nothing(mode: Mode) {
    let keys = TestDir::new();
    let key = key_file(keys.path(), "worker.key");
    let mut stack = keyed_stack(mode, &key, 1).await;
    stack.wait_registered_workers(1, JOIN).await;
    let (tid, record) = running_task(&stack, 3.0).await;
    let port = stack.dispatcher_port();

    // An old-style plaintext peer: told, in plaintext, that a key is required; nothing else.
    let mut plain = Rogue::connect(port, mode).await;
    plain.send(&hello("rogue", mode, 4)).await;
    let reply = plain
        .recv(Duration::from_secs(10))
        .await
        .expect("an answer");
    assert_eq!(reply["type"], "refused", "{reply}");
    assert!(
        reply["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("worker key"),
        "{reply}"
    );
    plain
        .send(&forged_result("real-1", tid, &record["attempts"]))
        .await;
    plain.send(&bye("real-1")).await;
    plain
        .send(&json!({"v": 2, "type": "poll", "worker": "real-1"}))
        .await;

    // A wrong key fails the handshake, with nothing kept.
    let mut wrong = Rogue::connect(port, mode).await;
    let other = channel_key(&key_file(keys.path(), "other.key"));
    assert_eq!(wrong.handshake(&other).await, Err(ChannelError::Refused));

    // A sealed-looking frame without a session is told to handshake, and opens nothing.
    let mut forger = Rogue::connect(port, mode).await;
    let mut junk = vec![tag::DATA];
    junk.extend(std::iter::repeat_n(7u8, 64));
    forger.send_raw(Bytes::from(junk)).await;
    let answer = forger
        .recv_raw(Duration::from_secs(10))
        .await
        .expect("an answer");
    assert_eq!(&answer[..], &[tag::NO_SESSION]);

    real_result_and_worker_kept(&mut stack, tid, "real-1").await;
    // None of them was ever sent a task.
    for rogue in [&mut plain, &mut wrong, &mut forger] {
        while let Some(frame) = rogue.recv_raw(Duration::from_millis(300)).await {
            assert!(
                !String::from_utf8_lossy(&frame).contains("\"task\""),
                "a rogue was sent a task"
            );
        }
    }
    let dispatcher = stack.dispatcher().expect("running");
    assert!(
        dispatcher.logged(|e| e.is("peer_refused") && e.field("reason").is_some()),
        "{}",
        dispatcher.log_tail(30)
    );
}

async fn a_key_holder_speaks_only_for_the_worker_it_joined_as(mode: Mode) {
    let keys = TestDir::new();
    let key = key_file(keys.path(), "worker.key");
    let mut stack = keyed_stack(mode, &key, 1).await;
    stack.wait_registered_workers(1, JOIN).await;
    let (tid, record) = running_task(&stack, 3.0).await;

    let mut rogue = Rogue::connect(stack.dispatcher_port(), mode).await;
    rogue.handshake(&channel_key(&key)).await.expect("same key");
    // No slots: it takes no tasks, it only talks.
    rogue.send(&hello("rogue-1", mode, 0)).await;
    let welcome = rogue.recv(Duration::from_secs(10)).await.expect("welcome");
    assert_eq!(welcome["type"], "welcome", "{welcome}");

    for spoofed in [
        forged_result("real-1", tid, &record["attempts"]),
        bye("real-1"),
        json!({"v": 2, "type": "heartbeat", "worker": "real-1", "busy": 0}),
    ] {
        rogue.send(&spoofed).await;
        let reply = rogue
            .recv(Duration::from_secs(10))
            .await
            .expect("an answer");
        assert_eq!(reply["type"], "refused", "{spoofed} was taken: {reply}");
        assert!(
            reply["reason"]
                .as_str()
                .unwrap_or_default()
                .contains("rogue-1"),
            "{reply}"
        );
    }
    // In its own name, a result for a task it was never given is fenced out by the store.
    rogue
        .send(&forged_result("rogue-1", tid, &record["attempts"]))
        .await;
    real_result_and_worker_kept(&mut stack, tid, "real-1").await;
}

/// A worker outside the stack's flags: `mode`, one process, against `port`, plus `extra`.
/// It logs at debug level, so that a task it receives (`task_received`) would show.
fn spawn_worker(dir: &TestDir, name: &str, mode: Mode, port: u16, extra: &[&str]) -> Daemon {
    let python = faas_tests::python().to_string_lossy().into_owned();
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let mut args = vec![mode.as_str(), "1", &endpoint, "--python", &python];
    args.extend(extra);
    let env = [("RUST_LOG".to_owned(), "info,faas_daemons=debug".to_owned())];
    Daemon::spawn(name, bin("faas-worker"), &args, &env, dir.path())
}

async fn a_worker_with_the_wrong_key_never_runs_a_task(mode: Mode) {
    let keys = TestDir::new();
    let key = key_file(keys.path(), "worker.key");
    let wrong = key_file(keys.path(), "wrong.key");
    let stack = keyed_stack(mode, &key, 0).await;
    let port = stack.dispatcher_port();
    let wrong = wrong.to_string_lossy().into_owned();
    let mut impostor = spawn_worker(
        &keys,
        "impostor",
        mode,
        port,
        &["--worker-key-file", &wrong, "--id", "impostor"],
    );
    let fid = stack.register_source("slow", SLOW, "slow").await;
    let tid = stack.execute_json(fid, json!([0.0]), json!({})).await;
    let said = impostor
        .wait_for_event(JOIN, |e| e.is("worker_key_differs"))
        .await;
    assert!(said, "no clear log line:\n{}", impostor.log_tail(20));
    // It keeps trying (with back-off), and gets nothing.
    impostor.assert_running();
    assert_eq!(
        stack.status(tid).await,
        "QUEUED",
        "{}",
        stack.task(tid).await
    );
    assert!(stack.registered_workers().await.is_empty());

    // A worker without any key is refused in words it can read, and stops.
    let mut keyless = spawn_worker(&keys, "keyless", mode, port, &[]);
    let exit = keyless.wait_exit(JOIN).await;
    assert!(
        exit.is_some_and(|s| !s.success()),
        "{}",
        keyless.log_tail(20)
    );
    assert!(
        keyless.logged(
            |e| e.is("refused") && e.field("reason").is_some_and(|r| r.contains("worker key"))
        ),
        "{}",
        keyless.log_tail(20)
    );
    // An unreadable key file is a usage error.
    let mut unreadable = spawn_worker(
        &keys,
        "nokey",
        mode,
        port,
        &["--worker-key-file", "/nonexistent/key"],
    );
    let exit = unreadable.wait_exit(JOIN).await;
    assert_eq!(
        exit.and_then(|s| s.code()),
        Some(64),
        "{}",
        unreadable.log()
    );

    // The right key runs it, and its log says so: which makes the impostor's silence count.
    let right = key.to_string_lossy().into_owned();
    let real = spawn_worker(
        &keys,
        "real-9",
        mode,
        port,
        &["--worker-key-file", &right, "--id", "real-9"],
    );
    let reply = stack.wait_result_within(tid, Duration::from_secs(30)).await;
    assert_eq!(reply["status"], "COMPLETED", "{reply}");
    assert_eq!(stack.task(tid).await["worker"], "real-9");
    let tid = tid.to_string();
    assert!(
        real.logged(|e| e.is("task_received") && e.field("task_id") == Some(tid.as_str())),
        "{}",
        real.log_tail(20)
    );
    impostor.assert_running();
    assert!(
        !impostor.logged(|e| e.is("task_received")),
        "{}",
        impostor.log_tail(20)
    );
}

/// Sends SIGCONT on drop to the one process it stopped, so a failing test leaves nothing stopped.
struct Frozen(i32);

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.0), Signal::SIGCONT);
    }
}

async fn a_frozen_workers_late_result_is_dropped(mode: Mode) {
    let keys = TestDir::new();
    let key = key_file(keys.path(), "worker.key");
    // Unsandboxed: the function writes a marker file the test reads, and a sandboxed function
    // has a private, read-only view of the host (isolation.rs tests that).
    let mut stack = keyed_stack_with(mode, &key, 2, &[("FAAS_SANDBOX", "none")]).await;
    stack.wait_registered_workers(2, JOIN).await;
    let fid = stack.register_source("slow", SLOW, "slow").await;
    let marker = keys.path().join("started");
    let args = json!([4.0, marker.to_string_lossy()]);
    let tid = stack.execute_json(fid, args, json!({})).await;
    // Frozen only once the task runs in the worker's Python child (RUNNING is set before the
    // task message even leaves the dispatcher), so attempt 1 does finish while frozen.
    assert!(
        wait_until(JOIN, async || marker.exists()).await,
        "the task never started: {}",
        stack.task(tid).await
    );
    let record = stack.task(tid).await;
    let first = record["worker"].as_str().expect("a worker").to_owned();
    let (frozen_index, other) = match first.as_str() {
        "real-1" => (0, "real-2"),
        _ => (1, "real-1"),
    };
    let pid = stack.worker(frozen_index).pid() as i32;
    assert!(stack.worker(frozen_index).signal(Signal::SIGSTOP));
    let frozen = Frozen(pid);

    // Past the loss window the task runs again elsewhere, as attempt 2.
    let mut now = Value::Null;
    let moved = wait_until(JOIN, async || {
        now = stack.task(tid).await;
        now["attempts"] == 2 && now["status"] == "RUNNING"
    })
    .await;
    assert!(moved, "the task did not move on: {now}");
    assert_eq!(now["worker"], other, "{now}");
    // Back while attempt 2 still runs: attempt 1's result (its child finished meanwhile) is late.
    drop(frozen);
    let late = |e: &faas_tests::LogEvent| {
        e.is("late_result_dropped")
            && e.field("task_id") == Some(tid.to_string().as_str())
            && e.field("worker") == Some(first.as_str())
            && e.number("attempt") == Some(1)
    };
    let dropped = stack
        .dispatcher()
        .expect("running")
        .wait_for_event(JOIN, late)
        .await;
    assert!(
        dropped,
        "{}",
        stack.dispatcher().expect("running").log_tail(30)
    );
    let reply = stack.wait_result_within(tid, Duration::from_secs(30)).await;
    assert_eq!(reply["status"], "COMPLETED", "{reply}");
    let done = stack.task(tid).await;
    assert_eq!(done["attempts"], 2, "{done}");
    assert_eq!(
        done["worker"], other,
        "the late attempt's result was stored: {done}"
    );
    // The frozen worker rejoins.
    stack.wait_registered_workers(2, JOIN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reachable_bind_without_a_key_is_refused_unless_insecure_is_said() {
    let dir = TestDir::new();
    let base = [
        "-m",
        "push",
        "--bind",
        "0.0.0.0",
        "--redis",
        "redis://127.0.0.1:1",
    ];
    let mut d = Daemon::spawn("dispatcher", bin("faas-dispatcher"), &base, &[], dir.path());
    let exit = d.wait_exit(Duration::from_secs(20)).await;
    assert_eq!(exit.and_then(|s| s.code()), Some(64), "{}", d.log());
    assert!(d.log().contains("faas keygen"), "{}", d.log());

    // Overridden, it warns (and here waits for a Redis that is not there, binding nothing).
    let mut args = base.to_vec();
    args.push("--insecure-no-worker-key");
    let mut d = Daemon::spawn("insecure", bin("faas-dispatcher"), &args, &[], dir.path());
    let waiting = d.wait_for_event(JOIN, redis_unreachable).await;
    assert!(waiting, "{}", d.log_tail(20));
    assert!(
        d.logged(|e| e.is("insecure_worker_channel")),
        "{}",
        d.log_tail(20)
    );
    d.stop();

    // A key file that is not a key is a usage error too.
    let bad = dir.path().join("bad.key");
    std::fs::write(&bad, "abcd\n").unwrap();
    let bad = bad.to_string_lossy().into_owned();
    let mut args = base.to_vec();
    args.extend(["--worker-key-file", &bad]);
    let mut d = Daemon::spawn("badkey", bin("faas-dispatcher"), &args, &[], dir.path());
    let exit = d.wait_exit(Duration::from_secs(20)).await;
    assert_eq!(exit.and_then(|s| s.code()), Some(64), "{}", d.log());
    assert!(d.log().contains("at least 32"), "{}", d.log());
}
