//! Small formatting helpers shared by the screens: numbers, ages, durations, status colours.

use faas_protocol::TaskStatus;
use ratatui::style::{Color, Modifier, Style};

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
                format!("✕ reconnecting {when}: {}", truncate(error, 48)),
                Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
            )
        }
    }
}

/// At most `n` characters, with `…` when cut.
pub fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_owned();
    }
    let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
    t.push('…');
    t
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
