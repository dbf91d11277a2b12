//! Python for the tests: the interpreter the daemons' children and the client scripts use, and a
//! runner for client scripts (the dill wire format can only be produced and checked by Python).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::paths::workspace_root;

/// A client script that has not finished by then is hung, not slow.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// The serialisation of the original Python clients, verbatim: MIME base64 (with newlines) of a
/// dill pickle. Client scripts start with this.
pub const DILL_PRELUDE: &str = r#"
import codecs, json, os, sys
import dill

def serialize(obj):
    return codecs.encode(dill.dumps(obj), "base64").decode()

def deserialize(s):
    return dill.loads(codecs.decode(s.encode(), "base64"))
"#;

/// The interpreter with `dill` and `requests`: `FAAS_PYTHON` if set, else the workspace's
/// `.venv`, else `python3` from PATH.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("FAAS_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = workspace_root().join(".venv/bin/python");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("python3")
}

/// Runs `script` with [`python()`] and extra `env`; returns its stdout. Panics with stderr if it
/// fails or hangs.
pub async fn run_python(script: &str, env: &[(&str, &str)]) -> String {
    run_python_with_stdin(script, env, "").await
}

/// Like [`run_python`], with `stdin` fed to the script: data too large for an argument or an
/// environment variable (Linux caps each at 128 KiB) goes this way.
pub async fn run_python_with_stdin(script: &str, env: &[(&str, &str)], stdin: &str) -> String {
    // The script goes in a file, not `-c`, so tracebacks show line numbers of a real file and
    // stdin stays free for data.
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "faas-test-script-{}-{}.py",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, script).expect("write python script");
    let mut child = tokio::process::Command::new(python())
        .arg(&path)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python().display()));
    let mut input = child.stdin.take().expect("piped stdin");
    let stdin = stdin.to_owned();
    // Fed from a task so a script that prints a lot before reading cannot deadlock us.
    tokio::spawn(async move {
        let _ = input.write_all(stdin.as_bytes()).await;
    });
    let out = tokio::time::timeout(SCRIPT_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("python script {} hung", path.display()))
        .expect("wait for python");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python script failed ({}):\n--- script\n{script}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    let _ = std::fs::remove_file(&path);
    stdout
}

/// Runs `script` and parses the last line of its stdout as JSON (earlier lines may be chatter).
pub async fn python_json(script: &str, env: &[(&str, &str)]) -> Value {
    let out = run_python(script, env).await;
    let last = out.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("script output's last line is not JSON ({e}):\n{out}"))
}

/// `repr()` of a dill result (base64 as the gateway returns it), computed by Python. An
/// exception comes back as `ExcType(args)`, so tests can check both values and exceptions.
pub async fn dill_repr(result_b64: &str, env: &[(&str, &str)]) -> String {
    let script = format!("{DILL_PRELUDE}\nprint(repr(deserialize(sys.stdin.read())))\n");
    run_python_with_stdin(&script, env, result_b64)
        .await
        .trim_end()
        .to_owned()
}
