//! What every daemon binary shares: logging set-up, the shutdown signal and the exit code for
//! bad configuration.

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// `EX_USAGE` from sysexits.h: the daemon was started with a configuration that cannot work.
pub const EXIT_USAGE: i32 = 64;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Logs go to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Tokio worker threads when `--threads` is not given: half the CPU cores, at least one.
///
/// The daemons are I/O-bound coordinators that share their machine with Redis, the other
/// daemons and the Python children. Measured on 2 cores with `faas bench`: one worker thread per
/// daemon instead of one per core ran 15 % more no-op tasks per second, because every wake-up
/// that hops between idle runtime threads is a futex call and a context switch, and those were
/// a third of the gateway's CPU time. Dedicated machines raise it with `--threads`.
pub fn default_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / 2).max(1)
}

/// The multi-threaded runtime of a daemon, with `threads` workers (default [`default_threads`]).
pub fn runtime(threads: Option<usize>) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.unwrap_or_else(default_threads).max(1))
        .enable_all()
        .build()
        .expect("cannot start the Tokio runtime")
}

/// Resolves on SIGINT or SIGTERM (systemd stops daemons with SIGTERM).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Prints a configuration error the way a person reads it and exits with [`EXIT_USAGE`].
pub fn usage_error(message: impl std::fmt::Display) -> ! {
    eprintln!("error: {message}");
    std::process::exit(EXIT_USAGE)
}
