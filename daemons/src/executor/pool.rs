//! The pool: a fixed number of slots, each backed by one long-lived Python child.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{info, warn};

use super::child::{ChildFailure, PyChild};
use super::{ExecutorError, Job, Outcome};

#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// The interpreter (`--python` / `FAAS_PYTHON`).
    pub python: PathBuf,
    /// How many tasks run at once, one child each.
    pub size: usize,
    /// Between SIGTERM and SIGKILL when a child's process group is killed.
    pub kill_grace: Duration,
}

/// A cloneable handle to the pool.
#[derive(Clone, Debug)]
pub struct Pool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cfg: PoolConfig,
    idle: Mutex<Vec<PyChild>>,
    slots: Arc<Semaphore>,
}

/// The right to run one task now. Taken before a task is read from the queue, so a dispatcher
/// never holds work it has no child for.
#[derive(Debug)]
pub struct Slot {
    pool: Pool,
    _permit: OwnedSemaphorePermit,
}

impl Pool {
    /// Starts every child up front, so the first tasks do not pay for interpreter start-up,
    /// and a wrong `--python` fails here, clearly, rather than on the first task.
    pub async fn start(cfg: PoolConfig) -> Result<Self, ExecutorError> {
        let size = cfg.size.max(1);
        let spawns = (0..size).map(|_| PyChild::spawn(&cfg.python));
        let children = futures::future::try_join_all(spawns).await?;
        info!(python = %cfg.python.display(), size, "python pool started");
        Ok(Self {
            inner: Arc::new(Inner {
                idle: Mutex::new(children),
                slots: Arc::new(Semaphore::new(size)),
                cfg: PoolConfig { size, ..cfg },
            }),
        })
    }

    pub fn size(&self) -> usize {
        self.inner.cfg.size
    }

    /// Slots free right now.
    pub fn free(&self) -> usize {
        self.inner.slots.available_permits()
    }

    /// Waits for a free slot. `None` once the pool is shut down.
    pub async fn acquire(&self) -> Option<Slot> {
        let permit = self.inner.slots.clone().acquire_owned().await.ok()?;
        Some(Slot {
            pool: self.clone(),
            _permit: permit,
        })
    }

    /// A free slot if there is one.
    pub fn try_acquire(&self) -> Option<Slot> {
        let permit = self.inner.slots.clone().try_acquire_owned().ok()?;
        Some(Slot {
            pool: self.clone(),
            _permit: permit,
        })
    }

    /// Runs a job when a slot is free.
    pub async fn run(&self, job: Job) -> Outcome {
        match self.acquire().await {
            Some(slot) => slot.run(job).await.0,
            None => Outcome::platform_failure("ShuttingDown", "the executor pool is shut down"),
        }
    }

    /// Stops handing out slots and kills the idle children. Running tasks keep their child
    /// until they finish; it is killed when its slot comes back.
    pub async fn shutdown(&self) {
        self.inner.slots.close();
        let idle = std::mem::take(&mut *self.inner.idle.lock().expect("pool lock"));
        let grace = self.inner.cfg.kill_grace;
        futures::future::join_all(idle.into_iter().map(|c| c.kill(grace))).await;
    }

    fn take_idle(&self) -> Option<PyChild> {
        self.inner.idle.lock().expect("pool lock").pop()
    }

    fn put_idle(&self, child: PyChild) -> Option<PyChild> {
        if self.inner.slots.is_closed() {
            return Some(child);
        }
        self.inner.idle.lock().expect("pool lock").push(child);
        None
    }
}

impl Slot {
    /// Runs the job on this slot's child and gives the slot back for another job. A child that
    /// times out or dies is killed and replaced in the background: the outcome is reported at
    /// once, and the slot (not given back) frees when the new child is up.
    pub async fn run(self, job: Job) -> (Outcome, Option<Slot>) {
        let pool = self.pool.clone();
        let child = match pool.take_idle() {
            Some(c) => Ok(c),
            None => PyChild::spawn(&pool.inner.cfg.python).await,
        };
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "cannot start a python child");
                let outcome = Outcome::platform_failure("ExecutorUnavailable", e.to_string());
                return (outcome, Some(self));
            }
        };
        match child.run(&job).await {
            Ok(outcome) => {
                if let Some(extra) = pool.put_idle(child) {
                    extra.kill(pool.inner.cfg.kill_grace).await;
                }
                (outcome, Some(self))
            }
            Err(failure) => {
                let pid = child.pid();
                let outcome = match failure {
                    ChildFailure::Timeout => {
                        warn!(task_id = %job.task_id, pid, "task timed out; killing its process group");
                        Outcome::platform_failure(
                            "Timeout",
                            format!(
                                "task exceeded its timeout of {} ms; its process was killed",
                                job.timeout.as_millis()
                            ),
                        )
                    }
                    ChildFailure::Died(how) => {
                        warn!(task_id = %job.task_id, pid, how, "python child died running a task");
                        Outcome::platform_failure(
                            "WorkerCrashed",
                            format!("the Python process running the task died ({how})"),
                        )
                    }
                };
                tokio::spawn(self.replace(child));
                (outcome, None)
            }
        }
    }

    async fn replace(self, broken: PyChild) {
        let pool = &self.pool;
        broken.kill(pool.inner.cfg.kill_grace).await;
        if pool.inner.slots.is_closed() {
            return;
        }
        match PyChild::spawn(&pool.inner.cfg.python).await {
            Ok(fresh) => {
                if let Some(extra) = pool.put_idle(fresh) {
                    extra.kill(pool.inner.cfg.kill_grace).await;
                }
            }
            // The next task on this slot tries again and reports the error if it persists.
            Err(e) => warn!(error = %e, "cannot replace a python child"),
        }
    }
}
