//! `faas-worker`: runs tasks for a push or pull dispatcher on a pool of Python children.
//! With `--worker-key-file` the channel to the dispatcher is authenticated and encrypted.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use faas_daemons::cli::{init_logging, shutdown_signal, usage_error, LogFormat};
use faas_daemons::executor::ExecutorArgs;
use faas_daemons::worker::{self, WorkerConfig, WorkerError};
use faas_protocol::model::WorkerMode;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

#[derive(Debug, Parser)]
#[command(version, about = "Runs FaaS tasks for a push or pull dispatcher")]
struct Args {
    /// push or pull: must match the dispatcher's -m.
    #[arg(value_parser = WorkerMode::remote)]
    mode: WorkerMode,
    /// The dispatcher's worker socket, e.g. tcp://127.0.0.1:5555. The older form
    /// `faas-worker MODE PROCS DISPATCHER` (the process count before it) still works.
    #[arg(value_name = "DISPATCHER", num_args = 1..=2, required = true)]
    target: Vec<String>,
    /// Python processes, i.e. tasks run at once (default: one per CPU core).
    /// `FAAS_WORKER_PROCS` is its old environment name and still works.
    #[arg(long, env = "FAAS_PROCS")]
    procs: Option<usize>,
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
    /// The shared worker key (`faas keygen`): authenticates and encrypts the channel to the
    /// dispatcher. Required when the dispatcher has one.
    #[arg(long, env = "FAAS_WORKER_KEY_FILE", value_name = "PATH")]
    worker_key_file: Option<PathBuf>,
    /// Tokio worker threads (default: half the CPU cores, at least one).
    #[arg(long, env = "FAAS_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    #[arg(long, env = "FAAS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Sandbox and limits of the children.
    #[command(flatten)]
    executor: ExecutorArgs,
}

fn main() {
    let args = Args::parse();
    faas_daemons::cli::run_daemon(args.threads.map(usize::from), run(args))
}

async fn run(args: Args) {
    init_logging(args.log_format);
    faas_daemons::cli::raise_nofile_limit();
    let (procs, dispatcher) = procs_and_dispatcher(&args);
    if procs == 0 {
        usage_error("--procs must be at least 1");
    }
    if !dispatcher.starts_with("tcp://") {
        usage_error(format_args!(
            "dispatcher {dispatcher:?} is not a tcp://HOST:PORT endpoint"
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
    let key = match &args.worker_key_file {
        Some(path) => match faas_daemons::channel::ChannelKey::load(path) {
            Ok(k) => Some(k),
            Err(e) => usage_error(e),
        },
        None => None,
    };
    if key.is_none() && !faas_daemons::cli::is_loopback_endpoint(&dispatcher) {
        warn!(event = "insecure_worker_channel", endpoint = %dispatcher, "no --worker-key-file: tasks and results cross the network in plaintext, and this worker will be refused by a dispatcher that has a key");
    }
    let cfg = WorkerConfig {
        mode: args.mode,
        endpoint: dispatcher.clone(),
        id: id.clone(),
        procs,
        python: args.python.clone(),
        heartbeat: Duration::from_millis(args.heartbeat_ms),
        drain_grace: Duration::from_millis(args.drain_grace_ms),
        sandbox: args.executor.sandbox_config(),
        max_children: args.executor.max_children,
        max_idle_memory: args.executor.max_idle_memory(),
        key,
    };
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        faas_daemons::notify::notify_stopping();
        trigger.cancel();
    });
    info!(event = "starting", worker = %id, mode = %args.mode, procs, endpoint = %dispatcher, "worker starting");
    match worker::run(cfg, shutdown).await {
        Ok(()) => info!(event = "stopped", "worker stopped"),
        Err(WorkerError::Executor(e)) => usage_error(e),
        Err(e) => {
            error!(event = "stopped", error = %e, "worker stopped");
            std::process::exit(1);
        }
    }
}

/// The process count and the endpoint, from `MODE DISPATCHER [--procs N]` or the older
/// `MODE N DISPATCHER`; then `FAAS_WORKER_PROCS` (the old environment name); then one per core.
fn procs_and_dispatcher(args: &Args) -> (usize, String) {
    let parse = |what: &str, value: &str| -> usize {
        value.trim().parse().unwrap_or_else(|_| {
            usage_error(format_args!(
                "{what} {value:?} is not a number of processes"
            ))
        })
    };
    match args.target.as_slice() {
        [procs, dispatcher] => {
            let n = parse("PROCS", procs);
            if args.procs.is_some_and(|p| p != n) {
                usage_error(format_args!(
                    "two process counts: {n} before the dispatcher and --procs {} (give one)",
                    args.procs.unwrap_or_default()
                ));
            }
            (n, dispatcher.clone())
        }
        [dispatcher] => {
            let n = args
                .procs
                .or_else(|| {
                    std::env::var("FAAS_WORKER_PROCS")
                        .ok()
                        .map(|v| parse("FAAS_WORKER_PROCS", &v))
                })
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
            (n, dispatcher.clone())
        }
        _ => usage_error("expected MODE DISPATCHER (or MODE PROCS DISPATCHER)"),
    }
}
