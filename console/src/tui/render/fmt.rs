//! Small formatting helpers shared by the screens: numbers, ages, durations, status colours,
//! and fitting text to its room with an ellipsis (`fit`, `fit_line`, `columns`): every place
//! that can cut text uses them, so nothing is cut bare.

use std::borrow::Cow;

use faas_protocol::TaskStatus;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Row};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use crate::tui::msg::Link;

/// `1234567` → `1,234,567`.
pub fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub use crate::timefmt::{clock, duration};

pub fn status_style(s: TaskStatus) -> Style {
    let c = match s {
        TaskStatus::Queued => Color::Blue,
        TaskStatus::Running => Color::Yellow,
        TaskStatus::Completed => Color::Green,
        TaskStatus::Failed => Color::Red,
    };
    Style::default().fg(c).add_modifier(Modifier::BOLD)
}

/// The indicator text and style of a connection.
pub fn link(l: &Link, now_ms: u64) -> (String, Style) {
    match l {
        Link::Connecting => ("◌ connecting".into(), Style::default().fg(Color::Yellow)),
        Link::Up { since_ms } => (
            format!("● connected {}", duration(now_ms.saturating_sub(*since_ms))),
            Style::default().fg(Color::Green),
        ),
        Link::Down { retry_at_ms, error } => {
            let wait = retry_at_ms.saturating_sub(now_ms);
            let when = if wait == 0 {
                "now".to_owned()
            } else {
                format!("in {}", duration(wait))
            };
            (
                format!("✕ reconnecting {when}: {}", fit(error, 48)),
                Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
            )
        }
    }
}

/// `s` in at most `width` terminal columns: whole when it fits, else cut and ended with `…`, so
/// a cut value never passes for a whole one ("resize_imag"). Widths are terminal columns, not
/// characters (a CJK character takes two), as ratatui lays them out.
pub fn fit(s: &str, width: usize) -> Cow<'_, str> {
    if s.width() <= width {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(cut(s, width))
    }
}

/// `s` cut to `width - 1` columns and ended with `…` (nothing at width 0).
fn cut(s: &str, width: usize) -> String {
    if width == 0 {
        return String::new();
    }
    let room = width - 1;
    let mut used = 0;
    let mut out = String::with_capacity(room + '…'.len_utf8());
    for c in s.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > room {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    out
}

/// [`fit`] for a line of several styled spans: the spans that fit whole, then the one that
/// does not, cut and ended with `…` in its own style; the rest are dropped.
pub fn fit_line(line: Line<'_>, width: usize) -> Line<'_> {
    if line.width() <= width {
        return line;
    }
    let Line {
        style,
        alignment,
        spans,
    } = line;
    let mut room = width;
    let mut kept = Vec::with_capacity(spans.len());
    for span in spans {
        let w = span.width();
        // `<`, not `<=`: something follows, so the `…` needs a column of its own.
        if w < room {
            room -= w;
            kept.push(span);
            continue;
        }
        kept.push(Span::styled(cut(&span.content, room), span.style));
        break;
    }
    let mut out = Line::from(kept).style(style);
    out.alignment = alignment;
    out
}

/// A bordered box whose title is fitted to the top border of `area`.
pub fn boxed<'a>(title: impl Into<Line<'a>>, area: Rect) -> Block<'a> {
    Block::bordered().title(fit_line(title.into(), inner_width(area)))
}

/// The columns inside a bordered box of `area`.
pub fn inner_width(area: Rect) -> usize {
    area.width.saturating_sub(2) as usize
}

/// The width each column of a `Table` in a bordered box of `area` gets, laid out as the table
/// lays them out (one space between columns, no highlight symbol), so that the cells can be
/// fitted to their columns: the table itself cuts a long cell without an ellipsis.
pub fn columns(area: Rect, widths: &[Constraint]) -> Vec<usize> {
    Layout::horizontal(widths.iter().copied())
        .flex(Flex::Start)
        .spacing(1)
        .split(Rect::new(0, 0, inner_width(area) as u16, 1))
        .iter()
        .map(|r| r.width as usize)
        .collect()
}

/// A table row whose cells are fitted to their columns (`cols` from [`columns`]).
pub fn fitted_row<'a>(cells: Vec<Span<'a>>, cols: &[usize]) -> Row<'a> {
    Row::new(cells.into_iter().zip(cols).map(|(span, &w)| {
        Cell::from(match fit(&span.content, w) {
            Cow::Borrowed(_) => span,
            Cow::Owned(cut) => Span::styled(cut, span.style),
        })
    }))
}

/// JSON for reading: on one line while short, pretty-printed when long.
pub fn json(v: &serde_json::Value) -> String {
    let compact = v.to_string();
    if compact.chars().count() <= 72 {
        return compact;
    }
    serde_json::to_string_pretty(v).unwrap_or(compact)
}

pub fn title() -> Style {
    Style::default().add_modifier(Modifier::BOLD)
}

pub fn dim() -> Style {
    Style::default().fg(Color::DarkGray)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_keeps_what_fits_and_marks_a_cut() {
        assert_eq!(fit("resize_image", 12), "resize_image");
        assert!(matches!(fit("resize_image", 12), Cow::Borrowed(_)));
        assert_eq!(fit("resize_image", 11), "resize_ima…");
        assert_eq!(fit("resize_image", 1), "…");
        assert_eq!(fit("resize_image", 0), "");
        assert_eq!(fit("", 0), "");
    }

    #[test]
    fn fit_counts_terminal_columns_not_characters() {
        // Each of these takes two columns: four characters are eight columns.
        assert_eq!(fit("関数名前", 8), "関数名前");
        assert_eq!(fit("関数名前", 7), "関数名…");
        // A wide character that would straddle the edge is left out whole.
        assert_eq!(fit("関数名前", 6), "関数…");
        assert_eq!(fit("関数名前", 6).width(), 5);
        // Multi-byte but one column each.
        assert_eq!(fit("héllo wörld", 6), "héllo…");
    }

    #[test]
    fn fit_line_cuts_the_span_at_the_edge_and_keeps_styles() {
        let red = Style::default().fg(Color::Red);
        let line = || Line::from(vec![Span::raw("abc "), Span::styled("defgh", red)]);
        assert_eq!(fit_line(line(), 9), line());
        let cut = fit_line(line(), 7);
        assert_eq!(cut.width(), 7);
        assert_eq!(cut.spans, vec![Span::raw("abc "), Span::styled("de…", red)]);
        // A span that ends exactly at the edge, with more after it, gives its last column up.
        let cut = fit_line(line(), 4);
        assert_eq!(cut.spans, vec![Span::raw("abc…")]);
        assert_eq!(fit_line(line(), 0).width(), 0);
    }

    #[test]
    fn columns_match_the_table_layout() {
        // 80 wide: 78 inside the borders; fixed columns keep their width, Min takes the rest.
        let cols = columns(
            Rect::new(0, 0, 80, 10),
            &[
                Constraint::Length(9),
                Constraint::Min(10),
                Constraint::Length(8),
            ],
        );
        assert_eq!(cols, vec![9, 78 - 9 - 8 - 2, 8]);
    }

    #[test]
    fn fitted_rows_cut_each_cell_to_its_column() {
        let row = fitted_row(vec![Span::raw("resize_image"), Span::raw("ok")], &[11, 4]);
        assert_eq!(
            row,
            Row::new(vec![Cell::from("resize_ima…"), Cell::from("ok")])
        );
    }
}
