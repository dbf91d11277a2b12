//! One Python child process: spawn (sandboxed or not), handshake, run a task of the one
//! function it is bound to, and kill it with everything it started.

use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use bytes::Bytes;
use faas_protocol::{FunctionId, TaskStatus};
use futures::{SinkExt, StreamExt};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use serde::Deserialize;
use serde_json::json;
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use super::sandbox::{Launcher, SandboxKind};
use super::{ExecutorError, Job, Outcome};

const BOOTSTRAP: &str = include_str!("bootstrap.py");

/// Why a child could not produce an outcome; the child is unusable afterwards.
#[derive(Debug)]
pub(crate) enum ChildFailure {
    Timeout,
    Died(String),
}

#[derive(Debug)]
pub(crate) struct PyChild {
    child: Child,
    frames_in: FramedWrite<ChildStdin, LengthDelimitedCodec>,
    frames_out: FramedRead<ChildStdout, LengthDelimitedCodec>,
    /// The process the pool started: bwrap, or python itself with `--sandbox none`.
    pid: i32,
    /// The Python process itself (inside the sandbox, below bwrap and its init).
    python_pid: i32,
    sandboxed: bool,
    /// The function this child has been sent the body of; it runs no other. `None`: a spare.
    bound: Option<FunctionId>,
    /// When it last finished a task, in the pool's clock (for least-recently-used eviction).
    pub(crate) last_used: u64,
    /// When it last finished a task, in time (idle warm children are frozen after a while).
    pub(crate) idle_since: std::time::Instant,
    /// Stopped (SIGSTOP) while idle: see [`Self::freeze`].
    frozen: bool,
}

#[derive(Deserialize)]
struct Reply {
    #[serde(default)]
    need_body: bool,
    #[serde(default)]
    ok: bool,
    #[serde(default)]
    result: serde_json::Value,
    #[serde(default)]
    error: Option<faas_protocol::model::TaskError>,
    #[serde(default)]
    log: String,
}

impl PyChild {
    /// Starts a child (in its own process group) and waits for its ready frame.
    pub(crate) async fn spawn(launcher: &Launcher) -> Result<Self, ExecutorError> {
        let shown = launcher.describe();
        let mut cmd = launcher.command(BOOTSTRAP);
        die_with_daemon(&mut cmd);
        let mut child = cmd
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
        let stdout = child.stdout.take().expect("stdout is piped");
        let limits = launcher.limits();
        // A reply holds at most the result, the log (JSON escapes can take 6 bytes per byte of
        // it) and a traceback: anything longer is a broken or hostile child.
        let max_frame =
            (limits.max_result + 6 * limits.max_output + (4 << 20)).min(usize::MAX as u64) as usize;
        let mut me = Self {
            child,
            frames_in: FramedWrite::new(stdin, LengthDelimitedCodec::new()),
            frames_out: FramedRead::new(
                stdout,
                LengthDelimitedCodec::builder()
                    .max_frame_length(max_frame)
                    .new_codec(),
            ),
            pid,
            python_pid: pid,
            sandboxed: launcher.kind() == SandboxKind::Bwrap,
            bound: None,
            last_used: 0,
            idle_since: std::time::Instant::now(),
            frozen: false,
        };
        let ready = tokio::time::timeout(Duration::from_secs(30), me.read_frame()).await;
        match ready {
            Ok(Ok(frame)) if frame.get("ready") == Some(&json!(true)) => {
                if me.sandboxed {
                    // Ready, the sandbox holds bwrap's init and below it the interpreter: the
                    // deepest of the two.
                    me.python_pid = descendants(pid).last().copied().unwrap_or(pid);
                }
                Ok(me)
            }
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

    /// Stops the interpreter (SIGSTOP) while the child waits, warm, for its function's next
    /// task: a thread a task left running would otherwise go on between tasks, for as long as
    /// the child stays warm, taking CPU from other functions' tasks. The processes a task
    /// starts are killed when it ends, so the interpreter is all there is to stop.
    pub(crate) fn freeze(&mut self) {
        if !self.frozen {
            self.frozen = kill(Pid::from_raw(self.python_pid), Signal::SIGSTOP).is_ok();
        }
    }

    /// Lets a frozen child run again, before it is given a task or killed.
    pub(crate) fn thaw(&mut self) {
        if self.frozen {
            let _ = kill(Pid::from_raw(self.python_pid), Signal::SIGCONT);
            self.frozen = false;
        }
    }

    /// What measures this child's memory, away from the pool's lock.
    pub(crate) fn meter(&self) -> Meter {
        Meter {
            pid: self.pid,
            python_pid: self.python_pid,
            sandboxed: self.sandboxed,
        }
    }

    pub(crate) fn bound(&self) -> Option<FunctionId> {
        self.bound
    }

    /// Runs one job of the child's function (binding a spare to it). On `Err` the child is
    /// broken and must be killed with [`Self::kill`].
    pub(crate) async fn run(&mut self, job: &Job) -> Result<Outcome, ChildFailure> {
        let f = &job.function;
        debug_assert!(self.bound.is_none() || self.bound == Some(f.id));
        let exchange = async {
            let mut with_body = self.bound.is_none();
            loop {
                let mut req = json!({
                    "function_id": f.id,
                    "format": f.format,
                    "args": job.args,
                });
                if with_body {
                    req["body"] = json!(f.body);
                    req["entrypoint"] = json!(f.entrypoint);
                }
                self.write_frame(&req).await?;
                let reply: Reply = serde_json::from_value(self.read_frame().await?)
                    .map_err(|e| std::io::Error::other(format!("a malformed reply ({e})")))?;
                // The child has the body once it answered a request that carried it.
                if with_body {
                    self.bound = Some(f.id);
                }
                match reply.need_body {
                    // A miss is answered with the body, never with a failed task.
                    true if !with_body => with_body = true,
                    true => return Err(std::io::Error::other("it asked again for a body it had")),
                    false => return Ok(reply),
                }
            }
        };
        let reply = match tokio::time::timeout(job.timeout, exchange).await {
            Err(_) => return Err(ChildFailure::Timeout),
            Ok(Err(e)) => {
                // The pipe broke (the child died) or it sent nonsense. Its exit status says how.
                let status = tokio::time::timeout(Duration::from_millis(500), self.child.wait())
                    .await
                    .ok()
                    .and_then(Result::ok);
                return Err(ChildFailure::Died(match status {
                    Some(_) => describe_exit(status),
                    None => format!("it broke the protocol: {e}"),
                }));
            }
            Ok(Ok(reply)) => reply,
        };
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

    /// Kills the child and every process it started. A sandbox goes at once with SIGKILL:
    /// killing bwrap kills its PID namespace's init (`--die-with-parent`), and with it the
    /// namespace. A plain child gets SIGTERM, `grace`, then SIGKILL for its group and every
    /// descendant (it is their subreaper, so setsid ones are among them).
    pub(crate) async fn kill(mut self, grace: Duration) {
        // A stopped process would not act on SIGTERM until continued.
        self.thaw();
        let group = Pid::from_raw(self.pid);
        if self.sandboxed {
            let _ = killpg(group, Signal::SIGKILL);
            let _ = self.child.wait().await;
            return;
        }
        // Descendants first: once the child is gone they are no longer found under it.
        for _ in 0..10 {
            let rest = descendants(self.pid);
            if rest.is_empty() {
                break;
            }
            for pid in rest {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        let _ = killpg(group, Signal::SIGTERM);
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            let _ = killpg(group, Signal::SIGKILL);
            let _ = self.child.wait().await;
        }
        let _ = killpg(group, Signal::SIGKILL);
    }

    async fn write_frame(&mut self, value: &serde_json::Value) -> std::io::Result<()> {
        let body = serde_json::to_vec(value)?;
        self.frames_in.send(Bytes::from(body)).await
    }

    async fn read_frame(&mut self) -> std::io::Result<serde_json::Value> {
        match self.frames_out.next().await {
            Some(frame) => Ok(serde_json::from_slice(&frame?)?),
            None => Err(std::io::ErrorKind::UnexpectedEof.into()),
        }
    }
}

/// A child's memory, as the pool's idle-memory budget counts it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Meter {
    /// The pool's handle on the child ([`PyChild::pid`]).
    pub(crate) pid: i32,
    python_pid: i32,
    sandboxed: bool,
}

impl Meter {
    /// Bytes held: the interpreter's resident memory and, in a sandbox, what its /tmp (a
    /// tmpfs) holds. `None` once the process is gone.
    pub(crate) fn bytes(&self) -> Option<u64> {
        let statm = std::fs::read_to_string(format!("/proc/{}/statm", self.python_pid)).ok()?;
        let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .map_or(4096, |p| p as u64);
        let mut bytes = pages * page;
        if self.sandboxed {
            let tmp = format!("/proc/{}/root/tmp", self.python_pid);
            if let Ok(fs) = nix::sys::statfs::statfs(tmp.as_str()) {
                let used = fs.blocks().saturating_sub(fs.blocks_free());
                bytes += used * fs.block_size() as u64;
            }
        }
        Some(bytes)
    }
}

/// SIGKILL for the child when the daemon dies, even by SIGKILL: bwrap's own
/// `--die-with-parent` covers what runs inside it, not bwrap itself, and an orphaned python
/// would finish its task first. (The signal fires when the spawning *thread* exits; children
/// are spawned from runtime worker threads, which live as long as the daemon.)
#[allow(unsafe_code)]
fn die_with_daemon(cmd: &mut tokio::process::Command) {
    // SAFETY: the closure runs between fork and exec and only calls prctl(2), which is
    // async-signal-safe; it touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
}

/// Pids below `pid` in the process tree, from `/proc/PID/task/TID/children`.
fn descendants(pid: i32) -> Vec<i32> {
    let mut found = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let path = task.path().join("children");
            let Ok(text) = std::fs::read_to_string(path) else {
                continue;
            };
            for kid in text.split_whitespace().filter_map(|k| k.parse().ok()) {
                found.push(kid);
                todo.push(kid);
            }
        }
    }
    found
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
