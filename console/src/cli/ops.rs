//! The operator subcommands over the gateway's task and function management routes: `tasks`
//! (search with filters, paging with the gateway's cursor), `cancel`, `retry`, `purge --yes`,
//! `function` (metadata and statistics), `rm` (delete a function) and `drain` (a worker finishes
//! its tasks and leaves). Plain output for people, the gateway's JSON with `--json`.

use clap::{Args, ValueEnum};
use faas_protocol::api::{FunctionDetail, Percentiles};
use faas_protocol::{FunctionId, TaskId};
use serde_json::{json, Value};

use super::output::{ago, duration, table, timestamp};
use super::{CliError, EXIT_OK};
use crate::client::GatewayClient;

/// Most tasks one request of the gateway returns.
const PAGE_MAX: u64 = 1_000;

#[derive(Debug, Args)]
pub struct TasksArgs {
    /// Only tasks in this status.
    #[arg(long, value_enum)]
    pub status: Option<StatusArg>,
    /// Only tasks of this function.
    #[arg(long = "function", value_name = "FUNCTION_ID")]
    pub function: Option<FunctionId>,
    /// Only tasks run by this worker.
    #[arg(long)]
    pub worker: Option<String>,
    /// Only tasks created at or after this time: unix milliseconds, or an age like 90s, 15m,
    /// 2h, 1d.
    #[arg(long, value_name = "WHEN", value_parser = parse_since)]
    pub since: Option<u64>,
    /// Most tasks to list, newest first (pages are fetched as needed).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: u64,
    /// Continue a listing from the `next_cursor` of a previous `--json` reply.
    #[arg(long)]
    pub cursor: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum StatusArg {
    Queued,
    Running,
    Completed,
    Failed,
}

impl StatusArg {
    fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::Running => "RUNNING",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
        }
    }
}

#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// Confirm: every QUEUED task is cancelled (ends FAILED, `Cancelled`).
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct FunctionArg {
    pub function_id: FunctionId,
}

/// `--since`: unix milliseconds as they are, or an age (`90s`, `15m`, `2h`, `1d`) before now.
fn parse_since(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<u64>() {
        return Ok(ms);
    }
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .filter(|&i| i > 0)
        .ok_or_else(|| format!("{s:?} is neither unix milliseconds nor an age like 15m"))?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("{s:?}: bad number"))?;
    let unit_ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("{s:?}: the unit must be ms, s, m, h or d")),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Ok(now.saturating_sub(n.saturating_mul(unit_ms)))
}

pub async fn tasks(c: &GatewayClient, a: TasksArgs, json: bool) -> Result<i32, CliError> {
    let mut base = Vec::new();
    if let Some(s) = a.status {
        base.push(format!("status={}", s.as_str()));
    }
    if let Some(f) = a.function {
        base.push(format!("function_id={f}"));
    }
    if let Some(w) = &a.worker {
        base.push(format!("worker={}", encode(w)));
    }
    if let Some(since) = a.since {
        base.push(format!("since={since}"));
    }
    let mut tasks: Vec<Value> = Vec::new();
    let mut cursor = a.cursor.clone();
    let next_cursor = loop {
        let want = (a.limit - tasks.len() as u64).min(PAGE_MAX);
        let mut q = base.clone();
        q.push(format!("limit={want}"));
        if let Some(cur) = &cursor {
            q.push(format!("cursor={}", encode(cur)));
        }
        let page: Value = c.get(&format!("/tasks?{}", q.join("&"))).await?;
        let items = page["tasks"]
            .as_array()
            .ok_or_else(|| CliError::Other(anyhow::anyhow!("the reply has no `tasks` list")))?;
        tasks.extend(items.iter().cloned());
        let next = page["next_cursor"].as_str().map(str::to_owned);
        match next {
            Some(n) if (tasks.len() as u64) < a.limit && !items.is_empty() => cursor = Some(n),
            other => break other,
        }
    };
    if json {
        print_json(&json!({ "tasks": tasks, "next_cursor": next_cursor }));
        return Ok(EXIT_OK);
    }
    let rows: Vec<Vec<String>> = tasks
        .iter()
        .map(|t| {
            let s = |k: &str| t[k].as_str().unwrap_or("-").to_owned();
            let ms = |k: &str| t[k].as_u64();
            let ran = match (ms("started_at"), ms("finished_at")) {
                (Some(s), Some(f)) => duration(f.saturating_sub(s)),
                _ => "-".into(),
            };
            let error = t["error"]["type"].as_str().unwrap_or("").to_owned();
            vec![
                s("task_id"),
                s("status"),
                s("function_id"),
                s("worker"),
                format!(
                    "{}/{}",
                    t["attempts"].as_u64().unwrap_or(0),
                    t["max_attempts"].as_u64().unwrap_or(0)
                ),
                ms("created_at").map(ago).unwrap_or_else(|| "-".into()),
                ran,
                error,
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &["TASK ID", "STATUS", "FUNCTION", "WORKER", "ATTEMPTS", "CREATED", "RAN", "ERROR"],
            &rows
        )
    );
    if tasks.is_empty() {
        eprintln!("no tasks match");
    }
    if let Some(n) = next_cursor {
        eprintln!("more tasks: --cursor {n}");
    }
    Ok(EXIT_OK)
}

pub async fn cancel(
    c: &GatewayClient,
    a: super::api::TaskArg,
    json: bool,
) -> Result<i32, CliError> {
    let reply: Value = c
        .post(&format!("/tasks/{}/cancel", a.task_id), &json!({}))
        .await?;
    if json {
        print_json(&reply);
    } else {
        println!(
            "{} cancelled (was {})",
            a.task_id,
            reply["was"].as_str().unwrap_or("?")
        );
    }
    Ok(EXIT_OK)
}

pub async fn retry(c: &GatewayClient, a: super::api::TaskArg, json: bool) -> Result<i32, CliError> {
    let reply: Value = c
        .post(&format!("/tasks/{}/retry", a.task_id), &json!({}))
        .await?;
    if json {
        print_json(&reply);
    } else {
        let new: TaskId = reply["task_id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| CliError::Other(anyhow::anyhow!("the reply has no task id")))?;
        println!("{new}");
    }
    Ok(EXIT_OK)
}

pub async fn purge(c: &GatewayClient, a: PurgeArgs, json: bool) -> Result<i32, CliError> {
    if !a.yes {
        return Err(CliError::Usage(
            "purge cancels every queued task; run `faas purge --yes` to confirm".into(),
        ));
    }
    let reply: Value = c.post("/queue/purge", &json!({ "confirm": true })).await?;
    if json {
        print_json(&reply);
    } else {
        println!(
            "{} queued task(s) cancelled",
            reply["purged"].as_u64().unwrap_or(0)
        );
    }
    Ok(EXIT_OK)
}

pub async fn function(c: &GatewayClient, a: FunctionArg, json: bool) -> Result<i32, CliError> {
    let f: Value = c.get(&format!("/functions/{}", a.function_id)).await?;
    if json {
        print_json(&f);
        return Ok(EXIT_OK);
    }
    let detail: FunctionDetail = serde_json::from_value(f).map_err(|e| {
        CliError::Other(anyhow::anyhow!(
            "the gateway's function detail is not what this faas reads ({e}); --json prints it"
        ))
    })?;
    print!("{}", describe_function(&detail));
    Ok(EXIT_OK)
}

/// A function's metadata and statistics as labelled lines, times for people (the statistics
/// object printed as it came put raw unix milliseconds beside formatted dates).
fn describe_function(f: &FunctionDetail) -> String {
    let mut out = String::new();
    let mut field = |label: &str, value: String| out.push_str(&format!("{label:<12} {value}\n"));
    field("function", f.function_id.to_string());
    field("name", f.name.clone());
    field(
        "format",
        match &f.entrypoint {
            Some(e) => format!("{}, entrypoint {e}", f.format.as_str()),
            None => f.format.as_str().to_owned(),
        },
    );
    field(
        "created",
        format!("{} ({})", timestamp(f.created_at), ago(f.created_at)),
    );
    let s = &f.stats;
    field("invocations", s.invocations.to_string());
    let share = |n: u64| match s.completed + s.failed + s.cancelled {
        0 => String::new(),
        ended => format!(" ({}%)", (n * 100 + ended / 2) / ended),
    };
    field(
        "completed",
        format!("{}{}", s.completed, share(s.completed)),
    );
    field("failed", format!("{}{}", s.failed, share(s.failed)));
    field(
        "cancelled",
        format!("{}{}", s.cancelled, share(s.cancelled)),
    );
    let percentiles = |p: &Option<Percentiles>| match p {
        Some(p) => format!(
            "p50 {}  p95 {}  p99 {}  (last {} runs)",
            duration(p.p50),
            duration(p.p95),
            duration(p.p99),
            p.samples
        ),
        None => "- (no finished run yet)".to_owned(),
    };
    field("run time", percentiles(&s.run_ms));
    field("queue wait", percentiles(&s.queue_wait_ms));
    if let Some(at) = s.last_failure_at {
        let kind = s.last_failure_type.as_deref().unwrap_or("?");
        field(
            "last failure",
            format!("{kind}, {} ({})", timestamp(at), ago(at)),
        );
    }
    out
}

pub async fn rm(c: &GatewayClient, a: FunctionArg, json: bool) -> Result<i32, CliError> {
    let reply: Value = c.delete(&format!("/functions/{}", a.function_id)).await?;
    if json {
        print_json(&reply);
    } else {
        println!(
            "{} deleted ({} queued task(s) cancelled)",
            a.function_id,
            reply["cancelled"].as_u64().unwrap_or(0)
        );
    }
    Ok(EXIT_OK)
}

/// Percent-encodes a query value (worker ids and cursors are the gateway's, but may hold `&`).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn print_json(v: &Value) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("error: cannot encode the reply as JSON: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_millis_or_an_age() {
        assert_eq!(parse_since("1700000000000").unwrap(), 1_700_000_000_000);
        let an_hour_ago = parse_since("1h").unwrap();
        let now = parse_since("0s").unwrap();
        assert!(now - an_hour_ago >= 3_600_000 && now - an_hour_ago < 3_700_000);
        for bad in ["", "h", "5y", "-1", "1.5h"] {
            assert!(parse_since(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_function_reads_as_labelled_lines_with_dates_for_people() {
        let at: u64 = 1_700_000_000_123;
        let mut f: FunctionDetail = serde_json::from_value(json!({
            "function_id": "2469d041-b461-4bd8-84b3-78f426663ffe", "name": "add",
            "format": "source", "entrypoint": "add", "created_at": at,
            "stats": {"invocations": 3, "completed": 1, "failed": 1, "cancelled": 0,
                      "run_ms": {"p50": 1, "p95": 1_500, "p99": 2_000, "samples": 2},
                      "queue_wait_ms": null,
                      "last_failure_at": at + 1_000, "last_failure_type": "TypeError"}
        }))
        .unwrap();
        let out = describe_function(&f);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "function     2469d041-b461-4bd8-84b3-78f426663ffe"
        );
        assert_eq!(lines[2], "format       source, entrypoint add");
        assert!(
            lines[3].starts_with("created      2023-11-14T22:13:20Z ("),
            "{out}"
        );
        assert_eq!(lines[4], "invocations  3");
        assert_eq!(lines[5], "completed    1 (50%)");
        assert_eq!(lines[7], "cancelled    0 (0%)");
        assert_eq!(
            lines[8],
            "run time     p50 1ms  p95 1s 500ms  p99 2s  (last 2 runs)"
        );
        assert_eq!(lines[9], "queue wait   - (no finished run yet)");
        assert!(
            lines[10].starts_with("last failure TypeError, 2023-11-14T22:13:21Z ("),
            "{out}"
        );
        assert!(
            !out.contains("1700000001123"),
            "no raw unix milliseconds: {out}"
        );
        f.stats = Default::default();
        f.entrypoint = None;
        let out = describe_function(&f);
        assert!(
            out.contains("completed    0\n") && !out.contains("last failure"),
            "{out}"
        );
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode("w-1.a_b~"), "w-1.a_b~");
        assert_eq!(encode("a&b=c d"), "a%26b%3Dc%20d");
    }
}

#[derive(Debug, Args)]
pub struct WorkerArg {
    /// The worker id, as `faas workers` lists it.
    pub worker: String,
}

/// `faas drain WORKER`: the worker's dispatcher stops giving it tasks, and the worker finishes
/// the ones it runs and leaves (`POST /workers/{id}/drain`).
pub async fn drain(c: &GatewayClient, a: WorkerArg, json: bool) -> Result<i32, CliError> {
    if a.worker.trim().is_empty() {
        return Err(CliError::Usage("the worker id is empty".into()));
    }
    let reply = c.drain_worker(&a.worker).await?;
    if json {
        print_json(&serde_json::to_value(&reply).unwrap_or_default());
    } else {
        println!(
            "{} draining: it takes no new task, finishes its running ones and leaves (dispatcher {})",
            reply.worker, reply.dispatcher
        );
    }
    Ok(EXIT_OK)
}

#[cfg(test)]
mod drain_tests {
    #[test]
    fn worker_ids_are_escaped_for_the_path() {
        use crate::client::path_segment;
        assert_eq!(path_segment("w-1.a_b~"), "w-1.a_b~");
        assert_eq!(path_segment("h:1/x y"), "h%3A1%2Fx%20y");
    }
}
