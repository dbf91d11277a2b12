//! Per-function health for the Functions screen: the statistics of `GET /functions/{id}`
//! (runs, failures, run time and queue wait percentiles, the last failure), the column the
//! list is sorted by, and the function view (Enter) with its recent failures.
//!
//! The statistics are read only while the Functions screen is shown, every [`STATS_EVERY_MS`],
//! one request per function made concurrently by the network tasks, and never two rounds at
//! once: an idle console on another screen asks nothing.

use std::cmp::Reverse;
use std::collections::HashMap;

use faas_protocol::api::{FunctionDetail, FunctionStats, TaskSummary};
use faas_protocol::model::FunctionSummary;
use faas_protocol::FunctionId;

/// How often the statistics are read while the Functions screen is shown.
pub const STATS_EVERY_MS: u64 = 3_000;
/// How many recent failures the function view lists.
pub const RECENT_FAILURES: usize = 20;

/// The column the function list is sorted by; `s` goes to the next.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Sort {
    /// Newest registration first.
    #[default]
    Newest,
    Name,
    /// Most runs first.
    Runs,
    /// Highest share of failed runs first.
    FailedShare,
    /// Slowest median run first.
    P50,
    P99,
    /// Longest median queue wait first.
    Wait,
    /// Most recent failure first.
    LastFailure,
}

impl Sort {
    pub const ALL: [Sort; 8] = [
        Sort::Newest,
        Sort::Name,
        Sort::Runs,
        Sort::FailedShare,
        Sort::P50,
        Sort::P99,
        Sort::Wait,
        Sort::LastFailure,
    ];

    /// The list's columns, each with the sort it stands for.
    pub const ALL_COLUMNS: [(&'static str, Option<Sort>); 8] = [
        ("NAME", Some(Sort::Name)),
        ("RUNS", Some(Sort::Runs)),
        ("FAILED %", Some(Sort::FailedShare)),
        ("P50", Some(Sort::P50)),
        ("P99", Some(Sort::P99)),
        ("WAIT P50", Some(Sort::Wait)),
        ("LAST FAILURE", Some(Sort::LastFailure)),
        ("AGE", Some(Sort::Newest)),
    ];

    pub fn next(self) -> Self {
        let i = Self::ALL.iter().position(|s| *s == self).unwrap_or(0);
        Self::ALL[(i + 1) % Self::ALL.len()]
    }

    /// The column header it sorts by (also how the title names it).
    pub fn column(self) -> &'static str {
        match self {
            Sort::Newest => "AGE",
            Sort::Name => "NAME",
            Sort::Runs => "RUNS",
            Sort::FailedShare => "FAILED %",
            Sort::P50 => "P50",
            Sort::P99 => "P99",
            Sort::Wait => "WAIT P50",
            Sort::LastFailure => "LAST FAILURE",
        }
    }

    /// Sorts `list` in place; functions without statistics go last, ties by newest.
    pub fn apply(self, list: &mut [FunctionSummary], stats: &HashMap<FunctionId, FunctionStats>) {
        let st = |f: &FunctionSummary| stats.get(&f.function_id);
        // Descending by a number that may be missing: missing sorts after every value.
        let desc = |v: Option<u64>| Reverse(v.map(|v| v + 1).unwrap_or(0));
        list.sort_by_key(|f| Reverse(f.created_at));
        match self {
            Sort::Newest => {}
            Sort::Name => list.sort_by_key(|f| f.name.to_lowercase()),
            Sort::Runs => list.sort_by_key(|f| desc(st(f).map(|s| s.invocations))),
            // Per ten thousand, so the key is a whole number.
            Sort::FailedShare => {
                list.sort_by_key(|f| desc(st(f).and_then(failed_share).map(|p| (p * 100.0) as u64)))
            }
            Sort::P50 => {
                list.sort_by_key(|f| desc(st(f).and_then(|s| s.run_ms.as_ref()).map(|p| p.p50)))
            }
            Sort::P99 => {
                list.sort_by_key(|f| desc(st(f).and_then(|s| s.run_ms.as_ref()).map(|p| p.p99)))
            }
            Sort::Wait => list
                .sort_by_key(|f| desc(st(f).and_then(|s| s.queue_wait_ms.as_ref()).map(|p| p.p50))),
            Sort::LastFailure => list.sort_by_key(|f| desc(st(f).and_then(|s| s.last_failure_at))),
        }
    }
}

/// Failed runs as a percentage of finished ones (cancelled ones not counted); None before any.
pub fn failed_share(s: &FunctionStats) -> Option<f64> {
    let finished = s.completed + s.failed;
    (finished > 0).then(|| s.failed as f64 * 100.0 / finished as f64)
}

/// A function opened with Enter.
#[derive(Clone, Debug)]
pub struct FunctionView {
    pub id: FunctionId,
    /// The whole `GET /functions/{id}` reply, once read.
    pub detail: Option<FunctionDetail>,
    /// Its last failed tasks, newest first; None while loading.
    pub failures: Option<Result<Vec<TaskSummary>, String>>,
}

impl FunctionView {
    pub fn new(id: FunctionId) -> Self {
        Self {
            id,
            detail: None,
            failures: None,
        }
    }
}
