//! Events (screen 5): the timeline, newest first, one line per entry: time, what it is about,
//! what happened (see `tui::timeline`).

use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::fmt;
use crate::tui::app::App;

pub fn render(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.timeline;
    let block = fmt::boxed(format!("Events, newest first ({})", t.len()), area);
    if t.is_empty() {
        f.render_widget(
            Paragraph::new(Span::styled(
                fmt::fit(
                    "nothing yet: workers joining, leaving or lost, task failures, Redis and gateway outages show here",
                    fmt::inner_width(area),
                ),
                fmt::dim(),
            ))
            .block(block),
            area,
        );
        return;
    }
    let width = fmt::inner_width(area);
    let lines: Vec<Line> = t
        .iter()
        .skip(app.timeline_scroll)
        .take(area.height.saturating_sub(2) as usize)
        .map(|e| {
            let colour = if e.bad { Color::Red } else { Color::Green };
            // HH:MM:SS.mmm, the kind in a fixed column, then the text cut to the line.
            let time = fmt::clock(e.at);
            let head = format!("{} {:<8} ", time.trim_end_matches(" UTC"), e.kind.as_str());
            let line = Line::from(vec![
                Span::styled(head, fmt::dim()),
                Span::styled(e.text.as_str(), Style::default().fg(colour)),
            ]);
            fmt::fit_line(line, width)
        })
        .collect();
    f.render_widget(Paragraph::new(lines).block(block), area);
}
