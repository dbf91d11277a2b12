//! The daemons' connections to Redis: dialled here, so that a Unix socket asks epoll for
//! reads only ([`QuietUnix`]), and the shared connection that dials again once it is lost
//! ([`Redial`], in place of redis-rs's `ConnectionManager`, which can only dial its own
//! streams).
//!
//! Why not tokio's `UnixStream`: tokio registers every socket for reads *and* writes. A Unix
//! socket, unlike a TCP one (which wakes a writer only after a write found its buffer full),
//! wakes everything waiting to write on it each time its peer reads from it. So each command
//! Redis read woke the daemon that had sent it, if that daemon was asleep in `epoll_wait` by
//! then, only for it to find nothing to do: on a small machine, a context switch in the daemon,
//! and a wake-up across CPUs (an inter-processor interrupt, dear in a VM) paid by Redis in the
//! middle of serving the command. Per lone Python round trip, that was 1.4 of the dispatcher's
//! 3.9 context switches and 0.4 of the gateway's 3.1, and 5-10 % of the round trip (issue #12,
//! stop 16 in `demo/bench/README.md`).
//!
//! [`QuietUnix`] is registered for reads only. A write that would block registers a duplicate
//! of the descriptor for writes, dropped once a write goes through; Redis reads as fast as a
//! daemon writes, so that is rare.
//!
//! TCP and TLS URLs are dialled by redis-rs as before.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt, Shared};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Cmd, ConnectionAddr, Pipeline, RedisFuture, Value};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

/// A connected Unix socket, registered with the runtime for reads only (see the module docs).
#[derive(Debug)]
pub struct QuietUnix {
    socket: AsyncFd<UnixStream>,
    /// While a write would block: a duplicate of the descriptor, registered for writes.
    write_wait: Option<AsyncFd<OwnedFd>>,
}

impl QuietUnix {
    pub async fn connect(path: &Path) -> io::Result<Self> {
        // Connecting is the one step that waits to write (a full listen backlog); tokio's
        // stream does that, then leaves the runtime.
        let socket = tokio::net::UnixStream::connect(path).await?.into_std()?;
        socket.set_nonblocking(true)?;
        Ok(Self {
            socket: register(socket, Interest::READABLE)?,
            write_wait: None,
        })
    }
}

/// Registers `fd` with the runtime for `interest`.
#[allow(unsafe_code)]
fn register<T: AsRawFd>(fd: T, interest: Interest) -> io::Result<AsyncFd<T>> {
    // SAFETY: `T` (a `UnixStream` or an `OwnedFd`) owns its descriptor and closes it only when
    // dropped, after the `AsyncFd` that owns it has deregistered it.
    unsafe { AsyncFd::register_with_interest(fd, interest).map_err(Into::into) }
}

impl AsyncRead for QuietUnix {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.socket.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|s| s.get_ref().read(unfilled)) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for QuietUnix {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            match this.socket.get_ref().write(buf) {
                Ok(n) => {
                    this.write_wait = None;
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Poll::Ready(Err(e)),
                Err(_) => {}
            }
            // Registered after the write that would block: a registration reports the
            // socket writable at once if room was made in between, so no wake-up is lost.
            if this.write_wait.is_none() {
                let copy = this.socket.get_ref().as_fd().try_clone_to_owned()?;
                this.write_wait = Some(register(copy, Interest::WRITABLE)?);
            }
            let wait = this.write_wait.as_ref().expect("registered above");
            ready!(wait.poll_write_ready(cx))?.clear_ready();
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.socket.get_ref().shutdown(std::net::Shutdown::Write))
    }
}

/// One multiplexed connection to the client's Redis, within `dial_timeout`.
pub async fn dial(
    client: &redis::Client,
    config: &AsyncConnectionConfig,
    dial_timeout: Duration,
) -> redis::RedisResult<MultiplexedConnection> {
    let info = client.get_connection_info();
    let ConnectionAddr::Unix(path) = info.addr() else {
        let config = config.clone().set_connection_timeout(Some(dial_timeout));
        return client
            .get_multiplexed_async_connection_with_config(&config)
            .await;
    };
    let dialled = tokio::time::timeout(dial_timeout, async {
        let stream = QuietUnix::connect(path).await?;
        let (conn, driver) =
            MultiplexedConnection::new_with_config(info.redis_settings(), stream, config.clone())
                .await?;
        // The driver ends when the socket closes or every clone of `conn` is dropped.
        tokio::spawn(driver);
        Ok(conn)
    });
    match dialled.await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no connection to redis within {dial_timeout:?}"),
        )
        .into()),
    }
}

/// A multiplexed connection shared by all its clones, dialled again by the first command after
/// it was lost (an error that redis-rs says needs a new connection). Commands bound their own
/// time ([`super::Guarded`]); a lost connection costs the command that found it lost, as with
/// redis-rs's `ConnectionManager`. A dial runs in a task of its own, within `dial_timeout`, and
/// concurrent commands wait for the same one: a command's bound, shorter than a slow Redis's
/// handshake, may end the command's wait but never the dial, which the next command finds done.
#[derive(Clone)]
pub struct Redial(Arc<RedialInner>);

impl std::fmt::Debug for Redial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &*self.0.state.lock().expect("redial lock") {
            Link::Down(_) => "down".to_owned(),
            Link::Dialling(n, _) => format!("dialling connection {n}"),
            Link::Up(n, _) => format!("connection {n}"),
        };
        f.debug_struct("Redial").field("state", &state).finish()
    }
}

/// A dial in progress, awaited by every command that needs it.
type Dial = Shared<BoxFuture<'static, redis::RedisResult<MultiplexedConnection>>>;

/// Where the shared connection stands. Connections are numbered in the order they are dialled,
/// so that news of a lost or failed one never discards a newer one; `Down` keeps the number of
/// the last one (0: none yet).
enum Link {
    Down(u64),
    Dialling(u64, Dial),
    Up(u64, MultiplexedConnection),
}

struct RedialInner {
    client: redis::Client,
    config: AsyncConnectionConfig,
    dial_timeout: Duration,
    state: Mutex<Link>,
}

impl Redial {
    /// Dials now, so that a Redis that is not there is reported at once.
    pub async fn connect(
        client: redis::Client,
        config: AsyncConnectionConfig,
        dial_timeout: Duration,
    ) -> redis::RedisResult<Self> {
        let redial = Self(Arc::new(RedialInner {
            client,
            config,
            dial_timeout,
            state: Mutex::new(Link::Down(0)),
        }));
        redial.current().await?;
        Ok(redial)
    }

    async fn current(&self) -> redis::RedisResult<(u64, MultiplexedConnection)> {
        let (number, pending) = {
            let mut state = self.0.state.lock().expect("redial lock");
            match &*state {
                Link::Up(n, conn) => return Ok((*n, conn.clone())),
                Link::Dialling(n, pending) => (*n, pending.clone()),
                Link::Down(last) => {
                    let number = last + 1;
                    // The task owns clones, not the `Arc`, so that a dial never keeps a
                    // dropped `Redial` alive.
                    let (client, config, bound) = (
                        self.0.client.clone(),
                        self.0.config.clone(),
                        self.0.dial_timeout,
                    );
                    let pending = async move { dial(&client, &config, bound).await }
                        .boxed()
                        .shared();
                    tokio::spawn(pending.clone().map(drop));
                    *state = Link::Dialling(number, pending.clone());
                    (number, pending)
                }
            }
        };
        let result = pending.await;
        let mut state = self.0.state.lock().expect("redial lock");
        if matches!(&*state, Link::Dialling(n, _) if *n == number) {
            *state = match &result {
                Ok(conn) => Link::Up(number, conn.clone()),
                Err(_) => Link::Down(number),
            };
        }
        result.map(|conn| (number, conn))
    }

    /// Forgets connection `number` after `result` if that says it is lost (not if a newer one
    /// is in use already).
    fn check<T>(&self, number: u64, result: &redis::RedisResult<T>) {
        if let Err(e) = result {
            if e.is_unrecoverable_error() {
                let mut state = self.0.state.lock().expect("redial lock");
                if matches!(&*state, Link::Up(n, _) if *n == number) {
                    *state = Link::Down(number);
                }
            }
        }
    }
}

impl ConnectionLike for Redial {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let (number, mut conn) = self.current().await?;
            let result = conn.req_packed_command(cmd).await;
            self.check(number, &result);
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let (number, mut conn) = self.current().await?;
            let result = conn.req_packed_commands(pipeline, offset, count).await;
            self.check(number, &result);
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.0.client.get_connection_info().redis_settings().db()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Far more than a Unix socket buffers, so that writes must wait for the reader: a lost
    /// wake-up of a blocked write (or read) would hang, and the test's bound fails it.
    const BIG: usize = 8 << 20;

    /// A directory removed however the test ends.
    struct Dir(std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A socket listening at `name` in a directory of its own, removed with the `Dir`.
    fn listening(name: &str) -> (Dir, std::path::PathBuf, tokio::net::UnixListener) {
        let dir = Dir(std::env::temp_dir().join(format!("faas-{name}-{}", std::process::id())));
        std::fs::create_dir_all(&dir.0).expect("temp dir");
        let path = dir.0.join(format!("{name}.sock"));
        let listener = tokio::net::UnixListener::bind(&path).expect("bind");
        (dir, path, listener)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_quiet_socket_carries_more_than_its_buffer_both_ways() {
        let (_dir, path, listener) = listening("link");
        let peer = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut got = vec![0; BIG];
            s.read_exact(&mut got).await.expect("peer reads");
            s.write_all(&got).await.expect("peer echoes");
            got
        });
        let sent: Vec<u8> = (0..BIG).map(|i| (i % 251) as u8).collect();
        let exchange = async {
            let mut quiet = QuietUnix::connect(&path).await.expect("connect");
            quiet.write_all(&sent).await.expect("write");
            let mut echo = vec![0; BIG];
            quiet.read_exact(&mut echo).await.expect("read");
            echo
        };
        let echo = tokio::time::timeout(Duration::from_secs(60), exchange)
            .await
            .expect("neither side may stall");
        let got = peer.await.expect("peer");
        assert!(got == sent, "the peer read what was written");
        assert!(echo == sent, "and what it wrote back was read");
    }

    /// A stand-in for Redis on a Unix socket: answers PING with `+PONG` at once, and every
    /// other command (the client's handshake) with `+OK` after `delay` on the connections
    /// numbered in `slow` (from 0). Connection 0 is closed when `close_first` fires.
    async fn fake_redis(
        listener: tokio::net::UnixListener,
        delay: Duration,
        slow: std::ops::Range<usize>,
        close_first: Arc<tokio::sync::Notify>,
    ) {
        for n in 0.. {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let (delay, close) = (
                if slow.contains(&n) {
                    delay
                } else {
                    Duration::ZERO
                },
                close_first.clone(),
            );
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    while let Some((args, used)) = resp_command(&buf) {
                        buf.drain(..used);
                        let ping = args
                            .first()
                            .is_some_and(|a| a.eq_ignore_ascii_case(b"PING"));
                        let reply: &[u8] = if ping {
                            b"+PONG\r\n"
                        } else {
                            tokio::time::sleep(delay).await;
                            b"+OK\r\n"
                        };
                        if s.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                    let mut chunk = [0; 4096];
                    let read = tokio::select! {
                        r = s.read(&mut chunk) => r,
                        () = close.notified(), if n == 0 => return,
                    };
                    match read {
                        Ok(0) | Err(_) => return,
                        Ok(k) => buf.extend_from_slice(&chunk[..k]),
                    }
                }
            });
        }
    }

    /// One complete RESP command at the start of `buf`: its arguments and its length.
    fn resp_command(buf: &[u8]) -> Option<(Vec<Vec<u8>>, usize)> {
        fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
            let end = buf.get(at..)?.windows(2).position(|w| w == b"\r\n")? + at;
            Some((&buf[at..end], end + 2))
        }
        let (head, mut at) = line(buf, 0)?;
        let n: usize = std::str::from_utf8(head.strip_prefix(b"*")?)
            .ok()?
            .parse()
            .ok()?;
        let mut args = Vec::new();
        for _ in 0..n {
            let (len, next) = line(buf, at)?;
            let len: usize = std::str::from_utf8(len.strip_prefix(b"$")?)
                .ok()?
                .parse()
                .ok()?;
            args.push(buf.get(next..next + len)?.to_vec());
            at = next + len + 2;
            if buf.len() < at {
                return None;
            }
        }
        Some((args, at))
    }

    /// Dialling again after a lost connection goes on in a task of its own: commands whose
    /// bound (here 200 ms) is shorter than the handshake (2 s: redis-rs sends two commands)
    /// time out, but the dial finishes, and a later command uses it. Dialled inside each
    /// command, every dial would be cut short (checked against the first version).
    #[tokio::test(flavor = "current_thread")]
    async fn a_redial_outlives_the_commands_that_wait_for_it() {
        let (_dir, path, listener) = listening("redial");
        let close_first = Arc::new(tokio::sync::Notify::new());
        let server = tokio::spawn(fake_redis(
            listener,
            Duration::from_secs(1),
            1..usize::MAX,
            close_first.clone(),
        ));
        let client = redis::Client::open(format!("unix://{}", path.display())).expect("url");
        let config =
            AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(5)));
        let mut redial = Redial::connect(client, config, Duration::from_secs(10))
            .await
            .expect("the first connection");
        let ping = |mut r: Redial| async move {
            let bound = Duration::from_millis(200);
            let reply =
                tokio::time::timeout(bound, redis::cmd("PING").query_async::<String>(&mut r)).await;
            matches!(reply, Ok(Ok(ref pong)) if pong == "PONG")
        };
        assert!(ping(redial.clone()).await, "connection 0 answers at once");
        close_first.notify_one();
        // The command that finds connection 0 closed fails; one after it starts the dial.
        let lost = redis::cmd("PING").query_async::<String>(&mut redial).await;
        assert!(lost.is_err(), "{lost:?}");
        assert!(
            !ping(redial.clone()).await,
            "connection 1's handshake takes 2 s"
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut answered = false;
        while !answered && tokio::time::Instant::now() < deadline {
            answered = ping(redial.clone()).await;
        }
        server.abort();
        assert!(answered, "{redial:?}");
    }
}
