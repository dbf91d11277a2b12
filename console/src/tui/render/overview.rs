//! Overview: the four task counts, the queue and the platform counters, the workers' health and
//! slots, and a sparkline of tasks finished per second over the last minute.
//!
//! Counts come from the last poll of `{prefix}:stats` and the queue, so they are platform
//! totals from the first frame on; "—" means nothing was read yet.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Sparkline};
use ratatui::Frame;

use super::fmt;
use crate::tui::app::App;
use crate::tui::throughput::WINDOW_SECS;

pub fn render(f: &mut Frame, area: Rect, app: &App) {
    let [counts, details, spark] = Layout::vertical([
        Constraint::Length(4),
        Constraint::Length(5),
        Constraint::Min(4),
    ])
    .areas(area);

    let snap = app.snapshot.as_ref();
    let shown = |v: Option<u64>| v.map_or_else(|| "—".to_owned(), fmt::count);
    let boxes: [(&str, Option<u64>, Color); 4] = [
        (
            "Queued",
            snap.map(|s| s.queue_len.saturating_sub(s.pending)),
            Color::Blue,
        ),
        ("Running", snap.map(|s| s.pending), Color::Yellow),
        ("Completed", snap.map(|s| s.stats.completed), Color::Green),
        ("Failed", snap.map(|s| s.stats.failed), Color::Red),
    ];
    let cells = Layout::horizontal([Constraint::Ratio(1, 4); 4]).split(counts);
    for ((label, value, colour), cell) in boxes.into_iter().zip(cells.iter()) {
        let text = Line::from(Span::styled(
            shown(value),
            Style::default().fg(colour).add_modifier(Modifier::BOLD),
        ));
        f.render_widget(
            Paragraph::new(vec![Line::default(), text])
                .centered()
                .block(Block::bordered().title(label)),
            *cell,
        );
    }

    let [platform, workers] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(details);
    let pair = |k: &str, v: String| {
        vec![
            Span::styled(format!("{k} "), fmt::dim()),
            Span::styled(v, fmt::title()),
        ]
    };
    let mut queue_line = pair("queue depth", shown(snap.map(|s| s.queue_len)));
    if let Some(s) = snap {
        queue_line.push(Span::styled(
            format!(
                "  ({} waiting, {} in flight)",
                fmt::count(s.queue_len.saturating_sub(s.pending)),
                fmt::count(s.pending)
            ),
            fmt::dim(),
        ));
    }
    let mut totals = pair("submitted", shown(snap.map(|s| s.stats.submitted)));
    totals.push(Span::raw("   "));
    totals.extend(pair("requeued", shown(snap.map(|s| s.stats.requeued))));
    f.render_widget(
        Paragraph::new(vec![Line::from(totals), Line::from(queue_line)])
            .block(Block::bordered().title("Platform (totals)")),
        platform,
    );

    let (online, late, lost) = app.workers.health_counts(app.now_ms);
    let (busy, slots) = app.workers.slots(app.now_ms);
    let health = Line::from(vec![
        Span::styled(
            format!("{online} online"),
            Style::default().fg(Color::Green),
        ),
        Span::raw("   "),
        Span::styled(format!("{late} late"), Style::default().fg(Color::Yellow)),
        Span::raw("   "),
        Span::styled(format!("{lost} lost"), Style::default().fg(Color::Red)),
    ]);
    let slots = Line::from(pair("slots busy", format!("{busy} / {slots}")));
    f.render_widget(
        Paragraph::new(vec![health, slots]).block(Block::bordered().title("Workers")),
        workers,
    );

    // One column per second, so the chart is exactly the window wide; the numbers go beside it.
    let [chart, numbers] = Layout::horizontal([
        Constraint::Length(WINDOW_SECS as u16 + 2),
        Constraint::Min(0),
    ])
    .areas(spark);
    let series = app.throughput.series(app.now_ms);
    f.render_widget(
        Sparkline::default()
            .block(Block::bordered().title(format!("Finished per second, last {WINDOW_SECS} s")))
            .data(&series)
            .style(Style::default().fg(Color::Cyan)),
        chart,
    );
    let peak = series.iter().copied().max().unwrap_or(0);
    let lines = vec![
        Line::from(pair(
            "last second",
            format!("{}/s", fmt::count(app.throughput.last_second(app.now_ms))),
        )),
        Line::from(pair("peak", format!("{}/s", fmt::count(peak)))),
        Line::from(pair(
            "last minute",
            fmt::count(app.throughput.total(app.now_ms)),
        )),
    ];
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title("Throughput")),
        numbers,
    );
}
