//! Periodic reads of the platform's true state: the counters, the queue depth and the worker
//! registry (so the numbers at start-up are totals, not only what happened since), and batched
//! reads of task hashes to name the rows of the task list.

use std::collections::HashMap;
use std::time::Duration;

use faas_protocol::keys::fields::{stats as sf, task as tf};
use faas_protocol::keys::DISPATCHER_GROUP;
use faas_protocol::model::WorkerInfo;
use faas_protocol::{Keys, TaskId};
use redis::aio::MultiplexedConnection;
use redis::streams::StreamPendingReply;
use redis::{AsyncCommands, AsyncConnectionConfig};
use tokio::sync::mpsc;

use super::Backoff;
use crate::tui::msg::{Link, Snapshot, Stats, TaskInfo, Update};
use crate::tui::now_ms;

/// How often counters, queue and registry are read.
pub const POLL_EVERY: Duration = Duration::from_millis(500);
/// Connect and response bound of the polling connection.
const TIMEOUT: Duration = Duration::from_secs(2);
/// The task hash fields the list shows, in `TaskInfo` order.
const TASK_FIELDS: [&str; 7] = [
    tf::FUNCTION_NAME,
    tf::STATUS,
    tf::WORKER,
    tf::ATTEMPTS,
    tf::CREATED_AT,
    tf::STARTED_AT,
    tf::FINISHED_AT,
];

async fn connect(client: &redis::Client) -> redis::RedisResult<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(TIMEOUT))
        .set_response_timeout(Some(TIMEOUT));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// Reads a `Snapshot` every `POLL_EVERY`, reconnecting after failures, until the UI goes away.
pub async fn poll(client: redis::Client, keys: Keys, tx: mpsc::Sender<Update>) {
    let mut backoff = Backoff::new();
    let mut conn: Option<MultiplexedConnection> = None;
    let mut up = false;
    loop {
        let read = match conn.as_mut() {
            Some(c) => read(c, &keys).await,
            None => match connect(&client).await {
                Ok(c) => read(conn.insert(c), &keys).await,
                Err(e) => Err(e),
            },
        };
        let delay = match read {
            Ok(snapshot) => {
                if !up {
                    up = true;
                    backoff.reset();
                    let link = Link::Up { since_ms: now_ms() };
                    if tx.send(Update::RedisPoll(link)).await.is_err() {
                        return;
                    }
                }
                if tx.send(Update::Snapshot(snapshot)).await.is_err() {
                    return;
                }
                POLL_EVERY
            }
            Err(e) => {
                conn = None;
                up = false;
                let (link, delay) = backoff.fail(e);
                if tx.send(Update::RedisPoll(link)).await.is_err() {
                    return;
                }
                delay
            }
        };
        tokio::time::sleep(delay).await;
    }
}

async fn read(c: &mut MultiplexedConnection, keys: &Keys) -> redis::RedisResult<Snapshot> {
    let mut pipe = redis::pipe();
    pipe.hgetall(keys.stats())
        .xlen(keys.queue())
        .hgetall(keys.workers());
    let (stats, queue_len, workers): (HashMap<String, String>, u64, HashMap<String, String>) =
        pipe.query_async(c).await?;
    // Before any dispatcher ran there is no group: nothing is in flight.
    let pending = match c
        .xpending::<_, _, StreamPendingReply>(keys.queue(), DISPATCHER_GROUP)
        .await
    {
        Ok(r) => r.count() as u64,
        Err(e) if e.code() == Some("NOGROUP") => 0,
        Err(e) => return Err(e),
    };
    let count = |f: &str| stats.get(f).and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut workers: Vec<WorkerInfo> = workers
        .values()
        .filter_map(|v| serde_json::from_str(v).ok())
        .collect();
    workers.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Snapshot {
        stats: Stats {
            submitted: count(sf::SUBMITTED),
            completed: count(sf::COMPLETED),
            failed: count(sf::FAILED),
            requeued: count(sf::REQUEUED),
        },
        queue_len,
        pending,
        workers,
    })
}

/// Reads the task hashes of each batch of ids in one pipeline. A failed batch is dropped: the
/// rows just stay without a name until their next event.
pub async fn enrich(
    client: redis::Client,
    keys: Keys,
    mut ids_rx: mpsc::Receiver<Vec<TaskId>>,
    tx: mpsc::Sender<Update>,
) {
    let mut conn: Option<MultiplexedConnection> = None;
    while let Some(ids) = ids_rx.recv().await {
        if conn.is_none() {
            conn = connect(&client).await.ok();
        }
        let Some(c) = conn.as_mut() else {
            continue;
        };
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("HMGET").arg(keys.task(*id)).arg(&TASK_FIELDS[..]);
        }
        // Read as text and parsed leniently: one odd field must not lose the whole batch.
        type Row = Vec<Option<String>>;
        let rows: Vec<Row> = match pipe.query_async(c).await {
            Ok(rows) => rows,
            Err(_) => {
                conn = None;
                continue;
            }
        };
        let infos = ids
            .into_iter()
            .zip(rows)
            // A hash that expired (or never was) has every field missing.
            .filter(|(_, r)| r.get(1).is_some_and(Option::is_some))
            .map(|(id, row)| {
                let mut fields = row.into_iter();
                let mut text = || fields.next().flatten();
                let num = |v: Option<String>| v.and_then(|s| s.parse::<u64>().ok());
                let info = TaskInfo {
                    function_name: text(),
                    status: text().and_then(|s| s.parse().ok()),
                    worker: text().filter(|w| !w.is_empty()),
                    attempts: num(text()).map(|a| a as u32),
                    created_at: num(text()),
                    started_at: num(text()),
                    finished_at: num(text()),
                };
                (id, info)
            })
            .collect();
        if tx.send(Update::Tasks(infos)).await.is_err() {
            return;
        }
    }
}
