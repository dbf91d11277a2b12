//! Push and pull modes: tasks go to `faas-worker` processes over one ZeroMQ ROUTER socket.
//!
//! A socket task receives every worker message and applies it to the [`Registry`]; a sender
//! task owns the send half. Slots are claims on a worker's capacity: push credit (slots the
//! worker announced and that are not running a task) or, in pull mode, a held poll. A worker
//! that stays silent for three heartbeats is lost; its tasks go back to the queue.
//!
//! Every frame passes [`Sessions`] first: with a worker key it is a Noise handshake or a sealed
//! message of a session (`crate::channel`); anything else is dropped, counted and logged
//! (rate-limited), and such a peer is never sent a task. A message is then taken as coming from
//! the worker its session joined as, never from the `worker` name it carries: a `result`,
//! `heartbeat`, `poll`, `leaving` or `bye` naming another worker is refused. Each task goes
//! out with a lease (its attempt number); a result is recorded only under the lease it was sent
//! with (`finish.lua`), so a late result of an earlier attempt is dropped and counted.
//!
//! Draining ([`Executor::drain`], an operator's request heard on `{p}:drains`): the worker gets
//! no new task, its entry says `draining` (published as such), and it is sent `drain` (push: at
//! once; pull: as the answer to its next poll or control request). It then leaves as on
//! SIGTERM: `leaving`, its running tasks finish, `bye`, and its entry is deleted (`left`). A
//! worker that says `leaving` by itself (SIGTERM) is announced `draining` the same way.
//! Registry changes are written to Redis in the order they happen (one writer task), so a
//! `draining` never lands after the `left` that follows it.

mod registry;
mod sessions;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use faas_protocol::event::WorkerState;
use faas_protocol::model::{Outcome, WorkerInfo, WorkerMode};
use faas_protocol::wire::{self, FrameError, TaskMsg, ToDispatcher, ToWorker};
use faas_protocol::{FunctionFormat, TaskId};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, info_span, warn};
use zeromq::{RouterSocket, Socket, SocketRecv, SocketSend, ZmqMessage};

use self::registry::{CancelRoute, Claim, Envelope, Registry};
use self::sessions::{Inbound, Sessions};
use super::{ExecSlot, Executor, RunResult};
use crate::channel::{ChannelKey, RateLimit};
use crate::executor::Job;
use crate::now_ms;
use crate::store::{Finish, Store};

#[derive(Clone, Debug)]
pub struct RemoteConfig {
    pub mode: WorkerMode,
    /// ZeroMQ endpoint to bind, e.g. `tcp://127.0.0.1:5555`.
    pub bind: String,
    /// The dispatcher's name, recorded in the worker registry.
    pub dispatcher: String,
    /// Workers beat this often; three missed beats and a worker is lost.
    pub heartbeat: Duration,
    /// How long a pull worker's poll is held before `no_work`.
    pub long_poll: Duration,
    /// Slack past a task's own timeout before its worker is presumed lost (pull backstop).
    pub deadline_grace: Duration,
    pub retention: Duration,
    /// The worker key: with one, every connection is authenticated and encrypted.
    pub key: Option<ChannelKey>,
}

/// The remote workers as an [`Executor`].
#[derive(Debug)]
pub struct RemoteExecutor {
    hub: Arc<Hub>,
}

#[derive(Debug)]
struct Hub {
    cfg: RemoteConfig,
    store: Store,
    registry: Mutex<Registry>,
    /// Woken when capacity appears (a hello, a result, a poll).
    capacity: Notify,
    out: mpsc::UnboundedSender<Outgoing>,
    /// Shared with the sender task, which seals each message just before it goes out, so
    /// messages are sealed in the order they are sent.
    sessions: Arc<Mutex<Sessions>>,
    /// Refused frames are logged at most once a second.
    refusals: Mutex<RateLimit>,
    /// Registry changes for the writer task, which applies them in order.
    announce: mpsc::UnboundedSender<(WorkerInfo, WorkerState)>,
}

/// A message for the sender task; `sent` learns whether the peer was still there.
#[derive(Debug)]
struct Outgoing {
    envelope: Envelope,
    body: Body,
    sent: Option<oneshot::Sender<bool>>,
}

#[derive(Debug)]
enum Body {
    /// A protocol message, sealed under the peer's session.
    Msg(Vec<u8>),
    /// Channel bytes that go as they are (a handshake answer, a refusal).
    Raw(Bytes),
}

impl RemoteExecutor {
    /// Binds the ROUTER socket and starts the socket and upkeep tasks.
    pub async fn start(
        cfg: RemoteConfig,
        store: Store,
        shutdown: CancellationToken,
    ) -> Result<Self, zeromq::ZmqError> {
        let mut socket = RouterSocket::new();
        let endpoint = socket.bind(&cfg.bind).await?;
        info!(event = "waiting_for_workers", %endpoint, mode = %cfg.mode, "waiting for workers");
        let (send_half, recv_half) = socket.split();
        let (out, out_rx) = mpsc::unbounded_channel();
        let (announce, announce_rx) = mpsc::unbounded_channel();
        let idle = (cfg.heartbeat * 12).max(Duration::from_secs(30));
        let sessions = Arc::new(Mutex::new(Sessions::new(cfg.key.clone(), idle)));
        let hub = Arc::new(Hub {
            cfg,
            store,
            registry: Mutex::default(),
            capacity: Notify::new(),
            out,
            sessions: sessions.clone(),
            refusals: Mutex::default(),
            announce,
        });
        tokio::spawn(announce_loop(hub.store.clone(), announce_rx));
        tokio::spawn(send_loop(send_half, sessions, out_rx));
        tokio::spawn(recv_loop(hub.clone(), recv_half, shutdown.clone()));
        tokio::spawn(upkeep(hub.clone(), shutdown));
        Ok(Self { hub })
    }

    /// Workers connected now.
    pub fn workers(&self) -> usize {
        self.hub.registry().online()
    }

    /// Tasks the workers could take right now.
    pub fn free_slots(&self) -> usize {
        self.hub.registry().free()
    }
}

/// A promise of one task to one worker. Dropped unused, the capacity goes back.
#[derive(Debug)]
pub struct RemoteSlot {
    hub: Arc<Hub>,
    claim: Option<Claim>,
}

impl Drop for RemoteSlot {
    fn drop(&mut self) {
        if let Some(claim) = self.claim.take() {
            let unanswered = self.hub.registry().unclaim(claim);
            match unanswered {
                Some(poll) => self.hub.reply(poll, &ToWorker::NoWork),
                None => self.hub.capacity.notify_one(),
            }
        }
    }
}

impl Executor for RemoteExecutor {
    type Slot = RemoteSlot;

    async fn acquire(&self) -> Option<RemoteSlot> {
        loop {
            // Registered before the check, so a wake-up between the two is kept.
            let woken = self.hub.capacity.notified();
            if let Some(slot) = self.try_acquire() {
                return Some(slot);
            }
            woken.await;
        }
    }

    fn try_acquire(&self) -> Option<RemoteSlot> {
        let claim = self.hub.registry().claim()?;
        Some(RemoteSlot {
            hub: self.hub.clone(),
            claim: Some(claim),
        })
    }

    fn drain(&self, worker: &str) -> bool {
        let Some(drained) = self.hub.registry().drain(worker) else {
            return false;
        };
        for poll in drained.polls {
            self.hub.reply(poll, &ToWorker::Drain);
        }
        if let Some(route) = drained.send {
            self.hub.reply(route, &ToWorker::Drain);
        }
        if drained.first {
            self.hub.publish(drained.info, WorkerState::Draining);
        }
        true
    }

    fn cancel(&self, task: TaskId) -> bool {
        let route = self.hub.registry().cancel(task);
        match route {
            Some(CancelRoute::Send(route)) => {
                self.hub.reply(route, &ToWorker::Cancel { task_id: task });
                true
            }
            Some(CancelRoute::Queued) => true,
            None => false,
        }
    }
}

impl ExecSlot for RemoteSlot {
    fn worker(&self) -> String {
        self.claim
            .as_ref()
            .map(|c| c.worker.clone())
            .unwrap_or_default()
    }

    async fn run(self, job: Job, lease: u32, _ahead: Vec<Arc<Job>>) -> (RunResult, Option<Self>) {
        // Spent either way: push credit comes back with the result, a pull poll is answered.
        (self.send_and_wait(job, lease).await, None)
    }
}

impl RemoteSlot {
    async fn send_and_wait(mut self, job: Job, lease: u32) -> RunResult {
        let claim = self.claim.take().expect("a slot runs once");
        let hub = self.hub.clone();
        let (done, result) = oneshot::channel();
        let (sent, was_sent) = oneshot::channel();
        let f = &job.function;
        {
            // Deciding whether the body goes along and queueing the message happen under one
            // lock: otherwise a later task of the same function, sent without the body, could
            // be queued ahead of the one that carries it.
            let mut registry = hub.registry();
            let Some(send_body) = registry.send(&claim, job.task_id, lease, f.id, done) else {
                return RunResult::Lost(format!(
                    "worker {} left before the task was sent",
                    claim.worker
                ));
            };
            let msg = ToWorker::Task(TaskMsg {
                task_id: job.task_id,
                lease,
                function_id: f.id,
                format: f.format,
                body: send_body.then(|| f.body.clone()),
                entrypoint: if send_body {
                    f.entrypoint.clone()
                } else {
                    None
                },
                args: job.args,
                timeout_ms: job.timeout.as_millis() as u64,
            });
            let queued = hub
                .out
                .send(Outgoing {
                    envelope: claim.route.clone(),
                    body: Body::Msg(wire::encode(&msg)),
                    sent: Some(sent),
                })
                .is_ok();
            if !queued {
                registry.unsent(&claim.worker, job.task_id, f.id);
                return RunResult::Lost(format!(
                    "cannot queue a message to worker {}",
                    claim.worker
                ));
            }
        }
        if !was_sent.await.unwrap_or(false) {
            hub.registry().unsent(&claim.worker, job.task_id, f.id);
            return RunResult::Lost(format!("worker {} is not connected", claim.worker));
        }
        // The worker enforces the timeout itself; this deadline only catches a worker that
        // went silent without being noticed (a pull worker between heartbeats).
        let deadline = job.timeout + hub.cfg.deadline_grace;
        match tokio::time::timeout(deadline, result).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => RunResult::Lost(format!("worker {} was lost", claim.worker)),
            Err(_) => {
                hub.registry().abandon(&claim.worker, job.task_id);
                RunResult::Lost(format!(
                    "no result from worker {} within the task's deadline",
                    claim.worker
                ))
            }
        }
    }
}

impl Hub {
    fn reply(&self, envelope: Envelope, msg: &ToWorker) {
        let body = Body::Msg(wire::encode(msg));
        let _ = self.out.send(Outgoing {
            envelope,
            body,
            sent: None,
        });
    }

    /// Logs a refused frame or message (at most once a second) and counts it.
    fn refuse(&self, reason: &'static str, detail: &dyn std::fmt::Display) {
        crate::metrics::channel_refused(reason);
        let allowed = self
            .refusals
            .lock()
            .expect("refusals lock")
            .allow(Duration::from_secs(1));
        if let Some(held_back) = allowed {
            warn!(event = "peer_refused", reason, %detail, held_back, "worker channel: refused a peer's frame");
        }
    }

    /// Passes one frame through the peer's session: handshakes are answered, sealed messages
    /// opened and handed on, everything else dropped.
    fn on_frame(&self, envelope: Envelope, frame: &[u8]) {
        let Some(id) = envelope.first().cloned() else {
            return;
        };
        let inbound =
            self.sessions
                .lock()
                .expect("sessions lock")
                .inbound(&id, frame, Instant::now());
        match inbound {
            Inbound::Message { payload, worker } => self.on_message(envelope, worker, &payload),
            Inbound::Answer(bytes, what) => {
                match what {
                    "handshake" => debug!("worker channel: handshake done"),
                    "no session" => debug!("worker channel: a frame of an unknown session"),
                    "refusal" => self.refuse("handshake", &"the peer does not hold the worker key"),
                    _ => self.refuse(
                        "plaintext",
                        &"a plaintext frame; this dispatcher requires the worker key",
                    ),
                }
                let _ = self.out.send(Outgoing {
                    envelope,
                    body: Body::Raw(bytes),
                    sent: None,
                });
            }
            Inbound::Dropped(e) => self.refuse("frame", &e),
        }
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().expect("registry lock")
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.sessions.lock().expect("sessions lock")
    }

    /// Announces a registry change in Redis without holding up the socket loop; changes are
    /// written in the order they are announced.
    fn publish(&self, info: WorkerInfo, state: WorkerState) {
        let _ = self.announce.send((info, state));
    }

    /// Handles one opened message from the session `joined` (who it joined as, if it did):
    /// decoded, checked against the session, then handed to the function of its kind.
    fn on_message(&self, envelope: Envelope, joined: Option<String>, payload: &[u8]) {
        let Some(msg) = self.decode(&envelope, payload) else {
            return;
        };
        if !self.authorize(&envelope, joined.as_deref(), &msg) {
            return;
        }
        let _span = info_span!("worker", worker = %msg.worker()).entered();
        match msg {
            ToDispatcher::Hello {
                worker,
                mode,
                host,
                pid,
                slots,
                busy,
            } => {
                let info = WorkerInfo {
                    id: worker,
                    mode,
                    host,
                    pid,
                    dispatcher: self.cfg.dispatcher.clone(),
                    slots,
                    busy,
                    tasks_done: 0,
                    joined_at: now_ms(),
                    last_heartbeat: now_ms(),
                    draining: false,
                };
                self.on_hello(envelope, info)
            }
            ToDispatcher::Poll { worker } => self.on_poll(envelope, &worker),
            ToDispatcher::Result {
                worker,
                task_id,
                lease,
                format,
                outcome,
            } => self.on_result(envelope, worker, task_id, lease, format, outcome),
            ToDispatcher::Heartbeat { worker, busy } => self.on_heartbeat(envelope, &worker, busy),
            ToDispatcher::Leaving { worker } => self.on_leaving(envelope, &worker),
            ToDispatcher::Bye { worker, unfinished } => {
                self.on_bye(envelope, &worker, unfinished.len())
            }
        }
    }

    /// Reads a message; one that does not read is refused with the reason.
    fn decode(&self, envelope: &Envelope, payload: &[u8]) -> Option<ToDispatcher> {
        match wire::decode::<ToDispatcher>(payload) {
            Ok(m) => Some(m),
            Err(e) => {
                match &e {
                    FrameError::Version { .. } => {
                        warn!(event = "message_refused", reason = "version", error = %e, "refusing a worker of another protocol version")
                    }
                    FrameError::Malformed(_) => {
                        warn!(event = "message_refused", reason = "malformed", error = %e, "refusing a malformed message")
                    }
                }
                let refused = ToWorker::Refused {
                    reason: e.to_string(),
                    rejoin: false,
                };
                self.reply(envelope.clone(), &refused);
                None
            }
        }
    }

    /// Whether the session `joined` may say `msg`: a hello binds a new session to its worker,
    /// a pull work socket's first poll binds it to a pull worker that joined on its control
    /// socket, and after that a session speaks only for the worker it joined as. A message
    /// that may not be said is answered (rejoin or refused) here.
    fn authorize(&self, envelope: &Envelope, joined: Option<&str>, msg: &ToDispatcher) -> bool {
        let named = msg.worker();
        match (msg, joined) {
            (ToDispatcher::Hello { .. }, None) => true,
            (ToDispatcher::Poll { .. }, None) => {
                if self.registry().mode(named) != Some(WorkerMode::Pull) {
                    self.rejoin(envelope.clone(), named);
                    return false;
                }
                if let Some(id) = envelope.first() {
                    self.sessions().join(id, named);
                }
                true
            }
            (_, Some(j)) if j == named => true,
            (_, None) => {
                self.rejoin(envelope.clone(), named);
                false
            }
            (_, Some(j)) => {
                self.refuse(
                    "wrong_session",
                    &format_args!(
                        "a message naming worker {named} on the connection of worker {j}"
                    ),
                );
                let refused = ToWorker::Refused {
                    reason: format!("this connection joined as worker {j}"),
                    rejoin: false,
                };
                self.reply(envelope.clone(), &refused);
                false
            }
        }
    }

    /// `hello`: the worker joins (or rejoins after a reconnect) and its session is bound to it.
    fn on_hello(&self, envelope: Envelope, info: WorkerInfo) {
        let worker = info.id.clone();
        if info.mode != self.cfg.mode {
            let reason = format!(
                "this dispatcher runs in {:?} mode; the worker is a {:?} worker",
                self.cfg.mode, info.mode
            );
            warn!(event = "worker_refused", %worker, %reason, "refusing worker");
            let refused = ToWorker::Refused {
                reason,
                rejoin: false,
            };
            return self.reply(envelope, &refused);
        }
        if let Some(id) = envelope.first() {
            self.sessions().join(id, &worker);
        }
        let slots = info.slots;
        let (new, online) = {
            let mut registry = self.registry();
            let new = registry.hello(info.clone(), envelope.clone(), Instant::now());
            (new, registry.online())
        };
        crate::metrics::workers_online(online);
        info!(event = "worker_joined", %worker, slots, new, "worker joined");
        if new {
            self.publish(info, WorkerState::Joined);
        }
        self.capacity.notify_one();
        let welcome = ToWorker::Welcome {
            dispatcher: self.cfg.dispatcher.clone(),
            heartbeat_ms: self.cfg.heartbeat.as_millis() as u64,
        };
        self.reply(envelope, &welcome);
    }

    /// `poll`: held until there is a task for it or the long-poll ends.
    fn on_poll(&self, envelope: Envelope, worker: &str) {
        let leaving = self.registry().is_leaving(worker);
        match leaving {
            // A drained pull worker learns it here if its control socket has not told it yet.
            Some(true) if self.registry().drain_asked(worker) => {
                self.reply(envelope, &ToWorker::Drain)
            }
            Some(true) => self.reply(envelope, &ToWorker::NoWork),
            Some(false) => {
                self.registry().poll(worker, envelope, Instant::now());
                self.capacity.notify_one();
            }
            None => self.rejoin(envelope, worker),
        }
    }

    /// `result`: answers the run waiting for it, or is recorded late (under its lease).
    fn on_result(
        &self,
        envelope: Envelope,
        worker: String,
        task_id: TaskId,
        lease: u32,
        format: FunctionFormat,
        outcome: Outcome,
    ) {
        let waiting = {
            let mut registry = self.registry();
            registry.seen(&worker, Instant::now());
            registry.result(&worker, task_id, lease)
        };
        match waiting {
            Some(done) => {
                if let Err(RunResult::Done(outcome)) = done.send(RunResult::Done(outcome)) {
                    self.record_late(task_id, lease, format, outcome, worker.clone());
                }
            }
            None => self.record_late(task_id, lease, format, outcome, worker.clone()),
        }
        // Either way a slot of this worker is free again.
        self.capacity.notify_one();
        if is_req(&envelope) {
            let ack = self.ack(&worker);
            self.reply(envelope, &ack);
        }
    }

    /// `heartbeat`: the worker is alive.
    fn on_heartbeat(&self, envelope: Envelope, worker: &str, busy: u32) {
        let known = self.registry().heartbeat(worker, Instant::now(), now_ms());
        if known {
            debug!(busy, "heartbeat");
            let ack = self.ack(worker);
            self.reply(envelope, &ack);
        } else {
            self.rejoin(envelope, worker);
        }
    }

    /// `leaving`: no new tasks for the worker; its held polls are answered `no_work`; it is
    /// announced `draining` unless a drain already announced it.
    fn on_leaving(&self, envelope: Envelope, worker: &str) {
        info!(event = "worker_leaving", %worker, "worker leaving: no new tasks for it");
        let drained = self.registry().leaving(worker);
        if let Some(drained) = drained {
            for poll in drained.polls {
                self.reply(poll, &ToWorker::NoWork);
            }
            if drained.first {
                self.publish(drained.info, WorkerState::Draining);
            }
        }
        self.reply(envelope, &ToWorker::Ack);
    }

    /// `bye`: the worker is gone; what it still ran goes back to the queue.
    fn on_bye(&self, envelope: Envelope, worker: &str, unfinished: usize) {
        let reason = format!("worker {worker} shut down before finishing it");
        if let Some(gone) = self.registry().remove(worker, &reason) {
            info!(event = "worker_left", %worker, unfinished, "worker left");
            for poll in gone.polls {
                self.reply(poll, &ToWorker::NoWork);
            }
            self.publish(gone.info, WorkerState::Left);
        }
        self.reply(envelope, &ToWorker::Ack);
    }

    /// The answer to a control request: `ack`, or a cancel or a drain waiting for this (pull)
    /// worker, which stands in for it.
    fn ack(&self, worker: &str) -> ToWorker {
        let mut registry = self.registry();
        match registry.take_cancel(worker) {
            Some(task_id) => ToWorker::Cancel { task_id },
            None if registry.take_drain(worker) => ToWorker::Drain,
            None => ToWorker::Ack,
        }
    }

    /// The worker is unknown here (this dispatcher restarted): it must say hello again.
    fn rejoin(&self, envelope: Envelope, worker: &str) {
        debug!(%worker, "unknown worker; asking it to rejoin");
        let refused = ToWorker::Refused {
            reason: "unknown worker: say hello first".into(),
            rejoin: true,
        };
        self.reply(envelope, &refused);
    }

    /// A result nobody waits for (it came after a reconnect, a deadline or a restart): recorded
    /// only if the task still runs under its lease on this worker, which the store checks; a
    /// result of an earlier attempt is dropped and counted as stale.
    fn record_late(
        &self,
        task: TaskId,
        lease: u32,
        format: FunctionFormat,
        outcome: Outcome,
        worker: String,
    ) {
        let store = self.store.clone();
        let retention = self.cfg.retention;
        tokio::spawn(async move {
            match store
                .finish(&Finish {
                    task_id: task,
                    format,
                    outcome: &outcome,
                    worker: &worker,
                    entry: None,
                    retention,
                    next: None,
                    take: 1,
                    lease: Some(lease),
                })
                .await
            {
                Ok((true, _)) => {
                    info!(event = "late_result_recorded", task_id = %task, %worker, attempt = lease, "late result recorded")
                }
                Ok((false, _)) => {
                    info!(event = "late_result_dropped", task_id = %task, %worker, attempt = lease, "late result dropped: the task no longer runs under that lease")
                }
                Err(e) => {
                    warn!(event = "record_failed", task_id = %task, %worker, attempt = lease, error = %e, "cannot record a late result")
                }
            }
        });
    }
}

/// Writes registry changes to Redis one after another, in the order they were announced.
async fn announce_loop(
    store: Store,
    mut changes: mpsc::UnboundedReceiver<(WorkerInfo, WorkerState)>,
) {
    while let Some((info, state)) = changes.recv().await {
        if let Err(e) = store.put_worker(&info, state).await {
            debug!(event = "registry_update_failed", worker = %info.id, error = %e, "cannot update the worker registry");
        }
    }
}

/// REQ peers put an empty delimiter frame after their identity and wait for an answer to
/// every request; DEALER peers do not.
fn is_req(envelope: &Envelope) -> bool {
    envelope.last().is_some_and(|f| f.is_empty())
}

async fn send_loop(
    mut socket: zeromq::RouterSendHalf,
    sessions: Arc<Mutex<Sessions>>,
    mut out: mpsc::UnboundedReceiver<Outgoing>,
) {
    while let Some(Outgoing {
        mut envelope,
        body,
        sent,
    }) = out.recv().await
    {
        let payload = match body {
            Body::Raw(bytes) => Some(bytes),
            Body::Msg(msg) => envelope
                .first()
                .and_then(|id| sessions.lock().expect("sessions lock").outbound(id, msg)),
        };
        let msg = payload.and_then(|p| {
            envelope.push(p);
            ZmqMessage::try_from(envelope).ok()
        });
        let ok = match msg {
            None => {
                debug!("no session for a worker message; not sent");
                false
            }
            Some(msg) => match socket.send(msg).await {
                Ok(()) => true,
                Err(e) => {
                    // The peer is gone; heartbeats will tell the registry.
                    debug!(error = %e, "cannot send to a worker");
                    false
                }
            },
        };
        if let Some(sent) = sent {
            let _ = sent.send(ok);
        }
    }
}

async fn recv_loop(hub: Arc<Hub>, mut socket: zeromq::RouterRecvHalf, shutdown: CancellationToken) {
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => return,
            msg = socket.recv() => msg,
        };
        match msg {
            Ok(msg) => {
                let mut frames = msg.into_vec();
                let Some(payload) = frames.pop() else {
                    continue;
                };
                hub.on_frame(frames, &payload);
            }
            Err(e) => {
                warn!(event = "worker_socket_failed", error = %e, "worker socket receive failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Expires held polls, finds lost workers and keeps the Redis registry current.
async fn upkeep(hub: Arc<Hub>, shutdown: CancellationToken) {
    let tick_every = (hub.cfg.heartbeat / 4).max(Duration::from_millis(50));
    let mut tick = tokio::time::interval(tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let lost_after = hub.cfg.heartbeat * 3;
    let mut last_publish = Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        hub.sessions
            .lock()
            .expect("sessions lock")
            .expire(Instant::now());
        for poll in hub.registry().expired_polls(hub.cfg.long_poll) {
            hub.reply(poll, &ToWorker::NoWork);
        }
        // Joins update it at once; leaving and lost workers are counted here, a tick later.
        crate::metrics::workers_online(hub.registry().online());
        let silent = hub.registry().silent(lost_after);
        for worker in silent {
            let reason = format!(
                "worker {worker} lost: no heartbeat for {} ms",
                lost_after.as_millis()
            );
            let running = hub.registry().running(&worker);
            if let Some(gone) = hub.registry().remove(&worker, &reason) {
                warn!(event = "worker_lost", %worker, running, "worker lost; re-queueing its tasks");
                hub.publish(gone.info, WorkerState::Lost);
            }
        }
        if last_publish.elapsed() >= hub.cfg.heartbeat * 2 {
            last_publish = Instant::now();
            let infos = hub.registry().infos();
            for info in infos {
                hub.publish(info, WorkerState::Heartbeat);
            }
        }
    }
    // Shutting down: the workers will find another dispatcher; drop their registry entries.
    let gone = hub.registry().infos();
    for info in gone {
        let _ = hub.store.put_worker(&info, WorkerState::Left).await;
    }
}
