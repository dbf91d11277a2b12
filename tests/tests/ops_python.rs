//! The Python client in `demo/python`: its runnable example against a live stack (dill values,
//! kwargs, a re-raised remote exception, a source function), and its token and error handling.

use std::time::Duration;

use std::path::Path;

use faas_tests::{python, workspace_root, Mode, Stack};

/// Runs a Python file against `stack`, with `demo/python` on the path for `import faas_client`.
async fn run_demo(stack: &Stack, script: &Path, env: &[(&str, &str)]) -> (bool, String, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(python())
            .arg(script)
            .env("PYTHONPATH", workspace_root().join("demo/python"))
            .env("FAAS_GATEWAY_URL", stack.base_url())
            .env_remove("FAAS_TOKEN")
            .envs(env.iter().copied())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("python hung")
    .expect("run python");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_runs_against_a_live_stack() {
    let stack = Stack::start(Mode::Local).await;
    let example = workspace_root().join("demo/python/example.py");
    let (ok, stdout, stderr) = run_demo(&stack, &example, &[]).await;
    assert!(ok, "example.py failed:\n{stdout}\n{stderr}");
    for line in [
        "fib(30) = 832040",
        "divide(a=7, b=2) = 3.5",
        "divide(1, 0) raised ZeroDivisionError: division by zero",
        "add(2, 3, scale=10) = 50",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_sends_the_token_and_reports_errors() {
    let stack = Stack::builder(Mode::Local)
        .gateway_args(&["--token", "py-token"])
        // The deliberately slow task below need not hold up the stack's shutdown.
        .dispatcher_args(&["--drain-grace-ms", "200"])
        .start()
        .await;
    let script = "client_check.py";
    let check = format!(
        r#"
import faas_client as faas
try:
    faas.Client(token="").functions()
    raise SystemExit("no token was accepted")
except faas.FaasError as e:
    assert e.status == 401, e
c = faas.Client()  # FAAS_TOKEN from the environment
fid = c.register_source("def boom():\n    raise ValueError('nope')\n", "boom")
try:
    c.result_json(c.run_json(fid), wait=60)
    raise SystemExit("no failure")
except faas.TaskFailed as e:
    assert e.kind == "ValueError" and e.message == "nope" and "Traceback" in e.traceback, e
slow = c.register_source("import time\ndef slow():\n    time.sleep(30)\n", "slow")
try:
    c.result_json(c.run_json(slow, timeout_ms=5000), wait=0)
    raise SystemExit("a running task had a result")
except faas.TaskNotFinished as e:
    assert e.status in ("QUEUED", "RUNNING"), e
try:
    faas.Client(url="http://127.0.0.1:9", token="x").functions()
except faas.FaasError as e:
    assert "cannot reach" in str(e), e
print("{script} ok")
"#
    );
    let path = stack.dir().write(script, &check);
    let (ok, stdout, stderr) = run_demo(&stack, &path, &[("FAAS_TOKEN", "py-token")]).await;
    assert!(ok, "{script} failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("client_check.py ok"), "{stdout}");
}
