//! The register and invoke forms, drawn as popups over the Functions screen.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::Line;
use ratatui::widgets::{Clear, Paragraph};
use ratatui::Frame;

use super::fmt;
use crate::tui::forms::{Fields, Form};

/// Draws `form` centred in `body`: the register form large (it holds an editor), the invoke
/// form just tall enough for its fields.
pub fn render(f: &mut Frame, body: Rect, form: &Form) {
    let height = match form {
        Form::Register(_) => Constraint::Percentage(90),
        Form::Invoke(i) => Constraint::Length(i.fields.fields.len() as u16 * 3 + 4),
    };
    let area = body.centered(Constraint::Percentage(80), height);
    let (title, fields, error, hint) = match form {
        Form::Register(r) => (
            "Register a function (Python source)".to_owned(),
            &r.fields,
            r.error.as_deref(),
            if r.sending {
                "registering…"
            } else {
                "Tab next field · Shift-Tab previous · Ctrl-S register · Esc cancel"
            },
        ),
        Form::Invoke(i) => (
            format!("Invoke {} ({})", i.function.name, i.function.function_id),
            &i.fields,
            i.error.as_deref(),
            "Tab next field · Enter or Ctrl-S invoke · Esc cancel",
        ),
    };
    f.render_widget(Clear, area);
    let block = fmt::boxed(title, area);
    let inner = block.inner(area);
    f.render_widget(block, area);
    render_fields(f, inner, fields, error, hint);
}

fn render_fields(f: &mut Frame, area: Rect, fields: &Fields, error: Option<&str>, hint: &str) {
    let mut constraints: Vec<Constraint> = fields
        .fields
        .iter()
        .map(|fl| {
            if fl.multiline {
                Constraint::Min(5)
            } else {
                Constraint::Length(3)
            }
        })
        .collect();
    constraints.push(Constraint::Length(1));
    constraints.push(Constraint::Length(1));
    let areas = Layout::vertical(constraints).split(area);
    for (field, a) in fields.fields.iter().zip(areas.iter()) {
        f.render_widget(&field.area, *a);
    }
    let n = fields.fields.len();
    if let Some(e) = error {
        f.render_widget(
            Paragraph::new(Line::styled(
                fmt::fit(e, area.width as usize).into_owned(),
                Style::default().fg(Color::Red),
            )),
            areas[n],
        );
    }
    f.render_widget(
        Paragraph::new(Line::styled(
            fmt::fit(hint, area.width as usize).into_owned(),
            fmt::dim(),
        )),
        areas[n + 1],
    );
}
