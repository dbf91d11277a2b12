//! `faas-worker`: runs tasks for a remote dispatcher on its own pool of Python children.
//!
//! One life cycle for both modes (`life`): connect → Noise handshake → hello/welcome → serve
//! → drain → bye, reconnecting with jittered back-off (`crate::backoff`). Push (`push`: one
//! DEALER, tasks sent unasked) and pull (`pull`: REQ sockets, held polls) differ only behind
//! the small `life::Transport` seam: how a connection is made and joined, how a message is
//! said, and what the dispatcher says unasked.
//!
//! The ZeroMQ sockets are rebuilt whenever the dispatcher goes quiet or the connection drops
//! (the `zeromq` crate does not reconnect DEALER or REQ sockets by itself), and the worker says
//! hello again; tasks keep running meanwhile and their results are sent once connected.
//! Results wait in an outbox until sent, so a reconnect does not lose them.
//!
//! With a worker key every socket starts with the Noise handshake of `crate::channel` and
//! every frame after it is sealed; a dispatcher that refuses the handshake (another key) is
//! logged as an error and retried with back-off, and no task is taken from it meanwhile. Each
//! result carries the lease its task came with.
//!
//! A `drain` from the dispatcher (an operator drains this worker) takes the SIGTERM path: the
//! same shutdown token is cancelled, so the worker says `leaving`, finishes its running tasks
//! within `drain_grace` (handing back the rest), says `bye` and exits 0.
//!
//! A `cancel` from the dispatcher kills the task's process group in the pool (`Pool::cancel`);
//! the task's result then says `Cancelled`. Each task runs in a `task` span (`task_id`,
//! `attempt`, `worker`) and the link to the dispatcher in a `connection` span (`dispatcher`,
//! `worker`).

mod life;
mod pull;
mod push;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faas_protocol::model::{Outcome, WorkerMode};
use faas_protocol::wire::{TaskMsg, ToDispatcher};
use faas_protocol::{FunctionId, TaskId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, info_span, Instrument};

use crate::executor::{ExecutorError, FunctionDef, Job, Pool, PoolConfig, SandboxConfig};

#[derive(Clone, Debug)]
pub struct WorkerConfig {
    pub mode: WorkerMode,
    /// The dispatcher, e.g. `tcp://127.0.0.1:5555`.
    pub endpoint: String,
    pub id: String,
    pub procs: usize,
    pub python: PathBuf,
    /// How often to beat until the dispatcher's welcome says otherwise.
    pub heartbeat: Duration,
    /// How long SIGTERM waits for running tasks before handing them back.
    pub drain_grace: Duration,
    /// Sandbox and limits of the children.
    pub sandbox: SandboxConfig,
    /// Children kept alive at most (`--max-children`).
    pub max_children: usize,
    /// Memory of idle children at most (`--max-idle-memory`).
    pub max_idle_memory: u64,
    /// The worker key; without one the channel is plaintext.
    pub key: Option<crate::channel::ChannelKey>,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Executor(#[from] ExecutorError),
    #[error("the dispatcher refused this worker: {0}")]
    Refused(String),
}

/// What both modes share: the pool, the function cache, the running set and the outbox.
#[derive(Debug)]
struct Core {
    cfg: WorkerConfig,
    pool: Pool,
    functions: Mutex<HashMap<FunctionId, Arc<FunctionDef>>>,
    running: Mutex<HashSet<TaskId>>,
    outbox: mpsc::UnboundedSender<ToDispatcher>,
    host: String,
    /// The shutdown token of [`run`]: a `drain` from the dispatcher cancels it, as SIGTERM does.
    leave: CancellationToken,
}

impl Core {
    fn hello(&self) -> ToDispatcher {
        ToDispatcher::Hello {
            worker: self.cfg.id.clone(),
            mode: self.cfg.mode,
            host: self.host.clone(),
            pid: std::process::id(),
            slots: self.pool.size() as u32,
            busy: self.busy(),
        }
    }

    fn heartbeat(&self) -> ToDispatcher {
        ToDispatcher::Heartbeat {
            worker: self.cfg.id.clone(),
            busy: self.busy(),
        }
    }

    fn busy(&self) -> u32 {
        self.running.lock().expect("running lock").len() as u32
    }

    /// Turns a task message into a job, caching the function it carries.
    fn job(&self, t: &TaskMsg) -> Result<Job, String> {
        let mut cache = self.functions.lock().expect("function cache lock");
        let function = match (&t.body, cache.get(&t.function_id)) {
            (Some(body), _) => {
                let f = Arc::new(FunctionDef {
                    id: t.function_id,
                    format: t.format,
                    body: body.clone(),
                    entrypoint: t.entrypoint.clone(),
                });
                cache.insert(t.function_id, f.clone());
                f
            }
            (None, Some(f)) => f.clone(),
            (None, None) => {
                return Err(format!(
                    "the worker was sent function {} without its body",
                    t.function_id
                ))
            }
        };
        Ok(Job {
            task_id: t.task_id,
            function,
            args: t.args.clone(),
            timeout: Duration::from_millis(t.timeout_ms.max(1)),
        })
    }

    /// Starts a task: its function is cached here, in message order, before the task runs
    /// concurrently (a later task may carry no body and rely on this one's).
    fn start(self: &Arc<Self>, t: TaskMsg, slot: Option<crate::executor::Slot>) {
        let job = self.job(&t);
        self.running.lock().expect("running lock").insert(t.task_id);
        let span =
            info_span!("task", task_id = %t.task_id, attempt = t.lease, worker = %self.cfg.id);
        debug!(parent: &span, event = "task_received", "task received");
        tokio::spawn(self.clone().execute(t, job, slot).instrument(span));
    }

    /// Runs a task to its outcome and puts the result in the outbox.
    async fn execute(
        self: Arc<Self>,
        t: TaskMsg,
        job: Result<Job, String>,
        slot: Option<crate::executor::Slot>,
    ) {
        let outcome = match job {
            Ok(job) => match slot {
                Some(slot) => slot.run(job, &[]).await.0,
                None => self.pool.run(job).await,
            },
            Err(why) => Outcome::platform_failure("ProtocolError", why),
        };
        self.running
            .lock()
            .expect("running lock")
            .remove(&t.task_id);
        let _ = self.outbox.send(ToDispatcher::Result {
            worker: self.cfg.id.clone(),
            task_id: t.task_id,
            lease: t.lease,
            format: t.format,
            outcome,
        });
    }

    /// A cancel from the dispatcher: kills the task's process group if it runs here (its
    /// result then reports `Cancelled`); a task not running here is ignored. A task that has
    /// arrived but is not yet registered with the pool (between its arrival and its slot) is
    /// tried again every 20 ms, for as long as it runs here, up to 5 s.
    fn cancel(self: &Arc<Self>, task_id: TaskId) {
        if !self.runs(task_id) {
            debug!(%task_id, "a cancel for a task not running here; ignored");
            return;
        }
        if self.pool.cancel(task_id) {
            info!(event = "cancelling", %task_id, "cancelling a running task");
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            for _ in 0..250 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                if !me.runs(task_id) {
                    return;
                }
                if me.pool.cancel(task_id) {
                    info!(event = "cancelling", %task_id, "cancelling a running task");
                    return;
                }
            }
        });
    }

    fn runs(&self, task_id: TaskId) -> bool {
        self.running
            .lock()
            .expect("running lock")
            .contains(&task_id)
    }

    /// A `drain` from the dispatcher: leave as on SIGTERM (finish the running tasks, `bye`).
    fn drain(&self) {
        if !self.leave.is_cancelled() {
            info!(
                event = "drain_requested",
                running = self.busy(),
                "the dispatcher asks this worker to drain and leave"
            );
            self.leave.cancel();
        }
    }

    fn unfinished(&self) -> Vec<TaskId> {
        self.running
            .lock()
            .expect("running lock")
            .iter()
            .copied()
            .collect()
    }
}

/// Runs the worker until `shutdown`, then drains: no new tasks, running ones get
/// `drain_grace` to finish, the rest are handed back with `bye`.
pub async fn run(cfg: WorkerConfig, shutdown: CancellationToken) -> Result<(), WorkerError> {
    let pool = Pool::start(PoolConfig {
        python: cfg.python.clone(),
        size: cfg.procs,
        kill_grace: Duration::from_secs(2),
        sandbox: cfg.sandbox.clone(),
        max_children: cfg.max_children,
        max_idle_memory: cfg.max_idle_memory,
    })
    .await?;
    // Ready once its children run; reaching a dispatcher may take any time (it waits for one).
    crate::notify::notify_ready();
    let (outbox, results) = mpsc::unbounded_channel();
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into());
    let core = Arc::new(Core {
        cfg,
        pool: pool.clone(),
        functions: Mutex::default(),
        running: Mutex::default(),
        outbox,
        host,
        leave: shutdown.clone(),
    });
    // Every line about the link to the dispatcher says where it is and which worker this is
    // (`dispatcher` names a dispatcher, as in the registry; its address is `endpoint`).
    let span = info_span!("connection", endpoint = %core.cfg.endpoint, worker = %core.cfg.id);
    let outbox = life::Outbox::new(results);
    let outcome = match core.cfg.mode {
        WorkerMode::Pull => {
            let pull = pull::Pull::new(&core);
            life::run(core.clone(), pull, outbox, shutdown)
                .instrument(span)
                .await
        }
        _ => {
            let push = push::Push::new(&core);
            life::run(core.clone(), push, outbox, shutdown)
                .instrument(span)
                .await
        }
    };
    pool.shutdown().await;
    outcome
}
