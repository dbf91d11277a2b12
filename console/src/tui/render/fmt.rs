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

/// A coarse age for humans: `850ms`, `12s`, `3m05s`, `2h10m`, `3d4h`.
pub fn age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0 => format!("{ms}ms"),
        1..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// A run time: `12ms`, `1.25s`, then like `age`.
pub fn duration(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms}ms"),
        1000..=59_999 => format!("{:.2}s", ms as f64 / 1000.0),
        _ => age(ms),
    }
}

/// Unix ms as a UTC wall-clock time `HH:MM:SS.mmm`.
pub fn clock(ms: u64) -> String {
    let s = (ms / 1000) % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03} UTC",
        s / 3600,
        (s % 3600) / 60,
        s % 60,
        ms % 1000
    )
}

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
            format!("● connected {}", age(now_ms.saturating_sub(*since_ms))),
            Style::default().fg(Color::Green),
        ),
        Link::Down { retry_at_ms, error } => {
            let wait = retry_at_ms.saturating_sub(now_ms);
            let when = if wait == 0 {
                "now".to_owned()
            } else {
                format!("in {}", age(wait))
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
