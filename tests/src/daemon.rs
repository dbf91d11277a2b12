//! A child process held by a guard: output captured to a log file, stopped on drop.
//!
//! Daemons are started with JSON logs (`FAAS_LOG_FORMAT=json`), so tests read what they logged
//! as [`LogEvent`]s and match the stable `event` name and fields (see the table in
//! `faas_daemons`' crate docs), never the wording of a message. Failure output renders those
//! lines compactly for people.

use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::log_events::{render_log, LogEvent};
use crate::wait_until;

/// How long a daemon gets to shut down cleanly on SIGTERM before it is SIGKILLed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A running daemon. Dropping it stops it (SIGTERM, then SIGKILL after a grace period), so a
/// failing test never leaves processes behind; when the drop happens during a panic the tail of
/// its log is printed, because that is usually where the cause is.
#[derive(Debug)]
pub struct Daemon {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    /// Starts `program` with `args` and extra `env`; stdout and stderr go to `<log_dir>/<name>.log`
    /// (appended to, so a restarted daemon keeps one log).
    pub fn spawn<S: AsRef<OsStr>>(
        name: &str,
        program: impl AsRef<OsStr>,
        args: &[S],
        env: &[(String, String)],
        log_dir: &Path,
    ) -> Self {
        let log = log_dir.join(format!("{name}.log"));
        let mut out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open daemon log");
        let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
        let _ = writeln!(
            out,
            "=== {} {}",
            program.as_ref().to_string_lossy(),
            shown.join(" ")
        );
        let err = out.try_clone().expect("clone log handle");
        let mut cmd = Command::new(program.as_ref());
        cmd.args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        // Daemon logs are what a failed test is debugged with; ask for them unless the caller chose.
        if std::env::var_os("RUST_LOG").is_none() && !env.iter().any(|(k, _)| k == "RUST_LOG") {
            cmd.env("RUST_LOG", "info");
        }
        // Logs are read in files and terminals alike: no colour escapes.
        cmd.env("NO_COLOR", "1");
        // Tests match logged events by name and field ([`Daemon::events`]), so daemons log JSON
        // unless the caller chose a format (a non-daemon program ignores the variable).
        if !env.iter().any(|(k, _)| k == "FAAS_LOG_FORMAT") {
            cmd.env("FAAS_LOG_FORMAT", "json");
        }
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start {name} ({}): {e}",
                program.as_ref().to_string_lossy()
            )
        });
        Self {
            name: name.to_owned(),
            child: Some(child),
            log,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id, while it is running.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .expect("daemon was stopped")
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the daemon's log, JSON log lines rendered compactly for people.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log();
        let all: Vec<&str> = text.lines().collect();
        render_log(&all[all.len().saturating_sub(lines)..].join("\n"))
    }

    /// `Some(status)` once the process has exited (it is reaped then).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        match self.child.as_mut() {
            Some(c) => c.try_wait().expect("try_wait"),
            None => None,
        }
    }

    /// Panics with the log tail if the daemon has already exited: used while waiting for it to
    /// come up, so a daemon that refused its flags fails the test at once and says why.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.exited() {
            panic!(
                "{} exited early ({status}); log {}:\n{}",
                self.name,
                self.log.display(),
                self.log_tail(40)
            );
        }
    }

    /// Simulates a crash: SIGKILL, no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(pid_of(&child), Signal::SIGKILL);
            let _ = child.wait();
        }
    }

    /// Sends `signal` and returns at once (`false` if the daemon was already stopped); pair
    /// with [`Daemon::wait_exit`] to see how it ends, e.g. SIGTERM while it still drains.
    pub fn signal(&mut self, signal: Signal) -> bool {
        match self.child.as_ref() {
            Some(child) => kill(pid_of(child), signal).is_ok(),
            None => false,
        }
    }

    /// Waits (bounded, without blocking the runtime) for the process to exit; `None` if it
    /// is still running after `timeout`. The daemon stays held, so its log stays readable.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The whole log so far, as written: JSON log lines, and whatever the process printed
    /// before its logging was set up (a usage error's message, for one).
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Every event logged so far (lines that are not JSON log lines are left out).
    pub fn events(&self) -> Vec<LogEvent> {
        self.log().lines().filter_map(LogEvent::parse).collect()
    }

    /// Whether an event matching `pred` was logged, e.g. `d.logged(|e| e.is("worker_joined"))`.
    pub fn logged(&self, pred: impl Fn(&LogEvent) -> bool) -> bool {
        self.events().iter().any(pred)
    }

    /// How many logged events match `pred`.
    pub fn count_events(&self, pred: impl Fn(&LogEvent) -> bool) -> usize {
        self.events().iter().filter(|e| pred(e)).count()
    }

    /// Waits (bounded) until an event matching `pred` has been logged; returns whether one was.
    pub async fn wait_for_event(
        &self,
        timeout: Duration,
        pred: impl Fn(&LogEvent) -> bool,
    ) -> bool {
        wait_until(timeout, async || self.logged(&pred)).await
    }

    /// CPU time (user + system) the process has used so far, from `/proc/PID/stat`.
    pub fn cpu_time(&self) -> Duration {
        cpu_time(self.pid() as i32).expect("daemon's /proc/PID/stat is readable")
    }

    /// A clean stop: SIGTERM, and SIGKILL if it has not exited after the grace period.
    /// Returns how it exited (`None` if it was already stopped).
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        let _ = kill(pid_of(&child), Signal::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "{} did not stop within {STOP_GRACE:?} of SIGTERM; sending SIGKILL",
            self.name
        );
        let _ = kill(pid_of(&child), Signal::SIGKILL);
        child.wait().ok()
    }
}

fn pid_of(child: &Child) -> Pid {
    Pid::from_raw(i32::try_from(child.id()).expect("pid fits in i32"))
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() && self.child.is_some() {
            eprintln!(
                "--- {} log ({}), last lines:\n{}\n---",
                self.name,
                self.log.display(),
                self.log_tail(30)
            );
        }
        self.stop();
    }
}

/// True when no process `pid` exists any more (a zombie counts as gone: it has exited and only
/// waits to be reaped, which in a container without a reaping init may never happen).
pub fn process_gone(pid: i32) -> bool {
    match kill(Pid::from_raw(pid), None) {
        Err(nix::errno::Errno::ESRCH) => true,
        _ => std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            // The state follows the parenthesised command name, which may itself hold spaces.
            .and_then(|s| {
                s.rsplit_once(')')
                    .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(true),
    }
}

/// Every process below `pid`, children first, from `/proc/PID/task/TID/children` (processes
/// the test started, or that they started: never a look through all of `/proc`).
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for c in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                if !found.contains(&c) {
                    found.push(c);
                    stack.push(c);
                }
            }
        }
    }
    found
}

/// CPU time (user + system) process `pid` has used, from `/proc/PID/stat`; `None` if it is gone.
pub fn cpu_time(pid: i32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // In clock ticks of sysconf(_SC_CLK_TCK) (getrusage answers only for this process and
    // its reaped children, so another process's time comes from /proc).
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|hz| u64::try_from(hz).ok())
        .filter(|&hz| hz > 0)?;
    Some(Duration::from_micros((utime + stime) * 1_000_000 / hz))
}
