//! The end-to-end test harness: real `redis-server`s, the real daemons, real Python and HTTP.
//!
//! Each test builds its own [`Stack`] (a private Redis on a free port, the gateway, a dispatcher)
//! and everything is stopped when it drops, so tests run in parallel without sharing state.
//! Behaviour tests are written once as `async fn name(mode: Mode)` and instantiated for every
//! dispatch mode by [`per_mode!`], like apalis's `generic_storage_test!`.

mod daemon;
mod log_events;
mod paths;
mod python;
mod redis;
mod stack;

use std::future::Future;
use std::time::{Duration, Instant};

pub use daemon::{cpu_time, descendants, process_gone, Daemon};
pub use log_events::{redis_circuit_open, redis_unreachable, render_log, LogEvent};
pub use paths::{bin, workspace_root, TestDir};
pub use python::{dill_repr, python, python_json, run_python, run_python_with_stdin, DILL_PRELUDE};
pub use redis::{ping, RedisGuard, Resp};
pub use reqwest::StatusCode;
pub use stack::{is_terminal, Mode, Stack, StackBuilder, FAST_DISPATCHER, FAST_WORKER};

/// Polls `condition` until it holds or `timeout` passes; returns whether it held. The bounded
/// replacement for sleeping "long enough" before checking an eventual condition.
pub async fn wait_until<F>(timeout: Duration, mut condition: F) -> bool
where
    F: AsyncFnMut() -> bool,
{
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(10);
    loop {
        if condition().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// A raw ZeroMQ DEALER connected to `endpoint` (a rogue or old-version peer of a dispatcher),
/// retried until `timeout`: a DEALER's connect fails while the dispatcher is not bound yet.
pub async fn connect_dealer(endpoint: &str, timeout: Duration) -> zeromq::DealerSocket {
    use zeromq::Socket;
    let mut socket = None;
    let connected = wait_until(timeout, async || {
        let mut s = zeromq::DealerSocket::new();
        let attempt = tokio::time::timeout(Duration::from_secs(2), s.connect(endpoint));
        if matches!(attempt.await, Ok(Ok(()))) {
            socket = Some(s);
        }
        socket.is_some()
    })
    .await;
    assert!(connected, "cannot connect to {endpoint}");
    socket.expect("connected")
}

/// Runs `fut` with a bound, panicking with `what` when it runs out.
pub async fn within<T>(timeout: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(timeout, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: not done within {timeout:?}"))
}

/// A port that was free a moment ago (bound to `127.0.0.1:0`, then released).
pub fn free_port() -> u16 {
    // A port is free once its listener closes, so two calls may return the same one before
    // either is bound (a test's metrics port and its stack's worker port did): never hand out
    // a port twice in one test process.
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0")
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Asserts a reply is `expected` with the gateway's error shape: a JSON object whose `error` is
/// a non-empty string.
#[track_caller]
pub fn assert_json_error(
    reply: &(StatusCode, serde_json::Value),
    expected: StatusCode,
    what: &str,
) {
    let (status, body) = reply;
    assert_eq!(*status, expected, "{what}: wrong status; body {body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{what}: body is not {{\"error\": \"...\"}}: {body}"
    );
}

/// Decodes a dill result as the gateway returns it (MIME base64, newlines allowed) and asserts
/// it is a pickle, so a test fails here with the value rather than inside Python.
#[track_caller]
pub fn decode_pickle_b64(b64: &str) -> Vec<u8> {
    use base64::Engine;
    let compact: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .unwrap_or_else(|e| panic!("result is not base64 ({e}): {b64:?}"));
    assert_eq!(
        bytes.first(),
        Some(&0x80),
        "result is not a pickle: {b64:?}"
    );
    bytes
}

/// Instantiates behaviour tests for every dispatch mode that works today.
///
/// Each listed item is an `async fn name(mode: Mode)` in the calling file; it becomes the tests
/// `local::name` (and, once enabled here, `push::name`, `pull::name`), so one suite proves every
/// mode behaves the same.
#[macro_export]
macro_rules! per_mode {
    ($($test:ident),* $(,)?) => {
        $crate::__mode_tests!(local, $crate::Mode::Local; $($test),*);
        $crate::__mode_tests!(push, $crate::Mode::Push; $($test),*);
        $crate::__mode_tests!(pull, $crate::Mode::Pull; $($test),*);
    };
}

/// Instantiates behaviour tests for the modes with remote workers only (push and pull): each
/// `async fn name(mode: Mode)` becomes `remote::push::name` and `remote::pull::name`. The
/// `remote` module keeps them apart from [`per_mode!`]'s in the same file.
#[macro_export]
macro_rules! remote_modes {
    ($($test:ident),* $(,)?) => {
        mod remote {
            #[allow(unused_imports)]
            use super::*;
            $crate::__mode_tests!(push, $crate::Mode::Push; $($test),*);
            $crate::__mode_tests!(pull, $crate::Mode::Pull; $($test),*);
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __mode_tests {
    ($module:ident, $mode:expr; $($test:ident),*) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($mode).await
                }
            )*
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wait_until_is_bounded() {
        let mut calls = 0;
        assert!(
            wait_until(Duration::from_secs(5), async || {
                calls += 1;
                calls == 3
            })
            .await
        );
        let started = Instant::now();
        assert!(!wait_until(Duration::from_millis(100), async || false).await);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn python_falls_back_to_the_workspace_venv_or_python3() {
        let p = python();
        assert!(
            std::env::var_os("FAAS_PYTHON").is_some()
                || p.ends_with(".venv/bin/python")
                || p.as_os_str() == "python3"
        );
    }

    #[test]
    fn processes_that_exist_are_not_gone() {
        assert!(!process_gone(std::process::id() as i32));
    }
}
