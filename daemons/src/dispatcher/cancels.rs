//! Operator requests that reach running dispatchers over pub/sub: cancelling running tasks
//! (`Keys::cancels()`) and draining workers (`Keys::drains()`). Every dispatcher listens on
//! both channels, on one connection, and acts on the ids it owns.
//!
//! A cancelled task's id: the dispatcher that runs it kills it.
//!
//! The gateway records the cancel (FAILED, `Cancelled`) before it publishes the id, so this is
//! about the machine, not the record: the task's process group is killed (local pool, or the
//! remote worker told with `cancel`), and the run ends through the normal finish path with
//! `Cancelled`, which `finish.lua` drops when the task is already terminal. A task a slot holds
//! to run next (see "Holding the next tasks" in the dispatcher's docs) is marked instead, its
//! request taken back if it was written ahead into the child's pipe, and dropped unrun when
//! its turn comes. An id this dispatcher does not run or hold is ignored:
//! another dispatcher runs it, or nobody does.
//!
//! A drained worker's id: the dispatcher that owns the worker ([`Executor::drain`]) gives it
//! no new task, announces it `draining` in the registry and tells it to leave; the worker
//! finishes what it runs, says `bye` and is gone (`left`). Others ignore the id. A drain
//! published while nobody listened is lost; the gateway answers 503 when no dispatcher heard it.
//!
//! The subscription has a connection of its own (a subscribed connection takes no other
//! command) and is made again, with back-off, whenever it drops (a Redis restart, a killed
//! connection). A cancel published while it was down is not heard, so each time it is made
//! the dispatcher reads the records of the tasks it runs, and kills those that have already
//! ended (the gateway records a cancel before it publishes it). Nothing here blocks the
//! dispatch loop: this is its own task, and [`Executor::cancel`] never waits.

use std::sync::Arc;
use std::time::Duration;

use faas_protocol::TaskId;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{Executor, Shared};
use crate::backoff::Backoff;
use crate::executor::TakeBack;

/// Listens for cancels and drains until `shutdown`.
pub(super) async fn listen<E: Executor>(
    shared: Arc<Shared>,
    executor: Arc<E>,
    shutdown: CancellationToken,
) {
    let client = shared.store.client().clone();
    let channel = shared.store.keys().cancels();
    let drains = shared.store.keys().drains();
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    while !shutdown.is_cancelled() {
        // Raced against shutdown: a stopped Redis accepts the connection and never answers.
        let subscribed = tokio::select! {
            _ = shutdown.cancelled() => return,
            s = async {
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(&[&channel, &drains]).await?;
                Ok::<_, redis::RedisError>(pubsub)
            } => s,
        };
        match subscribed {
            Ok(mut pubsub) => {
                info!(event = "subscribed", subscriber = "cancels", %channel, %drains, "listening for cancelled tasks and drained workers");
                backoff.reset();
                catch_up(&shared, &*executor).await;
                let mut messages = pubsub.on_message();
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        msg = messages.next() => match msg {
                            Some(msg) if msg.get_channel_name() == drains => {
                                on_drain(&*executor, msg.get_payload_bytes())
                            }
                            Some(msg) => on_cancel(&shared, &*executor, msg.get_payload_bytes()),
                            None => break,
                        },
                    }
                }
                warn!(event = "subscription_lost", subscriber = "cancels", %channel, "cancel subscription lost; subscribing again");
            }
            Err(e) => debug!(error = %e, "cannot subscribe to cancelled tasks yet"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

/// Kills the tasks this dispatcher runs whose records have ended meanwhile: cancels published
/// while the subscription was down (see the module docs).
async fn catch_up<E: Executor>(shared: &Shared, executor: &E) {
    let running: Vec<TaskId> = shared
        .inflight
        .lock()
        .expect("lock")
        .values()
        .copied()
        .collect();
    if running.is_empty() {
        return;
    }
    let statuses = match shared.store.task_statuses(&running).await {
        Ok(s) => s,
        Err(e) => {
            debug!(error = %e, "cannot read the running tasks' records; cancels missed meanwhile wait for the next subscription");
            return;
        }
    };
    for (task_id, status) in running.into_iter().zip(statuses) {
        let ended = status.is_some_and(|s| s.is_terminal());
        if ended && (executor.cancel(task_id) || cancel_held(shared, executor, task_id).is_some()) {
            info!(event = "cancelling", %task_id, reason = "ended while cancels were not heard", "cancelling a running task");
        }
    }
}

/// One published id: kills its task if this dispatcher runs it.
fn on_cancel<E: Executor>(shared: &Shared, executor: &E, payload: &[u8]) {
    let Some(task_id) = std::str::from_utf8(payload)
        .ok()
        .and_then(|s| s.trim().parse::<TaskId>().ok())
    else {
        debug!("ignoring a cancel that is not a task id");
        return;
    };
    let runs_here = shared
        .inflight
        .lock()
        .expect("lock")
        .values()
        .any(|t| *t == task_id);
    if runs_here && executor.cancel(task_id) {
        info!(event = "cancelling", %task_id, "cancelling a running task");
    } else if let Some(back) = runs_here
        .then(|| cancel_held(shared, executor, task_id))
        .flatten()
    {
        info!(event = "cancelling", %task_id, held = true, request = back.as_str(), "cancelling a task held to run next: it will not run");
    } else {
        debug!(%task_id, "a cancel for a task not running here; ignored");
    }
}

/// Marks a held task cancelled, so that its slot drops it unrun, and takes its request back
/// if its slot wrote it ahead into its worker (a worker that has read it runs it, and its
/// outcome is dropped: the task is FAILED already). `None` if it is not held here.
fn cancel_held<E: Executor>(shared: &Shared, executor: &E, task_id: TaskId) -> Option<TakeBack> {
    shared
        .cancel_held(task_id)
        .then(|| executor.take_back(task_id))
}

/// One published worker id: drains it if this dispatcher owns it.
fn on_drain<E: Executor>(executor: &E, payload: &[u8]) {
    let Ok(worker) = std::str::from_utf8(payload).map(str::trim) else {
        debug!("ignoring a drain that is not text");
        return;
    };
    if executor.drain(worker) {
        info!(event = "drain_requested", %worker, "draining a worker at an operator's request");
    } else {
        debug!(%worker, "a drain for a worker not served here; ignored");
    }
}
