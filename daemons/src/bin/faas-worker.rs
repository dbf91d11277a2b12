//! `faas-worker`: runs tasks for a push or pull dispatcher on a pool of Python children.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use faas_daemons::cli::{init_logging, shutdown_signal, usage_error, LogFormat};
use faas_daemons::worker::{self, WorkerConfig, WorkerError};
use faas_protocol::model::WorkerMode;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// The dispatcher sends tasks to this worker (DEALER).
    Push,
    /// This worker asks the dispatcher for tasks (REQ).
    Pull,
}

#[derive(Debug, Parser)]
#[command(version, about = "Runs FaaS tasks for a push or pull dispatcher")]
struct Args {
    /// push or pull: must match the dispatcher's -m.
    #[arg(value_enum)]
    mode: Mode,
    /// Python processes, i.e. tasks run at once.
    num_processes: usize,
    /// The dispatcher's worker socket, e.g. tcp://127.0.0.1:5555.
    dispatcher: String,
    /// Python interpreter for the pool; it needs `dill` for dill functions.
    #[arg(long, env = "FAAS_PYTHON", default_value = "python3")]
    python: PathBuf,
    /// This worker's name in the registry (default: HOST-PID-RANDOM).
    #[arg(long, env = "FAAS_WORKER_ID")]
    id: Option<String>,
    /// Heartbeat until the dispatcher says otherwise.
    #[arg(long, env = "FAAS_HEARTBEAT_MS", default_value_t = 1_000)]
    heartbeat_ms: u64,
    /// How long SIGTERM waits for running tasks before handing them back.
    #[arg(long, env = "FAAS_DRAIN_GRACE_MS", default_value_t = 30_000)]
    drain_grace_ms: u64,
    /// Tokio worker threads (default: half the CPU cores, at least one).
    #[arg(long, env = "FAAS_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    #[arg(long, env = "FAAS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

fn main() {
    let args = Args::parse();
    faas_daemons::cli::run_daemon(args.threads.map(usize::from), run(args))
}

async fn run(args: Args) {
    init_logging(args.log_format);
    faas_daemons::cli::raise_nofile_limit();
    if args.num_processes == 0 {
        usage_error("num_processes must be at least 1");
    }
    if !args.dispatcher.starts_with("tcp://") {
        usage_error(format_args!(
            "dispatcher {:?} is not a tcp://HOST:PORT endpoint",
            args.dispatcher
        ));
    }
    if args.heartbeat_ms == 0 {
        usage_error("--heartbeat-ms must be positive");
    }
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into());
    let id = args.id.clone().unwrap_or_else(|| {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        format!("{host}-{}-{}", std::process::id(), &tag[..6])
    });
    let cfg = WorkerConfig {
        mode: match args.mode {
            Mode::Push => WorkerMode::Push,
            Mode::Pull => WorkerMode::Pull,
        },
        endpoint: args.dispatcher.clone(),
        id: id.clone(),
        procs: args.num_processes,
        python: args.python.clone(),
        heartbeat: Duration::from_millis(args.heartbeat_ms),
        drain_grace: Duration::from_millis(args.drain_grace_ms),
    };
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        faas_daemons::notify::notify_stopping();
        trigger.cancel();
    });
    info!(%id, mode = ?args.mode, procs = args.num_processes, dispatcher = %args.dispatcher, "worker starting");
    match worker::run(cfg, shutdown).await {
        Ok(()) => info!("worker stopped"),
        Err(WorkerError::Executor(e)) => usage_error(e),
        Err(e) => {
            error!(error = %e, "worker stopped");
            std::process::exit(1);
        }
    }
}
