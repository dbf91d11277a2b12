//! The header: the tabs on the first line, the Redis and gateway connection states on the
//! second, always visible so an operator never mistakes stale numbers for live ones.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Tabs};
use ratatui::Frame;
use unicode_width::UnicodeWidthStr;

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
        "redis ",
        &links.redis(),
        &links.redis_url,
        app.now_ms,
    );
    link_line(
        f,
        gateway_area,
        "gateway ",
        &links.gateway,
        &links.gateway_url,
        app.now_ms,
    );
}

fn link_line(f: &mut Frame, area: Rect, name: &str, link: &Link, url: &str, now_ms: u64) {
    let (state, style) = fmt::link(link, now_ms);
    // The state, then host:port: on an 80-column terminal both fit in half a line, and which
    // Redis and which gateway (the ports) is what an operator of several stacks looks for. A
    // long error is what gets cut, with an ellipsis, so the address always shows.
    // (An address too long for the half line is cut at its end, with an ellipsis too.)
    let address = format!(" {}", address(url));
    let room = (area.width as usize).saturating_sub(name.width() + address.width());
    let line = Line::from(vec![
        Span::styled(name.to_owned(), fmt::title()),
        Span::styled(fmt::fit(&state, room).into_owned(), style),
        Span::styled(address, fmt::dim()),
    ]);
    f.render_widget(
        Paragraph::new(fmt::fit_line(line, area.width as usize)),
        area,
    );
}

/// `redis://:secret@10.0.0.5:6379/0` → `10.0.0.5:6379`: the scheme, credentials and path say
/// nothing an operator needs at a glance (and a password has no place on screen).
fn address(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split(['/', '?']).next().unwrap_or(rest)
}

#[cfg(test)]
mod tests {
    use super::address;

    #[test]
    fn addresses_keep_host_and_port_only() {
        assert_eq!(address("redis://127.0.0.1:6379"), "127.0.0.1:6379");
        assert_eq!(address("redis://:pw@10.0.0.5:6379/0"), "10.0.0.5:6379");
        assert_eq!(address("http://gw.example:8000/"), "gw.example:8000");
        assert_eq!(address("unix-ish"), "unix-ish");
    }
}
