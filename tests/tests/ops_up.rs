//! `faas up`: one command starts a working platform (private Redis, gateway, dispatcher),
//! restarts a daemon that dies, and on SIGTERM (or its own death by SIGKILL) stops every
//! process it started. Its data survives a restart of `faas up` and a killed Redis.
//!
//! Every `faas up` here runs with `XDG_DATA_HOME` inside the test's directory, so the default
//! data directory is a temporary one, never the real home's.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use faas_tests::{bin, descendants, free_port, process_gone, python, wait_until, Daemon, TestDir};
use serde_json::{json, Value};

/// `faas up` starts Redis, the gateway and a dispatcher with Python children: give it time on a
/// busy machine.
const UP_TIMEOUT: Duration = Duration::from_secs(60);

/// The `XDG_DATA_HOME` every `faas up` of a test gets: inside the test's directory.
fn xdg_data_home(dir: &TestDir) -> std::path::PathBuf {
    dir.path().join("xdg-data")
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// `faas up --no-console` on a free port, its output in the test dir's `faas-up.log`.
struct Up {
    daemon: Daemon,
    url: String,
    client: reqwest::Client,
}

impl Up {
    async fn start(dir: &TestDir, extra: &[&str]) -> Up {
        Self::start_named(dir, "faas-up", extra).await
    }

    /// Like [`Up::start`], logging to `<name>.log` (a second run in one test gets its own log).
    async fn start_named(dir: &TestDir, name: &str, extra: &[&str]) -> Up {
        let listen = format!("127.0.0.1:{}", free_port());
        let py = python().to_string_lossy().into_owned();
        let mut args = vec![
            "up",
            "--no-console",
            "--listen",
            &listen,
            "--procs",
            "1",
            "--python",
            &py,
        ];
        args.extend_from_slice(extra);
        let env = [(
            "XDG_DATA_HOME".to_owned(),
            xdg_data_home(dir).to_string_lossy().into_owned(),
        )];
        let daemon = Daemon::spawn(name, bin("faas"), &args, &env, dir.path());
        let url = format!("http://{listen}");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let mut up = Up {
            daemon,
            url,
            client,
        };
        // Ready means every daemon was started, not only that the gateway answers.
        let ready = wait_until(UP_TIMEOUT, async || {
            up.daemon.assert_running();
            up.daemon.log_tail(200).contains("faas up: ready") && up.healthy().await
        })
        .await;
        assert!(
            ready,
            "faas up was not ready within {UP_TIMEOUT:?}:\n{}",
            up.daemon.log_tail(40)
        );
        up
    }

    async fn healthy(&self) -> bool {
        let healthz = format!("{}/healthz", self.url);
        matches!(self.client.get(&healthz).send().await, Ok(r) if r.status().is_success())
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let resp = self
            .client
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .expect("POST");
        assert!(resp.status().is_success(), "POST {path}: {}", resp.status());
        resp.json().await.expect("JSON reply")
    }

    async fn get(&self, path: &str) -> Value {
        let resp = self
            .client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("GET");
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        resp.json().await.expect("JSON reply")
    }

    /// The ids of the registered functions.
    async fn function_ids(&self) -> Vec<String> {
        let list = self.get("/functions").await;
        list.as_array()
            .expect("a list")
            .iter()
            .map(|f| f["function_id"].as_str().expect("function_id").to_owned())
            .collect()
    }

    /// The result of task `tid` once it ended (long polls through restarts); `what` names it
    /// in the failure message.
    async fn finished(&self, tid: &str, what: &str) -> Value {
        let mut reply = Value::Null;
        let done = wait_until(UP_TIMEOUT, async || {
            let url = format!("{}/result/{tid}?wait=5000", self.url);
            reply = match self.client.get(&url).send().await {
                Ok(r) => r.json().await.unwrap_or(Value::Null),
                Err(_) => Value::Null,
            };
            matches!(reply["status"].as_str(), Some("COMPLETED" | "FAILED"))
        })
        .await;
        assert!(
            done,
            "task {what}({tid}) not finished: {reply}\n{}",
            self.daemon.log_tail(40)
        );
        reply
    }

    /// Registers `add` and runs it to completion; returns the function and task ids.
    async fn run_a_task(&self) -> (String, String) {
        let f = self
            .post(
                "/register_function",
                json!({"name": "add", "source": "def add(a, b):\n    return a + b\n", "entrypoint": "add"}),
            )
            .await;
        let t = self
            .post(
                "/execute_function",
                json!({"function_id": f["function_id"], "args": [20, 22]}),
            )
            .await;
        let tid = t["task_id"].as_str().expect("task_id");
        let reply = self.finished(tid, "").await;
        assert_eq!(reply["status"], "COMPLETED", "{reply}");
        assert_eq!(reply["result"], json!(42));
        let fid = f["function_id"].as_str().expect("function_id").to_owned();
        (fid, tid.to_owned())
    }

    /// What a function meets when it connects to this `faas up`'s gateway from its sandbox:
    /// "connected", or the name of the error.
    async fn a_function_dials_the_gateway(&self) -> String {
        let port: u16 = self
            .url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("gateway port");
        let source = "import socket\n\ndef dial(port):\n    try:\n        socket.create_connection(('127.0.0.1', port), timeout=2).close()\n        return 'connected'\n    except OSError as e:\n        return type(e).__name__\n";
        let f = self
            .post(
                "/register_function",
                json!({"name": "dial", "source": source, "entrypoint": "dial"}),
            )
            .await;
        let t = self
            .post(
                "/execute_function",
                json!({"function_id": f["function_id"], "args": [port]}),
            )
            .await;
        let reply = self
            .finished(t["task_id"].as_str().expect("task_id"), "dial")
            .await;
        assert_eq!(reply["status"], "COMPLETED", "{reply}");
        reply["result"].as_str().expect("a string").to_owned()
    }

    fn children_named(&self, name: &str) -> Vec<u32> {
        descendants(self.daemon.pid())
            .into_iter()
            .filter(|p| comm(*p) == name)
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_runs_a_stack_and_sigterm_stops_everything_it_started() {
    let dir = TestDir::new();
    let mut up = Up::start(&dir, &[]).await;
    up.run_a_task().await;
    // The gateway has no token here, as faas up runs it by default: a function that reached
    // it could list and cancel every task. Its sandbox has a network of its own.
    assert_eq!(
        up.a_function_dials_the_gateway().await,
        "ConnectionRefusedError"
    );

    let started = descendants(up.daemon.pid());
    let names: Vec<String> = started.iter().map(|p| comm(*p)).collect();
    for expected in ["redis-server", "faas-gateway", "faas-dispatcher"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not among {names:?}"
        );
    }
    let log = std::fs::read_to_string(up.daemon.log_path()).unwrap();
    assert!(log.contains("faas up: ready: gateway http://"), "{log}");
    // The private Redis is reachable by this user only: a 0700 socket, no TCP port.
    let redis_url = ready_redis_url(&log);
    let socket = redis_url
        .strip_prefix("unix://")
        .unwrap_or_else(|| panic!("redis is not on a unix socket: {redis_url}"));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(Path::new(socket)), 0o700, "{socket}");
    assert_eq!(mode(Path::new(socket).parent().unwrap()), 0o700, "{socket}");
    let mut con = redis::Client::open(redis_url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let port: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("port")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(port, ["port", "0"]);
    assert!(
        log.contains("gateway    | "),
        "daemon logs are not prefixed:\n{log}"
    );

    let status = up.daemon.stop().expect("faas up was running");
    assert!(status.success(), "faas up exited with {status}:\n{log}");
    for pid in &started {
        assert!(
            process_gone(*pid as i32),
            "{} (pid {pid}) outlived faas up",
            comm(*pid)
        );
    }
    let client = reqwest::Client::new();
    assert!(client
        .get(format!("{}/healthz", up.url))
        .send()
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_up_takes_its_daemons_with_it() {
    let dir = TestDir::new();
    let mut up = Up::start(&dir, &[]).await;
    let started = descendants(up.daemon.pid());
    assert!(!started.is_empty(), "faas up started nothing");
    up.daemon.kill9();
    // No handler of faas up runs on SIGKILL: the kernel's parent-death signal stops them.
    let all_gone = wait_until(Duration::from_secs(20), async || {
        started.iter().all(|p| process_gone(*p as i32))
    })
    .await;
    let left: Vec<String> = started
        .iter()
        .filter(|p| !process_gone(**p as i32))
        .map(|p| format!("{} ({p})", comm(*p)))
        .collect();
    assert!(all_gone, "still running after faas up was killed: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_restarts_a_daemon_that_dies() {
    let dir = TestDir::new();
    let mut up = Up::start(&dir, &[]).await;
    // The restart is also reported on the events channel, for the console's timeline.
    let log = std::fs::read_to_string(up.daemon.log_path()).unwrap();
    let redis_url = ready_redis_url(&log);
    let client = redis::Client::open(redis_url).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub
        .subscribe(faas_protocol::Keys::default().events())
        .await
        .unwrap();
    let old = up.children_named("faas-gateway");
    assert_eq!(old.len(), 1, "one gateway expected");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(old[0] as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();

    let back = wait_until(UP_TIMEOUT, async || {
        let fresh = up.children_named("faas-gateway");
        !fresh.is_empty() && fresh != old && up.healthy().await
    })
    .await;
    assert!(back, "gateway not restarted:\n{}", up.daemon.log_tail(30));
    let mut messages = pubsub.on_message();
    let mut heard = Vec::new();
    let reported = wait_until(UP_TIMEOUT, async || {
        let Ok(Some(msg)) = tokio::time::timeout(
            Duration::from_millis(200),
            futures::StreamExt::next(&mut messages),
        )
        .await
        else {
            return false;
        };
        let payload: String = msg.get_payload().unwrap();
        let ev = serde_json::from_str::<faas_protocol::event::Event>(&payload);
        heard.push(payload);
        matches!(ev, Ok(faas_protocol::event::Event::Daemon { name, state, exit, .. })
            if name == "gateway"
                && state == faas_protocol::event::DaemonState::Restarted
                && exit.as_deref() == Some("killed by SIGKILL"))
    })
    .await;
    assert!(reported, "no restart event; heard {heard:?}");
    up.run_a_task().await;
    let log = std::fs::read_to_string(up.daemon.log_path()).unwrap();
    assert!(log.contains("gateway exited unexpectedly"), "{log}");
    assert!(up.daemon.stop().expect("running").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_in_push_mode_runs_tasks_on_worker_processes() {
    let dir = TestDir::new();
    let mut up = Up::start(
        &dir,
        &["--mode", "push", "--workers", "2", "--sandbox-net", "host"],
    )
    .await;
    up.run_a_task().await;
    assert_eq!(up.children_named("faas-worker").len(), 2);
    // --sandbox-net host reaches the workers, which say at start what it lets functions do.
    assert_eq!(up.a_function_dials_the_gateway().await, "connected");
    let log = std::fs::read_to_string(up.daemon.log_path()).unwrap();
    assert_eq!(log.matches("sandbox_net_host").count(), 2, "{log}");
    // And faas up, which knows its gateway has no token here, says what that exposes.
    assert!(
        log.contains("faas up: warning: with --sandbox-net host") && log.contains("--token"),
        "{log}"
    );
    let started = descendants(up.daemon.pid());
    assert!(up.daemon.stop().expect("running").success());
    for pid in started {
        assert!(process_gone(pid as i32), "{} outlived faas up", comm(pid));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_beyond_loopback_without_a_token_is_a_usage_error() {
    let dir = TestDir::new();
    let listen = format!("0.0.0.0:{}", free_port());
    let out = tokio::process::Command::new(bin("faas"))
        .args(["up", "--no-console", "--ephemeral", "--listen", &listen])
        .env("XDG_DATA_HOME", xdg_data_home(&dir))
        .env_remove("FAAS_TOKEN")
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--token") && err.contains("127.0.0.1"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_without_redis_server_names_the_install_command() {
    let out = tokio::process::Command::new(bin("faas"))
        .args(["up", "--no-console", "--ephemeral"])
        .env("PATH", "/nonexistent")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("sudo apt-get install redis-server"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_stops_with_the_reason_when_the_gateway_cannot_listen() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let dir = TestDir::new();
    let child = tokio::process::Command::new(bin("faas"))
        .args(["up", "--no-console", "--procs", "1", "--listen", &listen])
        .env("XDG_DATA_HOME", xdg_data_home(&dir))
        .kill_on_drop(true)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(UP_TIMEOUT, child.wait_with_output())
        .await
        .expect("faas up did not give up")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot listen on"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_a_restart_of_up_and_ephemeral_starts_empty() {
    let dir = TestDir::new();
    let mut up = Up::start_named(&dir, "up-1", &[]).await;
    let (fid, tid) = up.run_a_task().await;
    assert!(up.daemon.stop().expect("running").success());
    // The default data directory, below XDG_DATA_HOME, holds Redis's append-only file.
    let aof = xdg_data_home(&dir).join("faas/redis/appendonlydir");
    assert!(aof.is_dir(), "no append-only file in {}", aof.display());
    // Which every function, argument and result is in: private to this user.
    let data = xdg_data_home(&dir).join("faas");
    let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{}", data.display());

    let mut up = Up::start_named(&dir, "up-2", &["--ephemeral"]).await;
    assert_eq!(
        up.function_ids().await,
        Vec::<String>::new(),
        "--ephemeral starts empty"
    );
    up.run_a_task().await;
    assert!(up.daemon.stop().expect("running").success());

    let mut up = Up::start_named(&dir, "up-3", &[]).await;
    assert_eq!(
        up.function_ids().await,
        vec![fid],
        "the function registered before the restart (and only it: --ephemeral wrote nothing)"
    );
    let reply = up.get(&format!("/result/{tid}")).await;
    assert_eq!(reply["status"], "COMPLETED", "{reply}");
    assert_eq!(reply["result"], json!(42), "{reply}");
    assert!(up.daemon.stop().expect("running").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_in_use_is_refused() {
    let dir = TestDir::new();
    let data = dir.path().join("data");
    let data = data.to_string_lossy().into_owned();
    let mut up = Up::start(&dir, &["--data-dir", &data]).await;
    let out = tokio::process::Command::new(bin("faas"))
        .args(["up", "--no-console", "--data-dir", &data])
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is in use by another faas up"), "{stderr}");
    assert!(up.daemon.stop().expect("running").success());
}

/// A no-op that takes a little while, so that many tasks are queued and running at once.
const NAP: &str = "import time\ndef nap(i):\n    time.sleep(0.002)\n    return i\n";
const IN_FLIGHT: usize = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_redis_loses_no_accepted_task() {
    let dir = TestDir::new();
    let data = dir.path().join("data").to_string_lossy().into_owned();
    let mut up = Up::start(&dir, &["--data-dir", &data]).await;
    let f = up
        .post(
            "/register_function",
            json!({"name": "nap", "source": NAP, "entrypoint": "nap"}),
        )
        .await;
    let fid = f["function_id"].as_str().expect("function_id").to_owned();
    let executions: Vec<Value> = (0..IN_FLIGHT)
        .map(|i| json!({"function_id": fid, "args": [i]}))
        .collect();
    let reply = up
        .post("/execute_batch", json!({ "executions": executions }))
        .await;
    let tids: Vec<String> = reply["task_ids"]
        .as_array()
        .expect("task_ids")
        .iter()
        .map(|t| t.as_str().expect("task id").to_owned())
        .collect();
    assert_eq!(tids.len(), IN_FLIGHT);

    // The Redis this faas up started: its only redis-server child.
    let redis = up.children_named("redis-server");
    assert_eq!(redis.len(), 1, "one redis-server expected");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(redis[0] as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let back = wait_until(UP_TIMEOUT, async || {
        let now = up.children_named("redis-server");
        !now.is_empty() && now != redis && up.healthy().await
    })
    .await;
    assert!(back, "redis not restarted:\n{}", up.daemon.log_tail(30));

    assert!(
        up.function_ids().await.contains(&fid),
        "the function is gone after the kill"
    );
    // Every accepted task finishes with its own result.
    for (i, tid) in tids.iter().enumerate() {
        let reply = up.finished(tid, &format!("{i} ")).await;
        assert_eq!(reply["status"], "COMPLETED", "task {i}: {reply}");
        assert_eq!(reply["result"], json!(i), "task {i}: {reply}");
    }
    assert!(up.daemon.stop().expect("running").success());
}

/// The Redis URL of `faas up`'s ready line.
fn ready_redis_url(log: &str) -> String {
    log.split("| redis ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no redis URL in the ready line:\n{log}"))
        .to_owned()
}
