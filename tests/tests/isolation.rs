//! Function isolation, tried as a hostile or buggy function would: one child per function (the
//! interpreter cannot be hijacked across functions), the bubblewrap sandbox (no daemon secrets,
//! no signals to the daemons), per-child limits and the clean-up of everything a task started.

use std::time::Duration;

use faas_protocol::FunctionId;
use faas_tests::{descendants, process_gone, wait_until, Mode, Stack};
use serde_json::{json, Value};

faas_tests::per_mode!(
    hijacking_the_interpreter_does_not_reach_another_function,
    secrets_and_daemons_are_out_of_reach,
);

/// Runs a source function once and returns its `/result` reply.
async fn call(stack: &Stack, fid: FunctionId, args: Value) -> Value {
    let tid = stack.execute_json(fid, args, json!({})).await;
    stack.wait_result(tid).await
}

#[track_caller]
fn assert_failed(reply: &Value, kind: &str) {
    assert_eq!(reply["status"], "FAILED", "{reply}");
    assert_eq!(reply["error"]["type"], kind, "{reply}");
}

#[track_caller]
fn assert_result(reply: &Value, expected: Value) {
    assert_eq!(reply["status"], "COMPLETED", "{reply}");
    assert_eq!(reply["result"], expected, "{reply}");
}

const HIJACK: &str = r#"
import builtins, json, sys

FORGED = '{"ok": true, "result": "hijacked", "log": "", "need_body": false}'

def hijack():
    main = sys.modules["__main__"]
    for name in list(vars(main)):
        if callable(getattr(main, name)) and not name.startswith("__"):
            setattr(main, name, lambda *a, **k: {"ok": True, "result": "hijacked", "log": ""})
    json.dumps = lambda *a, **k: FORGED
    json.loads = lambda *a, **k: {"function_id": "x", "format": "source", "args": {}}
    builtins.print = lambda *a, **k: None
    builtins.len = lambda *a: 0
    return "done"
"#;

const VICTIM: &str = "def victim(i):\n    return {'b': i, 'n': len(str(i))}\n";

async fn hijacking_the_interpreter_does_not_reach_another_function(mode: Mode) {
    let stack = Stack::start(mode).await;
    let evil = stack.register_source("hijack", HIJACK, "hijack").await;
    let victim = stack.register_source("victim", VICTIM, "victim").await;
    assert_result(
        &call(&stack, victim, json!([0])).await,
        json!({"b": 0, "n": 1}),
    );
    let attacks: Vec<_> = (0..50)
        .map(|_| stack.execute_json(evil, json!([]), json!({})))
        .collect();
    for tid in futures::future::join_all(attacks).await {
        // What the attacker's own tasks end as is its own business; they must end.
        stack.wait_result(tid).await;
    }
    let tasks: Vec<_> = (0..200)
        .map(|i| stack.execute_json(victim, json!([i]), json!({})))
        .collect();
    let tids = futures::future::join_all(tasks).await;
    for (i, tid) in tids.into_iter().enumerate() {
        let reply = stack.wait_result(tid).await;
        assert_result(&reply, json!({"b": i, "n": i.to_string().len()}));
        let task = stack.task(tid).await;
        assert!(
            !task.to_string().contains("hijacked"),
            "task {i} of the victim shows the attacker: {task}"
        );
    }
}

const ATTACK: &str = r#"
import os

def attack(pids):
    out = {"env": dict(os.environ), "kills": {}}
    try:
        os.kill(os.getppid(), 9)
        out["kills"]["ppid"] = "sent"
    except OSError as e:
        out["kills"]["ppid"] = type(e).__name__
    for pid in pids:
        try:
            os.kill(pid, 9)
            out["kills"][str(pid)] = "sent"
        except OSError as e:
            out["kills"][str(pid)] = type(e).__name__
    return out
"#;

/// Children of `pid` (the executor daemon's sandboxes), looked up from the stack's own process.
fn children_of(pid: u32) -> Vec<u32> {
    let mut kids = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let text = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            kids.extend(
                text.split_whitespace()
                    .filter_map(|k| k.parse::<u32>().ok()),
            );
        }
    }
    kids
}

/// A gateway with `Authorization: Bearer`, which the stack's helpers do not send.
async fn authed(stack: &Stack, token: &str, path: &str, body: Option<Value>) -> Value {
    let req = match body {
        Some(b) => stack.client().post(stack.url(path)).json(&b),
        None => stack.client().get(stack.url(path)),
    };
    let resp = req.bearer_auth(token).send().await.expect("request");
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.json().await.expect("JSON reply")
}

async fn authed_call(stack: &Stack, token: &str, fid: &str, args: Value) -> Value {
    let body = json!({"function_id": fid, "args": args, "kwargs": {}});
    let tid = authed(stack, token, "/execute_function", Some(body)).await["task_id"]
        .as_str()
        .expect("task id")
        .to_owned();
    for _ in 0..60 {
        let reply = authed(stack, token, &format!("/result/{tid}?wait=5000"), None).await;
        if reply["status"] == "COMPLETED" || reply["status"] == "FAILED" {
            return reply;
        }
    }
    panic!("task {tid} did not finish");
}

async fn secrets_and_daemons_are_out_of_reach(mode: Mode) {
    let token = "isolation-secret-token";
    let mut stack = Stack::builder(mode)
        .env("FAAS_TOKEN", token)
        .env("FAAS_PASSED", "visible")
        .env("FAAS_NOT_PASSED", "hidden")
        .dispatcher_args(&["--pass-env", "FAAS_PASSED"])
        .worker_args(&["--pass-env", "FAAS_PASSED"])
        .start()
        .await;
    let redis_url = stack.redis_url();
    let register = |name: &str, source: &str, entry: &str| json!({"name": name, "source": source, "entrypoint": entry});
    let victim = authed(
        &stack,
        token,
        "/register_function",
        Some(register("victim", VICTIM, "victim")),
    )
    .await["function_id"]
        .as_str()
        .expect("function id")
        .to_owned();
    let attack = authed(
        &stack,
        token,
        "/register_function",
        Some(register("attack", ATTACK, "attack")),
    )
    .await["function_id"]
        .as_str()
        .expect("function id")
        .to_owned();
    // The victim has a warm child before the attack.
    let first = authed_call(&stack, token, &victim, json!([1])).await;
    assert_eq!(first["result"], json!({"b": 1, "n": 1}), "{first}");

    // Only pids of the stack this test started: its daemons and the executor's children.
    let mut daemons = vec![stack.gateway().pid()];
    if let Some(d) = stack.dispatcher() {
        daemons.push(d.pid());
    }
    for i in 0..stack.worker_count() {
        daemons.push(stack.worker(i).pid());
    }
    let executor = match mode {
        Mode::Local => stack.dispatcher().expect("dispatcher").pid(),
        _ => stack.worker(0).pid(),
    };
    let sandboxes = children_of(executor);
    assert!(!sandboxes.is_empty(), "the executor daemon has no children");
    let mut targets = daemons.clone();
    targets.extend(&sandboxes);
    let reply = authed_call(&stack, token, &attack, json!([targets])).await;
    assert_eq!(reply["status"], "COMPLETED", "{reply}");
    let env = &reply["result"]["env"];
    for secret in [
        "FAAS_TOKEN",
        "FAAS_REDIS_URL",
        "FAAS_NOT_PASSED",
        "FAAS_PYTHON",
    ] {
        assert!(
            env.get(secret).is_none(),
            "{secret} reached the function: {env}"
        );
    }
    assert!(
        !env.to_string().contains(token),
        "the token reached the function: {env}"
    );
    assert!(
        !env.to_string().contains(&redis_url),
        "the Redis URL reached the function"
    );
    assert_eq!(
        env["FAAS_PASSED"], "visible",
        "--pass-env did not pass it: {env}"
    );

    stack.gateway().assert_running();
    if let Some(d) = stack.dispatcher() {
        d.assert_running();
    }
    for i in 0..stack.worker_count() {
        stack.worker(i).assert_running();
    }
    for pid in &sandboxes {
        assert!(
            !process_gone(*pid as i32),
            "sandbox {pid} was killed by another function: {}",
            reply["result"]["kills"]
        );
    }
    let again = authed_call(&stack, token, &victim, json!([2])).await;
    assert_eq!(again["result"], json!({"b": 2, "n": 1}), "{again}");
}

/// The function cache case of issue 11: more functions than any cache held, one slot, and the
/// first one again. A child that does not have a body is sent it; no task fails for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_twenty_functions_on_one_slot_all_run_again() {
    let stack = Stack::builder(Mode::Local)
        .procs(1)
        .dispatcher_args(&["--max-children", "16"])
        .start()
        .await;
    let mut fids = Vec::new();
    for i in 0..520 {
        let source = format!("def f(x):\n    return x + {i}\n");
        fids.push(stack.register_source(&format!("f{i}"), &source, "f").await);
    }
    for chunk in fids.chunks(40).map(<[_]>::to_vec) {
        let tids: Vec<_> = chunk
            .iter()
            .map(|fid| stack.execute_json(*fid, json!([1000]), json!({})))
            .collect();
        let tids = futures::future::join_all(tids).await;
        for tid in tids {
            let reply = stack.wait_result(tid).await;
            assert_eq!(reply["status"], "COMPLETED", "{reply}");
        }
    }
    for i in [0usize, 1, 511, 512, 519] {
        assert_result(&call(&stack, fids[i], json!([1])).await, json!(1 + i));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_syntax_error_is_reported_on_every_call() {
    // The gateway refuses such source at registration; with the check off (or a function from
    // before the check) the executor must still report it on every call and stay healthy.
    let stack = Stack::builder(Mode::Local)
        .procs(1)
        .env("FAAS_NO_SYNTAX_CHECK", "true")
        .start()
        .await;
    let broken = stack
        .register_source("broken", "def f(:\n    return 1\n", "f")
        .await;
    let fine = stack
        .register_source("fine", "def f():\n    return 'fine'\n", "f")
        .await;
    for _ in 0..3 {
        let reply = call(&stack, broken, json!([])).await;
        assert_failed(&reply, "SyntaxError");
        assert_result(&call(&stack, fine, json!([])).await, json!("fine"));
    }
}

const LIMITS: &str = r#"
import os, subprocess, time

def grab(n):
    return len(bytearray(n))

def loud(lines):
    line = "x" * 999
    for _ in range(lines):
        print(line)
    return "printed"

def big(n):
    return "x" * n

def spawn(how):
    if how == "check":
        # Everything but this child and bwrap's init is gone from the namespace.
        deadline = time.time() + 1
        while True:
            left = [p for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, os.getpid())]
            if not left or time.time() > deadline:
                return left
            time.sleep(0.02)
    pids = [subprocess.Popen(["sleep", "300"]).pid for _ in range(5)]
    pids.append(subprocess.Popen(["sleep", "300"], start_new_session=True).pid)
    r, w = os.pipe()
    first = os.fork()
    if first == 0:
        os.setsid()
        if os.fork() == 0:
            os.write(w, b"%d" % os.getpid())
            time.sleep(300)
        os._exit(0)
    os.waitpid(first, 0)
    pids.append(int(os.read(r, 32)))
    return pids

def fork_many(n):
    procs = []
    try:
        for _ in range(n):
            procs.append(subprocess.Popen(["sleep", "30"]))
    except OSError as e:
        return {"started": len(procs), "error": type(e).__name__}
    return {"started": len(procs), "error": None}
"#;

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_output_and_result_limits_hold_and_the_slot_recovers() {
    let mut stack = Stack::builder(Mode::Local).procs(1).start().await;
    let grab = stack.register_source("grab", LIMITS, "grab").await;
    let loud = stack.register_source("loud", LIMITS, "loud").await;
    let big = stack.register_source("big", LIMITS, "big").await;

    assert_failed(
        &call(&stack, grab, json!([3u64 << 30])).await,
        "MemoryError",
    );
    assert_result(&call(&stack, grab, json!([1000])).await, json!(1000));

    // Warm both paths first, so RSS compares like with like.
    call(&stack, loud, json!([10])).await;
    call(&stack, big, json!([10])).await;
    let daemons = [
        ("gateway", stack.gateway().pid()),
        ("dispatcher", stack.dispatcher().expect("dispatcher").pid()),
    ];
    let before: Vec<u64> = daemons.iter().map(|(_, p)| vm_rss_kib(*p)).collect();
    // 50 MB of print: the log keeps 1 MiB and says what was cut.
    let tid = stack.execute_json(loud, json!([50_000]), json!({})).await;
    let reply = stack.wait_result(tid).await;
    assert_result(&reply, json!("printed"));
    let log = stack.task(tid).await["log"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(log.len() <= (1 << 20) + 200, "log of {} bytes", log.len());
    assert!(
        log.trim_end().ends_with("the limit is 1048576 bytes]")
            && log.contains("bytes of output cut"),
        "no cut notice at the end of the log: {:?}",
        &log[log.len().saturating_sub(200)..]
    );
    // 17 MiB of result: refused in the child.
    assert_failed(
        &call(&stack, big, json!([17 << 20])).await,
        "ResultTooLarge",
    );
    for ((name, pid), before) in daemons.iter().zip(before) {
        let after = vm_rss_kib(*pid);
        assert!(
            after <= before + 8 * 1024,
            "{name} grew from {before} KiB to {after} KiB"
        );
    }
    assert_result(&call(&stack, big, json!([3])).await, json!("xxx"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_and_setsid_processes_die_with_the_task_in_the_sandbox() {
    let stack = Stack::builder(Mode::Local).procs(1).start().await;
    let spawn = stack.register_source("spawn", LIMITS, "spawn").await;
    let reply = call(&stack, spawn, json!(["spawn"])).await;
    assert_eq!(reply["status"], "COMPLETED", "{reply}");
    assert_eq!(reply["result"].as_array().map(Vec::len), Some(7), "{reply}");
    // The same function's next task runs in the same sandbox and sees what is left there.
    assert_result(&call(&stack, spawn, json!(["check"])).await, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_and_setsid_processes_die_with_the_task_without_a_sandbox() {
    let stack = Stack::builder(Mode::Local)
        .procs(1)
        .dispatcher_args(&["--sandbox", "none"])
        .start()
        .await;
    let spawn = stack.register_source("spawn", LIMITS, "spawn").await;
    let reply = call(&stack, spawn, json!(["spawn"])).await;
    assert_eq!(reply["status"], "COMPLETED", "{reply}");
    // Without a sandbox these are host pids: processes this test's stack started.
    let pids: Vec<i32> = reply["result"]
        .as_array()
        .expect("pids")
        .iter()
        .map(|p| p.as_i64().expect("pid") as i32)
        .collect();
    assert_eq!(pids.len(), 7, "{reply}");
    let gone = wait_until(Duration::from_secs(1), async || {
        pids.iter().all(|p| process_gone(*p))
    })
    .await;
    let left: Vec<_> = pids.iter().filter(|p| !process_gone(**p)).collect();
    assert!(gone, "processes outlived their task: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_process_limit_binds_in_the_sandbox() {
    let stack = Stack::builder(Mode::Local)
        .procs(1)
        .dispatcher_args(&["--max-processes", "16"])
        .start()
        .await;
    let fork = stack.register_source("fork", LIMITS, "fork_many").await;
    let reply = call(&stack, fork, json!([100])).await;
    assert_eq!(reply["status"], "COMPLETED", "{reply}");
    let started = reply["result"]["started"].as_u64().expect("count");
    assert!(
        (1..16).contains(&started),
        "started {started} processes under a limit of 16: {reply}"
    );
    assert_eq!(reply["result"]["error"], "BlockingIOError", "{reply}");
    // They were killed at the task's end, so the next task can start as many again.
    let again = call(&stack, fork, json!([3])).await;
    assert_eq!(
        again["result"],
        json!({"started": 3, "error": null}),
        "{again}"
    );
}

const CONNECT: &str = r#"
import socket

def connect(ports):
    out = []
    for port in ports:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            out.append("connected")
        except OSError as e:
            out.append(type(e).__name__)
    return out
"#;

/// A sandbox has a network of its own by default, only a loopback: a function reaches none of
/// the machine's services, the platform's own gateway (here without a token, as `faas up` runs
/// it: on the host's network a function could list and cancel every task) and Redis on
/// 127.0.0.1 included. `--sandbox-net host` (alias `shared`) shares the host's network, with a
/// warning at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_sandbox_reaches_no_service_of_the_machine() {
    for net in [None, Some("host"), Some("shared")] {
        let mut builder = Stack::builder(Mode::Local).procs(1);
        if let Some(net) = net {
            builder = builder.dispatcher_args(&["--sandbox-net", net]);
        }
        let mut stack = builder.start().await;
        let redis_port: u16 = stack
            .redis_url()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("redis port");
        let gateway_port: u16 = stack
            .base_url()
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse().ok())
            .expect("gateway port");
        let fid = stack.register_source("connect", CONNECT, "connect").await;
        let reply = call(&stack, fid, json!([[redis_port, gateway_port]])).await;
        let expected = match net {
            None => json!(["ConnectionRefusedError", "ConnectionRefusedError"]),
            Some(_) => json!(["connected", "connected"]),
        };
        assert_result(&reply, expected);
        let dispatcher = stack.dispatcher().expect("dispatcher");
        assert_eq!(
            dispatcher.logged(|e| e.is("sandbox_net_host")),
            net.is_some(),
            "--sandbox-net {net:?}: {}",
            dispatcher.log_tail(20)
        );
    }
}

const FILL: &str = r#"
import os

def fill(mib):
    out = {}
    chunk = b"x" * (1 << 20)
    written = 0
    try:
        with open("/tmp/fill", "wb") as f:
            for _ in range(mib):
                f.write(chunk)
                f.flush()
                written += 1
        out["/tmp"] = "all written"
    except OSError as e:
        out["/tmp"] = "errno %d" % e.errno
    out["/tmp MiB"] = written
    os.remove("/tmp/fill")
    for path in ["/x", "/dev/x", "/dev/shm/x"]:
        try:
            open(path, "wb").close()
            out[path] = "written"
        except OSError as e:
            out[path] = "refused"
    out["oom_score_adj"] = open("/proc/self/oom_score_adj").read().strip()
    out["nice"] = os.nice(0)
    return out
"#;

/// A sandbox's one writable place is its /tmp, a tmpfs, so memory: it is sized
/// (`--tmp-size`), and the tmpfs bwrap builds the sandbox from (its root, /dev, /dev/shm) are
/// read-only. Before, a task filled 3 GiB of the machine's memory through /tmp, kept while
/// its child stayed warm. The kernel's out-of-memory killer also takes a task's child first,
/// and children run at nice 10.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_cannot_fill_memory_through_the_sandbox_filesystems() {
    let stack = Stack::builder(Mode::Local)
        .procs(1)
        .dispatcher_args(&["--tmp-size", "8MiB"])
        .start()
        .await;
    let fid = stack.register_source("fill", FILL, "fill").await;
    let reply = call(&stack, fid, json!([32])).await;
    let r = &reply["result"];
    assert_eq!(r["/tmp"], "errno 28", "no space left on device: {reply}");
    assert!(r["/tmp MiB"].as_u64().unwrap() <= 8, "{reply}");
    for path in ["/x", "/dev/x", "/dev/shm/x"] {
        assert_eq!(r[path], "refused", "{path}: {reply}");
    }
    assert_eq!(r["oom_score_adj"], "1000", "{reply}");
    // And a task that spins every core yields the CPU to Redis and the daemons.
    assert_eq!(r["nice"], 10, "{reply}");
    // The child stays usable: its /tmp was emptied and takes writes again.
    let again = call(&stack, fid, json!([4])).await;
    assert_eq!(again["result"]["/tmp"], "all written", "{again}");
}

/// Resident memory of every process below `pid` (the executor daemon's children), in bytes.
fn resident_below(pid: u32) -> u64 {
    descendants(pid)
        .into_iter()
        .map(|p| {
            let statm = std::fs::read_to_string(format!("/proc/{p}/statm")).unwrap_or_default();
            let pages: u64 = statm
                .split_whitespace()
                .nth(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            pages * 4096
        })
        .sum()
}

/// Each function keeps 200 MiB in a module global while its child is warm.
const HOARD: &str = "HOARD = b'x' * (200 << 20)\n\ndef hoard():\n    return len(HOARD) >> 20\n";

/// Idle children together hold at most `--max-idle-memory`: past it the least recently used
/// warm ones are stopped. Before, only their number was capped (`--max-children`, 128), so a
/// few functions that keep memory while warm held it all, on the machine, for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_children_hold_no_more_than_the_idle_memory_budget() {
    const BUDGET: u64 = 500 << 20;
    let mut stack = Stack::builder(Mode::Local)
        .procs(1)
        .dispatcher_args(&["--max-idle-memory", "500MiB"])
        .start()
        .await;
    let mut fids = Vec::new();
    for name in ["hoard_a", "hoard_b", "hoard_c"] {
        let fid = stack.register_source(name, HOARD, "hoard").await;
        let reply = call(&stack, fid, json!([])).await;
        assert_result(&reply, json!(200));
        fids.push(fid);
    }
    let dispatcher = stack.dispatcher().expect("dispatcher");
    let pid = dispatcher.pid();
    // Three warm children of ~215 MiB each and a spare: ~660 MiB without a budget. Within it,
    // two and the spare stay (~450 MiB), leaving room for the few MiB of the bwrap processes
    // this sum counts and the budget does not.
    let within = wait_until(Duration::from_secs(10), async || {
        resident_below(pid) <= BUDGET
    })
    .await;
    assert!(
        within,
        "idle children hold {} MiB, over the 500 MiB budget:\n{}",
        resident_below(pid) >> 20,
        dispatcher.log_tail(20)
    );
    assert!(
        dispatcher.logged(|e| e.is("idle_children_stopped")),
        "{}",
        dispatcher.log_tail(20)
    );
    // A stopped function starts again on its next call.
    let again = call(&stack, fids[0], json!([])).await;
    assert_result(&again, json!(200));
}

/// Processes below `pid` that are stopped (state `T`).
fn stopped_below(pid: u32) -> Vec<u32> {
    descendants(pid)
        .into_iter()
        .filter(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            stat.rsplit(") ")
                .next()
                .and_then(|rest| rest.chars().next())
                == Some('T')
        })
        .collect()
}

/// Its first call leaves a thread running in the child, which counts while it runs.
const LINGER: &str = "import threading, time\n\nTICKS = [0]\n\ndef spin():\n    while True:\n        TICKS[0] += 1\n        time.sleep(0.001)\n\ndef linger():\n    if not any(t.name == 'spinner' for t in threading.enumerate()):\n        threading.Thread(target=spin, name='spinner', daemon=True).start()\n    return TICKS[0]\n";

/// A warm child waiting for its function's next task is frozen (SIGSTOP) after a second, so a
/// thread a task left behind does not run between tasks, taking CPU from other functions'
/// tasks for as long as the child stays warm; the next task thaws it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_warm_child_is_frozen_and_thawed_for_its_next_task() {
    let mut stack = Stack::builder(Mode::Local).procs(1).start().await;
    let fid = stack.register_source("linger", LINGER, "linger").await;
    let first = call(&stack, fid, json!([])).await;
    assert_eq!(first["status"], "COMPLETED", "{first}");
    let dispatcher = stack.dispatcher().expect("dispatcher");
    let pid = dispatcher.pid();
    // The warm child stops; the spare, which never ran a task, does not.
    let frozen = wait_until(Duration::from_secs(10), async || {
        stopped_below(pid).len() == 1
    })
    .await;
    assert!(
        frozen,
        "stopped below the dispatcher: {:?}\n{}",
        stopped_below(pid),
        dispatcher.log_tail(20)
    );
    let again = call(&stack, fid, json!([])).await;
    assert_eq!(again["status"], "COMPLETED", "{again}");
    assert!(again["result"].as_u64().unwrap() > 0, "{again}");
}

/// Without a sandbox the environment is cleared all the same: `PYTHONPATH` and `--pass-env`
/// names only (plus a fixed PATH, HOME and LANG).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_is_cleared_without_a_sandbox_too() {
    let stack = Stack::builder(Mode::Local)
        .procs(1)
        .env("FAAS_PASSED", "visible")
        .env("FAAS_NOT_PASSED", "hidden")
        .env("PYTHONPATH", "/nonexistent-faas-path")
        .dispatcher_args(&["--sandbox", "none", "--pass-env", "FAAS_PASSED"])
        .start()
        .await;
    let source = "import os\ndef env():\n    return dict(os.environ)\n";
    let fid = stack.register_source("env", source, "env").await;
    let reply = call(&stack, fid, json!([])).await;
    assert_eq!(reply["status"], "COMPLETED", "{reply}");
    let mut names: Vec<&str> = reply["result"]
        .as_object()
        .expect("environment")
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["FAAS_PASSED", "HOME", "LANG", "PATH", "PYTHONPATH"],
        "{reply}"
    );
    assert_eq!(reply["result"]["PYTHONPATH"], "/nonexistent-faas-path");
}
