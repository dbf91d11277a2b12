//! Pull mode: this worker asks for work over REQ sockets; the dispatcher holds each poll
//! until it has a task or the long-poll ends, so an idle worker costs close to nothing.
//!
//! Two REQ sockets: a control socket (hello, heartbeat, result, leaving, bye; each answered at
//! once) and a work socket (poll; answered with a task or `no_work`), so a held poll never
//! delays a result. A REQ socket whose answer does not come in time is thrown away and built
//! again (the "lazy pirate" pattern): the `zeromq` crate does not reconnect it by itself.
//! Each new REQ socket does the channel handshake (with a key) before its first request.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use faas_protocol::wire::{self, ToDispatcher, ToWorker};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};
use zeromq::{ReqSocket, Socket, SocketRecv, SocketSend, ZmqMessage};

use super::{Core, WorkerError};
use crate::backoff::Backoff;
use crate::channel::{self, ChannelKey, Link};

/// Longest a poll may stay unanswered before the socket is presumed dead; well above the
/// dispatcher's long-poll.
const POLL_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) async fn run(
    core: Arc<Core>,
    mut results: mpsc::UnboundedReceiver<ToDispatcher>,
    shutdown: CancellationToken,
) -> Result<(), WorkerError> {
    let stop_polling = CancellationToken::new();
    let abandon_poll = CancellationToken::new();
    let rejoin = Arc::new(Notify::new());
    let work = tokio::spawn(work_loop(
        core.clone(),
        stop_polling.clone(),
        abandon_poll.clone(),
        rejoin.clone(),
    ));
    let mut control = Req::new(&core.cfg.endpoint, core.cfg.key.clone(), true);
    let mut join_backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    let mut heartbeat = core.cfg.heartbeat;
    let mut unsent: VecDeque<ToDispatcher> = VecDeque::new();
    let mut joined = false;
    let mut beat = tokio::time::interval(heartbeat);
    while !shutdown.is_cancelled() {
        if !joined {
            match control
                .request(&core.hello(), heartbeat * 3, &shutdown)
                .await
            {
                Ok(ToWorker::Welcome {
                    dispatcher,
                    heartbeat_ms,
                }) => {
                    info!(%dispatcher, worker = %core.cfg.id, "joined the dispatcher");
                    heartbeat = Duration::from_millis(heartbeat_ms.max(50));
                    beat = tokio::time::interval(heartbeat);
                    joined = true;
                    join_backoff.reset();
                }
                Ok(ToWorker::Refused {
                    reason,
                    rejoin: false,
                }) => {
                    error!(%reason, "the dispatcher refused this worker");
                    stop_polling.cancel();
                    return Err(WorkerError::Refused(reason));
                }
                Ok(other) => debug!(?other, "unexpected answer to hello"),
                Err(reason) => debug!(reason, "no answer to hello yet"),
            }
            if !joined {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(join_backoff.next_delay()) => {}
                }
            }
            continue;
        }
        let msg = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            _ = rejoin.notified() => { joined = false; continue }
            r = async { match unsent.pop_front() { Some(r) => Some(r), None => results.recv().await } } => match r {
                Some(r) => r,
                None => break,
            },
            _ = beat.tick() => core.heartbeat(),
        };
        match control.request(&msg, heartbeat * 3, &shutdown).await {
            Ok(ToWorker::Cancel { task_id }) => {
                core.cancel(task_id);
                // Another cancel may wait behind this one: ask again at once.
                beat.reset_immediately();
            }
            Ok(ToWorker::Refused { rejoin: true, .. }) => {
                joined = false;
                if matches!(msg, ToDispatcher::Result { .. }) {
                    // Not accepted from a connection that has not joined: again after hello.
                    debug!("result refused before hello; sending it again after joining");
                    unsent.push_front(msg);
                }
            }
            Ok(_) => {}
            Err(reason) => {
                warn!(reason, "dispatcher not answering; reconnecting");
                if matches!(msg, ToDispatcher::Result { .. }) {
                    unsent.push_front(msg);
                }
                joined = false;
            }
        }
    }
    drain(
        &core,
        &mut control,
        &mut results,
        &mut unsent,
        stop_polling,
        heartbeat,
        joined,
    )
    .await;
    // A poll still waiting now waits for a dispatcher that is gone or has been told `bye`
    // (which re-queues anything it might still hand this worker).
    abandon_poll.cancel();
    let _ = work.await;
    Ok(())
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

/// Says `leaving`, delivers the results of running tasks within the grace, then says `bye`
/// with what is unfinished. A dispatcher that does not answer is not waited for again: it
/// re-queues this worker's tasks once it notices the worker is gone.
async fn drain(
    core: &Arc<Core>,
    control: &mut Req,
    results: &mut mpsc::UnboundedReceiver<ToDispatcher>,
    unsent: &mut VecDeque<ToDispatcher>,
    stop_polling: CancellationToken,
    heartbeat: Duration,
    joined: bool,
) {
    let never = CancellationToken::new();
    let id = core.cfg.id.clone();
    stop_polling.cancel();
    let mut reachable = joined;
    let say = async |control: &mut Req, msg: &ToDispatcher, reachable: &mut bool| {
        if !*reachable {
            return;
        }
        match control.request(msg, heartbeat * 3, &never).await {
            Ok(ToWorker::Cancel { task_id }) => core.cancel(task_id),
            Ok(_) => {}
            Err(_) => {
                warn!("the dispatcher does not answer; leaving without it");
                *reachable = false;
            }
        }
    };
    say(
        control,
        &ToDispatcher::Leaving { worker: id.clone() },
        &mut reachable,
    )
    .await;
    info!(running = core.busy(), "draining");
    let deadline = Instant::now() + core.cfg.drain_grace;
    // Still beating while tasks finish, so that the dispatcher does not declare this worker
    // lost (and drop its results as those of an attempt given up on).
    let mut beat = tokio::time::interval(heartbeat);
    beat.reset();
    loop {
        let next = match unsent.pop_front() {
            Some(r) => Some(r),
            None if core.busy() == 0 => results.try_recv().ok(),
            None => tokio::select! {
                _ = tokio::time::sleep_until(deadline) => None,
                r = results.recv() => r,
                _ = beat.tick() => Some(core.heartbeat()),
            },
        };
        let Some(r) = next else { break };
        say(control, &r, &mut reachable).await;
    }
    let unfinished = core.unfinished();
    if !unfinished.is_empty() {
        warn!(
            count = unfinished.len(),
            "drain grace ran out; handing tasks back"
        );
    }
    let bye = ToDispatcher::Bye {
        worker: id,
        unfinished,
    };
    say(control, &bye, &mut reachable).await;
}

/// A REQ socket that is rebuilt after any failure (lazy pirate), with its channel session.
struct Req {
    endpoint: String,
    key: Option<ChannelKey>,
    socket: Option<(ReqSocket, Link)>,
    /// Log a failed handshake as an error (the control socket) or at debug level.
    loud: bool,
}

impl Req {
    fn new(endpoint: &str, key: Option<ChannelKey>, loud: bool) -> Self {
        Self {
            endpoint: endpoint.to_owned(),
            key,
            socket: None,
            loud,
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
            let link = link.map_err(|e| {
                match self.loud {
                    true => super::push::handshake_failed(&e),
                    false => debug!(error = %e, "work socket handshake failed"),
                }
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
            warn!(error = %e, "cannot read the dispatcher's answer");
            "unreadable answer"
        })
    }
}
