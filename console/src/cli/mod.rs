//! The `faas` command line: `faas up` runs the whole platform on this machine; the other
//! subcommands speak the gateway's HTTP API through [`crate::client::GatewayClient`].
//!
//! Exit codes (also in `faas --help`): 0 success, 1 an API error or a failed task, 2 bad usage,
//! 3 the task has not finished yet, 69 the gateway cannot be reached.

mod api;
pub mod data_dir;
mod keygen;
mod ops;
mod output;
mod supervisor;
mod up;
mod watch;

use clap::{Args, Parser, Subcommand};

use crate::client::{ClientError, GatewayClient};

pub use up::{UpArgs, UpError};

pub const EXIT_OK: i32 = 0;
/// An API error, a failed task, or `faas up` that could not keep the platform running.
pub const EXIT_FAILURE: i32 = 1;
/// Bad usage; clap exits with 2 too.
pub const EXIT_USAGE: i32 = 2;
/// `result` of a task that is still queued or running.
pub const EXIT_NOT_FINISHED: i32 = 3;
/// `EX_UNAVAILABLE` from sysexits.h: the gateway cannot be reached.
pub const EXIT_UNAVAILABLE: i32 = 69;

pub const DEFAULT_GATEWAY: &str = "http://127.0.0.1:8000";

const EXIT_CODES: &str = "\
Exit codes: 0 success, 1 API error or failed task, 2 bad usage, 3 task not finished yet, \
69 gateway unreachable.";

#[derive(Debug, Parser)]
#[command(
    name = "faas",
    version,
    about = "Run the FaaS platform and use it from the command line",
    after_help = EXIT_CODES
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Base URL of the gateway.
    #[arg(long, global = true, env = "FAAS_GATEWAY_URL", default_value = DEFAULT_GATEWAY)]
    pub gateway: String,
    /// Bearer token of the gateway (`faas up` also gives it to the gateway it starts).
    #[arg(long, global = true, env = "FAAS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the gateway's JSON replies, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the whole platform on this machine (Redis, gateway, dispatcher, workers).
    Up(UpArgs),
    /// Register a function from a Python source file; prints its id.
    Register(api::RegisterArgs),
    /// Execute a function with JSON arguments; prints the task id (or the result with --wait).
    Invoke(api::InvokeArgs),
    /// Print a task's status.
    Status(api::TaskArg),
    /// Print a task's result (exit 1 if it failed, 3 if it has not finished).
    Result(api::ResultArgs),
    /// List the registered functions.
    Functions,
    /// List the workers the dispatchers have registered.
    Workers,
    /// Print a task's full record: timings, attempts, worker, error and log.
    Task(api::TaskArg),
    /// Measure throughput and latency of a running platform (see demo/bench/README.md).
    Bench(crate::bench::BenchArgs),
    /// Search tasks, newest first (filters, --limit, paging with --cursor).
    Tasks(ops::TasksArgs),
    /// Cancel a queued or running task (it ends FAILED, `Cancelled`).
    Cancel(api::TaskArg),
    /// Run a finished task again with the same function and arguments; prints the new task id.
    Retry(api::TaskArg),
    /// Cancel every queued task (needs --yes).
    Purge(ops::PurgeArgs),
    /// Print a function's metadata and statistics.
    Function(ops::FunctionArg),
    /// Delete a function: later executions are refused, its queued tasks fail.
    Rm(ops::FunctionArg),
    /// Drain a worker: it takes no new task, finishes its running ones and leaves.
    Drain(ops::WorkerArg),
    /// Follow the gateway's live events, one line each (reconnects and resumes by itself).
    Watch(watch::WatchArgs),
    /// Write a new worker key file (mode 0600) for faas-dispatcher and faas-worker.
    Keygen(keygen::KeygenArgs),
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{}", describe_client_error(.0))]
    Client(#[from] ClientError),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Up(#[from] UpError),
    #[error("{0:#}")]
    Other(#[from] anyhow::Error),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Client(ClientError::Unreachable { .. }) => EXIT_UNAVAILABLE,
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Up(e) => e.exit_code(),
            CliError::Client(_) | CliError::Input(_) | CliError::Other(_) => EXIT_FAILURE,
        }
    }
}

/// The client's message plus what usually fixes it.
fn describe_client_error(e: &ClientError) -> String {
    match e {
        ClientError::Unreachable { url, source } => {
            // The innermost cause ("Connection refused") is the useful part of reqwest's chain.
            let mut cause: &dyn std::error::Error = source;
            while let Some(inner) = cause.source() {
                cause = inner;
            }
            format!("cannot reach the gateway at {url}: {cause}\n(is it running? `faas up` starts one; --gateway or FAAS_GATEWAY_URL point elsewhere)")
        }
        ClientError::Api {
            status, message, ..
        } if status.as_u16() == 401 => {
            format!("{message} (HTTP 401): pass the gateway's token with --token or FAAS_TOKEN")
        }
        other => other.to_string(),
    }
}

/// Runs one command and returns the process exit code; errors are printed on stderr.
pub async fn run(cli: Cli) -> i32 {
    match dispatch(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

async fn dispatch(cli: Cli) -> Result<i32, CliError> {
    let GlobalArgs {
        gateway,
        token,
        json,
    } = cli.global;
    let token = token.filter(|t| !t.is_empty());
    let command = match cli.command {
        Command::Up(args) => {
            up::run(args, token).await?;
            return Ok(EXIT_OK);
        }
        Command::Keygen(args) => return keygen::run(args),
        other => other,
    };
    if !(gateway.starts_with("http://") || gateway.starts_with("https://")) {
        return Err(CliError::Usage(format!(
            "--gateway {gateway:?} must be an http:// or https:// URL"
        )));
    }
    let client = GatewayClient::new(&gateway, token);
    match command {
        // Handled above, before a client exists.
        Command::Up(_) | Command::Keygen(_) => Ok(EXIT_OK),
        Command::Register(a) => api::register(&client, a, json).await,
        Command::Invoke(a) => api::invoke(&client, a, json).await,
        Command::Status(a) => api::status(&client, a, json).await,
        Command::Result(a) => api::result(&client, a, json).await,
        Command::Functions => api::functions(&client, json).await,
        Command::Workers => api::workers(&client, json).await,
        Command::Task(a) => api::task(&client, a, json).await,
        Command::Watch(a) => watch::run(&client, a, json).await,
        Command::Tasks(a) => ops::tasks(&client, a, json).await,
        Command::Cancel(a) => ops::cancel(&client, a, json).await,
        Command::Retry(a) => ops::retry(&client, a, json).await,
        Command::Purge(a) => ops::purge(&client, a, json).await,
        Command::Function(a) => ops::function(&client, a, json).await,
        Command::Rm(a) => ops::rm(&client, a, json).await,
        Command::Drain(a) => ops::drain(&client, a, json).await,
        Command::Bench(mut a) => {
            a.json = json;
            crate::bench::run(a, client).await?;
            Ok(EXIT_OK)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn ids_are_checked_by_the_parser() {
        let e = Cli::try_parse_from(["faas", "status", "nope"]).unwrap_err();
        assert_eq!(e.exit_code(), EXIT_USAGE);
        assert!(e.to_string().contains("invalid task id"), "{e}");
    }

    #[test]
    fn invoke_takes_json_args_and_flags() {
        let cli = Cli::try_parse_from([
            "faas",
            "--json",
            "invoke",
            "6f1c1a52-3f43-4a7e-9b59-5d1c0f6a9a10",
            "[1, 2]",
            "--kwargs",
            "{}",
            "--wait",
            "--timeout-ms",
            "500",
        ])
        .unwrap();
        assert!(cli.global.json);
        let Command::Invoke(a) = cli.command else {
            panic!("not invoke")
        };
        assert_eq!(a.args.as_deref(), Some("[1, 2]"));
        assert!(a.wait);
        assert_eq!(a.timeout_ms, Some(500));
    }
}
