//! The task queue as dispatchers see it: a Redis stream read through one consumer group.
//!
//! Blocking reads get a connection of their own with no response timeout: the shared
//! connection times responses out, and XREADGROUP BLOCK would trip that timeout.

use std::time::Duration;

use faas_protocol::keys::DISPATCHER_GROUP;
use faas_protocol::TaskId;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use redis::AsyncConnectionConfig;

use super::{dial, Result, Started, Store, DIAL_TIMEOUT, TAKE};

/// How much longer than its BLOCK time a blocking read may take before it counts as lost.
const BLOCKING_SLACK: Duration = Duration::from_secs(1);

/// One stream entry: the task to run and the entry id to acknowledge once it is done.
#[derive(Clone, Debug)]
pub struct QueueEntry {
    pub entry_id: String,
    /// `None` for an entry that does not name a valid task (dropped by the dispatcher).
    pub task_id: Option<TaskId>,
}

impl From<StreamId> for QueueEntry {
    fn from(s: StreamId) -> Self {
        let task_id = s
            .map
            .get("task")
            .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
            .and_then(|t| t.parse().ok());
        Self {
            entry_id: s.id,
            task_id,
        }
    }
}

/// An entry taken from the queue together with what starting its task found.
#[derive(Clone, Debug)]
pub struct Taken {
    pub entry: QueueEntry,
    pub started: Started,
}

/// A stream entry id `ms-seq` as numbers, which order entries as the stream does (the text
/// does not: "9-0" sorts after "10-0"). `None` for anything else.
pub fn entry_order(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// Reads `take_entries`' reply (`lua/take_lib.lua`): 7 values per entry.
pub(super) fn parse_taken(reply: &[String]) -> Vec<Taken> {
    reply
        .chunks_exact(7)
        .map(|v| Taken {
            entry: QueueEntry {
                entry_id: v[0].clone(),
                task_id: v[1].parse().ok(),
            },
            started: Started {
                previous: v[2].parse().ok(),
                attempts: v[3].parse().unwrap_or(0),
                function_id: v[4].parse().ok(),
                args: v[5].clone(),
                timeout_ms: v[6].parse().ok(),
            },
        })
        .collect()
}

/// A blocking read's reply, bounded all the same: the connection has no response timeout, but
/// a stopped Redis (SIGSTOP, a hung host) never answers, and the dispatcher must still see
/// shutdown.
async fn bounded<T>(
    block: Duration,
    read: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> redis::RedisResult<T> {
    match tokio::time::timeout(block + BLOCKING_SLACK, read).await {
        Ok(r) => r,
        Err(_) => Err(redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "redis did not answer a blocking read",
        ))),
    }
}

/// The entries of an XREADGROUP reply (none when it timed out).
fn entries_of(reply: Option<StreamReadReply>) -> Vec<QueueEntry> {
    reply
        .map(|r| {
            r.keys
                .into_iter()
                .flat_map(|k| k.ids)
                .map(Into::into)
                .collect()
        })
        .unwrap_or_default()
}

/// A dispatcher's view of the queue under its consumer name.
#[derive(Debug)]
pub struct QueueReader {
    store: Store,
    consumer: String,
    blocking: Option<MultiplexedConnection>,
    claim_cursor: String,
}

impl QueueReader {
    pub fn new(store: Store, consumer: impl Into<String>) -> Self {
        Self {
            store,
            consumer: consumer.into(),
            blocking: None,
            claim_cursor: "0-0".into(),
        }
    }

    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Creates the stream and the group if they are missing. Reading from id 0 means tasks
    /// submitted before any dispatcher ever ran are still dispatched.
    pub async fn ensure_group(&self) -> Result<()> {
        let mut c = self.store.conn();
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(self.store.keys().queue())
            .arg(DISPATCHER_GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut c)
            .await;
        match created {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => Ok(other?),
        }
    }

    /// The connection of blocking reads, made on first use (a blocked connection takes no
    /// other command, and needs no response timeout).
    async fn blocking(&mut self) -> Result<&mut MultiplexedConnection> {
        if self.blocking.is_none() {
            let config = AsyncConnectionConfig::new().set_response_timeout(None);
            let c = dial(self.store.client(), &config, DIAL_TIMEOUT).await?;
            self.blocking = Some(c);
        }
        Ok(self.blocking.as_mut().expect("made above"))
    }

    /// The blocking XREADGROUP of up to `count` new entries.
    fn blocking_read(&self, count: usize, block: Duration) -> redis::Cmd {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(DISPATCHER_GROUP)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(count.max(1))
            .arg("BLOCK")
            .arg(block.as_millis() as u64)
            .arg("STREAMS")
            .arg(self.store.keys().queue())
            .arg(">");
        cmd
    }

    /// Waits up to `block` for new entries and starts their tasks in the same round trip, entry
    /// `i` on `workers[i]`: the blocking XREADGROUP and `lua/take.lua` go out as one pipeline,
    /// and Redis runs the script the moment the read is served, on the entries this consumer has
    /// pending above `mark` (the greatest entry id it runs or holds now: anything above was
    /// delivered since). So a task submitted to an idle dispatcher costs it no separate call to
    /// start. Delivered entries the script did not start (it is not loaded yet after a Redis
    /// restart, say) are started with [`start`](Self::start).
    pub async fn read_and_start(
        &mut self,
        workers: &[String],
        block: Duration,
        mark: &str,
    ) -> Result<Vec<Taken>> {
        let keys = self.store.keys().clone();
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        pipe.add_command(self.blocking_read(workers.len(), block));
        pipe.cmd("EVALSHA")
            .arg(TAKE.get_hash())
            .arg(2)
            .arg(keys.queue())
            .arg(keys.events())
            .arg(DISPATCHER_GROUP)
            .arg(&self.consumer)
            .arg(keys.task_prefix())
            .arg("")
            .arg(workers.len())
            .arg(workers)
            .arg("after")
            .arg(mark);
        let conn = self.blocking().await?;
        let replies = pipe.query_async::<Vec<redis::RedisResult<redis::Value>>>(conn);
        let mut replies = match bounded(block, replies).await {
            Ok(r) => r.into_iter(),
            Err(e) => {
                self.blocking = None;
                return Err(e.into());
            }
        };
        let read = replies
            .next()
            .unwrap_or_else(|| Ok(redis::Value::Nil))
            .and_then(|v| {
                redis::from_redis_value::<Option<StreamReadReply>>(v).map_err(Into::into)
            });
        let delivered: Vec<QueueEntry> = match read {
            Ok(reply) => entries_of(reply),
            Err(e) if e.code() == Some("NOGROUP") => {
                self.ensure_group().await?;
                return Ok(Vec::new());
            }
            Err(e) => return Err(e.into()),
        };
        let mut taken = match replies.next() {
            Some(Ok(v)) => redis::from_redis_value::<Vec<String>>(v)
                .map(|r| parse_taken(&r))
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let missed: Vec<QueueEntry> = delivered
            .into_iter()
            .filter(|e| !taken.iter().any(|t| t.entry.entry_id == e.entry_id))
            .collect();
        let free = &workers[taken.len().min(workers.len())..];
        let n = missed.len().min(free.len());
        if n > 0 {
            taken.extend(self.start(&free[..n], &missed[..n]).await?);
        }
        Ok(taken)
    }

    /// Reads up to `workers.len()` new entries without waiting and starts their tasks, entry
    /// `i` on `workers[i]`, in one round trip (`lua/take.lua`). Empty when the queue is.
    pub async fn take(&self, workers: &[String]) -> Result<Vec<Taken>> {
        match self.take_script(workers, &[]).await {
            Err(e) if e.is_nogroup() => {
                self.ensure_group().await?;
                Ok(Vec::new())
            }
            other => other,
        }
    }

    /// Starts the tasks of entries already read (by a blocking read whose pipelined script did
    /// not start them: see [`read_and_start`](Self::read_and_start)).
    pub async fn start(&self, workers: &[String], entries: &[QueueEntry]) -> Result<Vec<Taken>> {
        self.take_script(workers, entries).await
    }

    async fn take_script(&self, workers: &[String], entries: &[QueueEntry]) -> Result<Vec<Taken>> {
        let keys = self.store.keys();
        let mut call = TAKE.prepare_invoke();
        call.key(keys.queue())
            .key(keys.events())
            .arg(DISPATCHER_GROUP)
            .arg(&self.consumer)
            .arg(keys.task_prefix())
            .arg(crate::now_ms())
            .arg(workers.len())
            .arg(workers);
        for e in entries {
            let task = e.task_id.map(|t| t.to_string()).unwrap_or_default();
            call.arg(&e.entry_id).arg(task);
        }
        let mut c = self.store.conn();
        let reply: Vec<String> = call.invoke_async(&mut c).await?;
        Ok(parse_taken(&reply))
    }

    /// Takes over entries that another consumer (a dead dispatcher) has held for `min_idle`.
    /// Live dispatchers [`touch`](Self::touch) their entries, so only orphans are this idle.
    pub async fn reclaim(&mut self, min_idle: Duration, count: usize) -> Result<Vec<QueueEntry>> {
        let mut c = self.store.conn();
        let reply: redis::RedisResult<StreamAutoClaimReply> = redis::cmd("XAUTOCLAIM")
            .arg(self.store.keys().queue())
            .arg(DISPATCHER_GROUP)
            .arg(&self.consumer)
            .arg(min_idle.as_millis() as u64)
            .arg(&self.claim_cursor)
            .arg("COUNT")
            .arg(count.max(1))
            .query_async(&mut c)
            .await;
        match reply {
            Ok(r) => {
                self.claim_cursor = r.next_stream_id;
                Ok(r.claimed.into_iter().map(Into::into).collect())
            }
            Err(e) if e.code() == Some("NOGROUP") => {
                self.ensure_group().await?;
                Ok(Vec::new())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Resets the idle time of entries this dispatcher is running, so that nobody reclaims them.
    pub async fn touch(&self, entries: &[String]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut c = self.store.conn();
        let _: redis::Value = redis::cmd("XCLAIM")
            .arg(self.store.keys().queue())
            .arg(DISPATCHER_GROUP)
            .arg(&self.consumer)
            .arg(0)
            .arg(entries)
            .arg("JUSTID")
            .query_async(&mut c)
            .await?;
        Ok(())
    }

    /// Entries waiting in the stream (queued and in flight).
    pub async fn depth(&self) -> Result<u64> {
        let mut c = self.store.conn();
        Ok(redis::cmd("XLEN")
            .arg(self.store.keys().queue())
            .query_async(&mut c)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ids_order_as_numbers() {
        assert!(entry_order("9-0") < entry_order("10-0"));
        assert!(entry_order("10-2") < entry_order("10-11"));
        assert_eq!(entry_order("1733000000123-7"), Some((1_733_000_000_123, 7)));
        for bad in ["", "0", "x-1", "1-", "-1"] {
            assert_eq!(entry_order(bad), None, "{bad}");
        }
    }
}
