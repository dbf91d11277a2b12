//! One Python child process: spawn (sandboxed or not), handshake, run a task of the one
//! function it is bound to, and kill it with everything it started.
//!
//! # Writing ahead
//! A child woken for every task costs several times the task itself on a small machine (a
//! no-op: ~90 µs of CPU woken, ~25 µs with its next request already waiting; `demo/bench/
//! child_pipe.py`). So the requests of tasks its slot holds ahead (`dispatcher/mod.rs`,
//! "Holding the next tasks") are written into its pipe while it runs the current one, and it
//! goes from one to the next without sleeping. A request written ahead must still be taken
//! back when its task should not run there after all: cancelled, or waiting behind a run that
//! turned out long. The request pipe is in packet mode (`O_DIRECT`, pipe(7)): every write of
//! up to `PIPE_BUF` bytes is one packet, and a read returns at most one packet. The child
//! reads one packet per read(2) and only when it is ready for its next request (bootstrap.py),
//! so a request is in the child's hands or in the pipe, never half of each. Taking back is a
//! non-blocking read through a second read end of the same pipe (opened through
//! `/proc/self/fd`): the kernel gives each packet to one reader, so a request is either taken
//! back, and never runs, or was read by the child, and runs. Only requests of one packet are
//! written ahead, and only behind requests of one packet, so what is taken back is always
//! whole frames. Where packet mode is not available, nothing is written ahead.
//!
//! The task's code runs in the process that reads the pipe, so it can read the requests
//! written ahead, or write into the pipe. Only requests of the child's own function are
//! written there, so that is no more than a function can do to its own calls anyway (it sees
//! their arguments, it chooses their results). A take-back checks that what it reads is,
//! byte for byte, what was written last; if not, it puts it all back and writes nothing more
//! ahead to that child (`child_pipe_tampered`), so that a task never runs twice for it.

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use faas_protocol::{FunctionId, TaskId, TaskStatus};
use futures::{SinkExt, StreamExt};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use serde::Deserialize;
use serde_json::json;
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tracing::warn;

use super::sandbox::{Launcher, SandboxKind};
use super::{ExecutorError, Job, Outcome};

const BOOTSTRAP: &str = include_str!("bootstrap.py");

/// Why a child could not produce an outcome; the child is unusable afterwards.
#[derive(Debug)]
pub(crate) enum ChildFailure {
    Timeout,
    Died(String),
}

/// One request written into the pipe and not answered yet.
#[derive(Debug)]
struct Written {
    task: TaskId,
    /// The whole frame (length prefix included) when it went as one packet, so that it can be
    /// taken back and written again.
    packet: Option<Bytes>,
    /// Written for a later run of the slot, not the one waiting for it now: may be taken back.
    ahead: bool,
}

/// The requests in a child's pipe (see "Writing ahead"): shared between the run that reads the
/// replies and whoever takes requests back (a cancel, a held task given back).
#[derive(Debug)]
pub(crate) struct Requests {
    /// The pipe's write end (a duplicate of the child's stdin), for whole-packet writes.
    write_end: OwnedFd,
    /// A second read end of the pipe; `None` where packet mode is not available.
    take_back: Option<OwnedFd>,
    /// Requests written and not answered, oldest first: the child answers in this order.
    written: VecDeque<Written>,
}

/// What became of a request written ahead, when asked for it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TakeBack {
    /// Taken out of the pipe: the child never sees it.
    Taken,
    /// The child has read it: it runs (or ran).
    Read,
    /// It is not in this pipe (answered, or never written here).
    Absent,
}

impl TakeBack {
    /// As logged (`request` of the `cancelling` event).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Taken => "taken_back",
            Self::Read => "read",
            Self::Absent => "not_written",
        }
    }
}

impl Requests {
    fn new(stdin: &ChildStdin) -> std::io::Result<Self> {
        let write_end = stdin.as_fd().try_clone_to_owned()?;
        Ok(Self {
            take_back: packet_mode(&write_end).ok(),
            write_end,
            written: VecDeque::new(),
        })
    }

    /// Whether `frame` can go as one packet now: packet mode, a frame of at most `PIPE_BUF`
    /// bytes, and only whole packets ahead of it (so that a take-back reads whole frames).
    fn fits(&self, frame: &[u8]) -> bool {
        self.take_back.is_some()
            && frame.len() <= PIPE_BUF
            && self.written.iter().all(|w| w.packet.is_some())
    }

    /// Writes `frame` as one packet if it [`fits`](Self::fits) and the pipe has room.
    fn write_packet(&mut self, task: TaskId, frame: Bytes, ahead: bool) -> bool {
        if !self.fits(&frame) {
            return false;
        }
        // At most PIPE_BUF bytes: written whole or not at all (EAGAIN when the pipe is full).
        match nix::unistd::write(&self.write_end, &frame) {
            Ok(n) if n == frame.len() => {
                self.written.push_back(Written {
                    task,
                    packet: Some(frame),
                    ahead,
                });
                true
            }
            _ => false,
        }
    }

    /// Takes back the requests written ahead that the child has not read yet: `only` that
    /// task's, or all of them. Reads every packet still in the pipe (they are the newest
    /// requests, whole frames) and writes back, in order, those that are to stay. Returns the
    /// tasks taken back.
    fn take_back(&mut self, only: Option<TaskId>) -> Vec<TaskId> {
        let Some(reader) = &self.take_back else {
            return Vec::new();
        };
        // Nothing to take back, or a request longer than a packet may be in the pipe (being
        // written by the codec): reading now could take part of it.
        if !self.written.iter().any(|w| w.ahead) || self.written.iter().any(|w| w.packet.is_none())
        {
            return Vec::new();
        }
        let mut packets: Vec<Vec<u8>> = Vec::new();
        let mut buf = vec![0u8; PIPE_BUF];
        // Every packet left: the ones read must be the newest requests, all of them.
        loop {
            match nix::unistd::read(reader, &mut buf) {
                Ok(0) => break,
                Ok(n) => packets.push(buf[..n].to_vec()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break, // EAGAIN: the pipe is empty
            }
        }
        if packets.is_empty() {
            return Vec::new();
        }
        // They must be the requests written last, byte for byte. The task's code can write into
        // its own request pipe (it runs in the child that reads it), and a request it took
        // must not be believed taken back, and run again elsewhere: on any mismatch, what was
        // read goes back as it was, and this child gets nothing more written ahead.
        let first = self.written.len().checked_sub(packets.len());
        let matches = first.is_some_and(|first| {
            packets
                .iter()
                .zip(self.written.range(first..))
                .all(|(read, w)| w.packet.as_deref() == Some(read.as_slice()))
        });
        let (true, Some(first)) = (matches, first) else {
            warn!(
                event = "child_pipe_tampered",
                packets = packets.len(),
                written = self.written.len(),
                "a child's request pipe held what was not written there; nothing more is written ahead to it"
            );
            for packet in &packets {
                let _ = nix::unistd::write(&self.write_end, packet);
            }
            self.take_back = None;
            return Vec::new();
        };
        let mut taken = Vec::new();
        for w in self.written.split_off(first) {
            let wanted = w.ahead && only.is_none_or(|t| t == w.task);
            if wanted {
                taken.push(w.task);
                continue;
            }
            let packet = w.packet.clone().expect("only packets are taken back");
            if !self.write_packet(w.task, packet, w.ahead) {
                // The pipe was emptied a moment ago; only a dead child's pipe refuses.
                warn!(task_id = %w.task, "could not write back a request taken out of the pipe");
            }
        }
        taken
    }

    /// What a take-back of `task` finds (see [`TakeBack`]).
    pub(crate) fn take_back_one(&mut self, task: TaskId) -> TakeBack {
        if !self.written.iter().any(|w| w.task == task) {
            return TakeBack::Absent;
        }
        match self.take_back(Some(task)).is_empty() {
            false => TakeBack::Taken,
            true => TakeBack::Read,
        }
    }
}

/// Puts the pipe's write end in packet mode and opens a second, non-blocking read end.
fn packet_mode(write_end: &OwnedFd) -> nix::Result<OwnedFd> {
    let flags = OFlag::from_bits_retain(fcntl(write_end, FcntlArg::F_GETFL)?);
    fcntl(write_end, FcntlArg::F_SETFL(flags | OFlag::O_DIRECT))?;
    let path = format!("/proc/self/fd/{}", write_end.as_raw_fd());
    nix::fcntl::open(
        path.as_str(),
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
}

/// Bytes written to a pipe atomically on Linux, and the size of one packet in packet mode.
const PIPE_BUF: usize = 4096;

/// The pool's index of requests written ahead, by task: where a cancel or a give-back finds
/// a request to take back.
pub(crate) type AheadIndex = Arc<Mutex<HashMap<TaskId, Weak<Mutex<Requests>>>>>;

#[derive(Debug)]
pub(crate) struct PyChild {
    child: Child,
    frames_in: FramedWrite<ChildStdin, LengthDelimitedCodec>,
    /// The requests in the pipe (see "Writing ahead").
    requests: Arc<Mutex<Requests>>,
    /// Replies that came for another task than the one awaited (its run comes later).
    early: HashMap<TaskId, Reply>,
    /// The pool's [`AheadIndex`], where requests written ahead are listed.
    index: AheadIndex,
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

#[derive(Debug, Deserialize)]
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
    pub(crate) async fn spawn(
        launcher: &Launcher,
        index: &AheadIndex,
    ) -> Result<Self, ExecutorError> {
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
        let requests = Requests::new(&stdin).map_err(|source| ExecutorError::Spawn {
            python: shown.clone(),
            source,
        })?;
        let limits = launcher.limits();
        // A reply holds at most the result, the log (JSON escapes can take 6 bytes per byte of
        // it) and a traceback: anything longer is a broken or hostile child.
        let max_frame =
            (limits.max_result + 6 * limits.max_output + (4 << 20)).min(usize::MAX as u64) as usize;
        let mut me = Self {
            child,
            frames_in: FramedWrite::new(stdin, LengthDelimitedCodec::new()),
            requests: Arc::new(Mutex::new(requests)),
            early: HashMap::new(),
            index: index.clone(),
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

    /// Runs one job of the child's function (binding a spare to it), after writing into the
    /// pipe, behind it, the requests of `ahead` (the jobs its slot runs next, in order) that
    /// can go as packets (see "Writing ahead"). On `Err` the child is broken and must be
    /// killed with [`Self::kill`]; requests written ahead die with it, unrun.
    pub(crate) async fn run(
        &mut self,
        job: &Job,
        ahead: &[Arc<Job>],
    ) -> Result<Outcome, ChildFailure> {
        let exchange = async {
            self.send(job, ahead).await?;
            self.answer(job).await
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

    /// Whether requests are in the pipe unanswered (written ahead, or of skipped tasks).
    pub(crate) fn has_requests(&self) -> bool {
        !self
            .requests
            .lock()
            .expect("requests lock")
            .written
            .is_empty()
    }

    /// Forgets replies kept for runs that never came (tasks skipped after their request was
    /// read): done when the child goes back to the pool.
    pub(crate) fn forget_early(&mut self) {
        self.early.clear();
    }

    /// Takes back every request written ahead that the child has not read.
    pub(crate) fn take_back_all(&mut self) {
        let taken = self.requests.lock().expect("requests lock").take_back(None);
        self.unlist(taken);
    }

    /// Drops `tasks` from the pool's [`AheadIndex`]: their requests are out of this pipe.
    fn unlist(&self, tasks: impl IntoIterator<Item = TaskId>) {
        let mut index = self.index.lock().expect("ahead index lock");
        for task in tasks {
            index.remove(&task);
        }
    }

    /// Writes `job`'s request unless it was written ahead, then those of `ahead`.
    async fn send(&mut self, job: &Job, ahead: &[Arc<Job>]) -> std::io::Result<()> {
        let f = &job.function;
        debug_assert!(self.bound.is_none() || self.bound == Some(f.id));
        let with_body = self.bound.is_none();
        let already = {
            let mut r = self.requests.lock().expect("requests lock");
            match r.written.iter_mut().find(|w| w.task == job.task_id) {
                Some(w) => {
                    // It runs now: no longer one to take back.
                    w.ahead = false;
                    true
                }
                None => self.early.contains_key(&job.task_id),
            }
        };
        if !already {
            let frame = self.frame(job, with_body)?;
            // Requests written ahead of a job that was not are of later jobs: out of the pipe,
            // so that this one goes first (they are written again below).
            self.take_back_all();
            let as_packet = {
                let mut r = self.requests.lock().expect("requests lock");
                let as_packet = r.write_packet(job.task_id, frame.clone(), false);
                if !as_packet {
                    r.written.push_back(Written {
                        task: job.task_id,
                        packet: None,
                        ahead: false,
                    });
                }
                as_packet
            };
            if !as_packet {
                // Longer than a packet, or no packet mode: the codec writes it, in pieces.
                self.frames_in.send(frame.slice(4..)).await?;
            }
        }
        if with_body {
            // The child has the body once it has the request that carried it.
            self.bound = Some(f.id);
            return Ok(());
        }
        let mut r = self.requests.lock().expect("requests lock");
        let mut index = self.index.lock().expect("ahead index lock");
        for next in ahead {
            if next.function.id != f.id {
                break;
            }
            if r.written.iter().any(|w| w.task == next.task_id) {
                continue;
            }
            let Ok(packet) = self.frame(next, false) else {
                break;
            };
            if !r.write_packet(next.task_id, packet, true) {
                break;
            }
            index.insert(next.task_id, Arc::downgrade(&self.requests));
        }
        Ok(())
    }

    /// A job's request as it goes into the pipe: length prefix and JSON.
    fn frame(&self, job: &Job, with_body: bool) -> std::io::Result<Bytes> {
        let f = &job.function;
        let mut req = json!({
            "function_id": f.id,
            "format": f.format,
            "args": job.args,
        });
        if with_body {
            req["body"] = json!(f.body);
            req["entrypoint"] = json!(f.entrypoint);
        }
        let mut frame = vec![0u8; 4];
        serde_json::to_writer(&mut frame, &req)?;
        let len = u32::try_from(frame.len() - 4).map_err(std::io::Error::other)?;
        frame[..4].copy_from_slice(&len.to_be_bytes());
        Ok(Bytes::from(frame))
    }

    /// Reads replies until `job`'s: the child answers in the order it read its requests, and
    /// a reply for another task (one its slot skipped, or runs later) is kept for that run.
    async fn answer(&mut self, job: &Job) -> std::io::Result<Reply> {
        loop {
            if let Some(reply) = self.early.remove(&job.task_id) {
                return Ok(reply);
            }
            let frame = self.read_frame().await?;
            let reply: Reply = serde_json::from_value(frame)
                .map_err(|e| std::io::Error::other(format!("a malformed reply ({e})")))?;
            let answered = self
                .requests
                .lock()
                .expect("requests lock")
                .written
                .pop_front();
            let Some(answered) = answered else {
                return Err(std::io::Error::other("a reply to no request"));
            };
            self.unlist([answered.task]);
            if reply.need_body {
                // A miss is answered with the body, never with a failed task; a bound child
                // never misses.
                return Err(std::io::Error::other(
                    "it asked for a body it had been sent",
                ));
            }
            if answered.task == job.task_id {
                return Ok(reply);
            }
            self.early.insert(answered.task, reply);
        }
    }

    /// Kills the child and every process it started. A sandbox goes at once with SIGKILL:
    /// killing bwrap kills its PID namespace's init (`--die-with-parent`), and with it the
    /// namespace. A plain child gets SIGTERM, `grace`, then SIGKILL for its group and every
    /// descendant (it is their subreaper, so setsid ones are among them).
    pub(crate) async fn kill(mut self, grace: Duration) {
        // Requests written ahead die with it: none is to be found for a take-back any more.
        let written: Vec<TaskId> = {
            let r = self.requests.lock().expect("requests lock");
            r.written.iter().map(|w| w.task).collect()
        };
        self.unlist(written);
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
