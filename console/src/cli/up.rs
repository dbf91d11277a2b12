//! `faas up`: the whole platform on this machine with one command.
//!
//! Starts a private `redis-server` (unless `--redis` names one), the gateway, the dispatcher and,
//! in push/pull mode, the workers; keeps them running (see [`super::supervisor`]); then hands the
//! terminal to `faas-console`, or with `--no-console` shows the daemons' logs. Ctrl-C, SIGTERM or
//! quitting the console stops everything it started, the last started first. Each daemon it
//! restarts, and each worker that left by itself (drained: exit 0, not restarted), is published
//! on the events channel as `Event::Daemon`, so the console's Events timeline shows it.
//!
//! Durable by default: the private Redis appends every write to a file in the data directory
//! ([`super::data_dir`]) and fsyncs it every second, and the next `faas up` starts from it. A
//! killed Redis loses nothing (its writes reached the file before it answered); a crash of the
//! whole machine loses at most the last second. `--ephemeral` keeps everything in a temporary
//! directory that goes when `faas up` stops.
//!
//! The private Redis listens on a unix socket in the run directory, which only this user can
//! enter, and on no TCP port ([`RedisListen`]); `--redis URL` takes any Redis, `unix://` ones
//! included.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use faas_protocol::model::WorkerMode;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::data_dir::{default_data_dir, private_dir, DataDir};
use super::supervisor::{DaemonSpec, Fatal, LogSink, Supervisor};
use crate::client::GatewayClient;

/// How long a fresh redis-server (loading its append-only file) and the gateway get to answer.
const REDIS_START: Duration = Duration::from_secs(60);
const GATEWAY_START: Duration = Duration::from_secs(30);
/// Stop graces: the dispatcher and workers drain running tasks first.
const DRAIN_GRACE: Duration = Duration::from_secs(5);
const WORKER_STOP: Duration = Duration::from_secs(10);
const GATEWAY_STOP: Duration = Duration::from_secs(5);
const REDIS_STOP: Duration = Duration::from_secs(5);
const CONSOLE_STOP: Duration = Duration::from_secs(3);

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Where tasks run.
    #[arg(short = 'm', long, value_enum, default_value_t = WorkerMode::Local)]
    pub mode: WorkerMode,
    /// Worker processes (push and pull modes).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Python processes: the local pool's size, or each worker's [default: CPU cores].
    #[arg(long, env = "FAAS_PROCS")]
    pub procs: Option<usize>,
    /// Address the gateway serves HTTP on.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub listen: String,
    /// Use this Redis instead of starting a private redis-server.
    #[arg(long)]
    pub redis: Option<String>,
    /// Stay in the foreground showing the daemons' logs instead of opening faas-console.
    #[arg(long)]
    pub no_console: bool,
    /// Python interpreter for the tasks [default: ./.venv/bin/python if present, else python3].
    #[arg(long, env = "FAAS_PYTHON")]
    pub python: Option<PathBuf>,
    /// The Python sandboxes' network: none (their own loopback only: functions reach no
    /// service of this machine, the gateway and Redis included) or host (insecure: this
    /// machine's network, for functions that call outside APIs; give the gateway a --token)
    /// [default: none].
    #[arg(long, env = "FAAS_SANDBOX_NET", value_parser = ["none", "host", "shared"])]
    pub sandbox_net: Option<String>,
    /// Port the dispatcher binds for push/pull workers [default: a free port].
    #[arg(long)]
    pub dispatcher_port: Option<u16>,
    /// Where the platform's state lives between runs [default: $XDG_DATA_HOME/faas, else
    /// ~/.local/share/faas].
    #[arg(long, env = "FAAS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Keep nothing: the private Redis runs without persistence in a temporary directory, and
    /// the next faas up starts empty.
    #[arg(long, conflicts_with = "data_dir")]
    pub ephemeral: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error("{0}")]
    Usage(String),
    #[error(
        "redis-server not found on PATH: install it (sudo apt-get install redis-server) or pass --redis URL"
    )]
    NoRedis,
    #[error("{name} not found next to faas in {dir}: build it (cargo build --workspace --bins)")]
    MissingBinary { name: String, dir: String },
    #[error("{0}")]
    Start(String),
    #[error("{name} {message}\n--- last lines of {name}:\n{tail}")]
    Daemon {
        name: String,
        message: String,
        tail: String,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl UpError {
    pub fn exit_code(&self) -> i32 {
        match self {
            UpError::Usage(_) => super::EXIT_USAGE,
            _ => super::EXIT_FAILURE,
        }
    }
}

/// The resolved plan: what to start, where.
#[derive(Debug)]
struct Plan {
    mode: WorkerMode,
    workers: usize,
    procs: usize,
    listen: SocketAddr,
    gateway_url: String,
    redis: RedisPlan,
    python: PathBuf,
    /// `--sandbox-net`, passed to whichever daemons run Python children.
    sandbox_net: Option<String>,
    dispatcher_port: u16,
    bins: Bins,
    token: Option<String>,
    console: Option<PathBuf>,
    run_dir: PathBuf,
    /// `None` with `--ephemeral`.
    data_dir: Option<DataDir>,
}

impl Plan {
    /// Where per-installation state goes: the data directory, or with `--ephemeral` the
    /// temporary run directory that is removed when `faas up` stops.
    fn state_dir(&self) -> &Path {
        self.data_dir.as_ref().map_or(&self.run_dir, DataDir::path)
    }
}

#[derive(Debug)]
enum RedisPlan {
    /// `--redis URL`: someone else's server.
    External(String),
    /// A private redis-server started (and stopped) by `faas up`; persistent unless
    /// `--ephemeral`.
    Private(PathBuf),
}

#[derive(Debug)]
struct Bins {
    gateway: PathBuf,
    dispatcher: PathBuf,
    worker: Option<PathBuf>,
}

/// Runs the platform until a signal, the console quitting, or a daemon that cannot be kept up.
pub async fn run(args: UpArgs, token: Option<String>) -> Result<(), UpError> {
    // Signals are caught from the very start, so a stop during start-up still cleans up.
    let interrupted = CancellationToken::new();
    spawn_signal_listener(interrupted.clone())?;
    let plan = plan(args, token)?;
    // Private to this user: it holds Redis' socket and the daemons' logs.
    private_dir(&plan.run_dir).map_err(|source| UpError::Io {
        what: format!("cannot create {}", plan.run_dir.display()),
        source,
    })?;
    let sink = match plan.console {
        Some(_) => LogSink::Dir(plan.run_dir.clone()),
        None => LogSink::Terminal { pad: 10 },
    };
    let (mut sup, mut fatal) = Supervisor::new(sink);
    let reports = sup.reports();
    // Start-up can be abandoned at any await; the wait afterwards closes the console itself.
    let started = tokio::select! {
        r = start_all(&plan, &mut sup, &mut fatal) => r,
        () = interrupted.cancelled() => Err(UpError::Start("interrupted".into())),
    };
    let outcome = match started {
        Ok(redis_url) => {
            let reporter = reports.map(|r| tokio::spawn(report_daemons(redis_url.clone(), r)));
            let outcome = wait(&plan, &sup, &mut fatal, &interrupted, &redis_url).await;
            if let Some(reporter) = reporter {
                reporter.abort();
            }
            outcome
        }
        Err(e) => Err(e),
    };
    // The console (if any) is gone by now; stop the daemons, the last started first.
    eprintln!("faas up: stopping");
    sup.stop_all().await;
    if plan.console.is_some() {
        eprintln!("faas up: daemon logs are in {}", plan.run_dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&plan.run_dir);
    }
    // A stop request while waiting for the console counts as a clean stop.
    if interrupted.is_cancelled() {
        return Ok(());
    }
    outcome
}

/// How long a restart report waits for Redis (itself maybe the daemon restarting) to take it.
const REPORT_PATIENCE: Duration = Duration::from_secs(30);

/// Publishes the supervisor's restart reports on the platform's events channel (as
/// `Event::Daemon`), where the console's Events timeline shows them. A report that Redis does
/// not take within [`REPORT_PATIENCE`] is dropped: the daemon's log still says it.
async fn report_daemons(
    redis_url: String,
    mut reports: mpsc::UnboundedReceiver<super::supervisor::Report>,
) {
    let Ok(client) = redis::Client::open(redis_url.as_str()) else {
        return;
    };
    let channel = faas_protocol::Keys::default().events();
    while let Some(r) = reports.recv().await {
        let event = faas_protocol::event::Event::Daemon {
            name: r.name,
            state: r.state,
            exit: Some(r.exit),
            at: crate::tui::now_ms(),
        };
        let json = serde_json::to_string(&event).expect("events serialise");
        let deadline = tokio::time::Instant::now() + REPORT_PATIENCE;
        let mut backoff = faas_protocol::backoff::Backoff::new(
            Duration::from_millis(100),
            Duration::from_secs(2),
        );
        while tokio::time::Instant::now() < deadline {
            let published = tokio::time::timeout(Duration::from_secs(2), async {
                let mut c = client.get_multiplexed_async_connection().await?;
                redis::cmd("PUBLISH")
                    .arg(&channel)
                    .arg(&json)
                    .query_async::<i64>(&mut c)
                    .await
            })
            .await;
            if matches!(published, Ok(Ok(_))) {
                break;
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }
}

fn spawn_signal_listener(interrupted: CancellationToken) -> Result<(), UpError> {
    use tokio::signal::unix::{signal, SignalKind};
    let io = |source| UpError::Io {
        what: "cannot install signal handlers".into(),
        source,
    };
    let mut term = signal(SignalKind::terminate()).map_err(io)?;
    let mut int = signal(SignalKind::interrupt()).map_err(io)?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        interrupted.cancel();
    });
    Ok(())
}

fn plan(args: UpArgs, token: Option<String>) -> Result<Plan, UpError> {
    if args.workers == 0 || args.procs == Some(0) {
        return Err(UpError::Usage(
            "--workers and --procs must be at least 1".into(),
        ));
    }
    let listen: SocketAddr = args.listen.parse().map_err(|_| {
        UpError::Usage(format!(
            "--listen {:?} is not an address like 127.0.0.1:8000",
            args.listen
        ))
    })?;
    if listen.port() == 0 {
        return Err(UpError::Usage(
            "--listen needs a port (0 would hide where the gateway is)".into(),
        ));
    }
    // The gateway refuses this itself (exit 64); said here first, in faas up's own words.
    if token.is_none() && !listen.ip().is_loopback() {
        return Err(UpError::Usage(format!(
            "--listen {listen} is reachable from other machines, and without a token anyone who \
             can connect could run code and read every task: pass --token (or FAAS_TOKEN), or \
             listen on 127.0.0.1"
        )));
    }
    // A gateway bound to every interface is still reached through loopback from here.
    let reach = if listen.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), listen.port())
    } else {
        listen
    };
    let dir = exe_dir()?;
    let bin = |name: &str| -> Result<PathBuf, UpError> {
        let p = dir.join(name);
        if p.is_file() {
            Ok(p)
        } else {
            Err(UpError::MissingBinary {
                name: name.into(),
                dir: dir.display().to_string(),
            })
        }
    };
    let bins = Bins {
        gateway: bin("faas-gateway")?,
        dispatcher: bin("faas-dispatcher")?,
        worker: match args.mode {
            WorkerMode::Local => None,
            WorkerMode::Push | WorkerMode::Pull => Some(bin("faas-worker")?),
        },
    };
    let redis = match args.redis {
        Some(url) => RedisPlan::External(url),
        None => RedisPlan::Private(find_on_path("redis-server").ok_or(UpError::NoRedis)?),
    };
    let console = if args.no_console {
        None
    } else {
        let path = dir.join("faas-console");
        let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
        if !path.is_file() {
            eprintln!(
                "faas up: note: faas-console not found in {}; showing the daemons' logs instead",
                dir.display()
            );
            None
        } else if !tty {
            eprintln!(
                "faas up: note: no terminal for the console; showing the daemons' logs instead"
            );
            None
        } else {
            Some(path)
        }
    };
    let data_dir = if args.ephemeral {
        None
    } else {
        let path = match args.data_dir {
            Some(p) => p,
            None => default_data_dir().ok_or_else(|| {
                UpError::Usage(
                    "cannot tell where to keep data: set HOME or XDG_DATA_HOME, or pass --data-dir or --ephemeral".into(),
                )
            })?,
        };
        Some(DataDir::open(&path)?)
    };
    let shares_network = matches!(args.sandbox_net.as_deref(), Some("host" | "shared"));
    if shares_network && token.is_none() {
        eprintln!(
            "faas up: warning: with --sandbox-net host functions reach this machine's network, \
             this gateway included, and it has no token: any function can list, read and cancel \
             every task; pass --token (or FAAS_TOKEN) too"
        );
    }
    if args.mode == WorkerMode::Local && args.workers != 1 {
        eprintln!(
            "faas up: note: --workers applies to push and pull modes; local mode runs one pool of --procs processes"
        );
    }
    Ok(Plan {
        mode: args.mode,
        workers: args.workers,
        procs: args
            .procs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        listen,
        gateway_url: format!("http://{reach}"),
        redis,
        python: args.python.unwrap_or_else(default_python),
        sandbox_net: args.sandbox_net,
        dispatcher_port: args
            .dispatcher_port
            .unwrap_or_else(|| free_port().unwrap_or(5555)),
        bins,
        token,
        console,
        run_dir: std::env::temp_dir().join(format!("faas-up-{}", std::process::id())),
        data_dir,
    })
}

/// Starts every daemon in order and waits until the gateway answers; returns the Redis URL.
async fn start_all(
    plan: &Plan,
    sup: &mut Supervisor,
    fatal: &mut mpsc::UnboundedReceiver<Fatal>,
) -> Result<String, UpError> {
    let redis_url = match &plan.redis {
        RedisPlan::External(url) => url.clone(),
        RedisPlan::Private(server) => start_redis(plan, server, sup, fatal).await?,
    };
    // Children never colour their logs unless they go straight to a terminal.
    let colour = plan.console.is_none() && std::io::stdout().is_terminal();
    let no_color = (!colour).then(|| "1".to_owned());

    let gateway = DaemonSpec::new("gateway", plan.bins.gateway.clone(), GATEWAY_STOP)
        .arg("--listen")
        .arg(plan.listen.to_string())
        .arg("--redis")
        .arg(&redis_url)
        .arg("--shutdown-grace-ms")
        .arg("2000")
        .env("FAAS_TOKEN", plan.token.clone())
        .env("NO_COLOR", no_color.clone());
    start(sup, gateway)?;
    wait_gateway(plan, sup, fatal).await?;

    let mut dispatcher = DaemonSpec::new("dispatcher", plan.bins.dispatcher.clone(), WORKER_STOP)
        .arg("-m")
        .arg(plan.mode.as_str())
        .arg("--redis")
        .arg(&redis_url)
        .arg("--drain-grace-ms")
        .arg(DRAIN_GRACE.as_millis().to_string())
        .env("NO_COLOR", no_color.clone());
    dispatcher = match plan.mode {
        WorkerMode::Local => with_sandbox_net(
            dispatcher
                .arg("--procs")
                .arg(plan.procs.to_string())
                .arg("--python")
                .arg(&plan.python),
            plan,
        ),
        WorkerMode::Push | WorkerMode::Pull => {
            dispatcher.arg("-p").arg(plan.dispatcher_port.to_string())
        }
    };
    let key = match plan.mode {
        WorkerMode::Local => None,
        WorkerMode::Push | WorkerMode::Pull => Some(worker_key_file(plan.state_dir())?),
    };
    if let Some(key) = &key {
        dispatcher = dispatcher.arg("--worker-key-file").arg(key);
    }
    start(sup, dispatcher)?;
    if let Some(worker) = &plan.bins.worker {
        let endpoint = format!("tcp://127.0.0.1:{}", plan.dispatcher_port);
        for i in 1..=plan.workers {
            // A worker that exits 0 was drained by an operator: it stays gone.
            let spec = DaemonSpec::new(&format!("worker-{i}"), worker.clone(), WORKER_STOP)
                .group("workers")
                .leaves_on_purpose()
                .arg(plan.mode.as_str())
                .arg(&endpoint)
                .arg("--procs")
                .arg(plan.procs.to_string())
                .arg("--python")
                .arg(&plan.python)
                .arg("--drain-grace-ms")
                .arg(DRAIN_GRACE.as_millis().to_string())
                .env("NO_COLOR", no_color.clone());
            let spec = with_sandbox_net(spec, plan);
            let spec = match &key {
                Some(key) => spec.arg("--worker-key-file").arg(key),
                None => spec,
            };
            start(sup, spec)?;
        }
    }
    let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "es" });
    let placement = match plan.mode {
        WorkerMode::Local => count(plan.procs, "Python process"),
        _ => format!(
            "{} x {}",
            count(plan.workers, "worker process"),
            count(plan.procs, "Python process")
        ),
    };
    let data = match &plan.data_dir {
        Some(d) => d.path().display().to_string(),
        None => "none (--ephemeral)".to_owned(),
    };
    eprintln!(
        "faas up: ready: gateway {} | redis {} | mode {} ({placement}) | python {} | data {data}",
        plan.gateway_url,
        redis_url,
        plan.mode.as_str(),
        plan.python.display()
    );
    Ok(redis_url)
}

/// The worker key of the dispatcher and workers `faas up` starts: `worker.key` in `dir` (the
/// data directory, so workers started elsewhere by hand can be given the same file), made
/// (mode 0600) if it is not there yet, kept if it is.
fn worker_key_file(dir: &Path) -> Result<PathBuf, UpError> {
    let path = dir.join("worker.key");
    if !path.exists() {
        super::keygen::write_key_file(&path, false).map_err(|source| UpError::Io {
            what: format!("cannot write the worker key {}", path.display()),
            source,
        })?;
    }
    Ok(path)
}

/// Waits for the console to quit (without one: for a stop signal); returns early with the
/// error of a daemon that could not be kept up.
async fn wait(
    plan: &Plan,
    sup: &Supervisor,
    fatal: &mut mpsc::UnboundedReceiver<Fatal>,
    interrupted: &CancellationToken,
    redis_url: &str,
) -> Result<(), UpError> {
    match &plan.console {
        Some(console) => run_console(console, plan, redis_url, fatal, interrupted).await,
        None => {
            eprintln!("faas up: showing the daemons' logs; Ctrl-C stops everything");
            tokio::select! {
                f = fatal.recv() => Err(fatal_error(sup, f)),
                () = interrupted.cancelled() => Ok(()),
            }
        }
    }
}

fn start(sup: &mut Supervisor, spec: DaemonSpec) -> Result<(), UpError> {
    let name = spec.name.clone();
    sup.start(spec).map(drop).map_err(|source| UpError::Io {
        what: format!("cannot open the log of {name}"),
        source,
    })
}

fn fatal_error(sup: &Supervisor, f: Option<Fatal>) -> UpError {
    match f {
        Some(f) => UpError::Daemon {
            tail: sup.tail(&f.name),
            name: f.name,
            message: f.message,
        },
        None => UpError::Start("the supervisor stopped unexpectedly".into()),
    }
}

/// Longest unix socket path the kernel takes (`sun_path` is 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Where the private Redis listens. A unix socket in the run directory (0700, the socket 0700
/// too): only this user reaches it, no TCP port is open at all, and each of a task's Redis
/// messages skips the loopback TCP stack (more tasks per second from Python on the 2-core
/// bench machine, see demo/bench/README.md). A TCP port on loopback only when the run
/// directory's path is too long for a socket.
enum RedisListen {
    Socket(PathBuf),
    Port(u16),
}

impl RedisListen {
    fn pick(plan: &Plan) -> Result<Self, UpError> {
        let socket = plan.run_dir.join("redis.sock");
        if socket.as_os_str().len() <= MAX_SOCKET_PATH {
            return Ok(Self::Socket(socket));
        }
        eprintln!(
            "faas up: note: {} is too long for a unix socket; redis listens on a loopback port",
            socket.display()
        );
        free_port().map(Self::Port).map_err(|source| UpError::Io {
            what: "cannot find a free port for redis".into(),
            source,
        })
    }

    fn url(&self) -> String {
        match self {
            Self::Socket(path) => format!("unix://{}", path.display()),
            Self::Port(port) => format!("redis://127.0.0.1:{port}"),
        }
    }

    fn args(&self, spec: DaemonSpec) -> DaemonSpec {
        match self {
            Self::Socket(path) => spec
                .arg("--port")
                .arg("0")
                .arg("--unixsocket")
                .arg(path)
                .arg("--unixsocketperm")
                .arg("700"),
            Self::Port(port) => spec
                .arg("--port")
                .arg(port.to_string())
                .arg("--bind")
                .arg("127.0.0.1"),
        }
    }
}

/// A daemon that runs Python children, with `faas up --sandbox-net` if it was given (the
/// daemon's own default, `none`, otherwise).
fn with_sandbox_net(spec: DaemonSpec, plan: &Plan) -> DaemonSpec {
    match &plan.sandbox_net {
        Some(net) => spec.arg("--sandbox-net").arg(net),
        None => spec,
    }
}

/// Starts the private redis-server and waits until it answers PING.
async fn start_redis(
    plan: &Plan,
    server: &Path,
    sup: &mut Supervisor,
    fatal: &mut mpsc::UnboundedReceiver<Fatal>,
) -> Result<String, UpError> {
    let listen = RedisListen::pick(plan)?;
    let url = listen.url();
    let spec = listen
        .args(DaemonSpec::new("redis", server.to_owned(), REDIS_STOP))
        // No RDB snapshots: the append-only file (when on) is the one copy of the data.
        .arg("--save")
        .arg("");
    let spec = match &plan.data_dir {
        Some(data) => {
            let dir = data.redis_dir();
            std::fs::create_dir_all(&dir).map_err(|source| UpError::Io {
                what: format!("cannot create {}", dir.display()),
                source,
            })?;
            // Every write reaches the file before Redis answers it and is fsynced within a
            // second: a killed Redis loses nothing, a crashed machine the last second.
            spec.arg("--appendonly")
                .arg("yes")
                .arg("--appendfsync")
                .arg("everysec")
                .arg("--dir")
                .arg(dir)
        }
        // A private, throw-away instance: nothing is persisted.
        None => spec
            .arg("--appendonly")
            .arg("no")
            .arg("--dir")
            .arg(&plan.run_dir),
    };
    start(sup, spec)?;
    let deadline = Instant::now() + REDIS_START;
    while Instant::now() < deadline {
        if let Ok(f) = fatal.try_recv() {
            return Err(fatal_error(sup, Some(f)));
        }
        if ping(&url).await {
            return Ok(url);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(UpError::Daemon {
        name: "redis".into(),
        message: format!("did not answer PING at {url} within {REDIS_START:?}"),
        tail: sup.tail("redis"),
    })
}

async fn wait_gateway(
    plan: &Plan,
    sup: &Supervisor,
    fatal: &mut mpsc::UnboundedReceiver<Fatal>,
) -> Result<(), UpError> {
    let client = GatewayClient::new(&plan.gateway_url, None);
    let deadline = Instant::now() + GATEWAY_START;
    while Instant::now() < deadline {
        if let Ok(f) = fatal.try_recv() {
            return Err(fatal_error(sup, Some(f)));
        }
        // Bounded: whatever holds the port (another program, if ours could not bind) may accept
        // the connection and never answer.
        let probe = tokio::time::timeout(Duration::from_secs(2), client.healthz()).await;
        if matches!(probe, Ok(Ok(()))) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(UpError::Daemon {
        name: "gateway".into(),
        message: format!(
            "did not answer {}/healthz within {GATEWAY_START:?}",
            plan.gateway_url
        ),
        tail: sup.tail("gateway"),
    })
}

/// Runs the console in the foreground until it quits; a daemon that cannot be kept up closes it.
async fn run_console(
    console: &Path,
    plan: &Plan,
    redis_url: &str,
    fatal: &mut mpsc::UnboundedReceiver<Fatal>,
    interrupted: &CancellationToken,
) -> Result<(), UpError> {
    // Not in a process group of its own: it must stay in the terminal's foreground group to read
    // keys. Settings go through the environment, which every client of the platform reads.
    let mut cmd = tokio::process::Command::new(console);
    cmd.env("FAAS_GATEWAY_URL", &plan.gateway_url)
        .env("FAAS_REDIS_URL", redis_url)
        .env("FAAS_CONSOLE_SUPERVISED", "true")
        .kill_on_drop(true);
    super::supervisor::die_with_parent(&mut cmd);
    match &plan.token {
        Some(t) => cmd.env("FAAS_TOKEN", t),
        None => cmd.env_remove("FAAS_TOKEN"),
    };
    let mut child = cmd.spawn().map_err(|source| UpError::Io {
        what: format!("cannot start {}", console.display()),
        source,
    })?;
    let outcome = tokio::select! {
        _ = child.wait() => return Ok(()),
        f = fatal.recv() => Some(f),
        () = interrupted.cancelled() => None,
    };
    // A stop signal or a fatal error: close the console first (SIGTERM lets it restore the
    // terminal) before anything else is printed.
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        if tokio::time::timeout(CONSOLE_STOP, child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
    }
    match outcome {
        Some(Some(f)) => Err(UpError::Daemon {
            name: f.name,
            message: f.message,
            tail: format!("(see {})", plan.run_dir.display()),
        }),
        _ => Ok(()),
    }
}

/// The directory of the running `faas` binary, where its sibling binaries are.
fn exe_dir() -> Result<PathBuf, UpError> {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .ok_or_else(|| UpError::Start("cannot tell where the faas binary is".into()))
}

/// `FAAS_PYTHON`/`--python` were not given: the project's virtualenv if there is one here.
fn default_python() -> PathBuf {
    let venv = Path::new(".venv/bin/python");
    match std::env::current_dir() {
        Ok(cwd) if venv.exists() => cwd.join(venv),
        _ => PathBuf::from("python3"),
    }
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path: OsString = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Whether the private Redis at `url` answers PING within a second (the readiness probe).
async fn ping(url: &str) -> bool {
    let timeout = Duration::from_secs(1);
    let attempt = async {
        let client = redis::Client::open(url).ok()?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let mut con = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .ok()?;
        let reply: String = redis::cmd("PING").query_async(&mut con).await.ok()?;
        Some(reply == "PONG")
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_on_path() {
        assert!(find_on_path("sh").is_some());
        assert!(find_on_path("surely-not-a-program-faas").is_none());
    }

    #[test]
    fn python_defaults_to_a_venv_here_or_python3() {
        let p = default_python();
        assert!(p.ends_with(".venv/bin/python") || p.as_os_str() == "python3");
    }
}
