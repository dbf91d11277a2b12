//! Local mode: the dispatcher's own pool of Python children is the executor.

use crate::executor::{Job, Pool, Slot};

use super::{ExecSlot, Executor, RunResult};

/// The local pool, named as the worker in task records.
#[derive(Debug)]
pub struct LocalExecutor {
    pub pool: Pool,
    pub name: String,
}

#[derive(Debug)]
pub struct LocalSlot {
    slot: Slot,
    name: String,
}

impl Executor for LocalExecutor {
    type Slot = LocalSlot;

    async fn acquire(&self) -> Option<LocalSlot> {
        let slot = self.pool.acquire().await?;
        Some(LocalSlot {
            slot,
            name: self.name.clone(),
        })
    }

    fn try_acquire(&self) -> Option<LocalSlot> {
        let slot = self.pool.try_acquire()?;
        Some(LocalSlot {
            slot,
            name: self.name.clone(),
        })
    }
}

impl ExecSlot for LocalSlot {
    fn worker(&self) -> String {
        self.name.clone()
    }

    async fn run(self, job: Job) -> RunResult {
        // A local child that dies fails its task (WorkerCrashed): the task itself killed it,
        // and running it again would likely kill the next child too.
        RunResult::Done(self.slot.run(job).await)
    }
}
