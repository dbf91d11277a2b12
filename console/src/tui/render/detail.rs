//! The task detail popup: the record from `GET /tasks/{id}`, with args, result, the error and
//! its traceback, what the function printed, and the timings. Re-read when the task moves.

use faas_protocol::model::TaskRecord;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::fmt;
use crate::tui::app::{App, Detail};

pub fn render(f: &mut Frame, area: Rect, d: &Detail, app: &App) {
    let lines = match &d.record {
        None => vec![Line::styled("loading…", fmt::dim())],
        Some(Err(e)) => vec![Line::styled(
            format!("cannot read the task: {e}"),
            Style::default().fg(Color::Red),
        )],
        Some(Ok(r)) => record_lines(r, app.now_ms),
    };
    let block = fmt::boxed(format!("Task {}", d.id), area);
    let inner = block.inner(area);
    let paragraph = Paragraph::new(lines).wrap(Wrap { trim: false });
    // Scrolling stops with the last line at the bottom of the box, never in a blank pane.
    let total = paragraph.line_count(inner.width);
    let max = u16::try_from(total.saturating_sub(inner.height as usize)).unwrap_or(u16::MAX);
    d.max_scroll.set(max);
    let scroll = d.scroll.min(max);
    let block = if max > 0 {
        let last = (scroll as usize + inner.height as usize).min(total);
        block.title_bottom(
            Line::styled(format!(" {}-{last} of {total} ↑↓ ", scroll + 1), fmt::dim())
                .right_aligned(),
        )
    } else {
        block
    };
    f.render_widget(Clear, area);
    f.render_widget(paragraph.scroll((scroll, 0)).block(block), area);
}

fn record_lines(r: &TaskRecord, now: u64) -> Vec<Line<'static>> {
    let kv = |k: &str, v: String| {
        Line::from(vec![
            Span::styled(format!("{k:<10}"), fmt::dim()),
            Span::raw(v),
        ])
    };
    let mut lines = vec![
        kv(
            "function",
            format!(
                "{} ({}, {})",
                r.function_name,
                r.function_id,
                r.format.as_str()
            ),
        ),
        Line::from(vec![
            Span::styled(format!("{:<10}", "status"), fmt::dim()),
            Span::styled(r.status.as_str(), fmt::status_style(r.status)),
        ]),
        kv("worker", r.worker.clone().unwrap_or_else(|| "—".into())),
        kv(
            "attempts",
            format!(
                "{}{}",
                // Only a lost worker re-runs a task: an ended one will not run again, whatever
                // its limit (a FAILED "1 of 3" read as if retries were coming).
                if r.status.is_terminal() {
                    r.attempts.to_string()
                } else {
                    format!(
                        "{} (at most {} if workers are lost)",
                        r.attempts, r.max_attempts
                    )
                },
                r.timeout_ms
                    .map(|t| format!(" · timeout {}", fmt::duration(t)))
                    .unwrap_or_default()
            ),
        ),
        kv("created", fmt::clock(r.created_at)),
    ];
    if let Some(s) = r.started_at {
        lines.push(kv(
            "started",
            format!(
                "{} (waited {})",
                fmt::clock(s),
                fmt::duration(s.saturating_sub(r.created_at))
            ),
        ));
    }
    match (r.started_at, r.finished_at) {
        (Some(s), Some(e)) => lines.push(kv(
            "finished",
            format!(
                "{} (ran {})",
                fmt::clock(e),
                fmt::duration(e.saturating_sub(s))
            ),
        )),
        (Some(s), None) => lines.push(kv(
            "running",
            format!("for {}", fmt::duration(now.saturating_sub(s))),
        )),
        _ => {}
    }
    section(&mut lines, "args", &fmt::json(&r.args));
    if !r.result.is_null() || (r.status.is_terminal() && r.error.is_none()) {
        section(&mut lines, "result", &fmt::json(&r.result));
    }
    if let Some(e) = &r.error {
        lines.push(Line::default());
        lines.push(Line::styled(
            format!("error: {}: {}", e.kind, e.message),
            Style::default().fg(Color::Red),
        ));
        for l in e.traceback.lines() {
            lines.push(Line::styled(l.to_owned(), Style::default().fg(Color::Red)));
        }
    }
    if !r.log.is_empty() {
        section(&mut lines, "log", &r.log);
    }
    lines
}

fn section(lines: &mut Vec<Line<'static>>, name: &str, body: &str) {
    lines.push(Line::default());
    lines.push(Line::styled(name.to_owned(), fmt::title()));
    lines.extend(body.lines().map(|l| Line::raw(format!("  {l}"))));
}
