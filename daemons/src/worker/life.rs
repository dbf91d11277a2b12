//! The worker's one life cycle, the same in push and pull: connect → handshake → hello/welcome
//! → serve → drain → bye, reconnecting with jittered back-off ([`Backoff`]) whenever the
//! connection is lost. What differs between the modes is behind [`Transport`]: how a
//! connection is made and joined, how a message reaches the dispatcher, and what the
//! dispatcher says unasked.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use faas_protocol::wire::ToDispatcher;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::{Core, WorkerError};
use crate::backoff::Backoff;

/// How long to wait between tries when the dispatcher refuses the key: a key mismatch does not
/// mend itself in milliseconds.
const KEY_MISMATCH_DELAY: Duration = Duration::from_secs(5);

/// How a try to join ended.
pub(super) enum Join {
    /// Welcomed, by the dispatcher of this name.
    Joined(String),
    /// Not now (no dispatcher yet, no answer); `key_mismatch` when the handshake showed
    /// that the keys differ.
    Retry {
        key_mismatch: bool,
    },
    /// The dispatcher refused this worker for good (e.g. the other mode).
    Refused(String),
    Shutdown,
}

/// Why serving a connection ended.
pub(super) enum End {
    /// The connection is lost: connect again after a back-off.
    Reconnect(&'static str),
    /// The dispatcher does not know this worker (it restarted): say hello again at once.
    Rejoin,
    Shutdown,
}

/// What push and pull do differently. `say` and `heard` may drop the transport's connection
/// (then `join` makes a new one).
pub(super) trait Transport {
    /// Connects if not connected (socket and handshake), says hello and waits for the welcome.
    async fn join(&mut self, core: &Arc<Core>, shutdown: &CancellationToken) -> Join;
    /// Says one message; `Err` when it did not get through or its answer ends the connection.
    async fn say(&mut self, core: &Arc<Core>, msg: &ToDispatcher) -> Result<(), End>;
    /// Waits for something the dispatcher says unasked (push: tasks, cancels, acks; pull: a
    /// rejoin its work socket was told) and handles it; `Some` ends the connection. Must be
    /// cancel-safe: it is raced against the other events of the serve loop.
    async fn heard(&mut self, core: &Arc<Core>) -> Result<Option<End>, WorkerError>;
    /// The dispatcher has been quiet too long for a live connection.
    fn silent(&self) -> bool;
    /// The current heartbeat (the welcome sets it).
    fn heartbeat(&self) -> Duration;
    /// Draining: ask for no more tasks (pull stops polling).
    fn stop_tasks(&mut self);
    /// Draining: the dispatcher has acknowledged `leaving`, so no task is still on its way.
    fn settled(&self) -> bool;
    /// After `bye`: wait (briefly) for its answer and stop whatever still runs.
    async fn close(&mut self);
}

/// Results waiting to be said: the executions' outbox, and those taken from it that did not get
/// through (they go first on the next connection, so a reconnect loses none).
pub(super) struct Outbox {
    results: mpsc::UnboundedReceiver<ToDispatcher>,
    unsent: VecDeque<ToDispatcher>,
}

impl Outbox {
    pub(super) fn new(results: mpsc::UnboundedReceiver<ToDispatcher>) -> Self {
        Self {
            results,
            unsent: VecDeque::new(),
        }
    }

    /// A message that did not get through: kept if it is a result (a heartbeat is not worth
    /// keeping).
    fn put_back(&mut self, msg: ToDispatcher) {
        if matches!(msg, ToDispatcher::Result { .. }) {
            self.unsent.push_front(msg);
        }
    }
}

/// Runs the worker's life until `shutdown`, then drains.
pub(super) async fn run<T: Transport>(
    core: Arc<Core>,
    mut transport: T,
    mut outbox: Outbox,
    shutdown: CancellationToken,
) -> Result<(), WorkerError> {
    let t = &mut transport;
    // One back-off for connecting and reconnecting; a welcome resets it.
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    'life: loop {
        match t.join(&core, &shutdown).await {
            Join::Joined(dispatcher) => {
                info!(event = "joined", %dispatcher, heartbeat_ms = t.heartbeat().as_millis() as u64, "joined the dispatcher");
                backoff.reset();
            }
            Join::Refused(reason) => {
                error!(event = "refused", %reason, "the dispatcher refused this worker");
                return Err(WorkerError::Refused(reason));
            }
            Join::Shutdown => return Ok(()),
            Join::Retry { key_mismatch } => {
                let delay = match key_mismatch {
                    true => backoff.at_least(KEY_MISMATCH_DELAY),
                    false => backoff.next_delay(),
                };
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(delay) => continue 'life,
                }
            }
        }
        match serve(&core, t, &mut outbox, &shutdown).await? {
            End::Shutdown => break,
            End::Rejoin => continue,
            End::Reconnect(reason) => {
                warn!(
                    event = "connection_lost",
                    reason, "connection to the dispatcher lost; reconnecting"
                );
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                }
            }
        }
    }
    drain(&core, t, &mut outbox).await;
    Ok(())
}

/// Serves one joined connection: results, heartbeats and whatever the dispatcher says.
async fn serve<T: Transport>(
    core: &Arc<Core>,
    t: &mut T,
    outbox: &mut Outbox,
    shutdown: &CancellationToken,
) -> Result<End, WorkerError> {
    while let Some(r) = outbox.unsent.pop_front() {
        if let Err(end) = t.say(core, &r).await {
            outbox.put_back(r);
            return Ok(end);
        }
    }
    let mut beat = tokio::time::interval(t.heartbeat());
    loop {
        let msg = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(End::Shutdown),
            end = t.heard(core) => match end? {
                Some(end) => return Ok(end),
                None => continue,
            },
            r = outbox.results.recv() => match r {
                Some(r) => r,
                None => return Ok(End::Shutdown),
            },
            _ = beat.tick() => {
                if t.silent() {
                    return Ok(End::Reconnect("the dispatcher went quiet"));
                }
                core.heartbeat()
            }
        };
        if let Err(end) = t.say(core, &msg).await {
            outbox.put_back(msg);
            return Ok(end);
        }
    }
}

/// Graceful stop: say `leaving`, let running tasks finish within the grace (their results
/// still go out, a task that crossed the `leaving` on the wire still runs, and the worker
/// keeps beating so that it is not declared lost), then `bye` with whatever did not finish.
/// A dispatcher that stops answering is not waited for again: it re-queues this worker's tasks
/// once it notices the worker is gone.
async fn drain<T: Transport>(core: &Arc<Core>, t: &mut T, outbox: &mut Outbox) {
    let mut reachable = true;
    let say = async |t: &mut T, msg: &ToDispatcher, reachable: &mut bool| {
        if *reachable && t.say(core, msg).await.is_err() {
            warn!(
                event = "leaving_unanswered",
                "the dispatcher does not answer; leaving without it"
            );
            *reachable = false;
        }
    };
    t.stop_tasks();
    let leaving = ToDispatcher::Leaving {
        worker: core.cfg.id.clone(),
    };
    say(t, &leaving, &mut reachable).await;
    info!(event = "draining", running = core.busy(), "draining");
    let deadline = Instant::now() + core.cfg.drain_grace;
    let mut beat = tokio::time::interval(t.heartbeat());
    beat.reset();
    loop {
        let next = match outbox.unsent.pop_front() {
            Some(r) => Some(r),
            None if core.busy() == 0 && (t.settled() || !reachable) => {
                outbox.results.try_recv().ok()
            }
            None => tokio::select! {
                _ = tokio::time::sleep_until(deadline) => None,
                r = outbox.results.recv() => r,
                _ = beat.tick() => Some(core.heartbeat()),
                heard = t.heard(core), if reachable => {
                    if !matches!(heard, Ok(None)) {
                        reachable = false;
                    }
                    continue;
                }
            },
        };
        let Some(r) = next else { break };
        say(t, &r, &mut reachable).await;
    }
    let unfinished = core.unfinished();
    if !unfinished.is_empty() {
        warn!(
            event = "drain_grace_exceeded",
            unfinished = unfinished.len(),
            "drain grace ran out; handing tasks back"
        );
    }
    let bye = ToDispatcher::Bye {
        worker: core.cfg.id.clone(),
        unfinished,
    };
    say(t, &bye, &mut reachable).await;
    t.close().await;
}
