//! The header: the tabs on the first line, the Redis and gateway connection states on the
//! second, always visible so an operator never mistakes stale numbers for live ones.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Tabs};
use ratatui::Frame;

use super::fmt;
use crate::tui::app::{App, Tab};
use crate::tui::msg::Link;

pub fn render(f: &mut Frame, area: Rect, app: &App) {
    let [tabs_line, links_line] =
        Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(area);
    let [name, tabs_area] =
        Layout::horizontal([Constraint::Length(14), Constraint::Min(0)]).areas(tabs_line);
    f.render_widget(
        Paragraph::new(Span::styled(
            " faas-console ",
            Style::default()
                .fg(Color::Black)
                .bg(Color::Cyan)
                .add_modifier(Modifier::BOLD),
        )),
        name,
    );
    let titles = Tab::ALL
        .iter()
        .enumerate()
        .map(|(i, t)| format!("{} {}", i + 1, t.title()));
    f.render_widget(
        Tabs::new(titles).select(app.tab.index()).highlight_style(
            Style::default()
                .fg(Color::Cyan)
                .add_modifier(Modifier::BOLD | Modifier::REVERSED),
        ),
        tabs_area,
    );

    // Each connection gets half the line, so one long error cannot hide the other.
    let [redis_area, gateway_area] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
            .areas(links_line);
    let links = &app.links;
    link_line(
        f,
        redis_area,
        " redis ",
        &links.redis(),
        &links.redis_url,
        app.now_ms,
    );
    link_line(
        f,
        gateway_area,
        " gateway ",
        &links.gateway,
        &links.gateway_url,
        app.now_ms,
    );
}

fn link_line(f: &mut Frame, area: Rect, name: &str, link: &Link, url: &str, now_ms: u64) {
    let (state, style) = fmt::link(link, now_ms);
    // The URL goes last: when the line is short, the state is what must stay readable.
    let line = Line::from(vec![
        Span::styled(name.to_owned(), fmt::title()),
        Span::styled(state, style),
        Span::styled(format!(" {url}"), fmt::dim()),
    ]);
    f.render_widget(Paragraph::new(line), area);
}
