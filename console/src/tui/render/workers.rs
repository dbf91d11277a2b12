//! Workers: one row per worker with where it runs (host:pid, dispatcher), its load, the age of
//! its last heartbeat and its health (online, draining, late, lost); the selected row is the
//! one `D` drains.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Span;
use ratatui::widgets::{Paragraph, Table, TableState};
use ratatui::Frame;

use super::fmt;
use crate::tui::app::App;
use crate::tui::workers::Health;

/// Worker ids carry a uuid and once took ~95 columns: the id column gets what the others leave,
/// at most this, and is cut with an ellipsis (its start, mode and host, tells workers apart).
const ID_MAX: usize = 36;
const HOST_WIDTH: usize = 22;
const DISPATCHER_WIDTH: usize = 20;
/// Fits the longest state, `draining`.
const STATE_WIDTH: usize = 8;
/// Below this width the dispatcher column is left out, so that the others keep their room.
const DISPATCHER_FROM: u16 = 100;

pub fn render(f: &mut Frame, area: Rect, app: &App) {
    let block = fmt::boxed(format!("Workers ({})", app.workers.len()), area);
    if app.workers.is_empty() {
        f.render_widget(
            Paragraph::new(Span::styled(
                fmt::fit(
                    "no workers registered (dispatchers list their workers in the registry)",
                    fmt::inner_width(area),
                ),
                fmt::dim(),
            ))
            .block(block),
            area,
        );
        return;
    }
    let dispatcher = area.width >= DISPATCHER_FROM;
    // MODE, HOST:PID, [DISPATCHER,] SLOTS, HEARTBEAT, STATE, DONE, and a space between columns.
    let mut fixed = vec![6, HOST_WIDTH, 7, 11, STATE_WIDTH, 9];
    if dispatcher {
        fixed.push(DISPATCHER_WIDTH);
    }
    let taken: usize = fixed.iter().sum::<usize>() + fixed.len();
    let id_width = (area.width as usize)
        .saturating_sub(2 + taken)
        .clamp(8, ID_MAX);
    let mut widths = vec![
        Constraint::Length(id_width as u16),
        Constraint::Length(6),
        Constraint::Length(HOST_WIDTH as u16),
    ];
    let mut titles = vec!["ID", "MODE", "HOST:PID"];
    if dispatcher {
        widths.push(Constraint::Length(DISPATCHER_WIDTH as u16));
        titles.push("DISPATCHER");
    }
    widths.extend([
        Constraint::Length(7),
        Constraint::Length(11),
        Constraint::Length(STATE_WIDTH as u16),
        Constraint::Length(9),
    ]);
    titles.extend(["SLOTS", "HEARTBEAT", "STATE", "DONE"]);
    let cols = fmt::columns(area, &widths);
    let now = app.now_ms;
    let rows = app.workers.iter().map(|w| {
        let i = &w.info;
        let health = w.health(now);
        let colour = match health {
            Health::Online => Color::Green,
            Health::Draining => Color::Cyan,
            Health::Late => Color::Yellow,
            Health::Lost => Color::Red,
        };
        let unknown = |s: String| Span::raw(if w.registered { s } else { "?".to_owned() });
        let mut cells = vec![
            Span::raw(i.id.clone()),
            unknown(format!("{:?}", i.mode).to_lowercase()),
            unknown(format!("{}:{}", i.host, i.pid)),
        ];
        if dispatcher {
            cells.push(unknown(i.dispatcher.clone()));
        }
        cells.extend([
            Span::raw(format!("{}/{}", i.busy, i.slots)),
            Span::raw(format!(
                "{} ago",
                fmt::duration(now.saturating_sub(i.last_heartbeat))
            )),
            Span::styled(health.as_str(), Style::default().fg(colour)),
            Span::raw(fmt::count(i.tasks_done)),
        ]);
        fmt::fitted_row(cells, &cols)
    });
    let header =
        fmt::fitted_row(titles.into_iter().map(Span::raw).collect(), &cols).style(fmt::title());
    let table = Table::new(rows, widths)
        .header(header)
        .block(block)
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    let selected = app
        .workers_selected
        .min(app.workers.len().saturating_sub(1));
    let mut state = TableState::default().with_selected(Some(selected));
    f.render_stateful_widget(table, area, &mut state);
}
