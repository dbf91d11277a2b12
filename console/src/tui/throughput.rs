//! Tasks finished per second over the last minute, completed and failed apart, for the
//! Overview chart.
//!
//! Counting into one-second buckets is O(1) per event, so bursts of events cost no more than
//! incrementing a number; the chart reads the 60 buckets once per frame.

/// Seconds shown.
pub const WINDOW_SECS: usize = 60;

#[derive(Clone, Debug)]
pub struct Throughput {
    /// `counts[s % WINDOW_SECS]` is the count of second `s` if `secs[...] == s`.
    counts: [u64; WINDOW_SECS],
    /// Of those, the failed ones.
    failed: [u64; WINDOW_SECS],
    secs: [u64; WINDOW_SECS],
}

impl Default for Throughput {
    fn default() -> Self {
        Self {
            counts: [0; WINDOW_SECS],
            failed: [0; WINDOW_SECS],
            secs: [u64::MAX; WINDOW_SECS],
        }
    }
}

impl Throughput {
    /// Counts one finished task at `now_ms`.
    pub fn record(&mut self, now_ms: u64, failed: bool) {
        let sec = now_ms / 1000;
        let i = (sec % WINDOW_SECS as u64) as usize;
        if self.secs[i] != sec {
            self.secs[i] = sec;
            self.counts[i] = 0;
            self.failed[i] = 0;
        }
        self.counts[i] += 1;
        self.failed[i] += u64::from(failed);
    }

    /// Failed tasks per second, oldest first, like [`Throughput::series`].
    pub fn failed_series(&self, now_ms: u64) -> Vec<u64> {
        self.column(now_ms, &self.failed)
    }

    /// Completed tasks per second, oldest first, like [`Throughput::series`].
    pub fn completed_series(&self, now_ms: u64) -> Vec<u64> {
        let failed = self.failed_series(now_ms);
        self.series(now_ms)
            .into_iter()
            .zip(failed)
            .map(|(all, f)| all - f)
            .collect()
    }

    /// Counts per second, oldest first, ending with the current (partial) second.
    pub fn series(&self, now_ms: u64) -> Vec<u64> {
        self.column(now_ms, &self.counts)
    }

    fn column(&self, now_ms: u64, values: &[u64; WINDOW_SECS]) -> Vec<u64> {
        let now = now_ms / 1000;
        (0..WINDOW_SECS as u64)
            .rev()
            .map(|back| {
                let Some(sec) = now.checked_sub(back) else {
                    return 0;
                };
                let i = (sec % WINDOW_SECS as u64) as usize;
                if self.secs[i] == sec {
                    values[i]
                } else {
                    0
                }
            })
            .collect()
    }

    /// The last complete second's count (the current one is still filling).
    pub fn last_second(&self, now_ms: u64) -> u64 {
        let s = self.series(now_ms);
        s[s.len() - 2]
    }

    /// Finished in the last minute.
    pub fn total(&self, now_ms: u64) -> u64 {
        self.series(now_ms).iter().sum()
    }
}
