//! `faas bench`: drives a running platform with no-op (or sleep) tasks and reports throughput
//! and submit → result latency, as a table or, with `--json`, as one JSON object.
//!
//! It measures the platform the way a client sees it: over HTTP, through the gateway, with `C`
//! concurrent clients sharing one connection pool. Each client submits a task and waits for its
//! result with `GET /result/{id}?wait=` (woken by the task's event, no polling), so a task's
//! latency is the full round trip. With `--batch B` the tasks are submitted through
//! `/execute_batch`, B per request, while the clients wait for the results as ids come back.
//! `demo/bench/study.sh` builds the weak-scaling study and the report out of these runs.
//!
//! `--functions K` cycles the tasks over K distinct no-op functions (each is a warm child of its
//! own in the executor, so this measures a mix against the single-function rate), and
//! `--cold-starts N` measures instead N first calls of freshly registered functions, one at a
//! time with `--cold-pause-ms` between them (so a spare child is ready, as between the
//! arrivals of new functions on a live platform); its latencies are those first calls.
//!
//! `--subscribers N` holds N `GET /events` streams open during the measured run and reports how
//! far behind the events they were ([`events`]); `demo/bench/events_fanout.sh` uses it.

mod events;
mod report;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use faas_protocol::api::ExecuteFunction;
use faas_protocol::{TaskId, TaskStatus};
use serde_json::json;
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinSet;

use crate::client::GatewayClient;

pub use events::EventsReport;
pub use report::{BenchReport, Platform};

const NOOP_SOURCE: &str = "def noop():\n    return None\n";
const SLEEP_SOURCE: &str = "import time\n\ndef sleep(ms):\n    time.sleep(ms / 1000)\n";
/// The gateway's own cap on `/execute_batch` (`MAX_BATCH` in the gateway).
const MAX_BATCH: usize = 10_000;
/// One long poll's bound; a task that takes longer is simply asked for again.
const LONG_POLL: Duration = Duration::from_secs(30);

#[derive(Clone, Debug, clap::Args)]
pub struct BenchArgs {
    /// Tasks to measure (after the warm-up).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub tasks: u64,
    /// Concurrent HTTP clients, each with one task in flight (or waiting for one with --batch).
    #[arg(long, short = 'c', default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub concurrency: u64,
    /// Run `time.sleep(S / 1000)` tasks instead of no-ops.
    #[arg(long, value_name = "S")]
    pub sleep_ms: Option<u64>,
    /// Submit through `/execute_batch`, B executions per request.
    #[arg(long, value_name = "B", value_parser = clap::value_parser!(u64).range(1..=MAX_BATCH as u64))]
    pub batch: Option<u64>,
    /// Tasks run (and waited for) before measuring, so that Python children are started and
    /// the function is cached everywhere; default: the concurrency.
    #[arg(long)]
    pub warmup: Option<u64>,
    /// How long one task may take, submit to result, before it counts as failed.
    #[arg(long, default_value_t = 120_000)]
    pub task_timeout_ms: u64,
    /// Cycle the tasks over K distinct no-op functions (the warm-up runs each at least once).
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub functions: u64,
    /// Measure N cold starts instead: each the first call of a newly registered function.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub cold_starts: Option<u64>,
    /// With --cold-starts: the pause after each one.
    #[arg(long, value_name = "MS", default_value_t = 300)]
    pub cold_pause_ms: u64,
    /// Hold N `GET /events` streams open during the measured run and report how far behind
    /// the events they are (the lag of every event each receives).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub subscribers: Option<u64>,
    /// One JSON object instead of the table (set from the global `--json`).
    #[arg(skip)]
    pub json: bool,
}

/// Runs the benchmark against the gateway of `client` and prints its report. Fails (after
/// printing the report) when any task failed, so scripts notice.
pub async fn run(args: BenchArgs, client: GatewayClient) -> anyhow::Result<()> {
    let report = measure(&args, &client).await?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.table());
    }
    if report.failures > 0 {
        anyhow::bail!(
            "{} of {} tasks failed; first error: {}",
            report.failures,
            report.tasks,
            report.first_error.as_deref().unwrap_or("unknown")
        );
    }
    Ok(())
}

/// Registers the benchmark function, warms up, runs the measured tasks and summarises them.
pub async fn measure(args: &BenchArgs, client: &GatewayClient) -> anyhow::Result<BenchReport> {
    let timeout = Duration::from_millis(args.task_timeout_ms);
    if let Some(n) = args.cold_starts {
        return cold_starts(args, client, n, timeout).await;
    }
    let (function, name) = match args.sleep_ms {
        Some(_) => (SLEEP_SOURCE, "sleep"),
        None => (NOOP_SOURCE, "noop"),
    };
    let mut function_ids = Vec::new();
    for k in 0..args.functions {
        // Distinct bodies, in case equal ones were ever shared.
        let source = match args.functions {
            1 => function.to_owned(),
            _ => format!("{function}# variant {k}\n"),
        };
        let id = client
            .register_source(&format!("bench-{name}-{k}"), &source, name)
            .await
            .context("registering the benchmark function")?;
        function_ids.push(id);
    }
    let execution = |sleep_ms: Option<u64>| -> Vec<ExecuteFunction> {
        function_ids
            .iter()
            .map(|id| ExecuteFunction {
                function_id: id.to_string(),
                args: sleep_ms.map(|ms| json!([ms])),
                ..ExecuteFunction::default()
            })
            .collect()
    };
    let concurrency = args.concurrency as usize;

    // The warm-up sleeps 0 ms: it starts the same function everywhere without taking long.
    let warmup = (args.warmup.unwrap_or(args.concurrency) as usize).max(function_ids.len());
    if warmup > 0 {
        let warm = execution(args.sleep_ms.map(|_| 0));
        let samples = one_by_one(client, &warm, warmup, concurrency, timeout).await;
        if let Some(e) = samples.iter().find_map(|s| s.error.as_ref()) {
            anyhow::bail!("a warm-up task failed, so nothing was measured: {e}");
        }
    }

    // Read after the warm-up: push/pull workers may still have been registering before it.
    let platform = platform(client).await;
    let exec = execution(args.sleep_ms);
    let tasks = args.tasks as usize;
    let subscribers = match args.subscribers {
        Some(n) => Some(events::open(client, n).await?),
        None => None,
    };
    let cpu_before = process_cpu_time();
    let started = Instant::now();
    let samples = match args.batch {
        None => one_by_one(client, &exec, tasks, concurrency, timeout).await,
        Some(b) => batched(client, &exec, tasks, b as usize, concurrency, timeout).await,
    };
    let cpu_after = process_cpu_time();
    let mut report = BenchReport::new(args, platform, started, &samples);
    if let Some(s) = subscribers {
        report.events = Some(s.finish(Duration::from_secs(10)).await);
    }
    // The client shares the machine with the platform in most runs: what it costs matters.
    if let (Some(a), Some(b)) = (cpu_before, cpu_after) {
        report.client_cpu_cores = Some(b.saturating_sub(a).as_secs_f64() / report.wall_s.max(1e-9));
    }
    Ok(report)
}

/// User + system CPU time of this process so far (`getrusage(RUSAGE_SELF)`).
fn process_cpu_time() -> Option<Duration> {
    use nix::sys::resource::{getrusage, UsageWho};
    use nix::sys::time::TimeValLike;
    let usage = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    let micros = usage.user_time().num_microseconds() + usage.system_time().num_microseconds();
    Some(Duration::from_micros(u64::try_from(micros).ok()?))
}

/// What happened to one task, and when.
#[derive(Clone, Debug)]
pub struct Sample {
    /// When its submission began.
    pub submitted: Instant,
    /// When the gateway acknowledged the submission (None if it did not).
    pub accepted: Option<Instant>,
    /// When its terminal result was read.
    pub done: Instant,
    pub error: Option<String>,
}

/// `tasks` tasks, `concurrency` clients each submitting one and waiting for its result.
async fn one_by_one(
    client: &GatewayClient,
    execs: &[ExecuteFunction],
    tasks: usize,
    concurrency: usize,
    timeout: Duration,
) -> Vec<Sample> {
    let next = Arc::new(AtomicUsize::new(0));
    let execs: Arc<[ExecuteFunction]> = execs.into();
    let mut clients = JoinSet::new();
    for _ in 0..concurrency.min(tasks) {
        let (client, execs, next) = (client.clone(), execs.clone(), next.clone());
        clients.spawn(async move {
            let mut samples = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= tasks {
                    break;
                }
                let submitted = Instant::now();
                let sample = match client.execute(&execs[i % execs.len()]).await {
                    Ok(id) => {
                        let accepted = Instant::now();
                        let error = wait_terminal(&client, id, submitted + timeout).await.err();
                        Sample {
                            submitted,
                            accepted: Some(accepted),
                            done: Instant::now(),
                            error,
                        }
                    }
                    Err(e) => failed_submission(submitted, &e),
                };
                samples.push(sample);
            }
            samples
        });
    }
    collect(clients).await
}

/// Submits `tasks` tasks through `/execute_batch`, `batch` at a time, while `concurrency`
/// clients wait for the results of the ids that have come back.
async fn batched(
    client: &GatewayClient,
    execs: &[ExecuteFunction],
    tasks: usize,
    batch: usize,
    concurrency: usize,
    timeout: Duration,
) -> Vec<Sample> {
    let (ids, rx) = mpsc::unbounded_channel::<(TaskId, Instant, Instant)>();
    let rx = Arc::new(Mutex::new(rx));
    let mut waiters = JoinSet::new();
    for _ in 0..concurrency.min(tasks) {
        let (client, rx) = (client.clone(), rx.clone());
        waiters.spawn(async move {
            let mut samples = Vec::new();
            loop {
                // The lock is held only to take one id, never across a wait.
                let Some((id, submitted, accepted)) = rx.lock().await.recv().await else {
                    break;
                };
                let error = wait_terminal(&client, id, submitted + timeout).await.err();
                samples.push(Sample {
                    submitted,
                    accepted: Some(accepted),
                    done: Instant::now(),
                    error,
                });
            }
            samples
        });
    }
    let mut rejected = Vec::new();
    let mut left = tasks;
    let mut i = 0;
    while left > 0 {
        let n = left.min(batch);
        left -= n;
        let items = (i..i + n).map(|k| execs[k % execs.len()].clone()).collect();
        i += n;
        let submitted = Instant::now();
        match client.execute_batch(items).await {
            Ok(task_ids) => {
                let accepted = Instant::now();
                for id in task_ids {
                    // The waiters outlive the sender, so this cannot fail.
                    let _ = ids.send((id, submitted, accepted));
                }
            }
            Err(e) => rejected.extend((0..n).map(|_| failed_submission(submitted, &e))),
        }
    }
    drop(ids);
    let mut samples = collect(waiters).await;
    samples.extend(rejected);
    samples
}

/// `n` first calls of newly registered functions, one at a time, `--cold-pause-ms` apart.
async fn cold_starts(
    args: &BenchArgs,
    client: &GatewayClient,
    n: u64,
    timeout: Duration,
) -> anyhow::Result<BenchReport> {
    // A nonce per run: functions registered by an earlier run are not new to the executor.
    let run = uuid::Uuid::new_v4().simple().to_string();
    let platform = platform(client).await;
    let mut samples = Vec::new();
    let started = Instant::now();
    for k in 0..n {
        let source = format!("def cold():\n    return {k}\n# {run}\n");
        let id = client
            .register_source(&format!("bench-cold-{k}"), &source, "cold")
            .await
            .context("registering a cold-start function")?;
        let exec = ExecuteFunction {
            function_id: id.to_string(),
            ..ExecuteFunction::default()
        };
        samples.extend(one_by_one(client, &[exec], 1, 1, timeout).await);
        tokio::time::sleep(Duration::from_millis(args.cold_pause_ms)).await;
    }
    let mut report = BenchReport::new(args, platform, started, &samples);
    report.tasks = n;
    report.cold_starts = Some(n);
    Ok(report)
}

fn failed_submission(submitted: Instant, e: &crate::client::ClientError) -> Sample {
    Sample {
        submitted,
        accepted: None,
        done: Instant::now(),
        error: Some(format!("submit: {e}")),
    }
}

async fn collect(mut set: JoinSet<Vec<Sample>>) -> Vec<Sample> {
    let mut all = Vec::new();
    while let Some(done) = set.join_next().await {
        // A panicking client is a bug in this file; losing its samples would hide it.
        all.extend(done.expect("a benchmark client panicked"));
    }
    all
}

/// Long-polls the task's result until it is terminal; Err if it failed or ran out of time.
async fn wait_terminal(
    client: &GatewayClient,
    id: TaskId,
    deadline: Instant,
) -> Result<(), String> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("task {id} not finished in time"));
        }
        let reply = client
            .result(id, Some(left.min(LONG_POLL)))
            .await
            .map_err(|e| format!("result of {id}: {e}"))?;
        match reply.status {
            TaskStatus::Completed => return Ok(()),
            TaskStatus::Failed => {
                let why = reply
                    .error
                    .map(|e| format!("{}: {}", e.kind, e.message))
                    .unwrap_or_else(|| "no error recorded".into());
                return Err(format!("task {id} failed: {why}"));
            }
            TaskStatus::Queued | TaskStatus::Running => {}
        }
    }
}

/// The workers the dispatchers have registered: their mode, how many, how many slots.
async fn platform(client: &GatewayClient) -> Option<Platform> {
    let workers = client.workers().await.ok()?;
    let first = workers.first()?;
    let mode = serde_json::to_value(first.mode)
        .ok()?
        .as_str()
        .map(str::to_owned)?;
    Some(Platform {
        mode,
        workers: workers.len(),
        slots: workers.iter().map(|w| w.slots as usize).sum(),
    })
}
