//! Failing fast while Redis is away: a bound on every command and a circuit breaker.
//!
//! Every command of the shared connection ([`super::Redial`]) goes through [`Guarded`]. Each
//! gets at most the command timeout (a pipeline a little more per command), dialling included,
//! so a stopped or unreachable Redis costs a request that long, not a dial's and a response's
//! timeouts one after the other (7.5 s before this). After [`OPEN_AFTER`] consecutive failures
//! (time outs, refused or dropped connections, a Redis still loading its data) the circuit
//! opens: commands fail at once for [`COOL_DOWN`], then one probe goes through (half-open), and
//! its success closes the circuit again. Error replies (OOM, READONLY, a script error) are answers,
//! not failures: Redis is there.
//!
//! Blocking reads (`XREADGROUP BLOCK`) and the pub/sub listener use connections of their own
//! and are not guarded: they wait on purpose.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::ConnectionLike;
use redis::{
    Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, ServerErrorKind, Value,
};
use tracing::{info, warn};

use super::Redial;

/// Consecutive failures that open the circuit.
pub const OPEN_AFTER: u32 = 3;
/// How long an open circuit fails commands before letting a probe through.
pub const COOL_DOWN: Duration = Duration::from_millis(500);
/// Extra time a pipeline gets per command (a 10,000-task batch is 30,000 commands).
const PER_PIPELINED_COMMAND: Duration = Duration::from_micros(20);

/// True for the errors that say Redis cannot be reached or cannot serve yet, as opposed to
/// an answer it gave.
pub fn is_unreachable(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.kind() == ErrorKind::Server(ServerErrorKind::BusyLoading)
}

#[derive(Debug, Default)]
struct State {
    failures: u32,
    /// Set while open: when the next probe may go.
    open_until: Option<Instant>,
    /// A probe is out (half-open): everything else still fails fast.
    probing: bool,
}

/// The circuit breaker, shared by every clone of a store.
#[derive(Debug, Default)]
pub struct Breaker {
    state: Mutex<State>,
}

impl Breaker {
    /// Whether a command may go; `Ok(true)` when it is the half-open probe.
    fn admit(&self) -> RedisResult<bool> {
        let mut s = self.state.lock().expect("breaker lock");
        match s.open_until {
            None => Ok(false),
            Some(until) if Instant::now() >= until && !s.probing => {
                s.probing = true;
                Ok(true)
            }
            Some(_) => Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "redis is unreachable (circuit open after repeated failures)",
            ))),
        }
    }

    fn record<T>(&self, result: &RedisResult<T>, probe: bool) {
        let failed = matches!(result, Err(e) if is_unreachable(e));
        let mut s = self.state.lock().expect("breaker lock");
        if probe {
            s.probing = false;
        }
        if failed {
            s.failures += 1;
            if probe || s.failures >= OPEN_AFTER {
                if s.open_until.is_none() {
                    warn!(
                        event = "redis_circuit_open",
                        failures = s.failures,
                        "redis circuit open: failing commands fast, probing every {COOL_DOWN:?}"
                    );
                }
                s.open_until = Some(Instant::now() + COOL_DOWN);
            }
        } else {
            if s.open_until.is_some() {
                info!(
                    event = "redis_circuit_closed",
                    "redis circuit closed: redis answers again"
                );
            }
            *s = State::default();
        }
    }

    /// A probe that was dropped before it finished (its caller gave up) frees the slot.
    fn abandon_probe(&self) {
        self.state.lock().expect("breaker lock").probing = false;
    }

    /// True while commands fail without being sent.
    pub fn is_open(&self) -> bool {
        self.state
            .lock()
            .expect("breaker lock")
            .open_until
            .is_some()
    }
}

/// Gives the probe slot back if the command's future is dropped before it records.
struct ProbeGuard<'a> {
    breaker: &'a Breaker,
    armed: bool,
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.breaker.abandon_probe();
        }
    }
}

/// The shared connection with the command timeout and the breaker in front.
#[derive(Clone)]
pub struct Guarded {
    inner: Redial,
    breaker: Arc<Breaker>,
    timeout: Duration,
}

impl std::fmt::Debug for Guarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded")
            .field("breaker", &self.breaker)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Guarded {
    pub fn new(inner: Redial, timeout: Duration) -> Self {
        Self {
            inner,
            breaker: Arc::default(),
            timeout,
        }
    }

    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    async fn run<T>(
        breaker: &Breaker,
        timeout: Duration,
        fut: impl std::future::Future<Output = RedisResult<T>>,
    ) -> RedisResult<T> {
        let probe = breaker.admit()?;
        let mut guard = ProbeGuard {
            breaker,
            armed: probe,
        };
        let result = match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("redis did not answer within {timeout:?}"),
            ))),
        };
        guard.armed = false;
        breaker.record(&result, probe);
        result
    }
}

impl ConnectionLike for Guarded {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let Self {
                inner,
                breaker,
                timeout,
            } = self;
            Self::run(breaker, *timeout, inner.req_packed_command(cmd)).await
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let Self {
                inner,
                breaker,
                timeout,
            } = self;
            let bound = *timeout + PER_PIPELINED_COMMAND * u32::try_from(count).unwrap_or(u32::MAX);
            Self::run(
                breaker,
                bound,
                inner.req_packed_commands(cmd, offset, count),
            )
            .await
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unreachable() -> RedisResult<()> {
        Err(RedisError::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "down",
        )))
    }

    #[test]
    fn the_circuit_opens_after_consecutive_failures_and_a_probe_closes_it() {
        let b = Breaker::default();
        for _ in 0..OPEN_AFTER - 1 {
            assert_eq!(b.admit().ok(), Some(false));
            b.record(&unreachable(), false);
        }
        assert!(!b.is_open(), "not before {OPEN_AFTER} failures");
        b.record(&unreachable(), false);
        assert!(b.is_open());
        assert!(b.admit().is_err(), "open: fails without sending");
        // After the cool-down one probe goes; others still fail while it is out.
        b.state.lock().unwrap().open_until = Some(Instant::now());
        assert_eq!(b.admit().ok(), Some(true));
        assert!(b.admit().is_err(), "one probe at a time");
        b.record(&Ok(()), true);
        assert!(!b.is_open());
        assert_eq!(b.admit().ok(), Some(false));
    }

    #[test]
    fn a_failed_probe_reopens_and_an_error_reply_is_no_failure() {
        let b = Breaker::default();
        for _ in 0..OPEN_AFTER {
            b.record(&unreachable(), false);
        }
        b.state.lock().unwrap().open_until = Some(Instant::now());
        assert_eq!(b.admit().ok(), Some(true));
        b.record(&unreachable(), true);
        assert!(b.is_open());
        assert!(b.admit().is_err(), "re-opened for a new cool-down");

        let b = Breaker::default();
        let oom: RedisResult<()> = Err(RedisError::from((
            ErrorKind::Client,
            "OOM command not allowed when used memory > 'maxmemory'",
        )));
        for _ in 0..OPEN_AFTER + 1 {
            b.record(&oom, false);
        }
        assert!(
            !b.is_open(),
            "an answer from Redis is not a failure to reach it"
        );
    }
}
