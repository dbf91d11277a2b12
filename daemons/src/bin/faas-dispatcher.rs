//! `faas-dispatcher`: takes tasks from the Redis queue and runs them (local pool or workers).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use faas_daemons::channel::ChannelKey;
use faas_daemons::cli::{init_logging, shutdown_signal, usage_error, LogFormat};
use faas_daemons::dispatcher::{
    self, DispatcherConfig, LocalExecutor, RemoteConfig, RemoteExecutor,
};
use faas_daemons::executor::{ExecutorArgs, Pool, PoolConfig};
use faas_daemons::store::Store;
use faas_daemons::{metrics, notify};
use faas_protocol::model::WorkerMode;
use faas_protocol::Keys;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

#[derive(Debug, Parser)]
#[command(version, about = "Takes tasks from the FaaS queue and runs them")]
struct Args {
    /// Where tasks run.
    #[arg(short = 'm', long, value_enum, env = "FAAS_MODE", default_value_t = WorkerMode::Local)]
    mode: WorkerMode,
    /// Port that push/pull workers connect to.
    #[arg(short = 'p', long, env = "FAAS_PORT", default_value_t = 5555)]
    port: u16,
    /// Python processes in local mode (default: one per CPU core). `-w`/`--workers` and
    /// `FAAS_WORKERS` are its old names and still work.
    #[arg(long, alias = "workers", short_alias = 'w', env = "FAAS_PROCS")]
    procs: Option<usize>,
    #[arg(long, env = "FAAS_REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis: String,
    #[arg(long, env = "FAAS_PREFIX", default_value = faas_protocol::keys::DEFAULT_PREFIX)]
    prefix: String,
    /// Longest wait for one Redis command, in milliseconds (blocking queue reads excepted).
    #[arg(long, env = "FAAS_REDIS_TIMEOUT_MS", default_value_t = 500)]
    redis_timeout_ms: u64,
    /// Python interpreter for the local pool; it needs `dill` for dill functions.
    #[arg(long, env = "FAAS_PYTHON", default_value = "python3")]
    python: PathBuf,
    /// Timeout of a task that does not set `timeout_ms`.
    #[arg(long, env = "FAAS_DEFAULT_TIMEOUT_MS", default_value_t = 300_000)]
    default_timeout_ms: u64,
    /// How long finished tasks' records and results are kept, in seconds (0 = forever).
    #[arg(long, env = "FAAS_RESULT_TTL_SECS", default_value_t = 86_400)]
    result_ttl_secs: u64,
    /// Queue entries idle this long belong to a dead dispatcher and are re-queued.
    #[arg(long, env = "FAAS_RECLAIM_AFTER_MS", default_value_t = 30_000)]
    reclaim_after_ms: u64,
    /// How long SIGTERM waits for running tasks before re-queueing them.
    #[arg(long, env = "FAAS_DRAIN_GRACE_MS", default_value_t = 30_000)]
    drain_grace_ms: u64,
    /// A local slot whose last task ran under this many milliseconds holds the next tasks
    /// ahead, so that its child waits for no Redis round trip between tasks (0 = never).
    #[arg(long, env = "FAAS_HOLD_BELOW_MS", default_value_t = 2)]
    hold_below_ms: u64,
    /// A held task waiting longer than this behind a run goes back to the queue.
    #[arg(long, env = "FAAS_HOLD_AT_MOST_MS", default_value_t = 20)]
    hold_at_most_ms: u64,
    /// How many tasks a local slot of short runs holds ahead, at most (1 to 16).
    #[arg(long, env = "FAAS_HOLD_AHEAD", default_value_t = 8,
          value_parser = clap::value_parser!(u8).range(1..=16))]
    hold_ahead: u8,
    /// Address the worker socket binds to (push/pull). Loopback unless told otherwise.
    #[arg(long, env = "FAAS_BIND", default_value = "127.0.0.1")]
    bind: String,
    /// The shared worker key (`faas keygen PATH`): workers must prove they hold it, and every
    /// frame to and from them is encrypted. Required to bind a non-loopback address.
    #[arg(long, env = "FAAS_WORKER_KEY_FILE", value_name = "PATH")]
    worker_key_file: Option<PathBuf>,
    /// Bind a non-loopback address without a worker key: anyone who reaches the port can read
    /// every task and forge results. For trusted, isolated networks only.
    #[arg(long, env = "FAAS_INSECURE_NO_WORKER_KEY")]
    insecure_no_worker_key: bool,
    /// Push/pull workers beat this often; three missed beats and a worker is lost.
    #[arg(long, env = "FAAS_HEARTBEAT_MS", default_value_t = 1_000)]
    heartbeat_ms: u64,
    /// How long a pull worker's request for work is held before "no work".
    #[arg(long, env = "FAAS_LONG_POLL_MS", default_value_t = 2_000)]
    long_poll_ms: u64,
    /// Consumer name in the queue group (default: dispatcher-HOST-PID).
    #[arg(long, env = "FAAS_DISPATCHER_NAME")]
    name: Option<String>,
    /// Serve Prometheus metrics on `http://ADDR/metrics` (e.g. 127.0.0.1:9101). Off by default.
    #[arg(long, env = "FAAS_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<String>,
    /// Tokio worker threads (default: half the CPU cores, at least one).
    #[arg(long, env = "FAAS_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    #[arg(long, env = "FAAS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Sandbox and limits of the local pool's children.
    #[command(flatten)]
    executor: ExecutorArgs,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    faas_daemons::cli::run_daemon(args.threads.map(usize::from), run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    init_logging(args.log_format);
    faas_daemons::cli::raise_nofile_limit();
    let procs = match args.procs {
        Some(n) => Some(n),
        None => legacy_procs_env(),
    };
    if procs == Some(0) {
        usage_error("--procs must be at least 1");
    }
    if args.default_timeout_ms == 0 || args.reclaim_after_ms == 0 {
        usage_error("--default-timeout-ms and --reclaim-after-ms must be positive");
    }
    if redis::Client::open(args.redis.as_str()).is_err() {
        usage_error(format_args!(
            "--redis {:?} is not a redis:// URL",
            args.redis
        ));
    }
    let host = hostname();
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("dispatcher-{host}-{}", std::process::id()));
    let cfg = DispatcherConfig {
        name: name.clone(),
        default_timeout: Duration::from_millis(args.default_timeout_ms),
        retention: Duration::from_secs(args.result_ttl_secs),
        reclaim_after: Duration::from_millis(args.reclaim_after_ms),
        drain_grace: Duration::from_millis(args.drain_grace_ms),
        hold_below: Duration::from_millis(args.hold_below_ms),
        hold_at_most: Duration::from_millis(args.hold_at_most_ms),
        hold_ahead: args.hold_ahead.into(),
        ..DispatcherConfig::default()
    };
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        notify::notify_stopping();
        trigger.cancel();
    });
    if let Some(addr) = &args.metrics_listen {
        if let Err(e) = metrics::serve(addr, shutdown.clone()).await {
            usage_error(e);
        }
        metrics::init_dispatcher();
    }
    match args.mode {
        WorkerMode::Local => {
            let size = procs
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
            let pool = match Pool::start(PoolConfig {
                python: args.python.clone(),
                size,
                kill_grace: Duration::from_secs(2),
                sandbox: args.executor.sandbox_config(),
                max_children: args.executor.max_children,
                max_idle_memory: args.executor.max_idle_memory(),
            })
            .await
            {
                Ok(p) => p,
                Err(e) => usage_error(e),
            };
            let timeout = Duration::from_millis(args.redis_timeout_ms.max(1));
            let keys = Keys::new(args.prefix);
            // A stop request while Redis is still away stops the dispatcher all the same.
            let Some(store) = Store::connect(&args.redis, keys, timeout, &shutdown).await? else {
                pool.shutdown().await;
                info!(
                    event = "stopped",
                    "dispatcher stopped before redis answered"
                );
                return Ok(());
            };
            let executor = Arc::new(LocalExecutor::new(
                pool.clone(),
                format!("local-{host}-{}", std::process::id()),
                name,
            ));
            dispatcher::run(store, executor, cfg, shutdown).await?;
            pool.shutdown().await;
        }
        WorkerMode::Push | WorkerMode::Pull => {
            if args.heartbeat_ms == 0 || args.long_poll_ms == 0 {
                usage_error("--heartbeat-ms and --long-poll-ms must be positive");
            }
            let key = worker_key(&args);
            let timeout = Duration::from_millis(args.redis_timeout_ms.max(1));
            let keys = Keys::new(args.prefix);
            let Some(store) = Store::connect(&args.redis, keys, timeout, &shutdown).await? else {
                info!(
                    event = "stopped",
                    "dispatcher stopped before redis answered"
                );
                return Ok(());
            };
            let remote = RemoteConfig {
                mode: args.mode,
                bind: format!("tcp://{}:{}", args.bind, args.port),
                dispatcher: name,
                heartbeat: Duration::from_millis(args.heartbeat_ms),
                long_poll: Duration::from_millis(args.long_poll_ms),
                deadline_grace: Duration::from_secs(10),
                retention: cfg.retention,
                key,
            };
            let bind = remote.bind.clone();
            // The worker socket outlives the dispatch loop: while the loop drains, results
            // of running tasks still have to come in.
            let sockets = CancellationToken::new();
            let executor = match RemoteExecutor::start(remote, store.clone(), sockets.clone()).await
            {
                Ok(e) => Arc::new(e),
                Err(e) => usage_error(format_args!("cannot bind {bind}: {e}")),
            };
            dispatcher::run(store, executor, cfg, shutdown).await?;
            sockets.cancel();
        }
    }
    info!(event = "stopped", "dispatcher stopped");
    Ok(())
}

/// The worker key, or none where that is allowed: on loopback, or with the insecure flag
/// (which warns at every start). Exits 64 with how to make a key otherwise.
fn worker_key(args: &Args) -> Option<ChannelKey> {
    if let Some(path) = &args.worker_key_file {
        return match ChannelKey::load(path) {
            Ok(k) => {
                info!(event = "worker_channel_sealed", path = %path.display(), "worker channel: authenticated and encrypted (Noise, worker key)");
                Some(k)
            }
            Err(e) => usage_error(e),
        };
    }
    let loopback = faas_daemons::cli::is_loopback_host(&args.bind);
    if args.insecure_no_worker_key {
        warn!(event = "insecure_worker_channel", bind = %args.bind, "--insecure-no-worker-key: the worker channel is plaintext and unauthenticated; anyone who reaches the port can read tasks and forge results");
    } else if !loopback {
        usage_error(format_args!(
            "--bind {} is not a loopback address and no worker key is set: anyone who reaches the port could read every task and forge results.\n\
             Make a key with `faas keygen /etc/faas/worker.key`, copy it to each worker machine (mode 0600), and start the dispatcher and every worker with --worker-key-file (or FAAS_WORKER_KEY_FILE).\n\
             (--insecure-no-worker-key overrides this, for isolated networks only.)",
            args.bind
        ));
    }
    None
}

/// `FAAS_WORKERS`, the old name of `FAAS_PROCS`, read when neither `--procs` nor `FAAS_PROCS`
/// is given. Not a number is a usage error, as it was.
fn legacy_procs_env() -> Option<usize> {
    let value = std::env::var("FAAS_WORKERS").ok()?;
    match value.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => usage_error(format_args!(
            "FAAS_WORKERS (the old name of FAAS_PROCS) {value:?} is not a number"
        )),
    }
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}
