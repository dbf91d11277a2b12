//! A private `redis-server` per test, on its own free port, killed when the guard drops.
//!
//! One server per test rather than a shared one: tests flush, stop and restart Redis, and a
//! shared server makes them interfere (faktory-rs `launch_isolated_faktory` has the story).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::daemon::Daemon;
use crate::{free_port, wait_until};

/// How long a fresh redis-server gets to answer PING.
const START_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct RedisGuard {
    port: u16,
    dir: PathBuf,
    server: Option<Daemon>,
}

impl RedisGuard {
    /// Starts a server on a free port; its log and working directory are `dir`.
    pub async fn start(dir: &Path) -> Self {
        // The free port can be taken by someone else between our probe and the server's bind;
        // then the server exits at once and another port is tried.
        for _ in 0..5 {
            let mut guard = Self {
                port: free_port(),
                dir: dir.to_owned(),
                server: None,
            };
            if guard.try_start().await {
                return guard;
            }
        }
        panic!(
            "redis-server did not start; see {}",
            dir.join("redis.log").display()
        );
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn is_running(&self) -> bool {
        self.server.is_some()
    }

    /// The server's process id while it runs: for tests that signal it (SIGSTOP, SIGKILL).
    pub fn pid(&self) -> Option<u32> {
        self.server.as_ref().map(Daemon::pid)
    }

    /// Stops the server (the data goes with it: nothing is persisted).
    pub fn stop(&mut self) {
        if let Some(mut s) = self.server.take() {
            s.stop();
        }
    }

    /// Starts the server again on the same port, so clients holding the URL can reconnect.
    pub async fn restart(&mut self) {
        self.stop();
        // The port was just released; retry briefly in case the bind races the old socket.
        for _ in 0..5 {
            if self.try_start().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("redis-server did not restart on port {}", self.port);
    }

    /// True when the server answered PING within the start timeout.
    async fn try_start(&mut self) -> bool {
        let port = self.port.to_string();
        let dir = self.dir.to_string_lossy().into_owned();
        let args = [
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &dir,
        ];
        let mut server = Daemon::spawn("redis", "redis-server", &args, &[], &self.dir);
        let port = self.port;
        let up = wait_until(START_TIMEOUT, async || {
            server.exited().is_none() && ping(port).await
        })
        .await;
        if up {
            self.server = Some(server);
        } else {
            server.stop();
        }
        up
    }
}

/// A Redis reply, as the raw RESP client reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    /// `None` is the null bulk string.
    Bulk(Option<Vec<u8>>),
    /// `None` is the null array.
    Array(Option<Vec<Resp>>),
}

impl Resp {
    /// The reply as text (simple or bulk string), if it is one.
    pub fn as_str(&self) -> Option<String> {
        match self {
            Resp::Simple(s) => Some(s.clone()),
            Resp::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

impl RedisGuard {
    /// Runs one command over a fresh connection and returns the reply (panics if Redis does not
    /// answer within a few seconds): for tests that read keys the daemons keep, e.g. the
    /// worker registry, without a Redis client library.
    pub async fn command(&self, args: &[&str]) -> Resp {
        command(self.port, args)
            .await
            .unwrap_or_else(|e| panic!("redis {args:?}: {e}"))
    }

    /// `HGETALL key` as a map.
    pub async fn hgetall(&self, key: &str) -> BTreeMap<String, String> {
        match self.command(&["HGETALL", key]).await {
            Resp::Array(Some(items)) => items
                .chunks(2)
                .filter_map(|kv| Some((kv.first()?.as_str()?, kv.get(1)?.as_str()?)))
                .collect(),
            other => panic!("HGETALL {key}: unexpected reply {other:?}"),
        }
    }
}

/// One command on a fresh connection to `127.0.0.1:port`.
pub async fn command(port: u16, args: &[&str]) -> Result<Resp, String> {
    let mut req = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        req.extend_from_slice(a.as_bytes());
        req.extend_from_slice(b"\r\n");
    }
    let exchange = async {
        let mut s = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        s.write_all(&req).await.map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some((reply, _)) = parse_resp(&buf)? {
                return Ok(reply);
            }
            let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed mid-reply".to_owned());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| "no reply within 5 s".to_owned())?
}

/// Parses one reply from the start of `buf`: `Ok(None)` while it is incomplete, else the reply
/// and how many bytes it took.
fn parse_resp(buf: &[u8]) -> Result<Option<(Resp, usize)>, String> {
    let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let Some((&kind, line)) = buf[..eol].split_first() else {
        return Err("empty reply line".to_owned());
    };
    let line = String::from_utf8_lossy(line).into_owned();
    let rest = eol + 2;
    let number = || {
        line.parse::<i64>()
            .map_err(|e| format!("bad number {line:?}: {e}"))
    };
    match kind {
        b'+' => Ok(Some((Resp::Simple(line), rest))),
        b'-' => Ok(Some((Resp::Error(line), rest))),
        b':' => Ok(Some((Resp::Int(number()?), rest))),
        b'$' => {
            let Ok(len) = usize::try_from(number()?) else {
                return Ok(Some((Resp::Bulk(None), rest)));
            };
            if buf.len() < rest + len + 2 {
                return Ok(None);
            }
            let bytes = buf[rest..rest + len].to_vec();
            Ok(Some((Resp::Bulk(Some(bytes)), rest + len + 2)))
        }
        b'*' => {
            let Ok(len) = usize::try_from(number()?) else {
                return Ok(Some((Resp::Array(None), rest)));
            };
            let mut items = Vec::with_capacity(len);
            let mut at = rest;
            for _ in 0..len {
                match parse_resp(&buf[at..])? {
                    Some((item, used)) => {
                        items.push(item);
                        at += used;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((Resp::Array(Some(items)), at)))
        }
        other => Err(format!("unknown reply type {:?}", other as char)),
    }
}

/// A raw RESP `PING`, so the harness does not need a Redis client library.
pub async fn ping(port: u16) -> bool {
    let attempt = async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        s.write_all(b"PING\r\n").await.ok()?;
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).await.ok()?;
        Some(buf[..n].starts_with(b"+PONG"))
    };
    tokio::time::timeout(Duration::from_secs(1), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestDir;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn starts_stops_and_restarts_on_the_same_port() {
        let dir = TestDir::new();
        let mut redis = RedisGuard::start(dir.path()).await;
        let port = redis.port();
        assert!(ping(port).await);
        assert_eq!(redis.url(), format!("redis://127.0.0.1:{port}"));

        redis.stop();
        assert!(!ping(port).await, "redis still answers after stop");

        redis.restart().await;
        assert_eq!(redis.port(), port);
        assert!(ping(port).await);

        drop(redis);
        assert!(!ping(port).await, "redis still answers after drop");
    }

    #[test]
    fn resp_replies_parse_whole_or_not_at_all() {
        let reply = b"*2\r\n$1\r\na\r\n*2\r\n:5\r\n$-1\r\n";
        let expected = Resp::Array(Some(vec![
            Resp::Bulk(Some(b"a".to_vec())),
            Resp::Array(Some(vec![Resp::Int(5), Resp::Bulk(None)])),
        ]));
        assert_eq!(parse_resp(reply), Ok(Some((expected, reply.len()))));
        for cut in 0..reply.len() {
            assert_eq!(parse_resp(&reply[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(
            parse_resp(b"-ERR x\r\n"),
            Ok(Some((Resp::Error("ERR x".into()), 8)))
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashes_read_back_through_the_raw_client() {
        let dir = TestDir::new();
        let redis = RedisGuard::start(dir.path()).await;
        let set = redis.command(&["HSET", "h", "k1", "v 1", "k2", ""]).await;
        assert_eq!(set, Resp::Int(2));
        let all = redis.hgetall("h").await;
        assert_eq!(all.get("k1").map(String::as_str), Some("v 1"));
        assert_eq!(all.get("k2").map(String::as_str), Some(""));
        assert!(redis.hgetall("missing").await.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_guard_gets_its_own_server() {
        let dir = TestDir::new();
        let a = RedisGuard::start(dir.path()).await;
        let b = RedisGuard::start(dir.path()).await;
        assert_ne!(a.port(), b.port());
        assert!(ping(a.port()).await && ping(b.port()).await);
    }
}
