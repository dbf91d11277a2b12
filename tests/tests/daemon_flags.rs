//! The daemons' process-count flags: `--procs`/`FAAS_PROCS` is the one name for Python processes,
//! and every older spelling (`-w`, `--workers`, `FAAS_WORKERS` on the dispatcher; the positional
//! count and `FAAS_WORKER_PROCS` on the worker) still sets the same thing. What each dispatcher
//! and worker registered (its `slots`) is read back from the Redis registry. A worker refuses
//! `local` mode with why, and neither starts a pool without `bwrap` unless told `--sandbox none`.

use std::time::Duration;

use faas_tests::{bin, python, Daemon, Mode, Stack, TestDir};
use serde_json::Value;

const JOIN: Duration = Duration::from_secs(30);

/// A daemon to start: its name, its arguments, its extra environment.
type Case<'a> = (&'a str, Vec<&'a str>, Vec<(String, String)>);

/// The registry's slots per dispatcher name (local pools) or worker id.
fn slots_by(registry: &std::collections::BTreeMap<String, Value>, key: &str) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = registry
        .values()
        .map(|w| {
            (
                w[key].as_str().unwrap_or_default().to_owned(),
                w["slots"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dispatcher_takes_procs_and_its_old_spellings() {
    let stack = Stack::builder(Mode::Local)
        .without_dispatcher()
        .start()
        .await;
    let py = python().to_string_lossy().into_owned();
    let redis = stack.redis_url();
    let env = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
    let cases: [Case; 5] = [
        ("d-procs", vec!["--procs", "1"], vec![]),
        ("d-short-w", vec!["-w", "2"], vec![]),
        ("d-long-workers", vec!["--workers", "3"], vec![]),
        ("d-env-procs", vec![], env("FAAS_PROCS", "2")),
        ("d-env-workers", vec![], env("FAAS_WORKERS", "1")),
    ];
    let mut daemons: Vec<Daemon> = Vec::new();
    for (name, flags, env) in &cases {
        let mut args: Vec<&str> = vec!["-m", "local", "--redis", &redis, "--python", &py];
        args.extend(["--name", name]);
        args.extend(flags.iter());
        daemons.push(Daemon::spawn(
            name,
            bin("faas-dispatcher"),
            &args,
            env,
            stack.dir().path(),
        ));
    }
    let registry = stack.wait_registered_workers(cases.len(), JOIN).await;
    assert_eq!(
        slots_by(&registry, "dispatcher"),
        vec![
            ("d-env-procs".to_owned(), 2),
            ("d-env-workers".to_owned(), 1),
            ("d-long-workers".to_owned(), 3),
            ("d-procs".to_owned(), 1),
            ("d-short-w".to_owned(), 2),
        ],
        "{registry:?}"
    );
    drop(daemons);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_takes_procs_and_the_old_positional_count() {
    let stack = Stack::builder(Mode::Push).worker_processes(0).start().await;
    let py = python().to_string_lossy().into_owned();
    let endpoint = format!("tcp://127.0.0.1:{}", stack.dispatcher_port());
    let env = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
    let cases: [Case; 4] = [
        ("w-procs", vec![&endpoint, "--procs", "1"], vec![]),
        ("w-positional", vec!["2", &endpoint], vec![]),
        ("w-env-procs", vec![&endpoint], env("FAAS_PROCS", "3")),
        ("w-env-old", vec![&endpoint], env("FAAS_WORKER_PROCS", "2")),
    ];
    let mut daemons: Vec<Daemon> = Vec::new();
    for (id, rest, env) in &cases {
        let mut args: Vec<&str> = vec!["push"];
        args.extend(rest.iter());
        args.extend(["--python", &py, "--id", id]);
        daemons.push(Daemon::spawn(
            id,
            bin("faas-worker"),
            &args,
            env,
            stack.dir().path(),
        ));
    }
    let registry = stack.wait_registered_workers(cases.len(), JOIN).await;
    assert_eq!(
        slots_by(&registry, "id"),
        vec![
            ("w-env-old".to_owned(), 2),
            ("w-env-procs".to_owned(), 3),
            ("w-positional".to_owned(), 2),
            ("w-procs".to_owned(), 1),
        ],
        "{registry:?}"
    );
    drop(daemons);
}

#[test]
fn bad_worker_arguments_are_usage_errors_that_say_why() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin("faas-worker"))
            .args(args)
            .output()
            .expect("run faas-worker");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // clap's usage errors exit 2; the daemon's own configuration errors exit 64.
    let (code, err) = run(&["local", "tcp://127.0.0.1:5555"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("push or pull") && err.contains("-m local"),
        "{err}"
    );
    let (code, err) = run(&["push", "two", "tcp://127.0.0.1:5555"]);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("\"two\" is not a number"), "{err}");
    let (code, err) = run(&["push", "2", "tcp://127.0.0.1:5555", "--procs", "3"]);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("two process counts"), "{err}");
    let (code, err) = run(&["push", "tcp://127.0.0.1:5555", "--procs", "0"]);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("--procs must be at least 1"), "{err}");
}

/// Without `bwrap` a daemon that runs Python children does not start: it says to install it,
/// or to pass `--sandbox none`. (Before, it fell back to no sandbox with a warning only.)
#[test]
fn no_bwrap_no_pool_unless_sandbox_none_is_asked_for() {
    // Removed on every exit, panics included.
    let dir = TestDir::new();
    let empty = dir.path().join("empty-path");
    std::fs::create_dir_all(&empty).expect("an empty PATH directory");
    let py = python().to_string_lossy().into_owned();
    let cases: [(&str, Vec<&str>); 2] = [
        (
            "faas-dispatcher",
            vec![
                "-m",
                "local",
                "--procs",
                "1",
                "--python",
                &py,
                "--redis",
                "redis://127.0.0.1:1",
            ],
        ),
        (
            "faas-worker",
            vec!["push", "tcp://127.0.0.1:1", "--procs", "1", "--python", &py],
        ),
    ];
    for (daemon, args) in cases {
        let out = std::process::Command::new(bin(daemon))
            .args(&args)
            .env("PATH", &empty)
            .env_remove("FAAS_SANDBOX")
            .output()
            .expect("run the daemon");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{daemon}: {err}");
        assert!(
            err.contains("`bwrap` is not on PATH")
                && err.contains("bubblewrap")
                && err.contains("--sandbox none"),
            "{daemon}: {err}"
        );
    }
}

/// A gateway beyond loopback without a token does not start (anyone who could connect could
/// run code and read every task) unless `--insecure-no-token` asks for it by name, and then
/// it says so in its log. Both before Redis is reached: the refusal never waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_beyond_loopback_needs_a_token_or_the_insecure_flag() {
    let dir = TestDir::new();
    let refused = std::process::Command::new(bin("faas-gateway"))
        .args(["--listen", "0.0.0.0:0", "--redis", "redis://127.0.0.1:1"])
        .env_remove("FAAS_TOKEN")
        .env_remove("FAAS_INSECURE_NO_TOKEN")
        .output()
        .expect("run faas-gateway");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(64), "{err}");
    assert!(
        err.contains("not a loopback address")
            && err.contains("--token")
            && err.contains("--insecure-no-token"),
        "{err}"
    );
    let args = [
        "--listen",
        "0.0.0.0:0",
        "--redis",
        "redis://127.0.0.1:1",
        "--insecure-no-token",
    ];
    let mut gateway = Daemon::spawn("gateway", bin("faas-gateway"), &args, &[], dir.path());
    assert!(
        gateway
            .wait_for_event(JOIN, |e| e.is("insecure_no_token"))
            .await,
        "{}",
        gateway.log_tail(20)
    );
    gateway.assert_running();
    let _ = gateway.stop();
}
