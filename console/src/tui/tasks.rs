//! The live task list: the most recent tasks seen in events, newest first, bounded in size.
//!
//! Events carry only id, status, worker and time; the function name, attempts and times are
//! read from the task hashes in batches (`Command::Enrich`), so at a thousand events a second
//! the list costs one hash update per event and one pipelined read per tick.

use std::collections::{HashMap, HashSet, VecDeque};

use faas_protocol::{TaskId, TaskStatus};

use super::msg::TaskInfo;

/// How many tasks the list keeps; older ones fall off the end.
pub const TASK_LIST_CAP: usize = 1000;

/// One row of the task list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskRow {
    pub id: TaskId,
    pub function: Option<String>,
    pub status: TaskStatus,
    pub worker: Option<String>,
    pub attempts: Option<u32>,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
}

impl TaskRow {
    /// Run time: finished − started, or so far for a running task.
    pub fn duration_ms(&self, now_ms: u64) -> Option<u64> {
        let start = self.started_at?;
        match (self.finished_at, self.status) {
            (Some(end), _) => Some(end.saturating_sub(start)),
            (None, TaskStatus::Running) => Some(now_ms.saturating_sub(start)),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct TaskList {
    /// Newest first.
    order: VecDeque<TaskId>,
    rows: HashMap<TaskId, TaskRow>,
    /// Tasks whose hash should be read: new ones, and ones that just finished.
    to_enrich: Vec<TaskId>,
    to_enrich_set: HashSet<TaskId>,
}

impl TaskList {
    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    pub fn get(&self, id: &TaskId) -> Option<&TaskRow> {
        self.rows.get(id)
    }

    /// Rows newest first, those with status `filter` only when given.
    pub fn iter(&self, filter: Option<TaskStatus>) -> impl Iterator<Item = &TaskRow> {
        self.order
            .iter()
            .filter_map(|id| self.rows.get(id))
            .filter(move |r| filter.is_none_or(|f| r.status == f))
    }

    /// Applies a task event. Returns true when the task just became terminal.
    pub fn on_event(
        &mut self,
        id: TaskId,
        status: TaskStatus,
        worker: Option<String>,
        at: u64,
    ) -> bool {
        let is_new = !self.rows.contains_key(&id);
        if is_new {
            self.insert_new(id, status);
        }
        let row = self.rows.get_mut(&id).expect("inserted above");
        // Terminal is final: a stray late event must not resurrect a finished task.
        if !is_new && row.status.is_terminal() {
            return false;
        }
        row.status = status;
        if worker.is_some() {
            row.worker = worker;
        }
        match status {
            TaskStatus::Running => {
                row.started_at = Some(at);
                row.attempts = Some(row.attempts.map_or(1, |a| a + 1));
            }
            TaskStatus::Queued => {}
            TaskStatus::Completed | TaskStatus::Failed => row.finished_at = Some(at),
        }
        if status.is_terminal() {
            // The hash now has the final attempts and times.
            self.want_enrich(id);
        }
        status.is_terminal()
    }

    fn insert_new(&mut self, id: TaskId, status: TaskStatus) {
        self.rows.insert(
            id,
            TaskRow {
                id,
                function: None,
                status,
                worker: None,
                attempts: None,
                started_at: None,
                finished_at: None,
            },
        );
        self.order.push_front(id);
        self.want_enrich(id);
        while self.order.len() > TASK_LIST_CAP {
            if let Some(old) = self.order.pop_back() {
                self.rows.remove(&old);
            }
        }
    }

    fn want_enrich(&mut self, id: TaskId) {
        if self.to_enrich_set.insert(id) {
            self.to_enrich.push(id);
        }
    }

    /// The ids to read since the last call (each once), for one batched read.
    pub fn take_enrich(&mut self) -> Vec<TaskId> {
        self.to_enrich_set.clear();
        std::mem::take(&mut self.to_enrich)
            .into_iter()
            .filter(|id| self.rows.contains_key(id))
            .collect()
    }

    /// Fills a row from its task hash. The hash wins for what only it knows; the status is
    /// taken from it only when it is further along (an event was missed, e.g. while reconnecting).
    pub fn on_info(&mut self, id: TaskId, info: TaskInfo) {
        let Some(row) = self.rows.get_mut(&id) else {
            return;
        };
        if info.function_name.is_some() {
            row.function = info.function_name;
        }
        if info.attempts.is_some() {
            row.attempts = info.attempts;
        }
        if info.started_at.is_some() {
            row.started_at = info.started_at;
        }
        if info.finished_at.is_some() {
            row.finished_at = info.finished_at;
        }
        if let Some(status) = info.status {
            if status.is_terminal() && !row.status.is_terminal() {
                row.status = status;
            }
        }
        if info.worker.is_some() && row.worker.is_none() {
            row.worker = info.worker;
        }
    }
}
