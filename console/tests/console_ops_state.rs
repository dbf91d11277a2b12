//! The console's state for draining workers and `faas up`'s daemon reports, without a terminal
//! or a network: updates and keys go in, the state and the queued `Command`s are checked. (Apart from console_state.rs so that
//! the two grow apart.)

use faas_console::tui::app::App;
use faas_console::tui::msg::{Command, Update};
use faas_console::tui::timeline::Kind;
use faas_console::tui::workers::Health;
use faas_protocol::event::{DaemonState, Event, WorkerState};
use faas_protocol::model::{WorkerInfo, WorkerMode};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

const T0: u64 = 1_700_000_000_000;

fn app() -> App {
    App::new("redis://r", "http://g", T0)
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
