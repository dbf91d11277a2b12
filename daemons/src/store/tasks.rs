//! Task search, cancelling, retrying, purging, and functions' statistics and deletion.
//!
//! Listing walks the sorted-set indexes that the status-changing Lua scripts keep (`{p}:tasks`,
//! per function, per worker, and per status for QUEUED and FAILED; scores are created_at in ms,
//! see `protocol::keys`): `lua/list.lua` picks the smallest index among the filters given, walks
//! it newest first from the cursor and checks the other filters on each task's hash, so a page
//! costs O(log n + examined) whatever the number of tasks, and at most [`LIST_MAX_EXAMINED`]
//! tasks are examined per page. Terminal tasks leave the indexes when their hash expires (the
//! result TTL), swept in batches by one status change in eight (`index_lib.lua`'s
//! `idx_terminal`); one found gone by a listing is dropped from the index it walked.
//!
//! Every index write is paid by every task, so the indexes are the fewest that keep pages
//! cheap. RUNNING and COMPLETED have none: running tasks are the queue stream's pending entries
//! (at most one per busy process), which `status=RUNNING` reads whole and sorts; completed ones
//! are nearly every task, so a walk of `{p}:tasks` (or of the function's or worker's index)
//! finds them at once. A function's run-time and queue-wait samples are one list of
//! `run:wait` pairs, trimmed once in a hundred finishes. With this, the indexes and statistics
//! cost a task one `ZADD` per index it enters, one `ZREM` out of QUEUED, one `HINCRBY` and one
//! `LPUSH` for its function's statistics and one `ZADD` to the expiry index.
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

/// Where a page ends: the created_at and id of its last task. Shown as `{created_at}-{id}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: u64,
    pub task_id: TaskId,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.created_at, self.task_id)
    }
}

impl FromStr for Cursor {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid cursor {s:?}: pass a `next_cursor` as it was returned");
        let (at, id) = s.split_once('-').ok_or_else(bad)?;
        Ok(Self {
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
    /// Removes the indexes an earlier version kept and this one does not (RUNNING and
    /// COMPLETED, see the module docs), which nothing would trim any more. `UNLINK` frees them
    /// off Redis' main thread, however large they grew.
    pub async fn drop_legacy_indexes(&self) -> Result<()> {
        let k = &self.keys;
        let mut c = self.conn.clone();
        let () = redis::cmd("UNLINK")
            .arg(k.tasks_by_status(TaskStatus::Running))
            .arg(k.tasks_by_status(TaskStatus::Completed))
            .query_async(&mut c)
            .await?;
        Ok(())
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
        // RUNNING: the queue's pending entries; any other filter is checked on the hashes.
        let running = filter.status == Some(TaskStatus::Running);
        let mut any = false;
        if running {
            call.key(k.queue());
            any = true;
        }
        if let Some(f) = filter.function_id.filter(|_| !running) {
            call.key(k.tasks_by_function(f));
            any = true;
        }
        if let Some(w) = filter.worker.as_ref().filter(|_| !running) {
            call.key(k.tasks_by_worker(w));
            any = true;
        }
        // Only the sparse statuses have an index (index_lib.lua); COMPLETED is checked on the
        // hashes of whichever index is walked.
        if let Some(s) = filter.status.filter(|s| faas_protocol::keys::status_indexed(*s)) {
            call.key(k.tasks_by_status(s));
            any = true;
        }
        if !any {
            call.key(k.tasks_index());
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
            .arg(cursor.map(|c| c.created_at.to_string()).unwrap_or_default())
            .arg(cursor.map(|c| c.task_id.to_string()).unwrap_or_default())
            .arg(LIST_MAX_EXAMINED)
            .arg(if running {
                faas_protocol::keys::DISPATCHER_GROUP
            } else {
                ""
            });
        let mut c = self.conn.clone();
        let reply: Vec<String> = call.invoke_async(&mut c).await?;
        if reply.len() < 2 {
            return Err(StoreError::corrupt("list.lua", "short reply"));
        }
        let next = match (reply[0].parse::<f64>(), reply[1].parse::<TaskId>()) {
            (Ok(at), Ok(task_id)) => Some(Cursor {
                created_at: at as u64,
                task_id,
            }),
            _ => None,
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
        let queued: usize = c
            .zcard(self.keys.tasks_by_status(TaskStatus::Queued))
            .await?;
        let (mut purged, mut examined) = (0u64, 0usize);
        loop {
            let (n, seen): (u64, usize) = PURGE
                .arg(self.keys.root())
                .arg(now_ms())
                .arg(retention.as_secs())
                .arg(BATCH)
                .arg("Cancelled")
                .arg("cancelled by request (queue purged)")
                .invoke_async(&mut c)
                .await?;
            purged += n;
            examined += seen;
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
        let c = Cursor {
            created_at: 1_733_000_000_123,
            task_id: "6f1c1a52-3f43-4a7e-9b59-5d1c0f6a9a10".parse().unwrap(),
        };
        assert_eq!(c.to_string().parse::<Cursor>().unwrap(), c);
        for bad in [
            "",
            "12",
            "x-6f1c1a52-3f43-4a7e-9b59-5d1c0f6a9a10",
            "12-nope",
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
