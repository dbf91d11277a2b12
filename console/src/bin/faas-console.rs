//! `faas-console`: the interactive operator dashboard of the FaaS platform (see `faas_console::tui`).
//!
//! Exit codes: 0 when the operator quits, 64 for bad flags or environment (EX_USAGE), 1 when
//! there is no terminal or the terminal fails.

use std::process::ExitCode;

use clap::Parser;
use faas_console::tui::{self, Config};
use faas_protocol::keys::DEFAULT_PREFIX;

/// EX_USAGE: the command was used incorrectly.
const EX_USAGE: u8 = 64;

/// The interactive operator dashboard: live counts, workers, tasks and functions.
#[derive(Debug, Parser)]
#[command(name = "faas-console", version)]
struct Cli {
    /// Redis of the platform (task events, worker registry, counters).
    #[arg(long, env = "FAAS_REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis: String,
    /// The gateway's base URL (registering and invoking functions, task details).
    #[arg(
        long,
        env = "FAAS_GATEWAY_URL",
        default_value = "http://127.0.0.1:8000"
    )]
    gateway: String,
    /// Bearer token for the gateway, if it requires one.
    #[arg(long, env = "FAAS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Namespace prefix of the platform's Redis keys.
    #[arg(long, env = "FAAS_PREFIX", default_value = DEFAULT_PREFIX)]
    prefix: String,
    /// Set by `faas up`, whose platform stops when the console quits: `q` and Ctrl-C then ask.
    #[arg(long, env = "FAAS_CONSOLE_SUPERVISED", hide = true)]
    supervised: bool,
}

// One thread: the console's work is I/O and a little state, and under a flood of events one
// thread does it with fewer wake-ups and context switches than a pool handing events across.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            let _ = e.print();
            return ExitCode::from(EX_USAGE);
        }
        // --help and --version.
        Err(e) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    let config = Config {
        redis_url: cli.redis,
        gateway_url: cli.gateway,
        token: cli.token,
        prefix: cli.prefix,
        supervised: cli.supervised,
    };
    match tui::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("faas-console: {e}");
            ExitCode::from(if e.is_config() { EX_USAGE } else { 1 })
        }
    }
}
