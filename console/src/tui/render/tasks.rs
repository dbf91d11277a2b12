//! Tasks: the live list, newest first, optionally filtered by status; the highlighted row is the
//! one Enter opens.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::Span;
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use super::fmt;
use crate::tui::app::App;
use crate::tui::tasks::TASK_LIST_CAP;

pub fn render(f: &mut Frame, area: Rect, app: &App) {
    let filter = app.tasks_view.filter;
    let rows: Vec<_> = app.tasks.iter(filter).collect();
    let title = format!(
        "Tasks, newest first · filter: {} · {} shown of the last {} seen",
        filter.map_or("all", |s| s.as_str()),
        rows.len(),
        app.tasks.len().min(TASK_LIST_CAP),
    );
    let block = Block::bordered().title(title);
    if rows.is_empty() {
        let hint = if app.tasks.is_empty() {
            "no task events yet: tasks appear here as they are submitted and run"
        } else {
            "no task with this status (f changes the filter)"
        };
        f.render_widget(
            Paragraph::new(Span::styled(hint, fmt::dim())).block(block),
            area,
        );
        return;
    }
    let now = app.now_ms;
    let table_rows = rows.iter().map(|t| {
        Row::new(vec![
            Cell::from(t.id.to_string()),
            Cell::from(t.function.clone().unwrap_or_else(|| "…".into())),
            Cell::from(Span::styled(t.status.as_str(), fmt::status_style(t.status))),
            Cell::from(t.worker.clone().unwrap_or_default()),
            Cell::from(t.duration_ms(now).map(fmt::duration).unwrap_or_default()),
            Cell::from(t.attempts.map(|a| a.to_string()).unwrap_or_default()),
        ])
    });
    let widths = [
        Constraint::Length(36),
        Constraint::Min(10),
        Constraint::Length(9),
        Constraint::Length(16),
        Constraint::Length(9),
        Constraint::Length(8),
    ];
    let header = Row::new(["ID", "FUNCTION", "STATUS", "WORKER", "DURATION", "ATTEMPTS"])
        .style(fmt::title());
    let table = Table::new(table_rows, widths)
        .header(header)
        .block(block)
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default().with_selected(Some(app.selected_task_index()));
    f.render_stateful_widget(table, area, &mut state);
}
