//! Drawing the state: `render(&App, &mut Frame)`, one file per screen region. Rendering only
//! reads the state (no I/O, no clock: times come from `App::now_ms`), so a fixed state always
//! draws the same screen, which is what the snapshot tests rely on.
//!
//! ```text
//! ┌───────────────────────────────────────────────────────────────────────────────┐
//! │ faas-console │ 1 Overview │ 2 Workers │ 3 Tasks │ 4 Functions │ 5 Events  (tabs) │
//! │ redis ● connected 3m · redis://…   gateway ● connected 3m · http://…           │
//! ├───────────────────────────────────────────────────────────────────────────────┤
//! │                                                                               │
//! │  the selected tab: overview.rs | workers.rs | tasks.rs | functions.rs | events.rs │
//! │                                                                               │
//! │        overlays on top: detail.rs (a task) · forms.rs (register/invoke)       │
//! │                         functions.rs' view (a function) · help.rs (keys)      │
//! ├───────────────────────────────────────────────────────────────────────────────┤
//! │ keys of the current screen                               notice   footer.rs   │
//! └───────────────────────────────────────────────────────────────────────────────┘
//! ```

mod detail;
mod events;
mod fmt;
mod footer;
mod forms;
mod functions;
mod header;
mod help;
pub mod hit;
mod overview;
mod tasks;
mod workers;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::Line;
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::app::{App, Tab};

/// The smallest terminal the screens are laid out for: the five tabs fit in 72 columns, and 15 rows leave the boxes room for their numbers. Below it the console says so
/// rather than drawing boxes with their contents cut away.
pub const MIN_WIDTH: u16 = 72;
pub const MIN_HEIGHT: u16 = 15;

pub fn render(app: &App, f: &mut Frame) {
    let area = f.area();
    // The mouse is mapped back through this frame's layout (`hit`).
    app.area.set(area);
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        too_small(app, f, area);
        return;
    }
    let [head, body, foot] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(f.area());
    header::render(f, head, app);
    match app.tab {
        Tab::Overview => overview::render(f, body, app),
        Tab::Workers => workers::render(f, body, app),
        Tab::Tasks => tasks::render(f, body, app),
        Tab::Functions => functions::render(f, body, app),
        Tab::Events => events::render(f, body, app),
    }
    if app.tab == Tab::Tasks {
        if let Some(d) = &app.tasks_view.detail {
            detail::render(f, popup(body, 90, 90), d, app);
        }
    }
    if app.tab == Tab::Functions {
        if let Some(v) = &app.functions.view {
            functions::render_view(f, popup(body, 90, 90), v, app);
        }
    }
    if let Some(form) = &app.functions.form {
        forms::render(f, body, form);
    }
    if app.help {
        help::render(f, body);
    }
    footer::render(f, foot, app);
}

/// What a terminal below [`MIN_WIDTH`]x[`MIN_HEIGHT`] shows; a pending question stays visible
/// on the last line, since the next key answers it.
fn too_small(app: &App, f: &mut Frame, area: Rect) {
    let lines = vec![
        Line::styled("terminal too small", Style::default().fg(Color::Yellow)),
        Line::raw(format!("{}x{}", area.width, area.height)),
        Line::raw(format!("needs {MIN_WIDTH}x{MIN_HEIGHT}")),
    ];
    let text_height = (lines.len() as u16).min(area.height);
    let [_, middle, _, foot] = Layout::vertical([
        Constraint::Fill(1),
        Constraint::Length(text_height),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(area);
    f.render_widget(Paragraph::new(lines).centered(), middle);
    if app.confirm.is_some() {
        footer::render(f, foot, app);
    }
}

/// A centred box of `w`×`h` percent of `area`.
fn popup(area: Rect, w: u16, h: u16) -> Rect {
    area.centered(Constraint::Percentage(w), Constraint::Percentage(h))
}
