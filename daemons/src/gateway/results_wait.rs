//! `POST /results/wait`: one long poll for many tasks, so that a client with thousands of
//! pending tasks needs neither one request per task nor one Redis read per task per poll.
//!
//! The body names the tasks to wait for, and may submit more in the same request:
//!
//! - `task_ids`: ids whose state is read from Redis (new to this client's polling);
//! - `cursor` + `cursor_ids`: the cursor of the previous reply and the ids of that call that
//!   are still unresolved. While this gateway's log of recently finished tasks covers the cursor
//!   (see [`super::waiters::Recent`]), an id absent from the log has not finished, and costs no
//!   Redis read; otherwise (another gateway, a restart, a lost subscription, an evicted log) they
//!   are read like `task_ids`, so a stale cursor is slower, never wrong;
//! - `executions`: `/execute_batch` items, validated all or nothing and submitted before the
//!   wait; their ids come back in `submitted`, in order, and are waited for too;
//! - `wait_ms`: how long to hold the request when none is terminal (default 0, at most
//!   `--max-wait-ms`).
//!
//! The reply comes as soon as at least one task is terminal (all those known to be terminal
//! then are included) or when the wait ends: `{"results": [<GET /result body>...], "unknown":
//! [ids never submitted or expired], "submitted": [...], "cursor": "..."}`. The reply's cursor
//! covers every id of the request and every submitted id, which become the next `cursor_ids`.
//!
//! Waiting uses the gateway's one event subscription ([`super::Waiters`]): when nothing is
//! terminal at first, every id gets a waiter, and a guard drops them all however the request
//! ends (an answer, an error, or the client going away), so the waiter map never keeps entries
//! of a finished request. A request that finds results at once registers none.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::Json;
use faas_protocol::api::{ErrorReply, ExecuteFunction, ResultReply};
use faas_protocol::TaskId;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::batch::at_index;
use super::error::ApiError;
use super::extract::JsonBody;
use super::handlers::new_task;
use super::waiters::{Cursor, Waiters, Wake};
use super::AppState;
use crate::store::TaskBrief;

/// Most ids in one request (`task_ids`, `cursor_ids` and `executions` together): bounds the
/// waiters and the Redis reads one request may cause, like `/execute_batch`'s limit.
pub const MAX_IDS: usize = super::batch::MAX_BATCH;
/// Task reads in flight at once on the shared multiplexed connection.
const READ_CONCURRENCY: usize = 128;

/// The tasks to wait for (see the module docs).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitRequest {
    #[serde(default)]
    task_ids: Vec<String>,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    cursor_ids: Vec<String>,
    #[serde(default)]
    executions: Vec<ExecuteFunction>,
    #[serde(default)]
    wait_ms: Option<u64>,
}

/// What became of them: as soon as one is terminal, or when the wait ends.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WaitReply {
    results: Vec<ResultReply>,
    unknown: Vec<TaskId>,
    submitted: Vec<TaskId>,
    cursor: String,
}

/// One long poll for many tasks, optionally submitting more in the same request.
#[utoipa::path(
    post,
    path = "/results/wait",
    tag = "tasks",
    request_body = WaitRequest,
    responses(
        (status = 200, description = "Terminal results, unknown ids, submitted ids and the next cursor", body = WaitReply),
        (status = 400, description = "Invalid input", body = ErrorReply),
        (status = 401, description = "Missing or wrong token", body = ErrorReply),
        (status = 404, description = "An execution names an unknown function", body = ErrorReply),
        (status = 413, description = "Body larger than the limit, or more than 10,000 tasks", body = ErrorReply),
        (status = 503, description = "Redis is unavailable", body = ErrorReply),
    )
)]
pub async fn wait_results(
    State(st): State<AppState>,
    JsonBody(req): JsonBody<WaitRequest>,
) -> Result<Json<WaitReply>, ApiError> {
    let count = req.task_ids.len() + req.cursor_ids.len() + req.executions.len();
    if count == 0 {
        return Err(ApiError::bad(
            "nothing to wait for: send `task_ids`, `cursor_ids` or `executions`",
        ));
    }
    if count > MAX_IDS {
        return Err(ApiError::TooLarge(format!(
            "{count} tasks in one request; at most {MAX_IDS} are accepted"
        )));
    }
    let wait = Duration::from_millis(req.wait_ms.unwrap_or(0)).min(st.config.max_wait);
    let deadline = tokio::time::Instant::now() + wait;
    let mut seen = HashSet::with_capacity(count);
    let fresh = parse_ids("task_ids", &req.task_ids, &mut seen)?;
    let covered = parse_ids("cursor_ids", &req.cursor_ids, &mut seen)?;
    let cursor = match req.cursor.as_deref() {
        Some(c) => Some(parse_cursor(c)?),
        None if !covered.is_empty() => {
            return Err(ApiError::bad(
                "`cursor_ids` needs the `cursor` of the reply they came from",
            ))
        }
        None => None,
    };
    // All or nothing, like /execute_batch: nothing is submitted unless every item is valid.
    let mut tasks = Vec::with_capacity(req.executions.len());
    for (i, execution) in req.executions.into_iter().enumerate() {
        tasks.push(new_task(&st, execution).await.map_err(|e| at_index(i, e))?);
    }

    // The reply's cursor is taken before any read and any submission: an event after it is in
    // the log for the next call; an event before it is visible to the reads below.
    let mut to_read = fresh.clone();
    let reply_cursor = {
        let recent = st.waiters.recent();
        if cursor.is_some_and(|c| recent.covers(c)) {
            to_read.extend(covered.iter().copied().filter(|&id| recent.finished(id)));
        } else {
            to_read.extend(covered.iter().copied());
        }
        recent.cursor()
    };
    let submitted = if tasks.is_empty() {
        Vec::new()
    } else {
        let ids = st.store.submit_many(&tasks).await?;
        crate::metrics::tasks_submitted(ids.len() as u64);
        // One may have finished already; its event is after the cursor.
        let recent = st.waiters.recent();
        to_read.extend(ids.iter().copied().filter(|&id| recent.finished(id)));
        ids
    };
    let mut answer = Answer::default();
    for (id, brief) in read_many(&st, &to_read).await? {
        answer.add(id, brief);
    }

    // Waiters only when there is nothing to answer yet, so a busy client's polls (which find
    // results at once) cost no registrations. Registered first and checked after: a task that
    // finished since the reads has its event after the cursor, so it is in the log, unless the
    // log stopped covering the cursor meanwhile; then every id is read again.
    let mut watch = Watch::new(st.waiters.clone());
    if answer.is_empty() && !wait.is_zero() {
        for &id in fresh.iter().chain(&covered).chain(&submitted) {
            watch.add(id);
        }
        let again: Vec<TaskId> = {
            let recent = st.waiters.recent();
            if recent.covers(reply_cursor) {
                let finished = |id: &&TaskId| recent.finished(**id);
                watch.ids.iter().filter(finished).copied().collect()
            } else {
                watch.ids.clone()
            }
        };
        for (id, brief) in read_many(&st, &again).await? {
            answer.add(id, brief);
        }
    }
    while answer.is_empty() && !wait.is_zero() {
        let Some(woken) = watch.next_until(deadline).await else {
            break;
        };
        let mut woken = vec![woken];
        // Whatever else is ready now goes into the same answer.
        while let Some(Some(more)) = watch.pending.next().now_or_never() {
            woken.push(more);
        }
        let mut reread = Vec::new();
        for (id, wake) in woken {
            match wake {
                Ok(Some(brief)) => answer.add(id, Some(brief)),
                // Woken to read the task again (a big result, a lost subscription): wait on a
                // fresh waiter, registered before the read so that no event falls in between.
                _ => {
                    watch.add(id);
                    reread.push(id);
                }
            }
        }
        for (id, brief) in read_many(&st, &reread).await? {
            answer.add(id, brief);
        }
    }
    Ok(Json(WaitReply {
        results: answer.results,
        unknown: answer.unknown,
        submitted,
        cursor: format!("{:016x}-{}", reply_cursor.epoch, reply_cursor.seq),
    }))
}

fn parse_ids(
    field: &str,
    raw: &[String],
    seen: &mut HashSet<TaskId>,
) -> Result<Vec<TaskId>, ApiError> {
    let mut ids = Vec::with_capacity(raw.len());
    for (i, s) in raw.iter().enumerate() {
        let id: TaskId = s.parse().map_err(|e: faas_protocol::ids::InvalidId| {
            ApiError::bad(format!("{field}[{i}]: {e}"))
        })?;
        // A duplicate would only be read and answered twice.
        if seen.insert(id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

fn parse_cursor(raw: &str) -> Result<Cursor, ApiError> {
    let bad = || {
        ApiError::bad(format!(
            "`cursor` {:?} is not a cursor from a /results/wait reply",
            raw.chars().take(80).collect::<String>()
        ))
    };
    let (epoch, seq) = raw.split_once('-').ok_or_else(bad)?;
    Ok(Cursor {
        epoch: u64::from_str_radix(epoch, 16).map_err(|_| bad())?,
        seq: seq.parse().map_err(|_| bad())?,
    })
}

/// Reads tasks concurrently (the multiplexed connection pipelines them).
async fn read_many(
    st: &AppState,
    ids: &[TaskId],
) -> Result<Vec<(TaskId, Option<TaskBrief>)>, ApiError> {
    let reads = futures::stream::iter(ids.iter().copied())
        .map(|id| async move { st.store.task_brief(id).await.map(|b| (id, b)) })
        .buffered(READ_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    Ok(reads.into_iter().collect::<Result<_, _>>()?)
}

/// The terminal and unknown tasks found so far.
#[derive(Default)]
struct Answer {
    results: Vec<ResultReply>,
    unknown: Vec<TaskId>,
    done: HashSet<TaskId>,
}

impl Answer {
    fn add(&mut self, id: TaskId, brief: Option<TaskBrief>) {
        match brief {
            None => {
                if self.done.insert(id) {
                    self.unknown.push(id);
                }
            }
            Some(b) if b.status.is_terminal() => {
                if self.done.insert(id) {
                    self.results.push(ResultReply {
                        task_id: id,
                        status: b.status,
                        result: b.result,
                        error: b.error,
                    });
                }
            }
            Some(_) => {}
        }
    }

    fn is_empty(&self) -> bool {
        self.done.is_empty()
    }
}

type Woken = (TaskId, Result<Wake, oneshot::error::RecvError>);
type Pending = FuturesUnordered<futures::future::BoxFuture<'static, Woken>>;

/// This request's waiters. Dropping it drops every receiver first and then removes the
/// senders they leave in the shared map (`forget` keeps senders whose receiver is alive).
struct Watch {
    waiters: Arc<Waiters>,
    ids: Vec<TaskId>,
    pending: Pending,
}

impl Watch {
    fn new(waiters: Arc<Waiters>) -> Self {
        Self {
            waiters,
            ids: Vec::new(),
            pending: FuturesUnordered::new(),
        }
    }

    fn add(&mut self, id: TaskId) {
        let rx = self.waiters.register(id);
        self.ids.push(id);
        self.pending.push(async move { (id, rx.await) }.boxed());
    }

    /// The next wake, or `None` when `deadline` passes first (or nothing is waited for).
    async fn next_until(&mut self, deadline: tokio::time::Instant) -> Option<Woken> {
        if self.pending.is_empty() {
            tokio::time::sleep_until(deadline).await;
            return None;
        }
        tokio::time::timeout_at(deadline, self.pending.next())
            .await
            .ok()
            .flatten()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.pending = FuturesUnordered::new();
        for &id in &self.ids {
            self.waiters.forget(id);
        }
    }
}
