//! How a Python child is started: the bubblewrap command line (or the bare interpreter with
//! `--sandbox none`), its environment, and the limits the bootstrap applies to itself.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use serde::{Deserialize, Serialize};
use tokio::process::Command;
use tracing::warn;

use super::ExecutorError;

/// `--sandbox`: whether children run under bubblewrap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SandboxKind {
    /// One bubblewrap sandbox per child (the default; without `bwrap` the pool does not start).
    Bwrap,
    /// Plain processes (insecure: functions see the filesystem and processes of the daemon's
    /// user); the environment is still cleared and the limits still apply.
    None,
}

/// `--sandbox-net`: what network a sandboxed child has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SandboxNet {
    /// A network namespace of its own with only loopback (the default): a function reaches
    /// nothing outside its sandbox, this platform's gateway and Redis included.
    #[default]
    None,
    /// The host's network (insecure, warned at start): functions may call outside APIs, and
    /// reach every service listening on this machine, loopback included: the gateway (its
    /// whole API, unless it has a token), a Redis on TCP, the metrics endpoints. `shared`, the
    /// first name of this setting, when it was the default, still selects it.
    #[value(alias = "shared")]
    Host,
}

/// Per-child limits, applied by the bootstrap to itself before any function code runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Limits {
    /// RLIMIT_AS in bytes.
    pub memory: u64,
    /// Captured print/log per task, in bytes; the rest is dropped with a notice line.
    pub max_output: u64,
    /// Encoded result per task, in bytes; bigger ends FAILED `ResultTooLarge`.
    pub max_result: u64,
    /// RLIMIT_NOFILE.
    pub open_files: u64,
    /// RLIMIT_NPROC: processes and threads in one sandbox (see [`SandboxConfig`] for why it
    /// binds even when the daemon runs as root).
    pub processes: u64,
    /// Size of a sandbox's `/tmp` in bytes (a tmpfs: what is written there is memory).
    pub tmp: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory: 1 << 30,
            max_output: 1 << 20,
            max_result: 16 << 20,
            open_files: 1024,
            processes: 128,
            tmp: DEFAULT_TMP_SIZE,
        }
    }
}

/// How children are isolated. See the module docs of [`crate::executor`] for the design.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    pub kind: SandboxKind,
    pub net: SandboxNet,
    /// Names of daemon environment variables passed to functions (`--pass-env`), besides
    /// `PYTHONPATH`.
    pub pass_env: Vec<String>,
    pub limits: Limits,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            kind: SandboxKind::None,
            net: SandboxNet::None,
            pass_env: Vec::new(),
            limits: Limits::default(),
        }
    }
}

fn bwrap_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("bwrap"))
        .find(|p| p.is_file())
}

/// Whether `bwrap` takes `--size` (bubblewrap 0.7+), from its `--help`.
async fn bwrap_sizes_tmpfs(bwrap: &Path) -> bool {
    Command::new(bwrap)
        .arg("--help")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        // Versions differ in where the help goes.
        .is_ok_and(|out| {
            [out.stdout, out.stderr]
                .iter()
                .any(|o| String::from_utf8_lossy(o).contains("--size"))
        })
}

/// Unprivileged uids for root-run sandboxes: each child gets its own, so the process limit
/// counts only that child's processes and no two sandboxes share an owner.
const UID_BASE: u32 = 900_000_000;
const UID_RANGE: u32 = 1 << 20;
static NEXT_UID: AtomicU32 = AtomicU32::new(0);

/// Where the systemd units read their settings (`demo/systemd`).
const SETTINGS_DIR: &str = "/etc/faas";

/// `--tmp-size` when it is not given: 128 MiB.
pub const DEFAULT_TMP_SIZE: u64 = 128 << 20;

/// What the bootstrap is told on its command line.
#[derive(Serialize)]
struct BootConfig<'a> {
    limits: &'a Limits,
    /// Root-run sandbox: switch to this uid/gid first (bwrap gave only CAP_SETUID/SETGID).
    uid: Option<u32>,
    /// Inside its own PID namespace: the end of a task kills every other process there.
    sandboxed: bool,
}

/// The interpreter as the pool found it: resolved once at start, outside any sandbox.
#[derive(Clone, Debug)]
pub(crate) struct Launcher {
    cfg: SandboxConfig,
    /// `sys.executable` of the configured interpreter (a pyenv shim resolves to the real one).
    python: PathBuf,
    /// Directories the interpreter needs (prefixes, `sys.path`), bound read-only.
    binds: Vec<PathBuf>,
    bwrap: Option<PathBuf>,
    /// Environment every child gets: fixed values, `PYTHONPATH` and the `--pass-env` names.
    env: Vec<(String, OsString)>,
    root: bool,
    /// This bwrap takes `--size` for a tmpfs (bubblewrap 0.7 and later).
    sized_tmpfs: bool,
}

#[derive(Deserialize)]
struct Probe {
    executable: PathBuf,
    dirs: Vec<PathBuf>,
}

const PROBE: &str = "import json, sys\n\
dirs = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix] + sys.path\n\
print(json.dumps({'executable': sys.executable, 'dirs': dirs}))";

impl Launcher {
    /// Asks the interpreter where it lives (with the environment functions will get) and checks
    /// that `bwrap` is there when it is wanted.
    pub(crate) async fn new(python: &Path, cfg: SandboxConfig) -> Result<Self, ExecutorError> {
        let shown = python.display().to_string();
        let env = child_env(&cfg.pass_env);
        let out = Command::new(python)
            .arg("-c")
            .arg(PROBE)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            // A pyenv shim finds its interpreter through these; the probe only runs here.
            .envs(std::env::vars_os().filter(|(k, _)| k.to_string_lossy().starts_with("PYENV")))
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|source| ExecutorError::Spawn {
                python: shown.clone(),
                source,
            })?;
        let probe: Probe =
            serde_json::from_slice(&out.stdout).map_err(|_| ExecutorError::Handshake {
                python: shown.clone(),
                detail: format!(
                    "it could not describe itself ({}): {}",
                    super::child::describe_exit(Some(out.status)),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            })?;
        let bwrap = match cfg.kind {
            SandboxKind::None => None,
            SandboxKind::Bwrap => Some(bwrap_path().ok_or_else(|| {
                ExecutorError::Handshake {
                    python: shown.clone(),
                    detail: "functions run in a bubblewrap sandbox (--sandbox bwrap, the \
                         default), but `bwrap` is not on PATH: install the Debian package \
                         `bubblewrap`, or pass --sandbox none to run them without one (insecure)"
                        .into(),
                }
            })?),
        };
        let sized_tmpfs = match &bwrap {
            Some(path) => bwrap_sizes_tmpfs(path).await,
            None => false,
        };
        if bwrap.is_some() && !sized_tmpfs {
            warn!(
                event = "sandbox_tmp_unbounded",
                "this bwrap cannot size a tmpfs (bubblewrap 0.7 or later can): a function's /tmp \
                 is bounded by half the machine's memory, not --tmp-size, and a function can fill \
                 memory through it; upgrade the package `bubblewrap`"
            );
        }
        let binds = probe
            .dirs
            .into_iter()
            // Relative entries ('' is the working directory) would bind whatever is there.
            .filter(|d| d.is_absolute())
            .collect();
        Ok(Self {
            cfg,
            python: probe.executable,
            binds,
            bwrap,
            env,
            root: nix::unistd::geteuid().is_root(),
            sized_tmpfs,
        })
    }

    /// The interpreter, as errors name it.
    pub(crate) fn describe(&self) -> String {
        self.python.display().to_string()
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.cfg.limits
    }

    pub(crate) fn kind(&self) -> SandboxKind {
        self.cfg.kind
    }

    /// The command that starts one child running `bootstrap`.
    pub(crate) fn command(&self, bootstrap: &str) -> Command {
        let sandboxed = self.bwrap.is_some();
        let uid = (sandboxed && self.root)
            .then(|| UID_BASE + NEXT_UID.fetch_add(1, Ordering::Relaxed) % UID_RANGE);
        let boot = serde_json::to_string(&BootConfig {
            limits: &self.cfg.limits,
            uid,
            sandboxed,
        })
        .expect("boot config serializes");
        let mut cmd = match &self.bwrap {
            None => {
                let mut cmd = Command::new(&self.python);
                cmd.env_clear();
                cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
                cmd
            }
            Some(bwrap) => {
                let mut cmd = Command::new(bwrap);
                cmd.args(self.bwrap_args());
                cmd.arg("--").arg(&self.python);
                cmd.env_clear();
                cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
                cmd
            }
        };
        cmd.arg("-c").arg(bootstrap).arg(boot);
        cmd
    }

    fn bwrap_args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |parts: &[&dyn AsRef<std::ffi::OsStr>]| {
            a.extend(parts.iter().map(|p| p.as_ref().to_owned()));
        };
        push(&[&"--unshare-pid", &"--unshare-ipc", &"--unshare-uts"]);
        push(&[&"--unshare-cgroup-try"]);
        if self.cfg.net == SandboxNet::None {
            push(&[&"--unshare-net"]);
        }
        if self.root {
            // No user namespace: its uid 0 would be the host's root, which owns (and so may
            // read) every 0600 root file bound in. The bootstrap switches to an unprivileged
            // uid of its own with these two capabilities, and thereby drops them.
            push(&[&"--cap-add", &"CAP_SETUID", &"--cap-add", &"CAP_SETGID"]);
        } else {
            push(&[&"--unshare-user", &"--uid", &"65534", &"--gid", &"65534"]);
        }
        // The environment goes through bwrap's own (set below, cleared first), not --setenv:
        // a passed value on a command line would be in every host user's `ps`.
        push(&[&"--die-with-parent", &"--new-session"]);
        // The filesystem is an allow-list, read-only: the system directories, the interpreter
        // and its sys.path. The daemon's data, tokens and working directory are not in it.
        let mut wanted: Vec<PathBuf> = vec!["/usr".into(), "/etc".into(), "/opt".into()];
        wanted.extend(self.binds.iter().cloned());
        // /etc/resolv.conf often points into /run (systemd-resolved).
        if let Ok(target) = std::fs::canonicalize("/etc/resolv.conf") {
            if let Some(dir) = target.parent().filter(|d| !d.starts_with("/etc")) {
                wanted.push(dir.to_owned());
            }
        }
        for top in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
            let p = Path::new(top);
            match std::fs::read_link(p) {
                Ok(target) => push(&[&"--symlink", &target, &top]),
                Err(_) if p.is_dir() => wanted.push(p.into()),
                Err(_) => {}
            }
        }
        // Shortest first, so a directory inside one already bound is left out.
        wanted.sort_by_key(|d| d.components().count());
        let mut binds: Vec<PathBuf> = Vec::new();
        for dir in wanted {
            let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
            let special =
                dir.starts_with("/proc") || dir.starts_with("/dev") || dir == Path::new("/");
            if special || !dir.is_dir() || binds.iter().any(|b| dir.starts_with(b)) {
                continue;
            }
            binds.push(dir);
        }
        // /tmp first: a PYTHONPATH directory under /tmp is bound into it, not hidden by it.
        push(&[&"--dev", &"/dev", &"--proc", &"/proc"]);
        // /tmp is the sandbox's one writable place, and a tmpfs holds its files in memory: it
        // is sized (--tmp-size), or a function could fill the machine's memory through it.
        let tmp = self.cfg.limits.tmp.to_string();
        if self.sized_tmpfs {
            push(&[&"--size", &tmp]);
        }
        push(&[
            &"--perms", &"1777", &"--tmpfs", &"/tmp", &"--chdir", &"/tmp",
        ]);
        let mut made: Vec<PathBuf> = vec!["/tmp".into()];
        for dir in &binds {
            // bwrap makes missing parents 0700, which the unprivileged uid could not cross.
            let parents: Vec<&Path> = dir.ancestors().skip(1).collect();
            for parent in parents.into_iter().rev() {
                if parent == Path::new("/") || made.iter().any(|m| m == parent) {
                    continue;
                }
                push(&[&"--perms", &"0755", &"--dir", &parent]);
                made.push(parent.to_owned());
            }
            push(&[&"--ro-bind", dir, dir]);
        }
        // The systemd units' settings (FAAS_TOKEN among them) live here: hidden, whatever
        // their permissions, since a non-root daemon's sandbox runs as the daemon's own user.
        if Path::new(SETTINGS_DIR).is_dir() {
            push(&[&"--tmpfs", &SETTINGS_DIR, &"--remount-ro", &SETTINGS_DIR]);
        }
        // bwrap's own mounts (the root it builds, /dev with /dev/shm) are unsized tmpfs, and
        // in a non-root daemon's sandbox (a user namespace) the function owns them and could
        // fill them: read-only, last, once everything is mounted on them. (The device nodes
        // are mounts of their own and stay writable.)
        push(&[&"--remount-ro", &"/dev", &"--remount-ro", &"/"]);
        a
    }
}

/// The whole environment of a child: a fixed base, `PYTHONPATH` and the `--pass-env` names
/// that are set. Nothing else of the daemon's (its token, its Redis URL) gets through.
fn child_env(pass: &[String]) -> Vec<(String, OsString)> {
    let mut env: Vec<(String, OsString)> = vec![
        ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
        ("HOME".into(), "/tmp".into()),
        ("LANG".into(), "C.UTF-8".into()),
    ];
    for name in std::iter::once("PYTHONPATH").chain(pass.iter().map(String::as_str)) {
        if let Some(value) = std::env::var_os(name) {
            env.retain(|(k, _)| k != name);
            env.push((name.to_owned(), value));
        }
    }
    env
}
