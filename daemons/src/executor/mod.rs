//! The Python executor: sandboxed Python children, each of which only ever runs ONE function.
//!
//! # Why one function per child
//! User code runs in the interpreter that reads the frames. A child shared by functions lets
//! one function patch `__main__`, `json` or builtins and take over every later task of every
//! other function. So a child is bound to a function by the first request that carries its
//! body and runs nothing else until it dies; the Rust side ([`child`]) and `bootstrap.py`
//! agree on it: a child that was never sent the body answers `need_body` and is sent it (a
//! miss costs a resend, never a failed task), and a body that fails to load (a SyntaxError)
//! is the answer to every call of that child.
//!
//! # Keeping it fast: spares and warm children ([`pool`])
//! The SOCK design (USENIX ATC '18) forks a function's child from a warm zygote. A fork stays
//! inside the zygote's sandbox, though, and the point is a sandbox per function. So each slot
//! keeps a *spare* instead: bwrap + python with the bootstrap and dill imported, limits
//! applied, not yet bound. A new function's first call (its cold start) binds a spare, i.e.
//! sends it the body, while a replacement spare starts in the background. Children stay warm
//! per function; past `--max-children` (running + warm + spare) the least recently used idle
//! ones are stopped, and so they are while the idle children (warm and spare) hold more than
//! `--max-idle-memory` together (resident memory and /tmp, measured every second; a quarter
//! of the machine's memory by default). The count alone let 128 warm children each keep up
//! to a task's memory limit. A function whose warm children were evicted pays one cold start
//! again. A warm child that has waited a second for its function's next task is frozen
//! (SIGSTOP to the interpreter, SIGCONT when it is taken or killed): a thread a task left
//! running would otherwise take CPU from other functions' tasks between tasks, for as long
//! as the child stays warm. Not at once, since stopping a process wakes it, which a busy
//! function would pay on every task.
//!
//! # The sandbox ([`sandbox`], `--sandbox bwrap`, the default)
//! Without `bwrap` the pool does not start: it says to install `bubblewrap` or to pass
//! `--sandbox none` (insecure, warned at start). It used to fall back to no sandbox with only a
//! warning, on the one machine where the package was missing: an insecure setting nobody asked
//! for.
//! Every child has its own bubblewrap: own PID, IPC, UTS and network namespaces (see
//! "Network" below), `--new-session`, `--die-with-parent`, and only the environment below
//! (given to bwrap as its own, never on its command line, which `ps` shows). Its filesystem
//! is an allow-list bound read-only (`/usr`, `/etc`, `/opt`, `/lib*`, the interpreter's
//! prefixes and `sys.path`, which includes `PYTHONPATH`), a private `/tmp`, its own `/proc`
//! and a minimal `/dev`; `/etc/faas` (the systemd units' settings, with the token) is hidden.
//! `/tmp` is the one writable place, a tmpfs of `--tmp-size` (128 MiB): a tmpfs holds its
//! files in memory, and an unsized one let a task fill 3 GiB of the machine's memory, kept
//! while its child stayed warm. The tmpfs bwrap builds the rest from (its root, `/dev` with
//! `/dev/shm`) are remounted read-only, since in a non-root daemon's sandbox (a user
//! namespace) the function owns them. A bwrap older than 0.7 cannot size a tmpfs: the pool
//! warns at start (`sandbox_tmp_unbounded`).
//! The daemons' data and working directories are not in it. Functions therefore see no other process: not the daemons, not each
//! other (`os.getppid()` is 0 or bwrap's init), so they cannot signal them.
//! When the daemon runs as root, bwrap runs without a user namespace: inside one, the
//! sandbox's uid would map to the host's root and could read every root-owned 0600 file bound
//! in (`/etc/shadow`). Instead bwrap hands only CAP_SETUID/CAP_SETGID to the bootstrap, which
//! switches to a uid of its own (900000000 + n, one per child) before any function code runs,
//! dropping both. A non-root daemon uses `--unshare-user --uid 65534` instead.
//!
//! # Network
//! A sandbox's network namespace has a loopback of its own and nothing else
//! (`--sandbox-net none`, the default): a function reaches no service of this machine or
//! beyond. The first design shared the host's network by default, so that functions could
//! call outside APIs; but that network holds the platform itself: the gateway on loopback
//! (which `faas up` and the original clients run without a token) answered a function's
//! `GET /tasks` with every other function's tasks, and would have cancelled them, purged the
//! queue or deleted functions; a Redis on TCP loopback takes any command. `--sandbox-net host`
//! (alias `shared`) still shares the host's network, for functions that need outside APIs;
//! it is warned at start (`sandbox_net_host`), and then the gateway wants a `--token` and
//! Redis a unix socket, which a sandbox cannot reach (its `/tmp` is its own and the daemons'
//! directories are not bound in). A namespace costs ~0.6 ms when a child starts, never per
//! task. With `--sandbox none` there is no namespace at all: functions share everything.
//!
//! # Environment
//! Children get `PATH`, `HOME=/tmp`, `LANG`, `PYTHONPATH` and the variables named by
//! `--pass-env`; nothing else of the daemon's environment (its token, its Redis URL), in
//! either sandbox mode.
//!
//! # Limits ([`sandbox::Limits`]), applied by the bootstrap to itself
//! `RLIMIT_AS` (`--memory-limit`; a task over it fails `MemoryError` and its child is
//! replaced), `RLIMIT_NOFILE`, and `RLIMIT_NPROC` (`--max-processes`). RLIMIT_NPROC never
//! binds uid 0, which is why a root-run sandbox has a uid of its own: there the limit counts
//! that sandbox's processes only. With `--sandbox none` processes are not bounded. Output
//! (`--max-output`) is capped as it is captured, with a notice line for what was cut; results
//! over `--max-result` fail `ResultTooLarge` in the child, before they are sent, so the
//! daemons never hold more than a frame's maximum (the codec refuses longer frames). Every
//! child sets its `oom_score_adj` to 1000, so that when the machine runs out of memory the
//! kernel kills a task's child before Redis or a daemon, and its nice value to 10, so that a
//! task spinning every core (threads, processes) still leaves them the CPU first (no change
//! to a no-op `map` or round trip, measured alternating: 3,918 against 3,856 tasks/s).
//!
//! # Clean-up
//! Every process a task started is gone when the task ends. The bootstrap is a child
//! subreaper (orphans, setsid or not, come back to it); after every task it kills the other
//! processes of its PID namespace (`kill(-1)`, sandbox only) and every descendant it finds,
//! and reaps them. A child killed for a timeout takes the rest along: killing bwrap kills the
//! namespace's init and so the namespace; an unsandboxed child's descendants are killed
//! before it. A cancelled task ([`Pool::cancel`], by task id) is killed the same way, at once,
//! and its slot takes a spare for the next task.
//!
//! Frames on the pipes are `tokio_util`'s `LengthDelimitedCodec` (4-byte big-endian length)
//! with a maximum frame length, and UTF-8 JSON. The request pipe is in packet mode, so that
//! requests of the tasks a slot holds next can be written ahead while the child runs, and
//! taken back when they should not run there after all (child.rs, "Writing ahead"); a slot
//! keeps its child from one task to the next while requests are in its pipe
//! ([`Slot::run`]'s `ahead`). A child killed with requests in its pipe takes none of them
//! along: their tasks are still the dispatcher's to run.

mod child;
mod options;
mod pool;
mod sandbox;

use std::time::Duration;

pub use faas_protocol::model::{FunctionDef, Outcome};
use faas_protocol::TaskId;

pub use child::TakeBack;
pub use options::{parse_size, ExecutorArgs};
pub use pool::{Pool, PoolConfig, Slot, DEFAULT_MAX_CHILDREN};
pub use sandbox::{Limits, SandboxConfig, SandboxKind, SandboxNet};

/// One execution to run.
#[derive(Clone, Debug)]
pub struct Job {
    pub task_id: TaskId,
    pub function: std::sync::Arc<FunctionDef>,
    /// dill: base64 string of the pickled `(args, kwargs)`; source: `{"args": [], "kwargs": {}}`.
    pub args: serde_json::Value,
    pub timeout: Duration,
}

/// Errors that stop a pool from starting at all.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    #[error("cannot start python {python:?}: {source}")]
    Spawn {
        python: String,
        #[source]
        source: std::io::Error,
    },
    #[error("python {python:?} did not start the executor: {detail}")]
    Handshake { python: String, detail: String },
}
