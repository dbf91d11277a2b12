//! Keeps the daemons of `faas up` running: each one is spawned in its own process group with its
//! output forwarded line by line, restarted with back-off when it dies, and stopped cleanly
//! (SIGTERM, a bounded wait, then SIGKILL to its whole group).
//!
//! A daemon that exits with 64 (`EX_USAGE`, bad configuration) is not restarted: it would fail the
//! same way forever, so it is reported as fatal and `faas up` stops. A daemon marked
//! [`DaemonSpec::leaves_on_purpose`] (a worker) that exits 0 left by itself (it was drained) and is
//! not restarted either.
//!
//! Each restart, and each such clean leave, is also reported as a [`Report`] on the channel of
//! [`Supervisor::reports`]; `faas up` publishes them on the platform's events channel as
//! `Event::Daemon`, where the console's Events timeline shows them.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// `EX_USAGE`: the daemons' exit code for configuration that cannot work.
const EXIT_USAGE: i32 = 64;
/// First restart delay; doubled (jittered) after each quick death up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A daemon that ran this long before dying starts its back-off afresh.
const STABLE_AFTER: Duration = Duration::from_secs(60);
/// Lines of output kept per daemon, shown when it fails to start.
const TAIL_LINES: usize = 40;

/// What to run.
#[derive(Clone, Debug)]
pub struct DaemonSpec {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Set (`Some`) or removed (`None`) in the daemon's environment.
    pub env: Vec<(String, Option<String>)>,
    /// How long SIGTERM may take before SIGKILL.
    pub stop_grace: Duration,
    /// Daemons of one group that were started one after another are stopped together.
    pub group: String,
    /// Exit 0 means it left on purpose (a drained worker): not restarted.
    pub leaves_on_purpose: bool,
}

impl DaemonSpec {
    pub fn new(name: &str, program: PathBuf, stop_grace: Duration) -> Self {
        Self {
            name: name.to_owned(),
            program,
            args: Vec::new(),
            env: Vec::new(),
            stop_grace,
            group: name.to_owned(),
            leaves_on_purpose: false,
        }
    }

    /// Marks a daemon whose clean exit (0) is a decision, not a failure: it is not restarted.
    pub fn leaves_on_purpose(mut self) -> Self {
        self.leaves_on_purpose = true;
        self
    }

    pub fn group(mut self, group: &str) -> Self {
        self.group = group.to_owned();
        self
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn env(mut self, key: &str, value: Option<String>) -> Self {
        self.env.push((key.to_owned(), value));
        self
    }
}

/// Where daemon output goes: the terminal, each line prefixed by the daemon's name, or one log
/// file per daemon (while the console owns the terminal).
#[derive(Clone, Debug)]
pub enum LogSink {
    Terminal { pad: usize },
    Dir(PathBuf),
}

impl LogSink {
    fn open(&self, name: &str) -> std::io::Result<LogOut> {
        Ok(match self {
            LogSink::Terminal { pad } => LogOut::Terminal(format!("{name:<pad$} | ")),
            LogSink::Dir(dir) => LogOut::File(Arc::new(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join(format!("{name}.log")))?,
            ))),
        })
    }
}

#[derive(Clone, Debug)]
enum LogOut {
    Terminal(String),
    File(Arc<Mutex<File>>),
}

impl LogOut {
    fn line(&self, text: &str) {
        match self {
            LogOut::Terminal(prefix) => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{prefix}{text}");
            }
            LogOut::File(f) => {
                if let Ok(mut f) = f.lock() {
                    let _ = writeln!(f, "{text}");
                }
            }
        }
    }
}

/// A daemon that cannot be kept running: `faas up` stops everything and reports it.
#[derive(Debug)]
pub struct Fatal {
    pub name: String,
    pub message: String,
}

/// A daemon restarted after it died, or gone for good after a clean exit of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub name: String,
    pub state: faas_protocol::event::DaemonState,
    /// How it ended, e.g. `exit code 3`.
    pub exit: String,
}

/// The last lines a daemon printed.
#[derive(Clone, Debug, Default)]
pub struct Tail(Arc<Mutex<VecDeque<String>>>);

impl Tail {
    fn push(&self, line: &str) {
        if let Ok(mut t) = self.0.lock() {
            if t.len() == TAIL_LINES {
                t.pop_front();
            }
            t.push_back(line.to_owned());
        }
    }

    pub fn text(&self) -> String {
        self.0
            .lock()
            .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }
}

#[derive(Debug)]
struct Running {
    name: String,
    group: String,
    stop: CancellationToken,
    task: JoinHandle<()>,
    tail: Tail,
}

/// The daemons started so far, in start order.
#[derive(Debug)]
pub struct Supervisor {
    sink: LogSink,
    fatal: mpsc::UnboundedSender<Fatal>,
    reports: mpsc::UnboundedSender<Report>,
    /// Until [`Supervisor::reports`] takes it.
    reports_rx: Option<mpsc::UnboundedReceiver<Report>>,
    running: Vec<Running>,
}

impl Supervisor {
    /// A supervisor and the channel on which it reports daemons it had to give up on.
    pub fn new(sink: LogSink) -> (Self, mpsc::UnboundedReceiver<Fatal>) {
        let (fatal, rx) = mpsc::unbounded_channel();
        let (reports, reports_rx) = mpsc::unbounded_channel();
        let sup = Self {
            sink,
            fatal,
            reports,
            reports_rx: Some(reports_rx),
            running: Vec::new(),
        };
        (sup, rx)
    }

    /// Restarts and clean leaves, as they happen (kept from the start until taken; once).
    pub fn reports(&mut self) -> Option<mpsc::UnboundedReceiver<Report>> {
        self.reports_rx.take()
    }

    /// Starts `spec` and keeps it running until [`Supervisor::stop_all`]; returns its output tail.
    pub fn start(&mut self, spec: DaemonSpec) -> std::io::Result<Tail> {
        let out = self.sink.open(&spec.name)?;
        let tail = Tail::default();
        let stop = CancellationToken::new();
        let name = spec.name.clone();
        let group = spec.group.clone();
        let task = tokio::spawn(supervise(
            spec,
            out,
            tail.clone(),
            stop.clone(),
            self.fatal.clone(),
            self.reports.clone(),
        ));
        self.running.push(Running {
            name,
            group,
            stop,
            task,
            tail: tail.clone(),
        });
        Ok(tail)
    }

    /// The output tail of the daemon called `name`.
    pub fn tail(&self, name: &str) -> String {
        self.running
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.tail.text())
            .unwrap_or_default()
    }

    /// Stops every daemon, the last started first (workers before the dispatcher before the
    /// gateway before Redis), each with its own bounded grace; the members of a group at once.
    pub async fn stop_all(&mut self) {
        while let Some(last) = self.running.last() {
            let group = last.group.clone();
            let mut batch = Vec::new();
            while self.running.last().is_some_and(|r| r.group == group) {
                batch.extend(self.running.pop());
            }
            for r in &batch {
                r.stop.cancel();
            }
            for r in batch {
                let _ = r.task.await;
            }
        }
    }
}

async fn supervise(
    spec: DaemonSpec,
    out: LogOut,
    tail: Tail,
    stop: CancellationToken,
    fatal: mpsc::UnboundedSender<Fatal>,
    reports: mpsc::UnboundedSender<Report>,
) {
    let mut backoff = faas_protocol::backoff::Backoff::new(MIN_BACKOFF, MAX_BACKOFF);
    // How the last run ended, reported once the daemon runs again.
    let mut died: Option<String> = None;
    loop {
        let started = Instant::now();
        let mut child = match spawn(&spec, &out, &tail) {
            Ok(c) => c,
            Err(e) => {
                let _ = fatal.send(Fatal {
                    name: spec.name.clone(),
                    message: format!("cannot start {}: {e}", spec.program.display()),
                });
                return;
            }
        };
        if let Some(exit) = died.take() {
            let _ = reports.send(Report {
                name: spec.name.clone(),
                state: faas_protocol::event::DaemonState::Restarted,
                exit,
            });
        }
        let status = tokio::select! {
            status = child.wait() => status,
            () = stop.cancelled() => {
                terminate(&mut child, &spec, &out).await;
                return;
            }
        };
        let how = describe(&status);
        if status.as_ref().ok().and_then(ExitStatus::code) == Some(EXIT_USAGE) {
            let _ = fatal.send(Fatal {
                name: spec.name.clone(),
                message: format!("refused its configuration ({how})"),
            });
            return;
        }
        if spec.leaves_on_purpose && status.as_ref().is_ok_and(ExitStatus::success) {
            let note = format!("faas up: {} left ({how}); not restarting it", spec.name);
            out.line(&note);
            tail.push(&note);
            let _ = reports.send(Report {
                name: spec.name.clone(),
                state: faas_protocol::event::DaemonState::Exited,
                exit: how,
            });
            return;
        }
        died = Some(how.clone());
        if started.elapsed() >= STABLE_AFTER {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        let note = format!(
            "faas up: {} exited unexpectedly ({how}); restarting in {:.1}s",
            spec.name,
            delay.as_secs_f64()
        );
        out.line(&note);
        tail.push(&note);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Has the kernel send the child SIGTERM when `faas up` dies, even by SIGKILL, which no handler
/// of ours sees: the daemons then stop as they do under systemd instead of running on orphaned.
/// (Strictly, when the thread that spawned it exits: a runtime worker, which lives as long as
/// `faas up` does.) The workspace denies unsafe code; this is its one exception, because
/// `pre_exec` is the only way to run code between fork and exec.
#[allow(unsafe_code)]
pub(super) fn die_with_parent(cmd: &mut Command) {
    // SAFETY: runs in the forked child before exec; prctl is async-signal-safe and touches no
    // state shared with the parent.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)
        });
    }
}

fn spawn(spec: &DaemonSpec, out: &LogOut, tail: &Tail) -> std::io::Result<Child> {
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group: the terminal's Ctrl-C reaches only `faas up`, which then stops the
        // daemons in order, and a SIGKILL of the group takes any helper processes with it.
        .process_group(0)
        // Last resort if `faas up` itself unwinds without stopping them.
        .kill_on_drop(true);
    die_with_parent(&mut cmd);
    for (k, v) in &spec.env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let mut child = cmd.spawn()?;
    if let Some(stdout) = child.stdout.take() {
        tokio::spawn(forward(stdout, out.clone(), tail.clone()));
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(forward(stderr, out.clone(), tail.clone()));
    }
    Ok(child)
}

/// Copies a daemon's output line by line (bytes that are not UTF-8 are replaced, not lost).
async fn forward(stream: impl AsyncRead + Unpin, out: LogOut, tail: Tail) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                let line = line.trim_end_matches(['\n', '\r']);
                out.line(line);
                tail.push(line);
            }
        }
    }
}

/// SIGTERM, wait up to the grace period, then SIGKILL the daemon's whole process group.
async fn terminate(child: &mut Child, spec: &DaemonSpec, out: &LogOut) {
    let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) else {
        return; // already reaped
    };
    let pid = Pid::from_raw(pid);
    let _ = kill(pid, Signal::SIGTERM);
    if tokio::time::timeout(spec.stop_grace, child.wait())
        .await
        .is_err()
    {
        out.line(&format!(
            "faas up: {} did not stop within {:?} of SIGTERM; killing it",
            spec.name, spec.stop_grace
        ));
        // The leader is not reaped yet, so its group id cannot have been reused.
        let _ = killpg(pid, Signal::SIGKILL);
        let _ = child.wait().await;
    }
}

fn describe(status: &std::io::Result<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(sig)) => Signal::try_from(sig)
                .map(|s| format!("killed by {s}"))
                .unwrap_or_else(|_| format!("killed by signal {sig}")),
            _ => s.to_string(),
        },
        Err(e) => format!("wait failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(name: &str, script: &str) -> DaemonSpec {
        DaemonSpec::new(name, "/bin/sh".into(), Duration::from_secs(5))
            .arg("-c")
            .arg(script)
    }

    async fn wait_for(mut cond: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if cond() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    #[tokio::test]
    async fn a_daemon_that_dies_is_restarted() {
        let dir = std::env::temp_dir().join(format!("faas-sup-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (mut sup, _fatal) = Supervisor::new(LogSink::Dir(dir.clone()));
        let tail = sup.start(sh("flaky", "echo started; exit 3")).unwrap();
        assert!(
            wait_for(|| tail.text().matches("started").count() >= 2).await,
            "not restarted: {}",
            tail.text()
        );
        assert!(tail.text().contains("exited unexpectedly (exit code 3)"));
        let mut reports = sup.reports().expect("taken once");
        let first = tokio::time::timeout(Duration::from_secs(20), reports.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.name, "flaky");
        assert_eq!(first.state, faas_protocol::event::DaemonState::Restarted);
        assert_eq!(first.exit, "exit code 3");
        sup.stop_all().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_worker_that_leaves_cleanly_is_not_restarted() {
        let dir = std::env::temp_dir().join(format!("faas-sup0-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (mut sup, _fatal) = Supervisor::new(LogSink::Dir(dir.clone()));
        let mut reports = sup.reports().unwrap();
        let tail = sup
            .start(sh("drained", "echo started; exit 0").leaves_on_purpose())
            .unwrap();
        let r = tokio::time::timeout(Duration::from_secs(20), reports.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.state, faas_protocol::event::DaemonState::Exited);
        assert!(tail.text().contains("not restarting"), "{}", tail.text());
        assert_eq!(tail.text().matches("started").count(), 1, "restarted");
        sup.stop_all().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_configuration_error_is_fatal_not_restarted() {
        let dir = std::env::temp_dir().join(format!("faas-sup64-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (mut sup, mut fatal) = Supervisor::new(LogSink::Dir(dir.clone()));
        sup.start(sh("bad", "echo 'error: no'; exit 64")).unwrap();
        let f = tokio::time::timeout(Duration::from_secs(20), fatal.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(f.name, "bad");
        assert!(f.message.contains("exit code 64"), "{}", f.message);
        sup.stop_all().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn stop_escalates_to_sigkill_after_the_grace() {
        let dir = std::env::temp_dir().join(format!("faas-supkill-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (mut sup, _fatal) = Supervisor::new(LogSink::Dir(dir.clone()));
        let mut spec = sh(
            "stubborn",
            "trap '' TERM; echo ready; while :; do sleep 1; done",
        );
        spec.stop_grace = Duration::from_millis(300);
        let tail = sup.start(spec).unwrap();
        assert!(wait_for(|| tail.text().contains("ready")).await);
        sup.stop_all().await;
        let log = std::fs::read_to_string(dir.join("stubborn.log")).unwrap();
        assert!(log.contains("killing it"), "{log}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
