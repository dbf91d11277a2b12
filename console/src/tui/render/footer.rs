//! The footer: the keys that work right now, and the latest notice (a registration, an error),
//! or a y/n question that the next key answers.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::fmt;
use crate::tui::app::{App, Tab};

pub fn render(f: &mut Frame, area: Rect, app: &App) {
    // A question takes the whole line: it is the one thing the next key answers.
    if let Some(c) = &app.confirm {
        // Cut in the middle of what it names, never the "y/n" that says how to answer.
        let width = area.width as usize;
        let text = match c.prompt.strip_suffix(" y/n") {
            Some(body) => format!(" {} y/n", fmt::fit(body, width.saturating_sub(5))),
            None => fmt::fit(&format!(" {}", c.prompt), width).into_owned(),
        };
        f.render_widget(
            Paragraph::new(Line::styled(
                text,
                Style::default()
                    .fg(Color::Black)
                    .bg(Color::Yellow)
                    .add_modifier(Modifier::BOLD),
            )),
            area,
        );
        return;
    }
    if let Some(input) = &app.tasks_view.search_input {
        let line = Line::from(vec![
            Span::styled(" / ", fmt::title()),
            Span::raw(format!("{input}█")),
            Span::styled(
                "  Enter search · Esc keep · id: fn: worker: error: narrow a term",
                fmt::dim(),
            ),
        ]);
        f.render_widget(
            Paragraph::new(fmt::fit_line(line, area.width as usize)),
            area,
        );
        return;
    }
    let keys = keys_line(keys(app), area.width as usize);
    // The keys keep their room; a notice gets the rest, cut if it must be.
    let [left, right] =
        Layout::horizontal([Constraint::Length(keys.width() as u16), Constraint::Min(0)])
            .areas(area);
    f.render_widget(Paragraph::new(keys), left);
    if let Some(n) = &app.notice {
        let colour = if n.error { Color::Red } else { Color::Green };
        let text = fmt::fit(&n.text, right.width.saturating_sub(1) as usize);
        f.render_widget(
            Paragraph::new(Line::styled(text, Style::default().fg(colour))).right_aligned(),
            right,
        );
    }
}

/// The keys as `key what` pairs in `width` columns. When they do not fit, the screen's own keys
/// are dropped from the end, whole, and a `…` says so (help lists them all); `? help` and
/// `q quit`, always last, stay.
fn keys_line(keys: Vec<(&'static str, &'static str)>, width: usize) -> Line<'static> {
    let (own, always) = keys.split_at(keys.len().saturating_sub(2));
    let pair = |(k, what): &(&str, &str)| {
        [
            Span::styled(format!(" {k}"), fmt::title()),
            Span::styled(format!(" {what} "), fmt::dim()),
        ]
    };
    // The line with the first `n` of the screen's own keys.
    let with = |n: usize| {
        let mut spans: Vec<Span> = own[..n].iter().flat_map(pair).collect();
        if n < own.len() {
            spans.push(Span::styled(" …", fmt::dim()));
        }
        spans.extend(always.iter().flat_map(pair));
        Line::from(spans)
    };
    let line = (0..=own.len())
        .rev()
        .map(with)
        .find(|l| l.width() <= width)
        .unwrap_or_else(|| with(0));
    fmt::fit_line(line, width)
}

fn keys(app: &App) -> Vec<(&'static str, &'static str)> {
    if app.functions.form.is_some() {
        return vec![
            ("Tab", "next field"),
            ("Ctrl-S", "submit"),
            ("Esc", "cancel"),
        ];
    }
    if app.help {
        return vec![("any key", "closes help")];
    }
    if app.tab == Tab::Tasks && app.tasks_view.detail.is_some() {
        return vec![
            ("↑↓", "scroll"),
            ("r", "retry"),
            ("x", "cancel"),
            ("R", "reload"),
            ("Esc/q", "close"),
        ];
    }
    let mut keys = match app.tab {
        Tab::Tasks => vec![
            ("↑↓", "select"),
            ("Enter", "detail"),
            ("f", "filter"),
            ("/", "search"),
            ("r", "retry"),
            ("x", "cancel"),
        ],
        Tab::Functions if app.functions.view.is_some() => vec![("Esc/q", "close")],
        Tab::Functions => vec![
            ("↑↓", "select"),
            ("Enter", "open"),
            ("s", "sort"),
            ("n", "new"),
            ("i", "invoke"),
            ("d", "delete"),
            ("r", "reload"),
        ],
        Tab::Events => vec![("↑↓", "scroll"), ("g", "newest")],
        Tab::Overview => vec![("P", "purge queue")],
        Tab::Workers => vec![("↑↓", "select"), ("D", "drain")],
    };
    // A screen with many keys of its own leaves the screen keys to the help.
    if keys.len() < 5 {
        keys.push(("1-5/Tab", "screens"));
    }
    keys.extend([("?", "help"), ("q", "quit")]);
    keys
}
