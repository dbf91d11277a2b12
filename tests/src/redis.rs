//! A private `redis-server` per test, on its own free port, killed when the guard drops.
//!
//! One server per test rather than a shared one: tests flush, stop and restart Redis, and a
//! shared server makes them interfere (faktory-rs `launch_isolated_faktory` has the story).

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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_guard_gets_its_own_server() {
        let dir = TestDir::new();
        let a = RedisGuard::start(dir.path()).await;
        let b = RedisGuard::start(dir.path()).await;
        assert_ne!(a.port(), b.port());
        assert!(ping(a.port()).await && ping(b.port()).await);
    }
}
