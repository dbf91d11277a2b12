//! The `?` help popup: every key, by screen.

use ratatui::layout::Rect;
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
            ("P", "purge the queue: cancel every QUEUED task (asks)"),
        ],
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

pub fn render(f: &mut Frame, area: Rect) {
    let mut lines = Vec::new();
    for (section, keys) in KEYS {
        lines.push(Line::styled(*section, fmt::title()));
        for (k, what) in *keys {
            lines.push(Line::from(vec![
                Span::raw(format!("  {k:<18}")),
                Span::styled(*what, fmt::dim()),
            ]));
        }
        lines.push(Line::default());
    }
    lines.pop();
    f.render_widget(Clear, area);
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title("Keys")),
        area,
    );
}
