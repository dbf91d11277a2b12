//! The pool: a fixed number of slots (tasks at once), spare children ready to be bound to a
//! function, and warm children per function, evicted least-recently-used past a count cap or
//! an idle-memory budget.
//!
//! A running job can be cancelled by its task id ([`Pool::cancel`]): its child is killed with
//! its whole process group (the same kill as a timeout's), the job's outcome is `Cancelled`,
//! and the slot takes a spare for its next job, as after any child it had to discard.
//!
//! A slot given the jobs it runs next ([`Slot::run`]'s `ahead`) writes their requests into its
//! child's pipe and keeps that child, counted busy, from one job to the next while requests
//! are in its pipe (child.rs, "Writing ahead"); [`Pool::take_back`] takes one out before the
//! child reads it. A slot let go with requests still in its child's pipe takes back those not
//! read, and kills the child if it has read one.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faas_protocol::{FunctionId, TaskId};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::child::{AheadIndex, ChildFailure, Meter, PyChild, TakeBack};
use super::sandbox::{Launcher, SandboxConfig};
use super::{ExecutorError, Job, Outcome};

#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// The interpreter (`--python` / `FAAS_PYTHON`).
    pub python: PathBuf,
    /// How many tasks run at once, one child each.
    pub size: usize,
    /// Between SIGTERM and SIGKILL when an unsandboxed child is killed.
    pub kill_grace: Duration,
    pub sandbox: SandboxConfig,
    /// Children alive at most (`--max-children`): running, warm and spare together. Raised to
    /// twice `size` if lower, so every slot can have a spare beside a running child.
    pub max_children: usize,
    /// Bytes the idle children (warm and spare) may hold together, their /tmp included
    /// (`--max-idle-memory`); past it the least recently used warm ones are stopped.
    pub max_idle_memory: u64,
}

/// How often the idle children are looked at: frozen once idle for [`FREEZE_AFTER`], and
/// their memory measured against `max_idle_memory`.
const MEMORY_SWEEP: Duration = Duration::from_secs(1);
/// How long a warm child waits for its function's next task before it is frozen.
const FREEZE_AFTER: Duration = Duration::from_secs(1);

/// Default `--max-children`.
pub const DEFAULT_MAX_CHILDREN: usize = 128;

/// A cloneable handle to the pool.
#[derive(Clone, Debug)]
pub struct Pool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cfg: PoolConfig,
    launcher: Launcher,
    state: Mutex<State>,
    slots: Arc<Semaphore>,
    /// Jobs running now, by task id, with what cancels each.
    running: Mutex<HashMap<TaskId, CancellationToken>>,
    /// Requests written ahead into children's pipes, by task (child.rs, "Writing ahead").
    ahead: AheadIndex,
}

/// A job's entry in [`Inner::running`], removed when the job ends however it ends.
struct Running<'a> {
    pool: &'a Pool,
    task: TaskId,
    cancelled: CancellationToken,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.pool.running().remove(&self.task);
    }
}

#[derive(Debug, Default)]
struct State {
    /// Started, not bound to any function yet: a new function's first call takes one.
    spares: Vec<PyChild>,
    /// Spares being started.
    starting: usize,
    /// Idle children bound to a function, most recently used last.
    warm: HashMap<FunctionId, Vec<PyChild>>,
    warm_count: usize,
    /// Children running a task.
    busy: usize,
    /// Ticks once per finished task: the age used for eviction.
    clock: u64,
}

impl State {
    fn total(&self) -> usize {
        self.spares.len() + self.starting + self.warm_count + self.busy
    }

    /// The least recently used idle warm child, taken out of the pool.
    fn evict_one(&mut self) -> Option<PyChild> {
        let (&fid, _) = self
            .warm
            .iter()
            .filter_map(|(fid, kids)| kids.first().map(|k| (fid, k.last_used)))
            .min_by_key(|(_, used)| *used)?;
        let kids = self.warm.get_mut(&fid)?;
        let child = kids.remove(0);
        if kids.is_empty() {
            self.warm.remove(&fid);
        }
        self.warm_count -= 1;
        Some(child)
    }
}

/// The right to run one task now. Taken before a task is read from the queue, so a dispatcher
/// never holds work it has no child for.
#[derive(Debug)]
pub struct Slot {
    pool: Pool,
    _permit: OwnedSemaphorePermit,
    /// The child of the last run, kept because requests are still in its pipe (written ahead
    /// for the slot's next runs): the next run goes on with it.
    kept: Option<PyChild>,
}

impl Drop for Slot {
    /// A slot let go with a child still holding requests: those not read yet are taken back
    /// (they never run), and the child, which may be running one it read, is killed.
    fn drop(&mut self) {
        if let Some(mut child) = self.kept.take() {
            child.take_back_all();
            if child.has_requests() {
                self.pool.discard(child);
            } else {
                self.pool.give_back(child);
            }
        }
    }
}

impl Pool {
    /// Starts a spare per slot up front, so the first tasks do not pay for interpreter
    /// start-up, and a wrong `--python` or a missing `bwrap` fails here, clearly, rather than
    /// on the first task.
    pub async fn start(cfg: PoolConfig) -> Result<Self, ExecutorError> {
        let size = cfg.size.max(1);
        let max_children = cfg.max_children.max(2 * size);
        let launcher = Launcher::new(&cfg.python, cfg.sandbox.clone()).await?;
        let ahead = AheadIndex::default();
        let spawns = (0..size).map(|_| PyChild::spawn(&launcher, &ahead));
        let spares = futures::future::try_join_all(spawns).await?;
        info!(
            event = "pool_started",
            python = %launcher.describe(),
            sandbox = ?cfg.sandbox.kind,
            net = ?cfg.sandbox.net,
            size,
            max_children,
            "python pool started"
        );
        let pool = Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    spares,
                    ..State::default()
                }),
                slots: Arc::new(Semaphore::new(size)),
                running: Mutex::default(),
                ahead,
                launcher,
                cfg: PoolConfig {
                    size,
                    max_children,
                    ..cfg
                },
            }),
        };
        let weak = Arc::downgrade(&pool.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(MEMORY_SWEEP);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(inner) if !inner.slots.is_closed() => {
                        let pool = Pool { inner };
                        pool.freeze_idle();
                        pool.sweep_memory();
                    }
                    _ => return,
                }
            }
        });
        Ok(pool)
    }

    pub fn size(&self) -> usize {
        self.inner.cfg.size
    }

    /// Slots free right now.
    pub fn free(&self) -> usize {
        self.inner.slots.available_permits()
    }

    /// Children alive now (spare, warm, starting and running), for tests and metrics.
    pub fn children(&self) -> usize {
        self.state().total()
    }

    /// Waits for a free slot. `None` once the pool is shut down.
    pub async fn acquire(&self) -> Option<Slot> {
        let permit = self.inner.slots.clone().acquire_owned().await.ok()?;
        Some(Slot {
            pool: self.clone(),
            _permit: permit,
            kept: None,
        })
    }

    /// A free slot if there is one.
    pub fn try_acquire(&self) -> Option<Slot> {
        let permit = self.inner.slots.clone().try_acquire_owned().ok()?;
        Some(Slot {
            pool: self.clone(),
            _permit: permit,
            kept: None,
        })
    }

    /// Runs a job when a slot is free.
    pub async fn run(&self, job: Job) -> Outcome {
        match self.acquire().await {
            Some(slot) => slot.run(job, &[]).await.0,
            None => Outcome::platform_failure("ShuttingDown", "the executor pool is shut down"),
        }
    }

    /// Stops handing out slots and kills the idle children. Running tasks keep their child
    /// until they finish; it is killed when it comes back.
    pub async fn shutdown(&self) {
        self.inner.slots.close();
        let idle: Vec<PyChild> = {
            let mut st = self.state();
            let mut idle = std::mem::take(&mut st.spares);
            idle.extend(st.warm.drain().flat_map(|(_, kids)| kids));
            st.warm_count = 0;
            idle
        };
        let grace = self.inner.cfg.kill_grace;
        futures::future::join_all(idle.into_iter().map(|c| c.kill(grace))).await;
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().expect("pool lock")
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<TaskId, CancellationToken>> {
        self.inner.running.lock().expect("running lock")
    }

    /// Cancels the job of task `task` if it runs here: its child is killed with everything it
    /// started, and the job ends `Cancelled`. Returns whether such a job was running. Never
    /// waits: the kill happens on the job's own task.
    pub fn cancel(&self, task: TaskId) -> bool {
        match self.running().get(&task) {
            Some(cancelled) => {
                cancelled.cancel();
                true
            }
            None => false,
        }
    }

    /// Takes the request of `task` back out of the child's pipe it was written ahead into,
    /// if the child has not read it (child.rs, "Writing ahead"). Never waits.
    pub fn take_back(&self, task: TaskId) -> TakeBack {
        let requests = self
            .inner
            .ahead
            .lock()
            .expect("ahead index lock")
            .get(&task)
            .cloned();
        let Some(requests) = requests.and_then(|r| r.upgrade()) else {
            return TakeBack::Absent;
        };
        let found = requests.lock().expect("requests lock").take_back_one(task);
        if found == TakeBack::Taken {
            self.inner
                .ahead
                .lock()
                .expect("ahead index lock")
                .remove(&task);
        }
        found
    }

    fn register(&self, task: TaskId) -> Running<'_> {
        let cancelled = CancellationToken::new();
        self.running().insert(task, cancelled.clone());
        Running {
            pool: self,
            task,
            cancelled,
        }
    }

    /// A warm child of `fid`, else a spare (and a replacement spare is started). Counted busy.
    fn take(&self, fid: FunctionId) -> Option<PyChild> {
        let mut st = self.state();
        let warm = st.warm.get_mut(&fid).and_then(Vec::pop);
        let child = match warm {
            Some(child) => {
                if st.warm.get(&fid).is_some_and(Vec::is_empty) {
                    st.warm.remove(&fid);
                }
                st.warm_count -= 1;
                Some(child)
            }
            None => {
                let spare = st.spares.pop();
                drop(st);
                self.refill();
                st = self.state();
                spare
            }
        };
        st.busy += 1;
        drop(st);
        child.map(|mut c| {
            c.thaw();
            c
        })
    }

    /// Gives a child back after a task: warm for its function, the least recently used ones
    /// evicted past the cap.
    fn give_back(&self, mut child: PyChild) {
        child.forget_early();
        let mut evicted = Vec::new();
        {
            let mut st = self.state();
            st.busy -= 1;
            match child.bound() {
                Some(fid) if !self.inner.slots.is_closed() => {
                    st.clock += 1;
                    child.last_used = st.clock;
                    child.idle_since = std::time::Instant::now();
                    st.warm.entry(fid).or_default().push(child);
                    st.warm_count += 1;
                    while st.total() > self.inner.cfg.max_children {
                        match st.evict_one() {
                            Some(old) => evicted.push(old),
                            None => break,
                        }
                    }
                }
                _ => evicted.push(child),
            }
        }
        self.kill_later(evicted);
    }

    /// Freezes the warm children idle for over [`FREEZE_AFTER`] ([`PyChild::freeze`]); a child
    /// is thawed when it is taken for a task or killed. Not at once: stopping a process wakes
    /// it, a cost a busy function would pay on every task.
    fn freeze_idle(&self) {
        let mut st = self.state();
        for child in st.warm.values_mut().flatten() {
            // freeze() stops a child once; later sweeps find it frozen and do nothing.
            if child.idle_since.elapsed() >= FREEZE_AFTER {
                child.freeze();
            }
        }
    }

    /// Stops the least recently used warm children while the idle ones (warm and spare) hold
    /// more than `max_idle_memory`. The count cap alone (`--max-children`) let idle children
    /// hold up to 128 times a task's memory limit: a function that keeps memory (a module
    /// global, a file in its /tmp) stays at that size while warm. Measured away from the lock
    /// (a few `/proc` reads per child), then each is stopped only if it is still idle.
    fn sweep_memory(&self) {
        let budget = self.inner.cfg.max_idle_memory;
        let (warm, spares) = {
            let st = self.state();
            let warm: Vec<(u64, Meter)> = st
                .warm
                .values()
                .flatten()
                .map(|k| (k.last_used, k.meter()))
                .collect();
            let spares: Vec<Meter> = st.spares.iter().map(PyChild::meter).collect();
            (warm, spares)
        };
        let mut warm: Vec<(u64, i32, u64)> = warm
            .into_iter()
            .map(|(used, m)| (used, m.pid, m.bytes().unwrap_or(0)))
            .collect();
        let mut held: u64 = warm.iter().map(|w| w.2).sum::<u64>()
            + spares.iter().filter_map(Meter::bytes).sum::<u64>();
        if held <= budget {
            return;
        }
        let before = held;
        warm.sort_by_key(|w| w.0);
        let mut victims = Vec::new();
        {
            let mut st = self.state();
            for (_, pid, bytes) in warm {
                if held <= budget {
                    break;
                }
                let found = st.warm.iter().find_map(|(fid, kids)| {
                    kids.iter().position(|k| k.pid() == pid).map(|i| (*fid, i))
                });
                let Some((fid, i)) = found else {
                    continue; // taken for a task meanwhile
                };
                let kids = st.warm.get_mut(&fid).expect("found above");
                victims.push(kids.remove(i));
                if kids.is_empty() {
                    st.warm.remove(&fid);
                }
                st.warm_count -= 1;
                held -= bytes;
            }
        }
        if !victims.is_empty() {
            info!(
                event = "idle_children_stopped",
                stopped = victims.len(),
                idle_bytes = before,
                max_idle_memory = budget,
                "idle python children held more memory than --max-idle-memory; stopped the least recently used"
            );
            self.kill_later(victims);
        }
    }

    /// A child that must not be used again (broken, or over its memory limit).
    fn discard(&self, child: PyChild) {
        self.state().busy -= 1;
        self.kill_later(vec![child]);
    }

    fn kill_later(&self, children: Vec<PyChild>) {
        if children.is_empty() {
            return;
        }
        debug!(count = children.len(), "killing python children");
        let grace = self.inner.cfg.kill_grace;
        tokio::spawn(futures::future::join_all(
            children.into_iter().map(move |c| c.kill(grace)),
        ));
    }

    /// Starts spares in the background until there is one per slot.
    fn refill(&self) {
        let pool = self.clone();
        let wanted = {
            let mut st = self.state();
            let missing = self.size().saturating_sub(st.spares.len() + st.starting);
            st.starting += missing;
            missing
        };
        for _ in 0..wanted {
            let pool = pool.clone();
            tokio::spawn(async move {
                let spare = PyChild::spawn(&pool.inner.launcher, &pool.inner.ahead).await;
                let mut extra = Vec::new();
                {
                    let mut st = pool.state();
                    st.starting -= 1;
                    match spare {
                        Ok(child) if pool.inner.slots.is_closed() => extra.push(child),
                        Ok(child) => {
                            st.spares.push(child);
                            while st.total() > pool.inner.cfg.max_children {
                                match st.evict_one() {
                                    Some(old) => extra.push(old),
                                    None => break,
                                }
                            }
                        }
                        // The next cold start spawns its own child and reports the error.
                        Err(e) => {
                            warn!(event = "child_start_failed", error = %e, "cannot start a spare python child")
                        }
                    }
                }
                pool.kill_later(extra);
            });
        }
    }
}

impl Slot {
    /// Runs the job on a child of its function (a warm one, else a spare bound to it now) and
    /// gives the slot back for another job. A child that times out, dies or runs out of memory
    /// is killed in the background; the outcome is reported at once. A cancelled job's child
    /// is killed before its outcome (`Cancelled`) is reported.
    ///
    /// `ahead`: the jobs this slot runs next, in order; those of the same function have their
    /// requests written into the child's pipe behind this one's (child.rs, "Writing ahead"),
    /// and the slot keeps that child for its next run.
    pub async fn run(mut self, job: Job, ahead: &[Arc<Job>]) -> (Outcome, Option<Slot>) {
        let pool = self.pool.clone();
        let running = pool.register(job.task_id);
        let fid = job.function.id;
        let kept = match self.kept.take() {
            Some(c) if c.bound() == Some(fid) => Some(c),
            Some(mut other) => {
                // Its requests are of tasks that will not run on it after all.
                other.take_back_all();
                match other.has_requests() {
                    true => pool.discard(other),
                    false => pool.give_back(other),
                }
                None
            }
            None => None,
        };
        let child = match kept.or_else(|| pool.take(fid)) {
            Some(c) => Ok(c),
            None => PyChild::spawn(&pool.inner.launcher, &pool.inner.ahead).await,
        };
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                pool.state().busy -= 1;
                warn!(event = "child_start_failed", error = %e, "cannot start a python child");
                let outcome = Outcome::platform_failure("ExecutorUnavailable", e.to_string());
                return (outcome, Some(self));
            }
        };
        // A job cancelled while its child started is killed as soon as it runs.
        let ran = tokio::select! {
            biased;
            ran = child.run(&job, ahead) => Some(ran),
            _ = running.cancelled.cancelled() => None,
        };
        let Some(ran) = ran else {
            info!(event = "task_cancelled", task_id = %job.task_id, pid = child.pid(), "task cancelled; killing its process group");
            pool.state().busy -= 1;
            child.kill(pool.inner.cfg.kill_grace).await;
            let outcome = Outcome::platform_failure("Cancelled", "cancelled by request");
            return (outcome, Some(self));
        };
        match ran {
            Ok(outcome) => {
                let out_of_memory = outcome
                    .error
                    .as_ref()
                    .is_some_and(|e| e.kind == "MemoryError");
                if out_of_memory {
                    // Its heap may be in any state after a failed allocation: start afresh.
                    pool.discard(child);
                } else if child.has_requests() {
                    self.kept = Some(child);
                } else {
                    pool.give_back(child);
                }
                (outcome, Some(self))
            }
            Err(failure) => {
                let pid = child.pid();
                let outcome = match failure {
                    ChildFailure::Timeout => {
                        warn!(event = "task_timed_out", task_id = %job.task_id, pid, "task timed out; killing its child");
                        Outcome::platform_failure(
                            "Timeout",
                            format!(
                                "task exceeded its timeout of {} ms; its process was killed",
                                job.timeout.as_millis()
                            ),
                        )
                    }
                    ChildFailure::Died(how) => {
                        warn!(event = "child_died", task_id = %job.task_id, pid, how, "python child died running a task");
                        Outcome::platform_failure(
                            "WorkerCrashed",
                            format!("the Python process running the task died ({how})"),
                        )
                    }
                };
                pool.discard(child);
                (outcome, Some(self))
            }
        }
    }
}
