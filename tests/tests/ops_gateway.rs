//! The gateway's operational surface: bearer-token auth (401 without, 200 with, `/healthz` open),
//! Prometheus `/metrics` counters that move with tasks (the dispatcher's too, on
//! `--metrics-listen`), and a clean, prompt exit on SIGTERM.

use std::time::Duration;

use faas_tests::{assert_json_error, bin, free_port, wait_until, Mode, Stack, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "s3cret-token";

async fn get(url: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| json!({ "non_json_body": text })),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_is_required_on_every_route_but_healthz() {
    let stack = Stack::builder(Mode::Local)
        .without_dispatcher()
        .gateway_args(&["--token", TOKEN])
        .start()
        .await;
    let url = |p: &str| stack.url(p);

    assert_eq!(get(&url("/healthz"), None).await.0, StatusCode::OK);
    for path in ["/functions", "/workers", "/metrics", "/no/such/route"] {
        let reply = get(&url(path), None).await;
        assert_json_error(&reply, StatusCode::UNAUTHORIZED, path);
        let reply = get(&url(path), Some("wrong-token!")).await;
        assert_json_error(&reply, StatusCode::UNAUTHORIZED, path);
    }
    assert_eq!(get(&url("/functions"), Some(TOKEN)).await.0, StatusCode::OK);
    assert_eq!(get(&url("/workers"), Some(TOKEN)).await.0, StatusCode::OK);
    let (status, _) = get(&url("/no/such/route"), Some(TOKEN)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // POSTs are guarded before their body is looked at.
    let resp = reqwest::Client::new()
        .post(url("/register_function"))
        .json(&json!({"name": "f", "source": "def f(): pass", "entrypoint": "f"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // The CLI: refused without the token (and says how to fix it), accepted with it.
    let faas = |token: Option<&str>, env_token: Option<&str>| {
        let mut cmd = tokio::process::Command::new(bin("faas"));
        cmd.args(["--gateway", stack.base_url(), "functions"])
            .env_remove("FAAS_TOKEN")
            .kill_on_drop(true);
        if let Some(t) = token {
            cmd.args(["--token", t]);
        }
        if let Some(t) = env_token {
            cmd.env("FAAS_TOKEN", t);
        }
        async move { cmd.output().await.expect("run faas") }
    };
    let out = faas(None, None).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("401") && stderr.contains("--token"),
        "{stderr}"
    );
    assert!(faas(Some(TOKEN), None).await.status.success());
    assert!(faas(None, Some(TOKEN)).await.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_everything_is_open() {
    let stack = Stack::builder(Mode::Local)
        .without_dispatcher()
        .start()
        .await;
    assert_eq!(get(&stack.url("/functions"), None).await.0, StatusCode::OK);
    assert_eq!(get(&stack.url("/metrics"), None).await.0, StatusCode::OK);
}

/// The value of the series `series` (name plus labels exactly as rendered), if present.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Runs `div(6, 3)`, which completes, and `div(1, 0)`, which fails.
async fn one_completed_one_failed(stack: &Stack) {
    let fid = stack
        .register_source("div", "def div(a, b):\n    return a / b\n", "div")
        .await;
    let ok = stack.execute_json(fid, json!([6, 3]), json!({})).await;
    let bad = stack.execute_json(fid, json!([1, 0]), json!({})).await;
    assert_eq!(stack.wait_result(ok).await["status"], "COMPLETED");
    assert_eq!(stack.wait_result(bad).await["status"], "FAILED");
}

async fn scrape(stack: &Stack) -> String {
    let resp = stack
        .client()
        .get(stack.url("/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(resp.status(), StatusCode::OK);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain"), "{ct}");
    resp.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_counters_move_after_tasks() {
    let stack = Stack::start(Mode::Local).await;
    let before = scrape(&stack).await;
    assert_eq!(
        metric(&before, "faas_tasks_completed_total"),
        Some(0.0),
        "{before}"
    );
    assert_eq!(metric(&before, "faas_tasks_failed_total"), Some(0.0));
    assert_eq!(
        metric(&before, "faas_gateway_tasks_submitted_total"),
        Some(0.0)
    );
    assert_eq!(metric(&before, "faas_queue_depth"), Some(0.0));
    assert_eq!(metric(&before, "faas_redis_up"), Some(1.0));

    one_completed_one_failed(&stack).await;

    let after = scrape(&stack).await;
    assert_eq!(
        metric(&after, "faas_tasks_completed_total"),
        Some(1.0),
        "{after}"
    );
    assert_eq!(metric(&after, "faas_tasks_failed_total"), Some(1.0));
    assert_eq!(metric(&after, "faas_tasks_submitted_total"), Some(2.0));
    assert_eq!(
        metric(&after, "faas_gateway_tasks_submitted_total"),
        Some(2.0)
    );
    assert_eq!(metric(&after, "faas_queue_depth"), Some(0.0));
    assert_eq!(
        metric(
            &after,
            r#"faas_http_requests_total{route="/execute_function",method="POST",status="200"}"#
        ),
        Some(2.0)
    );
    // Requests are labelled by route template, not by the id in the path.
    assert!(
        metric(
            &after,
            r#"faas_http_requests_total{route="/result/{id}",method="GET",status="200"}"#
        )
        .is_some_and(|n| n >= 2.0),
        "{after}"
    );
    assert!(
        metric(
            &after,
            r#"faas_http_request_duration_seconds_count{route="/register_function",method="POST"}"#
        ) == Some(1.0),
        "{after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatcher_metrics_count_dispatches_results_and_workers() {
    let addr = format!("127.0.0.1:{}", free_port());
    let stack = Stack::builder(Mode::Push)
        .dispatcher_args(&["--metrics-listen", &addr])
        .start()
        .await;
    let url = format!("http://{addr}/metrics");
    let scrape = async || match reqwest::get(&url).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    // The stack is up once the gateway serves and the workers joined; the dispatcher's own
    // listener may come a moment later.
    let mut before = String::new();
    let up = wait_until(Duration::from_secs(10), async || {
        before = scrape().await;
        !before.is_empty()
    })
    .await;
    assert!(up, "the dispatcher does not serve /metrics on {url}");
    assert_eq!(
        metric(&before, "faas_dispatcher_tasks_dispatched_total"),
        Some(0.0),
        "{before}"
    );

    one_completed_one_failed(&stack).await;

    // The outcome is recorded right after the counters move, so one scrape may race it.
    let mut after = String::new();
    let moved = wait_until(Duration::from_secs(10), async || {
        after = scrape().await;
        metric(&after, "faas_dispatcher_tasks_dispatched_total") == Some(2.0)
            && metric(&after, "faas_dispatcher_task_duration_seconds_count") == Some(2.0)
    })
    .await;
    assert!(moved, "the dispatcher's counters did not move: {after}");
    for status in ["COMPLETED", "FAILED"] {
        let line = format!(r#"faas_dispatcher_results_total{{status="{status}"}}"#);
        assert_eq!(metric(&after, &line), Some(1.0), "{line} in {after}");
    }
    assert_eq!(
        metric(&after, "faas_dispatcher_task_duration_seconds_count"),
        Some(2.0),
        "{after}"
    );
    // The stack's one worker.
    assert_eq!(
        metric(&after, "faas_dispatcher_workers_online"),
        Some(1.0),
        "{after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_metrics_address_is_a_usage_error() {
    let out = std::process::Command::new(bin("faas-dispatcher"))
        .args(["-m", "local", "--metrics-listen", "not-an-address"])
        .output()
        .expect("run faas-dispatcher");
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not-an-address"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_depth_counts_tasks_nobody_took() {
    let stack = Stack::builder(Mode::Local)
        .without_dispatcher()
        .start()
        .await;
    let fid = stack
        .register_source("f", "def f():\n    return 1\n", "f")
        .await;
    for _ in 0..3 {
        stack.execute_json(fid, json!([]), json!({})).await;
    }
    let text = scrape(&stack).await;
    assert_eq!(metric(&text, "faas_queue_depth"), Some(3.0), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_gateway_promptly_with_exit_0() {
    let mut stack = Stack::builder(Mode::Local)
        .without_dispatcher()
        .gateway_args(&["--shutdown-grace-ms", "500"])
        .start()
        .await;
    // A long poll on a task that never runs (no dispatcher) is in flight when SIGTERM comes.
    let fid = stack
        .register_source("f", "def f():\n    return 1\n", "f")
        .await;
    let tid = stack.execute_json(fid, json!([]), json!({})).await;
    let addr = stack.base_url().trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let request = format!("GET /result/{tid}?wait=60000 HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    conn.write_all(request.as_bytes()).await.unwrap();
    conn.flush().await.unwrap();

    // Daemon::stop sends SIGTERM and SIGKILLs only after its own grace: a success here means
    // the gateway exited by itself, long poll notwithstanding.
    let status = stack.gateway().stop().expect("gateway was running");
    assert!(status.success(), "gateway exited with {status}");

    // The long poll was closed, not left hanging.
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the long-poll connection was left open");
    let gone = wait_until(Duration::from_secs(5), async || {
        stack.healthz().await.is_none()
    })
    .await;
    assert!(gone, "the gateway still answers after SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_tells_systemd_it_is_ready() {
    let dir = faas_tests::TestDir::new();
    let socket_path = dir.path().join("notify.sock");
    let socket = tokio::net::UnixDatagram::bind(&socket_path).unwrap();
    let stack = Stack::builder(Mode::Local)
        .without_dispatcher()
        .env("NOTIFY_SOCKET", &socket_path)
        .start()
        .await;
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(20), socket.recv(&mut buf))
        .await
        .expect("no sd_notify message from the gateway")
        .unwrap();
    assert_eq!(&buf[..n], b"READY=1\n");
    assert_eq!(stack.healthz().await, Some(StatusCode::OK));
}

/// Under `Type=notify` every daemon says READY=1 once it serves: here the gateway, the push
/// dispatcher and its worker share one notify socket, so three messages arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_daemon_tells_systemd_it_is_ready() {
    let dir = faas_tests::TestDir::new();
    let socket_path = dir.path().join("notify.sock");
    let socket = tokio::net::UnixDatagram::bind(&socket_path).unwrap();
    let stack = Stack::builder(Mode::Push)
        .env("NOTIFY_SOCKET", &socket_path)
        .start()
        .await;
    let mut buf = [0u8; 256];
    for i in 0..3 {
        let n = tokio::time::timeout(Duration::from_secs(20), socket.recv(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("only {i} of 3 daemons sent READY=1"))
            .unwrap();
        assert_eq!(&buf[..n], b"READY=1\n");
    }
    drop(stack);
}
