//! Events (screen 5): the timeline, newest first, one line per entry: time, what it is about,
//! what happened (see `tui::timeline`).

use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;

use super::fmt;
use crate::tui::app::App;

pub fn render(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.timeline;
    let block = Block::bordered().title(format!("Events, newest first ({})", t.len()));
    if t.is_empty() {
        f.render_widget(
            Paragraph::new(Span::styled(
                "nothing yet: workers joining, leaving or lost, task failures, Redis and gateway outages show here",
                fmt::dim(),
            ))
            .block(block),
            area,
        );
        return;
    }
    let width = area.width.saturating_sub(2) as usize;
    let lines: Vec<Line> = t
        .iter()
        .skip(app.timeline_scroll)
        .take(area.height.saturating_sub(2) as usize)
        .map(|e| {
            let colour = if e.bad { Color::Red } else { Color::Green };
            // HH:MM:SS.mmm, the kind in a fixed column, then the text cut to the line.
            let time = fmt::clock(e.at);
            let head = format!("{} {:<8} ", time.trim_end_matches(" UTC"), e.kind.as_str());
            let room = width.saturating_sub(head.chars().count());
            Line::from(vec![
                Span::styled(head, fmt::dim()),
                Span::styled(fmt::truncate(&e.text, room), Style::default().fg(colour)),
            ])
        })
        .collect();
    f.render_widget(Paragraph::new(lines).block(block), area);
}
