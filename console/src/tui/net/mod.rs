//! The network side of the console: long-running tasks that watch Redis and the gateway and
//! send `Update`s, and one short task per `Command`. The UI never awaits any of them.
//!
//! Every loop reconnects on its own with a short back-off, so a restart of Redis or of the
//! gateway shows as "reconnecting" in the header and then heals without the operator acting.

mod events;
mod gateway;
mod poll;
mod resp;

use std::time::Duration;

use faas_protocol::{Keys, TaskId};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::msg::{Command, Link, Update};
use super::now_ms;
use crate::client::GatewayClient;

/// Batches of task ids waiting to be read; when full, batches are dropped (rows stay unnamed).
const ENRICH_QUEUE: usize = 8;

/// Where the network tasks connect.
#[derive(Clone, Debug)]
pub struct Endpoints {
    pub redis: redis::Client,
    pub keys: Keys,
    pub gateway: GatewayClient,
}

/// The running network tasks; dropping it stops the long-running ones.
#[derive(Debug)]
pub struct Net {
    gateway: GatewayClient,
    updates: mpsc::Sender<Update>,
    enrich: mpsc::Sender<Vec<TaskId>>,
    loops: Vec<JoinHandle<()>>,
}

impl Net {
    /// Starts watching; updates go to `updates`.
    pub fn start(ep: Endpoints, updates: mpsc::Sender<Update>) -> Self {
        let (enrich, enrich_rx) = mpsc::channel(ENRICH_QUEUE);
        let loops = vec![
            tokio::spawn(events::subscribe(
                ep.redis.clone(),
                ep.keys.events(),
                updates.clone(),
            )),
            tokio::spawn(poll::poll(
                ep.redis.clone(),
                ep.keys.clone(),
                updates.clone(),
            )),
            tokio::spawn(poll::enrich(ep.redis, ep.keys, enrich_rx, updates.clone())),
            tokio::spawn(gateway::watch(ep.gateway.clone(), updates.clone())),
        ];
        Self {
            gateway: ep.gateway,
            updates,
            enrich,
            loops,
        }
    }

    /// Starts `cmd` in the background; its outcome comes back as an `Update`.
    pub fn run(&self, cmd: Command) {
        if let Command::Enrich(ids) = cmd {
            // Names in the task list are nice to have: never queue up behind a slow Redis.
            let _ = self.enrich.try_send(ids);
            return;
        }
        tokio::spawn(gateway::command(
            self.gateway.clone(),
            cmd,
            self.updates.clone(),
        ));
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for l in &self.loops {
            l.abort();
        }
    }
}

/// Reconnect delays: short at first so a restart heals fast, capped so a dead peer is not
/// hammered, jittered (the platform's one policy, `faas_protocol::backoff`).
#[derive(Debug)]
struct Backoff(faas_protocol::backoff::Backoff);

impl Backoff {
    const FIRST: Duration = Duration::from_millis(250);
    const MAX: Duration = Duration::from_secs(2);

    fn new() -> Self {
        Self(faas_protocol::backoff::Backoff::new(Self::FIRST, Self::MAX))
    }

    fn reset(&mut self) {
        self.0.reset();
    }

    /// The `Down` link to report and the delay to sleep before the next attempt.
    fn fail(&mut self, error: impl ToString) -> (Link, Duration) {
        let delay = self.0.next_delay();
        let link = Link::Down {
            retry_at_ms: now_ms() + delay.as_millis() as u64,
            error: error.to_string(),
        };
        (link, delay)
    }
}
