//! Functions: the registered functions on the left, the last invocation made from the console
//! on the right (its task, live status, and the result or error once it arrives).

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, TableState, Wrap};
use ratatui::Frame;

use super::fmt;
use crate::tui::app::{App, Invocation};

pub fn render(f: &mut Frame, area: Rect, app: &App) {
    let [list, invocation] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(area);
    render_list(f, list, app);
    let block = Block::bordered().title("Last invocation");
    let lines = match &app.functions.invocation {
        None => vec![Line::styled(
            "select a function and press i to invoke it; n registers a new one",
            fmt::dim(),
        )],
        Some(inv) => invocation_lines(inv),
    };
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block),
        invocation,
    );
}

fn render_list(f: &mut Frame, area: Rect, app: &App) {
    let fns = &app.functions;
    let block = Block::bordered().title(format!("Functions ({})", fns.list.len()));
    if fns.list.is_empty() {
        let hint = if fns.loaded {
            "no functions registered: press n to register one"
        } else {
            "reading the function list from the gateway…"
        };
        f.render_widget(
            Paragraph::new(Span::styled(hint, fmt::dim())).block(block),
            area,
        );
        return;
    }
    let rows = fns.list.iter().map(|func| {
        Row::new(vec![
            Cell::from(func.name.clone()),
            Cell::from(func.format.as_str()),
            // The full id is in the invoke form's title; the list only needs to tell them apart.
            Cell::from(fmt::truncate(&func.function_id.to_string(), 9)),
            Cell::from(fmt::duration(app.now_ms.saturating_sub(func.created_at))),
        ])
    });
    let widths = [
        Constraint::Min(10),
        Constraint::Length(6),
        Constraint::Length(9),
        Constraint::Length(7),
    ];
    let header = Row::new(["NAME", "FORMAT", "ID", "AGE"]).style(fmt::title());
    let table = Table::new(rows, widths)
        .header(header)
        .block(block)
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default().with_selected(Some(fns.selected));
    f.render_stateful_widget(table, area, &mut state);
}

fn invocation_lines(inv: &Invocation) -> Vec<Line<'static>> {
    let mut lines = vec![Line::from(vec![
        Span::styled("function ", fmt::dim()),
        Span::raw(inv.function.clone()),
    ])];
    if let Some(e) = &inv.failure {
        lines.push(Line::styled(
            format!("not submitted: {e}"),
            Style::default().fg(Color::Red),
        ));
        return lines;
    }
    let Some(id) = inv.task_id else {
        lines.push(Line::styled("submitting…", fmt::dim()));
        return lines;
    };
    lines.push(Line::from(vec![
        Span::styled("task     ", fmt::dim()),
        Span::raw(id.to_string()),
    ]));
    if let Some(s) = inv.status {
        lines.push(Line::from(vec![
            Span::styled("status   ", fmt::dim()),
            Span::styled(s.as_str(), fmt::status_style(s)),
        ]));
    }
    match (&inv.result, &inv.error) {
        (_, Some(e)) => {
            lines.push(Line::styled(
                format!("error    {}: {}", e.kind, e.message),
                Style::default().fg(Color::Red),
            ));
            for l in e.traceback.lines() {
                lines.push(Line::styled(l.to_owned(), Style::default().fg(Color::Red)));
            }
        }
        (Some(r), None) => {
            let text = fmt::json(r);
            let mut body = text.lines();
            lines.push(Line::from(vec![
                Span::styled("result   ", fmt::dim()),
                Span::styled(body.next().unwrap_or("").to_owned(), fmt::title()),
            ]));
            lines.extend(body.map(|l| Line::raw(format!("         {l}"))));
        }
        (None, None) => lines.push(Line::styled("waiting for the result…", fmt::dim())),
    }
    lines
}
