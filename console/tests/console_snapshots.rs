//! Every screen drawn from a fixed state into a 100×30 `TestBackend` and compared with its
//! insta snapshot (`cargo insta review` after an intended change), plus checks of the colours
//! that the text snapshots cannot show.

use faas_console::tui::app::App;
use faas_console::tui::msg::{Link, Snapshot, Stats, TaskInfo, Update};
use faas_console::tui::render::render;
use faas_protocol::api::{
    FunctionDetail, FunctionStats, Percentiles, ResultReply, TaskErrorBrief, TaskSummary,
};
use faas_protocol::event::{Event, WorkerState};
use faas_protocol::model::{FunctionSummary, TaskError, TaskRecord, WorkerInfo, WorkerMode};
use faas_protocol::{FunctionFormat, TaskId, TaskStatus};
use insta::assert_snapshot;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::Color;
use ratatui::Terminal;
use serde_json::json;

const T0: u64 = 1_700_000_000_000;

fn id<T: std::str::FromStr>(n: u8) -> T
where
    T::Err: std::fmt::Debug,
{
    format!("00000000-0000-4000-8000-0000000000{n:02x}")
        .parse()
        .unwrap()
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn press(app: &mut App, keys: &str) {
    for c in keys.chars() {
        app.on_key(key(KeyCode::Char(c)));
    }
}

fn draw(app: &App) -> Terminal<TestBackend> {
    draw_at(app, 100, 30)
}

fn draw_at(app: &App, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| render(app, f)).unwrap();
    terminal
}

fn worker(name: &str, mode: WorkerMode, busy: u32, slots: u32, age_ms: u64) -> WorkerInfo {
    WorkerInfo {
        id: name.into(),
        mode,
        host: "node-1".into(),
        pid: 4242,
        dispatcher: "dispatcher-1".into(),
        slots,
        busy,
        tasks_done: 1234,
        joined_at: T0 - 3_600_000,
        last_heartbeat: T0 - age_ms,
        draining: false,
    }
}

fn task(app: &mut App, n: u8, function: &str, events: &[(TaskStatus, u64)]) -> TaskId {
    let tid: TaskId = id(n);
    for (status, at) in events {
        app.apply(Update::Event(Event::Task {
            task_id: tid,
            function_id: None,
            status: *status,
            worker: (*status != TaskStatus::Queued).then(|| "w-push-1".to_owned()),
            at: *at,
            outcome: None,
        }));
    }
    app.apply(Update::Tasks(vec![(
        tid,
        TaskInfo {
            function_name: Some(function.into()),
            ..TaskInfo::default()
        },
    )]));
    tid
}

/// A console that has been watching a busy platform for a while.
fn busy_app() -> App {
    let mut app = App::new("redis://127.0.0.1:6379", "http://127.0.0.1:8000", T0);
    app.apply(Update::RedisEvents(Link::Up {
        since_ms: T0 - 125_000,
    }));
    app.apply(Update::RedisPoll(Link::Up {
        since_ms: T0 - 125_000,
    }));
    app.apply(Update::Gateway(Link::Up {
        since_ms: T0 - 65_000,
    }));
    app.apply(Update::Snapshot(Snapshot {
        stats: Stats {
            submitted: 1_234_567,
            completed: 1_230_000,
            failed: 321,
            requeued: 12,
        },
        queue_len: 4_246,
        pending: 8,
        workers: vec![
            worker("w-local-1", WorkerMode::Local, 2, 2, 1_000),
            worker("w-pull-1", WorkerMode::Pull, 0, 4, 12_000),
            worker("w-push-1", WorkerMode::Push, 3, 4, 2_000),
        ],
    }));
    app.apply(Update::Event(Event::Worker {
        worker: "w-push-2".into(),
        state: WorkerState::Joined,
        busy: 0,
        slots: 4,
        at: T0 - 40_000,
    }));
    app.apply(Update::Event(Event::Worker {
        worker: "w-push-2".into(),
        state: WorkerState::Lost,
        busy: 0,
        slots: 4,
        at: T0 - 5_000,
    }));
    // Throughput: a ramp over the last 40 seconds.
    for s in 0..40u64 {
        app.tick(T0 - (40 - s) * 1000);
        for _ in 0..s {
            let t = TaskId::new();
            app.apply(Update::Event(Event::Task {
                task_id: t,
                function_id: None,
                status: TaskStatus::Completed,
                worker: None,
                at: app.now_ms,
                outcome: None,
            }));
        }
    }
    app.tick(T0);
    app.take_commands();
    // Replace the throughput filler rows by a few tasks that read well.
    app.tasks = Default::default();
    task(
        &mut app,
        1,
        "add",
        &[
            (TaskStatus::Queued, T0 - 9_000),
            (TaskStatus::Running, T0 - 8_990),
            (TaskStatus::Completed, T0 - 8_978),
        ],
    );
    task(
        &mut app,
        2,
        "divide",
        &[
            (TaskStatus::Queued, T0 - 7_000),
            (TaskStatus::Running, T0 - 6_900),
            (TaskStatus::Failed, T0 - 6_850),
        ],
    );
    task(
        &mut app,
        3,
        "resize_image",
        &[
            (TaskStatus::Queued, T0 - 3_000),
            (TaskStatus::Running, T0 - 2_500),
        ],
    );
    task(&mut app, 4, "add", &[(TaskStatus::Queued, T0 - 100)]);
    // Below the live rows, one from the gateway's history: it failed before the console started.
    app.apply(Update::TaskPage {
        generation: app.tasks.history.generation,
        page: Ok((
            vec![TaskSummary {
                task_id: id(0x10),
                function_id: id(0xf2),
                function_name: "resize_image".into(),
                status: TaskStatus::Failed,
                worker: Some("w-pull-1".into()),
                attempts: 3,
                max_attempts: 3,
                created_at: T0 - 600_000,
                started_at: Some(T0 - 599_000),
                finished_at: Some(T0 - 569_000),
                error: Some(TaskErrorBrief {
                    kind: "TimeoutError".into(),
                    message: "ran past 30s".into(),
                }),
                retry_of: None,
            }],
            None,
        )),
    });
    app.take_commands();
    app
}

#[test]
fn overview() {
    let app = busy_app();
    assert_snapshot!(draw(&app).backend());
}

#[test]
fn overview_before_anything_was_read_while_redis_is_down() {
    let mut app = App::new("redis://127.0.0.1:6379", "http://127.0.0.1:8000", T0);
    app.apply(Update::RedisEvents(Link::Down {
        retry_at_ms: T0 + 1_000,
        error: "Connection refused (os error 111)".into(),
    }));
    let terminal = draw(&app);
    assert_snapshot!(terminal.backend());
    // The indicator is red, so it is seen from across the room.
    let buf = terminal.backend().buffer();
    let x = (0..100)
        .find(|x| buf[(*x, 1)].symbol() == "✕")
        .expect("a ✕ in the header");
    assert_eq!(buf[(x, 1)].fg, Color::Red);
}

#[test]
fn workers() {
    let mut app = busy_app();
    press(&mut app, "2");
    let terminal = draw(&app);
    assert_snapshot!(terminal.backend());
    let buf = terminal.backend().buffer();
    let state_colour = |word: &str| {
        (0..30)
            .flat_map(|y| (0..95).map(move |x| (x, y)))
            .find(|(x, y)| {
                (0..word.len() as u16)
                    .map(|i| buf[(x + i, *y)].symbol())
                    .collect::<String>()
                    == word
            })
            .map(|(x, y)| buf[(x, y)].fg)
    };
    assert_eq!(state_colour("online"), Some(Color::Green));
    assert_eq!(state_colour("late"), Some(Color::Yellow));
    assert_eq!(state_colour("lost"), Some(Color::Red));
}

#[test]
fn tasks() {
    let mut app = busy_app();
    press(&mut app, "3");
    let terminal = draw(&app);
    assert_snapshot!(terminal.backend());
    let buf = terminal.backend().buffer();
    // Rows: header at y=3, then newest first; COMPLETED (task 1) is the last row, at y=7.
    let status_x = (0..100).find(|x| buf[(*x, 3)].symbol() == "S").unwrap();
    assert_eq!(buf[(status_x, 7)].symbol(), "C");
    assert_eq!(buf[(status_x, 7)].fg, Color::Green);
    assert_eq!(buf[(status_x, 6)].fg, Color::Red, "FAILED is red");
}

#[test]
fn tasks_filtered_by_status() {
    let mut app = busy_app();
    press(&mut app, "3ff");
    assert_snapshot!(draw(&app).backend());
}

/// The screens at a big, the classic and a too-small terminal (the three sizes).
#[test]
fn sizes() {
    let mut app = busy_app();
    for tab in ["1", "2", "3", "4", "5"] {
        press(&mut app, tab);
        assert_snapshot!(
            format!("screen_{tab}_at_160x45"),
            draw_at(&app, 160, 45).backend()
        );
        assert_snapshot!(
            format!("screen_{tab}_at_80x24"),
            draw_at(&app, 80, 24).backend()
        );
    }
    assert_snapshot!("too_small_at_40x12", draw_at(&app, 40, 12).backend());
}

#[test]
fn quitting_under_faas_up_asks_in_the_footer() {
    let mut app = busy_app();
    app.supervised = true;
    press(&mut app, "q");
    assert!(!app.quit);
    assert_snapshot!(draw_at(&app, 80, 24).backend());
    // Even on a terminal too small for the screens, the question shows.
    let small = format!("{:?}", draw_at(&app, 40, 12).backend());
    assert!(small.contains("stop the platform"), "{small}");
}

#[test]
fn detail_scrolling_stops_at_the_end_and_says_where_it_is() {
    let mut app = busy_app();
    press(&mut app, "3jj");
    app.on_key(key(KeyCode::Enter));
    let tid: TaskId = id(2);
    let mut record = failed_record(tid);
    record.log = (1..=60).map(|i| format!("line {i}\n")).collect();
    app.apply(Update::TaskDetail(tid, Ok(record)));
    draw(&app);
    for _ in 0..200 {
        app.on_key(key(KeyCode::Down));
    }
    let max = app.tasks_view.detail.as_ref().unwrap().max_scroll.get();
    assert!(max > 0 && max < 200, "{max}");
    assert_eq!(
        app.tasks_view.detail.as_ref().unwrap().scroll,
        max,
        "stops at the end"
    );
    let screen = format!("{:?}", draw(&app).backend());
    assert!(screen.contains("line 60"), "the last line is on screen");
    assert!(screen.contains(" of "), "with the position: {screen}");
    app.on_key(key(KeyCode::Up));
    assert_eq!(
        app.tasks_view.detail.as_ref().unwrap().scroll,
        max - 1,
        "one key back up moves at once"
    );
}

fn failed_record(tid: TaskId) -> TaskRecord {
    TaskRecord {
        task_id: tid,
        function_id: id(0xf1),
        function_name: "divide".into(),
        format: FunctionFormat::Source,
        status: TaskStatus::Failed,
        args: json!({"args": [1, 0], "kwargs": {}}),
        result: serde_json::Value::Null,
        error: Some(TaskError {
            kind: "ZeroDivisionError".into(),
            message: "division by zero".into(),
            traceback: "Traceback (most recent call last):\n  File \"<source>\", line 2, in divide\nZeroDivisionError: division by zero".into(),
        }),
        log: "dividing 1 by 0\n".into(),
        attempts: 1,
        max_attempts: 3,
        timeout_ms: Some(30_000),
        worker: Some("w-push-1".into()),
        created_at: T0 - 7_000,
        started_at: Some(T0 - 6_900),
        finished_at: Some(T0 - 6_850),
        retry_of: None,
    }
}

#[test]
fn task_detail_with_error_and_traceback() {
    let mut app = busy_app();
    press(&mut app, "3jj");
    app.on_key(key(KeyCode::Enter));
    let tid: TaskId = id(2);
    assert_eq!(app.tasks_view.detail.as_ref().map(|d| d.id), Some(tid));
    app.apply(Update::TaskDetail(tid, Ok(failed_record(tid))));
    assert_snapshot!(draw(&app).backend());
}

fn with_functions(app: &mut App) -> FunctionSummary {
    let add = FunctionSummary {
        function_id: id(0xa1),
        name: "add".into(),
        format: FunctionFormat::Source,
        created_at: T0 - 30_000,
    };
    let legacy = FunctionSummary {
        function_id: id(0xa2),
        name: "legacy_pickle".into(),
        format: FunctionFormat::Dill,
        created_at: T0 - 7_200_000,
    };
    app.apply(Update::Functions(vec![legacy, add.clone()]));
    add
}

#[test]
fn functions_with_a_completed_invocation() {
    let mut app = busy_app();
    press(&mut app, "4");
    with_functions(&mut app);
    press(&mut app, "i");
    press(&mut app, "[2, 3]");
    app.on_key(key(KeyCode::Enter));
    let tid: TaskId = id(9);
    app.apply(Update::Invoked(Ok(tid)));
    app.apply(Update::InvokeResult(ResultReply {
        task_id: tid,
        status: TaskStatus::Completed,
        result: json!(5),
        error: None,
    }));
    assert_snapshot!(draw(&app).backend());
}

#[test]
fn register_form() {
    let mut app = busy_app();
    press(&mut app, "4");
    with_functions(&mut app);
    press(&mut app, "n");
    press(&mut app, "mul");
    app.on_key(key(KeyCode::Tab));
    app.on_key(key(KeyCode::Tab));
    press(&mut app, "def mul(a, b):");
    app.on_key(key(KeyCode::Enter));
    press(&mut app, "    return a * b");
    assert_snapshot!(draw(&app).backend());
}

#[test]
fn invoke_form_with_an_error() {
    let mut app = busy_app();
    press(&mut app, "4");
    with_functions(&mut app);
    press(&mut app, "i{\"a\": 1}");
    app.on_key(key(KeyCode::Enter));
    assert_snapshot!(draw(&app).backend());
}

#[test]
fn help() {
    let mut app = busy_app();
    press(&mut app, "?");
    assert_snapshot!(draw(&app).backend());
}

/// At 160x45 the keys are split in two columns, and every one of them is on the screen.
#[test]
fn help_in_two_columns_at_160x45() {
    let mut app = busy_app();
    press(&mut app, "?");
    let terminal = draw_at(&app, 160, 45);
    let screen: String = terminal
        .backend()
        .buffer()
        .content()
        .iter()
        .map(|c| c.symbol())
        .collect();
    for last_of_each in [
        "Overview, Workers",
        "select / drain",
        "close / reload",
        "reload the list",
        "newest / oldest",
        "cancel (asks first",
    ] {
        assert!(screen.contains(last_of_each), "{last_of_each} not shown");
    }
    assert!(!screen.contains("more below"));
    assert_snapshot!(terminal.backend());
}

#[test]
fn cancel_asks_in_the_footer_naming_the_task() {
    let mut app = busy_app();
    press(&mut app, "3jx");
    assert_snapshot!(draw_at(&app, 80, 24).backend());
}

/// The function list with its health columns, sorted by the share failed.
fn with_function_stats(app: &mut App) -> FunctionSummary {
    let add = with_functions(app);
    let pct = |p50: u64, samples: u64| Percentiles {
        p50,
        p95: p50 * 3,
        p99: p50 * 5,
        samples,
    };
    app.apply(Update::FunctionStats(vec![FunctionDetail {
        function_id: add.function_id,
        name: add.name.clone(),
        format: add.format,
        entrypoint: Some("add".into()),
        created_at: add.created_at,
        stats: FunctionStats {
            invocations: 12_345,
            completed: 12_000,
            failed: 300,
            cancelled: 45,
            run_ms: Some(pct(12, 1_000)),
            queue_wait_ms: Some(pct(3, 1_000)),
            last_failure_at: Some(T0 - 90_000),
            last_failure_type: Some("ZeroDivisionError".into()),
        },
    }]));
    add
}

#[test]
fn functions_with_their_health_sorted_by_the_share_failed() {
    let mut app = busy_app();
    press(&mut app, "4");
    with_function_stats(&mut app);
    press(&mut app, "sss");
    assert_eq!(app.functions.sort.column(), "FAILED %");
    assert_snapshot!(
        "functions_health_at_160x45",
        draw_at(&app, 160, 45).backend()
    );
    assert_snapshot!("functions_health_at_80x24", draw_at(&app, 80, 24).backend());
}

#[test]
fn a_function_with_its_recent_failures() {
    let mut app = busy_app();
    press(&mut app, "4");
    let add = with_function_stats(&mut app);
    app.on_key(key(KeyCode::Enter));
    app.apply(Update::FunctionFailures(
        add.function_id,
        Ok(vec![TaskSummary {
            task_id: id(0x21),
            function_id: add.function_id,
            function_name: "add".into(),
            status: TaskStatus::Failed,
            worker: Some("w-push-1".into()),
            attempts: 1,
            max_attempts: 1,
            created_at: T0 - 91_000,
            started_at: Some(T0 - 90_500),
            finished_at: Some(T0 - 90_000),
            error: Some(TaskErrorBrief {
                kind: "ZeroDivisionError".into(),
                message: "division by zero".into(),
            }),
            retry_of: None,
        }]),
    ));
    assert_snapshot!(draw(&app).backend());
}

#[test]
fn new_tasks_above_a_selected_row_are_counted_not_shown() {
    let mut app = busy_app();
    press(&mut app, "3jj");
    for n in 0x30..0x33 {
        app.apply(Update::Event(Event::Task {
            task_id: id(n),
            function_id: None,
            status: TaskStatus::Queued,
            worker: None,
            at: T0,
            outcome: None,
        }));
    }
    assert_snapshot!(draw_at(&app, 80, 24).backend());
}

#[test]
fn the_search_prompt_and_a_search_applied() {
    let mut app = busy_app();
    press(&mut app, "3/timeout");
    assert_snapshot!("search_prompt", draw_at(&app, 80, 24).backend());
    app.on_key(key(KeyCode::Enter));
    // The search starts the history over; the gateway's page is matched here.
    let summary = |n: u8, status: TaskStatus, error: Option<&str>| TaskSummary {
        task_id: id(n),
        function_id: id(0xf2),
        function_name: "resize_image".into(),
        status,
        worker: Some("w-pull-1".into()),
        attempts: 1,
        max_attempts: 3,
        created_at: T0 - 600_000,
        started_at: Some(T0 - 599_000),
        finished_at: Some(T0 - 569_000),
        error: error.map(|kind| TaskErrorBrief {
            kind: kind.into(),
            message: "ran past 30s".into(),
        }),
        retry_of: None,
    };
    app.apply(Update::TaskPage {
        generation: app.tasks.history.generation,
        page: Ok((
            vec![
                summary(0x11, TaskStatus::Completed, None),
                summary(0x10, TaskStatus::Failed, Some("TimeoutError")),
            ],
            None,
        )),
    });
    assert_snapshot!("search_applied", draw_at(&app, 80, 24).backend());
}

#[test]
fn a_row_never_read_back_is_named_from_the_function_list() {
    let mut app = App::new("redis://127.0.0.1:6379", "http://127.0.0.1:8000", T0);
    let add = with_functions(&mut app);
    app.apply(Update::Event(Event::Task {
        task_id: id(1),
        function_id: Some(add.function_id),
        status: TaskStatus::Queued,
        worker: None,
        at: T0,
        outcome: None,
    }));
    app.apply(Update::Event(Event::Task {
        task_id: id(2),
        function_id: None,
        status: TaskStatus::Queued,
        worker: None,
        at: T0 + 1,
        outcome: None,
    }));
    press(&mut app, "3");
    let screen = format!("{:?}", draw_at(&app, 160, 45).backend());
    let row = |n: &str| {
        screen
            .lines()
            .find(|l| l.contains(n))
            .unwrap_or_else(|| panic!("no row {n} in\n{screen}"))
            .to_owned()
    };
    assert!(row("00000000-0000-4000-8000-000000000001").contains(" add "));
    assert!(row("00000000-0000-4000-8000-000000000002").contains(" … "));
}
