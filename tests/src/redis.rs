//! A private `redis-server` per test, on its own free port, killed when the guard drops.
//!
//! One server per test rather than a shared one: tests flush, stop and restart Redis, and a
//! shared server makes them interfere (faktory-rs `launch_isolated_faktory` has the story).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// A Redis reply, as [`command`] returns it.
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
    /// worker registry.
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

/// One command on a fresh connection to `127.0.0.1:port` (the `redis` crate's client), with
/// error replies returned as [`Resp::Error`].
pub async fn command(port: u16, args: &[&str]) -> Result<Resp, String> {
    command_within(port, args, Duration::from_secs(5)).await
}

async fn command_within(port: u16, args: &[&str], timeout: Duration) -> Result<Resp, String> {
    let (name, rest) = args.split_first().ok_or("no command given")?;
    let mut cmd = redis::cmd(name);
    cmd.arg(rest);
    let exchange = async {
        let client =
            redis::Client::open(format!("redis://127.0.0.1:{port}/")).map_err(|e| e.to_string())?;
        // The client's own response timeout (500 ms by default) would be shorter than ours.
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let mut con = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| e.to_string())?;
        match cmd.query_async::<redis::Value>(&mut con).await {
            Ok(value) => Ok(Resp::from(value)),
            Err(e) => match e.code() {
                Some(code) => Ok(Resp::Error(
                    format!("{code} {}", e.detail().unwrap_or_default())
                        .trim_end()
                        .to_owned(),
                )),
                None => Err(e.to_string()),
            },
        }
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("no reply within {timeout:?}"))?
}

impl From<redis::Value> for Resp {
    fn from(value: redis::Value) -> Self {
        use redis::Value as V;
        let all = |items: Vec<V>| Resp::Array(Some(items.into_iter().map(Resp::from).collect()));
        match value {
            V::Nil => Resp::Bulk(None),
            V::Int(n) => Resp::Int(n),
            V::BulkString(b) => Resp::Bulk(Some(b)),
            V::Array(items) | V::Set(items) => all(items),
            V::Map(pairs) => all(pairs.into_iter().flat_map(|(k, v)| [k, v]).collect()),
            V::SimpleString(s) => Resp::Simple(s),
            V::Okay => Resp::Simple("OK".to_owned()),
            V::ServerError(e) => Resp::Error(format!("{e:?}")),
            // RESP3 only; the harness speaks RESP2.
            other => Resp::Simple(format!("{other:?}")),
        }
    }
}

/// Whether Redis on `127.0.0.1:port` answers PING within a second.
pub async fn ping(port: u16) -> bool {
    matches!(
        command_within(port, &["PING"], Duration::from_secs(1)).await,
        Ok(Resp::Simple(s)) if s == "PONG"
    )
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashes_and_errors_read_back_through_the_client() {
        let dir = TestDir::new();
        let redis = RedisGuard::start(dir.path()).await;
        let set = redis.command(&["HSET", "h", "k1", "v 1", "k2", ""]).await;
        assert_eq!(set, Resp::Int(2));
        let all = redis.hgetall("h").await;
        assert_eq!(all.get("k1").map(String::as_str), Some("v 1"));
        assert_eq!(all.get("k2").map(String::as_str), Some(""));
        assert!(redis.hgetall("missing").await.is_empty());
        let err = redis.command(&["NOSUCHCOMMAND", "x"]).await;
        assert!(
            matches!(&err, Resp::Error(e) if e.starts_with("ERR")),
            "{err:?}"
        );
        assert_eq!(
            redis.command(&["SET", "k", "v"]).await,
            Resp::Simple("OK".into())
        );
        assert_eq!(redis.command(&["GET", "nothing"]).await, Resp::Bulk(None));
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
