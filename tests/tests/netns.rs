//! Across machines: Redis, gateway and a keyed dispatcher in one network namespace, two workers
//! in two others, joined by veth pairs with private addresses that exist only inside those
//! namespaces. 500 tasks run while one worker's link is cut and restored: every task completes
//! exactly once, the cut worker is declared lost and rejoins.
//!
//! Needs root (CI runs as root); where namespaces cannot be made the test says why and skips.
//! Namespaces and veths are named per run and removed by a guard on every exit path.

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use faas_protocol::worker_key::WorkerKey;
use faas_protocol::Keys;
use faas_tests::{bin, python, wait_until, Daemon, Mode, TestDir};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

faas_tests::remote_modes!(tasks_survive_a_cut_worker_link_across_namespaces);

const TASKS: usize = 500;
const D_ADDR: &str = "10.213.1.1";
const REDIS_PORT: &str = "6379";
const GATEWAY: &str = "127.0.0.1:8000";

/// Runs `ip ARGS`; the error says what failed.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Three namespaces (`d`ispatcher side, workers `a` and `b`) and two veth pairs, d↔a and d↔b.
/// Dropping it deletes them all (a veth goes with its namespace; any end left in this
/// namespace by a half-done set-up is deleted by name).
struct Net {
    tag: String,
    made: Vec<String>,
}

impl Net {
    fn ns(&self, side: &str) -> String {
        format!("{}{side}", self.tag)
    }

    fn create() -> Result<Self, String> {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let tag = format!(
            "fx{:04x}{}",
            std::process::id() & 0xffff,
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let mut net = Net {
            tag,
            made: Vec::new(),
        };
        for side in ["d", "a", "b"] {
            let ns = net.ns(side);
            ip(&["netns", "add", &ns])?;
            net.made.push(ns.clone());
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        let (d, a, b) = (net.ns("d"), net.ns("a"), net.ns("b"));
        for (w, dev_d, dev_w, subnet) in [(&a, "d1", "a1", "1"), (&b, "d2", "b1", "2")] {
            let (dev_d, dev_w) = (format!("{}{dev_d}", net.tag), format!("{}{dev_w}", net.tag));
            ip(&[
                "link", "add", &dev_d, "netns", &d, "type", "veth", "peer", "name", &dev_w,
                "netns", w,
            ])?;
            ip(&[
                "-n",
                &d,
                "addr",
                "add",
                &format!("10.213.{subnet}.1/24"),
                "dev",
                &dev_d,
            ])?;
            ip(&[
                "-n",
                w,
                "addr",
                "add",
                &format!("10.213.{subnet}.2/24"),
                "dev",
                &dev_w,
            ])?;
            ip(&["-n", &d, "link", "set", &dev_d, "up"])?;
            ip(&["-n", w, "link", "set", &dev_w, "up"])?;
        }
        // Worker b reaches the dispatcher's address on the other link through d.
        ip(&[
            "-n",
            &b,
            "route",
            "add",
            "10.213.1.0/24",
            "via",
            "10.213.2.1",
        ])?;
        Ok(net)
    }

    /// Worker a's end of its link, for cutting.
    fn link_a(&self, state: &str) -> Result<(), String> {
        ip(&[
            "-n",
            &self.ns("a"),
            "link",
            "set",
            &format!("{}a1", self.tag),
            state,
        ])
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in &self.made {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("cleanup: {e}");
            }
        }
        for dev in ["d1", "d2", "a1", "b1"] {
            let _ = ip(&["link", "del", &format!("{}{dev}", self.tag)]);
        }
    }
}

/// A daemon started inside namespace `ns` (`ip netns exec` execs it: the pid is the daemon's).
fn spawn_in(ns: &str, name: &str, program: &Path, args: &[&str], dir: &TestDir) -> Daemon {
    let mut full = vec!["netns", "exec", ns, program.to_str().expect("utf-8 path")];
    full.extend(args);
    Daemon::spawn(name, "ip", &full, &[], dir.path())
}

/// Submits the tasks from inside namespace d, waits for each result, and prints progress
/// (`done N`) and then a summary as JSON.
const DRIVER: &str = r#"
import collections, json, sys, time, urllib.request
base, n = "http://" + sys.argv[1], int(sys.argv[2])
def call(method, path, body=None, timeout=30):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())
src = "import time\ndef work(i):\n    time.sleep(0.05)\n    return i * 2\n"
fid = call("POST", "/register_function", {"name": "work", "source": src, "entrypoint": "work"})["function_id"]
tids = [call("POST", "/execute_function", {"function_id": fid, "args": [i], "kwargs": {}})["task_id"] for i in range(n)]
print("submitted", flush=True)
deadline = time.time() + 240
wrong, attempts, workers = [], collections.Counter(), collections.Counter()
for i, tid in enumerate(tids):
    while True:
        r = call("GET", "/result/%s?wait=10000" % tid, timeout=40)
        if r["status"] in ("COMPLETED", "FAILED") or time.time() > deadline:
            break
    if r["status"] != "COMPLETED" or r.get("result") != i * 2:
        wrong.append(r)
    rec = call("GET", "/tasks/" + tid)
    attempts[rec["attempts"]] += 1
    workers[rec["worker"]] += 1
    if (i + 1) % 20 == 0:
        print("done", i + 1, flush=True)
print(json.dumps({"wrong": wrong[:5], "wrong_count": len(wrong), "attempts": attempts, "workers": workers}), flush=True)
"#;

async fn tasks_survive_a_cut_worker_link_across_namespaces(mode: Mode) {
    let net = match Net::create() {
        Ok(net) => net,
        Err(why) => {
            eprintln!(
                "skipping the cross-namespace test: cannot create network namespaces ({why})"
            );
            return;
        }
    };
    let dir = TestDir::new();
    let key = dir.path().join("worker.key");
    std::fs::write(&key, WorkerKey::generate().to_file_text()).expect("key");
    let key = key.to_string_lossy().into_owned();
    let (d, a, b) = (net.ns("d"), net.ns("a"), net.ns("b"));
    let redis_url = format!("redis://127.0.0.1:{REDIS_PORT}");
    let redis_dir = dir.path().to_string_lossy().into_owned();
    let redis_server = Path::new("/usr/bin/redis-server");
    let redis_server = if redis_server.exists() {
        redis_server.to_path_buf()
    } else {
        Path::new("redis-server").to_path_buf()
    };
    // Declared after `net`, so every process stops before the namespaces go.
    let mut redis = spawn_in(
        &d,
        "redis",
        &redis_server,
        &[
            "--port",
            REDIS_PORT,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &redis_dir,
        ],
        &dir,
    );
    let pinged = wait_until(Duration::from_secs(20), async || {
        let out = tokio::process::Command::new("ip")
            .args(["netns", "exec", &d, "redis-cli", "-p", REDIS_PORT, "ping"])
            .output()
            .await;
        matches!(out, Ok(o) if String::from_utf8_lossy(&o.stdout).contains("PONG"))
    })
    .await;
    assert!(
        pinged,
        "redis did not start in {d}:\n{}",
        redis.log_tail(20)
    );
    let _gateway = spawn_in(
        &d,
        "gateway",
        &bin("faas-gateway"),
        &["--listen", GATEWAY, "--redis", &redis_url],
        &dir,
    );
    let mut dispatcher = spawn_in(
        &d,
        "dispatcher",
        &bin("faas-dispatcher"),
        &[
            "-m",
            mode.as_str(),
            "--bind",
            D_ADDR,
            "-p",
            "5555",
            "--redis",
            &redis_url,
            "--worker-key-file",
            &key,
            "--heartbeat-ms",
            "300",
            "--reclaim-after-ms",
            "2000",
        ],
        &dir,
    );
    let endpoint = format!("tcp://{D_ADDR}:5555");
    let py = python().to_string_lossy().into_owned();
    let worker = |ns: &str, id: &str| {
        spawn_in(
            ns,
            id,
            &bin("faas-worker"),
            &[
                mode.as_str(),
                "2",
                &endpoint,
                "--python",
                &py,
                "--worker-key-file",
                &key,
                "--id",
                id,
                "--heartbeat-ms",
                "300",
            ],
            &dir,
        )
    };
    let wa = worker(&a, "wa");
    let _wb = worker(&b, "wb");
    let joined = |d: &Daemon, id: &str| {
        d.count_events(|e| e.is("worker_joined") && e.field("worker") == Some(id))
    };
    let both = wait_until(Duration::from_secs(30), async || {
        joined(&dispatcher, "wa") >= 1 && joined(&dispatcher, "wb") >= 1
    })
    .await;
    assert!(both, "workers did not join:\n{}", dispatcher.log_tail(30));

    let mut driver = tokio::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &d,
            &py,
            "-c",
            DRIVER,
            GATEWAY,
            &TASKS.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start the driver");
    let mut lines = BufReader::new(driver.stdout.take().expect("stdout")).lines();
    let mut next_line = async || {
        tokio::time::timeout(Duration::from_secs(120), lines.next_line())
            .await
            .expect("the driver went silent")
            .expect("read the driver")
    };
    // Cut worker a's link once the run is well under way.
    loop {
        let line = next_line().await.expect("the driver ended early");
        if line == "done 60" {
            break;
        }
    }
    net.link_a("down").expect("cut the link");
    let lost = dispatcher
        .wait_for_event(Duration::from_secs(30), |e| {
            e.is("worker_lost") && e.field("worker") == Some("wa")
        })
        .await;
    assert!(
        lost,
        "wa was not declared lost:\n{}",
        dispatcher.log_tail(30)
    );
    net.link_a("up").expect("restore the link");
    let rejoined = wait_until(Duration::from_secs(60), async || {
        joined(&dispatcher, "wa") >= 2
    })
    .await;
    assert!(
        rejoined,
        "wa did not rejoin:\n{}\n{}",
        dispatcher.log_tail(20),
        wa.log_tail(20)
    );
    let mut summary = String::new();
    while let Some(line) = next_line().await {
        summary = line;
    }
    let status = tokio::time::timeout(Duration::from_secs(30), driver.wait())
        .await
        .expect("the driver ends")
        .expect("driver status");
    assert!(status.success(), "driver failed: {summary}");
    let summary: Value = serde_json::from_str(&summary).expect("summary JSON");
    eprintln!("{} across namespaces: {summary}", mode.as_str());
    assert_eq!(
        summary["wrong_count"], 0,
        "tasks with a wrong outcome: {summary}"
    );
    // Exactly once: the stats count one completion per task, never a second.
    let out = tokio::process::Command::new("ip")
        .args(["netns", "exec", &d, "redis-cli", "-p", REDIS_PORT, "HGET"])
        .arg(Keys::default().stats())
        .arg("completed")
        .output()
        .await
        .expect("redis-cli");
    let completed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(
        completed,
        TASKS.to_string(),
        "completions recorded: {summary}"
    );
    assert!(summary["workers"]["wb"].as_u64() > Some(0), "{summary}");
    assert!(
        summary["attempts"]["2"].as_u64().unwrap_or(0) > 0
            || dispatcher.logged(|e| e.is("requeued")),
        "{summary}"
    );
    dispatcher.assert_running();
    redis.assert_running();
}
