//! The gateway's HTTP edge under clients that hold connections: idle half-open connections
//! do not starve new requests, silent connections are closed, and the connection cap is
//! logged and waited at, not failed at.

use std::time::Duration;

use faas_tests::{
    bin, free_port, wait_until, within, Daemon, LogEvent, RedisGuard, StatusCode, TestDir,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A request head that never ends: the blank line that would finish it is never sent.
const HALF_SENT: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n";

/// A gateway started under `prlimit` with a soft open-file limit of 1,024 (a shell's default),
/// with `extra` flags; answers `/healthz` when this returns.
async fn gateway_with_soft_limit(
    dir: &TestDir,
    redis: &RedisGuard,
    extra: &[&str],
) -> (Daemon, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let gateway = bin("faas-gateway").to_string_lossy().into_owned();
    let redis_url = redis.url();
    let mut args = vec![
        "--nofile=1024:",
        "--",
        &gateway,
        "--listen",
        &listen,
        "--redis",
        &redis_url,
    ];
    args.extend_from_slice(extra);
    let mut daemon = Daemon::spawn("gateway", "prlimit", &args, &[], dir.path());
    let url = format!("http://{listen}");
    let client = reqwest::Client::new();
    let up = wait_until(Duration::from_secs(20), async || {
        daemon.assert_running();
        matches!(client.get(format!("{url}/healthz")).send().await, Ok(r) if r.status() == StatusCode::OK)
    })
    .await;
    assert!(up, "gateway not healthy:\n{}", daemon.log_tail(20));
    (daemon, url)
}

/// Raises this test process's own soft open-file limit, so that it can hold the connections;
/// returns the hard limit.
fn raise_own_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let target = hard.min(1 << 20);
    setrlimit(Resource::RLIMIT_NOFILE, target, hard).unwrap();
    target
}

/// Opens `n` connections that each send half a request head and then say nothing.
async fn hold_half_open(addr: &str, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        s.write_all(HALF_SENT).await.unwrap();
        held.push(s);
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_half_open_connections_do_not_starve_a_new_request() {
    const HELD: usize = 2_000;
    let hard = raise_own_limit();
    if hard < 4 * HELD as u64 {
        eprintln!("skipped: the hard open-file limit ({hard}) is too low to hold {HELD} connections on both sides");
        return;
    }
    let dir = TestDir::new();
    let redis = RedisGuard::start(dir.path()).await;
    // A header timeout far longer than the test: it is the raised limit that lets these in,
    // not the timeout closing them.
    let (gateway, url) =
        gateway_with_soft_limit(&dir, &redis, &["--header-timeout-ms", "120000"]).await;
    assert!(
        gateway.count_events(|e| e.is("nofile_raised")) == 1,
        "the gateway did not log raising its limit:\n{}",
        gateway.log_tail(20)
    );
    let addr = url.trim_start_matches("http://").to_owned();
    let held = hold_half_open(&addr, HELD).await;

    let client = reqwest::Client::new();
    let reply = within(
        Duration::from_secs(1),
        "a new request while 2,000 half-open connections are held",
        client.get(format!("{url}/healthz")).send(),
    )
    .await
    .expect("GET /healthz");
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(
        gateway.count_events(|e| e.is("accept_failed")),
        0,
        "the gateway ran out of descriptors:\n{}",
        gateway.log_tail(20)
    );
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed_after_the_header_timeout() {
    let dir = TestDir::new();
    let redis = RedisGuard::start(dir.path()).await;
    let (_gateway, url) =
        gateway_with_soft_limit(&dir, &redis, &["--header-timeout-ms", "300"]).await;
    let addr = url.trim_start_matches("http://");
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(HALF_SENT).await.unwrap();
    let mut idle = TcpStream::connect(addr).await.unwrap();
    for (what, s) in [
        ("half-sent head", &mut half),
        ("idle connection", &mut idle),
    ] {
        let mut buf = [0u8; 1024];
        // The gateway closes it (reading returns 0 bytes, or a reset) rather than keeping it.
        let mut rest = Vec::new();
        let closed = within(Duration::from_secs(10), what, async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return true,
                    Ok(n) => rest.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        assert!(
            closed,
            "{what}: not closed; got {:?}",
            String::from_utf8_lossy(&rest)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_new_connections_wait_and_the_log_says_so() {
    const CAP: usize = 20;
    let dir = TestDir::new();
    let redis = RedisGuard::start(dir.path()).await;
    let cap = CAP.to_string();
    let (gateway, url) = gateway_with_soft_limit(
        &dir,
        &redis,
        &["--max-connections", &cap, "--header-timeout-ms", "120000"],
    )
    .await;
    let addr = url.trim_start_matches("http://").to_owned();
    let held = hold_half_open(&addr, CAP).await;
    // Logged once per crossing of the cap, not per waiting connection: `connection_limit` and
    // `connection_limit_cleared` alternate, and the last one says the gateway is at the cap now.
    // (The start-up health check's kept-alive connection may close just after the cap is first
    // reached: one crossing more.)
    let crossings = || -> Vec<LogEvent> {
        gateway
            .events()
            .into_iter()
            .filter(|e| e.is("connection_limit") || e.is("connection_limit_cleared"))
            .collect()
    };
    let logged = wait_until(Duration::from_secs(10), async || {
        crossings().last().is_some_and(|e| e.is("connection_limit"))
    })
    .await;
    assert!(logged, "no log line at the cap:\n{}", gateway.log_tail(20));
    let seen = crossings();
    for (i, e) in seen.iter().enumerate() {
        match i % 2 {
            0 => assert!(
                e.is("connection_limit") && e.number("max_connections") == Some(CAP as u64),
                "{seen:?}"
            ),
            _ => assert!(e.is("connection_limit_cleared"), "{seen:?}"),
        }
    }

    // A request now waits in the backlog, and is answered once a held connection closes.
    let client = reqwest::Client::new();
    let waiting = tokio::spawn(client.get(format!("{url}/healthz")).send());
    drop(held);
    let reply = within(
        Duration::from_secs(10),
        "the request waiting at the cap",
        waiting,
    )
    .await
    .unwrap()
    .expect("GET /healthz");
    assert_eq!(reply.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polls_beyond_their_share_are_answered_at_once() {
    use faas_tests::{Mode, Stack};
    use serde_json::json;
    // --max-connections 10: at most 5 long polls wait at once.
    let stack = Stack::builder(Mode::Local)
        .without_dispatcher()
        .gateway_args(&["--max-connections", "10"])
        .start()
        .await;
    let fid = stack
        .register_source("add", "def add(a, b):\n    return a + b\n", "add")
        .await;
    // No dispatcher: the task stays QUEUED, so every wait would run its full 30 s.
    let tid = stack.execute_json(fid, json!([1, 2]), json!({})).await;
    let url = stack.url(&format!("/result/{tid}?wait=30000"));
    let mut polls = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let url = url.clone();
        polls.spawn(async move {
            let reply = reqwest::get(&url).await.expect("GET /result");
            let status = reply.status();
            let body: serde_json::Value = reply.json().await.expect("JSON");
            (status, body)
        });
    }
    // Whichever of the six found no wait slot answers now, not after 30 s.
    let (status, body) = within(
        Duration::from_secs(10),
        "a long poll beyond the share",
        polls.join_next(),
    )
    .await
    .expect("six polls")
    .expect("poll task");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "QUEUED", "{body}");
    polls.abort_all();
}
