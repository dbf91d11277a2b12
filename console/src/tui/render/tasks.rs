//! Tasks: the history and the live tasks, newest first, filtered by status and search; the
//! highlighted row is the one Enter opens. Only the rows in the box are built, so a long list
//! costs nothing per frame; the box's bottom line says how far the history is read.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Table, TableState};
use ratatui::Frame;

use super::fmt;
use crate::tui::app::App;
use crate::tui::tasks::{Next, TaskRow};

/// From this width the whole task id fits; below, its first 8 characters tell tasks apart.
const FULL_ID_WIDTH: u16 = 140;

pub fn render(f: &mut Frame, area: Rect, app: &App) {
    let view = &app.tasks_view;
    let rows: Vec<_> = app.visible_tasks().collect();
    let mut title = vec![Span::raw(format!(
        "Tasks, newest first · filter: {}",
        view.filter.map_or("all", |s| s.as_str()),
    ))];
    if !view.search.is_empty() {
        title.push(Span::raw(format!(" · search: {}", view.search.text)));
    }
    title.push(Span::raw(format!(" · {} shown ", rows.len())));
    let new = app.tasks.new_above();
    if new > 0 {
        title.push(Span::styled(
            format!(" {new} new ↑ (g) "),
            Style::default()
                .fg(Color::Black)
                .bg(Color::Cyan)
                .add_modifier(Modifier::BOLD),
        ));
    }
    let block = fmt::boxed(title, area)
        .title_bottom(fmt::fit_line(history_line(app), fmt::inner_width(area)).right_aligned());
    if rows.is_empty() {
        let hint = if !view.search.is_empty() {
            "no task matches the search (Esc clears it, / edits it)"
        } else if view.filter.is_some() {
            "no task with this status (f changes the filter)"
        } else {
            "no tasks yet: they appear here as they are submitted and run"
        };
        f.render_widget(
            Paragraph::new(Span::styled(
                fmt::fit(hint, fmt::inner_width(area)),
                fmt::dim(),
            ))
            .block(block),
            area,
        );
        return;
    }
    // Border and header take three lines.
    let height = area.height.saturating_sub(3).max(1) as usize;
    let selected = app.selected_task_index();
    let offset = view
        .offset
        .get()
        .min(selected)
        .max((selected + 1).saturating_sub(height));
    view.offset.set(offset);
    let full_id = area.width >= FULL_ID_WIDTH;
    let now = app.now_ms;
    let widths = [
        Constraint::Length(if full_id { 36 } else { 9 }),
        Constraint::Min(10),
        Constraint::Length(9),
        Constraint::Length(16),
        Constraint::Length(9),
        Constraint::Length(8),
        Constraint::Min(10),
    ];
    let cols = fmt::columns(area, &widths);
    let table_rows = rows.iter().skip(offset).take(height).map(|t| {
        fmt::fitted_row(
            vec![
                Span::raw(t.id.to_string()),
                Span::raw(function_name(app, t)),
                Span::styled(t.status.as_str(), fmt::status_style(t.status)),
                Span::raw(t.worker.clone().unwrap_or_default()),
                Span::raw(t.duration_ms(now).map(fmt::duration).unwrap_or_default()),
                Span::raw(t.attempts.map(|a| a.to_string()).unwrap_or_default()),
                Span::styled(
                    t.error.clone().unwrap_or_default(),
                    Style::default().fg(Color::Red),
                ),
            ],
            &cols,
        )
    });
    let header = fmt::fitted_row(
        [
            "ID", "FUNCTION", "STATUS", "WORKER", "DURATION", "ATTEMPTS", "ERROR",
        ]
        .map(Span::raw)
        .to_vec(),
        &cols,
    )
    .style(fmt::title());
    let table = Table::new(table_rows, widths)
        .header(header)
        .block(block)
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default().with_selected(Some(selected - offset));
    f.render_stateful_widget(table, area, &mut state);
}

/// The row's function: as read back, else by its id from the function list (under a flood
/// only the newest rows are read back), else `…` while unknown.
fn function_name(app: &App, t: &TaskRow) -> String {
    t.function
        .clone()
        .or_else(|| {
            let id = t.function_id?;
            let f = app.functions.list.iter().find(|f| f.function_id == id)?;
            Some(f.name.clone())
        })
        .unwrap_or_else(|| "…".into())
}

/// How far the history is read, for the box's bottom line.
fn history_line(app: &App) -> Line<'static> {
    let h = &app.tasks.history;
    let text = if let Some(e) = &h.error {
        return Line::styled(
            format!(" history: {} ", fmt::fit(e, 60)),
            Style::default().fg(Color::Red),
        );
    } else if h.in_flight {
        "reading the history…".to_owned()
    } else {
        match &h.next {
            Next::Start => "history not read yet (gateway down?)".to_owned(),
            Next::Cursor(_) if !app.tasks_view.search.is_empty() => format!(
                "searched the newest {} tasks · ↓ reads older",
                fmt::count(h.scanned as u64)
            ),
            Next::Cursor(_) => "older ↓".to_owned(),
            Next::End => "all history read".to_owned(),
            Next::Dropped => "older rows dropped at the cap · g reads again".to_owned(),
        }
    };
    Line::styled(format!(" {text} "), fmt::dim())
}
