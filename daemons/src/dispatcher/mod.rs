//! The dispatcher: takes tasks from the queue stream and runs them on an [`Executor`].
//!
//! The loop is the same in every mode: wait for a free slot, take as many entries as there are
//! free slots (so work this dispatcher cannot start stays in the stream for others) and start
//! their tasks (QUEUED → RUNNING), run each, then record the outcome and remove the entry.
//! Modes differ only in where slots come from: the local Python pool, or remote workers.
//!
//! Round trips, not Redis commands, are what a busy platform pays for (on a small machine every
//! hop between processes is a wake-up and a context switch), so the hot path is two scripts:
//! `take.lua` reads entries and starts their tasks in one call, and `finish.lua` records an
//! outcome *and* takes the next entry for the slot that just became free. A slot that stays busy
//! costs one Redis round trip per task; the blocking XREADGROUP only runs when the queue is
//! empty, and it carries `take.lua` in the same pipeline, which Redis runs the moment the read
//! is served: a task submitted to an idle dispatcher is read and started in one round trip
//! ([`QueueReader::read_and_start`]). (The first design read with XREADGROUP, then started and
//! finished each task with its own call: three round trips per task, and 3,000 no-op tasks/s on
//! 2 cores instead of 8,000.)
//!
//! Holding the next task: between two tasks a slot still waits for that round trip, and on a
//! small machine a child woken for every task after such a wait costs more than the task. So a
//! slot that comes back from its run (a local pool's; a remote worker's credit is spent with
//! its task) and whose last run took under `hold_below` (2 ms, `--hold-below-ms`) takes two
//! entries when it records an outcome: one to run now and one to *hold*, started (RUNNING on
//! its worker) but not run yet. When the run ends, the held task runs at once, and the outcome
//! just produced is recorded while it runs, taking the next one to hold: still one round trip
//! per task, but none that a child waits for. A held task waits at most for the run before
//! it, predicted short; if that run lasts over `hold_at_most` (20 ms, `--hold-at-most-ms`),
//! the held task is given back (`lua/release.lua`: QUEUED again at the queue's end, its
//! attempt uncounted), as it is when its slot stops (shutdown). A
//! cancel of a held task marks it, and it never runs. A dispatcher that dies with a task held
//! leaves it pending like a running one: reclaimed, with the attempt counted. Its record's
//! `started_at` is when it was held, so its run time in the function statistics includes that
//! wait (under `hold_below` on a steady slot).
//!
//! Recovery: a dispatcher keeps the idle time of its in-flight entries low (XCLAIM to itself);
//! entries idle longer than `reclaim_after` belong to a dead dispatcher, and any live one
//! re-queues them (`lua/requeue.lua`), counting the attempt.
//!
//! Function definitions are cached by id until the Redis epoch changes (Redis lost its data,
//! see `store::watch_epoch`); `take.lua` reports a task whose function is gone as naming none,
//! and such a task is failed (`FunctionMissing`), never run from the cache. On SIGTERM the loop
//! stops even while Redis is away: connecting, the blocking read and every command are bounded.
//!
//! Each run is in a `task` span (`task_id`, `attempt`, `worker`), so every line logged while
//! it runs, here or in the executor, says which task it is about.
//!
//! Cancels (`cancels`): every dispatcher subscribes to the cancels channel and kills the tasks
//! it runs whose ids are published there ([`Executor::cancel`]); the run then ends through
//! the same finish path as any other, FAILED with error type `Cancelled`. The same listener
//! hears drains (an operator's `POST /workers/{id}/drain`) and hands them to
//! [`Executor::drain`]: remote workers are drained, a local pool is not (see there).

mod cancels;
mod local;
mod remote;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faas_protocol::event::WorkerState;
use faas_protocol::model::WorkerInfo;
use faas_protocol::{FunctionFormat, FunctionId, TaskId, TaskStatus};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::backoff::Backoff;
use crate::executor::{FunctionDef, Job, Outcome};
use crate::store::{entry_order, Finish, QueueReader, Store, StoreError, Taken};

pub use local::LocalExecutor;
pub use remote::{RemoteConfig, RemoteExecutor};

/// Where slots come from and how a job runs on one.
pub trait Executor: Send + Sync + 'static {
    type Slot: ExecSlot;
    /// Waits for a free slot; `None` when the executor is shutting down.
    fn acquire(&self) -> impl Future<Output = Option<Self::Slot>> + Send;
    fn try_acquire(&self) -> Option<Self::Slot>;
    /// The registry entry of an executor that is itself the worker (local mode). Remote
    /// executors keep their workers' entries themselves.
    fn local_worker(&self) -> Option<WorkerInfo> {
        None
    }
    /// Kills the run of task `task` if it is on one of this executor's slots; that run then
    /// ends `Cancelled`. Returns whether it was found. Never waits.
    fn cancel(&self, task: TaskId) -> bool;
    /// Drains worker `worker` if it is one of this executor's: no new task goes to it, it is
    /// announced `draining`, and it is told to finish its tasks and leave. Returns whether it
    /// was found. A local pool is never drained this way (the gateway refuses it): stopping
    /// its dispatcher drains it.
    fn drain(&self, _worker: &str) -> bool {
        false
    }
}

/// The right to run one job now.
pub trait ExecSlot: Send + Sized + 'static {
    /// The name recorded as the task's worker.
    fn worker(&self) -> String;
    /// Runs `job` as attempt `lease` of its task; gives the slot back when it can run another
    /// job at once (a local pool's slot can; a remote worker's credit or poll is spent, and the
    /// next comes from the executor). A remote worker echoes the lease with its result.
    fn run(self, job: Job, lease: u32) -> impl Future<Output = (RunResult, Option<Self>)> + Send;
}

/// How a run ended.
#[derive(Debug)]
pub enum RunResult {
    /// The task ran: its outcome is final.
    Done(Outcome),
    /// The worker was lost before it answered: the task goes back to the queue.
    Lost(String),
}

#[derive(Clone, Debug)]
pub struct DispatcherConfig {
    /// Consumer name in the queue's group; unique per dispatcher process.
    pub name: String,
    /// Timeout of tasks that do not set `timeout_ms`.
    pub default_timeout: Duration,
    /// How long a terminal task's record is kept.
    pub retention: Duration,
    /// Entries idle this long belong to a dead dispatcher and are re-queued.
    pub reclaim_after: Duration,
    /// How long shutdown waits for running tasks before re-queueing them.
    pub drain_grace: Duration,
    /// Most entries read in one XREADGROUP.
    pub batch: usize,
    /// A slot whose last run took less holds the next task ahead (zero: never).
    pub hold_below: Duration,
    /// How long a held task may wait behind a run before it is given back.
    pub hold_at_most: Duration,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        Self {
            name: format!("dispatcher-{}", std::process::id()),
            default_timeout: Duration::from_secs(300),
            retention: Duration::from_secs(24 * 3600),
            reclaim_after: Duration::from_secs(30),
            drain_grace: Duration::from_secs(30),
            batch: 64,
            hold_below: Duration::from_millis(2),
            hold_at_most: Duration::from_millis(20),
        }
    }
}

/// How long a blocking read waits before the loop checks for shutdown again.
const READ_BLOCK: Duration = Duration::from_secs(2);

struct Shared {
    store: Store,
    cfg: DispatcherConfig,
    functions: Mutex<HashMap<FunctionId, Arc<FunctionDef>>>,
    /// Entry ids (and their tasks) running now, or held to run next: touched so nobody
    /// reclaims them, and re-queued if shutdown's grace runs out.
    inflight: Mutex<HashMap<String, TaskId>>,
    /// Tasks held ahead by a slot, and whether a cancel came for them meanwhile.
    held: Mutex<HashMap<TaskId, bool>>,
    /// A take found the queue empty since the dispatch loop's last take (see [`take`]).
    queue_seen_empty: AtomicBool,
}

impl Shared {
    /// The greatest id of the entries this dispatcher runs or holds ("0" for none): entries
    /// delivered to it later have greater ids (a stream delivers in id order).
    fn newest_inflight(&self) -> String {
        self.inflight
            .lock()
            .expect("lock")
            .keys()
            .max_by_key(|e| entry_order(e))
            .cloned()
            .unwrap_or_else(|| "0".to_owned())
    }

    /// Forgets a held task as it is run or given back; whether it was cancelled meanwhile.
    fn unhold(&self, task: TaskId) -> bool {
        self.held
            .lock()
            .expect("lock")
            .remove(&task)
            .unwrap_or(false)
    }

    /// Marks a held task cancelled, so that it never runs; whether it was held here.
    fn cancel_held(&self, task: TaskId) -> bool {
        match self.held.lock().expect("lock").get_mut(&task) {
            Some(cancelled) => {
                *cancelled = true;
                true
            }
            None => false,
        }
    }
}

/// Runs the dispatch loop until `shutdown`, then drains for at most `drain_grace`.
pub async fn run<E: Executor>(
    store: Store,
    executor: Arc<E>,
    cfg: DispatcherConfig,
    shutdown: CancellationToken,
) -> Result<(), StoreError> {
    let mut reader = QueueReader::new(store.clone(), cfg.name.clone());
    retry_until(&shutdown, || reader.ensure_group()).await;
    let shared = Arc::new(Shared {
        store,
        cfg,
        functions: Mutex::default(),
        inflight: Mutex::default(),
        held: Mutex::default(),
        queue_seen_empty: AtomicBool::new(false),
    });
    info!(event = "taking_tasks", dispatcher = %shared.cfg.name, "dispatcher taking tasks");
    // Redis answered and the executor is up (pool started or socket bound): systemd may
    // order dependent units after this point.
    crate::notify::notify_ready();
    let tracker = TaskTracker::new();
    let upkeep = tokio::spawn(upkeep(shared.clone(), shutdown.clone()));
    // Definitions are cached by id until Redis loses its data (a new epoch).
    let cache = shared.clone();
    let epoch = tokio::spawn(crate::store::watch_epoch(
        shared.store.clone(),
        shutdown.clone(),
        move || cache.functions.lock().expect("lock").clear(),
    ));
    // Heard until the drain is over: a task still draining can be cancelled too.
    let stop_cancels = CancellationToken::new();
    let cancels = tokio::spawn(cancels::listen(
        shared.clone(),
        executor.clone(),
        stop_cancels.clone(),
    ));
    let announce = tokio::spawn(announce_local(
        shared.store.clone(),
        executor.clone(),
        shutdown.clone(),
    ));
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    while !shutdown.is_cancelled() {
        let first = tokio::select! {
            _ = shutdown.cancelled() => break,
            slot = executor.acquire() => match slot { Some(s) => s, None => break },
        };
        let mut slots = vec![first];
        while slots.len() < shared.cfg.batch {
            match executor.try_acquire() {
                Some(s) => slots.push(s),
                None => break,
            }
        }
        // Not raced against shutdown: a read cut short could lose entries Redis already handed
        // us (they would wait for a reclaim). READ_BLOCK bounds how long shutdown waits here.
        let workers: Vec<String> = slots.iter().map(ExecSlot::worker).collect();
        let seen_empty = shared.queue_seen_empty.swap(false, Ordering::Relaxed);
        let mark = shared.newest_inflight();
        let taken = match take(&mut reader, &workers, seen_empty, &mark).await {
            Ok(taken) => {
                backoff.reset();
                if taken.len() < workers.len() {
                    shared.queue_seen_empty.store(true, Ordering::Relaxed);
                }
                taken
            }
            Err(e) => {
                warn!(event = "queue_read_failed", error = %e, "cannot read the queue; retrying");
                drop(slots);
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                }
                continue;
            }
        };
        // Entry i was started on workers[i], the worker of slots[i].
        for (taken, slot) in taken.into_iter().zip(slots) {
            tracker.spawn(run_slot(
                shared.clone(),
                executor.clone(),
                taken,
                slot,
                shutdown.clone(),
            ));
        }
    }
    tracker.close();
    info!(
        event = "draining",
        running = tracker.len(),
        "dispatcher stopping; draining running tasks"
    );
    if tokio::time::timeout(shared.cfg.drain_grace, tracker.wait())
        .await
        .is_err()
    {
        let left: Vec<(String, TaskId)> = shared.inflight.lock().expect("lock").drain().collect();
        warn!(
            event = "drain_grace_exceeded",
            unfinished = left.len(),
            "drain grace ran out; re-queueing unfinished tasks"
        );
        for (entry, task) in left {
            crate::metrics::task_requeued("drain");
            if let Err(e) = shared
                .store
                .requeue(
                    task,
                    "dispatcher shut down",
                    Some(&entry),
                    shared.cfg.retention,
                )
                .await
            {
                warn!(event = "requeue_failed", task_id = %task, error = %e, "cannot re-queue; a live dispatcher will reclaim it");
            }
        }
    }
    upkeep.abort();
    epoch.abort();
    stop_cancels.cancel();
    let _ = cancels.await;
    let _ = announce.await;
    Ok(())
}

/// How often a local pool's registry entry is refreshed (the console ages heartbeats).
const ANNOUNCE_EVERY: Duration = Duration::from_secs(2);

/// Keeps a local pool's entry in the worker registry, so it shows up like any worker.
async fn announce_local<E: Executor>(store: Store, executor: Arc<E>, shutdown: CancellationToken) {
    let Some(first) = executor.local_worker() else {
        return;
    };
    let _ = store.put_worker(&first, WorkerState::Joined).await;
    let mut tick = tokio::time::interval(ANNOUNCE_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        if let Some(info) = executor.local_worker() {
            if let Err(e) = store.put_worker(&info, WorkerState::Heartbeat).await {
                debug!(error = %e, "cannot refresh the local worker entry");
            }
        }
    }
    if let Some(info) = executor.local_worker() {
        let _ = store.put_worker(&info, WorkerState::Left).await;
    }
}

/// Takes entries for `workers` and starts their tasks: without waiting when the queue has
/// entries (one round trip), else with a blocking read of its own (the script cannot block).
/// Entries read but not started (Redis went away in between) stay pending and are reclaimed.
/// When the last take found the queue empty (`seen_empty`: a take that left slots without
/// work, or a slot's chain that ended for want of work), the non-blocking try is skipped: it
/// would find nothing again, and a lone task's round trip paid for that script in Redis and
/// here (three scripts per task instead of two).
/// The blocking read starts what it reads in the same round trip (see
/// [`QueueReader::read_and_start`]; `mark` is the newest entry this dispatcher runs or holds).
async fn take(
    reader: &mut QueueReader,
    workers: &[String],
    seen_empty: bool,
    mark: &str,
) -> Result<Vec<Taken>, StoreError> {
    if !seen_empty {
        let taken = reader.take(workers).await?;
        if !taken.is_empty() {
            return Ok(taken);
        }
    }
    reader.read_and_start(workers, READ_BLOCK, mark).await
}

/// Runs started queue entries on a slot, one after another: each outcome is recorded together
/// with taking the next entry for the slot that just became free, so that a busy dispatcher
/// spends one Redis round trip per task. Ends when the queue is empty, the slot is spent and
/// none is free, or on shutdown; the loop in [`run`] then waits for work again. A slot of
/// short tasks also holds the next one ahead (see "Holding the next task" in the module docs).
async fn run_slot<E: Executor>(
    shared: Arc<Shared>,
    executor: Arc<E>,
    taken: Taken,
    slot: E::Slot,
    shutdown: CancellationToken,
) {
    let mut ahead = Ahead::default();
    let mut next = Some((taken, slot));
    while let Some((taken, slot)) = next.take() {
        next = run_entry(&shared, &*executor, taken, slot, &shutdown, &mut ahead).await;
    }
    // The chain ended with an outcome still to record (the held task it was to run beside
    // needed no run) or a task held that no slot will run: neither is left behind.
    if let Some(u) = ahead.unrecorded.take() {
        u.record(&shared, None).await;
    }
    if let Some((held, worker)) = ahead.held.take() {
        release(&shared, held, &worker).await;
    }
}

/// A slot's work beside the task it runs (see "Holding the next task" in the module docs).
#[derive(Default)]
struct Ahead {
    /// Taken and started for this slot (on the worker named) while it ran the task before:
    /// it runs next.
    held: Option<(Taken, String)>,
    /// The outcome of the task before, recorded while the slot runs the held one.
    unrecorded: Option<Unrecorded>,
}

impl Ahead {
    /// Holds `held`, started on `worker`, to run next: in flight (touched, re-queued by
    /// shutdown's grace) and cancellable before it runs.
    fn hold(&mut self, shared: &Shared, held: Taken, worker: String) {
        if let Some(task) = held.entry.task_id {
            shared
                .inflight
                .lock()
                .expect("lock")
                .insert(held.entry.entry_id.clone(), task);
            shared.held.lock().expect("lock").insert(task, false);
        }
        self.held = Some((held, worker));
    }
}

/// An outcome to record; `hold`: also take the next entry for the slot, to hold ahead.
struct Unrecorded {
    task_id: TaskId,
    format: FunctionFormat,
    outcome: Outcome,
    worker: String,
    entry: String,
    lease: u32,
    hold: bool,
}

impl Unrecorded {
    /// Records it; with `next_worker`, taking an entry for that worker as [`record`] does.
    async fn record(&self, shared: &Shared, next_worker: Option<&str>) -> Vec<Taken> {
        record(
            shared,
            self.task_id,
            self.format,
            &self.outcome,
            &self.worker,
            &self.entry,
            next_worker,
            false,
            self.lease,
        )
        .await
    }
}

/// Runs one started queue entry to its recorded outcome; returns the next entry, taken for
/// the same or another free slot, if there is one.
async fn run_entry<E: Executor>(
    shared: &Shared,
    executor: &E,
    taken: Taken,
    slot: E::Slot,
    shutdown: &CancellationToken,
    ahead: &mut Ahead,
) -> Option<(Taken, E::Slot)> {
    let store = &shared.store;
    let Taken { entry, started } = taken;
    let Some(task_id) = entry.task_id else {
        warn!(event = "entry_without_task", entry = %entry.entry_id, "queue entry without a task id; dropping it");
        let _ = store.drop_entry(&entry.entry_id).await;
        return None;
    };
    let worker = slot.worker();
    if started.previous != Some(TaskStatus::Queued) {
        debug!(%task_id, previous = ?started.previous, "entry needs no run; dropping it");
        let _ = store.drop_entry(&entry.entry_id).await;
        return None;
    }
    if shared.unhold(task_id) {
        // Cancelled while held: the gateway recorded it FAILED, so only the entry is left.
        debug!(%task_id, "a held task was cancelled; dropping its entry");
        shared
            .inflight
            .lock()
            .expect("lock")
            .remove(&entry.entry_id);
        let _ = store.drop_entry(&entry.entry_id).await;
        return None;
    }
    let retention = shared.cfg.retention;
    let function = match started.function_id {
        Some(fid) => function(shared, fid).await,
        // take_lib.lua reports a function that is no longer registered as none.
        None => Err("the task's function is not registered (any more)".to_owned()),
    };
    let function = match function {
        Ok(f) => f,
        Err(why) => {
            let outcome = Outcome::platform_failure("FunctionMissing", why);
            let format = FunctionFormat::Source;
            record(
                shared,
                task_id,
                format,
                &outcome,
                &worker,
                &entry.entry_id,
                None,
                false,
                started.attempts,
            )
            .await;
            return None;
        }
    };
    let args = match function.format {
        FunctionFormat::Dill => serde_json::Value::String(started.args),
        FunctionFormat::Source => serde_json::from_str(&started.args).unwrap_or_default(),
    };
    let job = Job {
        task_id,
        function: function.clone(),
        args,
        timeout: started
            .timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(shared.cfg.default_timeout),
    };
    shared
        .inflight
        .lock()
        .expect("lock")
        .insert(entry.entry_id.clone(), task_id);
    crate::metrics::task_dispatched();
    let began = std::time::Instant::now();
    // The attempt number is the lease: finish.lua records the outcome only while the task
    // still runs under it, so the result of an attempt given up on is never stored.
    let lease = started.attempts;
    let span = info_span!("task", %task_id, attempt = lease, %worker);
    let run = slot.run(job, lease).instrument(span.clone());
    let ((result, kept), ran) = run_beside(shared, run, ahead, &worker).await;
    // Gone from the map: shutdown's grace ran out and the task was re-queued already.
    shared
        .inflight
        .lock()
        .expect("lock")
        .remove(&entry.entry_id)?;
    match result {
        RunResult::Done(outcome) => {
            crate::metrics::task_finished(outcome.status, began.elapsed());
            // Only a slot that comes back from its run holds a task ahead (a local pool's;
            // a remote worker's credit is spent with its task), and only after a short run.
            let short = kept.is_some() && ran < shared.cfg.hold_below;
            let slot = match shutdown.is_cancelled() {
                true => None,
                false => kept.or_else(|| executor.try_acquire()),
            };
            if slot.is_some() {
                if let Some((held, _)) = ahead.held.take() {
                    // The held task runs at once; this outcome is recorded while it runs.
                    ahead.unrecorded = Some(Unrecorded {
                        task_id,
                        format: function.format,
                        outcome,
                        worker,
                        entry: entry.entry_id,
                        lease,
                        hold: short,
                    });
                    return slot.map(|slot| (held, slot));
                }
            }
            let next_worker = slot.as_ref().map(ExecSlot::worker);
            let mut taken = record(
                shared,
                task_id,
                function.format,
                &outcome,
                &worker,
                &entry.entry_id,
                next_worker.as_deref(),
                short,
                lease,
            )
            .instrument(span)
            .await
            .into_iter();
            let Some(next) = taken.next() else {
                // Asked for work and found none: the dispatch loop's next take need not ask
                // again before it blocks. (Nothing is taken without a slot to run it on.)
                if next_worker.is_some() {
                    shared.queue_seen_empty.store(true, Ordering::Relaxed);
                }
                return None;
            };
            if let (Some(held), Some(on)) = (taken.next(), next_worker) {
                ahead.hold(shared, held, on);
            }
            // An unused slot is dropped here, which gives it back.
            slot.map(|slot| (next, slot))
        }
        RunResult::Lost(reason) => {
            crate::metrics::task_requeued("worker_lost");
            match store
                .requeue(task_id, &reason, Some(&entry.entry_id), retention)
                .await
            {
                Ok(status) => {
                    info!(event = "requeued", %task_id, %reason, %status, "worker lost; task re-queued")
                }
                Err(e) => {
                    warn!(event = "requeue_failed", %task_id, error = %e, "cannot re-queue; it will be reclaimed")
                }
            }
            None
        }
    }
}

/// Awaits `run` while doing the slot's work beside it: recording the outcome of the task
/// before (taking the next task to hold, if it says so), and giving the held task back if the
/// run lasts longer than `hold_at_most`, so that it waits for no long run. Returns the
/// run's output and how long the run itself took.
async fn run_beside<R>(
    shared: &Shared,
    run: impl Future<Output = R>,
    ahead: &mut Ahead,
    worker: &str,
) -> (R, Duration) {
    let began = std::time::Instant::now();
    let mut ran = Duration::ZERO;
    let unrecorded = ahead.unrecorded.take();
    let recording = async {
        match &unrecorded {
            Some(u) => u.record(shared, u.hold.then_some(worker)).await,
            None => Vec::new(),
        }
    };
    let mut run = std::pin::pin!(run);
    let mut recording = std::pin::pin!(recording);
    let give_back = tokio::time::sleep(shared.cfg.hold_at_most);
    let mut give_back = std::pin::pin!(give_back);
    let mut recorded = unrecorded.is_none();
    let mut result = None;
    while result.is_none() || !recorded {
        tokio::select! {
            out = &mut run, if result.is_none() => {
                ran = began.elapsed();
                result = Some(out);
            }
            taken = &mut recording, if !recorded => {
                recorded = true;
                if let Some(held) = taken.into_iter().next() {
                    ahead.hold(shared, held, worker.to_owned());
                }
            }
            _ = &mut give_back, if result.is_none() && ahead.held.is_some() => {
                if let Some((held, held_on)) = ahead.held.take() {
                    release(shared, held, &held_on).await;
                }
            }
        }
    }
    (result.expect("the loop ends with the run's result"), ran)
}

/// Gives a task held on `worker` back to the queue (`lua/release.lua`): it did not run, so
/// its attempt is not counted. If Redis cannot be reached, its entry is left to the reclaim
/// of entries nobody touches (`upkeep`), which re-queues it.
async fn release(shared: &Shared, held: Taken, worker: &str) {
    let entry = held.entry.entry_id;
    shared.inflight.lock().expect("lock").remove(&entry);
    let Some(task_id) = held.entry.task_id else {
        return;
    };
    shared.unhold(task_id);
    match shared
        .store
        .release(task_id, &entry, worker, held.started.attempts)
        .await
    {
        Ok(status) => {
            info!(event = "held_task_given_back", %task_id, %status, "gave a held task back to the queue")
        }
        Err(e) => {
            warn!(event = "requeue_failed", %task_id, error = %e, "cannot give a held task back; it will be reclaimed")
        }
    }
}

/// Records an outcome, retrying while Redis is away: a result, once computed, is not dropped
/// lightly. If Redis stays away, the entry stays pending and the task runs again elsewhere.
/// With `next_worker`, the same call takes and starts the next entry for that worker (and,
/// with `hold`, one more, to hold ahead).
#[allow(clippy::too_many_arguments)]
async fn record(
    shared: &Shared,
    task_id: TaskId,
    format: FunctionFormat,
    outcome: &Outcome,
    worker: &str,
    entry: &str,
    next_worker: Option<&str>,
    hold: bool,
    lease: u32,
) -> Vec<Taken> {
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
    let next = next_worker.map(|w| (w, shared.cfg.name.as_str()));
    for _ in 0..20 {
        let done = shared
            .store
            .finish(&Finish {
                task_id,
                format,
                outcome,
                worker,
                entry: Some(entry),
                retention: shared.cfg.retention,
                next,
                hold: hold && next.is_some(),
                lease: Some(lease),
            })
            .await;
        match done {
            Ok((recorded, taken)) => {
                debug!(%task_id, status = %outcome.status, recorded, "task finished");
                return taken;
            }
            Err(e) => {
                warn!(event = "record_failed", %task_id, error = %e, "cannot record the outcome; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
    warn!(event = "record_given_up", %task_id, "giving up recording the outcome; the task will be re-queued");
    Vec::new()
}

async fn function(shared: &Shared, id: FunctionId) -> Result<Arc<FunctionDef>, String> {
    if let Some(f) = shared.functions.lock().expect("lock").get(&id) {
        return Ok(f.clone());
    }
    match shared.store.function_def(id).await {
        Ok(Some(f)) => {
            let f = Arc::new(f);
            shared.functions.lock().expect("lock").insert(id, f.clone());
            Ok(f)
        }
        Ok(None) => Err(format!("function {id} is not registered")),
        Err(e) => Err(format!("cannot load function {id}: {e}")),
    }
}

/// Keeps this dispatcher's entries fresh and re-queues those of dead dispatchers.
async fn upkeep(shared: Arc<Shared>, shutdown: CancellationToken) {
    let every = (shared.cfg.reclaim_after / 3).max(Duration::from_millis(100));
    let mut reader = QueueReader::new(shared.store.clone(), shared.cfg.name.clone());
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let mine: Vec<String> = shared
            .inflight
            .lock()
            .expect("lock")
            .keys()
            .cloned()
            .collect();
        if let Err(e) = reader.touch(&mine).await {
            debug!(error = %e, "cannot touch in-flight entries");
        }
        let orphans = match reader.reclaim(shared.cfg.reclaim_after, 100).await {
            Ok(o) => o,
            Err(e) => {
                debug!(error = %e, "cannot reclaim entries");
                continue;
            }
        };
        let mine: HashSet<String> = shared
            .inflight
            .lock()
            .expect("lock")
            .keys()
            .cloned()
            .collect();
        for entry in orphans.into_iter().filter(|e| !mine.contains(&e.entry_id)) {
            let Some(task) = entry.task_id else {
                let _ = shared.store.drop_entry(&entry.entry_id).await;
                continue;
            };
            let reason = "its dispatcher stopped answering";
            crate::metrics::task_requeued("reclaim");
            match shared
                .store
                .requeue(task, reason, Some(&entry.entry_id), shared.cfg.retention)
                .await
            {
                Ok(status) => {
                    info!(event = "reclaimed", task_id = %task, reason, %status, "reclaimed a task from a dead dispatcher")
                }
                Err(e) => {
                    warn!(event = "requeue_failed", task_id = %task, error = %e, "cannot re-queue a reclaimed task")
                }
            }
        }
    }
}

/// Retries `op` with back-off until it succeeds or shutdown.
async fn retry_until<F, Fut, T>(shutdown: &CancellationToken, mut op: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    loop {
        match op().await {
            Ok(v) => return Some(v),
            Err(e) => warn!(event = "redis_not_ready", error = %e, "redis not ready; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}
