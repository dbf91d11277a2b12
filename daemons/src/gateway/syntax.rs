//! Registration checks the Python syntax of source functions, so that a typo is a 400 naming
//! the line at registration rather than a SyntaxError (with the platform's frames) at every
//! invocation.
//!
//! The check is CPython's own `compile()`, run in a short-lived `python -I -S` child: a Rust
//! parser would drift from the interpreter the workers run (each release adds syntax), and
//! `compile()` only parses and generates bytecode, it runs none of the source. The child still
//! treats the source as hostile input: it caps its own address space and CPU time before reading
//! it, gets an empty environment, and is killed after [`CHECK_TIMEOUT`]. At most
//! [`MAX_CHECKS`] run at once, so a flood of registrations cannot fork the gateway to death.
//! Without a usable interpreter (`--python` not found) registration goes on unchecked, with one
//! warning in the log: a gateway host need not have Python, and the task would report the error.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::LazyLock;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;
use tracing::warn;

use super::error::ApiError;

/// Longest a check may take; a source that takes longer to compile is refused.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// Checks running at once; more registrations wait for a turn.
pub const MAX_CHECKS: usize = 4;

static SLOTS: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(MAX_CHECKS));
static WARNED: AtomicBool = AtomicBool::new(false);

/// Caps itself, reads the source from stdin, compiles it and prints one JSON line: `{}` when it
/// compiles, else where and why it does not.
const CHECK: &str = r#"
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (512 << 20, 512 << 20))
resource.setrlimit(resource.RLIMIT_CPU, (5, 5))
src = sys.stdin.buffer.read().decode("utf-8", "replace")
try:
    compile(src, "<source>", "exec", dont_inherit=True)
    out = {}
except SyntaxError as e:
    out = {"line": e.lineno, "offset": e.offset, "message": e.msg, "text": (e.text or "").rstrip()}
except (MemoryError, RecursionError, ValueError, OverflowError) as e:
    out = {"message": "%s: %s" % (type(e).__name__, e)}
print(json.dumps(out))
"#;

#[derive(Debug, Default, Deserialize)]
struct Verdict {
    line: Option<u64>,
    offset: Option<u64>,
    message: Option<String>,
    #[serde(default)]
    text: String,
}

/// Checks `source` with `python` (None: checks are off). `Err` is the 400 to answer.
pub async fn check(python: Option<&PathBuf>, source: &str) -> Result<(), ApiError> {
    let Some(python) = python else {
        return Ok(());
    };
    let _slot = SLOTS.acquire().await.expect("never closed");
    let child = tokio::process::Command::new(python)
        .args(["-I", "-S", "-c", CHECK])
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            if !WARNED.swap(true, Ordering::Relaxed) {
                warn!(event = "syntax_check_unavailable", python = %python.display(), error = %e, "cannot run Python: registrations are not syntax-checked");
            }
            return Ok(());
        }
    };
    let mut stdin = child.stdin.take().expect("piped");
    let body = source.as_bytes().to_vec();
    let run = async move {
        // A child that dies early closes its stdin: its verdict (or none) is what counts.
        let _ = stdin.write_all(&body).await;
        drop(stdin);
        child.wait_with_output().await
    };
    let output = match tokio::time::timeout(CHECK_TIMEOUT, run).await {
        Err(_) => {
            return Err(ApiError::bad(format!(
                "the source could not be compiled within {} s",
                CHECK_TIMEOUT.as_secs()
            )))
        }
        Ok(Err(e)) => {
            warn!(event = "syntax_check_unavailable", error = %e, "syntax check failed to run; registering unchecked");
            return Ok(());
        }
        Ok(Ok(o)) => o,
    };
    let line = String::from_utf8_lossy(&output.stdout);
    let Ok(verdict) = serde_json::from_str::<Verdict>(line.trim()) else {
        // Killed by its own limits (no output) is the source's doing; anything else is ours.
        if output.status.success() {
            warn!(event = "syntax_check_unavailable", stdout = %line.trim(), "syntax check answered nonsense; registering unchecked");
            return Ok(());
        }
        return Err(ApiError::bad(
            "the source could not be compiled within the check's memory and CPU limits",
        ));
    };
    match verdict {
        Verdict { message: None, .. } => Ok(()),
        Verdict {
            line: Some(line),
            offset,
            message: Some(message),
            text,
        } => {
            let mut error = format!("syntax error in the source, line {line}: {message}");
            if !text.is_empty() {
                error.push_str(&format!("\n    {}", text.trim_start()));
                // Point at the column, counted in the trimmed text.
                let indent = text.len() - text.trim_start().len();
                if let Some(col) = offset.and_then(|o| usize::try_from(o).ok()) {
                    let at = col.saturating_sub(1).saturating_sub(indent);
                    error.push_str(&format!("\n    {}^", " ".repeat(at)));
                }
            }
            Err(ApiError::bad(error))
        }
        Verdict {
            message: Some(message),
            ..
        } => Err(ApiError::bad(format!(
            "the source cannot be compiled: {message}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn python() -> Option<PathBuf> {
        Some(PathBuf::from(
            std::env::var("FAAS_PYTHON").unwrap_or_else(|_| "python3".into()),
        ))
    }

    async fn error_of(source: &str) -> Option<String> {
        check(python().as_ref(), source)
            .await
            .err()
            .map(|e| e.to_string())
    }

    #[tokio::test]
    async fn valid_source_passes_and_errors_name_the_line() {
        assert_eq!(error_of("def add(a, b):\n    return a + b\n").await, None);
        let e = error_of("def add(a, b):\n    return a +\n").await.unwrap();
        assert!(e.contains("line 2"), "{e}");
        assert!(e.contains("return a +"), "{e}");
        let e = error_of("def f(:\n    pass\n").await.unwrap();
        assert!(e.starts_with("syntax error in the source, line 1"), "{e}");
        // Compile-time errors count too, not only parse errors.
        let e = error_of("return 1\n").await.unwrap();
        assert!(e.contains("outside function"), "{e}");
    }

    #[tokio::test]
    async fn the_source_is_compiled_not_run() {
        let dir = std::env::temp_dir().join(format!("faas-syntax-{}", std::process::id()));
        let src = format!(
            "open({:?}, 'w').write('ran')\ndef f():\n    pass\n",
            dir.display().to_string()
        );
        assert_eq!(error_of(&src).await, None);
        assert!(!dir.exists(), "the check ran the source");
    }

    #[tokio::test]
    async fn pathological_sources_are_refused_not_hung_on() {
        let deep = format!("x = {}1{}\n", "(".repeat(100_000), ")".repeat(100_000));
        assert!(error_of(&deep).await.is_some());
    }

    #[tokio::test]
    async fn without_python_registration_goes_on() {
        let missing = PathBuf::from("/nonexistent/python3");
        assert!(check(Some(&missing), "def f(:").await.is_ok());
        assert!(check(None, "def f(:").await.is_ok());
    }
}
