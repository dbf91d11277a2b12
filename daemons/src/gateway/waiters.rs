//! Result waiters: `GET /result/{id}?wait=MS` sleeps until a task event wakes it.
//!
//! One subscription to `{prefix}:finished` (the terminal task events) per gateway fans out to
//! every waiter, so a waiting request costs no Redis round trips while it waits. A terminal event carries the task's
//! outcome when it is small, and the waiter answers with it without reading the task back;
//! otherwise (a big result, a task failed by `requeue.lua`) the waiter is woken to re-read.
//! After the subscription was lost (a Redis restart ends a RESP2 pub/sub stream), every waiter
//! is woken to re-read, since events may have been missed meanwhile.
//!
//! The same fan-out keeps a bounded log of recently finished task ids ([`Recent`]), which lets
//! `POST /results/wait` (see `results_wait.rs`) tell "not finished" from "not known" for ids a
//! client already asked about, without reading them back from Redis on every call.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use faas_protocol::event::Event;
use faas_protocol::TaskId;
use futures::StreamExt;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::store::TaskBrief;

/// What wakes a waiter: the terminal outcome, or `None` for "read the task again".
pub type Wake = Option<TaskBrief>;

#[derive(Debug, Default)]
pub struct Waiters {
    map: Mutex<HashMap<TaskId, Vec<oneshot::Sender<Wake>>>>,
    recent: Mutex<Recent>,
}

/// How many finished task ids [`Recent`] remembers (about 60 bytes each).
pub const RECENT_CAPACITY: usize = 100_000;

/// The ids of the tasks whose terminal event this gateway received lately, numbered in arrival
/// order. A cursor (`epoch`, `seq`) is a point in that order: while it is valid, every task
/// that finished after it is in `finished`, so an id absent from `finished` has not finished
/// since. A cursor stops being valid when the events after it may be incomplete: the oldest
/// entries were evicted past it, or the subscription was (re)established after it (events are
/// lost while unsubscribed). `epoch` is random per gateway process, so a cursor from another
/// gateway, or from before a restart, is never valid here.
#[derive(Debug)]
pub struct Recent {
    epoch: u64,
    seq: u64,
    /// Cursors below this are invalid.
    valid_from: u64,
    order: VecDeque<(u64, TaskId)>,
    finished: HashMap<TaskId, u64>,
}

impl Default for Recent {
    fn default() -> Self {
        Self {
            epoch: uuid::Uuid::new_v4().as_u64_pair().0,
            seq: 0,
            // Nothing is valid before the first subscription.
            valid_from: u64::MAX,
            order: VecDeque::new(),
            finished: HashMap::new(),
        }
    }
}

/// A point in a gateway's [`Recent`] log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub epoch: u64,
    pub seq: u64,
}

impl Recent {
    fn push(&mut self, id: TaskId) {
        self.seq += 1;
        self.finished.insert(id, self.seq);
        self.order.push_back((self.seq, id));
        if self.order.len() > RECENT_CAPACITY {
            if let Some((seq, old)) = self.order.pop_front() {
                if self.finished.get(&old) == Some(&seq) {
                    self.finished.remove(&old);
                }
                self.valid_from = self.valid_from.max(seq);
            }
        }
    }

    /// Events may have been missed: every cursor handed out so far becomes invalid.
    fn invalidate(&mut self) {
        self.seq += 1;
        self.valid_from = self.seq;
    }

    /// The current point of the log.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            epoch: self.epoch,
            seq: self.seq,
        }
    }

    /// Whether every task that finished after `cursor` is known here.
    pub fn covers(&self, cursor: Cursor) -> bool {
        cursor.epoch == self.epoch && cursor.seq >= self.valid_from && cursor.seq <= self.seq
    }

    /// Whether `id`'s terminal event is in the log.
    pub fn finished(&self, id: TaskId) -> bool {
        self.finished.contains_key(&id)
    }
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

    /// The log of recently finished ids, locked.
    pub fn recent(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent.lock().expect("recent lock")
    }

    fn wake(&self, id: TaskId, wake: Wake) {
        // Logged before waking, so a request woken by this event finds it in the log too.
        self.recent().push(id);
        let senders = self.map.lock().expect("waiters lock").remove(&id);
        for tx in senders.into_iter().flatten() {
            let _ = tx.send(wake.clone());
        }
    }

    fn wake_all(&self) {
        self.recent().invalidate();
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
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
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
                info!(event = "subscribed", subscriber = "waiters", %channel, "subscribed to task events");
                backoff.reset();
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
                warn!(event = "subscription_lost", subscriber = "waiters", %channel, "event subscription lost; resubscribing");
                waiters.wake_all();
            }
            Err((true, e)) => {
                warn!(event = "subscribe_failed", subscriber = "waiters", error = %e, "cannot subscribe to task events")
            }
            Err((false, e)) => debug!(error = %e, "cannot connect for task events"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_valid_until_events_may_be_missing() {
        let mut recent = Recent::default();
        // Before the first subscription nothing is covered.
        assert!(!recent.covers(recent.cursor()));
        recent.invalidate(); // subscribed
        let start = recent.cursor();
        assert!(recent.covers(start));
        let a = TaskId::new();
        recent.push(a);
        assert!(recent.finished(a) && recent.covers(start));
        // A cursor of another gateway, or from the future, is not.
        assert!(!recent.covers(Cursor {
            epoch: start.epoch ^ 1,
            ..start
        }));
        assert!(!recent.covers(Cursor {
            seq: recent.cursor().seq + 1,
            ..start
        }));
        // Losing the subscription invalidates every cursor handed out so far.
        let before_loss = recent.cursor();
        recent.invalidate();
        assert!(!recent.covers(before_loss) && !recent.covers(start));
        // Evicting an entry invalidates the cursors from before it, and only those.
        let after = recent.cursor();
        for _ in 1..RECENT_CAPACITY {
            recent.push(TaskId::new());
        }
        assert!(recent.covers(after) && recent.finished(a));
        recent.push(TaskId::new());
        assert!(!recent.finished(a), "the oldest entry is evicted");
        assert!(recent.covers(after), "`a` finished before `after`");
        recent.push(TaskId::new());
        assert!(!recent.covers(after), "an event after `after` is gone");
        assert!(recent.covers(recent.cursor()));
        assert_eq!(recent.finished.len(), RECENT_CAPACITY);
    }
}
