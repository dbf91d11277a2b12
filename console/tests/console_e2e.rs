//! End-to-end: the real `faas-console` binary in a pseudo-terminal (a private tmux server)
//! against a live stack (private Redis, gateway, local dispatcher with Python). Keys go in with
//! `tmux send-keys`, the screen comes back with `tmux capture-pane`.
//!
//! Needs `tmux`, `pgrep` and `redis-server` on PATH and the daemons built: `cargo build --workspace --bins`.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use faas_tests::{free_port, Mode, Stack, TestDir};
use serde_json::json;

/// How long any one expected screen may take to appear.
const SCREEN_TIMEOUT: Duration = Duration::from_secs(30);

/// A tmux server of our own (its own socket) running the console in one pane; killed on drop.
struct Console {
    socket: String,
    /// Where the wrapping shell writes the console's exit status.
    status_file: PathBuf,
}

impl Console {
    fn start(stack: &Stack) -> Self {
        let command = format!(
            "'{}' --redis '{}' --gateway '{}'",
            env!("CARGO_BIN_EXE_faas-console"),
            stack.redis_url(),
            stack.base_url(),
        );
        Self::run(stack.dir(), &command)
    }

    /// Runs `command` (a shell command line) in a 120x40 pane of a private tmux server.
    fn run(dir: &TestDir, command: &str) -> Self {
        assert!(
            Command::new("tmux").arg("-V").output().is_ok(),
            "these tests drive the console through tmux: install it (apt-get install -y tmux)"
        );
        let socket = format!("faas-console-e2e-{}-{}", std::process::id(), unique());
        // Keep the pane after the console exits, so the screen it left can be checked.
        let conf = dir.write("tmux.conf", "set -g remain-on-exit on\n");
        let status_file = dir.path().join(format!("console-{socket}.status"));
        // tmux's own pane_dead_status is not always filled in: a shell records the status.
        let command = format!("{command}; echo $? > '{}'", status_file.display());
        let status = Command::new("tmux")
            .args(["-L", &socket, "-f"])
            .arg(&conf)
            .args(["new-session", "-d", "-x", "120", "-y", "40", &command])
            .status()
            .expect("run tmux");
        assert!(status.success(), "tmux new-session failed");
        Self {
            socket,
            status_file,
        }
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run tmux")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p"]).stdout).into_owned()
    }

    /// Presses named keys (`Enter`, `Tab`, `C-s`, `Escape`) or single characters.
    fn keys(&self, keys: &[&str]) {
        for k in keys {
            assert!(
                self.tmux(&["send-keys", k]).status.success(),
                "send-keys {k}"
            );
        }
    }

    /// Types text literally.
    fn type_text(&self, text: &str) {
        assert!(self.tmux(&["send-keys", "-l", text]).status.success());
    }

    /// Waits until every one of `texts` is on the screen; panics with the screen otherwise.
    async fn wait_for(&self, texts: &[&str]) -> String {
        self.wait_until(&format!("{texts:?}"), |screen| {
            texts.iter().all(|t| screen.contains(t))
        })
        .await
    }

    /// Waits until `ok(screen)`; panics with `what` and the screen otherwise.
    async fn wait_until(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + SCREEN_TIMEOUT;
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "waited {SCREEN_TIMEOUT:?} for {what}; the screen shows:\n{screen}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The console's pid: the child of the shell that runs in the pane.
    fn console_pid(&self) -> String {
        let out = self.tmux(&["display-message", "-p", "#{pane_pid}"]);
        let shell = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let out = Command::new("pgrep")
            .args(["-P", &shell])
            .output()
            .expect("run pgrep");
        let pid = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(
            !pid.is_empty(),
            "no console process under the pane's shell {shell}"
        );
        pid
    }

    /// Waits for the console to exit and returns its exit status.
    async fn wait_exit(&self) -> String {
        let deadline = Instant::now() + SCREEN_TIMEOUT;
        loop {
            if let Ok(status) = std::fs::read_to_string(&self.status_file) {
                if status.ends_with('\n') {
                    return status.trim().to_owned();
                }
            }
            assert!(
                Instant::now() < deadline,
                "the console did not exit; the screen shows:\n{}",
                self.screen()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Registers `add` from the form and invokes it with [2, 3] from the other form, then checks
/// the invocation panel and the Tasks screen.
async fn register_and_invoke_add(c: &Console) {
    c.keys(&["4"]);
    c.wait_for(&["Functions (", "Last invocation"]).await;
    c.keys(&["n"]);
    c.wait_for(&["Register a function"]).await;
    c.type_text("add");
    c.keys(&["Tab", "Tab"]);
    c.type_text("def add(a, b):");
    c.keys(&["Enter"]);
    c.type_text("    return a + b");
    c.keys(&["C-s"]);
    c.wait_for(&["registered add"]).await;

    c.keys(&["i"]);
    c.wait_for(&["Invoke add"]).await;
    c.type_text("[2, 3]");
    c.keys(&["Enter"]);
    let screen = c.wait_for(&["status   COMPLETED", "result   5"]).await;
    assert!(screen.contains("function add"), "{screen}");

    // The task came through the events channel into the live list, named from its hash.
    c.keys(&["3"]);
    let screen = c.wait_for(&["Tasks, newest first", "COMPLETED"]).await;
    let row = screen
        .lines()
        .find(|l| l.contains("COMPLETED"))
        .expect("a COMPLETED row");
    assert!(row.contains(" add "), "the row names the function: {row}");

    // Its detail comes from the gateway.
    c.keys(&["Enter"]);
    c.wait_for(&["function  add", "\"args\":[2,3]", "result", "  5"])
        .await;
    c.keys(&["Escape"]);
    // A key sent right behind Esc would read as Alt+key: wait for the detail to close first.
    c.wait_until("the detail closed", |screen| {
        !screen.contains("function  add")
    })
    .await;
}

/// Asserts the console exited cleanly and left the alternate screen with the dashboard.
async fn assert_exited_and_restored(c: &Console) {
    assert_eq!(c.wait_exit().await, "0", "exit status");
    let screen = c.screen();
    assert!(
        !screen.contains("1 Overview"),
        "terminal not restored:\n{screen}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_invoke_and_see_the_result_in_a_real_terminal() {
    let stack = Stack::start(Mode::Local).await;
    // Work done before the console starts must show in its counters: they are totals.
    let f = stack
        .register_source("mul", "def mul(a, b):\n    return a * b\n", "mul")
        .await;
    let t = stack.execute_json(f, json!([6, 7]), json!({})).await;
    assert_eq!(stack.wait_result(t).await["result"], json!(42));

    let c = Console::start(&stack);
    c.wait_for(&["redis ● connected", "gateway ● connected", "submitted 1 "])
        .await;
    register_and_invoke_add(&c).await;
    c.keys(&["1"]);
    c.wait_for(&["submitted 2 "]).await;

    // A resize redraws at the new size.
    assert!(c
        .tmux(&["resize-window", "-x", "80", "-y", "24"])
        .status
        .success());
    c.wait_until("the overview redrawn 80 wide", |screen| {
        screen
            .lines()
            .any(|l| l.starts_with("┌Queued") && l.chars().count() == 80)
    })
    .await;

    c.keys(&["q"]);
    assert_exited_and_restored(&c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_is_survived() {
    let mut stack = Stack::start(Mode::Local).await;
    let c = Console::start(&stack);
    c.wait_for(&["redis ● connected", "gateway ● connected"])
        .await;

    stack.redis().stop();
    // Both indicators say so (the gateway's health depends on Redis), and the console lives on.
    c.wait_for(&["redis ✕ reconnecting", "gateway ✕ reconnecting"])
        .await;
    stack.redis().restart().await;
    c.wait_for(&["redis ● connected", "gateway ● connected"])
        .await;

    // Redis came back empty; everything works again, including the event subscription that
    // fills the Tasks screen.
    register_and_invoke_add(&c).await;

    // A SIGTERM (systemd, kill) leaves as cleanly as q does.
    let pid = c.console_pid();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    assert_exited_and_restored(&c).await;
}

/// Under `faas up` the console's `q` stops the whole platform, so it asks; `n` keeps every
/// daemon running, `y` stops them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_faas_up_q_asks_and_n_keeps_the_platform_running() {
    let dir = TestDir::new();
    let port = free_port();
    let command = format!(
        "'{}' up --ephemeral --procs 1 --listen 127.0.0.1:{port}",
        env!("CARGO_BIN_EXE_faas")
    );
    let c = Console::run(&dir, &command);
    c.wait_for(&["redis ● connected", "gateway ● connected"])
        .await;
    let healthz = format!("http://127.0.0.1:{port}/healthz");
    let http = reqwest::Client::new();
    let up = || async {
        http.get(&healthz)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    };
    assert!(up().await);

    c.keys(&["q"]);
    c.wait_for(&["stop the platform", "y/n"]).await;
    c.keys(&["n"]);
    c.wait_for(&["still running"]).await;
    assert!(up().await, "n kept the gateway running");
    assert!(!c.status_file.exists(), "and faas up");

    c.keys(&["q"]);
    c.wait_for(&["stop the platform"]).await;
    c.keys(&["y"]);
    assert_eq!(c.wait_exit().await, "0", "faas up stopped cleanly");
    assert!(!up().await, "the gateway is gone with it");
}

/// A failure from before the console started is in the gateway's history, not in any event
/// the console saw: `/` finds it even with a hundred newer tasks above it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_from_before_the_console_started_is_found_with_search() {
    let stack = Stack::start(Mode::Local).await;
    let divide = stack
        .register_source("divide", "def divide(a, b):\n    return a / b\n", "divide")
        .await;
    let failed = stack.execute_json(divide, json!([1, 0]), json!({})).await;
    assert_eq!(stack.wait_result(failed).await["status"], "FAILED");
    let add = stack
        .register_source("add", "def add(a, b):\n    return a + b\n", "add")
        .await;
    let executions: Vec<_> = (0..120)
        .map(|i| json!({"function_id": add.to_string(), "args": [i, 1], "kwargs": {}}))
        .collect();
    let (status, reply) = stack
        .post_json("/execute_batch", json!({ "executions": executions }))
        .await;
    assert!(status.is_success(), "{status}: {reply}");

    let c = Console::start(&stack);
    c.wait_for(&["gateway ● connected"]).await;
    c.keys(&["3"]);
    // The history's first page fills the list; the failure is far below the newest.
    c.wait_for(&["Tasks, newest first", " add ", "older ↓"])
        .await;
    assert!(!c.screen().contains("ZeroDivisionError"));

    c.keys(&["/"]);
    c.wait_for(&["Enter search"]).await;
    c.type_text("zerodiv");
    c.keys(&["Enter"]);
    let screen = c
        .wait_for(&["search: zerodiv", "1 shown", "ZeroDivisionError"])
        .await;
    let row = screen
        .lines()
        .find(|l| l.contains("ZeroDivisionError"))
        .unwrap();
    assert!(row.contains("divide") && row.contains("FAILED"), "{row}");
    assert!(row.contains(&failed.to_string()[..8]), "{row}");

    // Its detail opens from the found row.
    c.keys(&["Enter"]);
    c.wait_for(&["division by zero"]).await;
    c.keys(&["q"]);
    c.wait_until("the detail closed", |s| !s.contains("division by zero"))
        .await;

    // The Functions screen says which function fails, and its view lists the failure.
    c.keys(&["4"]);
    let screen = c
        .wait_for(&["FAILED %", "100.0 %", "ZeroDivisionError"])
        .await;
    let row = screen.lines().find(|l| l.contains("100.0 %")).unwrap();
    assert!(row.contains("divide"), "{row}");
    // Newest first: add, then divide.
    c.keys(&["j", "Enter"]);
    c.wait_for(&[
        "Function divide",
        "Recent failures",
        "ZeroDivisionError: division by zero",
    ])
    .await;
    c.keys(&["Escape"]);
    c.wait_until("the view closed", |s| !s.contains("Recent failures"))
        .await;
    c.keys(&["q"]);
    assert_exited_and_restored(&c).await;
}

/// The actions change the tasks on the server: `x` cancels a queued task, `r` runs the
/// cancelled one again, `P` empties the queue; each asks first and says how it ended. No
/// dispatcher runs, so submitted tasks stay QUEUED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_retry_and_purge_from_keys_change_the_tasks_on_the_server() {
    let stack = Stack::builder(Mode::Local)
        .without_dispatcher()
        .start()
        .await;
    let add = stack
        .register_source("add", "def add(a, b):\n    return a + b\n", "add")
        .await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(stack.execute_json(add, json!([i, 1]), json!({})).await);
    }
    let newest = ids[2];
    let short = |id: &faas_protocol::TaskId| id.to_string()[..8].to_owned();

    let c = Console::start(&stack);
    c.wait_for(&["gateway ● connected"]).await;
    c.keys(&["3"]);
    c.wait_for(&["3 shown", "QUEUED"]).await;

    // x on the newest: the prompt names it; y cancels it on the server.
    c.keys(&["x"]);
    c.wait_for(&["cancel task", &short(&newest), "y/n"]).await;
    c.keys(&["y"]);
    c.wait_for(&[&format!("cancelled {}… (was QUEUED)", short(&newest))])
        .await;
    let task = stack.task(newest).await;
    assert_eq!(task["status"], "FAILED", "{task}");
    assert_eq!(task["error"]["type"], "Cancelled", "{task}");
    // The row follows (the event came through Redis).
    c.wait_for(&["Cancelled"]).await;

    // r on the cancelled task: a new task that names the one it retries.
    c.keys(&["r"]);
    c.wait_for(&["retry task", &short(&newest), "y/n"]).await;
    c.keys(&["y"]);
    let screen = c
        .wait_for(&[&format!("retried {}… as ", short(&newest))])
        .await;
    let (_, list) = stack.get_json("/tasks?limit=1").await;
    let retry = &list["tasks"][0];
    assert_eq!(retry["retry_of"], newest.to_string(), "{list}");
    assert_eq!(retry["status"], "QUEUED");
    let retry_id = retry["task_id"].as_str().unwrap();
    assert!(
        screen.contains(&format!("as {}…", &retry_id[..8])),
        "{screen}"
    );

    // P: asks, n keeps the queue, y empties it.
    c.keys(&["P"]);
    c.wait_for(&["purge the queue", "y/n"]).await;
    c.keys(&["n"]);
    c.wait_for(&["the queue is as it was"]).await;
    let (_, queued) = stack.get_json("/tasks?status=QUEUED").await;
    assert_eq!(queued["tasks"].as_array().unwrap().len(), 3, "{queued}");
    c.keys(&["P"]);
    c.wait_for(&["purge the queue", "y/n"]).await;
    c.keys(&["y"]);
    c.wait_for(&["purged: 3 queued task(s) cancelled"]).await;
    let (_, queued) = stack.get_json("/tasks?status=QUEUED").await;
    assert_eq!(queued["tasks"], json!([]), "{queued}");

    c.keys(&["q"]);
    assert_exited_and_restored(&c).await;
}

#[test]
fn without_a_terminal_it_exits_with_a_clear_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_faas-console"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("needs a terminal"), "{stderr}");
}

#[test]
fn bad_configuration_exits_64() {
    for args in [
        &["--redis", "nope://x"][..],
        &["--gateway", "127.0.0.1:8000"],
        &["--no-such-flag"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_faas-console"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}: {out:?}");
    }
}

/// `D` on the Workers screen drains the selected worker of a push stack: after the y/n that
/// names it, its row says `draining` while its task finishes, then it is gone, and the Events
/// screen tells both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d_drains_a_worker_that_shows_draining_then_leaves() {
    let mut stack = faas_tests::Stack::builder(Mode::Push)
        .procs(1)
        .worker_processes(2)
        .start()
        .await;
    let workers = stack
        .wait_registered_workers(2, Duration::from_secs(30))
        .await;
    // The console lists workers by id: the first row is the first id.
    let first = workers.keys().next().unwrap().clone();
    let f = stack
        .register_source(
            "slow",
            "import time\ndef slow(s):\n    time.sleep(s)\n    return s\n",
            "slow",
        )
        .await;
    // Long enough to see the drain while the drained worker's task runs.
    let tasks = [
        stack.execute_json(f, json!([12]), json!({})).await,
        stack.execute_json(f, json!([12]), json!({})).await,
    ];
    let c = Console::start(&stack);
    c.wait_for(&["redis ● connected", "gateway ● connected"])
        .await;
    c.keys(&["2"]);
    c.wait_until("both workers busy", |s| {
        s.contains("Workers (2)") && s.matches("1/1").count() == 2
    })
    .await;
    c.keys(&["D"]);
    c.wait_for(&[&format!("drain worker {first}")]).await;
    c.keys(&["y"]);
    let row = |screen: &str, state: &str| {
        screen
            .lines()
            .any(|l| l.contains(&first) && l.contains("push") && l.contains(state))
    };
    c.wait_until("its row saying draining", |s| row(s, "draining"))
        .await;
    c.wait_until("its row gone", |s| {
        s.contains("Workers (1)") && !s.lines().any(|l| l.contains(&first) && l.contains("push"))
    })
    .await;
    for t in tasks {
        assert_eq!(stack.wait_result(t).await["status"], "COMPLETED");
    }
    c.keys(&["5"]);
    c.wait_for(&[&format!("{first} draining"), &format!("{first} left")])
        .await;
    stack.worker(1).assert_running();
    c.keys(&["q"]);
    assert_exited_and_restored(&c).await;
}
