//! The `faas` CLI against a live stack: every API subcommand in plain and `--json` form, a failed
//! task's exit code and message, and clear errors with the documented exit codes.

use std::time::Duration;

use faas_tests::{bin, free_port, Mode, Stack};
use serde_json::{json, Value};

const ADD: &str = "def add(a, b, scale=1):\n    return (a + b) * scale\n";
const DIVIDE: &str = "def divide(a, b):\n    return a / b\n";
/// A CLI call that has not returned by then is hung.
const CLI_TIMEOUT: Duration = Duration::from_secs(90);

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Out {
    #[track_caller]
    fn ok(self) -> String {
        assert_eq!(self.code, 0, "{self:?}");
        self.stdout.trim().to_owned()
    }

    #[track_caller]
    fn json(self) -> Value {
        let text = self.ok();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }
}

/// Runs `faas ARGS` against `gateway` (no token or gateway from the test's own environment).
async fn faas(gateway: &str, args: &[&str]) -> Out {
    faas_env(gateway, args, &[]).await
}

async fn faas_env(gateway: &str, args: &[&str], env: &[(&str, &str)]) -> Out {
    let out = tokio::time::timeout(
        CLI_TIMEOUT,
        tokio::process::Command::new(bin("faas"))
            .arg("--gateway")
            .arg(gateway)
            .args(args)
            .env_remove("FAAS_TOKEN")
            .env_remove("FAAS_GATEWAY_URL")
            .envs(env.iter().copied())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("faas {args:?} hung"))
    .expect("run faas");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_registers_invokes_and_reads_back_results() {
    let stack = Stack::start(Mode::Local).await;
    let gw = stack.base_url();
    let file = stack.dir().write("add.py", ADD);
    let file = file.to_str().unwrap();

    let fid = faas(
        gw,
        &["register", file, "--entrypoint", "add", "--name", "adder"],
    )
    .await
    .ok();
    assert!(fid.parse::<uuid::Uuid>().is_ok(), "not an id: {fid}");

    // --wait prints the result itself.
    let out = faas(
        gw,
        &[
            "invoke",
            &fid,
            "[2, 3]",
            "--kwargs",
            r#"{"scale": 10}"#,
            "--wait",
        ],
    )
    .await;
    assert_eq!(out.ok(), "50");

    // Without --wait: a task id, then status / result / task read it back.
    let tid = faas(gw, &["invoke", &fid, "[40, 2]", "--timeout-ms", "20000"])
        .await
        .ok();
    assert_eq!(
        faas(gw, &["result", &tid, "--wait", "30000"]).await.ok(),
        "42"
    );
    assert_eq!(faas(gw, &["status", &tid]).await.ok(), "COMPLETED");
    let record = faas(gw, &["task", &tid]).await.ok();
    assert!(
        record.contains("COMPLETED") && record.contains("adder"),
        "{record}"
    );
    assert!(record.contains("timeout"), "{record}");

    let listing = faas(gw, &["functions"]).await.ok();
    assert!(
        listing.contains(&fid) && listing.contains("adder"),
        "{listing}"
    );
    let workers = faas(gw, &["workers"]).await;
    assert_eq!(workers.code, 0, "{workers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_json_output_parses() {
    let stack = Stack::start(Mode::Local).await;
    let gw = stack.base_url();
    let file = stack.dir().write("add.py", ADD);

    let reg = faas(
        gw,
        &["--json", "register", file.to_str().unwrap(), "-e", "add"],
    )
    .await
    .json();
    let fid = reg["function_id"].as_str().expect("function_id").to_owned();

    let done = faas(gw, &["--json", "invoke", &fid, "[1, 2]", "--wait"])
        .await
        .json();
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(done["result"], json!(3));
    let tid = done["task_id"].as_str().expect("task_id").to_owned();

    let queued = faas(gw, &["--json", "invoke", &fid, "[1, 1]"]).await.json();
    assert!(queued["task_id"].is_string(), "{queued}");

    let status = faas(gw, &["--json", "status", &tid]).await.json();
    assert_eq!(status, json!({"task_id": tid, "status": "COMPLETED"}));
    let result = faas(gw, &["--json", "result", &tid]).await.json();
    assert_eq!(result["result"], json!(3));
    let record = faas(gw, &["--json", "task", &tid]).await.json();
    assert_eq!(record["function_name"], "add");
    assert_eq!(record["attempts"], 1);

    let functions = faas(gw, &["--json", "functions"]).await.json();
    assert!(
        functions
            .as_array()
            .expect("a list")
            .iter()
            .any(|f| f["function_id"] == fid.as_str()),
        "{functions}"
    );
    let workers = faas(gw, &["--json", "workers"]).await.json();
    assert!(workers.is_array(), "{workers}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_failed_task_exits_1_with_type_message_and_traceback() {
    let stack = Stack::start(Mode::Local).await;
    let gw = stack.base_url();
    let file = stack.dir().write("divide.py", DIVIDE);
    let fid = faas(gw, &["register", file.to_str().unwrap(), "-e", "divide"])
        .await
        .ok();

    let out = faas(gw, &["invoke", &fid, "[1, 0]", "--wait"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.trim().is_empty(), "{out:?}");
    assert!(out.stderr.contains("ZeroDivisionError"), "{out:?}");
    assert!(out.stderr.contains("division by zero"), "{out:?}");
    assert!(out.stderr.contains("Traceback"), "{out:?}");

    // --json still exits 1, with the full reply on stdout.
    let out = faas(gw, &["--json", "invoke", &fid, "[1, 0]", "--wait"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    let reply: Value = serde_json::from_str(&out.stdout).expect("JSON reply");
    assert_eq!(reply["status"], "FAILED");
    assert_eq!(reply["error"]["type"], "ZeroDivisionError");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_errors_are_clear_with_documented_exit_codes() {
    let stack = Stack::builder(Mode::Local)
        .without_dispatcher()
        .start()
        .await;
    let gw = stack.base_url();

    // The gateway's 404, as a message.
    let unknown = "6f1c1a52-3f43-4a7e-9b59-5d1c0f6a9a10";
    let out = faas(gw, &["status", unknown]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("unknown task"), "{out:?}");

    // Usage errors: a malformed id, arguments that are not a JSON list, a missing file.
    let out = faas(gw, &["result", "not-a-uuid"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("invalid task id"), "{out:?}");
    let out = faas(gw, &["invoke", unknown, "{\"a\": 1}"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("must be a JSON list"), "{out:?}");
    let out = faas(gw, &["register", "/nonexistent/f.py", "-e", "f"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("cannot read /nonexistent/f.py"),
        "{out:?}"
    );

    // A task that is still queued (no dispatcher here) has no result yet: exit 3.
    let file = stack.dir().write("add.py", ADD);
    let fid = faas(gw, &["register", file.to_str().unwrap(), "-e", "add"])
        .await
        .ok();
    let tid = faas(gw, &["invoke", &fid, "[1, 2]"]).await.ok();
    let out = faas(gw, &["result", &tid]).await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("QUEUED"), "{out:?}");

    // Nobody listens there: 69 and a hint.
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let out = faas(&nowhere, &["functions"]).await;
    assert_eq!(out.code, 69, "{out:?}");
    assert!(out.stderr.contains("cannot reach the gateway"), "{out:?}");
}
