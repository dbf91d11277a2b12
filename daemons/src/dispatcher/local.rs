//! Local mode: the dispatcher's own pool of Python children is the executor.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use faas_protocol::model::{WorkerInfo, WorkerMode};
use faas_protocol::TaskId;

use crate::executor::{Job, Pool, Slot, TakeBack};
use crate::now_ms;

use super::{ExecSlot, Executor, RunResult};

/// The local pool, named as the worker in task records.
#[derive(Debug)]
pub struct LocalExecutor {
    pool: Pool,
    name: String,
    /// The registry entry's fixed part; `busy`, `tasks_done` and the heartbeat are filled in.
    info: WorkerInfo,
    done: Arc<AtomicU64>,
    /// Tasks running now. Not the pool's taken slots: the dispatch loop holds free slots while
    /// it waits for work, and an idle pool must not look busy.
    running: Arc<AtomicU32>,
}

impl LocalExecutor {
    pub fn new(pool: Pool, name: String, dispatcher: String) -> Self {
        let info = WorkerInfo {
            id: name.clone(),
            mode: WorkerMode::Local,
            host: nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_default(),
            pid: std::process::id(),
            dispatcher,
            slots: pool.size() as u32,
            busy: 0,
            tasks_done: 0,
            joined_at: now_ms(),
            last_heartbeat: 0,
            draining: false,
        };
        Self {
            pool,
            name,
            info,
            done: Arc::default(),
            running: Arc::default(),
        }
    }
}

#[derive(Debug)]
pub struct LocalSlot {
    slot: Slot,
    name: String,
    done: Arc<AtomicU64>,
    running: Arc<AtomicU32>,
}

impl Executor for LocalExecutor {
    type Slot = LocalSlot;

    async fn acquire(&self) -> Option<LocalSlot> {
        let slot = self.pool.acquire().await?;
        Some(LocalSlot {
            slot,
            name: self.name.clone(),
            done: self.done.clone(),
            running: self.running.clone(),
        })
    }

    fn try_acquire(&self) -> Option<LocalSlot> {
        let slot = self.pool.try_acquire()?;
        Some(LocalSlot {
            slot,
            name: self.name.clone(),
            done: self.done.clone(),
            running: self.running.clone(),
        })
    }

    fn local_worker(&self) -> Option<WorkerInfo> {
        Some(WorkerInfo {
            busy: self.running.load(Ordering::Relaxed),
            tasks_done: self.done.load(Ordering::Relaxed),
            last_heartbeat: now_ms(),
            ..self.info.clone()
        })
    }

    fn cancel(&self, task: TaskId) -> bool {
        self.pool.cancel(task)
    }

    fn take_back(&self, task: TaskId) -> TakeBack {
        self.pool.take_back(task)
    }
}

impl ExecSlot for LocalSlot {
    fn worker(&self) -> String {
        self.name.clone()
    }

    async fn run(self, job: Job, _lease: u32, ahead: Vec<Arc<Job>>) -> (RunResult, Option<Self>) {
        // A local child that dies fails its task (WorkerCrashed): the task itself killed it,
        // and running it again would likely kill the next child too.
        self.running.fetch_add(1, Ordering::Relaxed);
        let (outcome, slot) = self.slot.run(job, &ahead).await;
        self.running.fetch_sub(1, Ordering::Relaxed);
        self.done.fetch_add(1, Ordering::Relaxed);
        let kept = slot.map(|slot| Self {
            slot,
            name: self.name,
            done: self.done,
            running: self.running,
        });
        (RunResult::Done(outcome), kept)
    }
}
