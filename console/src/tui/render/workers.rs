//! Workers: one row per worker with its load, the age of its last heartbeat and its health.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::Span;
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table};
use ratatui::Frame;

use super::fmt;
use crate::tui::app::App;
use crate::tui::workers::Health;

pub fn render(f: &mut Frame, area: Rect, app: &App) {
    let block = Block::bordered().title(format!("Workers ({})", app.workers.len()));
    if app.workers.is_empty() {
        f.render_widget(
            Paragraph::new(Span::styled(
                "no workers registered (dispatchers list their workers in the registry)",
                fmt::dim(),
            ))
            .block(block),
            area,
        );
        return;
    }
    let now = app.now_ms;
    let rows = app.workers.iter().map(|w| {
        let i = &w.info;
        let health = w.health(now);
        let colour = match health {
            Health::Online => Color::Green,
            Health::Late => Color::Yellow,
            Health::Lost => Color::Red,
        };
        let unknown = |s: String| if w.registered { s } else { "?".to_owned() };
        Row::new(vec![
            Cell::from(i.id.clone()),
            Cell::from(unknown(format!("{:?}", i.mode).to_lowercase())),
            Cell::from(unknown(i.host.clone())),
            Cell::from(format!("{}/{}", i.busy, i.slots)),
            Cell::from(format!(
                "{} ago",
                fmt::duration(now.saturating_sub(i.last_heartbeat))
            )),
            Cell::from(Span::styled(health.as_str(), Style::default().fg(colour))),
            Cell::from(fmt::count(i.tasks_done)),
        ])
    });
    let widths = [
        Constraint::Min(16),
        Constraint::Length(6),
        Constraint::Length(16),
        Constraint::Length(7),
        Constraint::Length(11),
        Constraint::Length(7),
        Constraint::Length(9),
    ];
    let header =
        Row::new(["ID", "MODE", "HOST", "SLOTS", "HEARTBEAT", "STATE", "DONE"]).style(fmt::title());
    f.render_widget(Table::new(rows, widths).header(header).block(block), area);
}
