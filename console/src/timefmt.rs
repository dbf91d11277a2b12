//! Durations and dates for people, in one format for the `faas` CLI and `faas-console`
//! (humantime underneath): before, each formatted the same duration its own way.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A duration in milliseconds, cut to its two largest units: `0ms`, `850ms`, `1s 250ms`,
/// `2m 5s`, `3h 1m`, `3days 4h`.
pub fn duration(ms: u64) -> String {
    if ms == 0 {
        // humantime writes zero as `0s`, which beside `1ms` reads as a coarser measurement.
        return "0ms".to_owned();
    }
    let unit = match ms {
        0..60_000 => 1,
        60_000..3_600_000 => 1_000,
        3_600_000..86_400_000 => 60_000,
        _ => 3_600_000,
    };
    humantime::format_duration(Duration::from_millis(ms / unit * unit)).to_string()
}

/// Unix milliseconds as an RFC 3339 UTC time to the second: `2023-11-14T22:13:20Z`.
pub fn timestamp(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// Unix milliseconds as a UTC wall-clock time: `22:13:20.123 UTC`.
pub fn clock(ms: u64) -> String {
    let full = humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string();
    // `YYYY-MM-DDTHH:MM:SS.mmmZ`: the time of day is characters 11..23.
    format!("{} UTC", full.get(11..23).unwrap_or(&full))
}

/// How long ago `ms` (Unix milliseconds) was: `3s ago`.
pub fn ago(ms: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    format!("{} ago", duration(now.saturating_sub(ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_keep_their_two_largest_units() {
        assert_eq!(duration(0), "0ms");
        assert_eq!(duration(12), "12ms");
        assert_eq!(duration(1_500), "1s 500ms");
        assert_eq!(duration(125_400), "2m 5s");
        assert_eq!(duration(3 * 3_600_000 + 60_999), "3h 1m");
        assert_eq!(duration(3 * 86_400_000 + 4 * 3_600_000 + 5), "3days 4h");
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(timestamp(1_700_000_000_123), "2023-11-14T22:13:20Z");
        assert_eq!(clock(1_700_000_000_123), "22:13:20.123 UTC");
    }
}
