//! The workers as the console knows them: the registry read from Redis, kept current between
//! reads by worker events, with a state derived from the age of the last heartbeat.
//!
//! A draining worker (an operator drained it, or it got SIGTERM) takes no new task and leaves
//! once its running ones end: its entry says so (`WorkerInfo::draining`) and a `draining` event
//! announces it; the row shows `draining` until the worker's `left` removes it.
//!
//! A worker that was lost is deleted from the registry by its dispatcher, so the console keeps
//! the row itself (marked lost) for a while: an operator should see that something died.

use std::collections::BTreeMap;

use faas_protocol::event::WorkerState;
use faas_protocol::model::WorkerInfo;

/// Heartbeat older than this: late. Dispatchers beat every few seconds.
pub const LATE_AFTER_MS: u64 = 10_000;
/// Heartbeat older than this: lost, even if nobody said so.
pub const LOST_AFTER_MS: u64 = 30_000;
/// How long a lost worker stays listed.
pub const FORGET_LOST_AFTER_MS: u64 = 10 * 60_000;

/// What the Workers screen shows in its state column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Online,
    /// Alive, finishing its tasks before it leaves.
    Draining,
    Late,
    Lost,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Online => "online",
            Health::Draining => "draining",
            Health::Late => "late",
            Health::Lost => "lost",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerRow {
    /// The registry entry; for a worker only known from an event, a stub with what it said.
    pub info: WorkerInfo,
    /// When a `lost` event said so.
    pub lost_at: Option<u64>,
    /// False while the row is a stub built from an event (mode and host unknown).
    pub registered: bool,
}

impl WorkerRow {
    pub fn health(&self, now_ms: u64) -> Health {
        if self.lost_at.is_some() {
            return Health::Lost;
        }
        match now_ms.saturating_sub(self.info.last_heartbeat) {
            age if age >= LOST_AFTER_MS => Health::Lost,
            age if age >= LATE_AFTER_MS => Health::Late,
            _ if self.info.draining => Health::Draining,
            _ => Health::Online,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Workers {
    rows: BTreeMap<String, WorkerRow>,
}

impl Workers {
    /// Rows by id.
    pub fn iter(&self) -> impl Iterator<Item = &WorkerRow> {
        self.rows.values()
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// A fresh read of the registry. Workers missing from it keep their last known entry and
    /// age into `lost`: a registry emptied by a Redis restart fills again at the next beats.
    pub fn on_registry(&mut self, registry: Vec<WorkerInfo>) {
        for info in registry {
            match self.rows.get_mut(&info.id) {
                Some(row) => {
                    // A heartbeat after the loss means the worker is back.
                    if row.lost_at.is_some_and(|at| info.last_heartbeat > at) {
                        row.lost_at = None;
                    }
                    row.info = info;
                    row.registered = true;
                }
                None => {
                    self.rows.insert(
                        info.id.clone(),
                        WorkerRow {
                            info,
                            lost_at: None,
                            registered: true,
                        },
                    );
                }
            }
        }
    }

    pub fn on_event(&mut self, worker: String, state: WorkerState, busy: u32, slots: u32, at: u64) {
        match state {
            WorkerState::Left => {
                self.rows.remove(&worker);
            }
            WorkerState::Lost => {
                if let Some(row) = self.rows.get_mut(&worker) {
                    row.lost_at = Some(at);
                    row.info.busy = 0;
                }
            }
            WorkerState::Joined | WorkerState::Heartbeat | WorkerState::Draining => {
                let row = self
                    .rows
                    .entry(worker.clone())
                    .or_insert_with(|| WorkerRow {
                        info: stub(worker, at),
                        lost_at: None,
                        registered: false,
                    });
                row.info.busy = busy;
                row.info.slots = slots;
                row.info.last_heartbeat = row.info.last_heartbeat.max(at);
                match state {
                    WorkerState::Joined => row.lost_at = None,
                    WorkerState::Draining => row.info.draining = true,
                    _ => {}
                }
            }
        }
    }

    /// The row at `i` in id order.
    pub fn nth(&self, i: usize) -> Option<&WorkerRow> {
        self.rows.values().nth(i)
    }

    /// Drops lost workers nobody has heard of for a long time.
    pub fn prune(&mut self, now_ms: u64) {
        self.rows.retain(|_, r| {
            let silent_since = r.lost_at.unwrap_or(r.info.last_heartbeat);
            r.health(now_ms) != Health::Lost
                || now_ms.saturating_sub(silent_since) < FORGET_LOST_AFTER_MS
        });
    }

    /// (online, late, lost) counts.
    pub fn health_counts(&self, now_ms: u64) -> (usize, usize, usize) {
        self.iter()
            .fold((0, 0, 0), |(on, late, lost), r| match r.health(now_ms) {
                Health::Online | Health::Draining => (on + 1, late, lost),
                Health::Late => (on, late + 1, lost),
                Health::Lost => (on, late, lost + 1),
            })
    }

    /// Busy and total slots of the workers that are not lost.
    pub fn slots(&self, now_ms: u64) -> (u32, u32) {
        self.iter()
            .filter(|r| r.health(now_ms) != Health::Lost)
            .fold((0, 0), |(b, t), r| (b + r.info.busy, t + r.info.slots))
    }
}

/// A worker heard of in an event before the registry was read: the rest comes with the next read.
fn stub(id: String, at: u64) -> WorkerInfo {
    WorkerInfo {
        id,
        mode: faas_protocol::model::WorkerMode::Local,
        host: String::new(),
        pid: 0,
        dispatcher: String::new(),
        slots: 0,
        busy: 0,
        tasks_done: 0,
        joined_at: at,
        last_heartbeat: at,
        draining: false,
    }
}
