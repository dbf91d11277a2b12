//! Pull mode's transport: this worker asks for work over REQ sockets; the dispatcher holds each
//! poll until it has a task or the long-poll ends, so an idle worker costs close to nothing.
//!
//! Two REQ sockets: a control socket (hello, heartbeat, result, leaving, bye; each answered at
//! once) and a work socket (poll; answered with a task or `no_work`), so a held poll never
//! delays a result. A REQ socket whose answer does not come in time is thrown away and built
//! again (the "lazy pirate" pattern): the `zeromq` crate does not reconnect it by itself.
//! Each new REQ socket does the channel handshake (with a key) before its first request.
//! A REQ socket takes nothing unasked, so a `cancel` comes as the answer to a control request;
//! the worker then beats again at once, to collect the next one. A `drain` comes the same way,
//! or as the answer to a poll.

use std::sync::Arc;
use std::time::Duration;

use faas_protocol::wire::{self, ToDispatcher, ToWorker};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use zeromq::{ReqSocket, Socket, SocketRecv, SocketSend, ZmqMessage};

use super::life::{End, Join, Transport};
use super::{Core, WorkerError};
use crate::backoff::Backoff;
use crate::channel::{self, ChannelError, ChannelKey, Link};

/// Longest a poll may stay unanswered before the socket is presumed dead; well above the
/// dispatcher's long-poll.
const POLL_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) struct Pull {
    control: Req,
    heartbeat: Duration,
    /// Stops asking for work (drain).
    stop_polling: CancellationToken,
    /// Gives up a poll still held after `bye`.
    abandon_poll: CancellationToken,
    /// The work socket was told this worker is unknown: the control socket says hello again.
    rejoin: Arc<Notify>,
    work: Option<JoinHandle<()>>,
}

impl Pull {
    /// Starts the work loop; it polls whenever a child is free, joined or not (a poll of a
    /// worker the dispatcher does not know is answered "rejoin").
    pub(super) fn new(core: &Arc<Core>) -> Self {
        let stop_polling = CancellationToken::new();
        let abandon_poll = CancellationToken::new();
        let rejoin = Arc::new(Notify::new());
        let work = tokio::spawn(work_loop(
            core.clone(),
            stop_polling.clone(),
            abandon_poll.clone(),
            rejoin.clone(),
        ));
        Self {
            control: Req::new(&core.cfg.endpoint, core.cfg.key.clone(), true),
            heartbeat: core.cfg.heartbeat,
            stop_polling,
            abandon_poll,
            rejoin,
            work: Some(work),
        }
    }
}

impl Drop for Pull {
    fn drop(&mut self) {
        self.stop_polling.cancel();
        self.abandon_poll.cancel();
    }
}

impl Transport for Pull {
    async fn join(&mut self, core: &Arc<Core>, shutdown: &CancellationToken) -> Join {
        match self
            .control
            .request(&core.hello(), self.heartbeat * 3, shutdown)
            .await
        {
            Ok(ToWorker::Welcome {
                dispatcher,
                heartbeat_ms,
            }) => {
                self.heartbeat = Duration::from_millis(heartbeat_ms.max(50));
                Join::Joined(dispatcher)
            }
            Ok(ToWorker::Refused {
                reason,
                rejoin: false,
            }) => Join::Refused(reason),
            Ok(other) => {
                debug!(?other, "unexpected answer to hello");
                Join::Retry {
                    key_mismatch: false,
                }
            }
            Err(_) if shutdown.is_cancelled() => Join::Shutdown,
            Err(reason) => {
                debug!(event = "hello_unanswered", reason, "no answer to hello yet");
                Join::Retry {
                    key_mismatch: self.control.key_mismatch,
                }
            }
        }
    }

    async fn say(&mut self, core: &Arc<Core>, msg: &ToDispatcher) -> Result<(), End> {
        // Not raced against shutdown: a result once sent is answered or times out.
        let never = CancellationToken::new();
        let timeout = self.heartbeat * 3;
        let mut answer = self.control.request(msg, timeout, &never).await;
        loop {
            match answer {
                Ok(ToWorker::Cancel { task_id }) => core.cancel(task_id),
                Ok(ToWorker::Drain) => {
                    core.drain();
                    break;
                }
                _ => break,
            }
            answer = self
                .control
                .request(&core.heartbeat(), timeout, &never)
                .await;
        }
        match answer {
            Ok(ToWorker::Refused { rejoin: true, .. }) => {
                // Not accepted from a connection that has not joined: again after hello.
                debug!("the dispatcher does not know this worker; joining again");
                Err(End::Rejoin)
            }
            Ok(_) => Ok(()),
            Err(reason) => {
                warn!(
                    event = "dispatcher_unanswered",
                    reason, "dispatcher not answering; reconnecting"
                );
                Err(End::Reconnect(reason))
            }
        }
    }

    async fn heard(&mut self, _core: &Arc<Core>) -> Result<Option<End>, WorkerError> {
        self.rejoin.notified().await;
        Ok(Some(End::Rejoin))
    }

    fn silent(&self) -> bool {
        // Every control request has its own timeout.
        false
    }

    fn heartbeat(&self) -> Duration {
        self.heartbeat
    }

    fn stop_tasks(&mut self) {
        self.stop_polling.cancel();
    }

    fn settled(&self) -> bool {
        // `leaving` was a request: its answer came, so no poll of this worker is answered
        // with a task any more.
        true
    }

    async fn close(&mut self) {
        // A poll still waiting now waits for a dispatcher that is gone or has been told `bye`
        // (which re-queues anything it might still hand this worker).
        self.stop_polling.cancel();
        self.abandon_poll.cancel();
        if let Some(work) = self.work.take() {
            let _ = work.await;
        }
    }
}

/// Asks for one task whenever a child is free.
async fn work_loop(
    core: Arc<Core>,
    stop: CancellationToken,
    abandon: CancellationToken,
    rejoin: Arc<Notify>,
) {
    // The control socket reports handshake failures; this one would only repeat them.
    let mut socket = Req::new(&core.cfg.endpoint, core.cfg.key.clone(), false);
    let poll = ToDispatcher::Poll {
        worker: core.cfg.id.clone(),
    };
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
    while !stop.is_cancelled() {
        let slot = tokio::select! {
            _ = stop.cancelled() => return,
            slot = core.pool.acquire() => match slot { Some(s) => s, None => return },
        };
        // Not raced against `stop`: once asked, the answer may be a task that must run.
        // `leaving` makes the dispatcher answer a held poll at once; `abandon` comes after bye.
        match socket.request(&poll, POLL_TIMEOUT, &abandon).await {
            Ok(ToWorker::Task(t)) => {
                backoff.reset();
                core.start(t, Some(slot));
                continue;
            }
            Ok(ToWorker::NoWork) => continue,
            Ok(ToWorker::Refused { rejoin: true, .. }) => rejoin.notify_one(),
            // Leaves as on SIGTERM; polling stops when the drain begins.
            Ok(ToWorker::Drain) => core.drain(),
            Ok(other) => debug!(?other, "unexpected answer to a poll"),
            Err(reason) => debug!(reason, "poll failed"),
        }
        drop(slot);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

/// A REQ socket that is rebuilt after any failure (lazy pirate), with its channel session.
struct Req {
    endpoint: String,
    key: Option<ChannelKey>,
    socket: Option<(ReqSocket, Link)>,
    /// Log a failed handshake as an error (the control socket) or at debug level.
    loud: bool,
    /// The last handshake failed because the keys differ.
    key_mismatch: bool,
}

impl Req {
    fn new(endpoint: &str, key: Option<ChannelKey>, loud: bool) -> Self {
        Self {
            endpoint: endpoint.to_owned(),
            key,
            socket: None,
            loud,
            key_mismatch: false,
        }
    }

    /// Sends `msg` and waits up to `timeout` for the answer. On any failure the socket is
    /// dropped, so the next request starts on a fresh one.
    async fn request(
        &mut self,
        msg: &ToDispatcher,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<ToWorker, &'static str> {
        let result = self.exchange(msg, timeout, cancel).await;
        if result.is_err() {
            self.socket = None;
        }
        result
    }

    async fn exchange(
        &mut self,
        msg: &ToDispatcher,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<ToWorker, &'static str> {
        if self.socket.is_none() {
            let mut s = ReqSocket::new();
            tokio::select! {
                _ = cancel.cancelled() => return Err("cancelled"),
                r = tokio::time::timeout(Duration::from_secs(5), s.connect(&self.endpoint)) => match r {
                    Ok(Ok(())) => {}
                    _ => return Err("cannot connect"),
                },
            }
            let link = tokio::select! {
                _ = cancel.cancelled() => return Err("cancelled"),
                r = channel::connect(&mut s, self.key.as_ref(), Duration::from_secs(5)) => r,
            };
            self.key_mismatch = false;
            let link = link.map_err(|e: ChannelError| {
                self.key_mismatch = match self.loud {
                    true => super::push::handshake_failed(&e),
                    false => {
                        debug!(error = %e, "work socket handshake failed");
                        false
                    }
                };
                "handshake failed"
            })?;
            self.socket = Some((s, link));
        }
        let (socket, link) = self.socket.as_mut().expect("just set");
        let frame = ZmqMessage::from(link.seal(wire::encode(msg)));
        socket.send(frame).await.map_err(|_| "send failed")?;
        let reply = tokio::select! {
            _ = cancel.cancelled() => return Err("cancelled"),
            r = tokio::time::timeout(timeout, socket.recv()) => r,
        };
        let reply = reply
            .map_err(|_| "no answer in time")?
            .map_err(|_| "receive failed")?;
        let frame = reply.into_vec().pop().ok_or("empty answer")?;
        let payload = link.open(&frame).map_err(|e| {
            debug!(error = %e, "cannot open the dispatcher's answer");
            "unreadable answer"
        })?;
        wire::decode::<ToWorker>(&payload).map_err(|e| {
            warn!(event = "message_unreadable", error = %e, "cannot read the dispatcher's answer");
            "unreadable answer"
        })
    }
}
