//! What every daemon binary shares: logging set-up, the open-file limit, the shutdown signal
//! and the exit code for bad configuration.

use std::future::Future;

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

/// Logs go to stderr, filtered by `RUST_LOG` (default `info`). With [`LogFormat::Json`] each line
/// is one JSON object whose `fields.event` is the stable name listed in the crate docs' log
/// events table.
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

/// Most open files a daemon asks for when its hard limit is unlimited.
const NOFILE_CEILING: u64 = 1 << 20;

/// Raises the soft open-file limit to the hard limit, as Go's runtime does at start, and logs
/// the result; returns the soft limit now in effect. A shell's default soft limit of 1,024
/// would otherwise cap the gateway's connections and a dispatcher's worker sockets long before
/// the machine's real limit (systemd units set `LimitNOFILE` for the hard one). Call it after
/// [`init_logging`].
pub fn raise_nofile_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(e) => {
            tracing::warn!(event = "nofile_unreadable", error = %e, "cannot read the open-file limit");
            return 1024;
        }
    };
    let target = hard.min(NOFILE_CEILING);
    if soft >= target {
        tracing::info!(event = "nofile_limit", limit = soft, "open-file limit");
        return soft;
    }
    match setrlimit(Resource::RLIMIT_NOFILE, target, hard) {
        Ok(()) => {
            tracing::info!(
                event = "nofile_raised",
                limit = target,
                was = soft,
                "raised the open-file limit"
            );
            target
        }
        Err(e) => {
            tracing::warn!(event = "nofile_raise_failed", limit = soft, error = %e, "cannot raise the open-file limit");
            soft
        }
    }
}

/// Tokio worker threads when `--threads` is not given: half the CPU cores, at least one.
///
/// The daemons are I/O-bound coordinators that share their machine with Redis, the other
/// daemons and the Python children. On 2 cores, `faas bench` ran 15 % more no-op tasks per
/// second with one runtime thread per daemon than with one per core: every wake-up that hops
/// between runtime threads is a futex call and a context switch, and those were a third of
/// each daemon's CPU time in `perf`. Dedicated machines raise it with `--threads`.
pub fn default_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / 2).max(1)
}

/// Runs a daemon's main future on a runtime of `threads` threads (default [`default_threads`]).
///
/// One thread is a current-thread runtime: the main loop and every task it spawns share it, and
/// nothing is ever woken across threads. With more, the main future is spawned like any task:
/// driven by `block_on` it would stay on the main thread, apart from the workers, and each
/// message between it and its tasks would cross threads (the first version did that; `perf`
/// showed the push worker parked on a condition variable for every task).
pub fn run_daemon<F>(threads: Option<usize>, main: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    use tokio::runtime::Builder;
    let threads = threads.unwrap_or_else(default_threads).max(1);
    let build = |b: &mut Builder| {
        b.enable_all()
            .build()
            .expect("cannot start the Tokio runtime")
    };
    if threads == 1 {
        return build(&mut Builder::new_current_thread()).block_on(main);
    }
    let runtime = build(Builder::new_multi_thread().worker_threads(threads));
    match runtime.block_on(runtime.spawn(main)) {
        Ok(out) => out,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
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

/// Whether a bind address or host names this machine's loopback only (`127.0.0.0/8`, `::1`,
/// `localhost`). Anything else, names included, counts as reachable from the network.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// [`is_loopback_host`] for a `tcp://HOST:PORT` endpoint.
pub fn is_loopback_endpoint(endpoint: &str) -> bool {
    let rest = endpoint.trim_start_matches("tcp://");
    let host = rest.rsplit_once(':').map_or(rest, |(h, _)| h);
    is_loopback_host(host)
}

/// Prints a configuration error the way a person reads it and exits with [`EXIT_USAGE`].
pub fn usage_error(message: impl std::fmt::Display) -> ! {
    eprintln!("error: {message}");
    std::process::exit(EXIT_USAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_told_apart_from_reachable_addresses() {
        for h in ["127.0.0.1", "127.3.2.1", "::1", "[::1]", "localhost"] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in ["0.0.0.0", "10.1.2.3", "::", "example.org", ""] {
            assert!(!is_loopback_host(h), "{h}");
        }
        assert!(is_loopback_endpoint("tcp://127.0.0.1:5555"));
        assert!(is_loopback_endpoint("tcp://[::1]:5555"));
        assert!(!is_loopback_endpoint("tcp://10.0.0.2:5555"));
    }
}
