//! Push mode: one DEALER socket; the dispatcher sends tasks while this worker has free slots.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use faas_protocol::wire::{self, FrameError, ToDispatcher, ToWorker};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};
use zeromq::{DealerSocket, Socket, SocketEvent, SocketRecv, SocketSend, ZmqMessage};

use super::{Core, WorkerError};
use crate::backoff::Backoff;
use crate::channel::{self, ChannelError, Link};

/// How long the dispatcher has to answer a handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// A failed handshake, said plainly: a key mismatch is an operator's error and logged as one.
pub(super) fn handshake_failed(e: &ChannelError) {
    match e {
        ChannelError::Unanswered => {
            debug!(error = %e, "dispatcher not answering the handshake yet")
        }
        _ => error!(error = %e, "cannot join the dispatcher; retrying with back-off"),
    }
}

/// Why one connection ended.
enum End {
    Reconnect(&'static str),
    Shutdown,
}

pub(super) async fn run(
    core: Arc<Core>,
    mut results: mpsc::UnboundedReceiver<ToDispatcher>,
    shutdown: CancellationToken,
) -> Result<(), WorkerError> {
    // Results taken from the outbox but not yet handed to a live socket.
    let mut unsent: VecDeque<ToDispatcher> = VecDeque::new();
    // One back-off for connecting and reconnecting; a welcome resets it.
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    loop {
        let Some(mut conn) = Connection::open(&core, &shutdown, &mut backoff).await else {
            break;
        };
        match conn
            .serve(&core, &mut results, &mut unsent, &shutdown)
            .await?
        {
            End::Shutdown => {
                drain(&core, conn, &mut results, &mut unsent).await;
                return Ok(());
            }
            End::Reconnect(reason) => {
                warn!(reason, "connection to the dispatcher lost; reconnecting");
                if conn.welcomed {
                    backoff.reset();
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                }
            }
        }
    }
    Ok(())
}

struct Connection {
    send: zeromq::DealerSendHalf,
    /// This connection's sealing (Noise with a worker key), set up before the hello.
    link: Link,
    inbox: mpsc::UnboundedReceiver<ZmqMessage>,
    monitor: futures::channel::mpsc::Receiver<SocketEvent>,
    heartbeat: Duration,
    last_heard: Instant,
    /// The dispatcher welcomed this connection (so the next reconnect starts its back-off anew).
    welcomed: bool,
}

impl Connection {
    /// Connects (waiting for the dispatcher as long as it takes) and says hello.
    async fn open(
        core: &Core,
        shutdown: &CancellationToken,
        backoff: &mut Backoff,
    ) -> Option<Self> {
        loop {
            let mut key_mismatch = false;
            let mut socket = DealerSocket::new();
            let monitor = socket.monitor();
            // Bounded: a connect to a host that drops packets would otherwise hang here.
            let connected = tokio::select! {
                _ = shutdown.cancelled() => return None,
                r = tokio::time::timeout(Duration::from_secs(5), socket.connect(&core.cfg.endpoint)) => {
                    r.unwrap_or_else(|_| Err(zeromq::ZmqError::Other("connect timed out")))
                }
            };
            // With a key, the handshake comes before anything else is said.
            let link = match connected {
                Ok(()) => {
                    match channel::connect(&mut socket, core.cfg.key.as_ref(), HANDSHAKE_TIMEOUT)
                        .await
                    {
                        Ok(link) => Ok(link),
                        Err(e) => {
                            handshake_failed(&e);
                            if matches!(
                                e,
                                ChannelError::Refused
                                    | ChannelError::PlaintextPeer
                                    | ChannelError::Handshake
                            ) {
                                key_mismatch = true;
                            }
                            Err(zeromq::ZmqError::Other("handshake failed"))
                        }
                    }
                }
                Err(e) => Err(e),
            };
            match link {
                Ok(link) => {
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
                    let mut conn = Self {
                        send,
                        link,
                        inbox,
                        monitor,
                        heartbeat: core.cfg.heartbeat,
                        last_heard: Instant::now(),
                        welcomed: false,
                    };
                    if conn.send(&core.hello()).await {
                        info!(dispatcher = %core.cfg.endpoint, worker = %core.cfg.id, "connected; said hello");
                        return Some(conn);
                    }
                }
                Err(e) => {
                    debug!(error = %e, endpoint = %core.cfg.endpoint, "dispatcher not reachable yet")
                }
            }
            // A key mismatch does not mend itself in milliseconds: wait longer between tries.
            let delay = match key_mismatch {
                true => backoff.at_least(Duration::from_secs(5)),
                false => backoff.next_delay(),
            };
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    async fn send(&mut self, msg: &ToDispatcher) -> bool {
        let frame = ZmqMessage::from(self.link.seal(wire::encode(msg)));
        self.send.send(frame).await.is_ok()
    }

    async fn serve(
        &mut self,
        core: &Arc<Core>,
        results: &mut mpsc::UnboundedReceiver<ToDispatcher>,
        unsent: &mut VecDeque<ToDispatcher>,
        shutdown: &CancellationToken,
    ) -> Result<End, WorkerError> {
        while let Some(r) = unsent.pop_front() {
            if !self.send(&r).await {
                unsent.push_front(r);
                return Ok(End::Reconnect("send failed"));
            }
        }
        let mut beat = tokio::time::interval(self.heartbeat);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(End::Shutdown),
                event = futures::StreamExt::next(&mut self.monitor) => {
                    if matches!(event, Some(SocketEvent::Disconnected(_)) | None) {
                        return Ok(End::Reconnect("socket disconnected"));
                    }
                }
                msg = self.inbox.recv() => {
                    let Some(msg) = msg else { return Ok(End::Reconnect("socket closed")) };
                    if let Some(end) = self.on_message(core, msg).await? {
                        return Ok(end);
                    }
                }
                result = results.recv() => {
                    let Some(result) = result else { return Ok(End::Shutdown) };
                    if !self.send(&result).await {
                        unsent.push_back(result);
                        return Ok(End::Reconnect("send failed"));
                    }
                }
                _ = beat.tick() => {
                    if self.last_heard.elapsed() > self.heartbeat * 3 {
                        return Ok(End::Reconnect("dispatcher silent for three heartbeats"));
                    }
                    if !self.send(&core.heartbeat()).await {
                        return Ok(End::Reconnect("send failed"));
                    }
                }
            }
        }
    }

    async fn on_message(
        &mut self,
        core: &Arc<Core>,
        msg: ZmqMessage,
    ) -> Result<Option<End>, WorkerError> {
        let Some(frame) = msg.into_vec().pop() else {
            return Ok(None);
        };
        // A frame that does not open means a broken or tampered connection: start afresh.
        let payload = match self.link.open(&frame) {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "a frame from the dispatcher did not open; reconnecting");
                return Ok(Some(End::Reconnect("unreadable frame")));
            }
        };
        self.last_heard = Instant::now();
        match wire::decode::<ToWorker>(&payload) {
            Ok(ToWorker::Task(t)) => {
                debug!(task_id = %t.task_id, "task received");
                core.start(t, None);
            }
            Ok(ToWorker::Welcome {
                dispatcher,
                heartbeat_ms,
            }) => {
                info!(%dispatcher, heartbeat_ms, "welcomed by the dispatcher");
                self.welcomed = true;
                self.heartbeat = Duration::from_millis(heartbeat_ms.max(50));
            }
            Ok(ToWorker::Refused {
                reason,
                rejoin: true,
            }) => {
                debug!(%reason, "dispatcher asks to rejoin");
                if !self.send(&core.hello()).await {
                    return Ok(Some(End::Reconnect("send failed")));
                }
            }
            Ok(ToWorker::Refused {
                reason,
                rejoin: false,
            }) => {
                error!(%reason, "the dispatcher refused this worker");
                return Err(WorkerError::Refused(reason));
            }
            Ok(ToWorker::Cancel { task_id }) => core.cancel(task_id),
            Ok(ToWorker::Ack | ToWorker::NoWork) => {}
            Err(e) => error!(error = %e, "cannot read a message from the dispatcher"),
        }
        Ok(None)
    }
}

/// Graceful stop: say `leaving`, let running tasks finish within the grace (their results
/// still go out, and a task that crossed the `leaving` on the wire still runs), then `bye`
/// with whatever did not finish.
async fn drain(
    core: &Arc<Core>,
    mut conn: Connection,
    results: &mut mpsc::UnboundedReceiver<ToDispatcher>,
    unsent: &mut VecDeque<ToDispatcher>,
) {
    let id = core.cfg.id.clone();
    conn.send(&ToDispatcher::Leaving { worker: id.clone() })
        .await;
    let deadline = Instant::now() + core.cfg.drain_grace;
    info!(running = core.busy(), "draining");
    while let Some(r) = unsent.pop_front() {
        conn.send(&r).await;
    }
    let mut acks = 0;
    // Still beating: a worker that drains a long task is not lost (its result would be of an
    // attempt given up on, and dropped).
    let mut beat = tokio::time::interval(conn.heartbeat);
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break,
            _ = beat.tick() => { conn.send(&core.heartbeat()).await; }
            r = results.recv() => match r {
                Some(r) => { conn.send(&r).await; }
                None => break,
            },
            msg = conn.inbox.recv() => match msg.and_then(|m| m.into_vec().pop()) {
                Some(frame) => match conn.link.open(&frame).ok().map(|p| wire::decode::<ToWorker>(&p)).unwrap_or(Err(FrameError::Malformed("unreadable frame".into()))) {
                    Ok(ToWorker::Task(t)) => { core.start(t, None); }
                    Ok(ToWorker::Cancel { task_id }) => core.cancel(task_id),
                    Ok(ToWorker::Ack) => acks += 1,
                    _ => {}
                },
                None => break,
            },
        }
        if core.busy() == 0 && acks > 0 {
            break;
        }
    }
    // Results that landed just as the last task finished.
    while let Ok(r) = results.try_recv() {
        conn.send(&r).await;
    }
    let unfinished = core.unfinished();
    if !unfinished.is_empty() {
        warn!(
            count = unfinished.len(),
            "drain grace ran out; handing tasks back"
        );
    }
    conn.send(&ToDispatcher::Bye {
        worker: id,
        unfinished,
    })
    .await;
    // A send that returned Ok was only queued locally: wait (briefly) for the answer to `bye`.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(msg) = conn.inbox.recv().await {
            if let Some(payload) = msg.into_vec().pop().and_then(|f| conn.link.open(&f).ok()) {
                // Two acks are due: one for `leaving` (maybe already counted) and one for `bye`.
                if matches!(wire::decode::<ToWorker>(&payload), Ok(ToWorker::Ack)) {
                    acks += 1;
                    if acks >= 2 {
                        return;
                    }
                }
            }
        }
    })
    .await;
}
