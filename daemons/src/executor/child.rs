//! One Python child process: spawn, handshake, run a task, and kill it as a process group.

use std::collections::HashSet;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use faas_protocol::{FunctionId, TaskStatus};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::{ExecutorError, Job, Outcome};

const BOOTSTRAP: &str = include_str!("bootstrap.py");
/// Replies larger than this mean a broken child, not a result: the gateway caps bodies far lower.
const MAX_FRAME: usize = 512 * 1024 * 1024;

/// Why a child could not produce an outcome; the child is unusable afterwards.
#[derive(Debug)]
pub(crate) enum ChildFailure {
    Timeout,
    Died(String),
}

#[derive(Debug)]
pub(crate) struct PyChild {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pid: i32,
    /// Functions this child has loaded; their body is not sent again.
    known: HashSet<FunctionId>,
}

#[derive(Deserialize)]
struct Reply {
    ok: bool,
    #[serde(default)]
    result: serde_json::Value,
    #[serde(default)]
    error: Option<faas_protocol::model::TaskError>,
    #[serde(default)]
    log: String,
}

impl PyChild {
    /// Starts a child in its own process group and waits for its ready frame.
    pub(crate) async fn spawn(python: &Path) -> Result<Self, ExecutorError> {
        let shown = python.display().to_string();
        let mut child = Command::new(python)
            .arg("-c")
            .arg(BOOTSTRAP)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ExecutorError::Spawn {
                python: shown.clone(),
                source,
            })?;
        let pid = child.id().unwrap_or_default() as i32;
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut me = Self {
            child,
            stdin,
            stdout,
            pid,
            known: HashSet::new(),
        };
        let ready = tokio::time::timeout(Duration::from_secs(30), me.read_frame()).await;
        match ready {
            Ok(Ok(frame)) if frame.get("ready") == Some(&json!(true)) => Ok(me),
            Ok(Ok(frame)) => Err(ExecutorError::Handshake {
                python: shown,
                detail: format!("unexpected first frame {frame}"),
            }),
            Ok(Err(_)) => {
                let status = me.child.wait().await.ok();
                Err(ExecutorError::Handshake {
                    python: shown,
                    detail: format!("it exited ({})", describe_exit(status)),
                })
            }
            Err(_) => Err(ExecutorError::Handshake {
                python: shown,
                detail: "no ready frame within 30 s".into(),
            }),
        }
    }

    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    /// Runs one job. On `Err` the child is broken and must be killed with [`Self::kill`].
    pub(crate) async fn run(&mut self, job: &Job) -> Result<Outcome, ChildFailure> {
        let f = &job.function;
        let mut req = json!({
            "function_id": f.id,
            "format": f.format,
            "args": job.args,
        });
        if !self.known.contains(&f.id) {
            req["body"] = json!(f.body);
            req["entrypoint"] = json!(f.entrypoint);
        }
        let exchange = async {
            self.write_frame(&req).await?;
            self.read_frame().await
        };
        let reply = match tokio::time::timeout(job.timeout, exchange).await {
            Err(_) => return Err(ChildFailure::Timeout),
            Ok(Err(_)) => {
                // The pipe broke: the child died. Its exit status says how.
                let status = tokio::time::timeout(Duration::from_secs(5), self.child.wait())
                    .await
                    .ok()
                    .and_then(Result::ok);
                return Err(ChildFailure::Died(describe_exit(status)));
            }
            Ok(Ok(frame)) => frame,
        };
        let reply: Reply = serde_json::from_value(reply)
            .map_err(|e| ChildFailure::Died(format!("it sent a malformed reply ({e})")))?;
        self.known.insert(f.id);
        Ok(Outcome {
            status: if reply.ok {
                TaskStatus::Completed
            } else {
                TaskStatus::Failed
            },
            result: reply.result,
            error: reply.error,
            log: reply.log,
        })
    }

    /// Kills the child's whole process group: SIGTERM, then SIGKILL after `grace`.
    pub(crate) async fn kill(mut self, grace: Duration) {
        let group = Pid::from_raw(self.pid);
        let _ = killpg(group, Signal::SIGTERM);
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            let _ = killpg(group, Signal::SIGKILL);
            let _ = self.child.wait().await;
        }
        // Grandchildren the function started may outlive the leader: the group gets SIGKILL too.
        let _ = killpg(group, Signal::SIGKILL);
    }

    async fn write_frame(&mut self, value: &serde_json::Value) -> std::io::Result<()> {
        let body = serde_json::to_vec(value)?;
        let mut buf = Vec::with_capacity(body.len() + 4);
        buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
        buf.extend_from_slice(&body);
        self.stdin.write_all(&buf).await?;
        self.stdin.flush().await
    }

    async fn read_frame(&mut self) -> std::io::Result<serde_json::Value> {
        let len = self.stdout.read_u32().await? as usize;
        if len > MAX_FRAME {
            return Err(std::io::Error::other(format!("frame of {len} bytes")));
        }
        let mut body = vec![0; len];
        self.stdout.read_exact(&mut body).await?;
        Ok(serde_json::from_slice(&body)?)
    }
}

/// "exit code 3", "killed by signal SIGSEGV", as a person would say it.
pub(crate) fn describe_exit(status: Option<ExitStatus>) -> String {
    match status {
        Some(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(sig)) => match Signal::try_from(sig) {
                Ok(sig) => format!("killed by signal {sig}"),
                Err(_) => format!("killed by signal {sig}"),
            },
            _ => "unknown exit status".into(),
        },
        None => "exit status unknown".into(),
    }
}
