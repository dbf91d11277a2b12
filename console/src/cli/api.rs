//! The subcommands that speak the gateway's HTTP API: register, invoke, status, result,
//! functions, workers, task. Each prints a plain form for people, or with `--json` the gateway's
//! reply as is, for scripts.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use faas_protocol::api::{ExecuteFunction, RegisterFunctionReply, ResultReply, StatusReply};
use faas_protocol::model::TaskRecord;
use faas_protocol::{FunctionId, TaskId, TaskStatus};
use serde::Serialize;
use serde_json::Value;

use super::output::{ago, duration, table, timestamp};
use super::{CliError, EXIT_FAILURE, EXIT_NOT_FINISHED, EXIT_OK};
use crate::client::GatewayClient;

/// How long one long poll of `invoke --wait` lasts before it is renewed.
const WAIT_CHUNK: Duration = Duration::from_secs(30);

#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// Python source file that defines the function.
    pub file: PathBuf,
    /// Name of the function in FILE to call.
    #[arg(short, long)]
    pub entrypoint: String,
    /// Name shown in listings [default: the entrypoint].
    #[arg(short, long)]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct InvokeArgs {
    /// Id of a function registered from source.
    pub function_id: FunctionId,
    /// Positional arguments as a JSON list, e.g. '[1, 2]'.
    pub args: Option<String>,
    /// Keyword arguments as a JSON object, e.g. '{"sep": "-"}'.
    #[arg(long)]
    pub kwargs: Option<String>,
    /// Wait for the result and print it (exit 1 if the task fails).
    #[arg(short, long)]
    pub wait: bool,
    /// The task's timeout in milliseconds [default: the dispatcher's].
    #[arg(long)]
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Args)]
pub struct TaskArg {
    pub task_id: TaskId,
}

#[derive(Debug, Args)]
pub struct ResultArgs {
    pub task_id: TaskId,
    /// Wait up to MS milliseconds for the task to finish.
    #[arg(long, value_name = "MS")]
    pub wait: Option<u64>,
}

pub async fn register(c: &GatewayClient, a: RegisterArgs, json: bool) -> Result<i32, CliError> {
    let source = std::fs::read_to_string(&a.file)
        .map_err(|e| CliError::Input(format!("cannot read {}: {e}", a.file.display())))?;
    let name = a.name.unwrap_or_else(|| a.entrypoint.clone());
    let function_id = c.register_source(&name, &source, &a.entrypoint).await?;
    if json {
        print_json(&RegisterFunctionReply { function_id });
    } else {
        println!("{function_id}");
    }
    Ok(EXIT_OK)
}

pub async fn invoke(c: &GatewayClient, a: InvokeArgs, json: bool) -> Result<i32, CliError> {
    let args = parse_json_arg("ARGS", a.args.as_deref(), Value::is_array, "a JSON list")?;
    let kwargs = parse_json_arg(
        "--kwargs",
        a.kwargs.as_deref(),
        Value::is_object,
        "a JSON object",
    )?;
    let task_id = c
        .execute(&ExecuteFunction {
            function_id: a.function_id.to_string(),
            args,
            kwargs,
            timeout_ms: a.timeout_ms,
            ..ExecuteFunction::default()
        })
        .await?;
    if !a.wait {
        if json {
            print_json(&serde_json::json!({ "task_id": task_id }));
        } else {
            println!("{task_id}");
        }
        return Ok(EXIT_OK);
    }
    let reply = loop {
        let reply = c.result(task_id, Some(WAIT_CHUNK)).await?;
        if reply.status.is_terminal() {
            break reply;
        }
    };
    Ok(show_result(&reply, json))
}

pub async fn status(c: &GatewayClient, a: TaskArg, json: bool) -> Result<i32, CliError> {
    let reply: StatusReply = c.status(a.task_id).await?;
    if json {
        print_json(&reply);
    } else {
        println!("{}", reply.status);
    }
    Ok(EXIT_OK)
}

pub async fn result(c: &GatewayClient, a: ResultArgs, json: bool) -> Result<i32, CliError> {
    let reply = c
        .result(a.task_id, a.wait.map(Duration::from_millis))
        .await?;
    Ok(show_result(&reply, json))
}

pub async fn functions(c: &GatewayClient, json: bool) -> Result<i32, CliError> {
    let list = c.functions().await?;
    if json {
        print_json(&list);
        return Ok(EXIT_OK);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|f| {
            vec![
                f.function_id.to_string(),
                f.name.clone(),
                f.format.as_str().to_owned(),
                timestamp(f.created_at),
            ]
        })
        .collect();
    println!(
        "{}",
        table(&["FUNCTION ID", "NAME", "FORMAT", "CREATED"], &rows)
    );
    if list.is_empty() {
        eprintln!("no functions registered yet (faas register FILE.py --entrypoint NAME)");
    }
    Ok(EXIT_OK)
}

pub async fn workers(c: &GatewayClient, json: bool) -> Result<i32, CliError> {
    let list = c.workers().await?;
    if json {
        print_json(&list);
        return Ok(EXIT_OK);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|w| {
            vec![
                w.id.clone(),
                format!("{:?}", w.mode).to_lowercase(),
                format!("{}:{}", w.host, w.pid),
                format!("{}/{}", w.busy, w.slots),
                w.tasks_done.to_string(),
                ago(w.last_heartbeat),
                if w.draining { "draining" } else { "online" }.to_owned(),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &[
                "WORKER",
                "MODE",
                "HOST:PID",
                "BUSY/SLOTS",
                "DONE",
                "HEARTBEAT",
                "STATE"
            ],
            &rows
        )
    );
    if list.is_empty() {
        eprintln!("no workers registered");
    }
    Ok(EXIT_OK)
}

pub async fn task(c: &GatewayClient, a: TaskArg, json: bool) -> Result<i32, CliError> {
    let t = c.task(a.task_id).await?;
    if json {
        print_json(&t);
    } else {
        print!("{}", describe_task(&t));
    }
    Ok(EXIT_OK)
}

/// A task record as labelled lines, the error and log last since they can be long.
fn describe_task(t: &TaskRecord) -> String {
    let mut out = String::new();
    let mut field = |label: &str, value: String| out.push_str(&format!("{label:<10} {value}\n"));
    field("task", t.task_id.to_string());
    field(
        "function",
        format!(
            "{} ({}, {})",
            t.function_name,
            t.function_id,
            t.format.as_str()
        ),
    );
    field("status", t.status.to_string());
    field("attempts", format!("{} of {}", t.attempts, t.max_attempts));
    if let Some(w) = &t.worker {
        field("worker", w.clone());
    }
    field(
        "created",
        format!("{} ({})", timestamp(t.created_at), ago(t.created_at)),
    );
    if let Some(started) = t.started_at {
        field("queued", duration(started.saturating_sub(t.created_at)));
        if let Some(finished) = t.finished_at {
            field("ran", duration(finished.saturating_sub(started)));
        }
    }
    if let Some(ms) = t.timeout_ms {
        field("timeout", duration(ms));
    }
    field("args", compact(&t.args));
    if t.status.is_terminal() && t.error.is_none() {
        field("result", compact(&t.result));
    }
    if let Some(e) = &t.error {
        field("error", format!("{}: {}", e.kind, e.message));
        if !e.traceback.is_empty() {
            out.push_str(&format!("traceback:\n{}\n", e.traceback.trim_end()));
        }
    }
    if !t.log.is_empty() {
        out.push_str(&format!("log:\n{}\n", t.log.trim_end()));
    }
    out
}

/// Prints a result reply; the exit code says how the task ended.
fn show_result(r: &ResultReply, json: bool) -> i32 {
    if json {
        print_json(r);
    }
    match r.status {
        TaskStatus::Completed => {
            if !json {
                println!("{}", compact(&r.result));
            }
            EXIT_OK
        }
        TaskStatus::Failed => {
            match &r.error {
                Some(e) => {
                    eprintln!("task {} failed: {}: {}", r.task_id, e.kind, e.message);
                    if !json && !e.traceback.is_empty() {
                        eprintln!("{}", e.traceback.trim_end());
                    }
                }
                // A dill task's exception is a pickle only Python can read.
                None => eprintln!(
                    "task {} failed; its exception is a dill pickle in `result` (see --json)",
                    r.task_id
                ),
            }
            EXIT_FAILURE
        }
        TaskStatus::Queued | TaskStatus::Running => {
            eprintln!(
                "task {} is {}: no result yet (use --wait MS to wait for it)",
                r.task_id, r.status
            );
            EXIT_NOT_FINISHED
        }
    }
}

/// Parses an optional JSON argument that must have a given shape.
fn parse_json_arg(
    what: &str,
    raw: Option<&str>,
    shape: fn(&Value) -> bool,
    expected: &str,
) -> Result<Option<Value>, CliError> {
    let Some(raw) = raw else { return Ok(None) };
    let value: Value = serde_json::from_str(raw)
        .map_err(|e| CliError::Usage(format!("{what} is not valid JSON ({e}): {raw}")))?;
    if !shape(&value) {
        return Err(CliError::Usage(format!(
            "{what} must be {expected}, not {raw}"
        )));
    }
    Ok(Some(value))
}

fn compact(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| v.to_string())
}

fn print_json<T: Serialize>(v: &T) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("error: cannot encode the reply as JSON: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_arguments_must_have_the_right_shape() {
        assert_eq!(
            parse_json_arg("ARGS", Some("[1, 2]"), Value::is_array, "a JSON list").unwrap(),
            Some(serde_json::json!([1, 2]))
        );
        assert!(parse_json_arg("ARGS", None, Value::is_array, "a JSON list")
            .unwrap()
            .is_none());
        let e = parse_json_arg("ARGS", Some("{}"), Value::is_array, "a JSON list").unwrap_err();
        assert!(e.to_string().contains("must be a JSON list"), "{e}");
        let e =
            parse_json_arg("--kwargs", Some("{x"), Value::is_object, "a JSON object").unwrap_err();
        assert!(e.to_string().contains("not valid JSON"), "{e}");
    }
}
