//! The Redis epoch: which incarnation of the data a daemon is talking to.
//!
//! `{p}:epoch` holds a random id, written by whichever daemon looks first (`SET NX`). Redis that
//! comes back empty (restarted without persistence, flushed) or is another server has no epoch
//! or a different one, so a daemon that caches what it read (the gateway's function metadata,
//! the dispatcher's function definitions) checks the epoch every [`EPOCH_EVERY`] and empties its
//! cache when it changed. Caches are only a shortcut: a task whose function is gone is never
//! run whatever a cache holds, because `take_lib.lua` checks the function when it starts the
//! task.
//!
//! Deleting a function (`DELETE /functions/{id}`) bumps `{p}:functions:deleted`; the same watch
//! empties the caches when that count moves, so no gateway of a fleet accepts executions of a
//! deleted function for longer than [`EPOCH_EVERY`] (and none is ever run, as above).

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{Result, Store};

/// How often daemons compare the epoch.
pub const EPOCH_EVERY: Duration = Duration::from_millis(500);

impl Store {
    /// The current epoch, writing a fresh one first if Redis has none.
    pub async fn epoch(&self) -> Result<String> {
        let key = self.keys.epoch();
        let fresh = uuid::Uuid::new_v4().to_string();
        let mut c = self.conn.clone();
        let (_, current): (Option<String>, String) = redis::pipe()
            .cmd("SET")
            .arg(&key)
            .arg(&fresh)
            .arg("NX")
            .cmd("GET")
            .arg(&key)
            .query_async(&mut c)
            .await?;
        Ok(current)
    }

    /// How many functions were ever deleted (see the module docs).
    pub async fn functions_deleted(&self) -> Result<u64> {
        let mut c = self.conn.clone();
        let n: Option<u64> = redis::cmd("GET")
            .arg(self.keys.functions_deleted())
            .query_async(&mut c)
            .await?;
        Ok(n.unwrap_or(0))
    }
}

/// Calls `reset` whenever the epoch differs from the one seen before (and once when it is
/// first read, since what was cached before that is of unknown origin), until `shutdown`.
pub async fn watch_epoch(store: Store, shutdown: CancellationToken, reset: impl Fn() + Send) {
    let mut seen: Option<String> = None;
    let mut deleted: Option<u64> = None;
    let mut tick = tokio::time::interval(EPOCH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match store.epoch().await {
            Ok(now) if seen.as_deref() != Some(now.as_str()) => {
                if seen.is_some() {
                    warn!(event = "redis_epoch_changed", epoch = %now, "redis epoch changed (its data was lost or replaced); caches emptied");
                }
                reset();
                seen = Some(now);
            }
            Ok(_) => {}
            Err(e) => debug!(error = %e, "cannot read the redis epoch"),
        }
        match store.functions_deleted().await {
            Ok(n) if deleted.is_some_and(|d| d != n) => {
                debug!(deleted = n, "a function was deleted; caches emptied");
                reset();
                deleted = Some(n);
            }
            Ok(n) => deleted = Some(n),
            Err(e) => debug!(error = %e, "cannot read the function deletion count"),
        }
    }
}
