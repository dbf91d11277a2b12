//! The Redis key schema: every key the platform touches is built here, from one table.
//!
//! | key                  | type    | holds                                                  |
//! |----------------------|---------|--------------------------------------------------------|
//! | `{p}:fn:{id}`        | hash    | name, format, payload or source, entrypoint, created_at |
//! | `{p}:functions`      | zset    | function ids scored by creation time (for listing)     |
//! | `{p}:task:{id}`      | hash    | the task record (see `model::TaskRecord`)              |
//! | `{p}:queue`          | stream  | one entry (`task` = id) per dispatch; group `dispatchers` |
//! | `{p}:events`         | pub/sub | JSON `event::Event`s: every status change, workers      |
//! | `{p}:finished`       | pub/sub | the terminal task events only (what result waiters need) |
//! | `{p}:cancels`        | pub/sub | ids of cancelled tasks: the dispatcher running one kills it |
//! | `{p}:drains`         | pub/sub | ids of workers an operator drains: the dispatcher owning one stops feeding it and tells it to leave |
//! | `{p}:workers`        | hash    | worker id → JSON worker info                           |
//! | `{p}:stats`          | hash    | counters: submitted, completed, failed (cancelled included), cancelled, requeued |
//! | `{p}:tasks`          | zset    | every task id, scored by created_at (ms): `GET /tasks`  |
//! | `{p}:tasks:status:FAILED` | zset | failed task ids, same scores (the only status with an index: QUEUED and RUNNING tasks are the queue's entries and pending entries; COMPLETED ones are found on the other indexes) |
//! | `{p}:tasks:fn:{id}`  | zset    | task ids of one function, same scores                  |
//! | `{p}:tasks:worker:{w}` | zset  | task ids a worker started (kept when requeued elsewhere: listings check the hash) |
//! | `{p}:tasks:expiring` | list    | `deadline\|task\|function\|worker` of terminal tasks in the order they ended (deadline: when the hash expires, ms), so the indexes are trimmed with the result TTL |
//! | `{p}:fnstats:{id}`   | hash    | per function: invocations, completed, failed, cancelled, last_failure_at, last_failure_type |
//! | `{p}:fnsamples:{id}` | list    | `run_ms:wait_ms` (wait: created → started) of the function's last 1,000 or so finished runs, newest first |
//! | `{p}:functions:deleted` | string | counts function deletions: daemons empty their function caches when it moves |
//! | `{p}:epoch`          | string  | a random id written at first use: a new one means Redis lost its data |
//! | `{p}:healthz`        | string  | written by the gateway's `/healthz` to prove Redis takes writes |
//!
//! `{p}` is the namespace prefix, `faas` by default, so several platforms can share one Redis.

use crate::ids::{FunctionId, TaskId};
use crate::model::TaskStatus;

/// Field names of the hashes in the table above, written once here: the store writes them, the
/// Lua scripts' callers and the console read them. (The Lua scripts in `daemons/src/store/lua`
/// spell them too, since a script cannot import: rename one there as well.)
pub mod fields {
    /// `{p}:task:{id}`.
    pub mod task {
        pub const FUNCTION_ID: &str = "function_id";
        pub const FUNCTION_NAME: &str = "function_name";
        pub const FORMAT: &str = "format";
        pub const ARGS: &str = "args";
        pub const STATUS: &str = "status";
        pub const ATTEMPTS: &str = "attempts";
        pub const MAX_ATTEMPTS: &str = "max_attempts";
        pub const TIMEOUT_MS: &str = "timeout_ms";
        pub const CREATED_AT: &str = "created_at";
        pub const STARTED_AT: &str = "started_at";
        pub const FINISHED_AT: &str = "finished_at";
        pub const WORKER: &str = "worker";
        pub const RESULT: &str = "result";
        pub const ERROR: &str = "error";
        pub const LOG: &str = "log";
        /// The task this one retries (`POST /tasks/{id}/retry`), when it is a retry.
        pub const RETRY_OF: &str = "retry_of";
    }
    /// `{p}:fn:{id}`.
    pub mod function {
        pub const NAME: &str = "name";
        pub const FORMAT: &str = "format";
        pub const BODY: &str = "body";
        pub const ENTRYPOINT: &str = "entrypoint";
        pub const CREATED_AT: &str = "created_at";
    }
    /// `{p}:stats`: platform-wide counters.
    pub mod stats {
        pub const SUBMITTED: &str = "submitted";
        pub const COMPLETED: &str = "completed";
        pub const FAILED: &str = "failed";
        pub const REQUEUED: &str = "requeued";
        pub const CANCELLED: &str = "cancelled";
    }
    /// `{p}:fnstats:{id}`: one function's counters, kept by the Lua scripts as tasks end.
    pub mod function_stats {
        pub const INVOCATIONS: &str = "invocations";
        pub const COMPLETED: &str = "completed";
        pub const FAILED: &str = "failed";
        pub const CANCELLED: &str = "cancelled";
        pub const LAST_FAILURE_AT: &str = "last_failure_at";
        pub const LAST_FAILURE_TYPE: &str = "last_failure_type";
    }
}

/// The consumer group of the queue stream that all dispatchers join.
pub const DISPATCHER_GROUP: &str = "dispatchers";
/// The default namespace prefix.
pub const DEFAULT_PREFIX: &str = "faas";

/// Builds the platform's Redis keys under one prefix.
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Default for Keys {
    fn default() -> Self {
        Self::new(DEFAULT_PREFIX)
    }
}

impl Keys {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn function(&self, id: FunctionId) -> String {
        format!("{}:fn:{id}", self.prefix)
    }

    pub fn functions(&self) -> String {
        format!("{}:functions", self.prefix)
    }

    pub fn task(&self, id: TaskId) -> String {
        format!("{}{id}", self.task_prefix())
    }

    /// What every task key starts with (the dispatcher's Lua script builds task keys from ids).
    pub fn task_prefix(&self) -> String {
        format!("{}:task:", self.prefix)
    }

    pub fn queue(&self) -> String {
        format!("{}:queue", self.prefix)
    }

    pub fn events(&self) -> String {
        format!("{}:events", self.prefix)
    }

    /// Terminal task events, also published on [`Keys::events`]. Gateways subscribe here, so
    /// that they are not woken three times per task for the one event they act on.
    pub fn finished(&self) -> String {
        format!("{}:finished", self.prefix)
    }

    /// Ids (plain text) of tasks cancelled while they may be running. The cancel is already
    /// recorded in the task hash when this is published; a dispatcher that runs the task kills
    /// its process group so that it stops using the machine.
    pub fn cancels(&self) -> String {
        format!("{}:cancels", self.prefix)
    }

    /// Ids (plain text) of workers to drain (`POST /workers/{id}/drain`): the dispatcher that
    /// owns one gives it no new task and tells it to finish its running tasks and leave.
    pub fn drains(&self) -> String {
        format!("{}:drains", self.prefix)
    }

    pub fn workers(&self) -> String {
        format!("{}:workers", self.prefix)
    }

    pub fn stats(&self) -> String {
        format!("{}:stats", self.prefix)
    }

    /// What every key starts with, colon included (`faas:`): the Lua scripts that maintain the
    /// task indexes and statistics name their keys from it, by this table.
    pub fn root(&self) -> String {
        format!("{}:", self.prefix)
    }

    /// Every task, scored by created_at.
    pub fn tasks_index(&self) -> String {
        format!("{}:tasks", self.prefix)
    }

    /// The index of terminal tasks in the order their records expire (see the table).
    pub fn tasks_expiring(&self) -> String {
        format!("{}:tasks:expiring", self.prefix)
    }

    /// The index of one status; only those for which [`status_indexed`] holds exist.
    pub fn tasks_by_status(&self, status: TaskStatus) -> String {
        format!("{}:tasks:status:{status}", self.prefix)
    }

    pub fn tasks_by_function(&self, id: FunctionId) -> String {
        format!("{}:tasks:fn:{id}", self.prefix)
    }

    pub fn tasks_by_worker(&self, worker: &str) -> String {
        format!("{}:tasks:worker:{worker}", self.prefix)
    }

    pub fn function_stats(&self, id: FunctionId) -> String {
        format!("{}:fnstats:{id}", self.prefix)
    }

    pub fn function_samples(&self, id: FunctionId) -> String {
        format!("{}:fnsamples:{id}", self.prefix)
    }

    pub fn functions_deleted(&self) -> String {
        format!("{}:functions:deleted", self.prefix)
    }

    pub fn epoch(&self) -> String {
        format!("{}:epoch", self.prefix)
    }

    pub fn healthz(&self) -> String {
        format!("{}:healthz", self.prefix)
    }
}

/// Whether `{p}:tasks:status:{S}` is kept for status S: the sparse ones only (see the table).
pub fn status_indexed(status: TaskStatus) -> bool {
    status == TaskStatus::Failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_documented_table() {
        let k = Keys::default();
        let id: TaskId = "6f1c1a52-3f43-4a7e-9b59-5d1c0f6a9a10".parse().unwrap();
        assert_eq!(k.task(id), "faas:task:6f1c1a52-3f43-4a7e-9b59-5d1c0f6a9a10");
        assert_eq!(k.queue(), "faas:queue");
        assert_eq!(Keys::new("x").events(), "x:events");
        assert_eq!(Keys::new("x").finished(), "x:finished");
        assert_eq!(Keys::new("x").drains(), "x:drains");
        // The Lua scripts build these from the root (index_lib.lua): keep both in step.
        let f: FunctionId = "0b6f8a52-3f43-4a7e-9b59-5d1c0f6a9a10".parse().unwrap();
        assert_eq!(k.root(), "faas:");
        assert_eq!(k.tasks_index(), "faas:tasks");
        assert_eq!(
            k.tasks_by_status(TaskStatus::Failed),
            "faas:tasks:status:FAILED"
        );
        assert_eq!(k.tasks_expiring(), "faas:tasks:expiring");
        assert_eq!(k.tasks_by_function(f), format!("faas:tasks:fn:{f}"));
        assert_eq!(k.tasks_by_worker("w1"), "faas:tasks:worker:w1");
        assert_eq!(k.function_stats(f), format!("faas:fnstats:{f}"));
        assert_eq!(k.function_samples(f), format!("faas:fnsamples:{f}"));
    }
}
