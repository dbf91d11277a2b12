//! Task search, cancelling, retrying, purging, and functions' statistics and deletion.
//!
//! Listing walks the sorted-set indexes that the status-changing Lua scripts keep (`{p}:tasks`,
//! per function, per worker, and FAILED; scores are created_at in ms, see `protocol::keys`):
//! `lua/list.lua` picks the smallest index among the filters given, walks it newest first from
//! the cursor and checks the other filters on each task's hash, so a page costs
//! O(log n + examined) whatever the number of tasks, and at most [`LIST_MAX_EXAMINED`] tasks
//! are examined per page. Terminal tasks leave the indexes when their hash expires (the result
//! TTL), swept in batches by one status change in eight (`index_lib.lua`'s `idx_terminal`);
//! one found gone by a listing is dropped from the index it walked.
//!
//! Every index write is paid by every task, so the indexes are the fewest that keep pages
//! cheap, and QUEUED, RUNNING and COMPLETED have none. A queued task is an entry of the queue
//! stream: `status=QUEUED` walks the stream newest entry first (its cursor is then the last
//! entry, `q{ms}-{seq}`; a task put back on the queue is listed as newly queued). A running
//! task is a pending entry of the stream, at most two per busy process (one running, one a
//! local slot holds to run next: see the dispatcher's docs): `status=RUNNING` reads them all
//! (up to [`LIST_MAX_EXAMINED`]) and sorts them. Completed tasks are nearly every task,
//! so a walk of `{p}:tasks` (or of the function's or worker's index) finds them at once. A
//! function's run-time and queue-wait samples are one list of `run:wait` pairs, trimmed once
//! in a hundred finishes, and the expiry index is a list appended to in the order tasks end.
//! So a task pays three `ZADD`s (all tasks, its function, its worker), one `HINCRBY` and one
//! `LPUSH` for its function's statistics and one `RPUSH` to the expiry list; a failed one a
//! `ZADD` more. [`Store::upgrade_indexes`] brings an earlier version's indexes to these.
//!
//! Cancelling (one task, a purge of the queue, the queued tasks of a deleted function) is
//! `index_lib.lua`'s `cancel_task`: the task ends FAILED with its error type, in one atomic step
//! with its indexes, counters and events; a RUNNING one's id is published on `{p}:cancels` for
//! its dispatcher to kill. Purges and deletions go in bounded batches, one script call each, so
//! that no call holds Redis for long.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use faas_protocol::api::{FunctionDetail, FunctionStats, Percentiles, TaskErrorBrief, TaskSummary};
use faas_protocol::keys::fields::{function as fnf, function_stats as fsf, task as tf};
use faas_protocol::model::TaskError;
use faas_protocol::{FunctionFormat, FunctionId, TaskId, TaskStatus};
use redis::{AsyncCommands, Script};

use super::{field, Result, Store, StoreError};
use crate::now_ms;

/// Most tasks one page examines (see the module docs).
pub const LIST_MAX_EXAMINED: usize = 5_000;
/// Tasks one purge or deletion call cancels at most.
const BATCH: usize = 500;
/// Run-time and queue-wait samples kept per function (`FN_SAMPLES` in index_lib.lua).
pub const FN_SAMPLES: usize = 1_000;
/// Values `list.lua` returns per task.
const LIST_ROW: usize = 12;

static LIST: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/list.lua")));
static CANCEL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/index_lib.lua"),
        include_str!("lua/cancel.lua")
    ))
});
static PURGE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/index_lib.lua"),
        include_str!("lua/purge.lua")
    ))
});
/// Moves up to ARGV[1] of the latest entries of the earlier expiry zset (`task|function|worker`
/// scored by deadline) to the head of the expiry list, as `deadline|task|function|worker`:
/// newest first, so that once every batch moved the head holds the earliest deadline.
static MIGRATE_EXPIRY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local old = redis.call('ZRANGE', KEYS[1], -tonumber(ARGV[1]), -1, 'WITHSCORES')
for i = #old - 1, 1, -2 do
  redis.call('LPUSH', KEYS[2], string.format('%d', tonumber(old[i + 1])) .. '|' .. old[i])
  redis.call('ZREM', KEYS[1], old[i])
end
return #old / 2
",
    )
});
static DELETE_FUNCTION: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/index_lib.lua"),
        include_str!("lua/delete_function.lua")
    ))
});

/// Which tasks a listing wants.
#[derive(Clone, Debug, Default)]
pub struct TaskFilter {
    pub status: Option<TaskStatus>,
    pub function_id: Option<FunctionId>,
    pub worker: Option<String>,
    /// created_at at or after this (unix ms).
    pub since: Option<u64>,
}

/// Where a page ends. Shown as `{created_at}-{task id}` for a walk of the indexes, and as
/// `q{entry id}` for a walk of the queue (`status=QUEUED`); clients pass it back as it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cursor {
    /// The created_at and id of the last task a walk of the indexes examined.
    Index { created_at: u64, task_id: TaskId },
    /// The last queue entry (`ms-seq`) a walk of the queue examined.
    Queue { ms: u64, seq: u64 },
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Index {
                created_at,
                task_id,
            } => write!(f, "{created_at}-{task_id}"),
            Self::Queue { ms, seq } => write!(f, "q{ms}-{seq}"),
        }
    }
}

impl Cursor {
    /// Whether this cursor can continue a listing of `status` (a walk of the queue for QUEUED,
    /// of the indexes otherwise).
    pub fn fits(&self, status: Option<TaskStatus>) -> bool {
        matches!(self, Self::Queue { .. }) == (status == Some(TaskStatus::Queued))
    }
}

impl FromStr for Cursor {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid cursor {s:?}: pass a `next_cursor` as it was returned");
        if let Some(entry) = s.strip_prefix('q') {
            let (ms, seq) = super::entry_order(entry).ok_or_else(bad)?;
            return Ok(Self::Queue { ms, seq });
        }
        let (at, id) = s.split_once('-').ok_or_else(bad)?;
        Ok(Self::Index {
            created_at: at.parse().map_err(|_| bad())?,
            task_id: id.parse().map_err(|_| bad())?,
        })
    }
}

/// What cancelling found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cancelled {
    /// It was QUEUED or RUNNING and is now FAILED `Cancelled`.
    Now { was: TaskStatus },
    /// It had already ended with this status: nothing changed.
    AlreadyTerminal(TaskStatus),
    /// No such task.
    Missing,
}

/// What a retry copies from the task it retries.
#[derive(Clone, Debug)]
pub struct RetrySource {
    pub status: TaskStatus,
    pub function_id: FunctionId,
    pub args: String,
    pub timeout_ms: Option<u64>,
    pub max_attempts: u32,
}

impl Store {
    /// Brings the indexes of an earlier version to this one's (see the module docs): the
    /// status indexes this one does not keep (QUEUED, RUNNING, COMPLETED), which nothing would
    /// trim any more, are unlinked (`UNLINK` frees them off Redis' main thread, however large),
    /// and the expiry zset's entries move to the expiry list, in deadline order, a bounded
    /// batch per call, so that the tasks they name still leave the indexes when they expire.
    /// Idempotent; the gateway runs it at start.
    pub async fn upgrade_indexes(&self) -> Result<()> {
        let k = &self.keys;
        let mut c = self.conn.clone();
        let () = redis::cmd("UNLINK")
            .arg(k.tasks_by_status(TaskStatus::Queued))
            .arg(k.tasks_by_status(TaskStatus::Running))
            .arg(k.tasks_by_status(TaskStatus::Completed))
            .query_async(&mut c)
            .await?;
        let legacy = format!("{}tasks:expiry", k.root());
        loop {
            let moved: usize = MIGRATE_EXPIRY
                .key(&legacy)
                .key(k.tasks_expiring())
                .arg(1_000)
                .invoke_async(&mut c)
                .await?;
            if moved == 0 {
                return Ok(());
            }
        }
    }

    /// One page of tasks, newest first, and the cursor of the next page (`None` at the end).
    pub async fn list_tasks(
        &self,
        filter: &TaskFilter,
        limit: usize,
        cursor: Option<Cursor>,
    ) -> Result<(Vec<TaskSummary>, Option<Cursor>)> {
        let k = &self.keys;
        let mut call = LIST.prepare_invoke();
        // QUEUED and RUNNING: the queue's entries and pending entries, the other filters
        // checked on the hashes (see the module docs); anything else walks the indexes.
        let mode = match filter.status {
            Some(TaskStatus::Queued) => "queued",
            Some(TaskStatus::Running) => "running",
            _ => "index",
        };
        let (cursor_a, cursor_b) = match (mode, cursor) {
            (_, None) => (String::new(), String::new()),
            ("queued", Some(Cursor::Queue { ms, seq })) => ("q".to_owned(), format!("{ms}-{seq}")),
            (
                "index" | "running",
                Some(Cursor::Index {
                    created_at,
                    task_id,
                }),
            ) => (created_at.to_string(), task_id.to_string()),
            // A cursor of another listing (the gateway refuses those: `Cursor::fits`).
            _ => (String::new(), String::new()),
        };
        if mode == "index" {
            let mut any = false;
            if let Some(f) = filter.function_id {
                call.key(k.tasks_by_function(f));
                any = true;
            }
            if let Some(w) = &filter.worker {
                call.key(k.tasks_by_worker(w));
                any = true;
            }
            // Only the sparse statuses have an index (index_lib.lua); COMPLETED is checked on
            // the hashes of whichever index is walked.
            if let Some(s) = filter
                .status
                .filter(|s| faas_protocol::keys::status_indexed(*s))
            {
                call.key(k.tasks_by_status(s));
                any = true;
            }
            if !any {
                call.key(k.tasks_index());
            }
        } else {
            call.key(k.queue());
        }
        call.arg(k.task_prefix())
            .arg(filter.status.map(|s| s.as_str()).unwrap_or(""))
            .arg(
                filter
                    .function_id
                    .map(|f| f.to_string())
                    .unwrap_or_default(),
            )
            .arg(filter.worker.as_deref().unwrap_or(""))
            .arg(filter.since.map(|s| s.to_string()).unwrap_or_default())
            .arg(limit)
            .arg(cursor_a)
            .arg(cursor_b)
            .arg(LIST_MAX_EXAMINED)
            .arg(mode)
            .arg(faas_protocol::keys::DISPATCHER_GROUP);
        let mut c = self.conn.clone();
        let reply: Vec<String> = call.invoke_async(&mut c).await?;
        if reply.len() < 2 {
            return Err(StoreError::corrupt("list.lua", "short reply"));
        }
        let next = if reply[0] == "q" {
            // ('q', entry id): the queue cursor's own text is `q{entry}`.
            format!("q{}", reply[1]).parse::<Cursor>().ok()
        } else {
            match (reply[0].parse::<f64>(), reply[1].parse::<TaskId>()) {
                (Ok(at), Ok(task_id)) => Some(Cursor::Index {
                    created_at: at as u64,
                    task_id,
                }),
                _ => None,
            }
        };
        let tasks = reply[2..]
            .chunks_exact(LIST_ROW)
            .filter_map(summary)
            .collect();
        Ok((tasks, next))
    }

    /// Cancels a QUEUED or RUNNING task (see the module docs); `retention` is how long its
    /// record is kept.
    pub async fn cancel(&self, id: TaskId, retention: Duration) -> Result<Cancelled> {
        let mut c = self.conn.clone();
        let was: String = CANCEL
            .arg(self.keys.root())
            .arg(id.to_string())
            .arg(now_ms())
            .arg(retention.as_secs())
            .arg("Cancelled")
            .arg("cancelled by request")
            .invoke_async(&mut c)
            .await?;
        Ok(match was.parse::<TaskStatus>() {
            Ok(s) if s.is_terminal() => Cancelled::AlreadyTerminal(s),
            Ok(s) => Cancelled::Now { was: s },
            Err(_) => Cancelled::Missing,
        })
    }

    /// Cancels every QUEUED task, in batches; returns how many. Stops after as many tasks as
    /// were queued when it began (plus a batch), so submissions racing it cannot keep it going.
    pub async fn purge_queued(&self, retention: Duration) -> Result<u64> {
        let mut c = self.conn.clone();
        let queued: usize = c.xlen(self.keys.queue()).await?;
        let (mut purged, mut examined, mut last) = (0u64, 0usize, String::new());
        loop {
            let (n, seen, end): (u64, usize, String) = PURGE
                .key(self.keys.queue())
                .arg(self.keys.root())
                .arg(now_ms())
                .arg(retention.as_secs())
                .arg(BATCH)
                .arg("Cancelled")
                .arg("cancelled by request (queue purged)")
                .arg(&last)
                .invoke_async(&mut c)
                .await?;
            purged += n;
            examined += seen;
            last = end;
            if seen < BATCH || examined > queued + BATCH {
                return Ok(purged);
            }
        }
    }

    /// Deletes a function and fails its QUEUED tasks `FunctionDeleted`; `None` if there was no
    /// such function. Its finished tasks keep their records.
    pub async fn delete_function(
        &self,
        id: FunctionId,
        retention: Duration,
    ) -> Result<Option<u64>> {
        let mut c = self.conn.clone();
        let message = format!("function {id} was deleted");
        let (mut cancelled, mut offset) = (0u64, 0usize);
        loop {
            let reply: Vec<i64> = DELETE_FUNCTION
                .arg(self.keys.root())
                .arg(id.to_string())
                .arg(now_ms())
                .arg(retention.as_secs())
                .arg(BATCH)
                .arg(offset)
                .arg(&message)
                .invoke_async(&mut c)
                .await?;
            match reply[..] {
                [-1] => return Ok(None),
                [n, seen] => {
                    cancelled += n as u64;
                    offset += seen as usize;
                    if (seen as usize) < BATCH {
                        return Ok(Some(cancelled));
                    }
                }
                _ => return Err(StoreError::corrupt("delete_function.lua", "odd reply")),
            }
        }
    }

    /// A function's metadata and statistics, in one round trip.
    pub async fn function_detail(&self, id: FunctionId) -> Result<Option<FunctionDetail>> {
        let key = self.keys.function(id);
        let mut pipe = redis::pipe();
        pipe.hmget(
            &key,
            &[fnf::NAME, fnf::FORMAT, fnf::ENTRYPOINT, fnf::CREATED_AT],
        )
        .hgetall(self.keys.function_stats(id))
        .lrange(self.keys.function_samples(id), 0, FN_SAMPLES as isize - 1);
        type Meta = (Option<String>, Option<String>, Option<String>, Option<u64>);
        let mut c = self.conn.clone();
        let ((name, format, entrypoint, created), stats, samples): (
            Meta,
            HashMap<String, String>,
            Vec<String>,
        ) = pipe.query_async(&mut c).await?;
        // 'run_ms:wait_ms' each (index_lib.lua's fn_finished); a malformed one is skipped.
        let (runs, waits): (Vec<u64>, Vec<u64>) = samples
            .iter()
            .filter_map(|s| {
                let (run, wait) = s.split_once(':')?;
                Some((run.parse::<u64>().ok()?, wait.parse::<u64>().ok()?))
            })
            .unzip();
        let (Some(name), Some(format)) = (name, format) else {
            return Ok(None);
        };
        let format: FunctionFormat = format
            .parse()
            .map_err(|e: String| StoreError::corrupt(&key, e))?;
        let count = |f: &str| field(&stats, f).parse::<u64>().unwrap_or(0);
        Ok(Some(FunctionDetail {
            function_id: id,
            name,
            format,
            entrypoint: entrypoint.filter(|e| !e.is_empty()),
            created_at: created.unwrap_or(0),
            stats: FunctionStats {
                invocations: count(fsf::INVOCATIONS),
                completed: count(fsf::COMPLETED),
                failed: count(fsf::FAILED),
                cancelled: count(fsf::CANCELLED),
                run_ms: percentiles(runs),
                queue_wait_ms: percentiles(waits),
                last_failure_at: field(&stats, fsf::LAST_FAILURE_AT).parse().ok(),
                last_failure_type: stats
                    .get(fsf::LAST_FAILURE_TYPE)
                    .filter(|t| !t.is_empty())
                    .cloned(),
            },
        }))
    }

    /// What a retry of task `id` needs from it; `None` if there is no such task.
    pub async fn retry_source(&self, id: TaskId) -> Result<Option<RetrySource>> {
        let key = self.keys.task(id);
        let mut c = self.conn.clone();
        type Row = (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<u32>,
        );
        let (status, function_id, args, timeout, max_attempts): Row = c
            .hmget(
                &key,
                &[
                    tf::STATUS,
                    tf::FUNCTION_ID,
                    tf::ARGS,
                    tf::TIMEOUT_MS,
                    tf::MAX_ATTEMPTS,
                ],
            )
            .await?;
        let Some(status) = status else {
            return Ok(None);
        };
        let bad = |e: String| StoreError::corrupt(&key, e);
        Ok(Some(RetrySource {
            status: status.parse().map_err(bad)?,
            function_id: function_id
                .unwrap_or_default()
                .parse()
                .map_err(|e: faas_protocol::ids::InvalidId| bad(e.to_string()))?,
            args: args.unwrap_or_default(),
            timeout_ms: timeout.and_then(|t| t.parse().ok()),
            max_attempts: max_attempts.unwrap_or(3),
        }))
    }
}

/// One row of `list.lua`'s reply; a row that does not parse (a foreign or corrupt hash) is left
/// out rather than failing the page.
fn summary(v: &[String]) -> Option<TaskSummary> {
    let num = |s: &String| s.parse::<u64>().ok();
    let error = Some(v[10].as_str())
        .filter(|e| !e.is_empty())
        .and_then(|e| serde_json::from_str::<TaskError>(e).ok())
        .map(|e| TaskErrorBrief {
            kind: e.kind,
            message: e.message,
        });
    Some(TaskSummary {
        task_id: v[0].parse().ok()?,
        status: v[1].parse().ok()?,
        function_id: v[2].parse().ok()?,
        function_name: v[3].clone(),
        worker: Some(v[4].clone()).filter(|w| !w.is_empty()),
        attempts: v[5].parse().unwrap_or(0),
        max_attempts: v[6].parse().unwrap_or(0),
        created_at: num(&v[7]).unwrap_or(0),
        started_at: num(&v[8]),
        finished_at: num(&v[9]),
        error,
        retry_of: v[11].parse().ok(),
    })
}

/// Nearest-rank p50/p95/p99 of a sample; `None` when it is empty.
fn percentiles(mut sample: Vec<u64>) -> Option<Percentiles> {
    if sample.is_empty() {
        return None;
    }
    sample.sort_unstable();
    let n = sample.len();
    let at = |q: f64| sample[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
    Some(Percentiles {
        p50: at(0.50),
        p95: at(0.95),
        p99: at(0.99),
        samples: n as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bad_ones_are_refused() {
        let c = Cursor::Index {
            created_at: 1_733_000_000_123,
            task_id: "6f1c1a52-3f43-4a7e-9b59-5d1c0f6a9a10".parse().unwrap(),
        };
        assert_eq!(c.to_string().parse::<Cursor>().unwrap(), c);
        let q = Cursor::Queue {
            ms: 1_733_000_000_123,
            seq: 7,
        };
        assert_eq!(q.to_string(), "q1733000000123-7");
        assert_eq!(q.to_string().parse::<Cursor>().unwrap(), q);
        for bad in [
            "",
            "12",
            "x-6f1c1a52-3f43-4a7e-9b59-5d1c0f6a9a10",
            "12-nope",
            "q12",
            "q12-x",
            "q-1",
        ] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad}");
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        assert_eq!(percentiles(Vec::new()), None);
        let p = percentiles((1..=100).rev().collect()).unwrap();
        assert_eq!((p.p50, p.p95, p.p99, p.samples), (50, 95, 99, 100));
        let one = percentiles(vec![7]).unwrap();
        assert_eq!((one.p50, one.p99), (7, 7));
    }
}
