//! The `?` help popup: every key, by screen.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};
use ratatui::Frame;

use super::fmt;

const KEYS: &[(&str, &[(&str, &str)])] = &[
    (
        "Everywhere",
        &[
            ("1 2 3 4 5", "Overview, Workers, Tasks, Functions, Events"),
            ("Tab / Shift-Tab", "next / previous screen"),
            ("?", "this help"),
            (
                "q, Ctrl-C",
                "quit (under faas up: asks, as it stops the platform)",
            ),
            ("Esc, q", "in a view (details, help): step back"),
            ("mouse", "click a tab or a row; the wheel scrolls"),
            ("P", "purge the queue: cancel every QUEUED task (asks)"),
        ],
    ),
    (
        "Workers",
        &[(
            "↑ ↓ / D",
            "select / drain: it finishes its tasks and leaves (asks)",
        )],
    ),
    (
        "Tasks",
        &[
            (
                "↑ ↓ PgUp PgDn",
                "select a task (the list keeps it selected)",
            ),
            ("g / G", "follow the newest / go to the oldest loaded"),
            ("f", "filter: all, QUEUED, RUNNING, COMPLETED, FAILED"),
            ("/", "search by id prefix, function, worker, error type"),
            ("Esc", "clear the search"),
            ("r / x", "retry / cancel the selected task (asks)"),
            ("Enter", "details: args, result, error, timings"),
            (
                "Esc, q / R",
                "close / reload the details (r, x work there too)",
            ),
        ],
    ),
    (
        "Functions",
        &[
            ("↑ ↓", "select a function"),
            ("n", "register a function from Python source"),
            ("Enter", "open: statistics and recent failures"),
            ("s", "sort by the next column (runs, failed %, p50, …)"),
            ("i", "invoke the selected function with JSON args"),
            ("d", "delete the selected function (asks)"),
            ("r", "reload the list"),
        ],
    ),
    (
        "Events",
        &[
            ("↑ ↓ PgUp PgDn", "scroll the timeline"),
            ("g / G", "newest / oldest"),
        ],
    ),
    (
        "Forms",
        &[
            ("Tab / Shift-Tab", "next / previous field"),
            ("Enter", "next field; invokes in the invoke form"),
            ("Ctrl-S", "submit"),
            ("Esc", "cancel (asks first if you typed something)"),
        ],
    ),
];

/// The key column's width, with its indent.
const KEY_WIDTH: usize = 20;

/// One key line's width: the indent and key column, then the longest description.
fn column_width() -> u16 {
    let longest = KEYS
        .iter()
        .flat_map(|(_, keys)| keys.iter())
        .map(|(_, what)| what.chars().count())
        .max()
        .unwrap_or(0);
    (KEY_WIDTH + longest) as u16
}

/// The lines of some sections, a blank line between them.
fn lines(
    sections: &[(&'static str, &'static [(&'static str, &'static str)])],
) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    for (section, keys) in sections {
        lines.push(Line::styled(*section, fmt::title()));
        for (k, what) in *keys {
            lines.push(Line::from(vec![
                Span::raw(format!("  {k:<w$}", w = KEY_WIDTH - 2)),
                Span::styled(*what, fmt::dim()),
            ]));
        }
        lines.push(Line::default());
    }
    lines.pop();
    lines
}

/// Draws the help over `body`. The keys take about 40 lines, more than a 45-row terminal's
/// body holds in one column, so where two columns fit side by side the sections are split
/// between them (about half the lines each); a narrower terminal gets one column, and the box's
/// bottom line says when its end is cut.
pub fn render(f: &mut Frame, body: Rect) {
    let col = column_width();
    let gap = 2;
    let sections: Vec<usize> = KEYS.iter().map(|(_, keys)| keys.len() + 1).collect();
    let total: usize = sections.iter().sum::<usize>() + sections.len() - 1;
    let two = body.width >= 2 * col + gap + 2;
    // The left column takes whole sections until it holds half of the lines.
    let mut left = KEYS.len();
    let mut rows = total;
    if two {
        let mut taken = 0;
        left = 0;
        while left < KEYS.len() && taken < total / 2 {
            taken += sections[left] + 1;
            left += 1;
        }
        rows = taken.saturating_sub(1).max(total - taken);
    }
    // As tall as the keys need, as far as the body goes.
    let height = Constraint::Length((rows as u16 + 2).min(body.height));
    let area = if two {
        body.centered(Constraint::Length(2 * col + gap + 2), height)
    } else {
        body.centered(Constraint::Percentage(80), height)
    };
    f.render_widget(Clear, area);
    let mut block = Block::bordered().title("Keys");
    if two {
        let inner = block.inner(area);
        f.render_widget(block, area);
        let [a, _, b] = Layout::horizontal([
            Constraint::Length(col),
            Constraint::Length(gap),
            Constraint::Length(col),
        ])
        .areas(inner);
        f.render_widget(Paragraph::new(lines(&KEYS[..left])), a);
        f.render_widget(Paragraph::new(lines(&KEYS[left..])), b);
        return;
    }
    let width = block.inner(area).width as usize;
    if total > area.height.saturating_sub(2) as usize {
        block = block.title_bottom(fmt::fit_line(
            Line::styled(
                " more below: a wider or taller terminal shows every key ",
                fmt::dim(),
            ),
            width,
        ));
    }
    let lines = lines(KEYS)
        .into_iter()
        .map(|l| fmt::fit_line(l, width))
        .collect::<Vec<_>>();
    f.render_widget(Paragraph::new(lines).block(block), area);
}
