//! The console's whole state and how it changes: `apply` takes updates from the network,
//! `on_key` takes keys, `on_mouse` clicks and the wheel, `tick` moves the clock. Nothing here does I/O; what should happen on
//! the network is queued as `Command`s for the loop to hand to the network tasks.

use std::collections::HashMap;

use faas_protocol::api::{FunctionStats, ResultReply};
use faas_protocol::event::Event;
use faas_protocol::model::{FunctionSummary, TaskError, TaskRecord, WorkerMode};
use faas_protocol::{FunctionFormat, FunctionId, TaskId, TaskStatus};
use ratatui::crossterm::event::{
    KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use ratatui::layout::Rect;

use super::forms::{Form, FormAction, InvokeForm, RegisterForm};
use super::functions::{FunctionView, Sort, STATS_EVERY_MS};
use super::msg::{Acted, ActionFailed, Command, Link, Snapshot, TaskQuery, Update};
use super::render::hit::Hit;
use super::tasks::{
    Next, Search, TaskList, TaskRow, FIRST_PAGE, NEXT_PAGE, SEARCH_BUDGET, SEARCH_PAGE,
};
use super::throughput::Throughput;
use super::timeline::{Kind, Timeline};
use super::workers::Workers;

/// How long a notice stays in the footer.
const NOTICE_MS: u64 = 6_000;
/// Rows a page key moves.
const PAGE: usize = 10;
/// Rows one notch of the mouse wheel moves.
const WHEEL: usize = 3;
/// A search keeps reading pages until this many rows match (a screenful), or its budget is spent.
const SEARCH_WANT: usize = 60;
/// After a failed first page of the task history, the wait before asking again.
const PAGE_RETRY_MS: u64 = 3_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Tab {
    #[default]
    Overview,
    Workers,
    Tasks,
    Functions,
    Events,
}

impl Tab {
    pub const ALL: [Tab; 5] = [
        Tab::Overview,
        Tab::Workers,
        Tab::Tasks,
        Tab::Functions,
        Tab::Events,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Tab::Overview => "Overview",
            Tab::Workers => "Workers",
            Tab::Tasks => "Tasks",
            Tab::Functions => "Functions",
            Tab::Events => "Events",
        }
    }

    pub fn index(self) -> usize {
        Self::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }
}

/// The connections the header reports.
#[derive(Clone, Debug, Default)]
pub struct Links {
    pub redis_url: String,
    pub gateway_url: String,
    pub redis_events: Link,
    pub redis_poll: Link,
    pub gateway: Link,
}

impl Links {
    /// One state for Redis: up only when both the subscription and the polling are.
    pub fn redis(&self) -> Link {
        match (&self.redis_events, &self.redis_poll) {
            (Link::Up { since_ms: a }, Link::Up { since_ms: b }) => Link::Up {
                since_ms: (*a).max(*b),
            },
            (d @ Link::Down { .. }, _) | (_, d @ Link::Down { .. }) => d.clone(),
            _ => Link::Connecting,
        }
    }
}

/// A task detail being shown (Enter on the Tasks screen).
#[derive(Clone, Debug)]
pub struct Detail {
    pub id: TaskId,
    /// None while loading.
    pub record: Option<Result<TaskRecord, String>>,
    pub scroll: u16,
    /// How far the last drawing could scroll (the text's wrapped height minus the box's):
    /// only the renderer knows the box, and the keys stop there, so scrolling down past the
    /// end and back up costs no extra presses. Unknown (`u16::MAX`) until first drawn.
    pub max_scroll: std::cell::Cell<u16>,
}

impl Detail {
    pub fn new(id: TaskId) -> Self {
        Self {
            id,
            record: None,
            scroll: 0,
            max_scroll: std::cell::Cell::new(u16::MAX),
        }
    }

    fn scroll_by(&mut self, delta: i32) {
        let max = i32::from(self.max_scroll.get());
        let to = (i32::from(self.scroll).min(max) + delta).clamp(0, max);
        self.scroll = to as u16;
    }
}

#[derive(Clone, Debug, Default)]
pub struct TasksView {
    /// Sent to the gateway as `status=`.
    pub filter: Option<TaskStatus>,
    /// The applied `/` search.
    pub search: Search,
    /// The `/` prompt while it is being typed.
    pub search_input: Option<String>,
    /// The selected task; None follows the newest (and lets new tasks in on top).
    pub selected: Option<TaskId>,
    pub detail: Option<Detail>,
    /// The first row the last drawing showed: only the renderer knows the height, and keeping
    /// it makes the rows stay put while the selection moves inside the box.
    pub offset: std::cell::Cell<usize>,
    /// When the first page may be asked for again after a failure.
    pub page_retry_at_ms: u64,
}

/// The last invocation made from the form, followed until its result arrives.
#[derive(Clone, Debug)]
pub struct Invocation {
    pub function: String,
    pub task_id: Option<TaskId>,
    pub status: Option<TaskStatus>,
    pub result: Option<serde_json::Value>,
    pub error: Option<TaskError>,
    /// The gateway refused or could not be reached.
    pub failure: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct FunctionsView {
    /// In the order of `sort`.
    pub list: Vec<FunctionSummary>,
    /// The last statistics read of each function.
    pub stats: HashMap<FunctionId, FunctionStats>,
    pub sort: Sort,
    /// A round of statistics is being read.
    pub stats_in_flight: bool,
    /// When the next round is due (while the screen is shown).
    pub stats_due_ms: u64,
    /// The function opened with Enter.
    pub view: Option<FunctionView>,
    /// A list has arrived from the gateway at least once.
    pub loaded: bool,
    pub selected: usize,
    pub form: Option<Form>,
    pub invocation: Option<Invocation>,
}

/// What a yes to the footer's question does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pending {
    /// Quit; under `faas up` that stops the whole platform.
    Quit,
    /// Close the open form, losing what was typed.
    DiscardForm,
    /// Drain this worker (`D` on the Workers screen).
    Drain(String),
    /// Run an ended task again as a new task.
    Retry(TaskId),
    /// Cancel a queued or running task.
    Cancel(TaskId),
    /// Cancel every queued task.
    Purge,
    /// Delete a function (its queued tasks are cancelled).
    DeleteFunction(FunctionId),
}

/// A question in the footer. Only `y` answers yes: any other key answers no, so a stray key
/// never stops a platform or loses typed source.
#[derive(Clone, Debug)]
pub struct Confirm {
    pub prompt: String,
    pub action: Pending,
}

#[derive(Clone, Debug)]
pub struct Notice {
    pub text: String,
    pub error: bool,
    pub until_ms: u64,
}

/// Everything the screens show.
#[derive(Debug, Default)]
pub struct App {
    pub now_ms: u64,
    pub tab: Tab,
    pub help: bool,
    pub quit: bool,
    /// Started by `faas up`: quitting stops every daemon too, so it is asked first.
    pub supervised: bool,
    /// A question waiting for y/n in the footer.
    pub confirm: Option<Confirm>,
    pub links: Links,
    /// The last poll of counters, queue and registry; None before the first one.
    pub snapshot: Option<Snapshot>,
    pub throughput: Throughput,
    pub workers: Workers,
    pub tasks: TaskList,
    pub tasks_view: TasksView,
    pub functions: FunctionsView,
    /// The selected row of the Workers screen (in id order, clamped to the rows there are).
    pub workers_selected: usize,
    pub timeline: Timeline,
    /// The Events screen's scroll position (entries from the newest).
    pub timeline_scroll: usize,
    pub notice: Option<Notice>,
    /// The screen size of the last frame drawn: mouse positions are mapped through it.
    pub area: std::cell::Cell<Rect>,
    outbox: Vec<Command>,
    /// Something changed since the last drawing (an update, a notice gone).
    dirty: bool,
}

impl App {
    pub fn new(redis_url: &str, gateway_url: &str, now_ms: u64) -> Self {
        let mut app = Self {
            now_ms,
            ..Self::default()
        };
        app.links.redis_url = redis_url.to_owned();
        app.links.gateway_url = gateway_url.to_owned();
        app
    }

    /// Whether anything changed since the last call: the loop skips drawing an idle tick.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// Commands queued since the last call, oldest first.
    pub fn take_commands(&mut self) -> Vec<Command> {
        std::mem::take(&mut self.outbox)
    }

    /// Moves the clock and batches the task reads the last events asked for.
    pub fn tick(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
        if self.notice.as_ref().is_some_and(|n| n.until_ms <= now_ms) {
            self.notice = None;
            self.dirty = true;
        }
        self.workers.prune(now_ms);
        if self.tasks.history.next == Next::Start && now_ms >= self.tasks_view.page_retry_at_ms {
            self.request_page();
        }
        self.request_stats();
        let ids = self.tasks.take_enrich();
        if !ids.is_empty() {
            self.outbox.push(Command::Enrich(ids));
        }
    }

    fn notify(&mut self, text: impl Into<String>, error: bool) {
        self.notice = Some(Notice {
            text: text.into(),
            error,
            until_ms: self.now_ms + NOTICE_MS,
        });
    }

    pub fn apply(&mut self, update: Update) {
        // A poll that found everything as it was changes nothing on screen.
        self.dirty |= !matches!(&update, Update::Snapshot(s) if self.snapshot.as_ref() == Some(s));
        match update {
            Update::RedisEvents(l) => {
                let before = self.links.redis();
                self.links.redis_events = l;
                let now = self.links.redis();
                self.timeline
                    .on_link(Kind::Redis, &before, &now, self.now_ms);
            }
            Update::RedisPoll(l) => {
                let before = self.links.redis();
                self.links.redis_poll = l;
                let now = self.links.redis();
                self.timeline
                    .on_link(Kind::Redis, &before, &now, self.now_ms);
            }
            Update::Gateway(l) => {
                self.timeline
                    .on_link(Kind::Gateway, &self.links.gateway, &l, self.now_ms);
                let back = matches!(self.links.gateway, Link::Down { .. }) && l.is_up();
                self.links.gateway = l;
                if back && self.tasks_view.selected.is_none() {
                    // Events were missed while it was away (and Redis may have come back
                    // empty): the history is read again, unless the operator is reading it.
                    self.reload_tasks();
                } else if self.tasks.history.next == Next::Start {
                    // The history's first page as soon as the gateway answers.
                    self.request_page();
                }
            }
            Update::Event(ev) => self.on_event(ev),
            Update::Events(evs) => {
                for ev in evs {
                    self.on_event(ev);
                }
            }
            Update::Snapshot(s) => {
                self.timeline.on_counters(s.stats.submitted, self.now_ms);
                self.workers.on_registry(s.workers.clone());
                self.snapshot = Some(s);
            }
            Update::Tasks(infos) => {
                for (id, info) in infos {
                    self.tasks.on_info(id, info);
                }
            }
            Update::Functions(list) => self.on_functions(list),
            Update::Registered(r) => self.on_registered(r),
            Update::Invoked(r) => self.on_invoked(r),
            Update::InvokeResult(r) => self.on_invoke_result(r),
            Update::TaskDetail(id, r) => {
                if let Some(d) = self.tasks_view.detail.as_mut().filter(|d| d.id == id) {
                    d.record = Some(r);
                }
            }
            Update::Drained(worker, r) => match r {
                Ok(()) => self.notify(
                    format!("draining {worker}: it finishes its tasks, then leaves"),
                    false,
                ),
                Err(e) => self.notify(format!("cannot drain {worker}: {e}"), true),
            },
            Update::Acted(r) => self.on_acted(r),
            Update::FunctionStats(details) => {
                self.functions.stats_in_flight = false;
                for d in details {
                    if let Some(v) = self
                        .functions
                        .view
                        .as_mut()
                        .filter(|v| v.id == d.function_id)
                    {
                        v.detail = Some(d.clone());
                    }
                    self.functions.stats.insert(d.function_id, d.stats);
                }
                self.resort_functions();
            }
            Update::FunctionFailures(id, r) => {
                if let Some(v) = self.functions.view.as_mut().filter(|v| v.id == id) {
                    v.failures = Some(r);
                }
            }
            Update::TaskPage { generation, page } => {
                let failed = page.is_err();
                let search = &self.tasks_view.search;
                if self.tasks.on_page(generation, page, |r| search.matches(r)) {
                    if failed {
                        self.tasks_view.page_retry_at_ms = self.now_ms + PAGE_RETRY_MS;
                    } else {
                        self.fill_search();
                    }
                }
            }
        }
    }

    /// The footer says how an action ended.
    fn on_acted(&mut self, r: Result<Acted, ActionFailed>) {
        match r {
            Ok(Acted::Retried { of, new }) => {
                self.notify(format!("retried {} as {}", short(of), short(new)), false)
            }
            Ok(Acted::Cancelled { task, was }) => {
                self.notify(format!("cancelled {} (was {was})", short(task)), false);
                if self
                    .tasks_view
                    .detail
                    .as_ref()
                    .is_some_and(|d| d.id == task)
                {
                    self.outbox.push(Command::FetchTask(task));
                }
            }
            Ok(Acted::Purged(n)) => {
                self.notify(format!("purged: {n} queued task(s) cancelled"), false)
            }
            Ok(Acted::Deleted {
                function,
                cancelled,
            }) => {
                let name = self
                    .functions
                    .list
                    .iter()
                    .find(|f| f.function_id == function)
                    .map_or_else(|| short(function), |f| f.name.clone());
                self.functions.list.retain(|f| f.function_id != function);
                self.select_function(None);
                self.notify(
                    format!("deleted {name}: {cancelled} queued task(s) cancelled"),
                    false,
                );
                self.outbox.push(Command::RefreshFunctions);
            }
            Err(e) => {
                let text = match (e.conflict, e.http) {
                    (Some(s), Some(code)) if s.is_terminal() => {
                        format!("{}: already {s} ({code})", e.action)
                    }
                    (Some(s), Some(code)) => format!("{}: still {s} ({code})", e.action),
                    (None, Some(code)) => format!("{}: {} ({code})", e.action, e.message),
                    _ => format!("{} failed: {}", e.action, e.message),
                };
                self.notify(text, true);
            }
        }
    }

    /// Asks for the next page of the task history, if one is due, none is in flight and the
    /// gateway is up (otherwise `tick` asks once it is).
    fn request_page(&mut self) {
        if !self.links.gateway.is_up() {
            return;
        }
        let Some((generation, cursor)) = self.tasks.page_due() else {
            return;
        };
        let search = &self.tasks_view.search;
        let limit = match (&cursor, search.is_empty()) {
            (_, false) => SEARCH_PAGE,
            (None, true) => FIRST_PAGE,
            (Some(_), true) => NEXT_PAGE,
        };
        let functions: Vec<_> = self
            .functions
            .list
            .iter()
            .map(|f| (f.function_id, f.name.as_str()))
            .collect();
        let workers: Vec<_> = self.workers.iter().map(|w| w.info.id.as_str()).collect();
        let (function_id, worker) = search.server_filters(&functions, &workers);
        self.outbox.push(Command::ListTasks(TaskQuery {
            generation,
            status: self.tasks_view.filter,
            function_id,
            worker,
            cursor,
            limit,
        }));
        self.tasks.page_asked();
    }

    /// A search matched here reads on until a screenful matches or its budget is spent.
    fn fill_search(&mut self) {
        if !self.tasks_view.search.is_empty()
            && self.tasks.history.scanned < SEARCH_BUDGET
            && self.visible_tasks().take(SEARCH_WANT).count() < SEARCH_WANT
        {
            self.request_page();
        }
    }

    /// The rows the Tasks screen lists: the status filter and the search applied, newest first.
    pub fn visible_tasks(&self) -> impl Iterator<Item = &TaskRow> {
        let search = &self.tasks_view.search;
        self.tasks
            .iter(self.tasks_view.filter)
            .filter(move |r| search.matches(r))
    }

    /// Selects a task (holding the rows still) or follows the newest again (letting the tasks
    /// that arrived meanwhile in, or reading the list again when too many did).
    fn select_task(&mut self, id: Option<TaskId>) {
        self.tasks_view.selected = id;
        if self.tasks.hold(id.is_some()) {
            self.reload_tasks();
        }
    }

    /// Starts the task list over from the gateway's newest (a new filter or search).
    fn reload_tasks(&mut self) {
        self.tasks_view.selected = None;
        self.tasks_view.offset.set(0);
        self.tasks.hold(false);
        self.tasks.reset();
        self.tasks_view.page_retry_at_ms = 0;
        self.request_page();
    }

    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Task {
                task_id,
                function_id,
                status,
                worker,
                at,
                outcome,
            } => {
                if status == TaskStatus::Failed {
                    let error = outcome.as_ref().and_then(|o| o.error.as_ref());
                    self.timeline
                        .on_failure(task_id, worker.as_deref(), error, at);
                }
                let error = outcome
                    .as_ref()
                    .and_then(|o| o.error.as_ref())
                    .map(|e| e.kind.as_str());
                let finished = self.tasks.on_event(task_id, status, worker, at, error);
                if let Some(fid) = function_id {
                    self.tasks.on_function(task_id, fid);
                }
                if finished {
                    self.throughput
                        .record(self.now_ms, status == TaskStatus::Failed);
                }
                if let Some(inv) = self.invocation_for(task_id) {
                    // The result itself comes from the gateway; events only move the status.
                    if !inv.status.is_some_and(TaskStatus::is_terminal) {
                        inv.status = Some(status);
                    }
                }
                // An open detail is re-read when its task moves, so the result shows up.
                if self
                    .tasks_view
                    .detail
                    .as_ref()
                    .is_some_and(|d| d.id == task_id)
                {
                    self.outbox.push(Command::FetchTask(task_id));
                }
            }
            Event::Worker {
                worker,
                state,
                busy,
                slots,
                at,
            } => {
                self.timeline.on_worker(&worker, state, at);
                self.workers.on_event(worker, state, busy, slots, at)
            }
            Event::Daemon {
                name,
                state,
                exit,
                at,
            } => self.timeline.on_daemon(&name, state, exit.as_deref(), at),
        }
    }

    fn invocation_for(&mut self, id: TaskId) -> Option<&mut Invocation> {
        self.functions
            .invocation
            .as_mut()
            .filter(|i| i.task_id == Some(id))
    }

    fn on_functions(&mut self, list: Vec<FunctionSummary>) {
        let selected = self.selected_function().map(|f| f.function_id);
        self.functions.list = list;
        self.functions.loaded = true;
        self.sort_functions(selected);
    }

    /// Sorts the function list by the chosen column; the selection stays on its function.
    fn resort_functions(&mut self) {
        let selected = self.selected_function().map(|f| f.function_id);
        self.sort_functions(selected);
    }

    fn sort_functions(&mut self, selected: Option<FunctionId>) {
        let fns = &mut self.functions;
        fns.sort.apply(&mut fns.list, &fns.stats);
        self.select_function(selected);
    }

    /// A round of function statistics while the Functions screen is shown, one at a time; the
    /// open function view's failures are read again with it.
    fn request_stats(&mut self) {
        let fns = &mut self.functions;
        if self.tab != Tab::Functions
            || fns.stats_in_flight
            || fns.list.is_empty()
            || self.now_ms < fns.stats_due_ms
            || !self.links.gateway.is_up()
        {
            return;
        }
        fns.stats_in_flight = true;
        fns.stats_due_ms = self.now_ms + STATS_EVERY_MS;
        let ids = fns.list.iter().map(|f| f.function_id).collect();
        self.outbox.push(Command::FunctionStats(ids));
        if let Some(v) = &fns.view {
            self.outbox.push(Command::FunctionFailures(v.id));
        }
    }

    fn select_function(&mut self, id: Option<FunctionId>) {
        let list = &self.functions.list;
        self.functions.selected = id
            .and_then(|id| list.iter().position(|f| f.function_id == id))
            .unwrap_or(self.functions.selected)
            .min(list.len().saturating_sub(1));
    }

    pub fn selected_function(&self) -> Option<&FunctionSummary> {
        self.functions.list.get(self.functions.selected)
    }

    fn on_registered(&mut self, r: Result<FunctionSummary, String>) {
        match r {
            Ok(f) => {
                if matches!(self.functions.form, Some(Form::Register(_))) {
                    self.functions.form = None;
                }
                self.notify(
                    format!("registered {} ({}): i invokes it", f.name, f.function_id),
                    false,
                );
                let id = f.function_id;
                if !self.functions.list.iter().any(|x| x.function_id == id) {
                    self.functions.list.insert(0, f);
                }
                self.select_function(Some(id));
                self.outbox.push(Command::RefreshFunctions);
            }
            Err(e) => match &mut self.functions.form {
                Some(Form::Register(form)) => {
                    form.sending = false;
                    form.error = Some(e);
                }
                _ => self.notify(format!("registration failed: {e}"), true),
            },
        }
    }

    fn on_invoked(&mut self, r: Result<TaskId, String>) {
        let known = match &r {
            Ok(id) => self.tasks.get(id).map(|t| t.status),
            Err(_) => None,
        };
        let Some(inv) = self
            .functions
            .invocation
            .as_mut()
            .filter(|i| i.task_id.is_none() && i.failure.is_none())
        else {
            return;
        };
        match r {
            Ok(task_id) => {
                inv.task_id = Some(task_id);
                // An event may have beaten the HTTP reply.
                inv.status = Some(known.unwrap_or(TaskStatus::Queued));
            }
            Err(e) => inv.failure = Some(e),
        }
    }

    fn on_invoke_result(&mut self, r: ResultReply) {
        if let Some(inv) = self.invocation_for(r.task_id) {
            inv.status = Some(r.status);
            inv.result = Some(r.result);
            inv.error = r.error;
        }
    }

    /// Handles one key press.
    pub fn on_key(&mut self, key: KeyEvent) {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let interrupt = ctrl && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('q'));
        if let Some(confirm) = self.confirm.take() {
            match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') if !ctrl => self.confirmed(confirm.action),
                // A second Ctrl-C while asked to stop: the operator means it.
                _ if interrupt && confirm.action == Pending::Quit => self.quit = true,
                _ => self.declined(confirm.action),
            }
            return;
        }
        if interrupt {
            self.request_quit();
            return;
        }
        if self.functions.form.is_some() {
            self.form_key(key);
            return;
        }
        if self.tasks_view.search_input.is_some() {
            self.search_key(key);
            return;
        }
        if self.help {
            // Every key closes help, `q` included: it steps back, it does not quit.
            self.help = false;
            return;
        }
        if self.tasks_view.detail.is_some() {
            self.detail_key(key);
            return;
        }
        if self.tab == Tab::Functions && self.functions.view.is_some() {
            // The function view steps back on Esc, q, Enter; its data refreshes on its own.
            if matches!(
                key.code,
                KeyCode::Esc | KeyCode::Backspace | KeyCode::Enter | KeyCode::Char('q')
            ) {
                self.functions.view = None;
            }
            return;
        }
        match key.code {
            KeyCode::Char('q') => self.request_quit(),
            KeyCode::Char('?') => self.help = true,
            KeyCode::Char('P') => self.ask_purge(),
            KeyCode::Tab | KeyCode::Right => self.switch_tab(self.tab.index() + 1),
            KeyCode::BackTab | KeyCode::Left => {
                self.switch_tab(self.tab.index() + Tab::ALL.len() - 1)
            }
            KeyCode::Char(c @ '1'..='5') => self.switch_tab(c as usize - '1' as usize),
            _ => match self.tab {
                Tab::Tasks => self.tasks_key(key),
                Tab::Functions => self.functions_key(key),
                Tab::Events => self.events_key(key),
                Tab::Workers => self.workers_key(key),
                Tab::Overview => {}
            },
        }
    }

    /// Handles one mouse event: a left click on a tab switches to it, on a row selects it; the
    /// wheel scrolls the list, the timeline or the open detail. Returns whether anything
    /// changed (pointer moves do nothing and need no redraw). A question, a form or the help
    /// wait for keys and ignore the mouse.
    pub fn on_mouse(&mut self, ev: MouseEvent) -> bool {
        if self.confirm.is_some()
            || self.functions.form.is_some()
            || self.help
            || self.tasks_view.search_input.is_some()
        {
            return false;
        }
        // A function's view lists no rows to click or scroll; it steps back on its keys.
        if self.tab == Tab::Functions && self.functions.view.is_some() {
            return false;
        }
        let step = |code| KeyEvent::new(code, KeyModifiers::NONE);
        let wheel = match ev.kind {
            MouseEventKind::ScrollDown => Some(KeyCode::Down),
            MouseEventKind::ScrollUp => Some(KeyCode::Up),
            MouseEventKind::Down(MouseButton::Left) => None,
            _ => return false,
        };
        if let Some(code) = wheel {
            // The same steps as the arrow keys, so the wheel stops where they do.
            for _ in 0..WHEEL {
                if self.tasks_view.detail.is_some() && self.tab == Tab::Tasks {
                    self.detail_key(step(code));
                } else {
                    self.list_key(step(code));
                }
            }
            return true;
        }
        if self.tasks_view.detail.is_some() && self.tab == Tab::Tasks {
            return false;
        }
        match super::render::hit::hit(self, ev.column, ev.row) {
            Hit::Tab(tab) => self.switch_tab(tab.index()),
            Hit::Row(i) => self.select_row(i),
            Hit::Body | Hit::Nothing => return false,
        }
        true
    }

    /// A key for the current screen's list (the wheel's steps).
    fn list_key(&mut self, key: KeyEvent) {
        match self.tab {
            Tab::Tasks => self.tasks_key(key),
            Tab::Functions => self.functions_key(key),
            Tab::Events => self.events_key(key),
            Tab::Workers => self.workers_key(key),
            Tab::Overview => {}
        }
    }

    /// Selects row `i` of the current screen's list (a click).
    fn select_row(&mut self, i: usize) {
        match self.tab {
            Tab::Workers => self.workers_selected = i,
            Tab::Functions => self.functions.selected = i,
            Tab::Tasks => {
                // Row 0 is the newest: selecting it follows the newest, as `g` does.
                let ids: Vec<TaskId> = self.visible_tasks().map(|r| r.id).collect();
                let id = ids.get(i).copied().filter(|_| i > 0);
                self.task_moved(id, &ids);
            }
            Tab::Overview | Tab::Events => {}
        }
    }

    /// `q` or Ctrl-C: alone the console just quits; under `faas up` quitting stops the
    /// platform, so it asks first.
    fn request_quit(&mut self) {
        if self.supervised {
            self.confirm = Some(Confirm {
                prompt: "stop the platform (every daemon faas up started)? y/n".into(),
                action: Pending::Quit,
            });
        } else {
            self.quit = true;
        }
    }

    fn confirmed(&mut self, action: Pending) {
        match action {
            Pending::Quit => self.quit = true,
            Pending::DiscardForm => self.functions.form = None,
            Pending::Drain(worker) => self.outbox.push(Command::DrainWorker(worker)),
            Pending::Retry(id) => self.outbox.push(Command::Retry(id)),
            Pending::Cancel(id) => self.outbox.push(Command::Cancel(id)),
            Pending::Purge => self.outbox.push(Command::Purge),
            Pending::DeleteFunction(id) => self.outbox.push(Command::DeleteFunction(id)),
        }
    }

    fn declined(&mut self, action: Pending) {
        let text = match action {
            Pending::Quit => "still running".to_owned(),
            Pending::DiscardForm => "kept the form".to_owned(),
            Pending::Drain(worker) => format!("{worker} not drained"),
            Pending::Retry(_) => "not retried".to_owned(),
            Pending::Cancel(_) => "not cancelled".to_owned(),
            Pending::Purge => "the queue is as it was".to_owned(),
            Pending::DeleteFunction(_) => "not deleted".to_owned(),
        };
        self.notify(text, false);
    }

    /// The Workers screen: move the selection, `D` drains the selected worker after a y/n.
    fn workers_key(&mut self, key: KeyEvent) {
        let last = self.workers.len().saturating_sub(1);
        let sel = self.workers_selected.min(last);
        self.workers_selected = match key.code {
            KeyCode::Down | KeyCode::Char('j') => (sel + 1).min(last),
            KeyCode::Up | KeyCode::Char('k') => sel.saturating_sub(1),
            KeyCode::PageDown => (sel + PAGE).min(last),
            KeyCode::PageUp => sel.saturating_sub(PAGE),
            KeyCode::Home | KeyCode::Char('g') => 0,
            KeyCode::End | KeyCode::Char('G') => last,
            _ => sel,
        };
        if key.code == KeyCode::Char('D') {
            match self.selected_worker().map(|w| (w.info.id.clone(), w.info.mode)) {
                Some((_, WorkerMode::Local)) => self.notify(
                    "a local pool cannot be drained apart from its dispatcher: stop the dispatcher",
                    true,
                ),
                Some((id, _)) => self.ask(
                    format!(
                        "drain worker {id}? it finishes its running tasks, takes no new ones and leaves. y/n"
                    ),
                    Pending::Drain(id),
                ),
                None => self.notify("no worker selected", true),
            }
        }
    }

    /// The worker the Workers screen highlights.
    pub fn selected_worker(&self) -> Option<&super::workers::WorkerRow> {
        let last = self.workers.len().checked_sub(1)?;
        self.workers.nth(self.workers_selected.min(last))
    }

    fn ask(&mut self, prompt: String, action: Pending) {
        self.confirm = Some(Confirm { prompt, action });
    }

    /// How the prompts name a task: its short id, function and status as the list knows them.
    fn task_label(&self, id: TaskId) -> String {
        match self.tasks.get(&id) {
            Some(t) => format!(
                "{} ({}, {})",
                short(id),
                t.function.as_deref().unwrap_or("?"),
                t.status
            ),
            None => short(id),
        }
    }

    fn ask_retry(&mut self, id: TaskId) {
        let prompt = format!(
            "retry task {}? it runs again as a new task y/n",
            self.task_label(id)
        );
        self.ask(prompt, Pending::Retry(id));
    }

    fn ask_cancel(&mut self, id: TaskId) {
        let prompt = format!(
            "cancel task {}? it ends FAILED (Cancelled), a running one is killed y/n",
            self.task_label(id)
        );
        self.ask(prompt, Pending::Cancel(id));
    }

    fn ask_purge(&mut self) {
        let queued = self
            .snapshot
            .as_ref()
            .map(|s| format!(" ({} waiting now)", s.queue_len.saturating_sub(s.pending)))
            .unwrap_or_default();
        let prompt = format!(
            "purge the queue? every QUEUED task{queued} is cancelled, running ones go on y/n"
        );
        self.ask(prompt, Pending::Purge);
    }

    fn switch_tab(&mut self, i: usize) {
        self.tab = Tab::ALL[i % Tab::ALL.len()];
        if self.tab == Tab::Functions {
            self.outbox.push(Command::RefreshFunctions);
            // Fresh statistics at once, then every few seconds while shown.
            self.functions.stats_due_ms = 0;
            self.request_stats();
        }
    }

    fn tasks_key(&mut self, key: KeyEvent) {
        let ids: Vec<TaskId> = self.visible_tasks().map(|r| r.id).collect();
        let current = self
            .tasks_view
            .selected
            .and_then(|s| ids.iter().position(|id| *id == s))
            .unwrap_or(0);
        let last = ids.len().saturating_sub(1);
        let to = |i: usize| ids.get(i.min(last)).copied();
        // Back at the top: follow the newest again.
        let up = |by: usize| current.checked_sub(by).filter(|i| *i > 0).and_then(to);
        let moved_to = match key.code {
            KeyCode::Down | KeyCode::Char('j') => to(current + 1),
            KeyCode::Up | KeyCode::Char('k') => up(1),
            KeyCode::PageDown => to(current + PAGE),
            KeyCode::PageUp => up(PAGE),
            KeyCode::Home | KeyCode::Char('g') => None,
            KeyCode::End | KeyCode::Char('G') => to(last),
            KeyCode::Char('f') => {
                self.tasks_view.filter = next_filter(self.tasks_view.filter);
                self.reload_tasks();
                return;
            }
            KeyCode::Char('/') => {
                self.tasks_view.search_input = Some(self.tasks_view.search.text.clone());
                return;
            }
            KeyCode::Esc if !self.tasks_view.search.is_empty() => {
                self.tasks_view.search = Search::default();
                self.reload_tasks();
                return;
            }
            KeyCode::Enter => {
                if let Some(id) = ids.get(current).copied() {
                    self.tasks_view.detail = Some(Detail::new(id));
                    self.outbox.push(Command::FetchTask(id));
                }
                return;
            }
            KeyCode::Char('r') => {
                if let Some(id) = ids.get(current).copied() {
                    self.ask_retry(id);
                }
                return;
            }
            KeyCode::Char('x') => {
                if let Some(id) = ids.get(current).copied() {
                    self.ask_cancel(id);
                }
                return;
            }
            _ => return,
        };
        self.task_moved(moved_to, &ids);
    }

    /// The task selection moved (a key or a click) to `moved_to` of the shown rows `ids`
    /// (`None`: back to following the newest).
    fn task_moved(&mut self, moved_to: Option<TaskId>, ids: &[TaskId]) {
        self.select_task(moved_to);
        if moved_to.is_none() && self.tasks.history.next == Next::Dropped {
            // Back at the top of a list whose end fell off: read it again, so it has no hole.
            self.reload_tasks();
            return;
        }
        // Near the end of what is loaded: read the next page in the background.
        let at = moved_to
            .and_then(|s| ids.iter().position(|id| *id == s))
            .unwrap_or(0);
        if at + 2 * PAGE >= ids.len() {
            self.request_page();
        }
    }

    /// The `/` prompt: typing edits it, Enter searches (empty: no search), Esc keeps the
    /// search there was.
    fn search_key(&mut self, key: KeyEvent) {
        let Some(input) = self.tasks_view.search_input.as_mut() else {
            return;
        };
        match key.code {
            KeyCode::Esc => self.tasks_view.search_input = None,
            KeyCode::Enter => {
                let search = Search::parse(input);
                self.tasks_view.search_input = None;
                if search != self.tasks_view.search {
                    self.tasks_view.search = search;
                    self.reload_tasks();
                }
            }
            KeyCode::Backspace => {
                input.pop();
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => input.push(c),
            _ => {}
        }
    }

    /// The row the Tasks screen highlights: the selected task, or the newest.
    pub fn selected_task_index(&self) -> usize {
        let Some(sel) = self.tasks_view.selected else {
            return 0;
        };
        self.visible_tasks().position(|r| r.id == sel).unwrap_or(0)
    }

    fn detail_key(&mut self, key: KeyEvent) {
        let Some(detail) = self.tasks_view.detail.as_mut() else {
            return;
        };
        match key.code {
            // `q` steps back like Esc: quitting from inside a view surprised operators.
            KeyCode::Esc | KeyCode::Backspace | KeyCode::Enter | KeyCode::Char('q') => {
                self.tasks_view.detail = None
            }
            KeyCode::Down | KeyCode::Char('j') => detail.scroll_by(1),
            KeyCode::Up | KeyCode::Char('k') => detail.scroll_by(-1),
            KeyCode::PageDown => detail.scroll_by(PAGE as i32),
            KeyCode::PageUp => detail.scroll_by(-(PAGE as i32)),
            KeyCode::Home | KeyCode::Char('g') => detail.scroll = 0,
            KeyCode::End | KeyCode::Char('G') => detail.scroll = detail.max_scroll.get(),
            KeyCode::Char('R') => {
                let id = detail.id;
                self.outbox.push(Command::FetchTask(id));
            }
            KeyCode::Char('r') => {
                let id = detail.id;
                self.ask_retry(id);
            }
            KeyCode::Char('x') => {
                let id = detail.id;
                self.ask_cancel(id);
            }
            KeyCode::Char('P') => self.ask_purge(),
            _ => {}
        }
    }

    fn events_key(&mut self, key: KeyEvent) {
        let last = self.timeline.len().saturating_sub(1);
        let s = &mut self.timeline_scroll;
        *s = match key.code {
            KeyCode::Down | KeyCode::Char('j') => (*s + 1).min(last),
            KeyCode::Up | KeyCode::Char('k') => s.saturating_sub(1),
            KeyCode::PageDown => (*s + PAGE).min(last),
            KeyCode::PageUp => s.saturating_sub(PAGE),
            KeyCode::Home | KeyCode::Char('g') => 0,
            KeyCode::End | KeyCode::Char('G') => last,
            _ => *s,
        };
    }

    fn functions_key(&mut self, key: KeyEvent) {
        let n = self.functions.list.len();
        let sel = &mut self.functions.selected;
        match key.code {
            KeyCode::Down | KeyCode::Char('j') => *sel = (*sel + 1).min(n.saturating_sub(1)),
            KeyCode::Up | KeyCode::Char('k') => *sel = sel.saturating_sub(1),
            KeyCode::Char('n') => {
                self.functions.form = Some(Form::Register(RegisterForm::default()))
            }
            KeyCode::Enter => {
                if let Some(id) = self.selected_function().map(|f| f.function_id) {
                    self.functions.view = Some(FunctionView::new(id));
                    self.outbox.push(Command::FunctionFailures(id));
                }
            }
            KeyCode::Char('s') => {
                self.functions.sort = self.functions.sort.next();
                self.resort_functions();
            }
            KeyCode::Char('i') => match self.selected_function() {
                Some(f) if f.format == FunctionFormat::Source => {
                    let form = InvokeForm::new(f.clone());
                    self.functions.form = Some(Form::Invoke(form));
                }
                Some(_) => self.notify(
                    "a dill function takes pickled arguments: invoke it from a Python client",
                    true,
                ),
                None => self.notify("no function selected: press n to register one", true),
            },
            KeyCode::Char('r') => self.outbox.push(Command::RefreshFunctions),
            KeyCode::Char('d') => {
                if let Some(f) = self.selected_function() {
                    let (id, name) = (f.function_id, f.name.clone());
                    let prompt = format!(
                        "delete function {name} ({})? new calls get 404, its queued tasks are cancelled y/n",
                        short(id)
                    );
                    self.ask(prompt, Pending::DeleteFunction(id));
                }
            }
            _ => {}
        }
    }

    fn form_key(&mut self, key: KeyEvent) {
        let action = match &mut self.functions.form {
            Some(Form::Register(f)) => f.key(key),
            Some(Form::Invoke(f)) => f.key(key),
            None => return,
        };
        match action {
            FormAction::Edit => {}
            FormAction::Cancel => {
                if self.functions.form.as_ref().is_some_and(Form::typed) {
                    self.confirm = Some(Confirm {
                        prompt: "discard what you typed? y/n".into(),
                        action: Pending::DiscardForm,
                    });
                } else {
                    self.functions.form = None;
                }
            }
            FormAction::Submit(cmd) => {
                // An invocation is followed in its own panel; a registration keeps its form
                // open until the gateway answers, so a refusal can be fixed in place.
                if let Some(Form::Invoke(f)) = &self.functions.form {
                    self.functions.invocation = Some(Invocation {
                        function: f.function.name.clone(),
                        task_id: None,
                        status: None,
                        result: None,
                        error: None,
                        failure: None,
                    });
                    self.functions.form = None;
                }
                self.outbox.push(cmd);
            }
        }
    }
}

/// An id's first 8 characters: enough to tell tasks apart in a footer.
pub fn short(id: impl std::fmt::Display) -> String {
    let id = id.to_string();
    match id.get(..8) {
        Some(head) if id.len() > 8 => format!("{head}…"),
        _ => id,
    }
}

/// All → QUEUED → RUNNING → COMPLETED → FAILED → All.
fn next_filter(f: Option<TaskStatus>) -> Option<TaskStatus> {
    match f {
        None => Some(TaskStatus::ALL[0]),
        Some(s) => {
            let i = TaskStatus::ALL.iter().position(|x| *x == s).unwrap_or(0);
            TaskStatus::ALL.get(i + 1).copied()
        }
    }
}
