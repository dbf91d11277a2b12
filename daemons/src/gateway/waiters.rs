//! Result waiters: `GET /result/{id}?wait=MS` sleeps until a task event wakes it.
//!
//! One subscription to `{prefix}:finished` (the terminal task events) per gateway fans out to
//! every waiter, so a waiting request costs no Redis round trips while it waits. A terminal event carries the task's
//! outcome when it is small, and the waiter answers with it without reading the task back;
//! otherwise (a big result, a task failed by `requeue.lua`) the waiter is woken to re-read.
//! After the subscription was lost (a Redis restart ends a RESP2 pub/sub stream), every waiter
//! is woken to re-read, since events may have been missed meanwhile.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use faas_protocol::event::Event;
use faas_protocol::TaskId;
use futures::StreamExt;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::store::TaskBrief;

/// What wakes a waiter: the terminal outcome, or `None` for "read the task again".
pub type Wake = Option<TaskBrief>;

#[derive(Debug, Default)]
pub struct Waiters {
    map: Mutex<HashMap<TaskId, Vec<oneshot::Sender<Wake>>>>,
}

impl Waiters {
    /// Registers interest in `id` reaching a terminal state. Register first, then read the
    /// task, so an event between the two is not missed.
    pub fn register(&self, id: TaskId) -> oneshot::Receiver<Wake> {
        let (tx, rx) = oneshot::channel();
        self.map
            .lock()
            .expect("waiters lock")
            .entry(id)
            .or_default()
            .push(tx);
        rx
    }

    /// Drops the senders of waiters that gave up on `id`.
    pub fn forget(&self, id: TaskId) {
        let mut map = self.map.lock().expect("waiters lock");
        if let Some(list) = map.get_mut(&id) {
            list.retain(|tx| !tx.is_closed());
            if list.is_empty() {
                map.remove(&id);
            }
        }
    }

    fn wake(&self, id: TaskId, wake: Wake) {
        let senders = self.map.lock().expect("waiters lock").remove(&id);
        for tx in senders.into_iter().flatten() {
            let _ = tx.send(wake.clone());
        }
    }

    fn wake_all(&self) {
        let all = std::mem::take(&mut *self.map.lock().expect("waiters lock"));
        for tx in all.into_values().flatten() {
            let _ = tx.send(None);
        }
    }

    pub fn len(&self) -> usize {
        self.map.lock().expect("waiters lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Subscribes to `channel` and wakes waiters on terminal task events, resubscribing with
/// back-off whenever the subscription is lost, until `shutdown`.
pub async fn listen(
    client: redis::Client,
    channel: String,
    waiters: std::sync::Arc<Waiters>,
    shutdown: CancellationToken,
) {
    let mut delay = Duration::from_millis(100);
    while !shutdown.is_cancelled() {
        // Raced against shutdown: a stopped Redis accepts the connection and never answers.
        let subscribed = tokio::select! {
            _ = shutdown.cancelled() => return,
            s = async {
                let mut pubsub = client.get_async_pubsub().await.map_err(|e| (false, e))?;
                pubsub.subscribe(&channel).await.map_err(|e| (true, e))?;
                Ok::<_, (bool, redis::RedisError)>(pubsub)
            } => s,
        };
        match subscribed {
            Ok(mut pubsub) => {
                info!(%channel, "subscribed to task events");
                delay = Duration::from_millis(100);
                // Whatever happened while unsubscribed is unknown: let waiters re-read.
                waiters.wake_all();
                let mut messages = pubsub.on_message();
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        msg = messages.next() => match msg {
                            Some(msg) => on_event(&waiters, msg.get_payload_bytes()),
                            None => break,
                        },
                    }
                }
                warn!(%channel, "event subscription lost; resubscribing");
                waiters.wake_all();
            }
            Err((true, e)) => warn!(error = %e, "cannot subscribe to task events"),
            Err((false, e)) => debug!(error = %e, "cannot connect for task events"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

fn on_event(waiters: &Waiters, payload: &[u8]) {
    match serde_json::from_slice::<Event>(payload) {
        Ok(Event::Task {
            task_id,
            status,
            outcome,
            ..
        }) if status.is_terminal() => {
            let brief = outcome.map(|o| TaskBrief {
                status,
                result: o.result,
                error: o.error,
            });
            waiters.wake(task_id, brief)
        }
        Ok(_) => {}
        Err(e) => debug!(error = %e, "ignoring an event that does not parse"),
    }
}
