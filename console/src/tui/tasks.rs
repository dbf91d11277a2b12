//! The task list: the gateway's history (`GET /tasks`, newest first, a page at a time) with the
//! live tasks from events merged on top, bounded in size.
//!
//! - **History.** On start the first page is read (only that one: with a million finished
//!   tasks in Redis the console still opens at once); the next page is read when the selection
//!   nears the end of what is loaded. Every page is one listing call, made by the network tasks;
//!   the answer carries the `generation` of the query it was asked for, so a page of an older
//!   filter or search is dropped. Changing the status filter or the search starts over.
//! - **Live.** Events insert tasks not yet listed on top. While the operator has a row selected
//!   the rows above it must not move, so new tasks wait in `pending` (the "N new ↑" marker) and
//!   are merged when the view follows the newest again; if too many arrived meanwhile the list
//!   is read again from the gateway instead.
//! - **Search** (`/`): terms matched against each row, every term must match: `id:PREFIX`,
//!   `fn:NAME`, `worker:ID`, `error:TYPE`, or a bare word matched against all four. The gateway
//!   filters by exact worker and function id only, so `worker:` and a `fn:` naming one known
//!   function (and a bare word that is exactly a known worker id or function name) go to the
//!   server; everything else is matched here, over the pages fetched, which the state keeps
//!   reading (up to [`SEARCH_BUDGET`] tasks) until a screenful matches.
//! - Events carry only id, status, worker and time; the function name, attempts and times of a
//!   live row are read from its task hash in batches (`Command::Enrich`), so at a thousand events
//!   a second the list costs one hash update per event and one pipelined read per tick.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use faas_protocol::api::TaskSummary;
use faas_protocol::{FunctionId, TaskId, TaskStatus};

use super::msg::TaskInfo;

/// How many tasks the list keeps; the oldest fall off the end.
pub const TASK_LIST_CAP: usize = 10_000;
/// Most task hashes read back per tick (five a second). Under thousands of tasks a second
/// reading every one back cost the console more than the events themselves; the newest rows,
/// the ones on screen, are still named, and the rest keep what their events said (status,
/// worker, times; the function's name comes from the function list).
pub const ENRICH_MAX: usize = 256;
/// Size of the first page: enough for any screen, small enough to open at once.
pub const FIRST_PAGE: usize = 100;
/// Size of the later pages read while scrolling.
pub const NEXT_PAGE: usize = 200;
/// Size of the pages read to match a search here: the rows that do not match are not kept.
pub const SEARCH_PAGE: usize = 1_000;
/// Most tasks read from the gateway for one client-side search before it stops and says so.
pub const SEARCH_BUDGET: usize = 50_000;

/// One row of the task list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskRow {
    pub id: TaskId,
    pub function: Option<String>,
    pub function_id: Option<FunctionId>,
    pub status: TaskStatus,
    pub worker: Option<String>,
    pub attempts: Option<u32>,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
    /// The error type of a failed task (`Cancelled` for a cancelled one).
    pub error: Option<String>,
}

impl TaskRow {
    fn new(id: TaskId, status: TaskStatus) -> Self {
        Self {
            id,
            function: None,
            function_id: None,
            status,
            worker: None,
            attempts: None,
            started_at: None,
            finished_at: None,
            error: None,
        }
    }

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

impl From<TaskSummary> for TaskRow {
    fn from(t: TaskSummary) -> Self {
        Self {
            id: t.task_id,
            function: Some(t.function_name),
            function_id: Some(t.function_id),
            status: t.status,
            worker: t.worker,
            attempts: Some(t.attempts),
            started_at: t.started_at,
            finished_at: t.finished_at,
            error: t.error.map(|e| e.kind),
        }
    }
}

/// One term of a search.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Term {
    /// Matches any of the others.
    Any(String),
    Id(String),
    Function(String),
    Worker(String),
    Error(String),
}

/// A `/` search: its text and the terms parsed from it (lowercased).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Search {
    pub text: String,
    pub terms: Vec<Term>,
}

impl Search {
    pub fn parse(text: &str) -> Self {
        let terms = text
            .split_whitespace()
            .map(|word| {
                let lower = word.to_lowercase();
                let (tag, value) = lower.split_once(':').unwrap_or(("", &lower));
                let value = value.to_owned();
                match tag {
                    "id" => Term::Id(value),
                    "fn" | "function" => Term::Function(value),
                    "worker" | "w" => Term::Worker(value),
                    "error" | "err" => Term::Error(value),
                    _ => Term::Any(lower),
                }
            })
            .collect();
        Self {
            text: text.trim().to_owned(),
            terms,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    pub fn matches(&self, row: &TaskRow) -> bool {
        let has = |field: &Option<String>, v: &str| {
            field.as_ref().is_some_and(|f| f.to_lowercase().contains(v))
        };
        let id = |v: &str| row.id.to_string().starts_with(v);
        self.terms.iter().all(|t| match t {
            Term::Id(v) => id(v),
            Term::Function(v) => has(&row.function, v),
            Term::Worker(v) => has(&row.worker, v),
            Term::Error(v) => has(&row.error, v),
            Term::Any(v) => {
                id(v) || has(&row.function, v) || has(&row.worker, v) || has(&row.error, v)
            }
        })
    }

    /// The filters of this search the gateway can apply (`function_id`, `worker`), given the
    /// functions and workers the console knows; the rest is matched here. The gateway's filters
    /// are exact, so only a term that names exactly one known function or worker goes to it.
    pub fn server_filters(
        &self,
        functions: &[(FunctionId, &str)],
        workers: &[&str],
    ) -> (Option<FunctionId>, Option<String>) {
        let one_function = |name: &str| {
            let mut ids = functions
                .iter()
                .filter(|(_, n)| n.eq_ignore_ascii_case(name))
                .map(|(id, _)| *id);
            match (ids.next(), ids.next()) {
                (Some(id), None) => Some(id),
                _ => None,
            }
        };
        let worker = |w: &str| {
            workers
                .iter()
                .find(|k| k.eq_ignore_ascii_case(w))
                .map(|k| (*k).to_owned())
        };
        let mut function_id = None;
        let mut worker_id = None;
        for t in &self.terms {
            match t {
                Term::Function(v) => function_id = function_id.or_else(|| one_function(v)),
                Term::Worker(v) => worker_id = worker_id.or_else(|| worker(v)),
                Term::Any(v) => {
                    function_id = function_id.or_else(|| one_function(v));
                    worker_id = worker_id.or_else(|| worker(v));
                }
                Term::Id(_) | Term::Error(_) => {}
            }
        }
        (function_id, worker_id)
    }
}

/// Where reading the history stands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Next {
    /// Nothing read yet for this query: the first page is due.
    #[default]
    Start,
    /// More is there, from this cursor.
    Cursor(String),
    /// Everything was read.
    End,
    /// Rows fell off the end of the list (the cap), so reading on would leave a hole: the list
    /// is read again from the top instead (`g`).
    Dropped,
}

/// The history reading of the current query.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// Bumped by every reset: pages of an older query are dropped.
    pub generation: u64,
    pub next: Next,
    /// A page was asked for and has not come back.
    pub in_flight: bool,
    /// Tasks read from the gateway for this query (kept or not).
    pub scanned: usize,
    /// The last page's failure, until a page arrives.
    pub error: Option<String>,
}

impl History {
    /// More can be read (now or once the page in flight is back).
    pub fn has_more(&self) -> bool {
        matches!(self.next, Next::Start | Next::Cursor(_))
    }
}

#[derive(Clone, Debug, Default)]
pub struct TaskList {
    /// Newest first.
    order: VecDeque<TaskId>,
    rows: HashMap<TaskId, TaskRow, IdHash>,
    /// Tasks that arrived while the view was held (a row selected), newest first; their rows
    /// are in `rows` so their events still apply.
    pending: VecDeque<TaskId>,
    /// More arrived while held than `pending` keeps.
    overflowed: bool,
    /// A row is selected: new tasks wait in `pending` instead of moving the rows.
    held: bool,
    pub history: History,
    /// Tasks whose hash should be read: new ones, and ones that just finished.
    to_enrich: Vec<TaskId>,
    to_enrich_set: HashSet<TaskId, IdHash>,
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

    /// Tasks waiting above the held view ("N new ↑").
    pub fn new_above(&self) -> usize {
        self.pending.len()
    }

    /// Forgets every row and starts reading the history again (a new filter or search, or a
    /// reload). Returns the new generation.
    pub fn reset(&mut self) -> u64 {
        let generation = self.history.generation + 1;
        *self = Self {
            held: self.held,
            history: History {
                generation,
                ..History::default()
            },
            ..Self::default()
        };
        generation
    }

    /// Holds the rows still (a row is selected) or lets them follow the newest again, which
    /// merges the tasks that waited. Returns true when too many waited: the caller reads the
    /// list again (`reset`).
    pub fn hold(&mut self, held: bool) -> bool {
        self.held = held;
        if held {
            return false;
        }
        if std::mem::take(&mut self.overflowed) {
            return true;
        }
        while let Some(id) = self.pending.pop_back() {
            self.order.push_front(id);
        }
        self.trim();
        false
    }

    /// The next page to ask for, if one is due and none is in flight: (generation, cursor).
    pub fn page_due(&self) -> Option<(u64, Option<String>)> {
        if self.history.in_flight {
            return None;
        }
        match &self.history.next {
            Next::Start => Some((self.history.generation, None)),
            Next::Cursor(c) => Some((self.history.generation, Some(c.clone()))),
            Next::End | Next::Dropped => None,
        }
    }

    pub fn page_asked(&mut self) {
        self.history.in_flight = true;
    }

    /// A page of the history: its tasks go below the rows already listed (those already
    /// listed are brought up to date), and only those `keep` accepts are kept. A page of
    /// another generation is dropped; returns whether it was taken.
    pub fn on_page(
        &mut self,
        generation: u64,
        page: Result<(Vec<TaskSummary>, Option<String>), String>,
        keep: impl Fn(&TaskRow) -> bool,
    ) -> bool {
        if generation != self.history.generation {
            return false;
        }
        self.history.in_flight = false;
        let (tasks, next) = match page {
            Ok(p) => p,
            Err(e) => {
                self.history.error = Some(e);
                return true;
            }
        };
        self.history.error = None;
        self.history.scanned += tasks.len();
        self.history.next = match next {
            Some(c) => Next::Cursor(c),
            None => Next::End,
        };
        for t in tasks {
            let row = TaskRow::from(t);
            if let Some(known) = self.rows.get_mut(&row.id) {
                // Listed from an event: the page names it; an event may be newer than the
                // page, so the status only moves forward.
                if row.status.is_terminal() && !known.status.is_terminal() {
                    *known = row;
                } else {
                    known.function = known.function.take().or(row.function);
                    known.function_id = known.function_id.or(row.function_id);
                    known.error = known.error.take().or(row.error);
                }
                continue;
            }
            if !keep(&row) {
                continue;
            }
            self.order.push_back(row.id);
            self.rows.insert(row.id, row);
        }
        self.trim();
        true
    }

    /// The function a task event named (a QUEUED one does), for rows never read back.
    pub fn on_function(&mut self, id: TaskId, function_id: FunctionId) {
        if let Some(row) = self.rows.get_mut(&id) {
            row.function_id.get_or_insert(function_id);
        }
    }

    /// Applies a task event. Returns true when the task just became terminal.
    pub fn on_event(
        &mut self,
        id: TaskId,
        status: TaskStatus,
        worker: Option<String>,
        at: u64,
        error: Option<&str>,
    ) -> bool {
        let is_new = !self.rows.contains_key(&id);
        if is_new {
            self.insert_new(id, status);
        }
        let Some(row) = self.rows.get_mut(&id) else {
            return false;
        };
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
            TaskStatus::Completed | TaskStatus::Failed => {
                row.finished_at = Some(at);
                if let Some(e) = error {
                    row.error = Some(e.to_owned());
                }
            }
        }
        if status.is_terminal() {
            // The hash now has the final attempts and times.
            self.want_enrich(id);
        }
        status.is_terminal()
    }

    fn insert_new(&mut self, id: TaskId, status: TaskStatus) {
        self.rows.insert(id, TaskRow::new(id, status));
        self.want_enrich(id);
        if self.held {
            self.pending.push_front(id);
            if self.pending.len() > TASK_LIST_CAP {
                self.overflowed = true;
                if let Some(old) = self.pending.pop_back() {
                    self.rows.remove(&old);
                }
            }
            return;
        }
        self.order.push_front(id);
        self.trim();
    }

    fn trim(&mut self) {
        while self.order.len() > TASK_LIST_CAP {
            if let Some(old) = self.order.pop_back() {
                self.rows.remove(&old);
                if self.history.next != Next::Start {
                    self.history.next = Next::Dropped;
                }
            }
        }
    }

    fn want_enrich(&mut self, id: TaskId) {
        if self.to_enrich_set.insert(id) {
            self.to_enrich.push(id);
        }
    }

    /// The ids to read since the last call (each once), for one batched read: the newest
    /// [`ENRICH_MAX`] of those still listed.
    pub fn take_enrich(&mut self) -> Vec<TaskId> {
        self.to_enrich_set.clear();
        // From the newest back, so that a flood costs ENRICH_MAX lookups, not one per task.
        let mut ids: Vec<TaskId> = std::mem::take(&mut self.to_enrich)
            .into_iter()
            .rev()
            .filter(|id| self.rows.contains_key(id))
            .take(ENRICH_MAX)
            .collect();
        ids.reverse();
        ids
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

/// Hashing for the maps keyed by task id, which every event looks up several times: SipHash
/// (the default, made against chosen keys) was a visible share of the console's CPU under a
/// flood of events, and task ids are the platform's own uuids. The bytes are folded with one
/// multiply per word and mixed at the end (murmur3's finaliser), so ids that differ in any
/// byte spread over the table.
type IdHash = BuildHasherDefault<IdHasher>;

#[derive(Clone, Copy, Debug, Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(23) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::IdHash;
    use faas_protocol::TaskId;
    use std::collections::HashSet;
    use std::hash::BuildHasher;

    #[test]
    fn ids_that_differ_in_one_byte_spread_over_the_low_bits() {
        // Sequential ids (as a bench makes them) must not share buckets: the table indexes by
        // the low bits of the hash.
        let build = IdHash::default();
        let buckets: HashSet<u64> = (0..4096u32)
            .map(|i| {
                let id: TaskId = format!("c0ffee00-0000-4000-8000-{i:012x}").parse().unwrap();
                build.hash_one(id) & 0xfff
            })
            .collect();
        assert!(
            buckets.len() > 2000,
            "{} of 4096 buckets used",
            buckets.len()
        );
    }
}
