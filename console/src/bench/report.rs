//! The summary of a benchmark run: rates, latency percentiles and the platform it ran on,
//! rendered as a table or serialised as the JSON object scripts read (`demo/bench/study.sh`).

use std::fmt::Write;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{BenchArgs, Sample};

/// The workers `GET /workers` listed when the run began.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// `local`, `push` or `pull` (of the first worker listed).
    pub mode: String,
    /// Worker entries: the local pool counts as one.
    pub workers: usize,
    /// Python processes over all workers: tasks that can run at once.
    pub slots: usize,
}

/// One run's result. Rates are tasks per second, times milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// Measured tasks (the warm-up is not counted).
    pub tasks: u64,
    pub completed: u64,
    pub failures: u64,
    pub concurrency: u64,
    /// Executions per `/execute_batch` request, or null for one `/execute_function` each.
    pub batch: Option<u64>,
    /// The tasks' sleep, or null for no-op tasks.
    pub sleep_ms: Option<u64>,
    /// From the first submission to the last result.
    pub wall_s: f64,
    /// Completed tasks per second of `wall_s`.
    pub throughput: f64,
    /// Accepted submissions per second, from the first submission to the last acknowledgement.
    pub submit_rate: f64,
    /// Submit → result available, over completed tasks.
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    #[serde(flatten)]
    pub platform: Option<Platform>,
    /// Sleep tasks only: the throughput of perfectly parallel slots with zero overhead.
    pub ideal_throughput: Option<f64>,
    /// `throughput / ideal_throughput`.
    pub efficiency: Option<f64>,
    /// CPU cores the bench client itself used during the run (Linux only).
    pub client_cpu_cores: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// `--functions K` when more than one: tasks cycled over K functions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub functions: Option<u64>,
    /// `--cold-starts N`: the latencies are N first calls of new functions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold_starts: Option<u64>,
    /// `--subscribers N`: what the `GET /events` streams saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<super::EventsReport>,
}

impl BenchReport {
    pub fn new(
        args: &BenchArgs,
        platform: Option<Platform>,
        started: Instant,
        samples: &[Sample],
    ) -> Self {
        let secs = |end: Option<Instant>| {
            end.map_or(0.0, |e| e.saturating_duration_since(started).as_secs_f64())
        };
        let ok: Vec<&Sample> = samples.iter().filter(|s| s.error.is_none()).collect();
        let wall_s = secs(samples.iter().map(|s| s.done).max());
        let accepted: Vec<Instant> = samples.iter().filter_map(|s| s.accepted).collect();
        let submit_s = secs(accepted.iter().copied().max());
        let mut latencies: Vec<f64> = ok.iter().map(|s| ms(s.done - s.submitted)).collect();
        latencies.sort_by(f64::total_cmp);
        let completed = ok.len() as u64;
        let throughput = rate(completed, wall_s);
        let ideal_throughput = ideal(args, platform.as_ref());
        Self {
            tasks: args.tasks,
            completed,
            failures: samples.len() as u64 - completed,
            concurrency: args.concurrency,
            batch: args.batch,
            sleep_ms: args.sleep_ms,
            wall_s,
            throughput,
            submit_rate: rate(accepted.len() as u64, submit_s),
            p50_ms: percentile(&latencies, 50.0),
            p90_ms: percentile(&latencies, 90.0),
            p99_ms: percentile(&latencies, 99.0),
            max_ms: latencies.last().copied().unwrap_or(0.0),
            mean_ms: if latencies.is_empty() {
                0.0
            } else {
                latencies.iter().sum::<f64>() / latencies.len() as f64
            },
            platform,
            ideal_throughput,
            efficiency: ideal_throughput.map(|i| throughput / i),
            client_cpu_cores: None,
            first_error: samples.iter().find_map(|s| s.error.clone()),
            functions: (args.functions > 1).then_some(args.functions),
            cold_starts: None,
            events: None,
        }
    }

    /// The human-readable form.
    pub fn table(&self) -> String {
        let mut kind = match self.sleep_ms {
            Some(ms) => format!("sleep({ms} ms)"),
            None => "no-op".to_owned(),
        };
        if let Some(k) = self.functions {
            kind += &format!(" over {k} functions");
        }
        if self.cold_starts.is_some() {
            kind = "cold starts (first calls of new functions)".to_owned();
        }
        let via = match self.batch {
            Some(b) => format!("/execute_batch ({b} per request)"),
            None => "/execute_function".to_owned(),
        };
        let platform = match &self.platform {
            Some(p) => format!(
                "{} mode, {} worker(s), {} slot(s)",
                p.mode, p.workers, p.slots
            ),
            None => "unknown (GET /workers listed none)".to_owned(),
        };
        let mut rows = vec![
            (
                "tasks",
                format!("{} {kind} ({} failed)", self.tasks, self.failures),
            ),
            ("submitted via", via),
            ("concurrency", self.concurrency.to_string()),
            ("platform", platform),
            ("wall time", format!("{:.3} s", self.wall_s)),
            ("throughput", format!("{:.0} tasks/s", self.throughput)),
            ("submit rate", format!("{:.0} tasks/s", self.submit_rate)),
            (
                "latency",
                format!(
                    "p50 {:.2} ms · p90 {:.2} ms · p99 {:.2} ms · max {:.2} ms",
                    self.p50_ms, self.p90_ms, self.p99_ms, self.max_ms
                ),
            ),
        ];
        if let (Some(i), Some(e)) = (self.ideal_throughput, self.efficiency) {
            rows.push((
                "ideal",
                format!("{i:.1} tasks/s (measured {:.1}%)", e * 100.0),
            ));
        }
        if let Some(c) = self.client_cpu_cores {
            rows.push(("client cpu", format!("{c:.2} cores (this process)")));
        }
        if let Some(e) = &self.events {
            rows.push((
                "/events",
                format!(
                    "{} subscribers, {}–{} events each, {} cut off; lag p50 {:.0} ms · p99 {:.0} ms · max {:.0} ms (worst subscriber's p99 {:.0} ms)",
                    e.subscribers,
                    e.received_min,
                    e.received_max,
                    e.cut_off,
                    e.lag_p50_ms,
                    e.lag_p99_ms,
                    e.lag_max_ms,
                    e.worst_subscriber_p99_ms
                ),
            ));
        }
        if let Some(e) = &self.first_error {
            rows.push(("first error", e.clone()));
        }
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (k, v) in rows {
            let _ = writeln!(out, "{k:<width$}  {v}");
        }
        out
    }
}

/// Sleep tasks on `slots` processes with `concurrency` in flight: waves of `min(slots,
/// concurrency)` tasks, each wave one sleep long, and nothing else costs time.
fn ideal(args: &BenchArgs, platform: Option<&Platform>) -> Option<f64> {
    let sleep = args.sleep_ms.filter(|&ms| ms > 0)?;
    let parallel = platform?.slots.min(args.concurrency as usize) as u64;
    if parallel == 0 {
        return None;
    }
    let waves = args.tasks.div_ceil(parallel);
    Some(rate(args.tasks, (waves * sleep) as f64 / 1000.0))
}

fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Nearest-rank percentile of sorted values (0 for none).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(tasks: u64, concurrency: u64, sleep_ms: Option<u64>) -> BenchArgs {
        BenchArgs {
            tasks,
            concurrency,
            sleep_ms,
            batch: None,
            warmup: None,
            functions: 1,
            cold_starts: None,
            cold_pause_ms: 0,
            task_timeout_ms: 1000,
            subscribers: None,
            json: true,
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[3.0], 90.0), 3.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn ideal_throughput_counts_waves_of_parallel_sleeps() {
        let p = Platform {
            mode: "local".into(),
            workers: 1,
            slots: 8,
        };
        // 40 tasks on 8 slots: 5 waves of 100 ms, 80 tasks/s.
        assert_eq!(ideal(&args(40, 40, Some(100)), Some(&p)), Some(80.0));
        // Concurrency 4 leaves half the slots idle.
        assert_eq!(ideal(&args(40, 4, Some(100)), Some(&p)), Some(40.0));
        assert_eq!(ideal(&args(40, 40, None), Some(&p)), None);
        assert_eq!(ideal(&args(40, 40, Some(100)), None), None);
    }

    #[test]
    fn a_report_counts_failures_and_serialises_flat() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let samples = vec![
            Sample {
                submitted: at(0),
                accepted: Some(at(1)),
                done: at(10),
                error: None,
            },
            Sample {
                submitted: at(0),
                accepted: None,
                done: at(2),
                error: Some("submit: nope".into()),
            },
        ];
        let platform = Some(Platform {
            mode: "push".into(),
            workers: 2,
            slots: 4,
        });
        let r = BenchReport::new(&args(2, 2, None), platform, t0, &samples);
        assert_eq!((r.completed, r.failures), (1, 1));
        assert_eq!(r.p50_ms, 10.0);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["mode"], "push");
        assert_eq!(v["slots"], 4);
        assert_eq!(v["first_error"], "submit: nope");
        assert!(r.table().contains("1 failed"), "{}", r.table());
    }
}
