//! `faas bench --subscribers N`: N `GET /events` streams held open on the gateway during the
//! measured run, and how far behind the events each of them is.
//!
//! Each subscriber is one HTTP/1.1 stream read by a task of this process: it counts the SSE
//! `data:` lines it receives and, for each, the lag: the time it read the line minus the
//! event's `at` (the Unix ms its publisher stamped it with; the bench and the platform share a
//! clock when they share a machine, which is how the numbers here are meant to be read). A
//! subscriber the gateway cuts off (it fell behind the fan-out buffer) or whose stream fails
//! counts as cut off. Written in Rust so that a thousand readers cost little next to the
//! gateway they measure (Python asyncio readers starved the 2-core machine, see
//! demo/bench/README.md).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::client::GatewayClient;

/// What the subscribers saw, over all events of the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventsReport {
    pub subscribers: u64,
    /// Events received by the subscriber that received the fewest, and the most.
    pub received_min: u64,
    pub received_max: u64,
    /// Subscribers whose stream ended before the run did (cut off as too slow, or failed).
    pub cut_off: u64,
    /// Lag over every event every subscriber received, ms.
    pub lag_p50_ms: f64,
    pub lag_p99_ms: f64,
    pub lag_max_ms: f64,
    /// The largest of the subscribers' own p99 lags, ms.
    pub worst_subscriber_p99_ms: f64,
}

/// One subscriber's lags (one per event received) and whether its stream ended early.
struct Seen {
    lags: Vec<u32>,
    cut_off: bool,
}

/// The streams, open.
pub struct Subscribers {
    set: JoinSet<Seen>,
    /// Events received so far, over all subscribers (to tell when the last have arrived).
    received: Arc<AtomicU64>,
    stop: CancellationToken,
    n: u64,
}

/// Opens `n` streams (all of them before returning: each has had its response headers, so the
/// gateway has subscribed it).
pub async fn open(client: &GatewayClient, n: u64) -> anyhow::Result<Subscribers> {
    let mut opening = JoinSet::new();
    for _ in 0..n {
        let client = client.clone();
        opening.spawn(async move { client.open_events(&[], None).await });
    }
    let (received, stop) = (Arc::new(AtomicU64::new(0)), CancellationToken::new());
    let mut set = JoinSet::new();
    while let Some(opened) = opening.join_next().await {
        let resp = opened?.map_err(|e| anyhow::anyhow!("opening GET /events: {e}"))?;
        set.spawn(read(resp, received.clone(), stop.clone()));
    }
    Ok(Subscribers {
        set,
        received,
        stop,
        n,
    })
}

impl Subscribers {
    /// Waits (bounded by `settle`) until the subscribers receive nothing more for 200 ms,
    /// closes the streams and summarises them.
    pub async fn finish(mut self, settle: Duration) -> EventsReport {
        let deadline = tokio::time::Instant::now() + settle;
        let mut last = self.received.load(Ordering::Relaxed);
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = self.received.load(Ordering::Relaxed);
            if now == last {
                break;
            }
            last = now;
        }
        self.stop.cancel();
        let mut seen = Vec::new();
        while let Some(done) = self.set.join_next().await {
            if let Ok(s) = done {
                seen.push(s);
            }
        }
        summarise(seen, self.n)
    }
}

async fn read(
    mut resp: reqwest::Response,
    received: Arc<AtomicU64>,
    stop: CancellationToken,
) -> Seen {
    let mut seen = Seen {
        lags: Vec::new(),
        cut_off: false,
    };
    let mut line: Vec<u8> = Vec::new();
    loop {
        let chunk = tokio::select! {
            _ = stop.cancelled() => return seen,
            c = resp.chunk() => c,
        };
        let Ok(Some(chunk)) = chunk else {
            // The gateway ended the stream (a cut-off laggard) or it failed.
            seen.cut_off = !stop.is_cancelled();
            return seen;
        };
        let at_read = now_ms();
        for part in chunk.split_inclusive(|&b| b == b'\n') {
            line.extend_from_slice(part);
            if line.last() != Some(&b'\n') {
                continue;
            }
            if line.starts_with(b"data:") {
                let lag = event_at(&line).map_or(0, |at| at_read.saturating_sub(at));
                seen.lags.push(u32::try_from(lag).unwrap_or(u32::MAX));
                received.fetch_add(1, Ordering::Relaxed);
            }
            line.clear();
        }
    }
}

fn summarise(mut seen: Vec<Seen>, subscribers: u64) -> EventsReport {
    let mut all: Vec<u32> = Vec::new();
    let mut worst = 0u32;
    let (mut min, mut max) = (u64::MAX, 0u64);
    let mut cut = 0;
    for s in &mut seen {
        let lags = &mut s.lags;
        lags.sort_unstable();
        worst = worst.max(pct(lags, 99.0));
        min = min.min(lags.len() as u64);
        max = max.max(lags.len() as u64);
        cut += u64::from(s.cut_off);
        all.extend_from_slice(lags);
    }
    all.sort_unstable();
    EventsReport {
        subscribers,
        received_min: if seen.is_empty() { 0 } else { min },
        received_max: max,
        cut_off: cut,
        lag_p50_ms: f64::from(pct(&all, 50.0)),
        lag_p99_ms: f64::from(pct(&all, 99.0)),
        lag_max_ms: f64::from(all.last().copied().unwrap_or(0)),
        worst_subscriber_p99_ms: f64::from(worst),
    }
}

/// Nearest-rank percentile of sorted values (0 for none).
fn pct(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The `at` of an event's JSON: the first `"at":` (events put it before any nested body).
fn event_at(data: &[u8]) -> Option<u64> {
    let key = b"\"at\":";
    let i = data.windows(key.len()).position(|w| w == key)? + key.len();
    let digits: &[u8] = &data[i..];
    let end = digits
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_is_read_from_the_event_json() {
        let ev = br#"data: {"type":"task","task_id":"x","status":"COMPLETED","at":1733000000123,"outcome":{"result":{"at":1}}}"#;
        assert_eq!(event_at(ev), Some(1_733_000_000_123));
        assert_eq!(event_at(b"data: {}"), None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!((pct(&v, 50.0), pct(&v, 99.0)), (50, 99));
        assert_eq!(pct(&[], 50.0), 0);
    }
}
