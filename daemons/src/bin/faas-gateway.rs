//! `faas-gateway`: the HTTP API of the platform.

use std::time::Duration;

use clap::Parser;
use faas_daemons::cli::{init_logging, shutdown_signal, usage_error, LogFormat};
use faas_daemons::gateway::{self, AppState, EdgeConfig, EventsConfig, GatewayConfig};
use faas_daemons::store::Store;
use faas_daemons::{metrics, notify};
use faas_protocol::Keys;
use tokio_util::sync::CancellationToken;
use tracing::info;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "HTTP API of the FaaS platform: register functions, execute them, read results"
)]
struct Args {
    /// Address to serve HTTP on. Loopback by default: expose it on purpose.
    #[arg(long, env = "FAAS_LISTEN", default_value = "127.0.0.1:8000")]
    listen: String,
    /// Redis holding functions, tasks and the queue.
    #[arg(long, env = "FAAS_REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis: String,
    /// Longest wait for one Redis command, in milliseconds; with Redis away requests fail
    /// with 503 after it (and at once after three such failures, see the store's breaker).
    #[arg(long, env = "FAAS_REDIS_TIMEOUT_MS", default_value_t = 500)]
    redis_timeout_ms: u64,
    /// Namespace prefix of every Redis key.
    #[arg(long, env = "FAAS_PREFIX", default_value = faas_protocol::keys::DEFAULT_PREFIX)]
    prefix: String,
    /// Largest request body in bytes; larger ones get 413.
    #[arg(long, env = "FAAS_BODY_LIMIT", default_value_t = 10 * 1024 * 1024)]
    body_limit: usize,
    /// Longest `?wait=` honoured on /result, in milliseconds.
    #[arg(long, env = "FAAS_MAX_WAIT_MS", default_value_t = 300_000)]
    max_wait_ms: u64,
    /// Attempts an execution gets when infrastructure fails under it, unless it says.
    #[arg(long, env = "FAAS_MAX_ATTEMPTS", default_value_t = 3)]
    max_attempts: u32,
    /// How long the records of tasks this gateway ends (cancel, purge, function deletion) are
    /// kept, in seconds (0 = forever); the dispatchers' flag of the same name and variable.
    #[arg(long, env = "FAAS_RESULT_TTL_SECS", default_value_t = 86_400)]
    result_ttl_secs: u64,
    /// Require `Authorization: Bearer TOKEN` on every route but /healthz.
    #[arg(long, env = "FAAS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Serve a non-loopback address without a token: anyone who can connect can run code and
    /// read every task. For trusted, isolated networks only.
    #[arg(long, env = "FAAS_INSECURE_NO_TOKEN")]
    insecure_no_token: bool,
    /// How long in-flight requests may run on after SIGTERM, in milliseconds.
    #[arg(long, env = "FAAS_SHUTDOWN_GRACE_MS", default_value_t = 5_000)]
    shutdown_grace_ms: u64,
    /// Most open client connections; at the cap new ones wait in the listen backlog. Kept
    /// below the open-file limit.
    #[arg(long, env = "FAAS_MAX_CONNECTIONS", default_value_t = 10_000)]
    max_connections: usize,
    /// A request's head must arrive within this many milliseconds of the connection waiting
    /// for it; also how long an idle keep-alive connection stays open.
    #[arg(long, env = "FAAS_HEADER_TIMEOUT_MS", default_value_t = 10_000)]
    header_timeout_ms: u64,
    /// A request's body must arrive within this many milliseconds (408 otherwise).
    #[arg(long, env = "FAAS_BODY_TIMEOUT_MS", default_value_t = 30_000)]
    body_timeout_ms: u64,
    /// Python that syntax-checks source functions at registration (compiled, never run).
    #[arg(long, env = "FAAS_PYTHON", default_value = "python3")]
    python: std::path::PathBuf,
    /// Register source functions without checking their syntax (errors then show at invocation).
    #[arg(long, env = "FAAS_NO_SYNTAX_CHECK")]
    no_syntax_check: bool,
    /// /events: how many events a stream may fall behind before it is disconnected.
    #[arg(long, env = "FAAS_EVENTS_BUFFER", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    events_buffer: u32,
    /// /events: how many recent events are kept for `Last-Event-ID` resumes (also at most 16 MiB).
    #[arg(long, env = "FAAS_EVENTS_BACKLOG", default_value_t = 10_000)]
    events_backlog: usize,
    /// Tokio worker threads (default: half the CPU cores, at least one).
    #[arg(long, env = "FAAS_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    #[arg(long, env = "FAAS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// File descriptors kept free of client connections.
const FD_RESERVE: u64 = 128;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    faas_daemons::cli::run_daemon(args.threads.map(usize::from), run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let nofile = faas_daemons::cli::raise_nofile_limit();
    if args.max_attempts == 0 {
        usage_error("--max-attempts must be at least 1");
    }
    if args.max_connections == 0 || args.header_timeout_ms == 0 || args.body_timeout_ms == 0 {
        usage_error(
            "--max-connections, --header-timeout-ms and --body-timeout-ms must be positive",
        );
    }
    // Room for Redis connections, logs and the listener beside the clients' sockets.
    let fits = usize::try_from(nofile.saturating_sub(FD_RESERVE))
        .unwrap_or(usize::MAX)
        .max(1);
    let max_connections = if args.max_connections > fits {
        tracing::warn!(
            event = "max_connections_lowered",
            asked = args.max_connections,
            max_connections = fits,
            open_file_limit = nofile,
            "--max-connections lowered to fit the open-file limit"
        );
        fits
    } else {
        args.max_connections
    };
    if redis::Client::open(args.redis.as_str()).is_err() {
        usage_error(format_args!(
            "--redis {:?} is not a redis:// URL",
            args.redis
        ));
    }
    let token = args.token.filter(|t| !t.is_empty());
    if let Some(t) = &token {
        // Anything else cannot travel in an HTTP header unchanged.
        if !t.bytes().all(|b| b.is_ascii_graphic()) {
            usage_error("--token/FAAS_TOKEN must be printable ASCII without spaces");
        }
    }
    let listener = match tokio::net::TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(e) => usage_error(format_args!("cannot listen on {}: {e}", args.listen)),
    };
    // Beyond loopback without a token is refused unless asked for by name, as the dispatcher
    // refuses a worker channel without a key (it used to start with a warning only).
    let local = listener.local_addr()?;
    if token.is_none() && !local.ip().is_loopback() {
        if !args.insecure_no_token {
            usage_error(format_args!(
                "--listen {local} is not a loopback address and no token is set: anyone who can \
                 connect could run code, and read and cancel every task.\n\
                 Set one with --token (or FAAS_TOKEN; e.g. `openssl rand -hex 32`), and give it to \
                 the clients (Authorization: Bearer, FAAS_TOKEN for faas and the SDK).\n\
                 (--insecure-no-token overrides this, for isolated networks only.)"
            ));
        }
        tracing::warn!(
            event = "insecure_no_token",
            "--insecure-no-token: serving beyond loopback without a token; anyone who can \
             connect can run code and read every task"
        );
    }
    let handle = match metrics::install() {
        Ok(h) => h,
        Err(e) => usage_error(e),
    };
    metrics::init_gateway();
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        notify::notify_stopping();
        trigger.cancel();
    });
    // Redis may come up after us; a stop request while waiting for it is still a clean stop.
    let timeout = Duration::from_millis(args.redis_timeout_ms.max(1));
    let Some(store) =
        Store::connect(&args.redis, Keys::new(args.prefix), timeout, &shutdown).await?
    else {
        return Ok(());
    };
    let config = GatewayConfig {
        body_limit: args.body_limit,
        max_wait: Duration::from_millis(args.max_wait_ms),
        default_max_attempts: args.max_attempts,
        shutdown_grace: Duration::from_millis(args.shutdown_grace_ms),
        retention: Duration::from_secs(args.result_ttl_secs),
        // Long polls may hold half the connections; the rest stay for everything else.
        max_waits: (max_connections / 2).max(1),
        edge: EdgeConfig {
            max_connections,
            header_timeout: Duration::from_millis(args.header_timeout_ms),
            body_timeout: Duration::from_millis(args.body_timeout_ms),
        },
        python: (!args.no_syntax_check).then_some(args.python),
        // Event streams, like long polls, may hold at most half the connections.
        events: EventsConfig {
            buffer: args.events_buffer as usize,
            backlog: args.events_backlog,
            max_subscribers: (max_connections / 2).max(1),
            ..EventsConfig::default()
        },
    };
    let state = AppState::new(store, config)
        .with_token(token)
        .with_metrics(handle);
    // The listener is bound and Redis connected: requests are served from here on.
    notify::notify_ready();
    gateway::run(listener, state, shutdown).await?;
    info!(event = "stopped", "gateway stopped");
    Ok(())
}
