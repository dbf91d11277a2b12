//! The executor's command-line flags, shared by `faas-dispatcher` (local mode) and
//! `faas-worker`: sandbox, environment passing and per-child limits.

use tracing::warn;

use super::pool::DEFAULT_MAX_CHILDREN;
use super::sandbox::{Limits, SandboxConfig, SandboxKind, SandboxNet};

#[derive(Clone, Debug, clap::Args)]
pub struct ExecutorArgs {
    /// How Python children are isolated: bwrap (one bubblewrap sandbox per child; the daemon
    /// will not start without `bwrap`) or none (insecure, warned at start).
    #[arg(long, env = "FAAS_SANDBOX", value_enum, default_value_t = SandboxKind::Bwrap)]
    pub sandbox: SandboxKind,
    /// The sandboxes' network: none (their own loopback only: functions reach nothing, this
    /// platform's gateway and Redis included) or host (insecure: this machine's network, every
    /// service on it included; for functions that call outside APIs).
    #[arg(long, env = "FAAS_SANDBOX_NET", value_enum, default_value_t = SandboxNet::None)]
    pub sandbox_net: SandboxNet,
    /// A daemon environment variable functions may see (repeatable). Besides PYTHONPATH,
    /// nothing else of the daemon's environment reaches them.
    #[arg(
        long = "pass-env",
        env = "FAAS_PASS_ENV",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub pass_env: Vec<String>,
    /// Address space per child (e.g. 1GiB, 512MiB); a task over it fails with MemoryError.
    #[arg(long, env = "FAAS_MEMORY_LIMIT", default_value = "1GiB", value_parser = parse_size)]
    pub memory_limit: u64,
    /// Captured print/log output kept per task; the rest is cut with a notice line.
    #[arg(long, env = "FAAS_MAX_OUTPUT", default_value = "1MiB", value_parser = parse_size)]
    pub max_output: u64,
    /// Largest encoded result; bigger ones fail with ResultTooLarge.
    #[arg(long, env = "FAAS_MAX_RESULT", default_value = "16MiB", value_parser = parse_size)]
    pub max_result: u64,
    /// Open files per child (RLIMIT_NOFILE).
    #[arg(long, env = "FAAS_MAX_OPEN_FILES", default_value_t = 1024)]
    pub max_open_files: u64,
    /// Processes and threads per sandbox (RLIMIT_NPROC on the sandbox's own uid; not bound
    /// with --sandbox none).
    #[arg(long, env = "FAAS_MAX_PROCESSES", default_value_t = 128)]
    pub max_processes: u64,
    /// Size of each sandbox's /tmp, its one writable place (e.g. 64MiB, 1GiB). It is a tmpfs:
    /// what a function writes there is memory, held while the child stays warm.
    #[arg(long, env = "FAAS_TMP_SIZE", default_value = "128MiB", value_parser = parse_size)]
    pub tmp_size: u64,
    /// Memory the idle Python children (warm and spare) may hold together, their /tmp
    /// included (e.g. 4GiB); past it the least recently used warm ones are stopped
    /// [default: a quarter of this machine's memory].
    #[arg(long, env = "FAAS_MAX_IDLE_MEMORY", value_parser = parse_size)]
    pub max_idle_memory: Option<u64>,
    /// Python children kept alive at most: running, warm per function, and spares. The least
    /// recently used warm ones are stopped past it.
    #[arg(long, env = "FAAS_MAX_CHILDREN", default_value_t = DEFAULT_MAX_CHILDREN)]
    pub max_children: usize,
}

impl ExecutorArgs {
    /// `--max-idle-memory`, or a quarter of the machine's memory (`MemTotal`), or 2 GiB where
    /// that cannot be read.
    pub fn max_idle_memory(&self) -> u64 {
        self.max_idle_memory.unwrap_or_else(|| {
            std::fs::read_to_string("/proc/meminfo")
                .ok()
                .and_then(|m| {
                    let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
                    line.split_whitespace().nth(1)?.parse::<u64>().ok()
                })
                .map_or(2 << 30, |kib| kib * 1024 / 4)
        })
    }

    /// The sandbox these flags ask for; warns when it is none or shares the network.
    pub fn sandbox_config(&self) -> SandboxConfig {
        // No quiet fallback to no sandbox where `bwrap` is missing: the pool refuses to start
        // and says to install it, or to pass --sandbox none.
        let kind = self.sandbox;
        if kind == SandboxKind::None {
            warn!(
                event = "sandbox_disabled",
                "--sandbox none: functions run without a sandbox (insecure): they can reach this \
                 machine's files, processes and network as the daemon's user"
            );
        }
        if kind == SandboxKind::Bwrap && self.sandbox_net == SandboxNet::Host {
            warn!(
                event = "sandbox_net_host",
                "--sandbox-net host: functions share this machine's network (insecure) and reach \
                 every service listening on it, loopback included: this platform's gateway (its \
                 whole API unless it has a --token), a Redis on TCP, metrics endpoints; give the \
                 gateway a token and Redis a unix socket, or keep the default --sandbox-net none"
            );
        }
        SandboxConfig {
            kind,
            net: self.sandbox_net,
            pass_env: self.pass_env.clone(),
            limits: Limits {
                memory: self.memory_limit,
                max_output: self.max_output,
                max_result: self.max_result,
                open_files: self.max_open_files,
                processes: self.max_processes,
                tmp: self.tmp_size,
            },
        }
    }
}

/// `1048576`, `64KiB`, `512MiB`, `1GiB` (also `K`/`M`/`G`, `KB`/`MB`/`GB`, all powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 1048576, 64KiB or 1GiB"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use KiB, MiB or GiB)"
            ))
        }
    };
    let size = n
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))?;
    if size == 0 {
        return Err("a size must be positive".into());
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The limits are written twice, as the flags' defaults (which `--help` shows) and as
    /// `Limits::default()` (what the pool gets without flags: its tests, library use): this
    /// keeps the two the same.
    #[test]
    fn the_flags_default_to_the_default_limits() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            executor: ExecutorArgs,
        }
        let cli = <Cli as clap::Parser>::try_parse_from(["faas"]).expect("no flag is required");
        let flags = serde_json::to_value(cli.executor.sandbox_config().limits).expect("json");
        let defaults = serde_json::to_value(Limits::default()).expect("json");
        assert_eq!(flags, defaults);
    }

    #[test]
    fn sizes_parse_in_powers_of_1024() {
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("1TiB").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_size("0").is_err());
    }
}
