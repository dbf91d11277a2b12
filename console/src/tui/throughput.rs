//! Tasks finished per second over the last minute, for the Overview sparkline.
//!
//! Counting into one-second buckets is O(1) per event, so bursts of events cost no more than
//! incrementing a number; the sparkline reads the 60 buckets once per frame.

/// Seconds shown.
pub const WINDOW_SECS: usize = 60;

#[derive(Clone, Debug)]
pub struct Throughput {
    /// `counts[s % WINDOW_SECS]` is the count of second `s` if `secs[...] == s`.
    counts: [u64; WINDOW_SECS],
    secs: [u64; WINDOW_SECS],
}

impl Default for Throughput {
    fn default() -> Self {
        Self {
            counts: [0; WINDOW_SECS],
            secs: [u64::MAX; WINDOW_SECS],
        }
    }
}

impl Throughput {
    /// Counts one finished task at `now_ms`.
    pub fn record(&mut self, now_ms: u64) {
        let sec = now_ms / 1000;
        let i = (sec % WINDOW_SECS as u64) as usize;
        if self.secs[i] != sec {
            self.secs[i] = sec;
            self.counts[i] = 0;
        }
        self.counts[i] += 1;
    }

    /// Counts per second, oldest first, ending with the current (partial) second.
    pub fn series(&self, now_ms: u64) -> Vec<u64> {
        let now = now_ms / 1000;
        (0..WINDOW_SECS as u64)
            .rev()
            .map(|back| {
                let Some(sec) = now.checked_sub(back) else {
                    return 0;
                };
                let i = (sec % WINDOW_SECS as u64) as usize;
                if self.secs[i] == sec {
                    self.counts[i]
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
