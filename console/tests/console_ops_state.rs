//! The console's state for draining workers, `faas up`'s daemon reports and the mouse, without a
//! terminal or a network: updates, keys and crossterm mouse events go in, the state and the
//! queued `Command`s are checked. (Apart from console_state.rs so that the two grow apart.)

use faas_console::tui::app::{App, Tab};
use faas_console::tui::msg::{Command, Update};
use faas_console::tui::timeline::Kind;
use faas_console::tui::workers::Health;
use faas_protocol::event::{DaemonState, Event, WorkerState};
use faas_protocol::model::{FunctionSummary, WorkerInfo, WorkerMode};
use faas_protocol::{FunctionFormat, FunctionId, TaskId, TaskStatus};
use ratatui::crossterm::event::{
    KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use ratatui::layout::Rect;

const T0: u64 = 1_700_000_000_000;

fn app() -> App {
    let app = App::new("redis://r", "http://g", T0);
    // As if a 160x45 frame had been drawn (the snapshot tests' big size).
    app.area.set(Rect::new(0, 0, 160, 45));
    app
}

fn ch(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}

fn worker(id: &str, mode: WorkerMode) -> WorkerInfo {
    WorkerInfo {
        id: id.into(),
        mode,
        host: "h1".into(),
        pid: 7,
        dispatcher: "d1".into(),
        slots: 2,
        busy: 1,
        tasks_done: 3,
        joined_at: T0 - 60_000,
        last_heartbeat: T0,
        draining: false,
    }
}

fn worker_event(id: &str, state: WorkerState, at: u64) -> Update {
    Update::Event(Event::Worker {
        worker: id.into(),
        state,
        busy: 1,
        slots: 2,
        at,
    })
}

fn registry(app: &mut App, workers: Vec<WorkerInfo>) {
    app.apply(Update::Snapshot(faas_console::tui::msg::Snapshot {
        workers,
        ..Default::default()
    }));
}

fn click(x: u16, y: u16) -> MouseEvent {
    mouse(MouseEventKind::Down(MouseButton::Left), x, y)
}

fn mouse(kind: MouseEventKind, x: u16, y: u16) -> MouseEvent {
    MouseEvent {
        kind,
        column: x,
        row: y,
        modifiers: KeyModifiers::NONE,
    }
}

#[test]
fn d_drains_the_selected_worker_after_a_yes_that_names_it() {
    let mut app = app();
    registry(
        &mut app,
        vec![worker("a", WorkerMode::Push), worker("b", WorkerMode::Pull)],
    );
    app.on_key(ch('2'));
    app.on_key(KeyEvent::new(KeyCode::Down, KeyModifiers::NONE));
    app.on_key(ch('D'));
    let prompt = app.confirm.as_ref().expect("asks first").prompt.clone();
    assert!(prompt.contains("drain worker b"), "{prompt}");
    assert!(app.take_commands().is_empty(), "nothing before the answer");
    // Any other key answers no.
    app.on_key(ch('n'));
    assert!(app.take_commands().is_empty());
    assert!(app.notice.as_ref().unwrap().text.contains("not drained"));
    app.on_key(ch('D'));
    app.on_key(ch('y'));
    assert_eq!(app.take_commands(), [Command::DrainWorker("b".into())]);
    // The outcome shows in the footer, and a refusal in red.
    app.apply(Update::Drained("b".into(), Ok(())));
    assert!(app.notice.as_ref().unwrap().text.starts_with("draining b"));
    app.apply(Update::Drained("b".into(), Err("no worker".into())));
    let notice = app.notice.as_ref().unwrap();
    assert!(notice.error && notice.text.contains("cannot drain b: no worker"));
}

#[test]
fn a_local_pool_is_not_offered_for_draining() {
    let mut app = app();
    registry(&mut app, vec![worker("local-1", WorkerMode::Local)]);
    app.on_key(ch('2'));
    app.on_key(ch('D'));
    assert!(app.confirm.is_none());
    let notice = app.notice.as_ref().unwrap();
    assert!(notice.error && notice.text.contains("stop the dispatcher"));
}

#[test]
fn a_draining_worker_shows_draining_then_leaves_and_the_timeline_says_so() {
    let mut app = app();
    registry(&mut app, vec![worker("a", WorkerMode::Push)]);
    let row = |app: &App| app.workers.iter().next().map(|r| r.health(T0 + 1_000));
    assert_eq!(row(&app), Some(Health::Online));
    app.apply(worker_event("a", WorkerState::Draining, T0 + 100));
    assert_eq!(row(&app), Some(Health::Draining));
    assert_eq!(Health::Draining.as_str(), "draining");
    // A heartbeat while it drains keeps it draining; so does the registry, which says so.
    app.apply(worker_event("a", WorkerState::Heartbeat, T0 + 200));
    assert_eq!(row(&app), Some(Health::Draining));
    let mut listed = worker("a", WorkerMode::Push);
    listed.draining = true;
    registry(&mut app, vec![listed]);
    assert_eq!(row(&app), Some(Health::Draining));
    app.apply(worker_event("a", WorkerState::Left, T0 + 300));
    assert_eq!(row(&app), None, "left, not lost");
    let texts: Vec<(Kind, bool, String)> = app
        .timeline
        .iter()
        .map(|e| (e.kind, e.bad, e.text.clone()))
        .collect();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert_eq!(texts[0], (Kind::Worker, false, "a left".into()));
    assert!(texts[1].2.starts_with("a draining") && !texts[1].1);
}

#[test]
fn daemon_restarts_reported_by_faas_up_are_on_the_timeline() {
    let mut app = app();
    // As `faas up` publishes it on the events channel.
    let raw = r#"{"type":"daemon","name":"dispatcher","state":"restarted","exit":"killed by SIGKILL","at":1700000000500}"#;
    let ev: Event = serde_json::from_str(raw).unwrap();
    app.apply(Update::Event(ev));
    app.apply(Update::Event(Event::Daemon {
        name: "worker-2".into(),
        state: DaemonState::Exited,
        exit: Some("exit code 0".into()),
        at: T0 + 900,
    }));
    let entries: Vec<_> = app.timeline.iter().collect();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].kind, Kind::Daemon);
    assert_eq!(
        entries[0].text,
        "worker-2 left (exit code 0); not restarted"
    );
    assert!(!entries[0].bad);
    assert_eq!(
        entries[1].text,
        "dispatcher died (killed by SIGKILL); faas up restarted it"
    );
    assert!(entries[1].bad && entries[1].at == T0 + 500);
    assert_eq!(Kind::Daemon.as_str(), "daemon");
}

#[test]
fn clicking_a_tab_switches_to_it() {
    let mut app = app();
    // " faas-console " takes 14 columns; then " 1 Overview │ 2 Workers │ 3 Tasks │ ...".
    let tabs_start = 14;
    let at = |title: &str| {
        let line = " 1 Overview │ 2 Workers │ 3 Tasks │ 4 Functions │ 5 Events ";
        let i = line.find(title).unwrap();
        tabs_start + line[..i].chars().count() as u16
    };
    assert!(app.on_mouse(click(at("3 Tasks"), 0)));
    assert_eq!(app.tab, Tab::Tasks);
    assert!(
        app.on_mouse(click(at("5 Events") + 7, 0)),
        "the title's last column"
    );
    assert_eq!(app.tab, Tab::Events);
    assert!(
        app.on_mouse(click(at("2 Workers") - 1, 0)),
        "its left padding"
    );
    assert_eq!(app.tab, Tab::Workers);
    // The divider, the console's name and the second header line are no tab.
    assert!(!app.on_mouse(click(at("4 Functions") - 2, 0)));
    assert!(!app.on_mouse(click(3, 0)));
    assert!(!app.on_mouse(click(at("1 Overview"), 1)));
    assert_eq!(app.tab, Tab::Workers);
    // Selecting a tab by mouse asks for what the key would (the function list).
    app.take_commands();
    app.on_mouse(click(at("4 Functions"), 0));
    assert_eq!(app.take_commands(), [Command::RefreshFunctions]);
}

#[test]
fn clicking_a_row_selects_it_and_the_wheel_scrolls() {
    let mut app = app();
    registry(
        &mut app,
        (0..5)
            .map(|i| worker(&format!("w{i}"), WorkerMode::Push))
            .collect(),
    );
    app.on_key(ch('2'));
    // Header (2 lines), the table's border and its title row: the first worker is on line 4.
    assert!(app.on_mouse(click(10, 4 + 3)));
    assert_eq!(app.workers_selected, 3);
    assert_eq!(app.selected_worker().unwrap().info.id, "w3");
    assert!(!app.on_mouse(click(10, 4 + 7)), "below the last row");
    assert!(!app.on_mouse(click(10, 3)), "the title row");
    assert_eq!(app.workers_selected, 3);
    // D then drains the clicked worker.
    app.on_key(ch('D'));
    assert!(app.confirm.as_ref().unwrap().prompt.contains("w3"));
    app.on_key(ch('n'));
    // The wheel moves three rows a notch and stops at the ends.
    app.on_mouse(mouse(MouseEventKind::ScrollUp, 10, 10));
    assert_eq!(app.workers_selected, 0);
    app.on_mouse(mouse(MouseEventKind::ScrollDown, 10, 10));
    app.on_mouse(mouse(MouseEventKind::ScrollDown, 10, 10));
    assert_eq!(app.workers_selected, 4);
    // Pointer moves change nothing and need no redraw.
    assert!(!app.on_mouse(mouse(MouseEventKind::Moved, 10, 6)));

    // Functions: the list spans the width; the invocation panel is the bottom third.
    let list: Vec<FunctionSummary> = (0..3)
        .map(|i| FunctionSummary {
            function_id: FunctionId::new(),
            name: format!("f{i}"),
            format: FunctionFormat::Source,
            created_at: T0 - i,
        })
        .collect();
    app.apply(Update::Functions(list));
    app.on_key(ch('4'));
    assert!(app.on_mouse(click(5, 4 + 2)));
    assert_eq!(app.selected_function().unwrap().name, "f2");
    // At 160x45 the body is rows 2-43: the list rows 2-29, the invocation panel 30-43.
    assert!(!app.on_mouse(click(120, 35)), "the invocation panel");
    assert_eq!(app.functions.selected, 2);
    assert!(app.on_mouse(click(120, 4 + 1)), "the list's right side");
    assert_eq!(app.selected_function().unwrap().name, "f1");

    // Tasks: newest first; clicking row 0 follows the newest again.
    let ids: Vec<TaskId> = (0..3).map(|_| TaskId::new()).collect();
    for (i, id) in ids.iter().enumerate() {
        app.apply(Update::Event(Event::Task {
            task_id: *id,
            function_id: None,
            status: TaskStatus::Queued,
            worker: None,
            at: T0 + i as u64,
            outcome: None,
        }));
    }
    app.on_key(ch('3'));
    app.on_mouse(click(5, 4 + 1));
    assert_eq!(app.tasks_view.selected, Some(ids[1]));
    app.on_mouse(click(5, 4));
    assert_eq!(app.tasks_view.selected, None);

    // A scrolled table: rows map through the offset the last frame scrolled to.
    let more: Vec<TaskId> = (0..40).map(|_| TaskId::new()).collect();
    for (i, id) in more.iter().enumerate() {
        app.apply(Update::Event(Event::Task {
            task_id: *id,
            function_id: None,
            status: TaskStatus::Queued,
            worker: None,
            at: T0 + 10 + i as u64,
            outcome: None,
        }));
    }
    let shown: Vec<TaskId> = app.visible_tasks().map(|r| r.id).collect();
    app.tasks_view.offset.set(20);
    assert!(app.on_mouse(click(5, 4 + 2)));
    assert_eq!(app.tasks_view.selected, Some(shown[22]));
    // The / prompt takes keys only.
    app.on_key(ch('/'));
    assert!(!app.on_mouse(click(5, 4 + 3)));
    assert_eq!(app.tasks_view.selected, Some(shown[22]));
}

#[test]
fn the_wheel_scrolls_the_timeline_and_an_open_detail_and_prompts_ignore_the_mouse() {
    let mut app = app();
    for i in 0..10 {
        app.apply(worker_event(&format!("w{i}"), WorkerState::Joined, T0 + i));
    }
    app.on_key(ch('5'));
    app.on_mouse(mouse(MouseEventKind::ScrollDown, 50, 20));
    assert_eq!(app.timeline_scroll, 3);
    app.on_mouse(mouse(MouseEventKind::ScrollUp, 50, 20));
    app.on_mouse(mouse(MouseEventKind::ScrollUp, 50, 20));
    assert_eq!(app.timeline_scroll, 0);

    // A task detail scrolls under the wheel, within what the last drawing allowed.
    let id = TaskId::new();
    app.apply(Update::Event(Event::Task {
        task_id: id,
        function_id: None,
        status: TaskStatus::Queued,
        worker: None,
        at: T0,
        outcome: None,
    }));
    app.on_key(ch('3'));
    app.on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    let detail = app.tasks_view.detail.as_ref().expect("open");
    detail.max_scroll.set(4);
    app.on_mouse(mouse(MouseEventKind::ScrollDown, 50, 20));
    app.on_mouse(mouse(MouseEventKind::ScrollDown, 50, 20));
    assert_eq!(app.tasks_view.detail.as_ref().unwrap().scroll, 4);
    // A click does not reach the list under the detail.
    assert!(!app.on_mouse(click(5, 4)));

    // With a question in the footer, the mouse waits for the answer.
    app.on_key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
    app.supervised = true;
    app.on_key(ch('q'));
    assert!(!app.on_mouse(click(20, 0)));
    assert_eq!(app.tab, Tab::Tasks);
    assert!(app.confirm.is_some(), "still asking");
}

/// Where `text` is drawn on a frame of `app` at `w`x`h`: (column, row) of its first character.
fn find_drawn(app: &App, w: u16, h: u16, text: &str) -> (u16, u16) {
    let mut terminal = ratatui::Terminal::new(ratatui::backend::TestBackend::new(w, h)).unwrap();
    terminal
        .draw(|f| faas_console::tui::render::render(app, f))
        .unwrap();
    let buf = terminal.backend().buffer();
    for y in 0..h {
        let line: Vec<String> = (0..w).map(|x| buf[(x, y)].symbol().to_owned()).collect();
        let joined: String = line.concat();
        if let Some(i) = joined.find(text) {
            // Columns, not bytes: every cell holds one symbol.
            let col = line
                .iter()
                .scan(0, |bytes, s| {
                    *bytes += s.len();
                    Some(*bytes)
                })
                .position(|b| b > i)
                .unwrap();
            return (col as u16, y);
        }
    }
    panic!("{text:?} is not drawn");
}

#[test]
fn clicks_land_where_the_renderer_drew_at_every_size() {
    for (w, h) in [(160, 45), (80, 24), (100, 30)] {
        let mut app = app();
        registry(
            &mut app,
            (0..30)
                .map(|i| worker(&format!("wk{i:02}"), WorkerMode::Push))
                .collect(),
        );
        app.on_key(ch('2'));
        // Far down the list, so the table is scrolled.
        for _ in 0..25 {
            app.on_key(KeyEvent::new(KeyCode::Down, KeyModifiers::NONE));
        }
        let (x, y) = find_drawn(&app, w, h, "4 Functions");
        assert!(app.on_mouse(click(x + 3, y)), "{w}x{h}");
        assert_eq!(app.tab, Tab::Functions, "{w}x{h}");
        app.on_key(ch('2'));
        let (x, y) = find_drawn(&app, w, h, "wk20");
        assert!(app.on_mouse(click(x, y)), "{w}x{h}");
        assert_eq!(app.selected_worker().unwrap().info.id, "wk20", "{w}x{h}");
    }
}
