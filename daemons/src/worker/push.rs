//! Push mode's transport: one DEALER socket; the dispatcher sends tasks (and cancels) while
//! this worker has free slots, unasked, and acknowledges heartbeats, `leaving` and `bye`; a
//! `drain` comes unasked too.

use std::sync::Arc;
use std::time::Duration;

use faas_protocol::wire::{self, ToDispatcher, ToWorker};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};
use zeromq::{DealerSocket, Socket, SocketEvent, SocketRecv, SocketSend, ZmqMessage};

use super::life::{End, Join, Transport};
use super::{Core, WorkerError};
use crate::channel::{self, ChannelError, Link};

/// How long the dispatcher has to answer a handshake, and a hello.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// A failed handshake, said plainly: a key mismatch is an operator's error and logged as one.
/// Returns whether it was one.
pub(super) fn handshake_failed(e: &ChannelError) -> bool {
    match e {
        ChannelError::Unanswered => {
            debug!(event = "handshake_unanswered", error = %e, "dispatcher not answering the handshake yet")
        }
        ChannelError::Refused | ChannelError::Handshake => {
            error!(event = "worker_key_differs", error = %e, "cannot join the dispatcher; retrying with back-off")
        }
        ChannelError::PlaintextPeer => {
            error!(event = "dispatcher_without_key", error = %e, "cannot join the dispatcher; retrying with back-off")
        }
        _ => {
            error!(event = "handshake_failed", error = %e, "cannot join the dispatcher; retrying with back-off")
        }
    }
    matches!(
        e,
        ChannelError::Refused | ChannelError::PlaintextPeer | ChannelError::Handshake
    )
}

pub(super) struct Push {
    conn: Option<Connection>,
    heartbeat: Duration,
}

struct Connection {
    send: zeromq::DealerSendHalf,
    /// This connection's sealing (Noise with a worker key), set up before the hello.
    link: Link,
    inbox: mpsc::UnboundedReceiver<ZmqMessage>,
    monitor: futures::channel::mpsc::Receiver<SocketEvent>,
    last_heard: Instant,
    /// Acks received: the first after `leaving` says no task is still on its way.
    acks: u32,
}

impl Push {
    pub(super) fn new(core: &Core) -> Self {
        Self {
            conn: None,
            heartbeat: core.cfg.heartbeat,
        }
    }

    /// Connects a DEALER and does the channel handshake.
    async fn connect(
        core: &Core,
        shutdown: &CancellationToken,
    ) -> Result<Option<Connection>, bool> {
        let mut socket = DealerSocket::new();
        let monitor = socket.monitor();
        // Bounded: a connect to a host that drops packets would otherwise hang here.
        let connected = tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            r = tokio::time::timeout(Duration::from_secs(5), socket.connect(&core.cfg.endpoint)) => r,
        };
        if !matches!(connected, Ok(Ok(()))) {
            debug!(
                event = "dispatcher_unreachable",
                "dispatcher not reachable yet"
            );
            return Err(false);
        }
        // With a key, the handshake comes before anything else is said.
        let link = tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            r = channel::connect(&mut socket, core.cfg.key.as_ref(), HANDSHAKE_TIMEOUT) => r,
        };
        let link = link.map_err(|e| handshake_failed(&e))?;
        let (send, mut recv) = socket.split();
        let (tx, inbox) = mpsc::unbounded_channel();
        // A task of its own, so receiving is never cancelled halfway.
        tokio::spawn(async move {
            while let Ok(msg) = recv.recv().await {
                if tx.send(msg).is_err() {
                    break;
                }
            }
        });
        Ok(Some(Connection {
            send,
            link,
            inbox,
            monitor,
            last_heard: Instant::now(),
            acks: 0,
        }))
    }

    /// Opens one frame from the dispatcher and acts on it.
    fn on_frame(&mut self, core: &Arc<Core>, msg: ZmqMessage) -> Result<Option<End>, WorkerError> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(None);
        };
        let Some(frame) = msg.into_vec().pop() else {
            return Ok(None);
        };
        // A frame that does not open means a broken or tampered connection: start afresh.
        let payload = match conn.link.open(&frame) {
            Ok(p) => p,
            Err(e) => {
                warn!(event = "frame_unreadable", error = %e, "a frame from the dispatcher did not open; reconnecting");
                self.conn = None;
                return Ok(Some(End::Reconnect("unreadable frame")));
            }
        };
        conn.last_heard = Instant::now();
        match wire::decode::<ToWorker>(&payload) {
            Ok(ToWorker::Task(t)) => {
                core.start(t, None);
            }
            Ok(ToWorker::Cancel { task_id }) => core.cancel(task_id),
            Ok(ToWorker::Drain) => core.drain(),
            Ok(ToWorker::Welcome { heartbeat_ms, .. }) => {
                self.heartbeat = Duration::from_millis(heartbeat_ms.max(50));
            }
            Ok(ToWorker::Refused {
                reason,
                rejoin: true,
            }) => {
                debug!(%reason, "dispatcher asks to rejoin");
                return Ok(Some(End::Rejoin));
            }
            Ok(ToWorker::Refused {
                reason,
                rejoin: false,
            }) => {
                error!(event = "refused", %reason, "the dispatcher refused this worker");
                return Err(WorkerError::Refused(reason));
            }
            Ok(ToWorker::Ack) => conn.acks += 1,
            Ok(ToWorker::NoWork) => {}
            Err(e) => {
                error!(event = "message_unreadable", error = %e, "cannot read a message from the dispatcher")
            }
        }
        Ok(None)
    }
}

impl Transport for Push {
    async fn join(&mut self, core: &Arc<Core>, shutdown: &CancellationToken) -> Join {
        if self.conn.is_none() {
            match Self::connect(core, shutdown).await {
                Ok(Some(conn)) => self.conn = Some(conn),
                Ok(None) => return Join::Shutdown,
                Err(key_mismatch) => return Join::Retry { key_mismatch },
            }
        }
        if self.say(core, &core.hello()).await.is_err() {
            return Join::Retry {
                key_mismatch: false,
            };
        }
        // Tasks come only after the welcome, on the same socket, in order.
        let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Join::Retry {
                    key_mismatch: false,
                };
            };
            let msg = tokio::select! {
                _ = shutdown.cancelled() => return Join::Shutdown,
                _ = tokio::time::sleep_until(deadline) => None,
                msg = conn.inbox.recv() => msg,
            };
            let Some(msg) = msg else {
                self.conn = None;
                return Join::Retry {
                    key_mismatch: false,
                };
            };
            let welcome = msg
                .into_vec()
                .pop()
                .and_then(|f| conn.link.open(&f).ok())
                .and_then(|p| wire::decode::<ToWorker>(&p).ok());
            match welcome {
                Some(ToWorker::Welcome {
                    dispatcher,
                    heartbeat_ms,
                }) => {
                    conn.last_heard = Instant::now();
                    self.heartbeat = Duration::from_millis(heartbeat_ms.max(50));
                    return Join::Joined(dispatcher);
                }
                Some(ToWorker::Refused {
                    reason,
                    rejoin: false,
                }) => return Join::Refused(reason),
                other => debug!(?other, "unexpected answer to hello"),
            }
        }
    }

    async fn say(&mut self, _core: &Arc<Core>, msg: &ToDispatcher) -> Result<(), End> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(End::Reconnect("not connected"));
        };
        let frame = ZmqMessage::from(conn.link.seal(wire::encode(msg)));
        if conn.send.send(frame).await.is_err() {
            self.conn = None;
            return Err(End::Reconnect("send failed"));
        }
        Ok(())
    }

    async fn heard(&mut self, core: &Arc<Core>) -> Result<Option<End>, WorkerError> {
        let Some(conn) = self.conn.as_mut() else {
            return std::future::pending().await;
        };
        let msg = tokio::select! {
            event = futures::StreamExt::next(&mut conn.monitor) => {
                if matches!(event, Some(SocketEvent::Disconnected(_)) | None) {
                    self.conn = None;
                    return Ok(Some(End::Reconnect("socket disconnected")));
                }
                return Ok(None);
            }
            msg = conn.inbox.recv() => msg,
        };
        match msg {
            Some(msg) => self.on_frame(core, msg),
            None => {
                self.conn = None;
                Ok(Some(End::Reconnect("socket closed")))
            }
        }
    }

    fn silent(&self) -> bool {
        self.conn
            .as_ref()
            .is_some_and(|c| c.last_heard.elapsed() > self.heartbeat * 3)
    }

    fn heartbeat(&self) -> Duration {
        self.heartbeat
    }

    fn stop_tasks(&mut self) {
        // The dispatcher sends none once it has read `leaving`.
        if let Some(conn) = self.conn.as_mut() {
            conn.acks = 0;
        }
    }

    fn settled(&self) -> bool {
        self.conn.as_ref().is_some_and(|c| c.acks > 0)
    }

    async fn close(&mut self) {
        // A send that returned Ok was only queued locally: wait (briefly) for the answer to
        // `bye`. Two acks are due: one for `leaving` (maybe already counted) and one for `bye`.
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while conn.acks < 2 {
                let Some(msg) = conn.inbox.recv().await else {
                    return;
                };
                let payload = msg.into_vec().pop().and_then(|f| conn.link.open(&f).ok());
                if let Some(payload) = payload {
                    if matches!(wire::decode::<ToWorker>(&payload), Ok(ToWorker::Ack)) {
                        conn.acks += 1;
                    }
                }
            }
        })
        .await;
    }
}
