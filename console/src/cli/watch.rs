//! `faas watch`: follows the gateway's `GET /events` (Server-Sent Events) and prints one line per
//! event, or with `--json` one JSON object per line (the event as the gateway sends it).
//!
//! When the stream ends or the connection drops after it was open, the command reconnects with
//! the id of the last event it printed (`Last-Event-ID`), with a growing pause between attempts,
//! so the gateway replays what was missed from its backlog. When the gateway cannot replay (it
//! restarted, or the gap was too long), it sends a `reset`, which is reported on stderr (and, with
//! `--json`, as a `{"type":"reset","reason":...}` line) since events may be missing. A first
//! connection that fails (unreachable, bad filter, wrong token) is an error, as for every command.

use std::io::Write;
use std::time::Duration;

use clap::{Args, ValueEnum};
use faas_protocol::{FunctionId, TaskId};
use serde_json::Value;

use super::output::clock;
use super::{CliError, EXIT_OK};
use crate::client::{ClientError, GatewayClient};

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Only task events of this function (repeatable).
    #[arg(long = "function", value_name = "FUNCTION_ID")]
    pub functions: Vec<FunctionId>,
    /// Only events of this task (repeatable).
    #[arg(long = "task", value_name = "TASK_ID")]
    pub tasks: Vec<TaskId>,
    /// Only these kinds of event (repeatable or comma-separated).
    #[arg(long = "type", value_name = "TYPE", value_delimiter = ',')]
    pub types: Vec<EventType>,
    /// Start after this event id (replayed from the gateway's backlog if it still has it).
    #[arg(long, value_name = "EVENT_ID")]
    pub after: Option<String>,
    /// Exit after printing this many events.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EventType {
    Task,
    Worker,
}

/// One message of the stream.
#[derive(Debug, Default, PartialEq)]
struct Message {
    id: Option<String>,
    event: Option<String>,
    data: String,
}

/// Splits an SSE byte stream into messages; comments (heartbeats) are dropped.
#[derive(Debug, Default)]
struct Parser {
    buf: Vec<u8>,
}

impl Parser {
    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    fn next(&mut self) -> Option<Message> {
        loop {
            let end = self.buf.windows(2).position(|w| w == b"\n\n")?;
            let block: Vec<u8> = self.buf.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&block);
            let mut msg = Message::default();
            let mut any = false;
            for line in text.lines() {
                let (field, value) = match line.split_once(':') {
                    Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                    None => (line, ""),
                };
                match field {
                    "" => continue, // a comment
                    "id" => msg.id = Some(value.to_owned()),
                    "event" => msg.event = Some(value.to_owned()),
                    "data" => {
                        if any && !msg.data.is_empty() {
                            msg.data.push('\n');
                        }
                        msg.data.push_str(value);
                    }
                    _ => continue,
                }
                any = true;
            }
            if any {
                return Some(msg);
            }
        }
    }
}

pub async fn run(c: &GatewayClient, a: WatchArgs, json: bool) -> Result<i32, CliError> {
    let mut query: Vec<(&str, String)> = Vec::new();
    query.extend(a.functions.iter().map(|f| ("function_id", f.to_string())));
    query.extend(a.tasks.iter().map(|t| ("task_id", t.to_string())));
    query.extend(a.types.iter().map(|t| {
        (
            "types",
            match t {
                EventType::Task => "task",
                EventType::Worker => "worker",
            }
            .to_owned(),
        )
    }));
    let mut last = a.after.clone();
    let mut printed = 0u64;
    let mut connected_once = false;
    let mut backoff =
        faas_protocol::backoff::Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        let mut resp = match c.open_events(&query, last.as_deref()).await {
            Ok(r) => r,
            // Unreachable or refused at first: an error like any command's. Later: the gateway
            // is restarting or briefly away; keep trying.
            Err(e) if !connected_once || !retryable(&e) => return Err(e.into()),
            Err(e) => {
                let pause = backoff.next_delay();
                eprintln!("faas watch: {e}; retrying in {}ms", pause.as_millis());
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        connected_once = true;
        backoff.reset();
        let mut parser = Parser::default();
        loop {
            let chunk = match resp.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) | Err(_) => break,
            };
            parser.push(&chunk);
            while let Some(msg) = parser.next() {
                if msg.event.as_deref() == Some("reset") {
                    report_reset(&msg.data, json);
                    continue;
                }
                if let Some(id) = &msg.id {
                    last = Some(id.clone());
                }
                print_event(&msg.data, json);
                printed += 1;
                if a.count.is_some_and(|n| printed >= n) {
                    return Ok(EXIT_OK);
                }
            }
        }
        eprintln!("faas watch: the event stream ended; reconnecting");
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// Whether trying again later may help.
fn retryable(e: &ClientError) -> bool {
    match e {
        ClientError::Unreachable { .. } => true,
        ClientError::Api { status, .. } => status.is_server_error(),
        ClientError::Decode(_) => false,
    }
}

fn report_reset(data: &str, json: bool) {
    let reason = serde_json::from_str::<Value>(data)
        .ok()
        .and_then(|v| v["reason"].as_str().map(str::to_owned))
        .unwrap_or_else(|| data.to_owned());
    eprintln!("faas watch: {reason}");
    if json {
        println!(
            "{}",
            serde_json::json!({ "type": "reset", "reason": reason })
        );
    }
}

fn print_event(data: &str, json: bool) {
    let line = if json {
        data.to_owned()
    } else {
        match serde_json::from_str::<Value>(data) {
            Ok(v) => describe(&v),
            Err(_) => data.to_owned(),
        }
    };
    let mut out = std::io::stdout().lock();
    // A closed pipe (`faas watch | head`) ends the command through the next write's error.
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        std::process::exit(EXIT_OK);
    }
}

/// One event as a line for people.
fn describe(v: &Value) -> String {
    let at = clock(v["at"].as_u64().unwrap_or(0));
    let s = |k: &str| v[k].as_str().unwrap_or("-").to_owned();
    match v["type"].as_str() {
        Some("task") => {
            let mut line = format!(
                "{at}  task    {}  {:<9}  fn={}",
                s("task_id"),
                s("status"),
                s("function_id")
            );
            if let Some(w) = v["worker"].as_str() {
                line.push_str(&format!("  worker={w}"));
            }
            if let Some(e) = v["outcome"]["error"].as_object() {
                let kind = e.get("type").and_then(Value::as_str).unwrap_or("error");
                let msg = e.get("message").and_then(Value::as_str).unwrap_or("");
                line.push_str(&format!("  {kind}: {msg}"));
            }
            line
        }
        Some("worker") => format!(
            "{at}  worker  {}  {}  {}/{}",
            s("worker"),
            s("state"),
            v["busy"].as_u64().unwrap_or(0),
            v["slots"].as_u64().unwrap_or(0)
        ),
        _ => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_split_and_comments_dropped() {
        let mut p = Parser::default();
        p.push(b":heartbeat\n\nid: 7\ndata: {\"a\":1}\n\nevent: reset\ndata: {}\n\nid: 8\nda");
        assert_eq!(
            p.next(),
            Some(Message {
                id: Some("7".into()),
                event: None,
                data: "{\"a\":1}".into()
            })
        );
        assert_eq!(p.next().unwrap().event.as_deref(), Some("reset"));
        assert_eq!(p.next(), None, "incomplete");
        p.push(b"ta: x\n\n");
        assert_eq!(p.next().unwrap().data, "x");
    }

    #[test]
    fn events_read_as_lines() {
        let line = describe(&serde_json::json!({
            "type": "task", "task_id": "t1", "status": "FAILED", "function_id": "f1",
            "worker": "w1", "at": 0,
            "outcome": {"result": null, "error": {"type": "ValueError", "message": "bad"}}
        }));
        assert!(line.contains("t1") && line.contains("FAILED") && line.contains("fn=f1"));
        assert!(line.contains("ValueError: bad"), "{line}");
        let line = describe(&serde_json::json!({
            "type": "worker", "worker": "w1", "state": "joined", "busy": 1, "slots": 4, "at": 0
        }));
        assert!(line.contains("w1  joined  1/4"), "{line}");
    }
}
