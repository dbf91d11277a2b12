//! Overview: the four task counts, the queue and the platform counters, the workers' health and
//! slots, and a chart of tasks completed and failed per second over the last minute.
//!
//! Counts come from the last poll of `{prefix}:stats` and the queue, so they are platform
//! totals from the first frame on; "—" means nothing was read yet.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, LegendPosition, Paragraph};
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
                .block(fmt::boxed(label, *cell)),
            *cell,
        );
    }

    let [platform, workers] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(details);
    let pair = |k: &str, v: String| -> Vec<Span<'static>> {
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
        Paragraph::new(fitted(
            vec![Line::from(totals), Line::from(queue_line)],
            platform,
        ))
        .block(fmt::boxed("Platform (totals)", platform)),
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
        Paragraph::new(fitted(vec![health, slots], workers)).block(fmt::boxed("Workers", workers)),
        workers,
    );

    // The chart takes what the numbers leave; both series share one scaled y axis.
    let [chart, numbers] =
        Layout::horizontal([Constraint::Min(30), Constraint::Length(30)]).areas(spark);
    let now = app.now_ms;
    let completed = app.throughput.completed_series(now);
    let failed = app.throughput.failed_series(now);
    let all = app.throughput.series(now);
    let peak = all.iter().copied().max().unwrap_or(0);
    render_chart(f, chart, &completed, &failed, peak);
    let window = format!("{WINDOW_SECS} s");
    let lines = vec![
        Line::from(pair(
            "last second",
            format!("{}/s", fmt::count(app.throughput.last_second(now))),
        )),
        Line::from(pair(
            &format!("peak ({window})"),
            format!("{}/s", fmt::count(peak)),
        )),
        Line::from(pair(
            &format!("finished ({window})"),
            fmt::count(app.throughput.total(now)),
        )),
        Line::from(pair(
            &format!("failed ({window})"),
            fmt::count(failed.iter().sum()),
        )),
    ];
    f.render_widget(
        Paragraph::new(fitted(lines, numbers)).block(fmt::boxed("Throughput", numbers)),
        numbers,
    );
}

/// `lines` fitted to the inside of the bordered box `area`.
fn fitted(lines: Vec<Line<'_>>, area: Rect) -> Vec<Line<'_>> {
    let width = fmt::inner_width(area);
    lines.into_iter().map(|l| fmt::fit_line(l, width)).collect()
}

/// Completed (green) and failed (red) per second over the window, with a y axis scaled to the
/// window's peak and an x axis in seconds ago, so the chart reads without the numbers beside it.
fn render_chart(f: &mut Frame, area: Rect, completed: &[u64], failed: &[u64], peak: u64) {
    let points = |series: &[u64]| -> Vec<(f64, f64)> {
        let n = series.len() as f64;
        series
            .iter()
            .enumerate()
            .map(|(i, v)| (i as f64 - n + 1.0, *v as f64))
            .collect()
    };
    let completed = points(completed);
    let failed = points(failed);
    // A little headroom, and never a zero-height axis.
    let top = (peak.max(1) as f64 * 1.1).ceil();
    let datasets = vec![
        Dataset::default()
            .name("completed")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::default().fg(Color::Green))
            .data(&completed),
        Dataset::default()
            .name("failed")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::default().fg(Color::Red))
            .data(&failed),
    ];
    let start = -(WINDOW_SECS as f64 - 1.0);
    let chart = Chart::new(datasets)
        .block(fmt::boxed(
            format!("Finished per second, last {WINDOW_SECS} s"),
            area,
        ))
        .x_axis(
            Axis::default()
                .bounds([start, 0.0])
                .labels([format!("-{WINDOW_SECS}s"), "-30s".into(), "now".into()])
                .style(fmt::dim()),
        )
        .y_axis(
            Axis::default()
                .bounds([0.0, top])
                .labels([
                    "0".to_owned(),
                    fmt::count(top as u64 / 2),
                    fmt::count(top as u64),
                ])
                .style(fmt::dim()),
        )
        .legend_position(Some(LegendPosition::TopLeft))
        .hidden_legend_constraints((Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)));
    f.render_widget(chart, area);
}
