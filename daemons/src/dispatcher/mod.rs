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
//! costs one Redis round trip per task at most (fewer when it holds tasks ahead); the blocking
//! XREADGROUP only runs when the queue is empty, and it carries `take.lua` in the same
//! pipeline, which Redis runs the moment the read is served: a task submitted to an idle
//! dispatcher is read and started in one round trip ([`QueueReader::read_and_start`]). (The
//! first design read with XREADGROUP, then started and finished each task with its own call:
//! three round trips per task, and 3,000 no-op tasks/s on 2 cores instead of 8,000.)
//!
//! Holding the next tasks: between two tasks a slot still waits for that round trip, and on a
//! small machine a child woken for every task costs more than the task. So a slot that comes
//! back from its run (a local pool's; a remote worker's credit is spent with its task) and
//! whose last run took under `hold_below` (2 ms, `--hold-below-ms`) takes more entries when
//! it records an outcome: one to run now and up to `hold_ahead` (8, `--hold-ahead`) to *hold*,
//! started (RUNNING on its worker) but not run yet. The held tasks run one after another, in
//! order, and their requests are written into the child's pipe behind the one running
//! (executor/child.rs, "Writing ahead"), so that the child goes from task to task without
//! sleeping. Outcomes are recorded beside the runs, one recording in flight per slot: it
//! carries every outcome produced since the one before (`finish.lua` calls pipelined in one
//! round trip), and its last call tops the held tasks up again. A slot is then paced by its
//! child, not by Redis round trips, and pays one round trip per several tasks. (Holding one
//! task, each run waiting for its own recording: 3,100–4,200 no-op tasks/s through the
//! Python SDK on 2 cores; this: see `demo/bench/README.md`, issue #12, stop 15.)
//!
//! A held task waits at most for the runs before it, predicted short; if a run lasts over
//! `hold_at_most` (20 ms, `--hold-at-most-ms`), the tasks held behind it are given back
//! (`lua/release.lua`: QUEUED again at the queue's end, the attempt uncounted), their
//! requests first taken back out of the child's pipe, as they are when the slot stops
//! (shutdown). A request the child has already read cannot be taken back: that task runs
//! next, whatever happens. A cancel of a held task marks it, takes its request back, and it
//! never runs; in the moment between the child reading the request and its run starting, the
//! cancel comes too late, like one for a task just started, and the task runs, its outcome
//! dropped (the task is FAILED `Cancelled` already). A dispatcher that dies with tasks held
//! leaves them pending like running ones: reclaimed, with the attempt counted. A held task's
//! record's `started_at` is when it was held, so its run time in the function statistics
//! includes that wait (under `hold_below` per task ahead of it on a steady slot), and its
//! timeout counts from when its slot turns to it.
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

use std::collections::{HashMap, HashSet, VecDeque};
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
use crate::executor::{FunctionDef, Job, Outcome, TakeBack};
use crate::store::{entry_order, Finish, QueueReader, Started, Store, StoreError, Taken};

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
    /// Takes back the request of held task `task` if a slot wrote it ahead into its worker and
    /// the worker has not read it (local children only). Never waits.
    fn take_back(&self, _task: TaskId) -> TakeBack {
        TakeBack::Absent
    }
}

/// The right to run one job now.
pub trait ExecSlot: Send + Sized + 'static {
    /// The name recorded as the task's worker.
    fn worker(&self) -> String;
    /// Runs `job` as attempt `lease` of its task; gives the slot back when it can run another
    /// job at once (a local pool's slot can; a remote worker's credit or poll is spent, and the
    /// next comes from the executor). A remote worker echoes the lease with its result.
    /// `ahead`: the jobs the slot holds to run next, in order; a local slot writes them into
    /// its child's pipe behind this one (executor/child.rs, "Writing ahead").
    fn run(
        self,
        job: Job,
        lease: u32,
        ahead: Vec<Arc<Job>>,
    ) -> impl Future<Output = (RunResult, Option<Self>)> + Send;
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
    /// How many tasks a slot of short runs holds ahead, at most.
    pub hold_ahead: usize,
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
            hold_ahead: 8,
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
/// spends one Redis round trip per task at most. Ends when the queue is empty, the slot is
/// spent and none is free, or on shutdown; the loop in [`run`] then waits for work again. A
/// slot of short tasks also holds the next ones ahead (see "Holding the next tasks" in the
/// module docs).
async fn run_slot<E: Executor>(
    shared: Arc<Shared>,
    executor: Arc<E>,
    taken: Taken,
    slot: E::Slot,
    shutdown: CancellationToken,
) {
    let mut ahead = Ahead::default();
    let mut next = Some((taken, None, slot));
    while let Some((taken, job, slot)) = next.take() {
        next = run_entry(&shared, &*executor, taken, job, slot, &shutdown, &mut ahead).await;
    }
    // The chain ended (shutdown) with outcomes still to record or tasks held that no slot will
    // run: neither is left behind.
    ahead.settle(&shared).await;
    let unrecorded = std::mem::take(&mut ahead.unrecorded);
    record_all(&shared, &unrecorded, None).await;
    // The slot is gone: its child's pipe was emptied of their requests as it went.
    for held in std::mem::take(&mut ahead.held) {
        release(&shared, held.taken, &held.worker, false).await;
    }
}

/// A slot's work beside the task it runs (see "Holding the next tasks" in the module docs).
#[derive(Default)]
struct Ahead {
    /// Taken and started for this slot (on the worker named) while it ran the tasks before:
    /// they run next, in order.
    held: VecDeque<Held>,
    /// The outcomes of tasks run since the recording in flight was sent: the next one takes
    /// them all.
    unrecorded: Vec<Unrecorded>,
    /// The recording in flight, if any (one at a time per slot), and the worker it takes
    /// tasks for: it returns the entries taken to hold.
    recording: Option<(tokio::task::JoinHandle<Vec<Taken>>, String)>,
}

/// A task held to run next.
struct Held {
    taken: Taken,
    /// The worker it was started on.
    worker: String,
    /// Its job, built once when it was held, if that needed no Redis read (its function's
    /// definition was cached) and it is to run: what a local slot writes ahead, and runs.
    job: Option<Arc<Job>>,
}

impl Ahead {
    /// Holds `held`, started on `worker`, to run after those held already: in flight
    /// (touched, re-queued by shutdown's grace) and cancellable before it runs.
    fn hold(&mut self, shared: &Shared, held: Taken, worker: String) {
        let mut job = None;
        // An entry that needs no run (its task cancelled while queued, or gone) is dropped at
        // its turn, and is neither in flight nor cancellable meanwhile.
        let runnable = held.started.previous == Some(TaskStatus::Queued);
        if let (Some(task), true) = (held.entry.task_id, runnable) {
            shared
                .inflight
                .lock()
                .expect("lock")
                .insert(held.entry.entry_id.clone(), task);
            shared.held.lock().expect("lock").insert(task, false);
            let function = held
                .started
                .function_id
                .and_then(|f| shared.functions.lock().expect("lock").get(&f).cloned());
            if let Some(function) = function {
                job = Some(Arc::new(job_of(shared, task, &held.started, function)));
            }
        }
        self.held.push_back(Held {
            taken: held,
            worker,
            job,
        });
    }

    /// Sends the outcomes run since the last recording, unless one is in flight: recorded
    /// while the slot goes on, topping up the tasks held ahead for `worker` when the last run
    /// was short.
    fn record(&mut self, shared: &Arc<Shared>, worker: &str) {
        if self.recording.is_some() || self.unrecorded.is_empty() {
            return;
        }
        let outcomes = std::mem::take(&mut self.unrecorded);
        let want = match outcomes.last().is_some_and(|u| u.hold) {
            true => shared.cfg.hold_ahead.saturating_sub(self.held.len()) as u32,
            false => 0,
        };
        let (sh, on) = (shared.clone(), worker.to_owned());
        let recording = tokio::spawn(async move {
            record_all(&sh, &outcomes, (want > 0).then_some((on.as_str(), want))).await
        });
        self.recording = Some((recording, worker.to_owned()));
    }

    /// The recording in flight came back with `taken`: those are held.
    fn recorded(&mut self, shared: &Shared, taken: Vec<Taken>) {
        let Some((_, worker)) = self.recording.take() else {
            return;
        };
        for held in taken {
            self.hold(shared, held, worker.clone());
        }
    }

    /// Waits for the recording in flight, if any (sending no other).
    async fn settle(&mut self, shared: &Shared) {
        if let Some((recording, _)) = &mut self.recording {
            let taken = recording.await.unwrap_or_default();
            self.recorded(shared, taken);
        }
    }

    /// The next held task, to run on `slot` (after a task that needed no run).
    fn next<S>(&mut self, slot: S) -> Option<Next<S>> {
        self.held
            .pop_front()
            .map(|held| (held.taken, held.job, slot))
    }

    /// The held tasks' jobs, in order, up to the first without one or cancelled: what a
    /// local slot writes ahead into its child's pipe.
    fn jobs(&self, shared: &Shared) -> Vec<Arc<Job>> {
        let cancelled = shared.held.lock().expect("lock");
        self.held
            .iter()
            .map_while(|held| {
                let job = held.job.as_ref()?;
                (cancelled.get(&job.task_id) == Some(&false)).then(|| job.clone())
            })
            .collect()
    }
}

/// The job of a started task.
fn job_of(shared: &Shared, task_id: TaskId, started: &Started, function: Arc<FunctionDef>) -> Job {
    let args = match function.format {
        FunctionFormat::Dill => serde_json::Value::String(started.args.clone()),
        FunctionFormat::Source => serde_json::from_str(&started.args).unwrap_or_default(),
    };
    Job {
        task_id,
        function,
        args,
        timeout: started
            .timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(shared.cfg.default_timeout),
    }
}

/// An outcome to record; `hold`: the run was short, so the slot tops up what it holds ahead.
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
    /// Records it; with `next`, taking entries for that worker as [`record`] does.
    async fn record(&self, shared: &Shared, next: Option<(&str, u32)>) -> Vec<Taken> {
        record(
            shared,
            self.task_id,
            self.format,
            &self.outcome,
            &self.worker,
            &self.entry,
            next,
            self.lease,
        )
        .await
    }
}

/// Records `outcomes` in one round trip (their scripts pipelined on the shared connection);
/// with `next` = (worker, how many), the last one also takes that many entries for the worker.
async fn record_all(
    shared: &Shared,
    outcomes: &[Unrecorded],
    next: Option<(&str, u32)>,
) -> Vec<Taken> {
    let Some((last, rest)) = outcomes.split_last() else {
        return Vec::new();
    };
    let (_, taken) = futures::join!(
        futures::future::join_all(rest.iter().map(|u| u.record(shared, None))),
        last.record(shared, next),
    );
    taken
}

/// An entry to run on a slot, with its job when it was built as the entry was held.
type Next<S> = (Taken, Option<Arc<Job>>, S);

/// Runs one started queue entry (its job `built` already, if it was held) to its recorded
/// outcome; returns the next entry, taken for the same or another free slot, if there is one.
async fn run_entry<E: Executor>(
    shared: &Arc<Shared>,
    executor: &E,
    taken: Taken,
    built: Option<Arc<Job>>,
    slot: E::Slot,
    shutdown: &CancellationToken,
    ahead: &mut Ahead,
) -> Option<Next<E::Slot>> {
    let store = &shared.store;
    let Taken { entry, started } = taken;
    let Some(task_id) = entry.task_id else {
        warn!(event = "entry_without_task", entry = %entry.entry_id, "queue entry without a task id; dropping it");
        let _ = store.drop_entry(&entry.entry_id).await;
        return ahead.next(slot);
    };
    let worker = slot.worker();
    if started.previous != Some(TaskStatus::Queued) {
        debug!(%task_id, previous = ?started.previous, "entry needs no run; dropping it");
        let _ = store.drop_entry(&entry.entry_id).await;
        return ahead.next(slot);
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
        return ahead.next(slot);
    }
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
                started.attempts,
            )
            .await;
            return ahead.next(slot);
        }
    };
    let job = match built {
        Some(job) => Arc::unwrap_or_clone(job),
        None => job_of(shared, task_id, &started, function.clone()),
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
    let run = slot
        .run(job, lease, ahead.jobs(shared))
        .instrument(span.clone());
    let ((result, kept), ran) = run_beside(shared, executor, run, ahead, &worker).await;
    // Gone from the map: shutdown's grace ran out and the task was re-queued already.
    shared
        .inflight
        .lock()
        .expect("lock")
        .remove(&entry.entry_id)?;
    match result {
        RunResult::Done(outcome) => {
            crate::metrics::task_finished(outcome.status, began.elapsed());
            // Only a slot that comes back from its run holds tasks ahead (a local pool's;
            // a remote worker's credit is spent with its task), and only after a short run.
            let short = kept.is_some() && ran < shared.cfg.hold_below;
            let slot = match shutdown.is_cancelled() {
                true => None,
                false => kept.or_else(|| executor.try_acquire()),
            };
            let unrecorded = Unrecorded {
                task_id,
                format: function.format,
                outcome,
                worker,
                entry: entry.entry_id,
                lease,
                hold: short,
            };
            if let Some(slot) = slot {
                ahead.unrecorded.push(unrecorded);
                if ahead.held.is_empty() {
                    // A recording in flight may bring tasks to hold.
                    ahead.settle(shared).await;
                }
                if let Some(held) = ahead.held.pop_front() {
                    // The held task runs at once; this outcome is recorded while it runs.
                    ahead.record(shared, &slot.worker());
                    return Some((held.taken, held.job, slot));
                }
                let unrecorded = std::mem::take(&mut ahead.unrecorded);
                // Nothing held: record now, taking the next task (and, after a short run,
                // tasks to hold ahead) in the same round trip.
                let on = slot.worker();
                let take = 1 + if short {
                    shared.cfg.hold_ahead as u32
                } else {
                    0
                };
                let mut taken = record_all(shared, &unrecorded, Some((&on, take)))
                    .instrument(span)
                    .await
                    .into_iter();
                let Some(next) = taken.next() else {
                    // Asked for work and found none: the dispatch loop's next take need not
                    // ask again before it blocks.
                    shared.queue_seen_empty.store(true, Ordering::Relaxed);
                    return None;
                };
                for held in taken {
                    ahead.hold(shared, held, on.clone());
                }
                return Some((next, None, slot));
            }
            // No slot to run more on (shutdown, or a remote worker's spent credit).
            ahead.unrecorded.push(unrecorded);
            ahead.settle(shared).await;
            let unrecorded = std::mem::take(&mut ahead.unrecorded);
            record_all(shared, &unrecorded, None).instrument(span).await;
            None
        }
        RunResult::Lost(reason) => {
            crate::metrics::task_requeued("worker_lost");
            match store
                .requeue(
                    task_id,
                    &reason,
                    Some(&entry.entry_id),
                    shared.cfg.retention,
                )
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

/// Awaits `run` while doing the slot's work beside it: recording the outcomes of the tasks
/// before (topping up the tasks held ahead, if the last says so; a recording still in flight
/// when the run ends goes on beside the next run), and giving the held tasks back if the run
/// lasts longer than `hold_at_most`, so that they wait for no long run. Returns the run's
/// output and how long it took.
async fn run_beside<E: Executor, R>(
    shared: &Arc<Shared>,
    executor: &E,
    run: impl Future<Output = R>,
    ahead: &mut Ahead,
    worker: &str,
) -> (R, Duration) {
    let began = std::time::Instant::now();
    ahead.record(shared, worker);
    let mut run = std::pin::pin!(run);
    let give_back = tokio::time::sleep(shared.cfg.hold_at_most);
    let mut give_back = std::pin::pin!(give_back);
    // Held tasks at the front whose requests the worker had read when asked for them back:
    // they run next whatever happens.
    let mut read = 0;
    loop {
        let recording = async {
            match &mut ahead.recording {
                Some((recording, _)) => recording.await.unwrap_or_default(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            out = &mut run => return (out, began.elapsed()),
            taken = recording => {
                ahead.recorded(shared, taken);
                ahead.record(shared, worker);
            }
            _ = &mut give_back, if ahead.held.len() > read => {
                for held in ahead.held.split_off(read) {
                    let back = held.taken.entry.task_id.map(|t| executor.take_back(t));
                    if back == Some(TakeBack::Read) {
                        ahead.held.push_back(held);
                        read += 1;
                    } else {
                        let taken_back = back == Some(TakeBack::Taken);
                        release(shared, held.taken, &held.worker, taken_back).await;
                    }
                }
            }
        }
    }
}

/// Gives a task held on `worker` back to the queue (`lua/release.lua`): it did not run, so
/// its attempt is not counted (`taken_back`: its request was taken back out of the child's
/// pipe). If Redis cannot be reached, its entry is left to the reclaim of entries nobody
/// touches (`upkeep`), which re-queues it.
async fn release(shared: &Shared, held: Taken, worker: &str, taken_back: bool) {
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
            info!(event = "held_task_given_back", %task_id, %status, taken_back, "gave a held task back to the queue")
        }
        Err(e) => {
            warn!(event = "requeue_failed", %task_id, error = %e, "cannot give a held task back; it will be reclaimed")
        }
    }
}

/// Records an outcome, retrying while Redis is away: a result, once computed, is not dropped
/// lightly. If Redis stays away, the entry stays pending and the task runs again elsewhere.
/// With `next` = (worker, how many), the same call takes and starts that many entries for
/// that worker.
#[allow(clippy::too_many_arguments)]
async fn record(
    shared: &Shared,
    task_id: TaskId,
    format: FunctionFormat,
    outcome: &Outcome,
    worker: &str,
    entry: &str,
    next: Option<(&str, u32)>,
    lease: u32,
) -> Vec<Taken> {
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
    let take = next.map_or(1, |(_, n)| n);
    let next = next.map(|(w, _)| (w, shared.cfg.name.as_str()));
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
                take,
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
