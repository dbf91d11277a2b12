//! The console's state and key handling, without a terminal or a network: updates and keys go
//! in, the state and the queued `Command`s are checked.

use faas_console::tui::app::{App, Tab};
use faas_console::tui::forms::Form;
use faas_console::tui::functions::{Sort, STATS_EVERY_MS};
use faas_console::tui::msg::{
    Acted, ActionFailed, Command, Link, Snapshot, Stats, TaskInfo, TaskQuery, Update,
};
use faas_console::tui::tasks::{
    Next, Search, ENRICH_MAX, FIRST_PAGE, NEXT_PAGE, SEARCH_PAGE, TASK_LIST_CAP,
};
use faas_console::tui::workers::{Health, LATE_AFTER_MS, LOST_AFTER_MS};
use faas_protocol::api::{
    FunctionDetail, FunctionStats, Percentiles, ResultReply, TaskErrorBrief, TaskSummary,
};
use faas_protocol::event::{Event, WorkerState};
use faas_protocol::model::{FunctionSummary, TaskError, WorkerInfo, WorkerMode};
use faas_protocol::{FunctionFormat, FunctionId, TaskId, TaskStatus};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde_json::json;

const T0: u64 = 1_700_000_000_000;

fn app() -> App {
    App::new("redis://r", "http://g", T0)
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn ch(c: char) -> KeyEvent {
    key(KeyCode::Char(c))
}

fn ctrl(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        app.on_key(if c == '\n' {
            key(KeyCode::Enter)
        } else {
            ch(c)
        });
    }
}

fn task_event(id: TaskId, status: TaskStatus, at: u64) -> Update {
    Update::Event(Event::Task {
        task_id: id,
        function_id: None,
        status,
        worker: (status != TaskStatus::Queued).then(|| "w1".to_owned()),
        at,
        outcome: None,
    })
}

fn worker(id: &str, busy: u32, slots: u32, last_heartbeat: u64) -> WorkerInfo {
    WorkerInfo {
        id: id.into(),
        mode: WorkerMode::Push,
        host: "h1".into(),
        pid: 7,
        dispatcher: "d1".into(),
        slots,
        busy,
        tasks_done: 3,
        joined_at: T0 - 60_000,
        last_heartbeat,
        draining: false,
    }
}

fn function(name: &str, format: FunctionFormat) -> FunctionSummary {
    FunctionSummary {
        function_id: FunctionId::new(),
        name: name.into(),
        format,
        created_at: T0,
    }
}

#[test]
fn task_events_build_a_newest_first_list_with_durations() {
    let mut app = app();
    let (a, b) = (TaskId::new(), TaskId::new());
    app.apply(task_event(a, TaskStatus::Queued, T0));
    app.apply(task_event(b, TaskStatus::Queued, T0 + 1));
    app.apply(task_event(a, TaskStatus::Running, T0 + 10));
    app.apply(task_event(a, TaskStatus::Completed, T0 + 260));

    let ids: Vec<TaskId> = app.tasks.iter(None).map(|r| r.id).collect();
    assert_eq!(ids, vec![b, a], "newest first");
    let row = app.tasks.get(&a).unwrap();
    assert_eq!(row.status, TaskStatus::Completed);
    assert_eq!(row.worker.as_deref(), Some("w1"));
    assert_eq!(row.duration_ms(T0 + 999_999), Some(250));
    assert_eq!(row.attempts, Some(1));
    // Filtering by status.
    let queued: Vec<TaskId> = app
        .tasks
        .iter(Some(TaskStatus::Queued))
        .map(|r| r.id)
        .collect();
    assert_eq!(queued, vec![b]);
}

#[test]
fn a_terminal_status_is_final_even_against_late_events() {
    let mut app = app();
    let a = TaskId::new();
    app.apply(task_event(a, TaskStatus::Failed, T0));
    app.apply(task_event(a, TaskStatus::Running, T0 + 5));
    assert_eq!(app.tasks.get(&a).unwrap().status, TaskStatus::Failed);
    assert_eq!(app.tasks.get(&a).unwrap().finished_at, Some(T0));
}

#[test]
fn the_task_list_is_bounded() {
    let mut app = app();
    // The history's first page said there is more.
    gateway_up(&mut app);
    let generation = list_commands(&mut app)[0].generation;
    app.apply(Update::TaskPage {
        generation,
        page: page(vec![], Some("c1")),
    });
    let first = TaskId::new();
    app.apply(task_event(first, TaskStatus::Queued, T0));
    for i in 0..TASK_LIST_CAP as u64 {
        app.apply(task_event(TaskId::new(), TaskStatus::Queued, T0 + i));
    }
    assert_eq!(app.tasks.len(), TASK_LIST_CAP);
    assert!(app.tasks.get(&first).is_none(), "the oldest fell off");
    // Reading on from the old cursor would leave a hole: g reads the list again instead.
    assert_eq!(app.tasks.history.next, Next::Dropped);
    app.on_key(ch('3'));
    app.on_key(ch('g'));
    let asked = list_commands(&mut app);
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0].cursor, None);
    assert_eq!(app.tasks.len(), 0, "started over");
}

#[test]
fn under_a_flood_only_the_newest_rows_are_read_back_and_events_come_in_bursts() {
    let mut app = app();
    let function = FunctionId::new();
    let ids: Vec<TaskId> = (0..1000).map(|_| TaskId::new()).collect();
    // One update for a burst of events, as the subscription forwards them.
    app.apply(Update::Events(
        ids.iter()
            .enumerate()
            .map(|(i, id)| Event::Task {
                task_id: *id,
                function_id: Some(function),
                status: TaskStatus::Queued,
                worker: None,
                at: T0 + i as u64,
                outcome: None,
            })
            .collect(),
    ));
    assert_eq!(app.tasks.len(), 1000);
    app.tick(T0 + 200);
    assert_eq!(
        app.take_commands(),
        vec![Command::Enrich(ids[1000 - ENRICH_MAX..].to_vec())],
        "the newest, in order"
    );
    // The rows not read back still know their function, by id.
    assert_eq!(app.tasks.get(&ids[0]).unwrap().function_id, Some(function));
}

#[test]
fn task_hashes_are_read_in_one_batch_per_tick_and_fill_the_rows() {
    let mut app = app();
    let (a, b) = (TaskId::new(), TaskId::new());
    app.apply(task_event(a, TaskStatus::Queued, T0));
    app.apply(task_event(a, TaskStatus::Running, T0 + 1));
    app.apply(task_event(a, TaskStatus::Completed, T0 + 2));
    app.apply(task_event(b, TaskStatus::Queued, T0 + 3));
    assert!(app.take_commands().is_empty(), "nothing before the tick");
    app.tick(T0 + 200);
    // Each id once, however many events it had.
    assert_eq!(app.take_commands(), vec![Command::Enrich(vec![a, b])]);
    app.tick(T0 + 400);
    assert!(app.take_commands().is_empty());

    app.apply(Update::Tasks(vec![(
        b,
        TaskInfo {
            function_name: Some("add".into()),
            status: Some(TaskStatus::Completed),
            attempts: Some(2),
            started_at: Some(T0 + 10),
            finished_at: Some(T0 + 30),
            ..TaskInfo::default()
        },
    )]));
    let row = app.tasks.get(&b).unwrap();
    assert_eq!(row.function.as_deref(), Some("add"));
    assert_eq!(row.attempts, Some(2));
    // A missed terminal event is caught up from the hash.
    assert_eq!(row.status, TaskStatus::Completed);
    assert_eq!(row.duration_ms(T0), Some(20));
}

#[test]
fn counts_come_from_the_snapshot_and_throughput_from_events() {
    let mut app = app();
    assert!(app.snapshot.is_none());
    let snap = Snapshot {
        stats: Stats {
            submitted: 100,
            completed: 90,
            failed: 4,
            requeued: 1,
        },
        queue_len: 6,
        pending: 2,
        workers: vec![],
    };
    app.apply(Update::Snapshot(snap.clone()));
    assert_eq!(app.snapshot, Some(snap));

    for i in 0..5 {
        let id = TaskId::new();
        app.apply(task_event(id, TaskStatus::Completed, T0 + i));
    }
    app.tick(T0 + 1_000);
    assert_eq!(app.throughput.last_second(app.now_ms), 5);
    assert_eq!(app.throughput.total(app.now_ms), 5);
    app.tick(T0 + 61_000);
    assert_eq!(
        app.throughput.total(app.now_ms),
        0,
        "a minute later it is gone"
    );
}

#[test]
fn worker_health_follows_heartbeats_and_events() {
    let mut app = app();
    app.apply(Update::Snapshot(Snapshot {
        workers: vec![
            worker("a", 1, 4, T0),
            worker("b", 0, 2, T0 - LATE_AFTER_MS),
            worker("c", 0, 2, T0 - LOST_AFTER_MS),
        ],
        ..Snapshot::default()
    }));
    let health = |app: &App| {
        app.workers
            .iter()
            .map(|w| (w.info.id.clone(), w.health(app.now_ms)))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        health(&app),
        vec![
            ("a".into(), Health::Online),
            ("b".into(), Health::Late),
            ("c".into(), Health::Lost)
        ]
    );
    assert_eq!(app.workers.health_counts(T0), (1, 1, 1));
    assert_eq!(
        app.workers.slots(T0),
        (1, 6),
        "lost workers' slots do not count"
    );

    // A heartbeat brings b back and updates its load.
    app.apply(Update::Event(Event::Worker {
        worker: "b".into(),
        state: WorkerState::Heartbeat,
        busy: 2,
        slots: 2,
        at: T0,
    }));
    // a is declared lost; its registry entry goes, the row stays.
    app.apply(Update::Event(Event::Worker {
        worker: "a".into(),
        state: WorkerState::Lost,
        busy: 0,
        slots: 4,
        at: T0,
    }));
    app.apply(Update::Snapshot(Snapshot {
        workers: vec![worker("b", 2, 2, T0)],
        ..Snapshot::default()
    }));
    assert_eq!(app.workers.health_counts(T0), (1, 0, 2));
    assert_eq!(app.workers.slots(T0), (2, 2));

    // A worker that says bye is gone; one heard of only by event is a stub.
    app.apply(Update::Event(Event::Worker {
        worker: "b".into(),
        state: WorkerState::Left,
        busy: 0,
        slots: 2,
        at: T0,
    }));
    app.apply(Update::Event(Event::Worker {
        worker: "d".into(),
        state: WorkerState::Joined,
        busy: 0,
        slots: 8,
        at: T0,
    }));
    let ids: Vec<(String, bool)> = app
        .workers
        .iter()
        .map(|w| (w.info.id.clone(), w.registered))
        .collect();
    assert_eq!(
        ids,
        vec![("a".into(), true), ("c".into(), true), ("d".into(), false)]
    );

    // Long-lost workers are forgotten.
    app.tick(T0 + 11 * 60_000);
    app.apply(Update::Event(Event::Worker {
        worker: "d".into(),
        state: WorkerState::Heartbeat,
        busy: 0,
        slots: 8,
        at: T0 + 11 * 60_000,
    }));
    app.tick(T0 + 11 * 60_000);
    let ids: Vec<String> = app.workers.iter().map(|w| w.info.id.clone()).collect();
    assert_eq!(ids, vec!["d".to_owned()]);
}

#[test]
fn redis_is_up_only_when_both_of_its_connections_are() {
    let mut app = app();
    assert_eq!(app.links.redis(), Link::Connecting);
    app.apply(Update::RedisEvents(Link::Up { since_ms: T0 }));
    assert_eq!(app.links.redis(), Link::Connecting);
    app.apply(Update::RedisPoll(Link::Up { since_ms: T0 + 5 }));
    assert_eq!(app.links.redis(), Link::Up { since_ms: T0 + 5 });
    let down = Link::Down {
        retry_at_ms: T0 + 500,
        error: "connection refused".into(),
    };
    app.apply(Update::RedisEvents(down.clone()));
    assert_eq!(app.links.redis(), down);
}

#[test]
fn keys_switch_tabs_toggle_help_and_quit() {
    let mut app = app();
    assert_eq!(app.tab, Tab::Overview);
    app.on_key(ch('3'));
    assert_eq!(app.tab, Tab::Tasks);
    app.on_key(key(KeyCode::Tab));
    assert_eq!(app.tab, Tab::Functions);
    assert_eq!(app.take_commands(), vec![Command::RefreshFunctions]);
    app.on_key(key(KeyCode::Tab));
    assert_eq!(app.tab, Tab::Events);
    app.on_key(key(KeyCode::Tab));
    assert_eq!(app.tab, Tab::Overview, "wraps around");
    app.on_key(key(KeyCode::BackTab));
    assert_eq!(app.tab, Tab::Events);

    app.on_key(ch('?'));
    assert!(app.help);
    app.on_key(ch('2'));
    assert!(!app.help, "any key closes the help");
    assert_eq!(app.tab, Tab::Events, "and does nothing else");

    assert!(!app.quit);
    app.on_key(ch('q'));
    assert!(app.quit);
}

#[test]
fn the_task_selection_stays_on_its_task_as_new_ones_arrive() {
    let mut app = app();
    app.on_key(ch('3'));
    let ids: Vec<TaskId> = (0..3).map(|_| TaskId::new()).collect();
    for (i, id) in ids.iter().enumerate() {
        app.apply(task_event(*id, TaskStatus::Queued, T0 + i as u64));
    }
    // Newest first: ids[2], ids[1], ids[0]. No selection follows the newest.
    assert_eq!(app.selected_task_index(), 0);
    app.on_key(ch('j'));
    assert_eq!(app.tasks_view.selected, Some(ids[1]));
    app.apply(task_event(TaskId::new(), TaskStatus::Queued, T0 + 9));
    assert_eq!(app.tasks_view.selected, Some(ids[1]));
    assert_eq!(
        app.selected_task_index(),
        1,
        "the rows stay put: the new task waits above"
    );
    assert_eq!(app.tasks.new_above(), 1);
    app.on_key(key(KeyCode::End));
    assert_eq!(app.tasks_view.selected, Some(ids[0]));
    app.on_key(ch('g'));
    assert_eq!(
        app.tasks_view.selected, None,
        "back to following the newest"
    );

    // The filter cycles through the statuses and back to all.
    for expected in [
        Some(TaskStatus::Queued),
        Some(TaskStatus::Running),
        Some(TaskStatus::Completed),
        Some(TaskStatus::Failed),
        None,
    ] {
        app.on_key(ch('f'));
        assert_eq!(app.tasks_view.filter, expected);
    }
}

#[test]
fn enter_opens_a_task_detail_that_is_fetched_and_refetched_when_the_task_moves() {
    let mut app = app();
    app.on_key(ch('3'));
    let id = TaskId::new();
    app.apply(task_event(id, TaskStatus::Running, T0));
    app.take_commands();
    app.on_key(key(KeyCode::Enter));
    assert_eq!(app.tasks_view.detail.as_ref().map(|d| d.id), Some(id));
    assert_eq!(app.take_commands(), vec![Command::FetchTask(id)]);

    app.apply(task_event(id, TaskStatus::Completed, T0 + 5));
    assert_eq!(app.take_commands(), vec![Command::FetchTask(id)]);
    app.apply(Update::TaskDetail(id, Err("gateway down".into())));
    assert!(matches!(
        app.tasks_view.detail.as_ref().and_then(|d| d.record.clone()),
        Some(Err(e)) if e == "gateway down"
    ));
    // Keys go to the detail while it is open.
    app.on_key(ch('j'));
    assert_eq!(app.tasks_view.detail.as_ref().unwrap().scroll, 1);
    app.on_key(ch('1'));
    assert_eq!(app.tab, Tab::Tasks);
    app.on_key(key(KeyCode::Esc));
    assert!(app.tasks_view.detail.is_none());
}

#[test]
fn the_register_form_validates_submits_and_closes_on_success() {
    let mut app = app();
    app.on_key(ch('4'));
    app.take_commands();
    app.on_key(ch('n'));
    assert!(matches!(app.functions.form, Some(Form::Register(_))));
    // Keys are text now: 'q' does not quit.
    type_text(&mut app, "q");
    assert!(!app.quit);
    app.on_key(key(KeyCode::Backspace));

    app.on_key(ctrl('s'));
    let Some(Form::Register(form)) = &app.functions.form else {
        panic!("form closed on an invalid submit");
    };
    assert_eq!(form.error.as_deref(), Some("the function needs a name"));
    assert!(app.take_commands().is_empty());

    type_text(&mut app, "add\n"); // Enter moves to the entrypoint, left empty
    app.on_key(key(KeyCode::Tab));
    type_text(&mut app, "def add(a, b):\n    return a + b");
    app.on_key(ctrl('s'));
    assert_eq!(
        app.take_commands(),
        vec![Command::Register {
            name: "add".into(),
            entrypoint: "add".into(),
            source: "def add(a, b):\n    return a + b".into(),
        }]
    );

    // A refusal stays in the form; success closes it and selects the new function.
    app.apply(Update::Registered(Err("source is empty (HTTP 400)".into())));
    let Some(Form::Register(form)) = &app.functions.form else {
        panic!("form closed on a refusal");
    };
    assert_eq!(form.error.as_deref(), Some("source is empty (HTTP 400)"));
    app.on_key(ctrl('s'));
    app.take_commands();
    let other = function("other", FunctionFormat::Source);
    app.apply(Update::Functions(vec![other]));
    let add = function("add", FunctionFormat::Source);
    app.apply(Update::Registered(Ok(add.clone())));
    assert!(app.functions.form.is_none());
    assert_eq!(app.selected_function(), Some(&add));
    assert_eq!(app.take_commands(), vec![Command::RefreshFunctions]);
    assert!(app.notice.as_ref().unwrap().text.contains("registered add"));
}

#[test]
fn the_invoke_form_sends_json_args_and_the_panel_follows_the_task() {
    let mut app = app();
    app.on_key(ch('4'));
    let add = function("add", FunctionFormat::Source);
    app.apply(Update::Functions(vec![add.clone()]));
    app.take_commands();

    app.on_key(ch('i'));
    type_text(&mut app, "[2, ");
    app.on_key(key(KeyCode::Enter));
    let Some(Form::Invoke(form)) = &app.functions.form else {
        panic!("invoke form not open");
    };
    assert!(form
        .error
        .as_deref()
        .unwrap()
        .starts_with("args is not valid JSON"));
    assert!(app.take_commands().is_empty());

    type_text(&mut app, "3]");
    app.on_key(key(KeyCode::Enter));
    assert_eq!(
        app.take_commands(),
        vec![Command::Invoke {
            function_id: add.function_id,
            args: json!([2, 3]),
            kwargs: json!({}),
        }]
    );
    assert!(app.functions.form.is_none());

    let id = TaskId::new();
    app.apply(task_event(id, TaskStatus::Running, T0)); // the event can beat the reply
    app.apply(Update::Invoked(Ok(id)));
    let inv = app.functions.invocation.as_ref().unwrap();
    assert_eq!(
        (inv.task_id, inv.status),
        (Some(id), Some(TaskStatus::Running))
    );
    app.apply(Update::InvokeResult(ResultReply {
        task_id: id,
        status: TaskStatus::Completed,
        result: json!(5),
        error: None,
    }));
    let inv = app.functions.invocation.as_ref().unwrap();
    assert_eq!(inv.status, Some(TaskStatus::Completed));
    assert_eq!(inv.result, Some(json!(5)));
}

#[test]
fn a_failed_invocation_keeps_its_error_and_dill_functions_are_refused() {
    let mut app = app();
    app.on_key(ch('4'));
    let boom = function("boom", FunctionFormat::Source);
    let pickled = function("pickled", FunctionFormat::Dill);
    app.apply(Update::Functions(vec![boom.clone(), pickled]));
    app.on_key(ch('i'));
    type_text(&mut app, "[]\n");
    let id = TaskId::new();
    app.apply(Update::Invoked(Ok(id)));
    let error = TaskError {
        kind: "ZeroDivisionError".into(),
        message: "division by zero".into(),
        traceback: "Traceback (most recent call last):\n  ...".into(),
    };
    app.apply(Update::InvokeResult(ResultReply {
        task_id: id,
        status: TaskStatus::Failed,
        result: serde_json::Value::Null,
        error: Some(error.clone()),
    }));
    assert_eq!(
        app.functions.invocation.as_ref().unwrap().error,
        Some(error)
    );

    // Both have created_at T0: the list keeps the gateway's order; select the dill one.
    let dill_index = app
        .functions
        .list
        .iter()
        .position(|f| f.format == FunctionFormat::Dill)
        .unwrap();
    while app.functions.selected < dill_index {
        app.on_key(ch('j'));
    }
    app.on_key(ch('i'));
    assert!(app.functions.form.is_none());
    assert!(app.notice.as_ref().is_some_and(|n| n.error));
}

#[test]
fn ctrl_c_quits_even_from_a_form() {
    let mut app = app();
    app.on_key(ch('4'));
    app.on_key(ch('n'));
    app.on_key(ctrl('c'));
    assert!(app.quit);
}

#[test]
fn under_faas_up_q_and_ctrl_c_ask_before_stopping_the_platform() {
    let mut app = app();
    app.supervised = true;
    app.on_key(ch('q'));
    assert!(!app.quit, "q only asks");
    assert!(app
        .confirm
        .as_ref()
        .unwrap()
        .prompt
        .contains("stop the platform"));
    app.on_key(ch('n'));
    assert!(
        !app.quit && app.confirm.is_none(),
        "n keeps everything running"
    );
    assert_eq!(app.notice.as_ref().unwrap().text, "still running");

    app.on_key(ch('q'));
    app.on_key(ch('y'));
    assert!(app.quit, "y stops");

    let mut app = self::app();
    app.supervised = true;
    app.on_key(ctrl('c'));
    assert!(!app.quit && app.confirm.is_some(), "Ctrl-C asks too");
    app.on_key(ctrl('c'));
    assert!(app.quit, "a second Ctrl-C forces");
}

#[test]
fn q_and_esc_step_back_out_of_help_and_details_before_quitting() {
    let mut app = app();
    app.on_key(ch('?'));
    app.on_key(ch('q'));
    assert!(!app.help && !app.quit, "q closes help");

    let id = TaskId::new();
    app.apply(task_event(id, TaskStatus::Completed, T0));
    app.on_key(ch('3'));
    app.on_key(key(KeyCode::Enter));
    assert!(app.tasks_view.detail.is_some());
    app.on_key(ch('q'));
    assert!(
        app.tasks_view.detail.is_none() && !app.quit,
        "q closes the detail"
    );
    app.on_key(ch('q'));
    assert!(app.quit, "then q quits a console started on its own");
}

#[test]
fn esc_in_a_form_with_typed_text_asks_before_discarding_it() {
    let mut app = app();
    app.on_key(ch('4'));
    app.on_key(ch('n'));
    app.on_key(key(KeyCode::Esc));
    assert!(app.functions.form.is_none(), "an empty form just closes");

    app.on_key(ch('n'));
    type_text(&mut app, "add");
    app.on_key(key(KeyCode::Esc));
    assert!(
        app.functions.form.is_some(),
        "typed text is not thrown away"
    );
    assert!(app.confirm.as_ref().unwrap().prompt.contains("discard"));
    app.on_key(ch('n'));
    let Some(Form::Register(form)) = &app.functions.form else {
        panic!("the form stays open");
    };
    assert_eq!(form.fields.fields[0].text(), "add", "with its text");
    app.on_key(key(KeyCode::Esc));
    app.on_key(ch('y'));
    assert!(app.functions.form.is_none() && !app.quit, "y discards");
}

#[test]
fn the_events_timeline_keeps_what_an_operator_looks_for() {
    use faas_console::tui::timeline::Kind;
    let mut app = app();
    let worker_event = |state| {
        Update::Event(Event::Worker {
            worker: "w1".into(),
            state,
            busy: 0,
            slots: 2,
            at: T0,
        })
    };
    app.apply(worker_event(WorkerState::Joined));
    app.apply(worker_event(WorkerState::Heartbeat));
    app.apply(worker_event(WorkerState::Lost));
    let failed = TaskId::new();
    app.apply(Update::Event(Event::Task {
        task_id: failed,
        function_id: None,
        status: TaskStatus::Failed,
        worker: Some("w1".into()),
        at: T0,
        outcome: Some(faas_protocol::event::EventOutcome {
            result: serde_json::Value::Null,
            error: Some(TaskError {
                kind: "ZeroDivisionError".into(),
                message: "division by zero".into(),
                traceback: String::new(),
            }),
        }),
    }));
    app.apply(task_event(TaskId::new(), TaskStatus::Completed, T0));
    // Redis goes away and comes back; then its counters go backwards (it came back empty).
    let up = Link::Up { since_ms: T0 };
    app.apply(Update::RedisEvents(up.clone()));
    app.apply(Update::RedisPoll(up.clone()));
    app.apply(Update::RedisPoll(Link::Down {
        retry_at_ms: T0,
        error: "connection refused".into(),
    }));
    app.apply(Update::RedisPoll(up));
    let stats = |submitted| Stats {
        submitted,
        ..Stats::default()
    };
    for submitted in [100, 120, 3] {
        app.apply(Update::Snapshot(Snapshot {
            stats: stats(submitted),
            queue_len: 0,
            pending: 0,
            workers: vec![],
        }));
    }
    let entries: Vec<(Kind, bool, String)> = app
        .timeline
        .iter()
        .map(|e| (e.kind, e.bad, e.text.clone()))
        .collect();
    let texts: Vec<&str> = entries.iter().map(|e| e.2.as_str()).collect();
    assert_eq!(
        entries.len(),
        6,
        "no heartbeat, no completed task: {texts:?}"
    );
    assert!(entries[0].2.contains("submitted 120 → 3") && entries[0].1);
    assert_eq!(entries[1].2, "back");
    assert!(entries[2].2.contains("connection refused") && entries[2].0 == Kind::Redis);
    assert!(entries[3]
        .2
        .contains("FAILED on w1: ZeroDivisionError: division by zero"));
    assert!(entries[4].2.starts_with("w1 lost") && entries[4].1);
    assert_eq!(entries[5].2, "w1 joined");

    app.on_key(ch('5'));
    assert_eq!(app.tab, Tab::Events);
    app.on_key(key(KeyCode::Down));
    assert_eq!(app.timeline_scroll, 1);
    app.on_key(ch('G'));
    assert_eq!(app.timeline_scroll, 5, "stops at the oldest");
    app.on_key(ch('g'));
    assert_eq!(app.timeline_scroll, 0);
}

/// A task as `GET /tasks` lists it.
fn summary(
    id: TaskId,
    function: &str,
    status: TaskStatus,
    worker: &str,
    error: Option<&str>,
) -> TaskSummary {
    TaskSummary {
        task_id: id,
        function_id: FunctionId::new(),
        function_name: function.into(),
        status,
        worker: Some(worker.into()),
        attempts: 1,
        max_attempts: 3,
        created_at: T0 - 60_000,
        started_at: Some(T0 - 59_000),
        finished_at: Some(T0 - 58_000),
        error: error.map(|e| TaskErrorBrief {
            kind: e.into(),
            message: "boom".into(),
        }),
        retry_of: None,
    }
}

fn page(
    tasks: Vec<TaskSummary>,
    next: Option<&str>,
) -> Result<(Vec<TaskSummary>, Option<String>), String> {
    Ok((tasks, next.map(str::to_owned)))
}

fn list_commands(app: &mut App) -> Vec<TaskQuery> {
    app.take_commands()
        .into_iter()
        .filter_map(|c| match c {
            Command::ListTasks(q) => Some(q),
            _ => None,
        })
        .collect()
}

fn gateway_up(app: &mut App) {
    app.apply(Update::Gateway(Link::Up { since_ms: T0 }));
}

#[test]
fn the_history_is_read_a_page_at_a_time_as_the_selection_nears_its_end() {
    let mut app = app();
    app.tick(T0 + 200);
    assert!(
        list_commands(&mut app).is_empty(),
        "not before the gateway is up"
    );
    gateway_up(&mut app);
    let asked = list_commands(&mut app);
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0].cursor, None);
    assert_eq!(asked[0].limit, FIRST_PAGE, "only the first page to open");
    let generation = asked[0].generation;
    app.tick(T0 + 400);
    assert!(
        list_commands(&mut app).is_empty(),
        "one page in flight at a time"
    );

    let first: Vec<TaskId> = (0..FIRST_PAGE).map(|_| TaskId::new()).collect();
    let tasks = first
        .iter()
        .map(|id| summary(*id, "add", TaskStatus::Completed, "w1", None))
        .collect();
    app.apply(Update::TaskPage {
        generation,
        page: page(tasks, Some("c1")),
    });
    let listed: Vec<TaskId> = app.visible_tasks().map(|r| r.id).collect();
    assert_eq!(listed, first, "in the gateway's order, newest first");
    assert_eq!(
        app.tasks.get(&first[0]).unwrap().function.as_deref(),
        Some("add")
    );

    // Scrolling: nothing until the selection nears the end, then the next page, once.
    app.on_key(ch('3'));
    app.on_key(key(KeyCode::PageDown));
    assert!(list_commands(&mut app).is_empty());
    for _ in 0..9 {
        app.on_key(key(KeyCode::PageDown));
    }
    let asked = list_commands(&mut app);
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0].cursor.as_deref(), Some("c1"));
    assert_eq!(asked[0].limit, NEXT_PAGE);
    let older = TaskId::new();
    app.apply(Update::TaskPage {
        generation,
        page: page(
            vec![summary(older, "add", TaskStatus::Failed, "w1", Some("E"))],
            None,
        ),
    });
    assert_eq!(
        app.visible_tasks().last().map(|r| r.id),
        Some(older),
        "appended below"
    );
    app.on_key(key(KeyCode::End));
    assert!(
        list_commands(&mut app).is_empty(),
        "the history is all read"
    );

    // The gateway went away and came back: events may have been missed, so the list is read
    // again from the top, unless a row is selected (the operator is reading it).
    app.on_key(ch('g'));
    app.apply(Update::Gateway(Link::Down {
        retry_at_ms: T0 + 500,
        error: "refused".into(),
    }));
    gateway_up(&mut app);
    let asked = list_commands(&mut app);
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(asked[0].generation > generation && asked[0].cursor.is_none());
}

#[test]
fn new_tasks_wait_above_a_selected_row_and_come_in_when_following_the_newest() {
    let mut app = app();
    gateway_up(&mut app);
    let generation = list_commands(&mut app)[0].generation;
    let old: Vec<TaskId> = (0..3).map(|_| TaskId::new()).collect();
    let tasks = old
        .iter()
        .map(|id| summary(*id, "add", TaskStatus::Completed, "w1", None))
        .collect();
    app.apply(Update::TaskPage {
        generation,
        page: page(tasks, None),
    });
    // Following the newest: a new task goes on top.
    let a = TaskId::new();
    app.apply(task_event(a, TaskStatus::Queued, T0));
    assert_eq!(app.visible_tasks().next().map(|r| r.id), Some(a));

    // A row selected: the rows stay put and the new ones are counted.
    app.on_key(ch('3'));
    app.on_key(ch('j'));
    let selected = app.tasks_view.selected.unwrap();
    let before: Vec<TaskId> = app.visible_tasks().map(|r| r.id).collect();
    let (b, c) = (TaskId::new(), TaskId::new());
    app.apply(task_event(b, TaskStatus::Queued, T0 + 1));
    app.apply(task_event(c, TaskStatus::Queued, T0 + 2));
    app.apply(task_event(b, TaskStatus::Running, T0 + 3));
    let during: Vec<TaskId> = app.visible_tasks().map(|r| r.id).collect();
    assert_eq!(during, before, "nothing moved");
    assert_eq!(app.tasks.new_above(), 2);
    assert_eq!(app.tasks_view.selected, Some(selected));
    // Known tasks still change in place.
    app.apply(task_event(a, TaskStatus::Running, T0 + 4));
    assert_eq!(app.tasks.get(&a).unwrap().status, TaskStatus::Running);

    // g: follow the newest again; the waiting tasks are merged on top, their events applied.
    app.on_key(ch('g'));
    assert_eq!(app.tasks.new_above(), 0);
    let after: Vec<TaskId> = app.visible_tasks().map(|r| r.id).collect();
    assert_eq!(&after[..2], &[c, b]);
    assert_eq!(app.tasks.get(&b).unwrap().status, TaskStatus::Running);
}

#[test]
fn the_filter_and_the_search_start_the_history_over_with_what_the_gateway_can_filter() {
    let mut app = app();
    app.apply(Update::Snapshot(Snapshot {
        workers: vec![worker("w-push-1", 0, 2, T0)],
        ..Snapshot::default()
    }));
    gateway_up(&mut app);
    let first = list_commands(&mut app)[0].generation;

    app.on_key(ch('3'));
    app.on_key(ch('f'));
    let asked = list_commands(&mut app);
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].status, Some(TaskStatus::Queued), "status= is sent");
    assert!(asked[0].generation > first);
    // A page of the old query is dropped.
    app.apply(Update::TaskPage {
        generation: first,
        page: page(
            vec![summary(
                TaskId::new(),
                "add",
                TaskStatus::Completed,
                "w1",
                None,
            )],
            None,
        ),
    });
    assert_eq!(app.tasks.len(), 0, "a stale page is dropped");
    app.on_key(ch('f'));
    app.on_key(ch('f'));
    app.on_key(ch('f'));
    app.on_key(ch('f'));
    assert_eq!(app.tasks_view.filter, None, "back to all");
    list_commands(&mut app);

    // A worker the console knows goes to the gateway; the error type is matched here.
    app.on_key(ch('/'));
    type_text(&mut app, "w-push-1 error:zerodiv");
    assert!(app.tasks_view.search_input.is_some());
    app.on_key(key(KeyCode::Enter));
    assert_eq!(app.tab, Tab::Tasks, "typed digits did not switch screens");
    let asked = list_commands(&mut app);
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0].worker.as_deref(), Some("w-push-1"));
    assert_eq!(asked[0].limit, SEARCH_PAGE);
    let hit = TaskId::new();
    app.apply(Update::TaskPage {
        generation: asked[0].generation,
        page: page(
            vec![
                summary(
                    TaskId::new(),
                    "add",
                    TaskStatus::Completed,
                    "w-push-1",
                    None,
                ),
                summary(
                    hit,
                    "divide",
                    TaskStatus::Failed,
                    "w-push-1",
                    Some("ZeroDivisionError"),
                ),
                summary(
                    TaskId::new(),
                    "div",
                    TaskStatus::Failed,
                    "w-push-1",
                    Some("ValueError"),
                ),
            ],
            Some("c2"),
        ),
    });
    let found: Vec<TaskId> = app.visible_tasks().map(|r| r.id).collect();
    assert_eq!(found, vec![hit]);
    assert_eq!(app.tasks.len(), 1, "rows that do not match are not kept");
    // Fewer than a screenful matched: the next page is read at once.
    let asked = list_commands(&mut app);
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].cursor.as_deref(), Some("c2"));

    // Esc clears the search and starts over.
    app.on_key(key(KeyCode::Esc));
    assert!(app.tasks_view.search.is_empty());
    assert_eq!(list_commands(&mut app)[0].worker, None);
}

#[test]
fn a_search_matches_id_prefixes_functions_workers_and_error_types() {
    let row = |id: &str, f: &str, w: &str, e: Option<&str>| {
        let mut r = faas_console::tui::tasks::TaskRow::from(summary(
            id.parse().unwrap(),
            f,
            TaskStatus::Failed,
            w,
            e,
        ));
        r.function = Some(f.into());
        r
    };
    let r = row(
        "1a2b3c4d-0000-4000-8000-000000000001",
        "resize_image",
        "w-push-2",
        Some("TimeoutError"),
    );
    for (text, hit) in [
        ("1a2b", true),
        ("id:1a2b", true),
        ("id:resize", false),
        ("resize", true),
        ("fn:IMAGE", true),
        ("fn:w-push", false),
        ("worker:push-2", true),
        ("timeout", true),
        ("error:timeout", true),
        ("error:value", false),
        ("resize timeout", true),
        ("resize value", false),
        ("", true),
    ] {
        assert_eq!(Search::parse(text).matches(&r), hit, "{text:?}");
    }
    // Exact names go to the gateway; a name two functions share does not.
    let (f1, f2, f3) = (FunctionId::new(), FunctionId::new(), FunctionId::new());
    let functions = [(f1, "add"), (f2, "mul"), (f3, "mul")];
    let workers = ["w-1"];
    assert_eq!(
        Search::parse("fn:add worker:W-1").server_filters(&functions, &workers),
        (Some(f1), Some("w-1".into()))
    );
    assert_eq!(
        Search::parse("mul").server_filters(&functions, &workers),
        (None, None)
    );
    assert_eq!(
        Search::parse("ad").server_filters(&functions, &workers),
        (None, None)
    );
}

fn prompt(app: &App) -> String {
    app.confirm
        .as_ref()
        .map(|c| c.prompt.clone())
        .unwrap_or_default()
}

fn notice(app: &App) -> (String, bool) {
    let n = app.notice.as_ref().expect("a notice");
    (n.text.clone(), n.error)
}

#[test]
fn retry_and_cancel_ask_first_and_the_footer_says_how_they_ended() {
    let mut app = app();
    let (done, failed) = (TaskId::new(), TaskId::new());
    app.apply(task_event(done, TaskStatus::Completed, T0));
    app.apply(task_event(failed, TaskStatus::Failed, T0 + 1));
    app.on_key(ch('3'));
    // The newest row (the failed one) is highlighted: r asks, naming it.
    app.on_key(ch('r'));
    let p = prompt(&app);
    assert!(
        p.contains("retry task") && p.contains(&failed.to_string()[..8]),
        "{p}"
    );
    assert!(p.contains("FAILED") && p.contains("y/n"), "{p}");
    assert!(app.take_commands().is_empty(), "nothing before the answer");
    app.on_key(ch('y'));
    assert_eq!(app.take_commands(), vec![Command::Retry(failed)]);
    let new = TaskId::new();
    app.apply(Update::Acted(Ok(Acted::Retried { of: failed, new })));
    let (text, error) = notice(&app);
    assert_eq!(
        text,
        format!(
            "retried {}… as {}…",
            &failed.to_string()[..8],
            &new.to_string()[..8]
        )
    );
    assert!(!error);

    // x on the completed one: n keeps it; y sends it, and the gateway's 409 is told plainly.
    app.on_key(ch('j'));
    app.on_key(ch('x'));
    assert!(prompt(&app).contains("cancel task"), "{}", prompt(&app));
    app.on_key(ch('n'));
    assert!(app.take_commands().is_empty());
    assert_eq!(notice(&app).0, "not cancelled");
    app.on_key(ch('x'));
    app.on_key(ch('y'));
    assert_eq!(app.take_commands(), vec![Command::Cancel(done)]);
    app.apply(Update::Acted(Err(ActionFailed {
        action: "cancel",
        http: Some(409),
        conflict: Some(TaskStatus::Completed),
        message: "already ended".into(),
    })));
    assert_eq!(
        notice(&app),
        ("cancel: already COMPLETED (409)".into(), true)
    );

    // The same keys in the detail view; R reloads it there.
    app.on_key(key(KeyCode::Enter));
    app.take_commands();
    app.on_key(ch('R'));
    assert_eq!(app.take_commands(), vec![Command::FetchTask(done)]);
    app.on_key(ch('x'));
    app.on_key(ch('y'));
    assert_eq!(app.take_commands(), vec![Command::Cancel(done)]);
    app.apply(Update::Acted(Ok(Acted::Cancelled {
        task: done,
        was: TaskStatus::Running,
    })));
    assert!(notice(&app).0.contains("(was RUNNING)"));
    assert_eq!(
        app.take_commands(),
        vec![Command::FetchTask(done)],
        "the open detail is read again"
    );
    assert!(
        app.tasks_view.detail.is_some(),
        "y did not close the detail"
    );
}

#[test]
fn purge_asks_with_the_queue_depth_and_reports_how_many() {
    let mut app = app();
    app.apply(Update::Snapshot(Snapshot {
        queue_len: 12,
        pending: 2,
        ..Snapshot::default()
    }));
    app.on_key(ch('P'));
    let p = prompt(&app);
    assert!(
        p.contains("purge the queue") && p.contains("10 waiting"),
        "{p}"
    );
    app.on_key(key(KeyCode::Esc));
    assert!(app.take_commands().is_empty(), "any key but y says no");
    app.on_key(ch('P'));
    app.on_key(ch('y'));
    assert_eq!(app.take_commands(), vec![Command::Purge]);
    app.apply(Update::Acted(Ok(Acted::Purged(10))));
    assert_eq!(notice(&app).0, "purged: 10 queued task(s) cancelled");
}

#[test]
fn d_deletes_the_selected_function_after_asking() {
    let mut app = app();
    let add = function("add", FunctionFormat::Source);
    app.apply(Update::Functions(vec![add.clone()]));
    app.on_key(ch('4'));
    app.take_commands();
    app.on_key(ch('d'));
    let p = prompt(&app);
    assert!(
        p.contains("delete function add") && p.contains("queued tasks are cancelled"),
        "{p}"
    );
    app.on_key(ch('y'));
    assert_eq!(
        app.take_commands(),
        vec![Command::DeleteFunction(add.function_id)]
    );
    app.apply(Update::Acted(Ok(Acted::Deleted {
        function: add.function_id,
        cancelled: 3,
    })));
    assert_eq!(notice(&app).0, "deleted add: 3 queued task(s) cancelled");
    assert!(app.functions.list.is_empty());
    app.apply(Update::Acted(Err(ActionFailed {
        action: "delete",
        http: Some(404),
        conflict: None,
        message: "unknown function".into(),
    })));
    assert_eq!(
        notice(&app),
        ("delete: unknown function (404)".into(), true)
    );
}

fn detail(f: &FunctionSummary, runs: u64, failed: u64, p50: u64) -> FunctionDetail {
    let pct = |p50: u64| Percentiles {
        p50,
        p95: p50 * 2,
        p99: p50 * 3,
        samples: runs,
    };
    FunctionDetail {
        function_id: f.function_id,
        name: f.name.clone(),
        format: f.format,
        entrypoint: Some(f.name.clone()),
        created_at: f.created_at,
        stats: FunctionStats {
            invocations: runs,
            completed: runs - failed,
            failed,
            cancelled: 0,
            run_ms: Some(pct(p50)),
            queue_wait_ms: Some(pct(1)),
            last_failure_at: (failed > 0).then_some(T0 - 1_000),
            last_failure_type: (failed > 0).then(|| "ValueError".to_owned()),
        },
    }
}

fn stats_commands(app: &mut App) -> Vec<Command> {
    app.take_commands()
        .into_iter()
        .filter(|c| matches!(c, Command::FunctionStats(_) | Command::FunctionFailures(_)))
        .collect()
}

#[test]
fn function_statistics_are_read_only_while_the_screen_is_shown_one_round_at_a_time() {
    let mut app = app();
    gateway_up(&mut app);
    let (a, b) = (
        function("add", FunctionFormat::Source),
        function("slow", FunctionFormat::Source),
    );
    app.apply(Update::Functions(vec![a.clone(), b.clone()]));
    app.tick(T0 + 10_000);
    assert!(stats_commands(&mut app).is_empty(), "not on another screen");

    app.on_key(ch('4'));
    let asked = stats_commands(&mut app);
    assert_eq!(asked.len(), 1, "{asked:?}");
    let Command::FunctionStats(ids) = &asked[0] else {
        panic!("{asked:?}")
    };
    assert_eq!(ids.len(), 2);
    app.tick(T0 + 10_000 + STATS_EVERY_MS * 2);
    assert!(stats_commands(&mut app).is_empty(), "one round at a time");
    app.apply(Update::FunctionStats(vec![
        detail(&a, 100, 0, 5),
        detail(&b, 10, 5, 900),
    ]));
    app.tick(T0 + 10_000 + STATS_EVERY_MS * 2 + 1);
    assert_eq!(stats_commands(&mut app).len(), 1, "the next round when due");
    app.apply(Update::FunctionStats(vec![]));
    app.on_key(ch('1'));
    app.tick(T0 + 60_000);
    assert!(
        stats_commands(&mut app).is_empty(),
        "nothing once the screen is left"
    );
}

#[test]
fn s_cycles_the_sort_column_and_the_selection_stays_on_its_function() {
    let mut app = app();
    let mut old = function("zeta_old", FunctionFormat::Source);
    old.created_at = T0 - 100;
    let busy = function("busy", FunctionFormat::Source);
    let mut failing = function("failing", FunctionFormat::Source);
    failing.created_at = T0 - 50;
    app.apply(Update::Functions(vec![
        old.clone(),
        busy.clone(),
        failing.clone(),
    ]));
    app.apply(Update::FunctionStats(vec![
        detail(&busy, 1_000, 1, 10),
        detail(&failing, 20, 10, 5),
        // zeta_old has no statistics yet: it sorts last.
    ]));
    app.on_key(ch('4'));
    app.take_commands();
    let names =
        |app: &App| -> Vec<String> { app.functions.list.iter().map(|f| f.name.clone()).collect() };
    assert_eq!(app.functions.sort, Sort::Newest);
    assert_eq!(names(&app), ["busy", "failing", "zeta_old"]);
    app.on_key(ch('j'));
    assert_eq!(app.selected_function().unwrap().name, "failing");
    app.on_key(ch('s'));
    assert_eq!(app.functions.sort, Sort::Name);
    assert_eq!(names(&app), ["busy", "failing", "zeta_old"]);
    app.on_key(ch('s'));
    assert_eq!(app.functions.sort, Sort::Runs);
    assert_eq!(names(&app), ["busy", "failing", "zeta_old"]);
    app.on_key(ch('s'));
    assert_eq!(app.functions.sort, Sort::FailedShare);
    assert_eq!(names(&app), ["failing", "busy", "zeta_old"]);
    assert_eq!(
        app.selected_function().unwrap().name,
        "failing",
        "the selection moved with its function"
    );
    app.on_key(ch('s'));
    assert_eq!(app.functions.sort, Sort::P50);
    assert_eq!(names(&app), ["busy", "failing", "zeta_old"]);
}

#[test]
fn enter_opens_a_function_with_its_recent_failures_and_esc_or_q_steps_back() {
    let mut app = app();
    gateway_up(&mut app);
    let f = function("divide", FunctionFormat::Source);
    app.apply(Update::Functions(vec![f.clone()]));
    app.on_key(ch('4'));
    app.take_commands();
    app.on_key(key(KeyCode::Enter));
    assert!(
        app.functions.form.is_none(),
        "Enter opens the view, not the invoke form"
    );
    assert_eq!(
        app.functions.view.as_ref().map(|v| v.id),
        Some(f.function_id)
    );
    assert_eq!(
        app.take_commands(),
        vec![Command::FunctionFailures(f.function_id)]
    );
    let failure = summary(
        TaskId::new(),
        "divide",
        TaskStatus::Failed,
        "w1",
        Some("ZeroDivisionError"),
    );
    app.apply(Update::FunctionFailures(
        f.function_id,
        Ok(vec![failure.clone()]),
    ));
    let v = app.functions.view.as_ref().unwrap();
    assert_eq!(v.failures, Some(Ok(vec![failure])));
    // The next statistics round reads the failures again too.
    app.apply(Update::FunctionStats(vec![detail(&f, 3, 1, 2)]));
    app.tick(T0 + STATS_EVERY_MS);
    let asked = stats_commands(&mut app);
    assert!(
        asked.contains(&Command::FunctionFailures(f.function_id)),
        "{asked:?}"
    );
    app.on_key(ch('q'));
    assert!(app.functions.view.is_none());
    assert!(!app.quit, "q stepped back");
    app.on_key(ch('i'));
    assert!(
        matches!(app.functions.form, Some(Form::Invoke(_))),
        "i invokes"
    );
}

#[test]
fn only_a_change_asks_for_a_redraw_before_the_idle_second() {
    let mut app = app();
    app.take_dirty();
    let snap = Snapshot {
        queue_len: 3,
        ..Snapshot::default()
    };
    app.apply(Update::Snapshot(snap.clone()));
    assert!(app.take_dirty(), "a new poll result");
    app.apply(Update::Snapshot(snap));
    assert!(!app.take_dirty(), "the same poll result again");
    app.tick(T0 + 200);
    assert!(!app.take_dirty(), "a tick alone");
    app.apply(task_event(TaskId::new(), TaskStatus::Queued, T0));
    assert!(app.take_dirty(), "an event");
    app.on_key(ch('P'));
    app.on_key(ch('y'));
    app.apply(Update::Acted(Ok(Acted::Purged(0))));
    app.take_dirty();
    app.tick(T0 + 60_000);
    assert!(app.notice.is_none());
    assert!(app.take_dirty(), "the notice went away");
}
