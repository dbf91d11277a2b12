//! The Events screen's timeline, like `celery events`: what happened to the platform, newest
//! first — workers joining, draining, leaving and lost, daemons that `faas up` restarted, task failures, Redis and the gateway going away and
//! coming back, and Redis coming back empty (its counters went backwards).
//!
//! It is built from what the console already receives (the event subscription, the link states
//! and the counter polls), so it costs nothing extra on the platform; heartbeats and ordinary
//! task progress are left out, they would bury the rare entries an operator looks for.

use std::collections::VecDeque;

use faas_protocol::event::{DaemonState, WorkerState};
use faas_protocol::model::TaskError;
use faas_protocol::TaskId;

use super::msg::Link;

/// Entries kept; the oldest go first.
pub const TIMELINE_CAP: usize = 2_000;

/// What an entry is about, for its colour and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Worker,
    /// A daemon `faas up` supervises (restarted, or left on purpose).
    Daemon,
    Task,
    Redis,
    Gateway,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Worker => "worker",
            Kind::Daemon => "daemon",
            Kind::Task => "task",
            Kind::Redis => "redis",
            Kind::Gateway => "gateway",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Unix ms.
    pub at: u64,
    pub kind: Kind,
    /// Something went wrong (shown in red) rather than back to normal.
    pub bad: bool,
    pub text: String,
}

#[derive(Clone, Debug, Default)]
pub struct Timeline {
    /// Newest first.
    entries: VecDeque<Entry>,
    /// The last `submitted` counter seen, to notice a Redis that came back empty.
    submitted: Option<u64>,
}

impl Timeline {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Newest first.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    /// Inserts by time: events from different publishers can arrive a little out of order, and
    /// most arrive in order, so the search from the front stops at once.
    fn push(&mut self, at: u64, kind: Kind, bad: bool, text: String) {
        let i = self
            .entries
            .iter()
            .position(|e| e.at <= at)
            .unwrap_or(self.entries.len());
        self.entries.insert(
            i,
            Entry {
                at,
                kind,
                bad,
                text,
            },
        );
        self.entries.truncate(TIMELINE_CAP);
    }

    pub fn on_worker(&mut self, worker: &str, state: WorkerState, at: u64) {
        let (bad, what) = match state {
            WorkerState::Joined => (false, "joined"),
            WorkerState::Draining => (false, "draining (no new tasks; leaves when its tasks end)"),
            WorkerState::Left => (false, "left"),
            WorkerState::Lost => (
                true,
                "lost (missed its heartbeats; its tasks are re-queued)",
            ),
            WorkerState::Heartbeat => return,
        };
        self.push(at, Kind::Worker, bad, format!("{worker} {what}"));
    }

    /// `faas up` restarted a daemon that died (bad), or one left by itself (a drained worker).
    pub fn on_daemon(&mut self, name: &str, state: DaemonState, exit: Option<&str>, at: u64) {
        let how = exit.map(|e| format!(" ({e})")).unwrap_or_default();
        let (bad, text) = match state {
            DaemonState::Restarted => (true, format!("{name} died{how}; faas up restarted it")),
            DaemonState::Exited => (false, format!("{name} left{how}; not restarted")),
        };
        self.push(at, Kind::Daemon, bad, text);
    }

    pub fn on_failure(
        &mut self,
        task: TaskId,
        worker: Option<&str>,
        error: Option<&TaskError>,
        at: u64,
    ) {
        let on = worker.map(|w| format!(" on {w}")).unwrap_or_default();
        let why = error
            .map(|e| format!(": {}: {}", e.kind, e.message))
            .unwrap_or_default();
        self.push(at, Kind::Task, true, format!("{task} FAILED{on}{why}"));
    }

    /// A connection's state changed from `old` to `new`; only going down and coming back count.
    pub fn on_link(&mut self, kind: Kind, old: &Link, new: &Link, now_ms: u64) {
        match (old, new) {
            (Link::Down { .. }, Link::Down { .. }) | (_, Link::Connecting) => {}
            (_, Link::Down { error, .. }) => {
                self.push(now_ms, kind, true, format!("unreachable: {error}"))
            }
            (Link::Down { .. }, Link::Up { .. }) => self.push(now_ms, kind, false, "back".into()),
            _ => {}
        }
    }

    /// A poll of the counters: `submitted` only grows, so a smaller one means Redis lost its
    /// data (restarted without persistence, flushed, or another instance).
    pub fn on_counters(&mut self, submitted: u64, now_ms: u64) {
        if let Some(before) = self.submitted {
            if submitted < before {
                self.push(
                    now_ms,
                    Kind::Redis,
                    true,
                    format!(
                        "reset: counters went backwards (submitted {before} → {submitted}); functions and tasks may be gone"
                    ),
                );
            }
        }
        self.submitted = Some(submitted);
    }
}
