//! The Redis store: functions, tasks, the queue stream and events, behind typed methods.
//!
//! Every status change goes through one of the Lua scripts in `lua/`, so the check of the old
//! status, the write, the queue bookkeeping and the event are a single atomic step.
//!
//! The connections are dialled in [`link`]: one shared connection that dials again once lost,
//! and Unix sockets that wake a daemon only when Redis answers. Commands fail fast while Redis
//! is away (a command timeout and a circuit breaker, see [`guard`]), and errors say what went
//! wrong: [`StoreError::kind`] tells an unreachable Redis from one that refuses writes (out of
//! memory, a read-only replica) and from corrupt data.

mod epoch;
mod guard;
mod link;
mod queue;
mod tasks;

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use faas_protocol::event::{Event, EventOutcome, WorkerState, EVENT_OUTCOME_MAX};
use faas_protocol::keys::fields::{
    function as fnf, function_stats as fsf, stats as sf, task as tf,
};
use faas_protocol::model::{
    FunctionDef, FunctionSummary, Outcome, TaskError, TaskRecord, WorkerInfo,
};
use faas_protocol::{FunctionFormat, FunctionId, Keys, TaskId, TaskStatus};
use redis::{AsyncCommands, Script};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::backoff::Backoff;
use crate::now_ms;

pub use epoch::{watch_epoch, EPOCH_EVERY};
pub use guard::Guarded;
pub use link::{dial, Redial};
pub use queue::{entry_order, QueueEntry, QueueReader, Taken};
pub use tasks::{Cancelled, Cursor, RetrySource, TaskFilter};

/// How long one attempt to connect to Redis may take.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(2);

/// The default bound on one Redis command (see [`guard`]).
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(500);

static TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/index_lib.lua"),
        include_str!("lua/take_lib.lua"),
        include_str!("lua/take.lua")
    ))
});
static FINISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/index_lib.lua"),
        include_str!("lua/take_lib.lua"),
        include_str!("lua/finish.lua")
    ))
});
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/index_lib.lua"),
        include_str!("lua/release.lua")
    ))
});
static REQUEUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/index_lib.lua"),
        include_str!("lua/requeue.lua")
    ))
});

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("corrupt record {key}: {detail}")]
    Corrupt { key: String, detail: String },
}

/// What kind of trouble a [`StoreError`] is, for the message a client gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trouble {
    /// Redis cannot be reached, does not answer in time, or is still loading its data.
    Unreachable,
    /// Redis is at `maxmemory` and refuses writes (OOM).
    OutOfMemory,
    /// Redis is a read-only replica (READONLY).
    ReadOnly,
    /// Redis refuses writes because its persistence failed (MISCONF).
    PersistenceFailed,
    /// Redis answered with another error.
    Other,
    /// A record in Redis cannot be read: not Redis's fault, nor one a retry fixes.
    Corrupt,
}

impl StoreError {
    /// Sorts the error for the client's message and status (see [`Trouble`]). Errors from
    /// scripts come wrapped ("ERR Error running script ... OOM ..."), so the text is checked too.
    pub fn kind(&self) -> Trouble {
        let e = match self {
            StoreError::Corrupt { .. } => return Trouble::Corrupt,
            StoreError::Redis(e) => e,
        };
        if guard::is_unreachable(e) {
            return Trouble::Unreachable;
        }
        let text = e.to_string();
        let has = |code: &str| e.code() == Some(code) || text.contains(code);
        if has("OOM") {
            Trouble::OutOfMemory
        } else if has("READONLY")
            || e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
            // Known codes are shown by their kind's name inside an aborted transaction.
            || text.contains("ReadOnly:")
        {
            Trouble::ReadOnly
        } else if has("MISCONF") {
            Trouble::PersistenceFailed
        } else {
            Trouble::Other
        }
    }

    /// The queue's consumer group is missing (Redis restarted without its data).
    pub fn is_nogroup(&self) -> bool {
        match self {
            // From a script the code may come wrapped, so the text is checked too.
            StoreError::Redis(e) => {
                e.code() == Some("NOGROUP") || e.to_string().contains("NOGROUP")
            }
            StoreError::Corrupt { .. } => false,
        }
    }

    fn corrupt(key: &str, detail: impl Into<String>) -> Self {
        Self::Corrupt {
            key: key.to_owned(),
            detail: detail.into(),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A function to register.
#[derive(Clone, Debug)]
pub struct NewFunction {
    pub name: String,
    pub format: FunctionFormat,
    pub body: String,
    pub entrypoint: Option<String>,
}

/// What the gateway needs to know of a function to accept executions of it.
#[derive(Clone, Debug)]
pub struct FunctionMeta {
    pub name: String,
    pub format: FunctionFormat,
}

/// A task to submit. `args` is the stored text: base64 for dill, JSON for source.
#[derive(Clone, Debug)]
pub struct NewTask {
    pub function_id: FunctionId,
    pub meta: FunctionMeta,
    pub args: String,
    pub timeout_ms: Option<u64>,
    pub max_attempts: u32,
    /// The task this one retries.
    pub retry_of: Option<TaskId>,
}

/// The status and, once terminal, the outcome of a task.
#[derive(Clone, Debug)]
pub struct TaskBrief {
    pub status: TaskStatus,
    pub result: serde_json::Value,
    pub error: Option<TaskError>,
}

/// What starting a task found: run it only when `previous` is QUEUED.
#[derive(Clone, Debug)]
pub struct Started {
    pub previous: Option<TaskStatus>,
    pub attempts: u32,
    pub function_id: Option<FunctionId>,
    pub args: String,
    pub timeout_ms: Option<u64>,
}

/// An outcome to record with [`Store::finish`].
#[derive(Clone, Copy, Debug)]
pub struct Finish<'a> {
    pub task_id: TaskId,
    pub format: FunctionFormat,
    pub outcome: &'a Outcome,
    /// The worker that ran it (with `lease`, the one it must be running on).
    pub worker: &'a str,
    /// The queue entry to acknowledge and delete.
    pub entry: Option<&'a str>,
    /// How long the record is kept once terminal.
    pub retention: Duration,
    /// (worker, consumer): take the next queue entry for that worker in the same round trip.
    pub next: Option<(&'a str, &'a str)>,
    /// With `next`: how many entries to take for that worker (at least one; those after the
    /// first are held ahead).
    pub take: u32,
    /// The attempt the outcome belongs to: recorded only while the task runs under it.
    pub lease: Option<u32>,
}

/// Redis access shared by all daemons. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    client: redis::Client,
    conn: Guarded,
    keys: Keys,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("keys", &self.keys).finish()
    }
}

impl Store {
    /// Connects, retrying until Redis answers (daemons may start before Redis does) or
    /// `shutdown` is cancelled (then `Ok(None)`: a daemon asked to stop while Redis is down
    /// stops). Each command then gets at most `command_timeout`.
    pub async fn connect(
        url: &str,
        keys: Keys,
        command_timeout: Duration,
        shutdown: &CancellationToken,
    ) -> Result<Option<Self>> {
        let client = redis::Client::open(url)?;
        // The guard's timeout is the bound a caller sees; this one only keeps a connection that
        // Redis stopped answering on from being held long.
        let config =
            redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(5)));
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        // Each failed attempt says so at once (a wrong URL, a Redis still starting), rather than
        // leave an operator looking at a silent daemon.
        let conn = loop {
            let attempt = tokio::select! {
                c = Redial::connect(client.clone(), config.clone(), DIAL_TIMEOUT) => c,
                () = shutdown.cancelled() => return Ok(None),
            };
            match attempt {
                Ok(conn) => break conn,
                Err(e) => {
                    warn!(event = "redis_unreachable", error = %e, %url, "redis not reachable yet; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(backoff.next_delay()) => {}
                        () = shutdown.cancelled() => return Ok(None),
                    }
                }
            }
        };
        Ok(Some(Self {
            client,
            conn: Guarded::new(conn, command_timeout),
            keys,
        }))
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    pub async fn ping(&self) -> Result<()> {
        let mut c = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut c).await?;
        Ok(())
    }

    /// Proves Redis is reachable *and* takes writes: one small write that expires by itself.
    /// An OOM, READONLY or MISCONF reply says why writes are refused (see [`StoreError::kind`]).
    pub async fn check_writable(&self) -> Result<()> {
        let mut c = self.conn.clone();
        let () = redis::cmd("SET")
            .arg(self.keys.healthz())
            .arg(now_ms())
            .arg("PX")
            .arg(60_000)
            .query_async(&mut c)
            .await?;
        Ok(())
    }

    pub async fn register_function(&self, f: &NewFunction) -> Result<FunctionId> {
        let id = FunctionId::new();
        let now = now_ms();
        let key = self.keys.function(id);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset_multiple(
                &key,
                &[
                    (fnf::NAME, f.name.as_str()),
                    (fnf::FORMAT, f.format.as_str()),
                    (fnf::BODY, f.body.as_str()),
                    (fnf::ENTRYPOINT, f.entrypoint.as_deref().unwrap_or("")),
                    (fnf::CREATED_AT, &now.to_string()),
                ],
            )
            .ignore()
            .zadd(self.keys.functions(), id.to_string(), now)
            .ignore();
        let mut c = self.conn.clone();
        let () = pipe.query_async(&mut c).await?;
        Ok(id)
    }

    pub async fn function_meta(&self, id: FunctionId) -> Result<Option<FunctionMeta>> {
        let key = self.keys.function(id);
        let mut c = self.conn.clone();
        let (name, format): (Option<String>, Option<String>) =
            c.hmget(&key, &[fnf::NAME, fnf::FORMAT]).await?;
        let (Some(name), Some(format)) = (name, format) else {
            return Ok(None);
        };
        let format = format
            .parse()
            .map_err(|e: String| StoreError::corrupt(&key, e))?;
        Ok(Some(FunctionMeta { name, format }))
    }

    pub async fn function_def(&self, id: FunctionId) -> Result<Option<FunctionDef>> {
        let key = self.keys.function(id);
        let mut c = self.conn.clone();
        let h: HashMap<String, String> = c.hgetall(&key).await?;
        if h.is_empty() {
            return Ok(None);
        }
        let format = field(&h, fnf::FORMAT)
            .parse()
            .map_err(|e: String| StoreError::corrupt(&key, e))?;
        let entrypoint = Some(field(&h, fnf::ENTRYPOINT).to_owned()).filter(|e| !e.is_empty());
        Ok(Some(FunctionDef {
            id,
            format,
            body: field(&h, fnf::BODY).to_owned(),
            entrypoint,
        }))
    }

    /// All functions, oldest first, in two round trips.
    pub async fn list_functions(&self) -> Result<Vec<FunctionSummary>> {
        let mut c = self.conn.clone();
        let ids: Vec<String> = c.zrange(self.keys.functions(), 0, -1).await?;
        let ids: Vec<FunctionId> = ids.iter().filter_map(|s| s.parse().ok()).collect();
        if ids.is_empty() {
            // An empty pipeline is an error in redis-rs, not an empty reply.
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hmget(
                self.keys.function(*id),
                &[fnf::NAME, fnf::FORMAT, fnf::CREATED_AT],
            );
        }
        let rows: Vec<(Option<String>, Option<String>, Option<u64>)> =
            pipe.query_async(&mut c).await?;
        Ok(ids
            .into_iter()
            .zip(rows)
            .filter_map(|(function_id, (name, format, created))| {
                Some(FunctionSummary {
                    function_id,
                    name: name?,
                    format: format?.parse().ok()?,
                    created_at: created.unwrap_or(0),
                })
            })
            .collect())
    }

    /// Writes the task, queues it, counts it and announces it: one atomic round trip.
    pub async fn submit(&self, t: &NewTask) -> Result<TaskId> {
        let ids = self.submit_many(std::slice::from_ref(t)).await?;
        Ok(ids[0])
    }

    /// Submits many tasks in one pipeline.
    pub async fn submit_many(&self, tasks: &[NewTask]) -> Result<Vec<TaskId>> {
        let at = now_ms();
        let now = at.to_string();
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut ids = Vec::with_capacity(tasks.len());
        for t in tasks {
            let id = TaskId::new();
            ids.push(id);
            let timeout = t.timeout_ms.map(|t| t.to_string()).unwrap_or_default();
            pipe.hset_multiple(
                self.keys.task(id),
                &[
                    (tf::FUNCTION_ID, t.function_id.to_string().as_str()),
                    (tf::FUNCTION_NAME, t.meta.name.as_str()),
                    (tf::FORMAT, t.meta.format.as_str()),
                    (tf::ARGS, t.args.as_str()),
                    (tf::STATUS, TaskStatus::Queued.as_str()),
                    (tf::ATTEMPTS, "0"),
                    (tf::MAX_ATTEMPTS, t.max_attempts.to_string().as_str()),
                    (tf::TIMEOUT_MS, timeout.as_str()),
                    (tf::CREATED_AT, now.as_str()),
                ],
            )
            .ignore();
            if let Some(old) = t.retry_of {
                pipe.hset(self.keys.task(id), tf::RETRY_OF, old.to_string())
                    .ignore();
            }
            // The listing's indexes and the function's invocations (keys.rs's table; a QUEUED
            // task is listed from its queue entry, so it has no status index).
            pipe.zadd(self.keys.tasks_index(), id.to_string(), at)
                .ignore()
                .zadd(
                    self.keys.tasks_by_function(t.function_id),
                    id.to_string(),
                    at,
                )
                .ignore()
                .hincr(self.keys.function_stats(t.function_id), fsf::INVOCATIONS, 1)
                .ignore();
            pipe.xadd(self.keys.queue(), "*", &[("task", id.to_string())])
                .ignore()
                .publish(
                    self.keys.events(),
                    event_json(&queued_event(id, t.function_id, at)),
                )
                .ignore();
        }
        pipe.hincr(self.keys.stats(), sf::SUBMITTED, tasks.len())
            .ignore();
        let mut c = self.conn.clone();
        let () = pipe.query_async(&mut c).await?;
        Ok(ids)
    }

    /// The status of each task (`None`: no such record), in one round trip.
    pub async fn task_statuses(&self, ids: &[TaskId]) -> Result<Vec<Option<TaskStatus>>> {
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hget(self.keys.task(*id), tf::STATUS);
        }
        let mut c = self.conn.clone();
        let raw: Vec<Option<String>> = pipe.query_async(&mut c).await?;
        Ok(raw
            .into_iter()
            .map(|s| s.and_then(|s| s.parse().ok()))
            .collect())
    }

    pub async fn task_brief(&self, id: TaskId) -> Result<Option<TaskBrief>> {
        let key = self.keys.task(id);
        let mut c = self.conn.clone();
        let (status, format, result, error): (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        ) = c
            .hmget(&key, &[tf::STATUS, tf::FORMAT, tf::RESULT, tf::ERROR])
            .await?;
        let Some(status) = status else {
            return Ok(None);
        };
        let status: TaskStatus = status
            .parse()
            .map_err(|e: String| StoreError::corrupt(&key, e))?;
        let format = format
            .and_then(|f| f.parse().ok())
            .unwrap_or(FunctionFormat::Source);
        Ok(Some(TaskBrief {
            status,
            result: decode_result(format, result.as_deref()),
            error: decode_error(error.as_deref()),
        }))
    }

    pub async fn task_record(&self, id: TaskId) -> Result<Option<TaskRecord>> {
        let key = self.keys.task(id);
        let mut c = self.conn.clone();
        let h: HashMap<String, String> = c.hgetall(&key).await?;
        if h.is_empty() {
            return Ok(None);
        }
        let bad = |e: String| StoreError::corrupt(&key, e);
        let format: FunctionFormat = field(&h, tf::FORMAT).parse().map_err(bad)?;
        let args = match format {
            FunctionFormat::Dill => serde_json::Value::String(field(&h, tf::ARGS).to_owned()),
            FunctionFormat::Source => {
                serde_json::from_str(field(&h, tf::ARGS)).unwrap_or(serde_json::Value::Null)
            }
        };
        let num = |name: &str| field(&h, name).parse::<u64>().ok();
        Ok(Some(TaskRecord {
            task_id: id,
            function_id: field(&h, tf::FUNCTION_ID)
                .parse()
                .map_err(|e: faas_protocol::ids::InvalidId| bad(e.to_string()))?,
            function_name: field(&h, tf::FUNCTION_NAME).to_owned(),
            format,
            status: field(&h, tf::STATUS).parse().map_err(bad)?,
            args,
            result: decode_result(format, h.get(tf::RESULT).map(String::as_str)),
            error: decode_error(h.get(tf::ERROR).map(String::as_str)),
            log: field(&h, tf::LOG).to_owned(),
            attempts: num(tf::ATTEMPTS).unwrap_or(0) as u32,
            max_attempts: num(tf::MAX_ATTEMPTS).unwrap_or(0) as u32,
            timeout_ms: num(tf::TIMEOUT_MS),
            worker: Some(field(&h, tf::WORKER).to_owned()).filter(|w| !w.is_empty()),
            created_at: num(tf::CREATED_AT).unwrap_or(0),
            started_at: num(tf::STARTED_AT),
            finished_at: num(tf::FINISHED_AT),
            retry_of: h.get(tf::RETRY_OF).and_then(|r| r.parse().ok()),
        }))
    }

    /// Records an outcome unless the task is already terminal, and removes its queue entry;
    /// returns whether the outcome was recorded. With a `lease` (the attempt the outcome
    /// belongs to) it is recorded only while the task runs under that attempt on `worker`;
    /// a fenced-out outcome counts in `faas_dispatcher_stale_results_total`. With `next` = (worker, consumer) the same
    /// round trip also takes the next queue entry for that worker and starts its task
    /// (`lua/finish.lua`).
    pub async fn finish(&self, f: &Finish<'_>) -> Result<(bool, Vec<Taken>)> {
        let Finish {
            task_id: id,
            format,
            outcome,
            worker,
            entry,
            retention,
            next,
            take,
            lease,
        } = *f;
        let result = match &outcome.result {
            serde_json::Value::Null => String::new(),
            // A dill result is base64 text, stored as it is; a source result is stored as JSON.
            serde_json::Value::String(s) if format == FunctionFormat::Dill => s.clone(),
            v => v.to_string(),
        };
        let error = outcome
            .error
            .as_ref()
            .map(|e| serde_json::to_string(e).expect("errors serialise"))
            .unwrap_or_default();
        let event_outcome = if result.len() + error.len() <= EVENT_OUTCOME_MAX {
            let carried = EventOutcome {
                result: outcome.result.clone(),
                error: outcome.error.clone(),
            };
            format!(
                r#","outcome":{}"#,
                serde_json::to_string(&carried).expect("outcomes serialise")
            )
        } else {
            String::new()
        };
        let (next_worker, consumer) = next.unwrap_or(("", ""));
        let mut c = self.conn.clone();
        let reply: Vec<String> = FINISH
            .key(self.keys.task(id))
            .key(self.keys.stats())
            .key(self.keys.events())
            .key(self.keys.queue())
            .key(self.keys.finished())
            .arg(id.to_string())
            .arg(outcome.status.as_str())
            .arg(result)
            .arg(error)
            .arg(&outcome.log)
            .arg(worker)
            .arg(now_ms())
            .arg(retention.as_secs())
            .arg(faas_protocol::keys::DISPATCHER_GROUP)
            .arg(entry.unwrap_or(""))
            .arg(event_outcome)
            .arg(next_worker)
            .arg(consumer)
            .arg(self.keys.task_prefix())
            .arg(lease.map(|l| l.to_string()).unwrap_or_default())
            .arg(take.max(1))
            .invoke_async(&mut c)
            .await?;
        let recorded = reply.first().is_some_and(|r| r == "1");
        if reply.first().is_some_and(|r| r == "2") {
            crate::metrics::stale_result();
        }
        let taken = queue::parse_taken(reply.get(1..).unwrap_or_default());
        Ok((recorded, taken))
    }

    /// Gives back a task held ahead and not run (`lua/release.lua`): QUEUED again with its
    /// attempt uncounted. Returns the status the task has afterwards.
    pub async fn release(
        &self,
        id: TaskId,
        entry: &str,
        worker: &str,
        attempt: u32,
    ) -> Result<String> {
        let mut c = self.conn.clone();
        Ok(RELEASE
            .key(self.keys.task(id))
            .key(self.keys.events())
            .key(self.keys.queue())
            .arg(id.to_string())
            .arg(now_ms())
            .arg(faas_protocol::keys::DISPATCHER_GROUP)
            .arg(entry)
            .arg(worker)
            .arg(attempt)
            .invoke_async(&mut c)
            .await?)
    }

    /// Puts a task whose runner was lost back on the queue (or fails it after max attempts).
    /// Returns the status the task has afterwards.
    pub async fn requeue(
        &self,
        id: TaskId,
        why: &str,
        entry: Option<&str>,
        retention: Duration,
    ) -> Result<String> {
        let mut c = self.conn.clone();
        Ok(REQUEUE
            .key(self.keys.task(id))
            .key(self.keys.stats())
            .key(self.keys.events())
            .key(self.keys.queue())
            .key(self.keys.finished())
            .arg(id.to_string())
            .arg(why)
            .arg(now_ms())
            .arg(retention.as_secs())
            .arg(faas_protocol::keys::DISPATCHER_GROUP)
            .arg(entry.unwrap_or(""))
            .invoke_async(&mut c)
            .await?)
    }

    /// Removes a queue entry whose task needs no run (gone, or already terminal).
    pub async fn drop_entry(&self, entry: &str) -> Result<()> {
        let mut c = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.xack(
            self.keys.queue(),
            faas_protocol::keys::DISPATCHER_GROUP,
            &[entry],
        )
        .ignore()
        .xdel(self.keys.queue(), &[entry])
        .ignore();
        let () = pipe.query_async(&mut c).await?;
        Ok(())
    }

    /// The worker registry, by id.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        let mut c = self.conn.clone();
        let raw: HashMap<String, String> = c.hgetall(self.keys.workers()).await?;
        let mut workers: Vec<WorkerInfo> = raw
            .values()
            .filter_map(|v| serde_json::from_str(v).ok())
            .collect();
        workers.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(workers)
    }

    /// One worker's registry entry; `None` when it is not registered.
    pub async fn worker(&self, id: &str) -> Result<Option<WorkerInfo>> {
        let mut c = self.conn.clone();
        let raw: Option<String> = c.hget(self.keys.workers(), id).await?;
        Ok(raw.and_then(|v| serde_json::from_str(&v).ok()))
    }

    /// Asks the dispatchers to drain worker `id` (`Keys::drains`). Returns how many
    /// dispatchers heard it: 0 means none listens, and nobody will drain the worker.
    pub async fn request_drain(&self, id: &str) -> Result<u64> {
        let mut c = self.conn.clone();
        Ok(c.publish(self.keys.drains(), id).await?)
    }

    /// Writes a worker's registry entry and announces the change in one round trip.
    pub async fn put_worker(&self, w: &WorkerInfo, state: WorkerState) -> Result<()> {
        let event = Event::Worker {
            worker: w.id.clone(),
            state,
            busy: w.busy,
            slots: w.slots,
            at: now_ms(),
        };
        let mut pipe = redis::pipe();
        match state {
            WorkerState::Left | WorkerState::Lost => pipe.hdel(self.keys.workers(), &w.id),
            WorkerState::Joined | WorkerState::Heartbeat | WorkerState::Draining => pipe.hset(
                self.keys.workers(),
                &w.id,
                serde_json::to_string(w).expect("worker info serialises"),
            ),
        }
        .ignore()
        .publish(self.keys.events(), event_json(&event))
        .ignore();
        let mut c = self.conn.clone();
        let () = pipe.query_async(&mut c).await?;
        Ok(())
    }

    /// The counters: submitted, completed, failed, requeued (missing ones are 0).
    pub async fn stats(&self) -> Result<HashMap<String, u64>> {
        let mut c = self.conn.clone();
        Ok(c.hgetall(self.keys.stats()).await?)
    }

    /// Entries in the queue stream (queued and in flight), read through the guarded connection.
    pub async fn queue_depth(&self) -> Result<u64> {
        let mut c = self.conn.clone();
        Ok(c.xlen(self.keys.queue()).await?)
    }

    /// The guarded connection, for the store's own modules only: everything else goes
    /// through typed methods.
    fn conn(&self) -> Guarded {
        self.conn.clone()
    }
}

/// The event of a task that was just queued.
fn queued_event(task_id: TaskId, function_id: FunctionId, at: u64) -> Event {
    Event::Task {
        task_id,
        function_id: Some(function_id),
        status: TaskStatus::Queued,
        worker: None,
        at,
        outcome: None,
    }
}

fn event_json(e: &Event) -> String {
    serde_json::to_string(e).expect("events serialise")
}

fn field<'a>(h: &'a HashMap<String, String>, name: &str) -> &'a str {
    h.get(name).map(String::as_str).unwrap_or("")
}

fn decode_result(format: FunctionFormat, raw: Option<&str>) -> serde_json::Value {
    match raw {
        None | Some("") => serde_json::Value::Null,
        Some(s) => match format {
            FunctionFormat::Dill => serde_json::Value::String(s.to_owned()),
            FunctionFormat::Source => serde_json::from_str(s).unwrap_or(serde_json::Value::Null),
        },
    }
}

fn decode_error(raw: Option<&str>) -> Option<TaskError> {
    raw.filter(|s| !s.is_empty())
        .and_then(|s| serde_json::from_str(s).ok())
}
